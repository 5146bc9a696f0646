"""One database transaction and the objects it holds: the core of every write.

Owns :class:`Transaction`.  Every operation that writes runs inside one: an autocommit
assignment (one short transaction), an activemethod (one transaction around the method, the
object locked), and a unit of work (``client.session()``).  The transaction

- opens its connection lazily, on first use (a session that never touches the database never
  takes a lock);
- *owns* the objects it touches (``state.owner``): an owned object is served from memory
  within the transaction, and its changes are tracked there (assignments mark a field dirty;
  in-place changes to containers are found by comparing with the value loaded, the
  *baseline*).  A unit of work also owns what it loads, in its own identity scope;
- *flushes* the changes through :mod:`claystore.orm.unitofwork`;
- commits, moving NEW objects to PERSISTENT and DELETED ones to transient, or rolls back,
  turning NEW objects transient again and expiring what the transaction changed in memory, so
  nothing keeps a value the database does not have;
- streams query rows on its connection (:class:`RowStream`); a stream still open when the
  transaction ends reads its remaining rows into memory first, so a loop that commits a
  session every N objects goes on over the rest of its query.

Ownership is exclusive between transactions of one client: a transaction that needs an object
another thread's transaction holds waits for it (up to the lock timeout).

Called by :mod:`claystore.orm.context` (which opens and ends transactions) and the session.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from claystore.errors import LockTimeoutError, ObjectDoesNotExistError
from claystore.orm import loading, persistence, unitofwork
from claystore.orm.fields import Field, FieldKind
from claystore.orm.graph import collect_transient
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState
from claystore.orm.unitofwork import baseline_of

if TYPE_CHECKING:
    from uuid import UUID

    from sqlalchemy.engine import Connection, CursorResult
    from sqlalchemy.sql.base import Executable

    from claystore.orm.context import ObjectContext

_current: ContextVar[Transaction | None] = ContextVar("claystore_transaction", default=None)
_NOTHING: frozenset[str] = frozenset()


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


class OwnedEntry:
    """What a transaction tracks about one object it owns.

    The entry holds its object strongly, except for objects a unit of work loaded and nobody
    has changed: those are held weakly (as SQLAlchemy's identity map does), so streaming a
    large query through a session keeps memory bounded.  Assigning a field, or handing out a
    container to change in place, makes the hold strong until the transaction ends.
    """

    __slots__ = ("_ref", "_strong", "baseline", "dirty", "fresh", "loaded_version", "state")

    def __init__(self, obj: Any, state: ObjectState, ref: weakref.ref[Any] | None = None) -> None:
        self._strong: Any = None if ref is not None else obj
        self._ref = ref
        self.state = state
        # fields whose memory value is current in this transaction, and fields assigned and not
        # yet flushed: shared frozen sets until they change (most loaded objects never do, and
        # two sets per object would double what the garbage collector walks while loading)
        self.fresh: set[str] | frozenset[str] = _NOTHING
        self.dirty: set[str] | frozenset[str] = _NOTHING
        self.baseline: dict[str, Any] = {}  # container fields: value as loaded/flushed
        self.loaded_version: int | None = None  # dc_version as loaded in this transaction

    def mark_fresh(self, names: Iterable[str]) -> None:
        """These fields' memory values are current in this transaction."""
        fresh = self.fresh
        if isinstance(fresh, frozenset):  # shared: copy on first change
            fresh = self.fresh = set(fresh)
        fresh.update(names)

    def clear_dirty(self) -> None:
        """No field is waiting to be flushed any more."""
        self.dirty = _NOTHING

    def mark_dirty(self, name: str) -> None:
        """Record that the field ``name`` was assigned and is not flushed yet."""
        dirty = self.dirty
        if isinstance(dirty, frozenset):
            self.dirty = {name, *dirty}
        else:
            dirty.add(name)

    @property
    def obj(self) -> Any:
        """The object (None once a weakly held, unchanged object was dropped)."""
        strong = self._strong
        if strong is not None:
            return strong
        return self._ref() if self._ref is not None else None

    def hold(self) -> None:
        """Keep the object alive until the transaction ends (it has, or may get, changes)."""
        if self._strong is None and self._ref is not None:
            self._strong = self._ref()

    def track_all(self) -> None:
        """Every field of the object is current (it was just inserted)."""
        info = type(self.obj)._dc_info
        d = self.obj.__dict__
        self.dirty = _NOTHING
        if self.fresh:
            self.mark_fresh(info.field_names)
        else:
            self.fresh = info.field_names  # shared (frozen) until something is added
        for field in info.fields.values():
            if field.kind is FieldKind.JSON:
                self.baseline[field.name] = baseline_of(field, d.get(field.key))
            elif field.kind.is_link:
                self.baseline[field.name] = baseline_of(field, d.get(field.name))

    def changed_fields(self) -> set[str]:
        """Fields assigned, plus containers changed in place since their baseline."""
        dirty = set(self.dirty)
        obj = self.obj
        if self.baseline and obj is not None:
            info = type(obj)._dc_info
            d = obj.__dict__
            for name, before in self.baseline.items():
                if name in dirty:
                    continue
                field = info.fields[name]
                current = d.get(field.name if field.kind.is_link else field.key)
                if baseline_of(field, current) != before:
                    dirty.add(name)
        return dirty

    def expire(self) -> None:
        """Forget what this transaction loaded or changed (it is reloaded on use)."""
        obj = self.obj
        if obj is None:
            return
        d = obj.__dict__
        info = type(obj)._dc_info
        for name in self.fresh:
            field = info.fields.get(name)
            if field is None:
                continue
            d.pop(field.key, None)
            if field.kind is FieldKind.REF or field.kind.is_link:
                d.pop(field.name, None)
        self.fresh = _NOTHING
        self.dirty = _NOTHING
        self.baseline.clear()
        self.loaded_version = None


class RowStream:
    """The rows of one SELECT running on a transaction's connection, fetched in chunks.

    :meth:`detach` (called when the transaction ends) reads the rows not fetched yet into
    memory and closes the cursor, so iteration goes on after a commit or rollback.
    """

    __slots__ = ("__weakref__", "_error", "_rest", "_result")

    def __init__(self, result: CursorResult[Any]) -> None:
        self._result: CursorResult[Any] | None = result
        self._rest: list[Any] | None = None
        self._error: BaseException | None = None

    def batches(self, size: int) -> Iterator[Sequence[Any]]:
        """The rows, ``size`` at a time."""
        while True:
            if self._rest is not None:
                if self._error is not None:
                    raise self._error
                rest, self._rest = self._rest, []
                for start in range(0, len(rest), size):
                    yield rest[start : start + size]
                return
            if self._result is None:
                return
            part = self._result.fetchmany(size)
            if not part:
                return
            yield part

    def detach(self) -> None:
        """Read the remaining rows now (the connection is about to end its transaction)."""
        result, self._result = self._result, None
        if result is None or self._rest is not None:
            return
        try:
            self._rest = list(result.fetchall())  # reading to the end closes the cursor
        except Exception as exc:  # kept: raised to the code iterating, not at the commit
            self._rest, self._error = [], exc
            with contextlib.suppress(Exception):  # a broken connection: its error is kept above
                result.close()

    def close(self) -> None:
        """Stop: free the cursor (rows not read are dropped)."""
        result, self._result = self._result, None
        self._rest = []
        if result is not None:
            result.close()


def _forgetter(entries: dict[UUID, OwnedEntry]) -> Callable[[weakref.KeyedRef[UUID, Any]], None]:
    """The callback that drops the entry of a weakly held object once it is collected."""

    def forget(ref: weakref.KeyedRef[UUID, Any]) -> None:
        current = entries.get(ref.key)
        if current is not None and current.obj is None:
            del entries[ref.key]

    return forget


class Transaction:
    """An open database transaction of one client context, in one thread."""

    def __init__(
        self,
        context: ObjectContext,
        opener: Callable[[], Connection],
        closer: Callable[[Connection], None],
        *,
        unit_of_work: bool = False,
    ) -> None:
        self.context = context
        self.unit_of_work = unit_of_work
        self.thread_id = threading.get_ident()
        self.entries: dict[UUID, OwnedEntry] = {}
        self.new: list[Any] = []  # inserted or staged by this transaction (lifecycle NEW)
        self.staged: dict[UUID, Any] = {}  # NEW objects whose rows are not written yet
        self.pending_aliases: list[tuple[str, str, Any]] = []  # (dataset, alias, object)
        self.deleted: list[Any] = []
        self.is_active = True
        self._opener = opener
        self._closer = closer
        self._conn: Connection | None = None
        self.token: Any = None  # set by the context that made it current
        self._forget: Callable[[weakref.KeyedRef[UUID, Any]], None] | None = None
        self._streams: weakref.WeakSet[RowStream] = weakref.WeakSet()

    @property
    def conn(self) -> Connection:
        """The transaction's connection (connected and begun on first use)."""
        if self._conn is None:
            self._conn = self._opener()
        return self._conn

    @property
    def has_connection(self) -> bool:
        """True once the transaction has touched the database."""
        return self._conn is not None

    def stream(self, statement: Executable, chunk: int) -> RowStream:
        """Run a SELECT on this transaction's connection, its rows fetched ``chunk`` at a time
        (a server-side cursor on PostgreSQL)."""
        result = self.conn.execute(statement, execution_options={"yield_per": chunk})
        stream = RowStream(result)
        self._streams.add(stream)
        return stream

    def _detach_streams(self) -> None:
        for stream in list(self._streams):
            stream.detach()
        self._streams.clear()

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
            if state.lifecycle is Lifecycle.NEW:  # inserted/staged by this transaction
                entry.track_all()
                return entry
        if lock and "_locked" not in entry.fresh and state.object_id not in self.staged:
            self._load_columns(entry, lock=True)
        return entry

    def try_own(self, obj: Any) -> bool:
        """Own ``obj`` if no other open transaction holds it (never waits)."""
        state: ObjectState = obj.__dict__[STATE_ATTR]
        with self.context.ownership:
            owner = state.owner
            if owner is not None and owner is not self and owner.is_active:
                return False
            state.owner = self
        if state.object_id not in self.entries:
            self.entries[state.object_id] = OwnedEntry(obj, state)
        return True

    def adopt_loaded(self, obj: Any, state: ObjectState) -> None:
        """Track an object this unit of work has just loaded (its columns are current); it is
        held weakly until something changes it."""
        state.owner = self
        object_id = state.object_id
        forget = self._forget
        if forget is None:
            forget = self._forget = _forgetter(self.entries)
        entry = OwnedEntry(obj, state, weakref.KeyedRef(obj, forget, object_id))
        self._mark_columns_fresh(entry)
        self.entries[object_id] = entry

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
        loading.apply_row(obj, info, row, skip=entry.dirty)
        self._mark_columns_fresh(entry)
        if lock:
            entry.mark_fresh(("_locked",))

    @staticmethod
    def _mark_columns_fresh(entry: OwnedEntry) -> None:
        d = entry.obj.__dict__
        info = type(entry.obj)._dc_info
        entry.loaded_version = d.get("_dc_version")
        if entry.fresh:
            entry.mark_fresh(info.column_field_names)
        else:
            entry.fresh = info.column_field_names  # shared (frozen) until something is added
        for field in info.json_fields:
            if field.name not in entry.dirty:
                entry.baseline[field.name] = baseline_of(field, d.get(field.key))

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
                entry.mark_fresh((name,))
                entry.baseline[name] = baseline_of(field, value)
            else:
                self._load_columns(entry)
        kind = field.kind
        if kind is FieldKind.REF:
            return loading.resolve_ref(self.conn, self.context, obj, field)
        if kind.is_link:
            entry.hold()  # the caller may change the container in place
            return d[name]
        if kind is FieldKind.JSON:
            entry.hold()
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
        entry.mark_fresh((field.name,))
        entry.mark_dirty(field.name)
        entry.hold()

    # -- storing -----------------------------------------------------------------------------

    def persist(
        self,
        roots: list[Any],
        *,
        recursive: bool = True,
        backend_id: UUID | None = None,
        defer: bool = False,
    ) -> list[Any]:
        """Store every transient object reachable from ``roots``; returns them.

        With ``defer`` (a unit of work) they are registered now and written at the next flush.
        """
        objects = collect_transient(roots, recursive=recursive)
        if objects:
            persistence.stage_objects(self, objects, backend_id=backend_id)
            if not defer:
                unitofwork.write_staged(self)
        return objects

    def delete(self, obj: Any, state: ObjectState) -> None:
        """Delete a stored object (its row, registry entry, aliases, and references to it)."""
        unitofwork.flush(self)
        entry = self.own(obj, state)
        persistence.delete_objects(self, [entry])
        state.lifecycle = Lifecycle.DELETED
        entry.clear_dirty()
        self.deleted.append(obj)

    def flush(self) -> None:
        """Write every pending change (see :func:`claystore.orm.unitofwork.flush`)."""
        unitofwork.flush(self)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block under a SAVEPOINT: if it raises, only its own work is undone (in the
        database and in memory) and the transaction goes on."""
        self.flush()
        new_mark, deleted_mark = len(self.new), len(self.deleted)
        before = {object_id: set(entry.dirty) for object_id, entry in list(self.entries.items())}
        nested = self.conn.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            self._undo_since(new_mark, deleted_mark, before)
            raise
        else:
            self.flush()
            if nested.is_active:
                nested.commit()

    def _undo_since(self, new_mark: int, deleted_mark: int, before: dict[UUID, set[str]]) -> None:
        identity = self.context.identity
        self.pending_aliases.clear()  # the savepoint began with a flush: all are its own
        for obj in self.new[new_mark:]:
            state = obj.__dict__.pop(STATE_ATTR, None)
            if state is not None:
                identity.discard(state.object_id)
                self.entries.pop(state.object_id, None)
                self.staged.pop(state.object_id, None)
                _forget_columns(obj)
        del self.new[new_mark:]
        for obj in self.deleted[deleted_mark:]:
            obj._dc_state.lifecycle = Lifecycle.PERSISTENT
        del self.deleted[deleted_mark:]
        released = []
        for object_id, entry in list(self.entries.items()):
            if entry.obj is None:
                continue
            if object_id not in before:
                self.entries.pop(object_id)
                released.append(entry.state)
                entry.expire()
            elif entry.dirty != before[object_id] or entry.changed_fields():
                entry.expire()
        with self.context.ownership:
            for state in released:
                if state.owner is self:
                    state.owner = None
            self.context.ownership.notify_all()

    # -- ending ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Flush, commit, then settle object states (the connection is closed)."""
        self.flush()
        self._detach_streams()
        if self._conn is not None:
            self._conn.commit()
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
        if self.unit_of_work:  # what this unit of work loaded joins the client's map
            for entry in list(self.entries.values()):
                obj = entry.obj
                if obj is not None and entry.state.lifecycle is Lifecycle.PERSISTENT:
                    identity.add(entry.state.object_id, obj)
        self._release()

    def rollback(self) -> None:
        """Roll back, then undo in memory what the transaction did."""
        try:
            self._detach_streams()
            if self._conn is not None:
                self._conn.rollback()
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
            for object_id, entry in list(self.entries.items()):
                if object_id in new_ids or entry.obj is None:
                    continue
                if entry.state.lifecycle is Lifecycle.DELETED:
                    entry.state.lifecycle = Lifecycle.PERSISTENT
                entry.expire()
            self._release()

    def _release(self) -> None:
        cond = self.context.ownership
        with cond:
            for entry in list(self.entries.values()):
                if entry.state.owner is self:
                    entry.state.owner = None
            for obj in self.new:
                state = obj.__dict__.get(STATE_ATTR)
                if state is not None and state.owner is self:
                    state.owner = None
            cond.notify_all()
        conn, self._conn = self._conn, None
        if conn is not None:
            self._closer(conn)


def _forget_columns(obj: Any) -> None:
    """An object that became transient again keeps its values, not its ids."""
    d = obj.__dict__
    for key in ("_dc_id", "_dc_class", "_dc_version"):
        d.pop(key, None)
    for field in type(obj)._dc_info.fields.values():
        if field.kind is FieldKind.REF:
            d.pop(field.key, None)
