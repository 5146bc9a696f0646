"""One database transaction and the objects it holds: the core of every write.

Owns :class:`Transaction`.  Every operation that writes runs inside one: an autocommit
assignment (one short transaction), an activemethod (one transaction around the method, the
object locked), and — later — an explicit unit of work.  The transaction

- *owns* the objects it touches (``state.owner``): an owned object is served from memory
  within the transaction, and its changes are tracked there (assignments mark a field dirty;
  in-place changes to containers are found by comparing with the value loaded, the
  *baseline*);
- *flushes* the changes in batches (:mod:`claystore.orm.persistence`), storing transient
  objects that the changes made reachable;
- commits, moving NEW objects to PERSISTENT and DELETED ones to transient, or rolls back,
  turning NEW objects transient again and expiring what the transaction changed in memory, so
  nothing keeps a value the database does not have.

Ownership is exclusive between transactions of one client: a transaction that needs an object
another thread's transaction holds waits for it (up to the lock timeout).

Called by :mod:`claystore.orm.context` (which opens and ends transactions).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from claystore.errors import LockTimeoutError, ObjectDoesNotExistError
from claystore.orm import loading, persistence
from claystore.orm.fields import Field, FieldKind
from claystore.orm.graph import collect_transient
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState

if TYPE_CHECKING:
    from uuid import UUID

    from sqlalchemy.engine import Connection

    from claystore.orm.context import ObjectContext

_current: ContextVar[Transaction | None] = ContextVar("claystore_transaction", default=None)


def current_transaction(context: ObjectContext) -> Transaction | None:
    """The open transaction of ``context`` in this thread, if any.

    A transaction copied into another thread with ``contextvars.copy_context()`` is ignored
    there: a connection belongs to the thread that opened it.
    """
    tx = _current.get()
    if tx is None or tx.context is not context or not tx.is_active:
        return None
    if tx.thread_id != threading.get_ident():
        return None
    return tx


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


class OwnedEntry:
    """What a transaction tracks about one object it owns."""

    __slots__ = ("baseline", "dirty", "fresh", "obj", "state")

    def __init__(self, obj: Any, state: ObjectState) -> None:
        self.obj = obj
        self.state = state
        self.fresh: set[str] = set()  # fields whose memory value is current in this transaction
        self.dirty: set[str] = set()  # fields assigned and not yet flushed
        self.baseline: dict[str, Any] = {}  # container fields: value as loaded/flushed


class Transaction:
    """An open database transaction of one client context, in one thread."""

    def __init__(
        self, context: ObjectContext, conn: Connection, *, unit_of_work: bool = False
    ) -> None:
        self.context = context
        self.conn = conn
        self.unit_of_work = unit_of_work
        self.thread_id = threading.get_ident()
        self.entries: dict[UUID, OwnedEntry] = {}
        self.new: list[Any] = []
        self.deleted: list[Any] = []
        self.is_active = True

    def activate(self) -> Any:
        """Make this the current transaction of the calling context; returns a reset token."""
        return _current.set(self)

    @staticmethod
    def deactivate(token: Any) -> None:
        """Undo :meth:`activate`."""
        _current.reset(token)

    # -- ownership -------------------------------------------------------------------------

    def own(self, obj: Any, state: ObjectState, *, lock: bool = False) -> OwnedEntry:
        """Take ``obj`` into this transaction; with ``lock``, lock its row and load it fresh."""
        entry = self.entries.get(state.object_id)
        if entry is None:
            self._acquire(state)
            entry = OwnedEntry(obj, state)
            self.entries[state.object_id] = entry
            if lock:
                self._load_columns(entry, lock=True)
        elif lock and "_locked" not in entry.fresh:
            self._load_columns(entry, lock=True)
        return entry

    def _acquire(self, state: ObjectState) -> None:
        cond = self.context.ownership
        timeout = self.context.lock_timeout
        with cond:
            deadline = time.monotonic() + timeout
            while state.owner is not None and state.owner is not self and state.owner.is_active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = (
                        f"object {state.object_id} is held by another transaction of this client "
                        f"(thread {state.owner.thread_id}) for more than {timeout:g}s"
                    )
                    raise LockTimeoutError(msg)
                cond.wait(remaining)
            state.owner = self

    def _load_columns(self, entry: OwnedEntry, *, lock: bool = False) -> None:
        obj, state = entry.obj, entry.state
        info = type(obj)._dc_info
        row = loading.fetch_row(self.conn, self.context, info, state.object_id, lock=lock)
        if row is None:
            raise ObjectDoesNotExistError(state.object_id, f"the {type(obj).__name__} was deleted")
        keep = entry.dirty
        loading.apply_row(obj, info, row, skip=keep)
        for field in info.column_fields:
            entry.fresh.add(field.name)
            if field.kind is FieldKind.JSON and field.name not in keep:
                entry.baseline[field.name] = baseline_of(field, obj.__dict__.get(field.key))
        if lock:
            entry.fresh.add("_locked")

    # -- reading and writing owned objects ---------------------------------------------------

    def read(self, entry: OwnedEntry, field: Field) -> Any:
        """The value of an owned object's field, loaded once per transaction."""
        obj = entry.obj
        d = obj.__dict__
        name = field.name
        if name not in entry.fresh:
            if field.kind.is_link:
                info = type(obj)._dc_info
                value = loading.load_link(
                    self.conn, self.context, info, field, entry.state.object_id
                )
                d[name] = value
                entry.fresh.add(name)
                entry.baseline[name] = baseline_of(field, value)
            else:
                self._load_columns(entry)
        if field.kind is FieldKind.REF:
            return loading.resolve_ref(self.conn, self.context, obj, field)
        if field.kind.is_link:
            return d[name]
        return d[field.key]

    def write(self, entry: OwnedEntry, field: Field, value: Any) -> None:
        """Assign an owned object's field (checked already); flushed later."""
        d = entry.obj.__dict__
        if field.kind is FieldKind.REF:
            d[field.name] = value
            target_state = value.__dict__.get(STATE_ATTR) if value is not None else None
            d[field.key] = target_state.object_id if target_state is not None else None
        elif field.kind.is_link:
            d[field.name] = value
        else:
            d[field.key] = value
        entry.fresh.add(field.name)
        entry.dirty.add(field.name)

    # -- storing -----------------------------------------------------------------------------

    def persist(
        self, roots: list[Any], *, recursive: bool = True, backend_id: UUID | None = None
    ) -> list[Any]:
        """Store every transient object reachable from ``roots``; returns those stored."""
        objects = collect_transient(roots, recursive=recursive)
        if objects:
            persistence.insert_objects(self, objects, backend_id=backend_id)
        return objects

    def adopt_new(self, obj: Any, state: ObjectState) -> None:
        """Track an object this transaction has just inserted (all fields current)."""
        state.owner = self
        entry = OwnedEntry(obj, state)
        info = type(obj)._dc_info
        d = obj.__dict__
        for field in info.fields.values():
            entry.fresh.add(field.name)
            if field.kind is FieldKind.JSON:
                entry.baseline[field.name] = baseline_of(field, d.get(field.key))
            elif field.kind.is_link:
                entry.baseline[field.name] = baseline_of(field, d.get(field.name))
        self.entries[state.object_id] = entry
        self.new.append(obj)

    def delete(self, obj: Any, state: ObjectState) -> None:
        """Delete a stored object (its row, registry entry, aliases, and references to it)."""
        entry = self.own(obj, state)
        persistence.delete_objects(self, [entry])
        state.lifecycle = Lifecycle.DELETED
        entry.dirty.clear()
        self.deleted.append(obj)

    def collect_changes(self) -> list[tuple[OwnedEntry, set[str]]]:
        """Every owned object with changes to write, and the fields that changed."""
        changes: list[tuple[OwnedEntry, set[str]]] = []
        for entry in self.entries.values():
            if entry.state.lifecycle is Lifecycle.DELETED:
                continue
            dirty = set(entry.dirty)
            if entry.baseline:
                info = type(entry.obj)._dc_info
                d = entry.obj.__dict__
                for name, before in entry.baseline.items():
                    if name in dirty:
                        continue
                    field = info.fields[name]
                    current = d.get(field.name if field.kind.is_link else field.key)
                    if baseline_of(field, current) != before:
                        dirty.add(name)
            if dirty:
                changes.append((entry, dirty))
        return changes

    def flush(self) -> None:
        """Write every pending change: new reachable objects first, then batched updates."""
        changes = self.collect_changes()
        if not changes:
            return
        roots: list[Any] = []
        for entry, dirty in changes:
            info = type(entry.obj)._dc_info
            d = entry.obj.__dict__
            for name in dirty:
                field = info.fields[name]
                if field.kind is FieldKind.REF:
                    if d.get(name) is not None:
                        roots.append(d[name])
                elif field.kind.is_link:
                    value = d.get(name) or ()
                    roots.extend(value.values() if isinstance(value, dict) else value)
        self.persist(roots)
        persistence.update_objects(self, changes)
        for entry, dirty in changes:
            info = type(entry.obj)._dc_info
            d = entry.obj.__dict__
            for name in dirty:
                field = info.fields[name]
                if field.kind is FieldKind.REF:
                    target = d.get(name)
                    d[field.key] = None if target is None else target._dc_state.object_id
                elif field.kind is FieldKind.JSON or field.kind.is_link:
                    key = field.name if field.kind.is_link else field.key
                    entry.baseline[name] = baseline_of(field, d.get(key))
            entry.dirty.clear()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block under a SAVEPOINT: if it raises, only its own work is undone (in the
        database and in memory) and the transaction goes on."""
        self.flush()
        new_mark, deleted_mark = len(self.new), len(self.deleted)
        before = {object_id: set(entry.dirty) for object_id, entry in self.entries.items()}
        nested = self.conn.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            identity = self.context.identity
            undone = set()
            for obj in self.new[new_mark:]:
                state = obj.__dict__.pop(STATE_ATTR, None)
                if state is not None:
                    undone.add(state.object_id)
                    identity.discard(state.object_id)
                    self.entries.pop(state.object_id, None)
                    _forget_columns(obj)
            del self.new[new_mark:]
            for obj in self.deleted[deleted_mark:]:
                obj._dc_state.lifecycle = Lifecycle.PERSISTENT
            del self.deleted[deleted_mark:]
            for object_id, entry in list(self.entries.items()):
                if object_id not in before:
                    self.entries.pop(object_id)
                    if entry.state.owner is self:
                        entry.state.owner = None
                    _expire(entry)
                elif entry.dirty != before[object_id] or self._changed_in_place(entry):
                    _expire(entry)
                    entry.dirty.clear()
                    entry.fresh.clear()
                    entry.baseline.clear()
            raise
        else:
            if nested.is_active:
                nested.commit()

    def _changed_in_place(self, entry: OwnedEntry) -> bool:
        info = type(entry.obj)._dc_info
        d = entry.obj.__dict__
        for name, before in entry.baseline.items():
            field = info.fields[name]
            if baseline_of(field, d.get(field.name if field.kind.is_link else field.key)) != before:
                return True
        return False

    # -- ending ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Flush, commit, then settle object states."""
        self.flush()
        self.conn.commit()
        self.is_active = False
        identity = self.context.identity
        for obj in self.new:
            state = obj.__dict__.get(STATE_ATTR)
            if state is not None and state.lifecycle is Lifecycle.NEW:
                state.lifecycle = Lifecycle.PERSISTENT
        for obj in self.deleted:
            state = obj.__dict__.pop(STATE_ATTR, None)
            if state is not None:
                identity.discard(state.object_id)
                _forget_columns(obj)
        self._release()

    def rollback(self) -> None:
        """Roll back, then undo in memory what the transaction did."""
        try:
            self.conn.rollback()
        finally:
            self.is_active = False
            identity = self.context.identity
            new_ids = set()
            for obj in self.new:
                state = obj.__dict__.pop(STATE_ATTR, None)
                if state is not None:
                    new_ids.add(state.object_id)
                    identity.discard(state.object_id)
                    _forget_columns(obj)
            for object_id, entry in self.entries.items():
                if object_id in new_ids:
                    continue
                if entry.state.lifecycle is Lifecycle.DELETED:
                    entry.state.lifecycle = Lifecycle.PERSISTENT
                _expire(entry)
            self._release()

    def _release(self) -> None:
        cond = self.context.ownership
        with cond:
            for entry in self.entries.values():
                if entry.state.owner is self:
                    entry.state.owner = None
            cond.notify_all()


def _expire(entry: OwnedEntry) -> None:
    """Drop the memory values an undone transaction touched (they are reloaded on use)."""
    d = entry.obj.__dict__
    info = type(entry.obj)._dc_info
    for name in entry.fresh:
        field = info.fields.get(name)
        if field is None:
            continue
        d.pop(field.key, None)
        if field.kind is FieldKind.REF or field.kind.is_link:
            d.pop(field.name, None)


def _forget_columns(obj: Any) -> None:
    """An object that became transient again keeps its values, not its ids."""
    d = obj.__dict__
    for key in ("_dc_id", "_dc_class", "_dc_version"):
        d.pop(key, None)
    for field in type(obj)._dc_info.fields.values():
        if field.kind is FieldKind.REF:
            d.pop(field.key, None)
