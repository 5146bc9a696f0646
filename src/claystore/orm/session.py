"""The explicit unit of work: ``with client.session() as session:``.

Owns :class:`Session`.  Inside a session, objects are loaded once and then served from memory
(the session's own identity scope; an object the program already holds is used as is when no
other thread's session holds it), assignments and in-place container changes are tracked, new
objects are registered and written in batches — one INSERT per table, one UPDATE per table and
changed-column set — before queries and at commit.  The block commits at exit or rolls back on
an exception: the database is untouched and the objects the session changed are expired (they
reload on next use); objects it created become transient again.  A ``session()`` opened inside
another is a savepoint.  Activemethods called inside a session join it.

Updates are optimistic: an object changed by someone else since the session loaded it raises
:class:`~claystore.errors.VersionConflictError` at flush instead of being overwritten.

Sessions belong to the thread that opened them.  Another thread reading an object a session
holds reads committed state; writing it waits until the session ends (up to the client's lock
timeout, then :class:`~claystore.errors.LockTimeoutError`).

Also owns :func:`transactional`, the decorator behind ``@client.transactional``, and
:func:`retry_on_conflict`, which runs a function in a session and runs it again, in a new one,
when the commit meets a :class:`~claystore.errors.VersionConflictError` (the correct
read-modify-write outside an activemethod: ``obj.n += 1`` in autocommit is a read and a
separate write, and concurrent ones lose updates).

Called by :meth:`claystore.Client.session`; runs a
:class:`~claystore.orm.sessionwork.UnitOfWork` begun and ended by its
:mod:`~claystore.orm.context`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, Protocol, Self, TypeVar
from uuid import UUID

from claystore.errors import ConfigurationError, SessionStateError, VersionConflictError
from claystore.orm.context import ObjectContext, active_context, stored
from claystore.orm.model import persist
from claystore.orm.sessionwork import UnitOfWork
from claystore.orm.state import STATE_ATTR
from claystore.orm.transaction import Transaction, current_transaction

P = ParamSpec("P")
R = TypeVar("R")


class Session:
    """A unit of work on one client (see the module docstring)."""

    def __init__(self, context: ObjectContext) -> None:
        self._context = context
        self._tx: Transaction | None = None
        self._savepoint: contextlib.AbstractContextManager[None] | None = None
        self._outer: Transaction | None = None

    # -- block -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        outer = current_transaction(self._context)
        if outer is not None:  # nested: a savepoint of the enclosing transaction
            self._outer = outer
            self._savepoint = outer.savepoint()
            self._savepoint.__enter__()
            return self
        self._tx = self._context.begin(UnitOfWork)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._savepoint is not None:
            savepoint, self._savepoint = self._savepoint, None
            savepoint.__exit__(exc_type, exc, tb)
            return
        tx, self._tx = self._tx, None
        if tx is not None:
            self._context.end(tx, commit=exc_type is None)

    @property
    def is_active(self) -> bool:
        """True inside the session's block."""
        return self._tx is not None or self._savepoint is not None

    def _current(self) -> Transaction:
        tx = self._tx or self._outer
        if tx is None or not self.is_active:
            msg = "the session is closed: use it inside its `with client.session():` block"
            raise SessionStateError(msg)
        if current_transaction(self._context) is not tx:
            msg = "a session belongs to the thread that opened it; open one per thread"
            raise SessionStateError(msg)
        return tx

    # -- managing it by hand ---------------------------------------------------------------

    def flush(self) -> None:
        """Write pending changes now (the transaction stays open)."""
        self._current().flush()

    def commit(self) -> None:
        """Commit what the session did so far; the session goes on in a new transaction."""
        tx = self._current()
        if self._savepoint is not None:
            tx.flush()
            return
        self._context.end(tx, commit=True)
        self._tx = self._context.begin(UnitOfWork)

    def rollback(self) -> None:
        """Undo what the session did so far; the session goes on in a new transaction."""
        tx = self._current()
        if self._savepoint is not None:
            msg = "roll back a nested session by raising out of its block"
            raise SessionStateError(msg)
        self._context.end(tx, commit=False)
        self._tx = self._context.begin(UnitOfWork)

    # -- objects ---------------------------------------------------------------------------

    def add(self, obj: Any, alias: str | None = None) -> None:
        """Register a new object (and what it references), written at the next flush; like
        ``obj.make_persistent(alias)`` in this session."""
        self._current()
        persist(self._context, [obj], alias=alias)

    def add_all(self, objects: list[Any]) -> None:
        """Register several new objects, written together at the next flush."""
        self._current()
        persist(self._context, list(objects))

    def delete(self, obj: Any) -> None:
        """Delete a stored object (in this session's transaction)."""
        obj.dc_delete()

    def get(self, cls: type[R], object_id: UUID | str) -> R:
        """The object of class ``cls`` with this id (loaded into the session)."""
        self._current()
        getter: Callable[[UUID | str], R] = cls.get_by_id  # type: ignore[attr-defined]
        return getter(object_id)

    def refresh(self, obj: Any) -> None:
        """Reload the object's fields from the database (pending changes to it are lost)."""
        tx = self._current()
        state, _ = stored(obj)
        tx.refresh(obj, state)

    def __contains__(self, obj: Any) -> bool:
        tx = self._tx or self._outer
        state = obj.__dict__.get(STATE_ATTR)
        return tx is not None and state is not None and state.object_id in tx.entries

    def __repr__(self) -> str:
        tx = self._tx or self._outer
        count = len(tx.entries) if tx is not None else 0
        status = "open" if self.is_active else "closed"
        return f"<Session {status}, {count} objects>"


