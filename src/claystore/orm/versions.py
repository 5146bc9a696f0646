"""Versions as rows: ``new_version``, ``consolidate_version``, ``get_versions``, and the rule
for deleting objects that have versions (user guide: ``docs/versions.md``).

Owns :class:`VersionedObject`, the versioning part of the object API, mixed into
:class:`~claystore.orm.model.DataClayObject` (DESIGN §2 "Versions").

- A version is an ordinary stored object of the same class.  Its registry entry
  (``dc_object``) records ``original_id``, ``parent_id`` and ``parent_version`` (the parent's
  ``dc_version`` — raised by every write — when the version was taken).
- ``new_version()`` is shallow; ``recursive=True`` also versions every reachable object.
- ``consolidate_version()`` works on the version's *group* (the version and the versions it
  references, directly or through versions): it locks every member and ancestor in id order,
  refuses if an ancestor was written after its child was taken (unless ``force``), writes each
  member into each ancestor (references to members mapped to the ancestor of the same level),
  re-records intermediate versions as taken now, and deletes the group (retired, not kept).
  One transaction, or a savepoint of the open one: all of it or nothing.
- ``dc_delete()`` of an object with live versions is refused; of a version, discards its group.

Called by users through ``DataClayObject``; calls the object's context (one transaction per
operation), the transaction's loader and the registry table.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self, TypeVar
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.errors import (
    ObjectDoesNotExistError,
    ObjectHasVersionsError,
    ObjectIsNotVersionError,
    VersionConflictError,
)
from claystore.orm.asynctwin import async_twin
from claystore.orm.context import ObjectContext, stored
from claystore.orm.fields import Field, FieldKind
from claystore.orm.state import STATE_ATTR, ObjectState
from claystore.orm.system import dc_object
from claystore.orm.transaction import Transaction, current_transaction

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.orm.mapping import ModelInfo

Held = tuple[Any, ObjectState]  # a stored object and its state
R = TypeVar("R")
_CHUNK = 500


@attrs.frozen
class Lineage:
    """An object's version lineage, as the registry records it."""

    id: UUID
    parent_id: UUID | None
    original_id: UUID | None
    parent_version: int | None


@attrs.frozen
class Conflict:
    """An ancestor written after its child in a version's chain was taken."""

    member_id: UUID  # the version being consolidated (a member of the group)
    child_id: UUID  # the version taken from the ancestor (the member or an ancestor of it)
    ancestor_id: UUID
    level: int  # 1 = the member's parent
    recorded: int | None  # the ancestor's row version when the child was taken
    current: int


@attrs.define
class VersionGroup:
    """What a consolidation (or discard) of a version works on."""

    members: dict[UUID, Held]  # the version first, then the versions it references
    values: dict[UUID, dict[str, Any]]  # every field of every member
    chains: dict[UUID, list[UUID]]  # member -> [parent, ..., original]
    lineage: dict[UUID, Lineage]  # members and every ancestor
    ancestors: dict[UUID, Held]  # every ancestor of every member


class VersionedObject:
    """Versioning methods of model objects."""

    def new_version(self, recursive: bool = False) -> Self:
        """A new stored object of the same class with this object's values, recorded as a
        version of it (with this object's current row version).

        References in the version point to the same objects as here; with ``recursive`` every
        object reachable through references is versioned too and the version points to those
        versions.  Raises ObjectNotRegisteredError on a transient object.
        """
        state, context = stored(self)
        with _operation(context) as tx:
            version: Self = _branch(tx, self, state, recursive=recursive)
        return version

    def consolidate_version(self, force: bool = False) -> None:
        """Write this version's values into every ancestor up to the original, then retire
        (delete) the version — with the versions it references, which are consolidated into
        their own ancestors the same way.

        Raises VersionConflictError, writing nothing, if an ancestor changed after the version
        was taken, unless ``force``.  Raises ObjectIsNotVersionError on an object that is not a
        version and ObjectHasVersionsError if the version has live versions of its own.
        """
        state, context = stored(self)
        with _operation(context) as tx:
            _consolidate(tx, self, state, force=force)

    def get_versions(self) -> list[Self]:
        """The live versions of this object: its versions, their versions, ..., oldest first."""
        state, context = stored(self)
        with context.loading() as loading:
            loader = loading.at(state)  # versions live on their original's backend
            ids = _descendants(loader.conn, [state.object_id])
            found = loader.objects(ids)
        return [found[i] for i in ids if i in found]

    def _dc_before_delete(self, tx: Transaction, state: ObjectState) -> None:
        """Called by ``dc_delete`` inside its transaction ``tx``, before anything is deleted:
        refuse to delete an object that has live versions; deleting a version also discards
        the versions it references (its group, as ``new_version(recursive=True)`` made it)."""
        tx.flush()  # the group is read from the database
        conn = tx.conn_for(state.backend_id)
        lineage = _lineage(conn, [state.object_id]).get(state.object_id)
        members: dict[UUID, Held] = {state.object_id: (self, state)}
        if lineage is not None and lineage.parent_id is not None:
            members = _discover_group(tx, self, state).members
        _refuse_live_versions(conn, members, "deleted")
        for object_id, (obj, member_state) in members.items():
            if object_id != state.object_id:
                tx.delete(obj, member_state)

    a_new_version = async_twin(new_version)
    a_consolidate_version = async_twin(consolidate_version)
    a_get_versions = async_twin(get_versions)


