"""The object context: the "jar" every stored object belongs to, and the active-context lookup.

Owns :class:`ObjectContext` — one per started client: the engine, the engine support, the
dataset and user, the identity map, object ownership between threads, and the tables known to
exist — with the operations stored objects call through their descriptors (``read_field``,
``write_field``) and those the object API builds on (``transaction``, ``reader``).

Consistency (DESIGN §2): with no transaction open, every read of a stored field reads committed
state from the database and every assignment is its own committed transaction.  Inside a
transaction (an activemethod, later a unit of work) owned objects are served from memory and
written at commit.

Also owns the context variables: the active context of the calling context (set by
``Client.start``), with a process-wide fallback to the most recently started one, so
``contextvars.copy_context().run(job)`` in a worker thread finds its client.

Called by :mod:`claystore.client` (creates one), the descriptors, and the object API.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from claystore.dialects.base import Dialect, translate_error
from claystore.errors import ClientClosedError, ClientNotStartedError, ObjectDoesNotExistError
from claystore.orm import loading, mapping
from claystore.orm.fields import Field
from claystore.orm.identity import IdentityMap
from claystore.orm.state import Lifecycle, ObjectState
from claystore.orm.transaction import Transaction, current_transaction

_active: ContextVar[ObjectContext | None] = ContextVar("claystore_context", default=None)
_fallback: list[ObjectContext] = []  # most recently started, for threads without a copied context
_fallback_lock = threading.Lock()


class ObjectContext:
    """Everything stored objects of one started client share."""

    def __init__(
        self,
        engine: Engine,
        dialect: Dialect,
        *,
        dataset: str,
        username: str | None,
        default_backend_id: UUID,
        lock_timeout: float,
        owner: Any = None,
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.dataset = dataset
        self.username = username
        self.default_backend_id = default_backend_id
        self.lock_timeout = lock_timeout
        self.owner = owner  # the Client, for messages
        self.identity = IdentityMap()
        self.ownership = threading.Condition()
        self.is_open = True
        self._created: set[str] = set()
        self._generation = -1
        self._ddl_lock = threading.Lock()
        # an in-memory SQLite database is one shared connection: use it one thread at a time
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if dialect.is_memory else contextlib.nullcontext()
        )

    def reopen(self, engine: Engine, *, default_backend_id: UUID) -> None:
        """Use a new engine after a restart of the client (objects stay bound to this context)."""
        self.engine = engine
        self.default_backend_id = default_backend_id
        self._created.clear()
        self._generation = -1
        self.is_open = True

    def __repr__(self) -> str:
        return f"<ObjectContext {self.dialect.describe()} dataset={self.dataset!r}>"

    # -- activation --------------------------------------------------------------------------

    def activate(self) -> Any:
        """Make this the active context of the calling context (and the process fallback)."""
        with _fallback_lock:
            if self in _fallback:
                _fallback.remove(self)
            _fallback.append(self)
        return _active.set(self)

    def deactivate(self, token: Any = None) -> None:
        """Stop being active (the object handles stay, bound to a closed context)."""
        self.is_open = False
        with _fallback_lock:
            if self in _fallback:
                _fallback.remove(self)
        if token is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                _active.reset(token)
        if _active.get() is self:
            _active.set(None)

    def check_open(self) -> None:
        """Raise :class:`ClientClosedError` if the client was stopped."""
        if not self.is_open:
            msg = (
                f"the client of {self.dialect.describe()} is stopped; start it again "
                "(client.start() or `with client:`) to use its objects"
            )
            raise ClientClosedError(msg)

    # -- connections and transactions ------------------------------------------------------------

    def _translate(self, exc: BaseException) -> BaseException:
        return translate_error(exc, self.dialect.url)

    @contextlib.contextmanager
    def reader(self) -> Iterator[Connection]:
        """A connection for a short read outside any transaction (committed state)."""
        self.check_open()
        self.ensure_tables()
        with self._serial:
            try:
                with self.engine.connect() as conn:
                    yield self.dialect.reader(conn)
            except sa.exc.SQLAlchemyError as exc:
                raise self._translate(exc) from exc

    def _open_write(self) -> Connection:
        """A connection with a write transaction begun (for :class:`Transaction`)."""
        self.check_open()
        self.ensure_tables()
        serial = self._serial
        serial.__enter__()
        try:
            conn = self.engine.connect()
            try:
                self.dialect.begin(conn, write=True, lock_timeout=self.lock_timeout)
            except BaseException:
                conn.close()
                raise
        except sa.exc.SQLAlchemyError as exc:
            serial.__exit__(None, None, None)
            raise self._translate(exc) from exc
        except BaseException:
            serial.__exit__(None, None, None)
            raise
        return conn

    def _close_write(self, conn: Connection) -> None:
        try:
            conn.close()
        finally:
            self._serial.__exit__(None, None, None)

    def begin(self, *, unit_of_work: bool = False) -> Transaction:
        """A new transaction of this thread, made current (its connection opens on first use).
        End it with :meth:`end`."""
        self.check_open()
        tx = Transaction(self, self._open_write, self._close_write, unit_of_work=unit_of_work)
        tx.token = tx.activate()
        return tx

    def end(self, tx: Transaction, *, commit: bool) -> None:
        """Commit (or roll back) a transaction from :meth:`begin` and make it not current."""
        try:
            if commit:
                try:
                    tx.commit()
                except BaseException:
                    tx.rollback()
                    raise
            else:
                tx.rollback()
        except sa.exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc
        finally:
            Transaction.deactivate(tx.token)

    @contextlib.contextmanager
    def transaction(self, *, unit_of_work: bool = False) -> Iterator[Transaction]:
        """The current transaction of this thread, or a new one committed at exit (rolled back
        on an exception).  New write transactions take the engine's write lock up front."""
        tx = current_transaction(self)
        if tx is not None:
            yield tx
            return
        tx = self.begin(unit_of_work=unit_of_work)
        try:
            yield tx
        except BaseException:
            self.end(tx, commit=False)
            raise
        self.end(tx, commit=True)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """The current transaction's connection if one is open here (pending changes of a unit
        of work are flushed first, so queries see them), else a reader."""
        tx = current_transaction(self)
        if tx is not None:
            if tx.unit_of_work:
                tx.flush()
            yield tx.conn
            return
        with self.reader() as conn:
            yield conn

    # -- identity ------------------------------------------------------------------------------

    def lookup(self, object_id: UUID) -> Any | None:
        """The live object with this id, as the calling code should see it.

        In a unit of work: its own copy, else the client's object if it can own it at once;
        None means "load a copy".  Elsewhere: the client's object.
        """
        tx = current_transaction(self)
        if tx is not None and tx.unit_of_work:
            entry = tx.entries.get(object_id)
            obj = entry.obj if entry is not None else None
            if obj is not None:
                return obj
            obj = self.identity.get(object_id)
            if obj is not None and obj.__dict__.get("_dc_state") is not None and tx.try_own(obj):
                return obj
            return None
        return self.identity.get(object_id)

    def register(self, object_id: UUID, obj: Any) -> Any:
        """Record a freshly loaded object; returns the object callers must use."""
        tx = current_transaction(self)
        if tx is not None and tx.unit_of_work:  # the unit of work's own copy, held weakly
            entry = tx.entries.get(object_id)
            existing = entry.obj if entry is not None else None
            if existing is not None:
                return existing
            tx.adopt_loaded(obj, obj.__dict__["_dc_state"])
            return obj
        return self.identity.add(object_id, obj)

    # -- tables ------------------------------------------------------------------------------

    def ensure_tables(self, conn: Connection | None = None) -> None:
        """CREATE the tables of model classes defined since the last check (cheap when none
        were).  With ``conn``, inside that transaction (DDL is transactional on both engines)."""
        generation = mapping.generation()
        if generation == self._generation:
            return
        with self._ddl_lock:
            tables = [t for t in mapping.metadata.sorted_tables if t.name not in self._created]
            if tables:
                if conn is not None:
                    self._create(conn, tables)
                else:
                    try:
                        with self._serial, self.engine.connect() as own:
                            self.dialect.begin(own, write=True, lock_timeout=self.lock_timeout)
                            self._create(own, tables)
                            own.commit()
                    except sa.exc.SQLAlchemyError as exc:
                        raise self._translate(exc) from exc
            self._generation = generation

    def _create(self, conn: Connection, tables: list[sa.Table]) -> None:
        self.dialect.lock_schema(conn)
        mapping.metadata.create_all(conn, tables=tables, checkfirst=True)
        self._created.update(t.name for t in tables)

    # -- what descriptors call ---------------------------------------------------------------

    def read_field(self, obj: Any, state: ObjectState, field: Field) -> Any:
        """Value of a stored object's field (see the module docstring for the rules)."""
        tx = current_transaction(self)
        if tx is not None:
            entry = tx.entries.get(state.object_id)
            if entry is None and tx.unit_of_work:
                entry = tx.own(obj, state)
            if entry is not None:
                return tx.read(entry, field)
            return loading.read_field(tx.conn, self, obj, state, field, cache=False)
        if state.lifecycle is not Lifecycle.PERSISTENT:
            raise ObjectDoesNotExistError(state.object_id, "it is being deleted")
        with self.reader() as conn:
            return loading.read_field(conn, self, obj, state, field, cache=state.owner is None)

    def write_field(self, obj: Any, state: ObjectState, field: Field, value: Any) -> None:
        """Assign a stored object's field: joins the open transaction, or commits at once."""
        with self.transaction() as tx:
            entry = tx.own(obj, state)
            tx.write(entry, field, value)


def active_context() -> ObjectContext:
    """The context of the active client (this context's, else the most recently started)."""
    context = _active.get()
    if context is not None and context.is_open:
        return context
    with _fallback_lock:
        if _fallback:
            return _fallback[-1]
    msg = (
        "no claystore client is started: wrap the code in `with Client(...):` "
        "or call client.start() first"
    )
    raise ClientNotStartedError(msg)


def context_of(obj: Any) -> ObjectContext:
    """The context a stored object belongs to (checked open), else the active one."""
    state: ObjectState | None = obj.__dict__.get("_dc_state")
    if state is None:
        return active_context()
    state.context.check_open()
    return state.context