def transactional(
    open_session: Callable[[], contextlib.AbstractContextManager[Any]],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator factory: run the decorated function inside ``open_session()``."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with open_session():
                return func(*args, **kwargs)

        return wrapper

    return decorate


class SessionOpener(Protocol):
    """What :func:`retry_on_conflict` opens its sessions with (a :class:`claystore.Client`)."""

    def session(self) -> Session:
        """A new session of this client."""


#: longest pause between two attempts of :func:`retry_on_conflict`, in seconds
MAX_RETRY_PAUSE = 0.5


def retry_on_conflict(
    func: Callable[[], R],
    *,
    attempts: int = 20,
    pause: float = 0.005,
    client: SessionOpener | None = None,
) -> R:
    """Run ``func()`` in a session of its own and return what it returns; when the session
    ends in :class:`~claystore.errors.VersionConflictError` (someone else changed an object it
    changed since it loaded it: nothing of it was written), run it again in a new session,
    up to ``attempts`` runs in all, then raise the last conflict.

    ``func`` reads and changes objects as usual (``counter.n += 1``): every run loads fresh
    state, so no update is lost however many threads or processes do the same.  Between runs
    it waits a random pause of up to ``pause`` seconds, doubled after each conflict (at most
    :data:`MAX_RETRY_PAUSE`), so that competing writers spread out.  ``client`` picks the
    client (default: the active one).  Other exceptions are raised at once, after the
    session rolled back.

    Optimistic: fine where conflicts are occasional.  For one row that many writers update all
    the time (a shared counter), an activemethod, which locks the row, wastes no runs.

    It must own its transaction: called inside an open session or activemethod, it raises
    :class:`~claystore.errors.SessionStateError` without running ``func``.
    """
    check_retry_arguments(attempts, pause)
    attempt = 1
    while True:
        session = client.session() if client is not None else Session(active_context())
        if current_transaction(session._context) is not None:
            msg = (
                "retry_on_conflict runs its function in a session of its own, and this thread "
                "is inside a session or an activemethod already: call it outside them"
            )
            raise SessionStateError(msg)
        try:
            with session:
                return func()
        except VersionConflictError:
            if attempt >= attempts:
                raise
        time.sleep(retry_pause(pause, attempt))
        attempt += 1


def check_retry_arguments(attempts: int, pause: float) -> None:
    """Refuse what :func:`retry_on_conflict` cannot use, naming it."""
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        msg = f"retry_on_conflict(attempts={attempts!r}): give a whole number of runs, 1 or more"
        raise ConfigurationError(msg)
    if isinstance(pause, bool) or not isinstance(pause, int | float) or not 0 <= pause < math.inf:
        msg = f"retry_on_conflict(pause={pause!r}): give a number of seconds, 0 or more"
        raise ConfigurationError(msg)


def retry_pause(pause: float, attempt: int) -> float:
    """The random pause after the ``attempt``-th conflicting run (doubling, capped)."""
    return random.uniform(0, min(pause * 2 ** (attempt - 1), MAX_RETRY_PAUSE))


__all__ = [
    "Session",
    "SessionOpener",
    "check_retry_arguments",
    "retry_on_conflict",
    "retry_pause",
    "transactional",
]
