"""The object context: the "jar" every stored object belongs to, and the active-context lookup.

Owns :class:`ObjectContext` — one per client: its backends (a :class:`~claystore.orm.routing.
Router` of :class:`~claystore.orm.database.Database` objects, replaced when the client
restarts), dataset and user, the identity map, object
ownership between threads — with what stored objects call through their descriptors
(``read_field``, ``write_field``: the :class:`~claystore.orm.state.Jar` protocol) and what the
object API builds on: transactions (:meth:`ObjectContext.transaction`, ``begin``/``end``), and
reads (:meth:`ObjectContext.connection`, :meth:`ObjectContext.loading`,
:meth:`ObjectContext.read`, which repeats a read whose connection a server restart took).

Consistency (DESIGN §2): with no transaction open, every read of a stored field reads committed
state from the database and every assignment is its own committed transaction -- except that
while a query loop runs, the objects it yielded answer reads of their column fields from the
rows it loaded (``state.snapshot``: the read rule of query loops, docs/queries.md).  Inside a
transaction (an activemethod, a unit of work) owned objects are served from memory and
written at commit.

Also owns the context variables: the active context of the calling context (set by
``Client.start``), with a process-wide fallback to the most recently started one, so
``contextvars.copy_context().run(job)`` in a worker thread finds its client.

Called by :mod:`claystore.client` (creates one), the descriptors, and the object API.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from claystore.dialects.base import Dialect
from claystore.errors import (
    ClientNotStartedError,
    ConnectionLostError,
    ObjectDoesNotExistError,
    ObjectMovedError,
)
from claystore.orm.database import Database
from claystore.orm.fields import Field, FieldKind
from claystore.orm.identity import IdentityMap
from claystore.orm.loading import Loader
from claystore.orm.ownership import Ownership
from claystore.orm.routing import ReadRoute, Router
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState, stored_state
from claystore.orm.transaction import Transaction, current_transaction

T = TypeVar("T")

_active: ContextVar[ObjectContext | None] = ContextVar("claystore_context", default=None)
_fallback: list[ObjectContext] = []  # most recently started, for threads without a copied context
_fallback_lock = threading.Lock()
#: The fields a query loop's row holds (references and link containers are read afresh).
_ROW_KINDS = frozenset((FieldKind.SCALAR, FieldKind.JSON))


class ObjectContext:
    """Everything stored objects of one client share."""

    def __init__(
        self,
        router: Router,
        *,
        dataset: str,
        username: str | None,
        default_backend_id: UUID,
        lock_timeout: float,
        owner: Any = None,
    ) -> None:
        self.router = router
        self.dataset = dataset
        self.username = username
        self.default_backend_id = default_backend_id
        self.lock_timeout = lock_timeout
        self.owner = owner  # the Client, for messages
        self.identity = IdentityMap()
        self.ownership = Ownership(lock_timeout)
        self.is_open = True

    @property
    def database(self) -> Database:
        """The metadata database (the first backend)."""
        return self.router.metadata

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the client's metadata database."""
        return self.database.engine

    @property
    def dialect(self) -> Dialect:
        """The engine's dialect (what differs per database engine)."""
        return self.database.dialect

    def reopen(self, router: Router, *, default_backend_id: UUID) -> None:
        """Use new databases after a restart of the client (objects stay bound to this
        context)."""
        self.router = router
        self.default_backend_id = default_backend_id
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
        self.router.close()
        with _fallback_lock:
            if self in _fallback:
                _fallback.remove(self)
        if token is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                _active.reset(token)
        if _active.get() is self:
            _active.set(None)

    def check_open(self) -> None:
        """Raise :class:`~claystore.errors.ClientClosedError` if the client was stopped."""
        self.database.check_open()

    # -- transactions ----------------------------------------------------------------------------

    def begin(self, kind: type[Transaction] = Transaction) -> Transaction:
        """A new transaction of this thread (a :class:`Transaction`, or ``kind``: a
        :class:`~claystore.orm.sessionwork.UnitOfWork`), made current; its connection opens
        on first use.  End it with :meth:`end`."""
        self.check_open()
        tx = kind(
            self,
            self.router,
            self.identity,
            self.ownership,
            dataset=self.dataset,
            backend_id=self.default_backend_id,
        )
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
            raise self.database.translate(exc) from exc
        finally:
            Transaction.deactivate(tx.token)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """The current transaction of this thread, or a new one committed at exit (rolled back
        on an exception).  New write transactions take the engine's write lock up front."""
        tx = current_transaction(self)
        if tx is not None:
            try:
                yield tx
            except sa.exc.SQLAlchemyError as exc:
                raise self.database.translate(exc) from exc
            return
        tx = self.begin()
        try:
            yield tx
        except sa.exc.SQLAlchemyError as exc:
            self.end(tx, commit=False)
            raise self.database.translate(exc) from exc
        except BaseException:
            self.end(tx, commit=False)
            raise
        self.end(tx, commit=True)

    # -- reads -----------------------------------------------------------------------------------

    def loader(self, conn: Connection) -> Loader:
        """A loader on ``conn`` (a connection to the metadata database outside any
        transaction) into the client's identity map; it does not follow objects to other
        backends (:meth:`read` does)."""
        return Loader(conn, self, self.identity, self.dialect)

    def _routed(self, backend_id: UUID, load: Callable[[Loader], T]) -> T:
        """``load(loader)`` with the loader of a backend on a read route (objects on other
        backends are followed there), run once more if a connection was lost."""

        def once() -> T:
            with ReadRoute(self.router, self, self.identity) as route:
                return load(route.loader_for(backend_id))

        try:
            return once()
        except ConnectionLostError:
            return once()

    @contextlib.contextmanager
    def loading(self) -> Iterator[Loader]:
        """A loader of stored objects: the current transaction's (after
        :meth:`~claystore.orm.transaction.Transaction.prepare_read`: a unit of work flushes, so
        reads see its changes), else one on a short read into the client's identity map."""
        tx = current_transaction(self)
        if tx is not None:
            tx.prepare_read()
            yield tx.loader
            return
        with ReadRoute(self.router, self, self.identity) as route:
            yield route.loader_for(self.router.metadata_id)

    def read(self, load: Callable[[Loader], T]) -> T:
        """``load(loader)`` with the loader of :meth:`loading`.

        Outside a transaction it runs once more on a new connection if the first one was lost
        (a server restart): a read is safe to repeat.  In a transaction a lost connection ends
        the transaction, and is raised.
        """
        tx = current_transaction(self)
        if tx is not None:
            tx.prepare_read()
            return load(tx.loader)
        return self._routed(self.router.metadata_id, load)

    def locate(self, state: ObjectState) -> UUID:
        """The backend where a stored object is now (``state.backend_id`` is updated: another
        process may have moved it); raises :class:`ObjectDoesNotExistError` when it was
        deleted."""
        found = self._routed(state.backend_id, lambda loader: loader.locate(state.object_id))
        if found is None:
            raise ObjectDoesNotExistError(state.object_id, "it was deleted")
        state.backend_id = found
        return found

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """The connection :meth:`loading` reads on (the current transaction's, else a short
        read)."""
        with self.loading() as loader:
            yield loader.conn

    # -- what descriptors call (the Jar protocol) ------------------------------------------------

    def read_field(self, obj: Any, state: ObjectState, field: Field) -> Any:
        """Value of a stored object's field (see the module docstring for the rules)."""
        tx = current_transaction(self)
        if tx is not None:
            return tx.read_field(obj, state, field)
        snapshot = state.snapshot
        if snapshot is not None and field.kind in _ROW_KINDS:
            loop, row, position = snapshot
            if loop.serves():  # the running query loop's row (the read rule of query loops)
                value = row[position[field.key]]
                return copy.deepcopy(value) if field.kind is FieldKind.JSON else value
            if not loop.is_open:
                state.snapshot = None
        if state.lifecycle is not Lifecycle.PERSISTENT:
            raise ObjectDoesNotExistError(state.object_id, "it is being deleted")
        return self._routed(
            state.backend_id,
            lambda loader: loader.field(obj, state, field, cache=state.owner is None),
        )

    def write_field(self, obj: Any, state: ObjectState, field: Field, value: Any) -> None:
        """Assign a stored object's field: joins the open transaction, or commits at once (a
        transaction of its own, run once more on the object's new backend if another process
        moved it meanwhile)."""
        if current_transaction(self) is not None:
            with self.transaction() as tx:
                tx.write(obj, state, field, value)
            return
        try:
            with self.transaction() as tx:
                tx.write(obj, state, field, value)
        except ObjectMovedError:
            with self.transaction() as tx:
                tx.write(obj, state, field, value)


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


def set_active(context: ObjectContext | None) -> Any:
    """Make ``context`` the active one of the calling context only (no process fallback);
    returns a reset token (for :func:`~claystore.orm.state.reset_var`)."""
    return _active.set(context)


def context_of_state(state: ObjectState) -> ObjectContext:
    """The context a stored object's state belongs to, checked open."""
    context = state.context
    assert isinstance(context, ObjectContext)
    context.check_open()
    return context


def stored(obj: Any) -> tuple[ObjectState, ObjectContext]:
    """The state and the (open) context of a stored object; raises
    :class:`~claystore.errors.ObjectNotRegisteredError` for a transient or deleted one."""
    state = stored_state(obj)
    return state, context_of_state(state)


__all__ = [
    "STATE_ATTR",
    "ObjectContext",
    "active_context",
    "context_of_state",
    "set_active",
    "stored",
]
