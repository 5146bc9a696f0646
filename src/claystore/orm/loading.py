"""Rows -> objects: the one way stored objects are built from rows, and the reads of them.

Owns, like SQLAlchemy's ``orm/loading.py``:

- :meth:`Loader.instances`: THE path from object rows (:mod:`claystore.orm.rows`) to
  objects, for queries and for loads by id alike: each row's object is found in the identity
  scope, or built (its ``__init__`` is not called) and handed to the scope in one batch;
- the other reads of stored objects: one object's row (optionally locked) written into the
  object (:meth:`Loader.refresh`), references, containers of references (link tables), one
  field or every field of an object in committed state;

Loading goes by the registry (``dc_object``) to learn each id's class, so references may point
to any class, including subclasses (joined tables) and unions of classes.  Each loader reads
one backend; an id it does not find at home there is looked for on the other backends through
its *route* (:class:`Route`: a read route or the transaction), which also waits for a move
under way (:mod:`claystore.orm.moving`).  Rows whose registry row names another backend (the
copies a move is making) are never read.

The identity scope is passed in (:class:`IdentityScope`): the client's identity map outside a
unit of work, the unit of work itself inside one.  The loader is handed its connection, the
objects' jar and the engine's dialect; it calls nothing above it.

Created by :mod:`claystore.orm.context` and :mod:`claystore.orm.transaction`.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import sqlalchemy as sa

from claystore.dialects.cursor import select_rows
from claystore.errors import ObjectDoesNotExistError
from claystore.orm import aliases
from claystore.orm.fields import Field, FieldKind
from claystore.orm.mapping import ModelInfo, info_for_table
from claystore.orm.rows import RowReader, backend_uuid, object_select, unknown_class
from claystore.orm.state import STATE_ATTR, Jar, ObjectState, Snapshot
from claystore.orm.system import dc_object

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.dialects.base import Dialect

__all__ = ["IdentityScope", "Loader", "Route"]

_CHUNK = 500
#: The locking form of each by-id SELECT, per engine (one statement, compiled once).
_locked_selects: dict[tuple[Any, type], Any] = {}
#: How many times the backends are searched for an object a move may be taking elsewhere.
_SEARCHES = 20


class Route(Protocol):
    """The other backends a loader can reach (see the module docstring)."""

    def loader_for(self, backend_id: UUID, *, write: bool = False) -> Loader:
        """The loader of a backend in the same read or transaction (``write``: on the
        transaction's write connection, where a row lock holds)."""

    def backend_ids(self) -> list[UUID]:
        """Every backend, the metadata database first."""

    def settle(self, object_ids: Iterable[UUID]) -> bool:
        """Wait for the moves under way of these objects; True if there was one."""

    def refresh_backends(self) -> bool:
        """Read the registered backends again; True when there are new ones."""


class IdentityScope(Protocol):
    """Where loaded objects are looked up and registered: the client's identity map
    (:class:`claystore.orm.identity.IdentityMap`) or a unit of work."""

    def find(self, object_id: UUID) -> Any | None:
        """The live object the caller should see for this id, or None to build one."""

    def adopt(self, pairs: list[tuple[UUID, Any]]) -> dict[int, Any] | None:
        """Take freshly built objects; ``{id(built): winner}`` where another object won."""

    def absorb(self, obj: Any, row: Sequence[Any], reader: RowReader) -> None:
        """``obj`` (found by :meth:`find`) came back in ``row``: take its values if this scope
        holds the object without having loaded it."""


# -- the SELECTs -------------------------------------------------------------------------------


_REGISTRY_SELECT = sa.select(dc_object.c.id, dc_object.c.class_name, dc_object.c.backend_id).where(
    dc_object.c.id.in_(sa.bindparam("ids", expanding=True))
)


def _hint(field: Field) -> ModelInfo | None:
    """The class a reference most likely points to (its one declared target)."""
    targets = field.targets()
    if len(targets) == 1 and getattr(targets[0], "_dc_info", None) is not None:
        info: ModelInfo = targets[0]._dc_info  # type: ignore[attr-defined]
        return info
    return None


def _scan_homes(
    conn: Connection, backend_id: UUID, ids: list[UUID], homes: dict[UUID, tuple[UUID, str]]
) -> bool:
    """Add to ``homes`` the ids at home on the backend of ``conn``; True when it holds copies
    of some (registry rows naming another backend: a move under way)."""
    copies = False
    for start in range(0, len(ids), _CHUNK):
        chunk = {"ids": ids[start : start + _CHUNK]}
        for object_id, class_name, backend in conn.execute(_REGISTRY_SELECT, chunk):
            if backend_uuid(backend) == backend_id:
                homes[object_id] = (backend_id, class_name)
            else:
                copies = True
    return copies


def _serve_from_row(
    obj: Any, row: Sequence[Any], readers: Mapping[str, RowReader], snapshot: Snapshot
) -> None:
    """Let a query loop's row answer its thread's reads of an object already in memory."""
    state: ObjectState | None = obj.__dict__.get(STATE_ATTR)
    reader = readers.get(row[1])
    if state is not None and reader is not None:
        state.snapshot = (snapshot, row, reader.position)


# -- the loader --------------------------------------------------------------------------------


class Loader:
    """Loads stored objects over one connection into one identity scope."""

    __slots__ = ("backend_id", "conn", "context", "dialect", "route", "scope")

    def __init__(
        self,
        conn: Connection,
        context: Jar,
        scope: IdentityScope,
        dialect: Dialect,
        *,
        backend_id: UUID | None = None,
        route: Route | None = None,
    ) -> None:
        self.conn = conn
        self.context = context  # the jar of the objects built
        self.scope = scope
        self.dialect = dialect
        self.backend_id = backend_id  # None: one database, no routing
        self.route = route

    def at(self, state: ObjectState, *, write: bool = False) -> Loader:
        """The loader of the backend holding the object of ``state`` (``write``: on the
        transaction's write connection there)."""
        if self.route is None or (state.backend_id == self.backend_id and not write):
            return self
        return self.route.loader_for(state.backend_id, write=write)

    @property
    def shared(self) -> bool:
        """Whether the store has other backends (objects may move in and out of this one)."""
        return self.route is not None and len(self.route.backend_ids()) > 1

    def _holds(self, object_id: UUID) -> bool:
        """Whether the object is at home on this loader's backend."""
        for _, _, backend in self.conn.execute(_REGISTRY_SELECT, {"ids": [object_id]}):
            return self._is_home(backend)
        return False

    def _is_home(self, raw_backend: Any) -> bool:
        """Whether a row whose registry names ``raw_backend`` is this backend's own."""
        return self.backend_id is None or backend_uuid(raw_backend) == self.backend_id

    # -- rows -> objects: the one path -----------------------------------------------------------

    def instances(
        self,
        rows: Iterable[Sequence[Any]],
        readers: Mapping[str, RowReader],
        snapshot: Snapshot | None = None,
    ) -> list[Any]:
        """The objects of object rows, in row order: each found in the identity scope, or
        built by the reader of its ``_dc_class`` and handed to the scope with the others of
        the batch.  Raises :class:`MappingError` for a class this program does not define.

        ``snapshot``: the query loop (outside transactions) whose rows answer its thread's
        reads of these objects while it runs (objects found in the scope included)."""
        find = self.scope.find
        context = self.context
        built: list[tuple[UUID, Any]] = []
        out: list[Any] = []
        for row in rows:
            object_id = row[0]
            existing = find(object_id)
            if existing is not None:
                if snapshot is not None:
                    _serve_from_row(existing, row, readers, snapshot)
                else:
                    reader = readers.get(row[1])
                    if reader is not None:
                        self.scope.absorb(existing, row, reader)
                out.append(existing)
                continue
            reader = readers.get(row[1])
            if reader is None:
                raise unknown_class(object_id, row[1])
            obj = reader.build(context, row, snapshot)
            built.append((object_id, obj))
            out.append(obj)
        if built:
            winners = self.scope.adopt(built)
            if winners is not None:  # another thread registered some of them meanwhile
                out = [winners.get(id(o), o) for o in out]
        return out

    def objects(self, ids: Iterable[UUID], hint: ModelInfo | None = None) -> dict[UUID, Any]:
        """The objects with these ids (missing ids — deleted objects — are left out).

        ``hint``: the class they most likely are (one query for those that are exactly of it);
        the others are found through the registry (one query, then one per class).
        """
        found: dict[UUID, Any] = {}
        missing: list[UUID] = []
        find = self.scope.find
        for object_id in dict.fromkeys(ids):
            obj = find(object_id)
            if obj is not None and obj.__dict__.get(STATE_ATTR) is not None:
                found[object_id] = obj
            else:
                missing.append(object_id)
        missing = self._here(missing, hint, found)
        if missing and self.route is not None:
            self._elsewhere(missing, hint, found)
        return found

    def _here(self, ids: list[UUID], hint: ModelInfo | None, found: dict[UUID, Any]) -> list[UUID]:
        """Load the objects among ``ids`` that are at home on this backend into ``found``;
        returns the ids not found."""
        if ids and hint is not None:
            self._load(hint, ids, found, exact=True)
            ids = [i for i in ids if i not in found]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            by_class: dict[str, list[UUID]] = defaultdict(list)
            for object_id, class_name, backend in self.conn.execute(
                _REGISTRY_SELECT, {"ids": chunk}
            ):
                if self._is_home(backend):
                    by_class[class_name].append(object_id)
            for class_name, class_ids in by_class.items():
                info = info_for_table(class_name)
                if info is None:
                    raise unknown_class(class_ids[0], class_name)
                self._load(info, class_ids, found, exact=False)
        return [i for i in ids if i not in found]

    def _elsewhere(self, ids: list[UUID], hint: ModelInfo | None, found: dict[UUID, Any]) -> None:
        """Load the objects among ``ids`` that are at home on other backends (see
        :meth:`homes`) into ``found``."""
        assert self.route is not None
        if self.route.backend_ids() == [self.backend_id]:  # one backend: looked there
            return
        homes = self.homes(ids, skip_own=True)
        by_place: dict[tuple[UUID, str], list[UUID]] = defaultdict(list)
        for object_id, place in homes.items():
            by_place[place].append(object_id)
        for (backend_id, class_name), class_ids in by_place.items():
            info = info_for_table(class_name)
            if info is None:
                raise unknown_class(class_ids[0], class_name)
            self.route.loader_for(backend_id)._load(info, class_ids, found, exact=False)

    def locate(self, object_id: UUID) -> UUID | None:
        """The backend where an object is at home now (after a move under way ends), None
        when it is nowhere (deleted)."""
        found = self.homes([object_id]).get(object_id)
        return None if found is None else found[0]

    def homes(self, ids: list[UUID], *, skip_own: bool = False) -> dict[UUID, tuple[UUID, str]]:
        """Where each of ``ids`` is at home — (backend, class table) — on this loader's backend
        (unless ``skip_own``: the caller looked there) then on the others; ids at home nowhere
        are left out.

        An object a move is taking from one backend to another is found on one of them or the
        other, so the backends are searched again while there is a sign of a move under way
        (the journal names the ids — then the search waits for the move — or a backend holds
        a copy being made); and twice before an id counts as nowhere, for a move may have run
        from start to end between two backends' reads.
        """
        homes: dict[UUID, tuple[UUID, str]] = {}
        if self.route is None:
            for object_id, class_name, _ in self.conn.execute(_REGISTRY_SELECT, {"ids": ids}):
                homes[object_id] = (self.backend_id, class_name)  # type: ignore[assignment]
            return homes
        own = [b for b in (self.backend_id,) if b is not None]
        missing = list(dict.fromkeys(ids))
        alone = self.route.backend_ids() == own  # one backend: nothing ever moves
        for attempt in range(_SEARCHES):
            copies = False
            for backend_id in dict.fromkeys([*own, *self.route.backend_ids()]):
                if not missing or (skip_own and not attempt and backend_id == self.backend_id):
                    continue
                conn = self.route.loader_for(backend_id).conn
                copies = _scan_homes(conn, backend_id, missing, homes) or copies
                missing = [i for i in missing if i not in homes]
            if not missing:
                break
            if attempt == 0 and self.route.refresh_backends():  # another client added some
                alone = False
                continue
            if alone:
                break
            moving = self.route.settle(missing)
            if not (moving or copies or attempt == 0):
                break
            if copies and not moving:
                time.sleep(0.005 * (attempt + 1))
        return homes

    def _load(
        self, info: ModelInfo, ids: list[UUID], found: dict[UUID, Any], *, exact: bool
    ) -> None:
        """Load the objects of ``info``'s class among ``ids`` into ``found``; with ``exact``,
        rows of subclasses are left for the registry path."""
        readers = {info.tablename: RowReader.of(info)}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows: Sequence[Sequence[Any]]
            if len(chunk) == 1:  # a lookup by id: the statement compiled once, on the cursor
                rows = select_rows(self.conn, object_select(info, "id"), {"id": chunk[0]})
            else:
                rows = self.conn.execute(object_select(info, "ids"), {"ids": chunk}).all()
            if exact:
                rows = [r for r in rows if r[1] == info.tablename]
            if self.backend_id is not None:
                rows = [r for r in rows if self._is_home(r[4])]
            for row, obj in zip(rows, self.instances(rows, readers), strict=True):
                found[row[0]] = obj

    def object(self, object_id: UUID, hint: ModelInfo | None = None) -> Any:
        """The object with this id; raises :class:`ObjectDoesNotExistError`."""
        obj = self.objects([object_id], hint).get(object_id)
        if obj is None:
            raise ObjectDoesNotExistError(object_id)
        return obj

    def by_alias(self, dataset: str, alias: str, hint: ModelInfo | None) -> Any:
        """The object named ``alias`` (one query when it is exactly of the ``hint`` class)."""
        if hint is not None:
            params = {"dataset": dataset, "alias": alias}
            rows = self.conn.execute(object_select(hint, "alias"), params).all()
            rows = [r for r in rows if r[1] == hint.tablename]
            if rows:
                return self.instances(rows, {hint.tablename: RowReader.of(hint)})[0]
        return self.object(aliases.lookup(self.conn, dataset, alias))

    # -- one object's row ------------------------------------------------------------------------

    def row(
        self, info: ModelInfo, state: ObjectState, *, lock: bool = False, attempt: int = 0
    ) -> Sequence[Any]:
        """The row of one object (locked until the transaction ends with ``lock``), on its
        backend — followed there when it moved (``state.backend_id`` is updated); raises
        :class:`ObjectDoesNotExistError` when it was deleted."""
        loader = self.at(state, write=lock)
        object_id = state.object_id
        shared = self.shared  # a copy a move is making may be there: read the registry too
        statement = object_select(info, "id", registry=shared)
        if lock:
            key = (statement, type(loader.dialect))
            locked = _locked_selects.get(key)
            if locked is None:
                locked = _locked_selects[key] = loader.dialect.lock_rows(statement, info.root.table)
            statement = locked
        rows = select_rows(loader.conn, statement, {"id": object_id})
        row = rows[0] if rows else None
        if row is not None and shared and not loader._is_home(row[4]):
            row = None
        if row is None:
            moved_to = loader.locate(object_id)
            if moved_to is not None and attempt < _SEARCHES:  # moved (maybe away and back)
                state.backend_id = moved_to
                return self.row(info, state, lock=lock, attempt=attempt + 1)
            msg = f"the {info.cls.__name__} was deleted"
            raise ObjectDoesNotExistError(object_id, msg)
        return row

    def refresh(
        self, obj: Any, state: ObjectState, *, lock: bool = False, skip: Collection[str] = ()
    ) -> None:
        """Read the object's row again into its memory (except the fields in ``skip``)."""
        info: ModelInfo = type(obj)._dc_info
        RowReader.of(info).refresh(obj, self.row(info, state, lock=lock), skip)

    # -- references ------------------------------------------------------------------------------

    def reference(self, obj: Any, field: Field) -> Any:
        """The object a reference field points to (None when unset or when it was deleted)."""
        d = obj.__dict__
        target_id = d.get(field.key)
        if target_id is None:
            return d.get(field.name)  # a transient target assigned in this transaction, or None
        cached = d.get(field.name)
        if cached is not None:
            state = cached.__dict__.get(STATE_ATTR)
            if state is not None and state.object_id == target_id:
                return cached
        state = d.get(STATE_ATTR)
        loader = self.at(state) if state is not None else self
        target = loader.objects([target_id], _hint(field)).get(target_id)
        d[field.name] = target
        return target

    def link(self, info: ModelInfo, field: Field, owner: ObjectState) -> Any:
        """A container-of-references field, read from its link table on the owner's backend
        (deleted targets left out)."""
        loader = self.at(owner)
        if loader is not self:
            return loader.link(info, field, owner)
        owner_id = owner.object_id
        if self.shared and not self._holds(owner_id):  # it moved: follow it
            moved_to = self.locate(owner_id)
            if moved_to is None:
                msg = f"the {info.cls.__name__} was deleted"
                raise ObjectDoesNotExistError(owner_id, msg)
            owner.backend_id = moved_to
            return self.link(info, field, owner)
        table = info.link_table(field)
        kind = field.kind
        conn = self.conn
        if kind is FieldKind.REF_DICT:
            statement = sa.select(table.c.key, table.c.target_id).where(
                table.c.owner_id == owner_id
            )
            pairs = [(r[0], r[1]) for r in conn.execute(statement.order_by(table.c.key))]
            objects = self.objects(t for _, t in pairs)
            return {k: objects[t] for k, t in pairs if t in objects}
        statement = sa.select(table.c.target_id).where(table.c.owner_id == owner_id)
        if kind in (FieldKind.REF_LIST, FieldKind.REF_TUPLE):
            statement = statement.order_by(table.c.position)
        ids = list(conn.execute(statement).scalars())
        objects = self.objects(ids)
        items = [objects[t] for t in ids if t in objects]
        if kind is FieldKind.REF_TUPLE:
            return tuple(items)
        if kind is FieldKind.REF_SET:
            return set(items)
        return items

    # -- committed state ---------------------------------------------------------------------------

    def field(self, obj: Any, state: ObjectState, field: Field, *, cache: bool) -> Any:
        """Read one field of a stored object from the database (committed state).

        With ``cache`` the values read are also kept in memory.  Containers come back as
        copies: changing them in place changes nothing stored (assign the container to store
        it).
        """
        info: ModelInfo = type(obj)._dc_info
        if field.kind.is_link:
            value = self.link(info, field, state)
            if cache:
                obj.__dict__[field.name] = value
                return copy.copy(value)
            return value
        row = self.row(info, state)
        reader = RowReader.of(info)
        if cache:
            reader.refresh(obj, row)
            if field.kind is FieldKind.REF:
                return self.reference(obj, field)
            value = obj.__dict__[field.key]
            return copy.deepcopy(value) if field.kind is FieldKind.JSON else value
        value = reader.value(row, field)
        if field.kind is FieldKind.REF and value is not None:
            return self.objects([value]).get(value)
        return value

    def values(self, obj: Any, state: ObjectState) -> dict[str, Any]:
        """Every field of a stored object, read from the database in one row query plus one
        query per container of references."""
        info: ModelInfo = type(obj)._dc_info
        row = self.row(info, state)
        stored = {field.name: row[position] for field, position in RowReader.of(info).fields}
        ref_ids = [stored[f.name] for f in info.column_fields if f.kind is FieldKind.REF]
        targets = self.objects(i for i in ref_ids if i) if any(ref_ids) else {}
        values: dict[str, Any] = {}
        for field in info.fields.values():
            if field.kind.is_link:
                values[field.name] = self.link(info, field, state)
            elif field.kind is FieldKind.REF:
                target_id = stored[field.name]
                values[field.name] = targets.get(target_id) if target_id else None
            else:
                values[field.name] = stored[field.name]
        return values
