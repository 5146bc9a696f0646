"""Crash safety of ``move`` between backends: a mover killed (SIGKILL) at each step of a move
leaves every object readable on exactly one backend (or pending in the journal between the
decision and the promotion), and the repair at the next client start — or
``client.repair_moves()`` — undoes the moves killed before the decision and finishes those
killed after it, leaving no journal row, shadow or orphan row, with every value and reference
intact; a move whose mover is alive is left to it, and readers meanwhile read the right values.

The mover is a child process (:mod:`tests.orm.move_child`) that moves a company of 20
employees (a list, a reference) recursively; the databases are read directly (no client, so no
repair) before the repair, and through the API after it.  On PostgreSQL the target backend is
on the second server in some cases and a schema of the local one in others; some moves leave
or enter the metadata database, where the journal's switch commits with the delete.
"""

from __future__ import annotations

import contextvars
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from claystore import Client, errors
from tests.orm.move_child import PAUSE_LIMIT
from tests.orm.move_support import (
    SALARY,
    STAFF,
    MoveCompany,
    MoveCounter,
    Store,
    census,
    check_company,
    check_readable,
    check_settled,
    make_company,
    make_store,
    run_child,
    start_child,
    wait_child,
)

pytestmark = pytest.mark.slow  # every test runs child processes

#: the steps where a kill leaves the objects on the source (the decision did not commit)
BEFORE_DECISION = ("journaled", "copied", "switching")

#: (step, source, target, server of backend b): the kills tested
KILLS = [
    ("journaled", "a", "b", "second"),
    ("copied", "a", "b", "local"),
    ("switching", "a", "b", "second"),
    ("deleted", "a", "b", "local"),
    ("promoted", "a", "b", "second"),
    ("done", "a", "b", "local"),
    ("deleted", "b", "a", "second"),
    ("switching", "default", "b", "second"),
    ("deleted", "default", "b", "local"),
    ("switching", "b", "default", "second"),
    ("deleted", "b", "default", "local"),
]


def _store(db_url: str, new_url: Callable[..., str], server: str) -> Store:
    return make_store(db_url, new_url("local"), new_url(server))


def _journal_states(step: str, source: str) -> list[str]:
    """The states of the journal rows a kill at ``step`` leaves, for a move from ``source``
    (from the metadata database, ``switching`` commits with the delete: not before it)."""
    if step == "done":
        return []
    if step in ("deleted", "promoted") or (step == "switching" and source != "default"):
        return ["switching"]
    return ["copying"]


@pytest.mark.parametrize(
    ("step", "source", "target", "server"), KILLS, ids=["-".join(k) for k in KILLS]
)
def test_kill_at_each_step_then_repair_at_start(
    db_url: str,
    backend_url_factory: Callable[..., str],
    step: str,
    source: str,
    target: str,
    server: str,
) -> None:
    """Killed at ``step``: before any repair every object is home on one backend or pending
    in a ``switching`` journal row; the next start repairs the move: everything on the source
    (killed before the decision) or on the target (after it), values and aliases intact."""
    store = _store(db_url, backend_url_factory, server)
    graph = make_company(store, source)

    result = run_child("move", db_url, "acme", target, "--recursive", "--kill", step)

    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr[-3000:])
    before = census(store)
    check_readable(store, before, graph.ids)
    assert [e["state"] for e in before.journal] == _journal_states(step, source)
    homes = {name for object_id in graph.ids for name in before.homes(store, object_id)}
    if step == "deleted":
        assert homes == set()  # the window: deleted on the source, not yet home on the target
    else:
        assert homes == {source if step in BEFORE_DECISION else target}

    expected = source if step in BEFORE_DECISION else target
    with Client(db_url):  # the start repairs
        check_settled(store, census(store), graph, expected)
        check_company(store, MoveCompany.get_by_alias("acme"), expected)


