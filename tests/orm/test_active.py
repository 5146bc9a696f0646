"""@activemethod: one transaction under a row lock; no lost updates."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from claystore import Client
from tests.models import Counter, Employee


def test_activemethod_on_a_transient_object_is_a_plain_call() -> None:
    """Without a client or a stored object, an activemethod is an ordinary method call."""
    employee = Employee("John", 1000.0)
    assert employee.get_payroll(50) == 1250.0
    assert employee.raise_salary(10) == 1010.0


def test_activemethod_runs_on_fresh_state_and_commits(client: Any) -> None:
    """The body sees committed state and its writes commit at return."""
    employee = Employee("John", 1000.0)
    employee.make_persistent()
    with client.engine.begin() as conn:  # someone else changes the row
        conn.execute(sa.text("UPDATE employee SET salary = 1500"))
    assert employee.raise_salary(100) == 1600.0
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT salary, dc_version FROM employee")).one() == (1600.0, 2)


def test_failing_activemethod_leaves_the_row_unchanged(client: Any) -> None:
    """An exception in the body rolls back its writes, in the database and in memory."""
    employee = Employee("John", 1000.0)
    employee.make_persistent()
    with pytest.raises(RuntimeError, match="payroll system down"):
        employee.raise_then_fail(500)
    assert employee.salary == 1000.0
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT salary, dc_version FROM employee")).one() == (1000.0, 1)


def test_in_place_container_changes_inside_an_activemethod_are_stored(client: Any) -> None:
    """Inside an activemethod, self's containers are live: append() is stored at return."""
    counter = Counter()
    counter.make_persistent()
    counter.append_history(7)
    counter.append_history(8)
    assert counter.history == [7, 8]


def test_nested_activemethod_failure_undoes_only_its_own_writes(client: Any) -> None:
    """An activemethod called from another runs under a savepoint."""
    counter = Counter()
    counter.make_persistent()
    counter.increment_twice_inner_fails()
    assert counter.count == 1


def test_four_threads_lose_no_increment(client: Any) -> None:
    """4 threads x 50 activemethod increments of one counter end exactly at 200."""
    counter = Counter()
    counter.make_persistent("counter")
    context = contextvars.copy_context()

    def work() -> None:
        for _ in range(50):
            counter.increment()

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(context.copy().run, work) for _ in range(4)]:
            future.result()
    assert counter.count == 200


def test_threads_with_their_own_handles_lose_no_increment(db_url: str, client: Any) -> None:
    """Threads that each start their own client and load the counter by alias still end exact."""
    Counter().make_persistent("shared")

    def work() -> None:
        with Client(db_url):
            mine = Counter.get_by_alias("shared")
            for _ in range(25):
                mine.increment()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter.get_by_alias("shared").count == 100


def test_reads_from_other_threads_do_not_disturb_a_running_activemethod(client: Any) -> None:
    """While an activemethod holds an object, other threads read committed state only."""
    counter = Counter()
    counter.make_persistent()
    inside, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def reader() -> None:
        inside.wait(10)
        seen.append(counter.count)
        release.set()

    original = Counter.increment.__wrapped__  # type: ignore[attr-defined]

    def slow_increment(self: Counter) -> int:
        result: int = original(self)
        inside.set()
        release.wait(10)
        return result

    from claystore import activemethod

    thread = threading.Thread(target=contextvars.copy_context().run, args=(reader,))
    thread.start()
    activemethod(slow_increment)(counter)
    thread.join()
    assert seen == [0]  # the uncommitted 1 was not visible
    assert counter.count == 1
