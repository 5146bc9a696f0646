"""Concurrency of ``move`` between backends with another process: while this process moves an
object back and forth between two backends, a child process (:mod:`tests.orm.move_child`)
changes it — activemethod increments and session increments lose no update, autocommit writes
of distinct values all land — and the object ends home on exactly one backend.  And, made
deterministic: an object loaded before another process moved it reads its fields and takes
writes (session, autocommit, activemethod) there, the activemethod holding it locked.

Autocommit read-modify-writes (``obj.counter = obj.counter + 1``) take no lock and may lose
updates to any concurrent writer, moved or not: not tested here for that.

A writer may meet :class:`~claystore.errors.ObjectMovedError` (a
:class:`~claystore.errors.VersionConflictError`: nothing was written) and run again; the child
counts those; an autocommit assignment and an activemethod follow the object by themselves.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from claystore import Client, errors, retry_on_conflict
from tests.orm import move_support
from tests.orm.move_support import (
    MOVES,
    STAFF,
    MoveCompany,
    MoveCounter,
    Store,
    census,
    check_company,
    make_company,
    make_store,
    run_child,
    start_child,
    wait_child,
)

pytestmark = pytest.mark.slow  # every test runs child processes

#: how many changes a child makes while the object moves
WRITES = 200
#: the lock timeout of the racing clients: a deadlock fails in seconds, not in a minute
LOCK_TIMEOUT = 10.0
RETRYABLE = {"ObjectMovedError", "VersionConflictError"}

#: how long an activemethod holds the counter while another process tries to change it
HELD = 3.0


def _counter(db_url: str, new_url: Callable[..., str]) -> tuple[Store, UUID]:
    """A store (backend ``b`` on the second server) and a counter on backend ``a``."""
    store = make_store(db_url, new_url("local"), new_url("second"))
    with Client(db_url):
        counter = MoveCounter()
        counter.make_persistent(backend_id="a")
        return store, counter._dc_meta.id


def _moved_by_another_process(store: Store, object_id: UUID, target: str) -> None:
    result = run_child("move", store.meta, str(object_id), target)
    assert result.returncode == 0, result.stderr[-3000:]


def _homes(store: Store, object_id: UUID) -> list[str]:
    """The backends holding a registry row of the object (checked home) once no move runs."""
    found = census(store)
    assert found.journal == []
    rows = [name for name, registry in found.registry.items() if object_id in registry]
    assert rows == found.homes(store, object_id)
    return rows


def _race(store: Store, object_id: UUID, role: str, directory: Path) -> dict[str, Any]:
    """Start a child playing ``role`` on the counter and move the counter :data:`MOVES`
    times between ``a`` and ``b`` meanwhile (the child's writes keep pace: a tenth of them
    may run once each move began); the child's report."""
    moves = directory / "moves"
    child = start_child(
        role,
        *(store.meta, str(object_id), str(WRITES)),
        "--dir",
        str(directory),
        *("--lock-timeout", str(LOCK_TIMEOUT)),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n", wait_child(child)
        with Client(store.meta, lock_timeout=LOCK_TIMEOUT):
            counter = MoveCounter.get_by_id(object_id)
            for i in range(MOVES):
                moves.with_suffix(".new").write_text(str(i + 1))
                os.replace(moves.with_suffix(".new"), moves)
                counter.move("b" if i % 2 == 0 else "a")
                assert counter._dc_backend_id == store.ids["b" if i % 2 == 0 else "a"]
        code, out, err = wait_child(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert code == 0, err[-3000:]
    report: dict[str, Any] = json.loads(out)
    assert set(report["conflicts"]) <= RETRYABLE
    return report


def test_activemethod_increments_while_moving(
    db_url: str, backend_url_factory: Callable[..., str], tmp_path: Path
) -> None:
    """200 activemethod increments in another process while this one moves the object 10
    times: none lost (each call returns the next value), the object home on one backend."""
    store, object_id = _counter(db_url, backend_url_factory)
    report = _race(store, object_id, "bump", tmp_path)
    assert report["returned"] == list(range(1, WRITES + 1))
    assert _homes(store, object_id) == ["a"]
    with Client(db_url):
        assert MoveCounter.get_by_id(object_id).counter == WRITES


def test_session_increments_while_moving(
    db_url: str, backend_url_factory: Callable[..., str], tmp_path: Path
) -> None:
    """200 ``with client.session(): counter.counter += 1`` in another process, each run again
    on a version conflict, while this one moves the object 10 times: none lost."""
    store, object_id = _counter(db_url, backend_url_factory)
    _race(store, object_id, "session", tmp_path)
    assert _homes(store, object_id) == ["a"]
    with Client(db_url):
        assert MoveCounter.get_by_id(object_id).counter == WRITES


def test_autocommit_writes_while_moving(
    db_url: str, backend_url_factory: Callable[..., str], tmp_path: Path
) -> None:
    """200 autocommit writes of distinct names in another process while this one moves the
    object 10 times: each reads back right after it, the last one is stored."""
    store, object_id = _counter(db_url, backend_url_factory)
    report = _race(store, object_id, "names", tmp_path)
    assert report["unread"] == []
    assert _homes(store, object_id) == ["a"]
    with Client(db_url):
        counter = MoveCounter.get_by_id(object_id)
        assert (counter.name, counter.counter) == (f"n{WRITES - 1}", 0)


# -- deterministic: an object loaded before another process moved it --------------------------


def test_links_of_an_object_another_process_moved(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A company loaded before another process moved it reads its staff list on the new
    backend (read first: nothing else has followed the company yet)."""
    store = make_store(db_url, backend_url_factory("local"), backend_url_factory("second"))
    make_company(store, "a")
    with Client(db_url):
        company = MoveCompany.get_by_alias("acme")
        assert company.name == "acme"
        result = run_child("move", db_url, "acme", "b", "--recursive")
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(company.staff) == STAFF
        check_company(store, company, "b")


def test_a_session_write_to_an_object_another_process_moved(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A session that read the counter before another process moved it commits its write on
    the new backend, or ends in ObjectMovedError and runs again: one increment in all."""
    store, object_id = _counter(db_url, backend_url_factory)
    with Client(db_url) as client:
        counter = MoveCounter.get_by_id(object_id)
        runs: list[int] = []

        def increment() -> None:
            value = counter.counter
            if not runs:
                _moved_by_another_process(store, object_id, "b")
            runs.append(value)
            counter.counter = value + 1

        retry_on_conflict(increment, client=client)
        assert runs[0] == 0
    assert _homes(store, object_id) == ["b"]
    with Client(db_url):
        assert MoveCounter.get_by_id(object_id).counter == 1


def test_an_autocommit_write_to_an_object_another_process_moved(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """An autocommit write to a counter loaded before another process moved it lands on the
    new backend (or raises ObjectMovedError, and then lands when written again)."""
    store, object_id = _counter(db_url, backend_url_factory)
    with Client(db_url):
        counter = MoveCounter.get_by_id(object_id)
        assert counter.name == ""
        _moved_by_another_process(store, object_id, "b")
        try:
            counter.name = "x"
        except errors.ObjectMovedError:
            counter.name = "x"
    assert _homes(store, object_id) == ["b"]
    with Client(db_url):
        assert MoveCounter.get_by_id(object_id).name == "x"


def test_an_activemethod_on_an_object_another_process_moved(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """An activemethod on a counter loaded before another process moved it runs on the new
    backend."""
    store, object_id = _counter(db_url, backend_url_factory)
    with Client(db_url):
        counter = MoveCounter.get_by_id(object_id)
        assert counter.counter == 0
        _moved_by_another_process(store, object_id, "b")
        assert counter.bump() == 1
        assert counter._dc_backend_id == store.ids["b"]
    assert _homes(store, object_id) == ["b"]
    with Client(db_url):
        assert MoveCounter.get_by_id(object_id).counter == 1


@pytest.mark.parametrize(
    "moved",
    [False, True],
)
def test_an_activemethod_holds_the_object_it_followed(
    db_url: str, backend_url_factory: Callable[..., str], tmp_path: Path, moved: bool
) -> None:
    """While an activemethod runs on a counter (``moved``: loaded before another process moved
    it), another process's activemethod on it waits; it then sees the first one's increment."""
    store, object_id = _counter(db_url, backend_url_factory)
    with Client(db_url):
        counter = MoveCounter.get_by_id(object_id)
        assert counter.counter == 0
        if moved:
            _moved_by_another_process(store, object_id, "b")
        child = start_child("bump", db_url, str(object_id), "1", "--gate", str(tmp_path))
        ended_while_held: list[int | None] = []

        def let_the_child_try() -> None:
            (tmp_path / "go").touch()
            deadline = time.monotonic() + HELD
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            ended_while_held.append(child.poll())

        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n", wait_child(child)
            move_support.HOLD_HOOKS.append(let_the_child_try)
            try:
                assert counter.hold() == 1
            finally:
                move_support.HOLD_HOOKS.clear()
            code, out, err = wait_child(child)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert code == 0, err[-3000:]
        assert ended_while_held == [None]  # it waited for the lock
        assert json.loads(out)["returned"] == [2]
    with Client(db_url):
        assert MoveCounter.get_by_id(object_id).counter == 2