# -- one operation -----------------------------------------------------------------------------


@contextlib.contextmanager
def _operation(context: ObjectContext) -> Iterator[Transaction]:
    """The transaction of one versioning operation: a new one, committed at exit; inside an
    open transaction (a session, an activemethod) a savepoint of it, so that a failure leaves
    nothing of the operation behind and the outer transaction goes on.  Its pending changes
    are flushed first: versions are read and compared as the database holds them."""
    outer = current_transaction(context)
    if outer is None:
        with context.transaction() as tx:
            yield tx
        return
    with outer.savepoint():
        outer.flush()
        yield outer


def _locked(
    tx: Transaction, discover: Callable[[], tuple[R, dict[UUID, Held]]], first: Held | None = None
) -> R:
    """Run ``discover`` until every object it needs locked is locked; its last result (read
    under the locks) is returned.  Rows are locked in id order, one order for every process,
    so two operations never wait for each other in a cycle."""
    locked: set[UUID] = set()
    if first is not None:
        tx.own(first[0], first[1], lock=True)
        locked.add(first[1].object_id)
    while True:
        result, needed = discover()
        pending = sorted(i for i in needed if i not in locked)
        if not pending:
            return result
        for object_id in pending:
            obj, state = needed[object_id]
            tx.own(obj, state, lock=True)
            locked.add(object_id)


# -- new_version ---------------------------------------------------------------------------------


def _branch(tx: Transaction, root: Any, root_state: ObjectState, *, recursive: bool) -> Any:
    """Store the version of ``root`` (and, ``recursive``, of everything it reaches)."""
    conn, loader = tx.conn_for(root_state.backend_id), tx.writer_for(root_state.backend_id)
    root_id = root_state.object_id

    Found = tuple[dict[UUID, dict[str, Any]], dict[UUID, Held]]

    def discover() -> tuple[Found, dict[UUID, Held]]:
        sources: dict[UUID, Held] = {root_id: (root, root_state)}
        values: dict[UUID, dict[str, Any]] = {}
        queue = [root_id]
        while queue:
            object_id = queue.pop()
            obj, state = sources[object_id]
            values[object_id] = loader.values(obj, state)
            if recursive:
                for target in _targets(obj, values[object_id]):
                    target_state = _state(target)
                    if target_state.object_id not in sources:
                        sources[target_state.object_id] = (target, target_state)
                        queue.append(target_state.object_id)
        return (values, sources), sources

    first = None if recursive else (root, root_state)
    values, sources = _locked(tx, discover, first)
    lineage = _lineage(conn, sources)
    row_versions = _row_versions(conn, sources.values())
    copies = {object_id: _blank(obj) for object_id, (obj, _) in sources.items()}

    def to_copy(target: Any) -> Any:
        return copies.get(_state(target).object_id, target)

    for object_id, field_values in values.items():
        version = copies[object_id]
        fields = _info(version).fields
        for name, value in field_values.items():
            setattr(version, name, _swap(fields[name], value, to_copy))
    tx.persist(list(copies.values()), recursive=False, backend_id=root_state.backend_id)
    tx.flush()  # a unit of work registers them only: their registry rows are updated below
    rows = []
    for object_id, version in copies.items():
        source_state = sources[object_id][1]
        version_state = _state(version)
        version_state.dataset = source_state.dataset
        rows.append(
            {
                "w_id": version_state.object_id,
                "original_id": lineage[object_id].original_id or object_id,
                "parent_id": object_id,
                "parent_version": row_versions[object_id],
                "dataset": source_state.dataset,
            }
        )
    conn.execute(
        sa.update(dc_object)
        .where(dc_object.c.id == sa.bindparam("w_id"))
        .values({c: sa.bindparam(c) for c in ("original_id", "parent_id", "parent_version")})
        .values(dataset=sa.bindparam("dataset")),
        rows,
    )
    return copies[root_id]


