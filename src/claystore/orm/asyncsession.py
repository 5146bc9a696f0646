"""The unit of work for coroutines: ``async with client.a_session() as session:``.

Owns :class:`AsyncSession`.  It is a :class:`~claystore.orm.session.Session` driven from a
coroutine: its transaction, its loads, its flushes and its commit run on the session's own
worker thread (:class:`~claystore.orm.asynctwin.Runner`, leased for the session's life), never
on the event loop.  The task that opened it and that thread act as one caller (one *strand*,
:func:`~claystore.orm.state.strand`): objects the session loaded answer attribute reads and
take assignments in the task, from memory, without awaiting; what needs the database is
awaited (``a_`` methods: ``await Model.a_get_by_alias(...)``, ``await obj.a_deposit(10)``,
``await session.a_commit()``; ``async for`` over ``query.a_iter()``).  A statement the event
loop's thread would run inside the session is refused with
:class:`~claystore.errors.SessionStateError` (a field not loaded yet is loaded with
``await session.a_load(obj, "field")``; blocking code runs with ``await session.run(f)``).

The block commits at exit, or rolls back on an exception -- cancellation included (a client
that went away, a timeout): the rollback waits for a call still running on the worker, then
the connection goes back to its pool and the cancellation goes on.  An ``async with
client.a_session()`` inside another of the same task is a savepoint.

One session serves one task: calls from several tasks sharing it are run one at a time, in the
order they come, and interleave inside its single transaction -- give each task its own.

Called by :meth:`claystore.Client.a_session`; drives :class:`~claystore.orm.session.Session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from uuid import UUID

from claystore.errors import ConfigurationError, SessionStateError, VersionConflictError
from claystore.orm.asynctwin import Runner, current_runner, set_runner
from claystore.orm.context import ObjectContext, active_context, set_active
from claystore.orm.session import Session, check_retry_arguments, retry_pause
from claystore.orm.state import STATE_ATTR, Strand, reset_var, set_strand
from claystore.orm.transaction import Transaction

R = TypeVar("R")

__all__ = ["AsyncSession", "a_retry_on_conflict"]


class AsyncSession:
    """A unit of work of one client for one task (see the module docstring)."""

    def __init__(self, context: ObjectContext) -> None:
        self._context = context
        self._runner: Runner | None = None
        self._session: Session | None = None
        # the task's context variables it set (None: a nested session, on its outer's runner)
        self._tokens: tuple[Any, Any, Any, Any] | None = None

    # -- block -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._session is not None:
            msg = "this async session is open already: open a new one with client.a_session()"
            raise SessionStateError(msg)
        self._context.check_open()
        outer = current_runner()
        if outer is not None and outer.owner is self._context:
            # inside a session of this task: a savepoint of it, on its worker
            self._runner = outer
            self._session = await outer.call(self._open)
            return self
        strand = Strand(threading.get_ident())
        context = contextvars.copy_context()
        context.run(set_strand, strand)
        context.run(set_active, self._context)
        runner = Runner(self._context, context)
        context.run(set_runner, runner)
        try:  # beginning sends nothing (the connection opens on first use): no hop
            self._session = context.run(self._open)
        except BaseException:
            runner.close()
            raise
        self._runner = runner
        runner.session = self
        runner.on_cancel = self._interrupt
        self._tokens = (
            set_strand(strand),
            set_runner(runner),
            set_active(self._context),
            self._current_tx().activate(),
        )
        return self

    def _open(self) -> Session:
        session = Session(self._context)
        session.__enter__()
        return session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, session = self._runner, self._session
        if runner is None or session is None:
            return
        try:
            tx, outermost = session._tx, self._tokens is not None
            if outermost and tx is not None and tx.is_untouched() and not runner.running:
                # nothing to send (after a_commit, say): ended here, without a hop
                runner.context.run(session.__exit__, exc_type, exc, tb)
            else:
                await runner.finish(session.__exit__, exc_type, exc, tb)
        finally:
            self._session = None
            if self._tokens is not None:
                self._release()

    def _interrupt(self) -> None:
        """The task was cancelled while the worker runs one of its calls: stop the statement
        under way (a lock wait, a long query) so that the rollback comes at once."""
        session, runner = self._session, self._runner
        tx = session._tx if session is not None else None
        if tx is None or runner is None or not tx.is_active:
            return
        cancelled = runner.running

        def interrupt() -> None:
            with runner.running_lock:  # the call cannot end (and the next begin) meanwhile
                if runner.running is cancelled and cancelled is not None:
                    with contextlib.suppress(Exception):  # a statement that just ended
                        tx.interrupt()

        # the cancel request is network I/O on PostgreSQL: not on the loop
        threading.Thread(target=interrupt, name="claystore-interrupt", daemon=True).start()

    def _release(self) -> None:
        runner, tokens = self._runner, self._tokens
        self._runner, self._tokens = None, None
        if tokens is not None:
            strand_token, runner_token, active_token, tx_token = tokens
            # (a ValueError: closed from another context than the one that opened it)
            with contextlib.suppress(ValueError):
                Transaction.deactivate(tx_token)
            reset_var(active_token)
            reset_var(runner_token)
            reset_var(strand_token)
        if runner is not None:
            runner.close()

    # -- state -------------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        """True inside the session's block."""
        return self._session is not None and self._session.is_active

    def _open_session(self) -> tuple[Runner, Session]:
        runner, session = self._runner, self._session
        if runner is None or session is None or not runner.is_open:
            msg = (
                "the async session is closed: use it inside its "
                "`async with client.a_session():` block"
            )
            raise SessionStateError(msg)
        return runner, session

    def _current_tx(self) -> Transaction:
        _, session = self._open_session()
        tx = session._tx or session._outer
        assert tx is not None
        return tx

    def _rebind(self) -> None:
        """After a commit or rollback the session goes on in a new transaction: make it the
        task's current one too."""
        if self._tokens is not None:
            self._current_tx().activate()

    # -- managing it by hand -------------------------------------------------------------

    async def a_flush(self) -> None:
        """Write pending changes now (the transaction stays open)."""
        runner, session = self._open_session()
        await runner.call(session.flush)

    async def a_commit(self) -> None:
        """Commit what the session did so far; it goes on in a new transaction.  In a nested
        session: write its changes (the enclosing session commits them)."""
        runner, session = self._open_session()
        try:
            await runner.finish(session.commit)
        finally:
            self._rebind()

    async def a_rollback(self) -> None:
        """Undo what the session did so far; it goes on in a new transaction."""
        runner, session = self._open_session()
        try:
            await runner.finish(session.rollback)
        finally:
            self._rebind()

    async def run(self, func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run blocking code ``func(*args, **kwargs)`` in the session, on its worker thread
        (sync calls there work as in ``with client.session():``), and return its result."""
        runner, _ = self._open_session()
        return await runner.call(func, *args, **kwargs)

    # -- objects -------------------------------------------------------------------------

    async def a_add(self, obj: Any, alias: str | None = None) -> None:
        """Register a new object (and what it references), written at the next flush; like
        ``await obj.a_make_persistent(alias)`` in this session."""
        runner, session = self._open_session()
        await runner.call(session.add, obj, alias)

    async def a_add_all(self, objects: list[Any]) -> None:
        """Register several new objects, written together at the next flush."""
        runner, session = self._open_session()
        await runner.call(session.add_all, objects)

    async def a_delete(self, obj: Any) -> None:
        """Delete a stored object (in this session's transaction)."""
        runner, session = self._open_session()
        await runner.call(session.delete, obj)

    async def a_get(self, cls: type[R], object_id: UUID | str) -> R:
        """The object of class ``cls`` with this id, loaded into the session."""
        runner, session = self._open_session()
        return await runner.call(session.get, cls, object_id)

    async def a_refresh(self, obj: Any) -> None:
        """Reload the object's fields from the database (pending changes to it are lost)."""
        runner, session = self._open_session()
        await runner.call(session.refresh, obj)

    async def a_load(self, obj: Any, *names: str) -> None:
        """Load these fields of an object into the session (references and containers of
        references too), so that reading them in the task needs no statement."""
        runner, _ = self._open_session()
        cls = type(obj)
        info = getattr(cls, "_dc_info", None)
        if info is None:
            msg = f"{obj!r} is not a model object: a_load() loads fields of stored objects"
            raise SessionStateError(msg)
        unknown = [name for name in names if name not in info.fields]
        if unknown:
            msg = f"{cls.__name__} has no field {unknown[0]!r}: give the names of its fields"
            raise ConfigurationError(msg)
        await runner.call(_read_fields, obj, names or tuple(info.fields))

    def __contains__(self, obj: Any) -> bool:
        return self._session is not None and obj in self._session

    def __repr__(self) -> str:
        if self._session is None:
            return "<AsyncSession closed>"
        inner = repr(self._session).removeprefix("<Session ").removesuffix(">")
        return f"<AsyncSession {inner}>"


async def a_retry_on_conflict(
    func: Callable[[], Awaitable[R]],
    *,
    attempts: int = 20,
    pause: float = 0.005,
    client: AsyncSessionOpener | None = None,
) -> R:
    """The coroutine form of :func:`~claystore.retry_on_conflict`: ``await func()`` in an
    async session of its own, run again in a new one when the commit meets a
    :class:`~claystore.errors.VersionConflictError`, up to ``attempts`` runs, pausing a
    random, doubling time of up to ``pause`` seconds between them (without blocking the
    loop).  ``client`` picks the client (default: the active one).  Called inside an async
    session it raises :class:`~claystore.errors.SessionStateError` without running ``func``
    (the enclosing session would commit what the runs did).
    """
    check_retry_arguments(attempts, pause)
    if current_runner() is not None:
        msg = (
            "a_retry_on_conflict runs its function in an async session of its own, and this "
            "task is inside one already (a request's, with ASGISessionMiddleware): call it "
            "outside, or let the middleware answer 409 and the caller retry"
        )
        raise SessionStateError(msg)
    attempt = 1
    while True:
        session = client.a_session() if client is not None else AsyncSession(active_context())
        try:
            async with session:
                return await func()
        except VersionConflictError:
            if attempt >= attempts:
                raise
        await asyncio.sleep(retry_pause(pause, attempt))
        attempt += 1


class AsyncSessionOpener(Protocol):
    """What :func:`a_retry_on_conflict` opens its sessions with (a :class:`claystore.Client`)."""

    def a_session(self) -> AsyncSession:
        """A new async session of this client."""


def _read_fields(obj: Any, names: tuple[str, ...]) -> None:
    if STATE_ATTR not in obj.__dict__:
        return  # a transient object holds its values
    for name in names:
        getattr(obj, name)
