"""The async unit of work: ``async with client.a_session()``, on both engines.

Commit, rollback, savepoints, cancellation, ``async for`` over a query, many tasks at once, the
event loop kept free of statements, and the loop-lag probe.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from claystore import Client, a_retry_on_conflict
from claystore.errors import ConfigurationError, QueryError, SessionStateError
from tests.models import Counter, Employee
from tests.statements import count_statements

T = TypeVar("T")


def run(coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function to completion on a new event loop."""

    async def main() -> T:
        return await coro()

    return asyncio.run(main())


def open_transactions(client: Client) -> int:
    """Connections of the client's pool still checked out (a session that did not end)."""
    pool = client.engine.pool
    checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
    return int(checked_out)


def idle_in_transaction(client: Client) -> int:
    """PostgreSQL sessions of this database left inside a transaction (0 on SQLite)."""
    if client.engine.dialect.name != "postgresql":
        return 0
    with client.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )


def test_commit_at_exit_and_reads_from_memory(client: Client) -> None:
    """Changes made in the task are committed at exit; loaded objects answer reads and take
    assignments in the task with no statement."""
    Employee("Ann", 100.0).make_persistent("ann")

    async def work() -> None:
        async with client.a_session() as session:
            ann = await Employee.a_get_by_alias("ann")
            with count_statements(client.engine) as log:
                assert ann.name == "Ann"
                ann.salary = ann.salary + 50
                assert ann.salary == 150.0
            assert len(log) == 0
            assert ann in session
            bob = Employee("Bob", 10.0)
            await session.a_add(bob, alias="bob")
            assert session.is_active
        assert not session.is_active

    run(work)
    assert Employee.get_by_alias("ann").salary == 150.0
    assert Employee.get_by_alias("bob").name == "Bob"


def test_an_exception_rolls_everything_back(client: Client) -> None:
    """An exception out of the block writes nothing; objects created become transient."""
    Employee("Ann", 100.0).make_persistent("ann")
    created: list[Employee] = []

    async def work() -> None:
        async with client.a_session():
            ann = await Employee.a_get_by_alias("ann")
            ann.salary = 0.0
            new = Employee("Cid", 1.0)
            created.append(new)
            await new.a_make_persistent("cid")
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        run(work)
    assert Employee.get_by_alias("ann").salary == 100.0
    assert not created[0].is_registered
    assert "cid" not in {a for e in Employee.dc_query() for a in e.get_aliases()}
    assert open_transactions(client) == 0


def test_commit_rollback_and_flush_by_hand(client: Client) -> None:
    """``a_commit`` and ``a_rollback`` go on in a new transaction; ``a_flush`` writes now."""
    Counter().make_persistent("c")

    async def work() -> list[int]:
        seen = []
        async with client.a_session() as session:
            counter = await Counter.a_get_by_alias("c")
            counter.count = 1
            await session.a_commit()
            seen.append(await asyncio.to_thread(lambda: Counter.get_by_alias("c").count))
            counter.count = 2
            await session.a_rollback()
            await session.a_refresh(counter)
            seen.append(counter.count)
            counter.count = 3
            await session.a_flush()
            seen.append(await session.run(lambda: Counter.get_by_alias("c").count))
        return seen

    assert run(work) == [1, 1, 3]
    assert Counter.get_by_alias("c").count == 3


def test_nested_sessions_are_savepoints(client: Client) -> None:
    """A failing nested session undoes only its own work; the outer one commits the rest."""
    Counter().make_persistent("c")

    async def work() -> None:
        async with client.a_session() as session:
            counter = await Counter.a_get_by_alias("c")
            counter.count = 1

            async def failing() -> None:
                async with client.a_session() as inner:
                    counter.count = 2
                    await inner.a_add(Employee("Inner", 1.0), alias="inner")
                    raise ValueError("inner")

            with pytest.raises(ValueError, match="inner"):
                await failing()
            await session.a_load(counter, "count")  # the savepoint's undo expired it
            assert counter.count == 1
            async with client.a_session():
                await counter.a_increment()  # an activemethod's a_ twin joins the session

    run(work)
    assert Counter.get_by_alias("c").count == 2
    assert not any("inner" in e.get_aliases() for e in Employee.dc_query())


def test_cancellation_rolls_back_and_returns_the_connection(client: Client) -> None:
    """A task cancelled while its session works (here: in a blocking call on the worker)
    waits for the call, rolls back, gives the connection back, and stays cancelled."""
    Counter().make_persistent("c")
    running = threading.Event()

    def slow() -> None:
        running.set()
        time.sleep(0.3)

    async def request() -> None:
        async with client.a_session() as session:
            counter = await Counter.a_get_by_alias("c")
            counter.count = 99
            await session.a_flush()  # written in the open transaction
            await session.run(slow)

    async def work() -> bool:
        task = asyncio.create_task(request())
        while not running.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert run(work) is True
    assert Counter.get_by_alias("c").count == 0
    assert open_transactions(client) == 0
    assert idle_in_transaction(client) == 0


