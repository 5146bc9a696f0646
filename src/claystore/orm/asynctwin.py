"""``a_`` coroutine twins of blocking object-API methods, and the threads they run on.

Owns :func:`async_twin` and :func:`run_blocking` (the coroutine form of a blocking call),
:func:`iterate_async` (``async for`` over a query), and
:class:`Runner`: the worker thread of one async session (:mod:`claystore.orm.asyncsession`),
leased from a small pool of idle threads for the session's life.  A runner executes the
session's calls one at a time, in order, in one :class:`contextvars.Context` of its own (where
the session's transaction is current), and hands each result back to the event loop.

Inside an async session every ``a_`` call runs on its runner: the session's connection is only
ever used by one thread at a time, and a session waiting for a lock waits on its own thread,
never on a thread other sessions need.  Outside one, the call runs in a thread of asyncio's
default executor (``asyncio.to_thread``, which copies the context: the active client goes
along).

Used by :mod:`claystore.orm.model` and the other object-API modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from claystore.errors import SessionStateError
from claystore.orm.state import Snapshot, Strand, defer_snapshots, reset_var, set_strand

R = TypeVar("R")

#: idle worker threads kept for the next sessions (more are started when needed)
MAX_IDLE_WORKERS = 64

_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Worker:
    """One thread running jobs in order."""

    _names = iter(range(1, 1 << 62))

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._work, name=f"claystore-session-{next(self._names)}", daemon=True
        )
        self.thread.start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            loop, future, context, func, args, kwargs = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = context.run(func, *args, **kwargs)
            except BaseException as exc:  # handed to the awaiting task
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop was closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)
            del job, future, result, error

    def stop(self) -> None:
        self.jobs.put(None)


_idle: list[_Worker] = []
_idle_lock = threading.Lock()


def _lease() -> _Worker:
    with _idle_lock:
        if _idle:
            return _idle.pop()
    return _Worker()


def _give_back(worker: _Worker) -> None:
    with _idle_lock:
        if len(_idle) < MAX_IDLE_WORKERS:
            _idle.append(worker)
            return
    worker.stop()


class Runner:
    """The worker thread of one async session and the context its calls run in.

    ``context`` is a copy of the opening task's context; what the session's calls set there
    (its current transaction) stays there from one call to the next.  ``owner`` is the
    client's object context the session belongs to.
    """

    def __init__(self, owner: object, context: contextvars.Context) -> None:
        self.owner = owner
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.session: Any = None  # the outermost async session it runs
        #: called (on the loop) when the caller of the call under way is cancelled
        self.on_cancel: Callable[[], None] | None = None
        #: the future of the call under way (None between calls), cleared under the lock
        self.running: asyncio.Future[Any] | None = None
        self.running_lock = threading.Lock()
        self._worker: _Worker | None = _lease()

    @property
    def is_open(self) -> bool:
        """Until :meth:`close`."""
        return self._worker is not None

    def submit(self, func: Callable[..., R], *args: Any, **kwargs: Any) -> asyncio.Future[R]:
        """Queue ``func(*args, **kwargs)`` on the worker; its future is on the running loop."""
        worker = self._worker
        if worker is None:
            msg = "the async session is closed: use it inside its `async with` block"
            raise SessionStateError(msg)
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            msg = "an async session belongs to the event loop that opened it"
            raise SessionStateError(msg)
        future: asyncio.Future[R] = loop.create_future()

        def job() -> R:
            self.running = future
            try:
                return func(*args, **kwargs)
            finally:
                with self.running_lock:
                    self.running = None

        worker.jobs.put((loop, future, self.context, job, (), {}))
        return future

    async def call(self, func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run ``func`` on the worker and return its result.  A cancelled caller does not stop
        the thread: :attr:`on_cancel` is told (an async session interrupts its statement) and
        the session's end waits for the call (:meth:`finish`)."""
        future = self.submit(func, *args, **kwargs)
        try:
            return await future
        except asyncio.CancelledError:
            if self.on_cancel is not None and self.running is future:
                self.on_cancel()
            raise

    async def finish(self, func: Callable[..., R], *args: Any) -> R:
        """Run ``func`` on the worker (after whatever is queued) and wait for it even if the
        caller is cancelled meanwhile: the cancellation is raised once it has run."""
        future = self.submit(func, *args)
        cancelled = False
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    break
                cancelled = True
            except BaseException:  # the future's own error, raised below
                break
        result = future.result()
        if cancelled:
            raise asyncio.CancelledError
        return result

    def close(self) -> None:
        """Give the worker thread back (to the pool of idle ones)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            _give_back(worker)


#: the runner of the async session of the calling task (None: no async session is open)
_runner: ContextVar[Runner | None] = ContextVar("claystore_runner", default=None)


def current_runner() -> Runner | None:
    """The runner of the calling task's open async session, if any."""
    runner = _runner.get()
    if runner is None or not runner.is_open:
        return None
    return runner


def set_runner(runner: Runner | None) -> Any:
    """Make ``runner`` the calling context's; returns a reset token."""
    return _runner.set(runner)


async def run_blocking(func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run a blocking call off the event loop: on the async session's worker thread inside
    one, else in a thread of asyncio's default executor."""
    runner = current_runner()
    if runner is not None:
        return await runner.call(func, *args, **kwargs)
    return await asyncio.to_thread(func, *args, **kwargs)


def async_twin(method: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The ``a_`` twin of a blocking method."""

    async def twin(*args: Any, **kwargs: Any) -> Any:
        return await run_blocking(method, *args, **kwargs)

    twin.__name__ = f"a_{method.__name__}"
    twin.__qualname__ = f"a_{method.__qualname__}"
    twin.__doc__ = f"Coroutine form of :meth:`{method.__name__}`."
    return twin


def _generate(items: Iterable[R]) -> Iterator[R]:
    yield from items


def _take(objects: Iterator[R], batch: int) -> list[R]:
    return list(itertools.islice(objects, batch))


def _close(objects: Iterator[Any]) -> None:
    close = getattr(objects, "close", None)
    if close is not None:
        close()


async def iterate_async(
    items: Iterable[R], owner: Callable[[], object], batch: int
) -> AsyncIterator[R]:
    """``async for`` over a blocking iterable (a query): advanced on a worker thread, a
    ``batch`` per hop -- the async session's, else one of its own for the loop, whose strand
    the task shares meanwhile (the read rule of query loops holds in the task).  ``owner``
    gives the client context it reads (called only outside a session)."""
    runner = current_runner()
    if runner is not None:
        async for item in _batches(runner, items, batch):
            yield item
        return
    strand = Strand(None)
    context = contextvars.copy_context()
    context.run(set_strand, strand)
    snapshots: list[Snapshot] = []  # the last batch is handed out after the loop ended
    context.run(defer_snapshots, snapshots)
    own = Runner(owner(), context)
    token = set_strand(strand)
    try:
        async for item in _batches(own, items, batch):
            yield item
    finally:
        for snapshot in snapshots:
            snapshot.close()
        own.close()
        reset_var(token)


async def _batches(runner: Runner, items: Iterable[R], batch: int) -> AsyncIterator[R]:
    objects = _generate(items)  # runs (the query too) on the worker, at its first batch
    try:
        while True:
            chunk = await runner.call(_take, objects, batch)
            for obj in chunk:
                yield obj
            if len(chunk) < batch:
                return
    finally:
        await runner.finish(_close, objects)
