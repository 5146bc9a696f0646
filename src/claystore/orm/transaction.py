"""One database transaction and the objects it holds: ownership, savepoints, commit, rollback.

Owns :class:`Transaction` -- whose unit-of-work form,
:class:`~claystore.orm.sessionwork.UnitOfWork`, has the same verbs (the mode is the type, never
a flag) -- :class:`Ownership` and the "current transaction" of the calling context.

Every operation that writes runs inside a transaction: an autocommit assignment (one short
:class:`Transaction`), an activemethod (one :class:`Transaction` around the method, the object
locked), and a unit of work (``client.session()``: a
:class:`~claystore.orm.sessionwork.UnitOfWork`).  A transaction

- opens its connections lazily, on first use (a session that never touches the database never
  takes a lock): one write transaction per backend it writes to or locks in, through the
  client's :class:`~claystore.orm.routing.Router`; objects on a backend it has not opened are
  read in committed state on a short read.  At commit the other backends commit first, the
  metadata database (aliases) last; object rows written to two or more backends commit as
  one, with a two-phase commit (:mod:`claystore.orm.twophase`), refused before they are
  written where a database cannot take part (:meth:`Transaction.will_write`);
- *owns* the objects it touches (``state.owner``): an owned object is served from memory
  within the transaction and its changes are tracked on its state (assignments mark a field
  dirty; in-place changes to containers are found by comparing with the baseline).  Ownership
  is exclusive between the transactions of one client (:class:`Ownership`): a transaction that
  needs an object another thread's transaction holds waits for it, up to the lock timeout;
- loads through a :class:`~claystore.orm.loading.Loader` on its connection, into its identity
  scope (the client's identity map; a unit of work is its own scope);
- *flushes* its changes through :mod:`claystore.orm.unitofwork` (tables are ensured first);
- commits, or rolls back and undoes in memory what it did, through the lifecycle transitions of
  :mod:`claystore.orm.state`; query rows still streaming on its connection are read into
  memory first (:class:`~claystore.orm.loading.RowStream`).

A unit of work differs in what it does, not in how it is driven (see
:mod:`claystore.orm.sessionwork`).

Created by :mod:`claystore.orm.context` (which begins and ends transactions).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from uuid import UUID

from claystore.orm import aliases, moving, persistence, twophase, unitofwork
from claystore.orm.fields import Field, FieldKind
from claystore.orm.graph import collect_transient
from claystore.orm.identity import IdentityMap, new_object_ids
from claystore.orm.loading import IdentityScope, Loader
from claystore.orm.loopguard import guard_connection, off_the_loop
from claystore.orm.ownership import Ownership
from claystore.orm.rowstream import Resume, RowStream
from claystore.orm.state import (
    STATE_ATTR,
    Jar,
    Lifecycle,
    ObjectState,
    current_strand,
    is_here,
    make_transient,
    mark_deleted,
    mark_persistent,
    stage_new,
    undelete,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, CursorResult
    from sqlalchemy.sql.base import Executable

    from claystore.dialects.base import Dialect
    from claystore.orm.routing import Router

__all__ = ["Ownership", "Transaction", "current_transaction"]

_current: ContextVar[Transaction | None] = ContextVar("claystore_transaction", default=None)


def current_transaction(context: object) -> Transaction | None:
    """The open transaction of ``context`` (a client's object context) in this thread, if any.

    A transaction copied into another thread with ``contextvars.copy_context()`` is ignored
    there: a connection belongs to the thread that opened it -- except an async session's,
    whose strand spans its task and its worker thread (:func:`~claystore.orm.state.strand`).
    """
    tx = _current.get()
    if tx is None or tx.context is not context or not tx.is_active:
        return None
    if tx.thread_id != threading.get_ident() and not is_here(tx.thread_id):
        return None
    return tx


class Transaction:
    """An open database transaction of one client, in one thread: one autocommit operation or
    one activemethod.  Loads go to the client's identity map; new objects and aliases are
    written when they are stored; changes to owned objects at the flush (commit)."""

    check_versions = False  # updates are not optimistic: the objects are locked or just read

    def __init__(
        self,
        context: Jar,
        router: Router,
        identity: IdentityMap,
        ownership: Ownership,
        *,
        dataset: str,
        backend_id: UUID,
    ) -> None:
        self.context = context  # the jar of the objects it stores
        self.router = router
        self.identity = identity
        self.ownership = ownership
        self.dataset = dataset
        self.backend_id = backend_id  # where new objects go unless told
        running_in = current_strand()  # an async session's strand, or None: this thread
        self.thread_id = threading.get_ident() if running_in is None else running_in.token
        self.loop_thread = None if running_in is None else running_in.loop_thread
        self.entries: dict[UUID, ObjectState] = {}  # the objects it owns
        self.new: list[Any] = []  # stored by this transaction (lifecycle NEW)
        self.staged: dict[UUID, Any] = {}  # NEW objects whose rows are not written yet
        self.pending_aliases: list[tuple[str, str, Any]] = []  # (dataset, alias, object)
        self.deleted: list[Any] = []
        self.is_active = True
        self.token: Any = None  # set by the context that made it current
        self._conns: dict[UUID, Connection] = {}  # write transactions, by backend
        self.written: dict[UUID, None] = {}  # backends it wrote object rows to, in order
        self._loaders: dict[UUID, Loader] = {}
        self._readers: contextlib.ExitStack | None = None
        self._streams: weakref.WeakSet[RowStream] = weakref.WeakSet()

    def __repr__(self) -> str:
        status = "open" if self.is_active else "ended"
        return f"<{type(self).__name__} {status}, {len(self.entries)} objects>"

    # -- connection ----------------------------------------------------------------------------

    @property
    def conn(self) -> Connection:
        """The transaction's connection to the metadata database (connected and begun on
        first use)."""
        return self.conn_for(self.router.metadata_id)

    def conn_for(self, backend_id: UUID) -> Connection:
        """The transaction's connection to a backend (connected and begun on first use)."""
        conn = self._conns.get(backend_id)
        if conn is None:
            loop_thread = self.loop_thread
            if loop_thread is not None:
                off_the_loop(loop_thread)
            conn = self._conns[backend_id] = self.router.database(backend_id).open_write()
            self._loaders.pop(backend_id, None)  # a reader's loader: write from now on
            if loop_thread is not None:
                guard_connection(conn, loop_thread)
        return conn

    def is_untouched(self) -> bool:
        """Whether nothing happened in this transaction yet: no connection, no object (ending
        it sends nothing)."""
        return not (
            self._conns
            or self._readers is not None
            or self.entries
            or self.new
            or self.staged
            or self.pending_aliases
            or self.deleted
        )

    def interrupt(self) -> None:
        """Stop the statements running on this transaction's connections (called from another
        thread when an async session's task is cancelled: the rollback follows at once, not
        after a lock wait)."""
        for backend_id, conn in list(self._conns.items()):
            if conn.closed or conn.invalidated:
                continue
            self.dialect_for(backend_id).interrupt(conn.connection.dbapi_connection)

    def dialect_for(self, backend_id: UUID) -> Dialect:
        """The dialect of a backend's database."""
        return self.router.database(backend_id).dialect

    @property
    def scope(self) -> IdentityScope:
        """Where objects loaded in this transaction are looked up and registered."""
        return self.identity

    @property
    def loader(self) -> Loader:
        """Loads objects on this transaction's connection to the metadata database, into its
        identity scope (objects on other backends are followed there)."""
        return self.writer_for(self.router.metadata_id)

    def writer_for(self, backend_id: UUID) -> Loader:
        """The loader on this transaction's connection to a backend (begun now if needed)."""
        conn = self.conn_for(backend_id)
        loader = self._loaders.get(backend_id)
        if loader is None or loader.conn is not conn:
            loader = self._loaders[backend_id] = self._new_loader(conn, backend_id)
        return loader

    def loader_for(self, backend_id: UUID, *, write: bool = False) -> Loader:
        """The loader of a backend: on this transaction's connection to it if it has one (or
        ``write``: begun now), else on a short read (committed state; no lock taken)."""
        if write:
            return self.writer_for(backend_id)
        loader = self._loaders.get(backend_id)
        if loader is not None:
            return loader
        if backend_id in self._conns:
            return self.writer_for(backend_id)
        if self._readers is None:
            self._readers = contextlib.ExitStack()
        loop_thread = self.loop_thread
        if loop_thread is not None:
            off_the_loop(loop_thread)
        conn = self._readers.enter_context(self.router.database(backend_id).reader())
        if loop_thread is not None:
            guard_connection(conn, loop_thread)
        loader = self._loaders[backend_id] = self._new_loader(conn, backend_id)
        return loader

    def _new_loader(self, conn: Connection, backend_id: UUID) -> Loader:
        dialect = self.router.database(backend_id).dialect
        return Loader(conn, self.context, self.scope, dialect, backend_id=backend_id, route=self)

    def backend_ids(self) -> list[UUID]:
        """Every backend, the metadata database first (a loader's route)."""
        return self.router.known()

    @property
    def shared(self) -> bool:
        """Whether the store has several backends (objects may move between them)."""
        return len(self.router.known()) > 1

    def settle(self, object_ids: Iterable[UUID]) -> bool:
        """Wait for the moves under way of these objects (a loader's route)."""
        return moving.settle(
            self.router, object_ids, timeout=self.ownership.lock_timeout, busy=set(self._conns)
        )

    def refresh_backends(self) -> bool:
        """Read the registered backends again (a loader's route)."""
        return self.router.refresh()

    def began(self, backend_id: UUID) -> bool:
        """Whether this transaction has begun a write transaction on a backend."""
        return backend_id in self._conns

    def stream(
        self,
        statement: Executable,
        chunk: int,
        backend_id: UUID | None = None,
        *,
        resume: Resume | None = None,
    ) -> RowStream:
        """Run a SELECT on this transaction's connection (to a backend; default: the metadata
        database), its rows fetched ``chunk`` at a time (a server-side cursor on PostgreSQL).
        ``resume``: how the stream goes on after this transaction ended (else the rows left
        are read into memory then)."""
        stream = RowStream(self.execute_streamed(statement, chunk, backend_id), self.loader, resume)
        self._streams.add(stream)
        return stream

    def continue_stream(
        self, stream: RowStream, statement: Executable, chunk: int
    ) -> CursorResult[Any]:
        """Run the rest of an earlier transaction's stream here (the metadata database); the
        stream is detached again when this transaction ends."""
        result = self.execute_streamed(statement, chunk)
        self.adopt_stream(stream)
        return result

    def adopt_stream(self, stream: RowStream) -> None:
        """Detach ``stream`` (an earlier transaction's) too when this transaction ends: its
        rows are being loaded into this one."""
        self._streams.add(stream)

    def execute_streamed(
        self, statement: Executable, chunk: int, backend_id: UUID | None = None
    ) -> CursorResult[Any]:
        """A SELECT's result on this transaction's connection, fetched ``chunk`` at a time."""
        conn = self.conn if backend_id is None else self.conn_for(backend_id)
        return conn.execute(statement, execution_options={"yield_per": chunk})

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

    def own(self, obj: Any, state: ObjectState, *, lock: bool = False) -> ObjectState:
        """Take ``obj`` into this transaction; with ``lock``, lock its row and load it fresh.
        Returns the state this transaction tracks the object with."""
        entry = self.entries.get(state.object_id)
        if entry is None:
            self.ownership.acquire(state, self)
            state.held = obj
            self.entries[state.object_id] = entry = state
            if state.lifecycle is Lifecycle.NEW:  # stored by this transaction
                state.track_all(obj)
                return state
        if lock and "_locked" not in entry.fresh and entry.object_id not in self.staged:
            self._load_columns(entry.obj, entry, lock=True)
        return entry

    def _load_columns(self, obj: Any, state: ObjectState, *, lock: bool = False) -> None:
        loader = self.writer_for(state.backend_id) if lock else self.loader_for(state.backend_id)
        loader.refresh(obj, state, lock=lock, skip=state.dirty)
        state.mark_loaded(obj)
        if lock:
            state.mark_fresh(("_locked",))

    def refresh(self, obj: Any, state: ObjectState) -> None:
        """Reload an object's fields from the database (pending changes to it are lost)."""
        entry = self.own(obj, state)
        entry.expire(entry.obj)
        self._load_columns(entry.obj, entry)

    # -- reading and writing -------------------------------------------------------------------

    def read_field(self, obj: Any, state: ObjectState, field: Field) -> Any:
        """A field of a stored object, read in this transaction: from memory if it owns the
        object, else committed state from the database (nothing cached)."""
        entry = self.entries.get(state.object_id)
        if entry is not None:
            return self.read(entry, field)
        return self.loader_for(state.backend_id).field(obj, state, field, cache=False)

    def read(self, entry: ObjectState, field: Field) -> Any:
        """The value of an owned object's field, loaded once per transaction."""
        obj = entry.obj
        d = obj.__dict__
        name = field.name
        if name not in entry.fresh:
            if field.kind.is_link:
                value = self.loader_for(entry.backend_id).link(type(obj)._dc_info, field, entry)
                d[name] = value
                entry.mark_fresh((name,))
                entry.set_baseline(field, value)
            else:
                self._load_columns(obj, entry)
        kind = field.kind
        if kind is FieldKind.REF:
            return self.loader.reference(obj, field)
        if kind.is_link:
            entry.hold()  # the caller may change the container in place
            return d[name]
        if kind is FieldKind.JSON:
            entry.hold()
        key = field.key
        if key not in d:  # a new object's field never assigned: its default, kept from now on
            if not field.has_default:
                msg = f"{type(obj).__name__!r} object has no value for field {name!r} yet"
                raise AttributeError(msg)
            d[key] = field.default_value()
        return d[key]

    def write(self, obj: Any, state: ObjectState, field: Field, value: Any) -> None:
        """Assign a field (checked already) of an object, owning it if needed; written at the
        next flush."""
        entry = self.own(obj, state)
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

    def prepare_read(self) -> None:
        """Before reading on this transaction's connection: nothing to do here (changes are
        written at commit; a unit of work flushes)."""

    def will_write(self, backend_ids: Iterable[UUID]) -> None:
        """Before object rows are written to these backends: with the backends written
        already, two or more make a commit across backends (:mod:`claystore.orm.twophase`),
        refused now -- before anything of this write is sent -- with
        :class:`~claystore.errors.CrossBackendTransactionError` where a database cannot take
        part in one.  Aliases (metadata database) do not count: they commit last."""
        new = [b for b in dict.fromkeys(backend_ids) if b not in self.written]
        if not new:
            return
        targets = [*self.written, *new]
        if len(targets) > 1:
            twophase.check_participants(self.router, targets)
        self.written.update(dict.fromkeys(new))

    # -- storing -----------------------------------------------------------------------------

    def _ensure_tables(self) -> None:
        """Create the tables of model classes defined since the transaction began, in it; and
        refuse to write objects of a class whose tables differ from it (checked when the class
        was defined after the client started)."""
        backends = {s.backend_id for s in self.entries.values() if s.dirty}
        backends.update(obj._dc_state.backend_id for obj in self.staged.values())
        for backend_id in backends:
            database = self.router.database(backend_id)
            if database.has_new_tables():
                database.ensure_tables(self.conn_for(backend_id))
            if database.drifted:
                written = {
                    type(obj)
                    for obj in self.staged.values()
                    if obj._dc_state.backend_id == backend_id
                }
                written.update(
                    type(state.obj)
                    for state in self.entries.values()
                    if state.dirty and state.backend_id == backend_id
                )
                database.refuse_drifted(written)

    def stage(self, objects: list[Any], backend_id: UUID | None = None) -> None:
        """Register transient objects as NEW objects of this transaction (ids, states, the
        identity map); their rows are written by the next flush (``staged`` until then)."""
        ids = new_object_ids(len(objects))
        backend = backend_id or self.backend_id
        stage_new(
            objects, ids, context=self.context, dataset=self.dataset, backend_id=backend, owner=self
        )
        pairs = list(zip(ids, objects, strict=True))
        self.identity.add_many(pairs)
        self.staged.update(pairs)
        self.new.extend(objects)

    def persist(
        self,
        roots: list[Any],
        *,
        recursive: bool = True,
        backend_id: UUID | None = None,
        alias: str | None = None,
    ) -> list[Any]:
        """Store every transient object reachable from ``roots`` now, and give the first root
        ``alias`` in this transaction's dataset; returns the objects stored."""
        objects = collect_transient(roots, recursive=recursive)
        if objects:
            self.stage(objects, backend_id)
            self._ensure_tables()
            unitofwork.write_staged(self)
        if alias is not None:
            aliases.add(self.conn, self.dataset, alias, roots[0]._dc_state.object_id)
        return objects

    def delete(self, obj: Any, state: ObjectState) -> None:
        """Delete a stored object (its row, registry entry, aliases, and references to it)."""
        self.flush()
        entry = self.own(obj, state)
        backend_id = entry.backend_id
        conn = self.conn_for(backend_id)
        if self.shared and persistence.strangers(
            conn, self.dialect_for(backend_id), backend_id, [entry.obj]
        ):
            unitofwork.refuse_moved(self, backend_id, [(entry.obj, entry, set())], entry.object_id)
        self.will_write([backend_id])
        persistence.delete_objects(conn, [entry.obj])
        aliases.forget_object(self.conn, entry.object_id)
        mark_deleted(entry)
        self.deleted.append(entry.obj)

    def flush(self) -> None:
        """Write every pending change (see :func:`claystore.orm.unitofwork.flush`)."""
        self._ensure_tables()
        unitofwork.flush(self)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block under a SAVEPOINT: if it raises, only its own work is undone (in the
        database and in memory) and the transaction goes on."""
        self.flush()
        new_mark, deleted_mark = len(self.new), len(self.deleted)
        before = {object_id: set(state.dirty) for object_id, state in list(self.entries.items())}
        self.conn  # noqa: B018 - the metadata database's savepoint, as before backends
        nested = {backend_id: conn.begin_nested() for backend_id, conn in self._conns.items()}
        try:
            yield
        except BaseException:
            for backend_id in list(self._conns):
                if backend_id in nested:
                    nested[backend_id].rollback()
                else:  # opened inside the block: all its work is the block's
                    self._drop(backend_id)
            self._undo_since(new_mark, deleted_mark, before)
            raise
        else:
            self.flush()
            for savepoint in nested.values():
                if savepoint.is_active:
                    savepoint.commit()

    def _drop(self, backend_id: UUID) -> None:
        """Roll back and close this transaction's connection to a backend."""
        conn = self._conns.pop(backend_id)
        self._loaders.pop(backend_id, None)
        self.written.pop(backend_id, None)
        try:
            conn.rollback()
        finally:
            self.router.database(backend_id).close_write(conn)

    def _undo_since(self, new_mark: int, deleted_mark: int, before: dict[UUID, set[str]]) -> None:
        self.pending_aliases.clear()  # the savepoint began with a flush: all are its own
        for obj in self.new[new_mark:]:
            state = make_transient(obj)
            if state is not None:
                self.identity.discard(state.object_id)
                self.entries.pop(state.object_id, None)
                self.staged.pop(state.object_id, None)
        del self.new[new_mark:]
        for obj in self.deleted[deleted_mark:]:
            undelete(obj._dc_state)
        del self.deleted[deleted_mark:]
        released = []
        for object_id, state in list(self.entries.items()):
            obj = state.obj
            if obj is None:
                continue
            if object_id not in before:  # taken inside the savepoint: let go of it
                self.entries.pop(object_id)
                released.append(state)
                state.expire(obj)
            elif state.dirty != before[object_id] or state.changed_fields(obj):
                state.expire(obj)
        self.ownership.release(released, self)

    # -- ending ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Flush, commit, then settle object states (the connection is closed).  Object rows
        written to several backends commit as one (:func:`claystore.orm.twophase.commit`);
        then the other connections commit, the metadata database (aliases) last."""
        self.flush()
        self._detach_streams()
        metadata_id = self.router.metadata_id
        conns = self._conns
        done = [b for b in self.written if b in conns]
        if len(done) > 1:
            meta = conns.get(metadata_id)
            meta_written = meta is not None and self.dialect_for(metadata_id).has_written(meta)
            if metadata_id not in done and meta_written:
                done.append(metadata_id)  # its aliases commit with the objects
            twophase.commit(self.router, conns, done)
        else:
            done = []
        for backend_id, conn in conns.items():  # the metadata database (aliases) last
            if backend_id != metadata_id and backend_id not in done:
                conn.commit()
        if metadata_id in conns and metadata_id not in done:
            conns[metadata_id].commit()
        self.is_active = False
        self._settle_committed()
        self._release()

    def _settle_committed(self) -> None:
        """After the COMMIT: NEW objects are persistent, deleted ones transient."""
        mark_persistent(self.new)
        for obj in self.deleted:
            state = make_transient(obj)
            if state is not None:
                self.identity.discard(state.object_id)

    def rollback(self) -> None:
        """Roll back, then undo in memory what the transaction did."""
        try:
            self._detach_streams()
            errors = []
            for conn in self._conns.values():
                try:
                    conn.rollback()
                except Exception as exc:  # the others are rolled back all the same
                    errors.append(exc)
            if errors:
                raise errors[0]
        finally:
            self.is_active = False
            new_ids = set()
            for obj in self.new:
                state = make_transient(obj)
                if state is not None:
                    new_ids.add(state.object_id)
                    self.identity.discard(state.object_id)
            for object_id, state in list(self.entries.items()):
                obj = state.obj
                if object_id in new_ids or obj is None or state.owner is not self:
                    continue
                undelete(state)
                state.expire(obj)
            self._release()

    def _release(self) -> None:
        # a copy: a weakly held object collected meanwhile removes its entry
        self.ownership.release(list(self.entries.values()), self, self.new)
        conns, self._conns = self._conns, {}
        self._loaders = {}
        readers, self._readers = self._readers, None
        try:
            if readers is not None:
                readers.close()
        finally:
            for backend_id, conn in conns.items():
                self.router.database(backend_id).close_write(conn)