def test_a_timeout_rolls_back(client: Client) -> None:
    """``asyncio.wait_for`` timing out a session's work is a cancellation: nothing written."""
    Counter().make_persistent("c")

    async def request() -> None:
        async with client.a_session() as session:
            (await Counter.a_get_by_alias("c")).count = 5
            await session.run(time.sleep, 0.3)

    async def work() -> None:
        await asyncio.wait_for(request(), timeout=0.05)

    with pytest.raises(TimeoutError):
        run(work)
    assert Counter.get_by_alias("c").count == 0
    assert open_transactions(client) == 0


def test_async_for_streams_a_query_in_batches(client: Client) -> None:
    """``async for`` over ``a_iter`` gives every object in order, a batch per hop, without
    reading the whole result first; inside a session the objects are the session's."""
    with client.session() as session:  # more than one cursor chunk (1,000 rows)
        session.add_all([Employee(f"e{i:04}", float(i)) for i in range(2500)])

    async def work() -> tuple[list[str], int, int]:
        names: list[str] = []
        async with client.a_session() as session:
            query = Employee.dc_query().order("name")
            loaded_at_first = -1
            async for employee in query.a_iter(batch=20):
                if not names:
                    loaded_at_first = len(session._current_tx().entries)
                names.append(employee.name)
                employee.salary += 1  # from memory; committed at exit
            return names, loaded_at_first, await query.a_count()

    names, loaded_at_first, count = run(work)
    assert names == [f"e{i:04}" for i in range(2500)]
    assert count == 2500
    assert 0 < loaded_at_first <= 1000
    assert Employee.dc_query().filter("name", "=", "e0010").first().salary == 11.0


def test_async_for_outside_a_session_reads_the_loop_rows(client: Client) -> None:
    """Outside sessions ``a_iter`` runs on a thread of its own, and the objects answer the
    task's reads from the rows loaded (no statement per read), as a plain loop does."""
    for i in range(30):
        Employee(f"e{i:02}", float(i)).make_persistent()

    async def work() -> tuple[float, int]:
        total = 0.0
        with count_statements(client.engine) as log:
            async for employee in Employee.dc_query().a_iter(batch=7):
                total += employee.salary
        return total, len(log.matching("SELECT"))

    total, selects = run(work)
    assert total == sum(range(30))
    assert selects == 1
    assert run(lambda: Employee.dc_query().a_fetch()).__len__() == 30
    assert run(lambda: Employee.dc_query().order("-salary").a_first()).name == "e29"


def test_bad_batch_sizes_are_refused(client: Client) -> None:
    """``a_iter`` takes a whole number of objects, 1 or more."""
    for bad in (0, -1, 1.5, True):
        with pytest.raises(QueryError, match="a_iter"):
            Employee.dc_query().a_iter(batch=bad)  # type: ignore[arg-type]


def test_many_tasks_with_a_session_each_lose_nothing(client: Client) -> None:
    """200 deposits from 20 tasks, each in its own session, end exact: locked (an
    activemethod) and optimistic (an assignment, retried on a version conflict)."""
    Counter().make_persistent("locked")
    Counter().make_persistent("optimistic")

    async def locked() -> None:
        for _ in range(10):
            async with client.a_session():
                counter = await Counter.a_get_by_alias("locked")
                await counter.a_increment()

    async def optimistic() -> None:
        async def once() -> None:
            counter = await Counter.a_get_by_alias("optimistic")
            counter.count += 1

        for _ in range(10):
            await a_retry_on_conflict(once, client=client, attempts=200)

    async def work() -> None:
        await asyncio.gather(*(locked() for _ in range(20)), *(optimistic() for _ in range(20)))

    run(work)
    assert Counter.get_by_alias("locked").count == 200
    assert Counter.get_by_alias("optimistic").count == 200
    assert open_transactions(client) == 0


def test_the_event_loop_thread_runs_no_statement_in_a_session(client: Client) -> None:
    """A blocking call on the loop's thread inside a session is refused before anything is
    sent (it would stall every other request); the session goes on; the a_ form works."""
    Employee("Ann", 1.0).make_persistent("ann")

    async def work() -> str:
        async with client.a_session() as session:
            with pytest.raises(SessionStateError, match="a_") as refused:
                Employee.get_by_alias("ann")
            ann = await Employee.a_get_by_alias("ann")
            with pytest.raises(SessionStateError, match="event loop"):
                ann.make_persistent("other")
            await session.a_load(ann, "name")
            with pytest.raises(ConfigurationError, match="Employee has no field 'nope'"):
                await session.a_load(ann, "nope")
            return str(refused.value) + ann.name

    assert run(work).endswith("Ann")


