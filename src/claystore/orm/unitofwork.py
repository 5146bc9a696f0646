"""Flush ordering: what a transaction writes, and in which order.

Owns :func:`flush`: it collects the changes of the objects a transaction owns (assigned
fields, containers changed in place), stages transient objects those changes made reachable,
writes every staged object in one batch (one bulk INSERT per table), adds pending aliases,
then writes the updates (one UPDATE per table and changed-column set).

In a unit of work, updates of objects loaded in it are optimistic: ``WHERE dc_version =
<as loaded>``; a row changed meanwhile by someone else raises :class:`VersionConflictError`
(the whole unit of work rolls back) instead of silently overwriting their change.

Called by :class:`claystore.orm.transaction.Transaction`; emits through
:mod:`claystore.orm.persistence`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from claystore.orm import aliases, persistence
from claystore.orm.fields import Field, FieldKind
from claystore.orm.graph import collect_transient
from claystore.orm.state import Lifecycle

if TYPE_CHECKING:
    from claystore.orm.transaction import OwnedEntry, Transaction


def baseline_of(field: Field, value: Any) -> Any:
    """A comparable copy of a container value, to find in-place changes later."""
    if value is None:
        return None
    kind = field.kind
    if kind is FieldKind.JSON:
        assert field.encode is not None
        return field.encode(value)
    if kind is FieldKind.REF_DICT:
        return {k: id(v) for k, v in value.items()}
    if kind is FieldKind.REF_SET:
        return frozenset(id(v) for v in value)
    return [id(v) for v in value]


def collect_changes(tx: Transaction) -> list[tuple[OwnedEntry, set[str]]]:
    """Every owned, already written object with changes, and the fields that changed."""
    changes: list[tuple[OwnedEntry, set[str]]] = []
    staged = tx.staged
    for object_id, entry in list(tx.entries.items()):
        if object_id in staged or entry.state.lifecycle is Lifecycle.DELETED:
            continue
        if not entry.dirty and not entry.baseline:
            continue
        if entry.obj is None:  # dropped unchanged: nothing to write
            continue
        dirty = entry.changed_fields()
        if dirty:
            changes.append((entry, dirty))
    return changes


def _changed_fields(
    changes: list[tuple[OwnedEntry, set[str]]],
) -> Iterator[tuple[OwnedEntry, dict[str, Any], Field]]:
    """(entry, instance dict, field) for every changed field."""
    for entry, dirty in changes:
        info = type(entry.obj)._dc_info
        d = entry.obj.__dict__
        for name in dirty:
            yield entry, d, info.fields[name]


def _reachable_roots(changes: list[tuple[OwnedEntry, set[str]]]) -> list[Any]:
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


def write_staged(tx: Transaction) -> None:
    """Write the rows of every staged object (and what they reach), then pending aliases."""
    if tx.staged:
        # staging walked each graph already; only objects changed since can reach new ones
        touched = [e.obj for i in tx.staged if (e := tx.entries.get(i)) is not None]
        more = collect_transient(touched, traverse_roots=True) if touched else []
        if more:
            persistence.stage_objects(tx, more)
        objects = list(tx.staged.values())
        persistence.insert_objects(tx, objects)
        tx.staged.clear()
        for obj in objects:
            entry = tx.entries.get(obj._dc_state.object_id)
            if entry is not None:
                entry.track_all()
    if tx.pending_aliases:
        pending, tx.pending_aliases = tx.pending_aliases, []
        for dataset, alias, obj in pending:
            aliases.add(tx.conn, dataset, alias, obj._dc_state.object_id)


def flush(tx: Transaction) -> None:
    """Write every pending change of ``tx`` (nothing is sent when there is none)."""
    changes = collect_changes(tx)
    if changes:
        roots = _reachable_roots(changes)
        if roots:
            new = collect_transient(roots)
            if new:
                persistence.stage_objects(tx, new)
    write_staged(tx)
    if not changes:
        return
    persistence.update_objects(tx, changes, check_versions=tx.unit_of_work)
    for entry, d, field in _changed_fields(changes):
        if field.kind is FieldKind.REF:
            target = d.get(field.name)
            d[field.key] = None if target is None else target._dc_state.object_id
        elif field.kind is FieldKind.JSON or field.kind.is_link:
            key = field.name if field.kind.is_link else field.key
            entry.baseline[field.name] = baseline_of(field, d.get(key))
    for entry, _ in changes:
        entry.clear_dirty()