@pytest.mark.parametrize(("step", "outcome"), [("copied", "undone"), ("deleted", "finished")])
def test_repair_moves_of_a_client_started_before_the_crash(
    db_url: str, backend_url_factory: Callable[..., str], step: str, outcome: str
) -> None:
    """``repair_moves()`` on a client that was running when the mover died ends the move and
    says how; a second call finds nothing; the objects it had loaded read the right values."""
    store = _store(db_url, backend_url_factory, "second")
    graph = make_company(store, "a")
    with Client(db_url) as client:
        company = MoveCompany.get_by_alias("acme")
        assert company.name == "acme"

        result = run_child("move", db_url, "acme", "b", "--recursive", "--kill", step)
        assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr[-3000:])

        repaired = client.repair_moves()
        assert [(r.source, r.target, r.objects, r.outcome) for r in repaired] == [
            (store.ids["a"], store.ids["b"], STAFF + 1, outcome)
        ]
        assert client.repair_moves() == []
        expected = "a" if outcome == "undone" else "b"
        check_settled(store, census(store), graph, expected)
        assert company.name == "acme"  # follows it (its links alone would not yet: see
        # test_move_concurrency.py::test_links_of_an_object_another_process_moved)
        check_company(store, company, expected)


def _wait_paused(child: Any, directory: Path) -> None:
    deadline = time.monotonic() + PAUSE_LIMIT
    while not (directory / "paused").exists():
        if child.poll() is not None:
            code, out, err = wait_child(child)
            pytest.fail(f"the mover ended before pausing: {code} {out!r} {err[-3000:]!r}")
        assert time.monotonic() < deadline, "the mover did not reach its step"
        time.sleep(0.01)


def _read_company() -> tuple[str, list[str], list[float], bool]:
    company = MoveCompany.get_by_alias("acme")
    staff = company.staff
    return company.name, [s.name for s in staff], [s.salary for s in staff], company.ceo is staff[0]


RIGHT = ("acme", [f"e{i}" for i in range(STAFF)], [SALARY + i for i in range(STAFF)], True)


@pytest.mark.parametrize("step", ["copied", "switching", "deleted", "promoted"])
def test_a_live_move_is_left_to_its_mover(
    db_url: str, backend_url_factory: Callable[..., str], tmp_path: Path, step: str
) -> None:
    """While the mover is paused at ``step`` (alive), another client's start and its
    ``repair_moves()`` leave the move alone (the journal row stays) and a reader gets the right
    values — between the decision and the promotion it waits for the mover, then reads them."""
    store = _store(db_url, backend_url_factory, "second")
    graph = make_company(store, "a")
    directory = tmp_path / "pause"
    directory.mkdir()
    child = start_child(
        "move", db_url, "acme", "b", "--recursive", "--pause", step, "--dir", str(directory)
    )
    try:
        _wait_paused(child, directory)
        with Client(db_url) as client:  # its start repairs what is not alive
            assert client.repair_moves() == []
            during = census(store)
            assert len(during.journal) == 1
            check_readable(store, during, graph.ids)

            read: list[Any] = []
            context = contextvars.copy_context()
            reader = threading.Thread(target=lambda: read.append(context.run(_read_company)))
            reader.start()
            reader.join(0.5 if step == "deleted" else 60)
            assert reader.is_alive() == (step == "deleted")  # waits for the mover there only
            assert len(census(store).journal) == 1
            (directory / "go").touch()
            reader.join(60)
            assert read == [RIGHT]
            code, out, err = wait_child(child)
            assert (code, out) == (0, "moved\n"), err[-3000:]
        with Client(db_url):
            check_settled(store, census(store), graph, "b")
            check_company(store, MoveCompany.get_by_alias("acme"), "b")
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def test_a_write_through_a_stale_handle_beside_a_crashed_move_is_kept(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A counter loaded on ``a``, moved to ``b`` by another process, then moved back towards
    ``a`` by a mover killed after the copy (shadows on ``a``): a write through the first
    handle lands on the counter (on ``b``), and the repair keeps it."""
    store = _store(db_url, backend_url_factory, "second")
    with Client(db_url):
        made = MoveCounter()
        made.make_persistent(backend_id="a")
        object_id = made._dc_meta.id
    with Client(db_url) as client:
        counter = MoveCounter.get_by_id(object_id)
        assert counter.name == ""
        moved = run_child("move", db_url, str(object_id), "b")
        assert moved.returncode == 0, moved.stderr[-3000:]
        killed = run_child("move", db_url, str(object_id), "a", "--kill", "copied")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert census(store).homes(store, object_id) == ["b"]

        try:
            counter.name = "x"
        except errors.ObjectMovedError:  # retryable: nothing was written
            counter.name = "x"

        assert [r.outcome for r in client.repair_moves()] == ["undone"]
        found = census(store)
        assert [n for n, registry in found.registry.items() if object_id in registry] == ["b"]
    with Client(db_url):
        assert MoveCounter.get_by_id(object_id).name == "x"