def test_a_closed_session_says_so(client: Client) -> None:
    """Using a session after its block, or opening it twice, raises SessionStateError."""

    async def work() -> None:
        session = client.a_session()
        async with session:
            with pytest.raises(SessionStateError, match="open already"):
                await session.__aenter__()
        with pytest.raises(SessionStateError, match="closed"):
            await session.a_commit()
        assert repr(session) == "<AsyncSession closed>"

    run(work)


def test_a_retry_on_conflict_inside_a_session_is_refused(client: Client) -> None:
    """It must own its session: inside one it raises without running the function."""
    calls: list[int] = []

    async def once() -> None:
        calls.append(1)

    async def work() -> None:
        async with client.a_session():
            await a_retry_on_conflict(once, client=client)

    with pytest.raises(SessionStateError, match="a_retry_on_conflict"):
        run(work)
    assert calls == []
    with pytest.raises(ConfigurationError, match="attempts"):
        run(lambda: a_retry_on_conflict(once, attempts=0))


def test_loading_1000_objects_never_blocks_the_loop(client: Client) -> None:
    """The loop-lag probe: a coroutine measuring its own wake-up delays while 1,000 objects
    are loaded in a session is never late by more than the longest statement the load sent,
    plus what stops every thread (the interpreter's garbage collection, its 5 ms GIL switch):
    the rows are turned into objects on the session's worker thread."""
    with client.session() as session:
        session.add_all([Employee(f"e{i:04}" + "x" * 200, float(i)) for i in range(1000)])

    longest = [0.0]  # the longest statement (its driver call)
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, *_: Any) -> None:
        begun = started.pop(id(cursor), None)
        if begun is not None:
            longest[0] = max(longest[0], time.perf_counter() - begun)

    collecting: dict[str, float] = {"since": 0.0, "longest": 0.0}

    def collection(phase: str, _info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            collecting["since"] = now
        else:
            collecting["longest"] = max(collecting["longest"], now - collecting["since"])

    async def probe(stop: asyncio.Event, lags: list[float]) -> None:
        while not stop.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - asked - 0.001)

    async def work() -> tuple[float, float, int]:
        stop, lags = asyncio.Event(), []
        prober = asyncio.create_task(probe(stop, lags))
        await asyncio.sleep(0.01)
        begun = time.perf_counter()
        async with client.a_session():
            loaded = [e async for e in Employee.dc_query().a_iter(batch=1000)]
            total = sum(e.salary for e in loaded)
        elapsed = time.perf_counter() - begun
        stop.set()
        await prober
        assert total == sum(range(1000))
        return max(lags), elapsed, len(lags)

    sa.event.listen(client.engine, "before_cursor_execute", before)
    sa.event.listen(client.engine, "after_cursor_execute", after)
    gc.callbacks.append(collection)
    try:
        worst, elapsed, wakeups = run(work)
    finally:
        gc.callbacks.remove(collection)
        sa.event.remove(client.engine, "before_cursor_execute", before)
        sa.event.remove(client.engine, "after_cursor_execute", after)
    noise = 0.03  # the GIL changes hands every 5 ms; a busy machine schedules late
    allowed = longest[0] + collecting["longest"] + noise
    assert worst <= allowed, (worst, longest[0], collecting["longest"], elapsed)
    assert wakeups > 5  # the probe ran while the objects were loaded


def test_a_cancelled_lock_wait_ends_at_once(db_url: str, engine_name: str) -> None:
    """A session cancelled while its statement waits for a row lock another session holds has
    the statement interrupted (PostgreSQL): its task ends at once, not when the lock wait
    times out, and the other session goes on.  SQLite cannot interrupt a wait for the
    database's write lock: the task ends as soon as the lock is free."""
    with Client(db_url, lock_timeout=20) as client:
        Counter().make_persistent("c")

        async def holder(locked: asyncio.Event, release: asyncio.Event) -> None:
            async with client.a_session():
                counter = await Counter.a_get_by_alias("c")
                await counter.a_increment()  # the row (SQLite: the database) stays locked
                locked.set()
                await release.wait()

        async def waiter() -> None:
            async with client.a_session():
                counter = await Counter.a_get_by_alias("c")
                await counter.a_increment()

        async def work() -> float:
            locked, release = asyncio.Event(), asyncio.Event()
            first = asyncio.create_task(holder(locked, release))
            await locked.wait()
            second = asyncio.create_task(waiter())
            await asyncio.sleep(0.3)  # waiting for the lock by now
            assert not second.done()
            begun = time.perf_counter()
            second.cancel()
            asyncio.get_running_loop().call_later(1.5, release.set)
            with pytest.raises(asyncio.CancelledError):
                await second
            took = time.perf_counter() - begun
            await first
            return took

        took = run(work)
        if engine_name == "postgresql":
            assert took < 1.0, took  # interrupted, before the holder let go
        else:
            assert took < 5, took  # when the holder let go, long before the lock timeout
        assert Counter.get_by_alias("c").count == 1
        assert open_transactions(client) == 0