# -- consolidate_version -------------------------------------------------------------------------


def _consolidate(tx: Transaction, version: Any, state: ObjectState, *, force: bool) -> None:
    conn = tx.conn_for(state.backend_id)
    own = _lineage(conn, [state.object_id]).get(state.object_id)
    if own is None:
        raise ObjectDoesNotExistError(state.object_id, "it was deleted")
    if own.parent_id is None:
        raise ObjectIsNotVersionError(state.object_id)
    group = _locked(tx, lambda: _with_locks(_discover_group(tx, version, state)))
    _refuse_overlaps(version, group)
    _refuse_live_versions(conn, group.members, "consolidated")
    current = _row_versions(conn, group.ancestors.values())
    if not force:
        conflicts = _find_conflicts(group, current)
        if conflicts:
            raise VersionConflictError(_conflict_message(tx, version, group, conflicts))
    # write every member's values into each of its ancestors
    for member_id, chain in group.chains.items():
        values = group.values[member_id]
        fields = _info(group.members[member_id][0]).fields
        for level, ancestor_id in enumerate(chain, 1):
            obj, ancestor_state = group.ancestors[ancestor_id]
            tx.own(obj, ancestor_state, lock=True)
            for name, value in _level_values(group, fields, values, level).items():
                tx.write(obj, ancestor_state, fields[name], value)
    tx.flush()
    # intermediate versions now equal their parents: record them as taken now
    written = _row_versions(conn, group.ancestors.values())
    rows = [
        {"w_id": chain[i], "parent_version": written[chain[i + 1]]}
        for chain in group.chains.values()
        for i in range(len(chain) - 1)
    ]
    if rows:
        conn.execute(
            sa.update(dc_object)
            .where(dc_object.c.id == sa.bindparam("w_id"))
            .values(parent_version=sa.bindparam("parent_version")),
            rows,
        )
    for obj, member_state in group.members.values():  # retire the group
        tx.delete(obj, member_state)


def _with_locks(group: VersionGroup) -> tuple[VersionGroup, dict[UUID, Held]]:
    return group, {**group.members, **group.ancestors}


def _level_values(
    group: VersionGroup, fields: dict[str, Field], values: dict[str, Any], level: int
) -> dict[str, Any]:
    """A member's values as written into its ancestor at ``level`` (1 = parent): references
    to members become references to their ancestors of the same level (or their original)."""

    def back(target: Any) -> Any:
        chain = group.chains.get(_state(target).object_id)
        if chain is None:
            return target
        return group.ancestors[chain[min(level, len(chain)) - 1]][0]

    return {name: _swap(fields[name], value, back) for name, value in values.items()}


def _find_conflicts(group: VersionGroup, current: dict[UUID, int]) -> list[Conflict]:
    """Every ancestor written after its child in the chain was taken."""
    conflicts = []
    for member_id, chain in group.chains.items():
        child = member_id
        for level, ancestor_id in enumerate(chain, 1):
            recorded = group.lineage[child].parent_version
            if recorded != current[ancestor_id]:
                conflicts.append(
                    Conflict(member_id, child, ancestor_id, level, recorded, current[ancestor_id])
                )
            child = ancestor_id
    return conflicts


def _conflict_message(
    tx: Transaction, version: Any, group: VersionGroup, conflicts: list[Conflict]
) -> str:
    """Names each changed ancestor and the fields where it differs from what would be written."""
    lines = []
    for conflict in conflicts:
        fields = _info(group.members[conflict.member_id][0]).fields
        obj, ancestor_state = group.ancestors[conflict.ancestor_id]
        mine = _level_values(group, fields, group.values[conflict.member_id], conflict.level)
        theirs = tx.writer_for(ancestor_state.backend_id).values(obj, ancestor_state)
        differ = [
            n
            for n in fields
            if _comparable(fields[n], mine[n]) != _comparable(fields[n], theirs[n])
        ]
        what = f"fields that differ: {', '.join(differ)}" if differ else "no field differs now"
        lines.append(
            f"{type(obj).__name__} {conflict.ancestor_id} was written after version "
            f"{conflict.child_id} was taken from it (row version {conflict.current} now, "
            f"{conflict.recorded} then); {what}"
        )
    return (
        f"cannot consolidate version {_state(version).object_id} of {type(version).__name__}: "
        + "; ".join(lines)
        + ". Nothing was written. Take a new version and apply the changes again, or call "
        "consolidate_version(force=True) to overwrite those changes."
    )


