"""Flush ordering: what a transaction writes, and in which order.

Owns :func:`flush`: it collects the changes of the objects a transaction owns (assigned
fields, containers changed in place; changed containers are checked again, since they are
live), stages the transient objects those changes made reachable, writes every staged object
in one batch (one bulk INSERT per table), adds pending aliases, then writes the updates (one
UPDATE per table and changed-column set), and finally records what was written as the new
baseline.

In a unit of work (``work.check_versions``), updates are optimistic: ``WHERE dc_version =
<as loaded>``; a row changed meanwhile by someone else raises :class:`VersionConflictError`
(the whole unit of work rolls back) instead of silently overwriting their change.

Rows go to each object's backend (``state.backend_id``), one batch per backend; aliases to
the metadata database; the transaction is told every backend a flush writes object rows to
before anything is sent (``will_write``: it refuses a commit across backends it cannot make).
The transaction being flushed is seen through :class:`Work`; its
tables exist already (the transaction ensures them before it calls here).  Called by
:class:`claystore.orm.transaction.Transaction`; emits through
:mod:`claystore.orm.persistence`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

from claystore.errors import ObjectDoesNotExistError, ObjectMovedError
from claystore.orm import aliases, persistence
from claystore.orm.fields import Field, FieldKind
from claystore.orm.graph import collect_transient
from claystore.orm.persistence import Change
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState, check_containers

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.dialects.base import Dialect
    from claystore.orm.loading import Loader

T = TypeVar("T")


class Work(Protocol):
    """What a flush reads and calls on the transaction it flushes."""

    check_versions: bool  # optimistic updates (a unit of work)
    entries: dict[UUID, ObjectState]  # the objects it owns
    staged: dict[UUID, Any]  # NEW objects whose rows are not written yet
    pending_aliases: list[tuple[str, str, Any]]  # (dataset, alias, object)

    @property
    def conn(self) -> Connection:
        """The transaction's connection to the metadata database (aliases)."""

    def conn_for(self, backend_id: UUID) -> Connection:
        """The transaction's connection to a backend."""

    def dialect_for(self, backend_id: UUID) -> Dialect:
        """The dialect of a backend's database."""

    @property
    def shared(self) -> bool:
        """Whether the store has several backends (objects may move between them)."""

    def loader_for(self, backend_id: UUID) -> Loader:
        """The loader of a backend in this transaction."""

    def stage(self, objects: list[Any], backend_id: UUID | None = None) -> None:
        """Register transient objects as NEW objects of the transaction (written here), on
        ``backend_id`` (default: the transaction's)."""

    def will_write(self, backend_ids: Iterable[UUID]) -> None:
        """Called before object rows are written to these backends (raises to refuse)."""


def by_backend(
    items: list[T], key: Callable[[T], ObjectState] | None = None
) -> dict[UUID, list[T]]:
    """``items`` (objects, or what ``key`` gives the state of) grouped by backend, in order."""
    groups: dict[UUID, list[T]] = {}
    for item in items:
        state = key(item) if key is not None else item.__dict__[STATE_ATTR]
        groups.setdefault(state.backend_id, []).append(item)
    return groups


def refuse_moved(work: Work, backend_id: UUID, group: list[Change], object_id: Any) -> None:
    """Raise :class:`ObjectMovedError` when an object of ``group`` that is not (or no longer)
    on ``backend_id`` moved to another backend meanwhile (its state then names the new one,
    for the transaction run again); return when it was deleted."""
    for obj, state, _ in group:
        if state.object_id != object_id:
            continue
        moved_to = work.loader_for(backend_id).locate(state.object_id)
        if moved_to is not None and moved_to != backend_id:
            state.backend_id = moved_to
            msg = (
                f"{type(obj).__name__} {state.object_id} moved to another backend while this "
                "transaction wrote it (another process ran move()); nothing was written: run "
                "the transaction again"
            )
            raise ObjectMovedError(msg)
        if moved_to is None:
            msg = f"the {type(obj).__name__} was deleted by someone else"
            raise ObjectDoesNotExistError(state.object_id, msg)


def collect_changes(work: Work) -> list[Change]:
    """Every owned, already written object with changes, and the fields that changed."""
    changes: list[Change] = []
    staged = work.staged
    for object_id, state in list(work.entries.items()):
        if object_id in staged or state.lifecycle is Lifecycle.DELETED:
            continue
        if not state.dirty and not state.baseline:
            continue
        obj = state.obj
        if obj is None:  # dropped unchanged: nothing to write
            continue
        dirty = state.changed_fields(obj)
        if dirty:
            fields = type(obj)._dc_info.fields
            containers = [
                f for n in dirty if (f := fields[n]).kind is FieldKind.JSON or f.kind.is_link
            ]
            if containers:
                check_containers(obj, containers)
            changes.append((obj, state, dirty))
    return changes


