"""Rows -> objects: loading stored objects, their fields and their references.

Owns reading from the database: one object's row (optionally locked), the rows of many
objects by id (through the identity map, one registry query plus one query per class),
containers of references (one query on the link table), and hydration — turning a row into a
model instance without calling its ``__init__``.

Loading goes by the registry (``dc_object``) to learn each id's class, so references may point
to any class, including subclasses (joined tables) and unions of classes.

Called by :mod:`claystore.orm.context` and :mod:`claystore.orm.transaction`.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa

from claystore.errors import MappingError, ObjectDoesNotExistError
from claystore.orm import aliases
from claystore.orm.fields import Field, FieldKind
from claystore.orm.mapping import ModelInfo, info_for_table
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState
from claystore.orm.system import dc_alias, dc_object

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, RowMapping

    from claystore.orm.context import ObjectContext

_CHUNK = 500
_row_selects: dict[tuple[int, bool], sa.Select[Any]] = {}


def row_select(info: ModelInfo, *, many: bool) -> sa.Select[Any]:
    """SELECT of every column field of ``info``'s class, labelled by attribute key, by id (or
    ids, ``many``).  Built once per class."""
    cache_key = (id(info), many)
    statement = _row_selects.get(cache_key)
    if statement is None:
        root = info.root.table
        columns: list[Any] = [
            root.c.id.label("_dc_id"),
            root.c.dc_class.label("_dc_class"),
            root.c.dc_version.label("_dc_version"),
        ]
        for field in info.column_fields:
            columns.append(info.table_of(field).c[field.column_name].label(field.key))
        where = (
            root.c.id.in_(sa.bindparam("ids", expanding=True))
            if many
            else root.c.id == sa.bindparam("id")
        )
        statement = sa.select(*columns).select_from(info.selectable()).where(where)
        _row_selects[cache_key] = statement
    return statement


def fetch_row(
    conn: Connection, context: ObjectContext, info: ModelInfo, object_id: UUID, *, lock: bool
) -> RowMapping | None:
    """The row of one object (locked until the transaction ends with ``lock``), or None."""
    statement = row_select(info, many=False)
    if lock:
        statement = context.dialect.lock_rows(statement, info.root.table)
    return conn.execute(statement, {"id": object_id}).mappings().first()


def apply_row(obj: Any, info: ModelInfo, row: Mapping[Any, Any], skip: Iterable[str] = ()) -> None:
    """Write a row's values into ``obj``'s memory, except fields named in ``skip``."""
    d = obj.__dict__
    skipped = set(skip)
    d["_dc_version"] = row["_dc_version"]
    for field in info.column_fields:
        if field.name in skipped:
            continue
        value = row[field.key]
        if field.kind is FieldKind.REF:
            cached = d.get(field.name)
            if cached is not None and (
                value is None
                or cached.__dict__.get(STATE_ATTR) is None
                or cached._dc_state.object_id != value
            ):
                d.pop(field.name, None)
            elif value is None:
                d[field.name] = None
        d[field.key] = value


def hydrate(
    context: ObjectContext,
    info: ModelInfo,
    row: Mapping[Any, Any],
    dataset: str,
    backend_id: UUID,
) -> Any:
    """The object for a row of ``row_select(info)`` shape (labelled by field keys, with
    ``_dc_id``, ``_dc_class``, ``_dc_version``), through the identity map: an object already
    alive is returned as is (its memory is not overwritten)."""
    object_id: UUID = row["_dc_id"]
    existing = context.lookup(object_id)
    if existing is not None:
        return existing
    assert info.mapper is not None
    obj = info.mapper.class_manager.new_instance()
    d = obj.__dict__
    d["_dc_id"] = object_id
    d["_dc_class"] = row["_dc_class"]
    apply_row(obj, info, row)
    d[STATE_ATTR] = ObjectState(object_id, context, dataset, backend_id, Lifecycle.PERSISTENT)
    return context.register(object_id, obj)


class RowReader:
    """Reads the objects of one class out of the rows of one SELECT, by column position.

    Built once per SELECT shape and class; :func:`hydrate_rows` is the hot loop of queries that
    load many objects, so the per-row work is a few dict stores.
    """

    __slots__ = ("columns", "info", "new_instance", "refs")

    def __init__(
        self, info: ModelInfo, positions: Mapping[str, int], labels: Mapping[str, str]
    ) -> None:
        """``positions``: column label -> index in the row; ``labels``: field key -> label
        where a field is not labelled by its key (a subclass's own fields)."""
        assert info.mapper is not None
        self.info = info
        self.new_instance = info.mapper.class_manager.new_instance
        self.columns = tuple(
            (f.key, positions[labels.get(f.key, f.key)]) for f in info.column_fields
        )
        self.refs = tuple(
            (f.name, positions[labels.get(f.key, f.key)])
            for f in info.column_fields
            if f.kind is FieldKind.REF
        )

    def build(self, context: ObjectContext, row: Sequence[Any]) -> tuple[Any, ObjectState]:
        """A new persistent object (and its state) holding a row of ``(_dc_id, _dc_class,
        _dc_version, _dc_dataset, _dc_backend_id, ...)``; not registered anywhere yet."""
        obj = self.new_instance()
        d = obj.__dict__
        object_id = row[0]
        d["_dc_id"] = object_id
        d["_dc_class"] = row[1]
        d["_dc_version"] = row[2]
        for key, position in self.columns:
            d[key] = row[position]
        for name, position in self.refs:
            if row[position] is None:
                d[name] = None
        state = ObjectState(object_id, context, row[3], backend_uuid(row[4]), Lifecycle.PERSISTENT)
        d[STATE_ATTR] = state
        return obj, state


_backend_ids: dict[Any, UUID] = {}


def backend_uuid(raw: Any) -> UUID:
    """A backend id read without type processing (hex text on SQLite, a UUID on PostgreSQL):
    a handful of distinct values, so converted once each."""
    found = _backend_ids.get(raw)
    if found is None:
        found = raw if isinstance(raw, UUID) else UUID(str(raw))
        _backend_ids[raw] = found
    return found


def hydrate_rows(
    context: ObjectContext,
    rows: Iterable[Any],
    readers: Mapping[str, RowReader],
    missing_class: Callable[[Any], Exception],
) -> list[Any]:
    """The objects of rows shaped ``(_dc_id, _dc_class, _dc_version, _dc_dataset,
    _dc_backend_id, ...)``, as :func:`hydrate` makes them (through the identity map, or the
    unit of work's own copies), for a batch of rows at once.  ``readers`` by ``dc_class``;
    ``missing_class(row)`` is raised for a row of a class this program does not define."""
    from claystore.orm.transaction import current_transaction  # noqa: PLC0415 - cycle

    tx = current_transaction(context)
    uow = tx if tx is not None and tx.unit_of_work else None
    identity = context.identity
    lookup = context.lookup
    owned = uow.entries if uow is not None else {}
    fresh: list[tuple[UUID, Any]] = []
    out: list[Any] = []
    for row in rows:
        object_id = row[0]
        if uow is None:
            existing = identity.get(object_id)
        else:
            entry = owned.get(object_id)
            existing = entry.obj if entry is not None else None
            if existing is None and identity.get(object_id) is not None:
                existing = lookup(object_id)  # the client's object, if this unit of work can own it
        if existing is not None:
            out.append(existing)
            continue
        reader = readers.get(row[1])
        if reader is None:
            raise missing_class(row)
        obj, state = reader.build(context, row)
        if uow is not None:
            uow.adopt_loaded(obj, state)
        else:
            fresh.append((object_id, obj))
        out.append(obj)
    if fresh:
        winners = identity.add_all(fresh)
        if winners is not None:  # another thread registered some of them meanwhile
            out = [winners.get(id(o), o) for o in out]
    return out


_REGISTRY_SELECT = sa.select(
    dc_object.c.id, dc_object.c.class_name, dc_object.c.dataset, dc_object.c.backend_id
).where(dc_object.c.id.in_(sa.bindparam("ids", expanding=True)))
_meta_selects: dict[tuple[int, str], sa.Select[Any]] = {}


def meta_select(info: ModelInfo, by: str) -> sa.Select[Any]:
    """``row_select(info)`` joined with the registry (one query instead of two), selecting by
    ``ids`` (expanding), or by ``alias`` + ``dataset`` through ``dc_alias``."""
    key = (id(info), by)
    cached = _meta_selects.get(key)
    if cached is None:
        root = info.root.table
        base = row_select(info, many=True)
        source = info.selectable().join(dc_object, dc_object.c.id == root.c.id)
        if by == "alias":
            source = source.join(dc_alias, dc_alias.c.object_id == root.c.id)
            where = sa.and_(
                dc_alias.c.dataset == sa.bindparam("dataset"),
                dc_alias.c.name == sa.bindparam("alias"),
            )
        else:
            where = root.c.id.in_(sa.bindparam("ids", expanding=True))
        columns: list[Any] = [
            *base.selected_columns,
            dc_object.c.class_name.label("_dc_class_name"),
            dc_object.c.dataset.label("_dc_dataset"),
            dc_object.c.backend_id.label("_dc_backend_id"),
        ]
        cached = sa.select(*columns).select_from(source).where(where)
        _meta_selects[key] = cached
    return cached


def _hydrate_meta_rows(
    context: ObjectContext, info: ModelInfo, rows: Iterable[RowMapping], found: dict[UUID, Any]
) -> None:
    """Hydrate rows of :func:`meta_select` whose object is exactly of ``info``'s class."""
    for row in rows:
        if row["_dc_class_name"] == info.tablename:
            found[row["_dc_id"]] = hydrate(
                context, info, row, row["_dc_dataset"], row["_dc_backend_id"]
            )


def load_objects(
    conn: Connection,
    context: ObjectContext,
    ids: Iterable[UUID],
    hint: ModelInfo | None = None,
) -> dict[UUID, Any]:
    """The objects with these ids (missing ids — deleted objects — are left out).

    ``hint``: the class they most likely are (one query for those that are exactly of it);
    the others are found through the registry (one query, then one per class).
    """
    found: dict[UUID, Any] = {}
    missing: list[UUID] = []
    for object_id in dict.fromkeys(ids):
        obj = context.lookup(object_id)
        if obj is not None and obj.__dict__.get(STATE_ATTR) is not None:
            found[object_id] = obj
        else:
            missing.append(object_id)
    if missing and hint is not None:
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            rows = conn.execute(meta_select(hint, "ids"), {"ids": chunk}).mappings()
            _hydrate_meta_rows(context, hint, rows, found)
        missing = [i for i in missing if i not in found]
    for start in range(0, len(missing), _CHUNK):
        chunk = missing[start : start + _CHUNK]
        registry = conn.execute(_REGISTRY_SELECT, {"ids": chunk}).mappings().all()
        by_class: dict[str, list[Any]] = defaultdict(list)
        for meta in registry:
            by_class[meta["class_name"]].append(meta)
        for class_name, metas in by_class.items():
            info = info_for_table(class_name)
            if info is None:
                msg = (
                    f"object {metas[0]['id']} is stored in table {class_name!r}, but no model "
                    "class with that table is defined in this program; import its module"
                )
                raise MappingError(msg)
            meta_by_id = {m["id"]: m for m in metas}
            rows = conn.execute(row_select(info, many=True), {"ids": list(meta_by_id)}).mappings()
            for row in rows:
                meta = meta_by_id[row["_dc_id"]]
                found[row["_dc_id"]] = hydrate(
                    context, info, row, meta["dataset"], meta["backend_id"]
                )
    return found


def load_by_alias(
    conn: Connection, context: ObjectContext, dataset: str, alias: str, hint: ModelInfo | None
) -> Any:
    """The object named ``alias`` (one query when it is exactly of the ``hint`` class)."""
    if hint is not None:
        found: dict[UUID, Any] = {}
        rows = conn.execute(meta_select(hint, "alias"), {"dataset": dataset, "alias": alias})
        _hydrate_meta_rows(context, hint, rows.mappings(), found)
        if found:
            return next(iter(found.values()))
    return load_object(conn, context, aliases.lookup(conn, dataset, alias))


def load_object(
    conn: Connection, context: ObjectContext, object_id: UUID, hint: ModelInfo | None = None
) -> Any:
    """The object with this id; raises :class:`ObjectDoesNotExistError`."""
    obj = load_objects(conn, context, [object_id], hint).get(object_id)
    if obj is None:
        raise ObjectDoesNotExistError(object_id)
    return obj


def resolve_ref(conn: Connection, context: ObjectContext, obj: Any, field: Field) -> Any:
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
    target = load_objects(conn, context, [target_id], _hint(field)).get(target_id)
    d[field.name] = target
    return target


def _hint(field: Field) -> ModelInfo | None:
    """The class a reference most likely points to (its one declared target)."""
    targets = field.targets()
    if len(targets) == 1 and getattr(targets[0], "_dc_info", None) is not None:
        info: ModelInfo = targets[0]._dc_info  # type: ignore[attr-defined]
        return info
    return None


def load_link(
    conn: Connection, context: ObjectContext, info: ModelInfo, field: Field, owner_id: UUID
) -> Any:
    """A container-of-references field, read from its link table (deleted targets left out)."""
    table = info.link_table(field)
    kind = field.kind
    if kind is FieldKind.REF_DICT:
        statement = sa.select(table.c.key, table.c.target_id).where(table.c.owner_id == owner_id)
        pairs = [(r[0], r[1]) for r in conn.execute(statement.order_by(table.c.key))]
        objects = load_objects(conn, context, (t for _, t in pairs))
        return {k: objects[t] for k, t in pairs if t in objects}
    statement = sa.select(table.c.target_id).where(table.c.owner_id == owner_id)
    if kind in (FieldKind.REF_LIST, FieldKind.REF_TUPLE):
        statement = statement.order_by(table.c.position)
    ids = list(conn.execute(statement).scalars())
    objects = load_objects(conn, context, ids)
    items = [objects[t] for t in ids if t in objects]
    if kind is FieldKind.REF_TUPLE:
        return tuple(items)
    if kind is FieldKind.REF_SET:
        return set(items)
    return items


def read_field(  # noqa: PLR0911 - one return per kind of field
    conn: Connection,
    context: ObjectContext,
    obj: Any,
    state: ObjectState,
    field: Field,
    *,
    cache: bool,
) -> Any:
    """Read one field of a stored object from the database (committed state).

    With ``cache`` the values read are also kept in memory.  Containers come back as copies:
    changing them in place changes nothing stored (assign the container to store it).
    """
    info: ModelInfo = type(obj)._dc_info
    if field.kind.is_link:
        value = load_link(conn, context, info, field, state.object_id)
        if cache:
            obj.__dict__[field.name] = value
            return copy.copy(value)
        return value
    row = fetch_row(conn, context, info, state.object_id, lock=False)
    if row is None:
        raise ObjectDoesNotExistError(state.object_id, f"the {type(obj).__name__} was deleted")
    if field.kind is FieldKind.REF:
        target_id = row[field.key]
        if cache:
            apply_row(obj, info, row)
            return resolve_ref(conn, context, obj, field)
        if target_id is None:
            return None
        return load_objects(conn, context, [target_id]).get(target_id)
    if cache:
        apply_row(obj, info, row)
        value = obj.__dict__[field.key]
        return copy.deepcopy(value) if field.kind is FieldKind.JSON else value
    return row[field.key]


def read_values(
    conn: Connection, context: ObjectContext, obj: Any, state: ObjectState
) -> dict[str, Any]:
    """Every field of a stored object, read from the database in one row query plus one query
    per container of references."""
    info: ModelInfo = type(obj)._dc_info
    row = fetch_row(conn, context, info, state.object_id, lock=False)
    if row is None:
        raise ObjectDoesNotExistError(state.object_id, f"the {type(obj).__name__} was deleted")
    values: dict[str, Any] = {}
    ref_ids = [row[f.key] for f in info.column_fields if f.kind is FieldKind.REF and row[f.key]]
    targets = load_objects(conn, context, ref_ids) if ref_ids else {}
    for field in info.fields.values():
        if field.kind.is_link:
            values[field.name] = load_link(conn, context, info, field, state.object_id)
        elif field.kind is FieldKind.REF:
            values[field.name] = targets.get(row[field.key]) if row[field.key] else None
        else:
            values[field.name] = row[field.key]
    return values