def _refuse_overlaps(version: Any, group: VersionGroup) -> None:
    """Two members of one lineage (a version and its ancestor, or two versions of one object)
    would write one object twice: refuse."""
    seen: dict[UUID, UUID] = {}
    for member_id, chain in group.chains.items():
        for object_id in [member_id, *chain]:
            other = seen.setdefault(object_id, member_id)
            if other != member_id:
                msg = (
                    f"cannot consolidate version {_state(version).object_id}: it references "
                    f"versions {other} and {member_id}, which share the lineage of {object_id}; "
                    "consolidate one of them on its own first"
                )
                raise VersionConflictError(msg)


def _refuse_live_versions(conn: Connection, members: dict[UUID, Held], doing: str) -> None:
    children = _children(conn, members)
    for object_id, versions in children.items():
        others = [v for v in versions if v not in members]
        if others:
            obj = members[object_id][0]
            listed = ", ".join(str(v) for v in others)
            msg = (
                f"{type(obj).__name__} {object_id} cannot be {doing}: it has live versions "
                f"({listed}); consolidate_version() or dc_delete() each of them first"
            )
            raise ObjectHasVersionsError(msg)


# -- the group of a version ------------------------------------------------------------------------


def _discover_group(tx: Transaction, version: Any, state: ObjectState) -> VersionGroup:
    """The version, the versions it references (directly or through versions, but not its own
    ancestors), their values, lineage and ancestors — read in ``tx`` as it stands."""
    conn, loader = tx.conn_for(state.backend_id), tx.writer_for(state.backend_id)
    root_id = state.object_id
    root_chains, lineage = _ancestors(conn, [root_id])
    excluded = set(root_chains[root_id])
    members: dict[UUID, Held] = {root_id: (version, state)}
    values: dict[UUID, dict[str, Any]] = {}
    frontier = [root_id]
    while frontier:
        reached: dict[UUID, Held] = {}
        for object_id in frontier:
            obj, member_state = members[object_id]
            values[object_id] = loader.values(obj, member_state)
            for target in _targets(obj, values[object_id]):
                target_state = _state(target)
                target_id = target_state.object_id
                if target_id not in members and target_id not in excluded:
                    reached[target_id] = (target, target_state)
        known = _lineage(conn, reached)
        frontier = [i for i in reached if i in known and known[i].parent_id is not None]
        for object_id in frontier:
            members[object_id] = reached[object_id]
        excluded.update(i for i in reached if i not in frontier)
    other_chains, more = _ancestors(conn, [i for i in members if i != root_id])
    chains = {**root_chains, **other_chains}
    lineage.update(more)
    ancestor_ids = {i for chain in chains.values() for i in chain}
    objects = loader.objects(ancestor_ids)
    missing = ancestor_ids - objects.keys()
    if missing:
        raise ObjectDoesNotExistError(min(missing), "an ancestor of a version was deleted")
    ancestors = {i: (obj, _state(obj)) for i, obj in objects.items()}
    return VersionGroup(members, values, chains, lineage, ancestors)


# -- registry queries ------------------------------------------------------------------------------


def _chunks(ids: Iterable[UUID]) -> Iterator[list[UUID]]:
    items = list(ids)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _lineage(conn: Connection, ids: Iterable[UUID]) -> dict[UUID, Lineage]:
    """The registry lineage of these objects (missing ids — deleted objects — left out)."""
    c = dc_object.c
    found: dict[UUID, Lineage] = {}
    for chunk in _chunks(ids):
        statement = sa.select(c.id, c.parent_id, c.original_id, c.parent_version).where(
            c.id.in_(chunk)
        )
        for row in conn.execute(statement):
            found[row[0]] = Lineage(row[0], row[1], row[2], row[3])
    return found