def _changed_fields(changes: list[Change]) -> Iterator[tuple[ObjectState, dict[str, Any], Field]]:
    """(state, instance dict, field) for every changed field."""
    for obj, state, dirty in changes:
        fields = type(obj)._dc_info.fields
        d = obj.__dict__
        for name in dirty:
            yield state, d, fields[name]


def _reachable_roots(changes: list[Change]) -> list[Any]:
    """The objects the changed reference fields now point to."""
    roots: list[Any] = []
    for _, d, field in _changed_fields(changes):
        if field.kind is FieldKind.REF:
            if d.get(field.name) is not None:
                roots.append(d[field.name])
        elif field.kind.is_link:
            value = d.get(field.name) or ()
            roots.extend(value.values() if isinstance(value, dict) else value)
    return roots


def _check_new_containers(objects: list[Any]) -> None:
    """Check the containers (JSON fields, dicts of references) of new objects before their
    rows are written."""
    containers: dict[type, list[Field]] = {}
    for obj in objects:
        fields = containers.get(type(obj))
        if fields is None:
            info = type(obj)._dc_info
            keyed = (f for f in info.link_fields if f.kind is FieldKind.REF_DICT)
            fields = containers[type(obj)] = [*info.json_fields, *keyed]
        if fields:
            check_containers(obj, fields)


def write_staged(work: Work, updating: Iterable[UUID] = ()) -> None:
    """Write the rows of every staged object (and what they reach), then pending aliases.
    Before anything is sent, ``work.will_write`` is told every backend written to: those of
    the staged objects and ``updating`` (those the caller updates next)."""
    objects: list[Any] = []
    entries = work.entries
    if work.staged:
        # staging walked each graph already; only objects changed since can reach new ones
        touched = [s.obj for i in work.staged if (s := entries.get(i)) is not None]
        for backend_id, group in by_backend(touched).items():  # new objects: their finder's
            more = collect_transient(group, traverse_roots=True)
            if more:
                work.stage(more, backend_id)
        objects = list(work.staged.values())
        _check_new_containers(objects)
    groups = by_backend(objects)
    if groups or updating:
        work.will_write([*groups, *updating])
    if objects:
        for backend_id, group in groups.items():
            persistence.insert_objects(
                work.conn_for(backend_id), work.dialect_for(backend_id), group
            )
        work.staged.clear()
        for obj in objects:
            state = entries.get(obj._dc_state.object_id)
            if state is not None:
                state.track_all(obj)
    if work.pending_aliases:
        pending, work.pending_aliases = work.pending_aliases, []
        for dataset, alias, obj in pending:
            aliases.add(work.conn, dataset, alias, obj._dc_state.object_id)


def flush(work: Work) -> None:
    """Write every pending change of ``work`` (nothing is sent when there is none)."""
    changes = collect_changes(work)  # checks changed containers again before anything is sent
    for backend_id, group in by_backend(changes, key=lambda c: c[1]).items():
        roots = _reachable_roots(group)  # new objects they reach go to their backend
        if roots:
            new = collect_transient(roots)
            if new:
                work.stage(new, backend_id)
    write_staged(work, by_backend(changes, key=lambda c: c[1]))
    if not changes:
        return
    for backend_id, group in by_backend(changes, key=lambda c: c[1]).items():
        if work.shared:  # the rows may have moved since they were read: never write a copy
            conn = work.conn_for(backend_id)
            objects = [obj for obj, _, _ in group]
            for object_id in persistence.strangers(
                conn, work.dialect_for(backend_id), backend_id, objects
            ):
                refuse_moved(work, backend_id, group, object_id)
        try:
            persistence.update_objects(
                work.conn_for(backend_id),
                work.dialect_for(backend_id),
                group,
                check_versions=work.check_versions,
            )
        except ObjectDoesNotExistError as exc:
            refuse_moved(work, backend_id, group, exc.object_id)
            raise
    for state, d, field in _changed_fields(changes):  # what is stored now is the baseline
        if field.kind is FieldKind.REF:
            target = d.get(field.name)
            d[field.key] = None if target is None else target._dc_state.object_id
        elif field.kind is FieldKind.JSON or field.kind.is_link:
            state.set_baseline(field, d.get(field.name if field.kind.is_link else field.key))
    for _, state, _ in changes:
        state.clear_dirty()