def _ancestors(
    conn: Connection, ids: Iterable[UUID]
) -> tuple[dict[UUID, list[UUID]], dict[UUID, Lineage]]:
    """For each object, its chain of ancestors (parent first, original last), one registry
    query per level; and the lineage of every object met."""
    ids = list(ids)
    lineage = _lineage(conn, ids)
    chains: dict[UUID, list[UUID]] = {}
    for object_id in ids:
        if object_id not in lineage:
            raise ObjectDoesNotExistError(object_id, "it was deleted")
        chains[object_id] = []
    tips = {i: i for i in chains}
    while tips:
        parents: dict[UUID, UUID] = {}
        for member_id, tip in tips.items():
            parent_id = lineage[tip].parent_id
            if parent_id is not None:
                parents[member_id] = parent_id
        lineage.update(_lineage(conn, {p for p in parents.values() if p not in lineage}))
        for member_id, parent_id in parents.items():
            if parent_id not in lineage or parent_id in chains[member_id]:
                msg = f"the lineage of version {member_id} is broken at {parent_id}"
                raise ObjectDoesNotExistError(parent_id, msg)
            chains[member_id].append(parent_id)
        tips = parents
    return chains, lineage


def _children(conn: Connection, ids: Iterable[UUID]) -> dict[UUID, list[UUID]]:
    """The live versions taken from each of these objects."""
    found: dict[UUID, list[UUID]] = {}
    for chunk in _chunks(ids):
        statement = sa.select(dc_object.c.parent_id, dc_object.c.id).where(
            dc_object.c.parent_id.in_(chunk)
        )
        for parent_id, object_id in conn.execute(statement.order_by(dc_object.c.id)):
            found.setdefault(parent_id, []).append(object_id)
    return found


def _descendants(conn: Connection, ids: list[UUID]) -> list[UUID]:
    """Every live version taken from these objects, directly or not, in id (= creation) order."""
    found: set[UUID] = set()
    level = ids
    while level:
        level = [v for versions in _children(conn, level).values() for v in versions]
        level = [v for v in level if v not in found]
        found.update(level)
    return sorted(found)


def _row_versions(conn: Connection, objects: Iterable[Held]) -> dict[UUID, int]:
    """The current ``dc_version`` of each object's row (one query per root table)."""
    by_root: dict[sa.Table, list[UUID]] = {}
    for obj, state in objects:
        by_root.setdefault(_info(obj).root.table, []).append(state.object_id)
    found: dict[UUID, int] = {}
    for table, ids in by_root.items():
        for chunk in _chunks(ids):
            statement = sa.select(table.c.id, table.c.dc_version).where(table.c.id.in_(chunk))
            found.update({row[0]: row[1] for row in conn.execute(statement)})
    return found


# -- values ----------------------------------------------------------------------------------------


def _info(obj: Any) -> ModelInfo:
    info: ModelInfo = type(obj)._dc_info
    return info


def _blank(obj: Any) -> Any:
    """A new, empty instance of ``obj``'s class (``__init__`` is not called)."""
    mapper = _info(obj).mapper
    assert mapper is not None
    return mapper.class_manager.new_instance()


def _state(obj: Any) -> ObjectState:
    state: ObjectState = obj.__dict__[STATE_ATTR]
    return state


def _targets(obj: Any, values: dict[str, Any]) -> Iterator[Any]:
    """Every object ``values`` (all fields of ``obj``) references."""
    for field in _info(obj).ref_fields:
        value = values.get(field.name)
        if value is None:
            continue
        if field.kind is FieldKind.REF:
            yield value
        else:
            yield from value.values() if field.kind is FieldKind.REF_DICT else value


def _swap(field: Field, value: Any, mapper: Callable[[Any], Any]) -> Any:  # noqa: PLR0911 - one return per kind of field
    """A copy of a field value for another object, each reference passed through ``mapper``."""
    kind = field.kind
    if value is None:
        return None
    if kind is FieldKind.REF:
        return mapper(value)
    if kind is FieldKind.REF_DICT:
        return {k: mapper(v) for k, v in value.items()}
    if kind is FieldKind.REF_SET:
        return {mapper(v) for v in value}
    if kind is FieldKind.REF_TUPLE:
        return tuple(mapper(v) for v in value)
    if kind.is_link:
        return [mapper(v) for v in value]
    if kind is FieldKind.JSON:
        return copy.deepcopy(value)
    return value


def _comparable(field: Field, value: Any) -> Any:  # noqa: PLR0911 - one return per kind of field
    """A value that compares equal for equal field values (references by id)."""
    kind = field.kind
    if value is None:
        return None
    if kind is FieldKind.REF:
        return _state(value).object_id
    if kind is FieldKind.REF_DICT:
        return {k: _state(v).object_id for k, v in value.items()}
    if kind is FieldKind.REF_SET:
        return frozenset(_state(v).object_id for v in value)
    if kind.is_link:
        return [_state(v).object_id for v in value]
    if kind is FieldKind.JSON and field.encode is not None:
        return field.encode(value)
    return value
