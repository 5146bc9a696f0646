"""Crash safety of a two-phase commit across two PostgreSQL servers: a process killed
(SIGKILL) at each step of the commit of a session that changed one counter on each server
leaves the servers in doubt (prepared transactions, a commit record), and the next client
start resolves it -- both servers hold the whole unit of work when the decision was recorded
before the kill, none of it when not -- leaving no prepared transaction and no record; a
commit whose process is alive (paused between its PREPAREs and its decision) is left to it by
another client's start and repair.

The committer is a child process (:mod:`tests.orm.move_child`, role ``commit``); the metadata
database and backend ``a`` are schemas on the main server, backend ``b`` a database on the
second server.  The servers are read directly (no client, so no recovery) before the restart.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from claystore import Client
from claystore.orm import twophase
from tests.conftest import _fresh_schema
from tests.orm.backend_helpers import commit_rows, drop_prepared, prepared_gids, values_in
from tests.orm.move_child import PAUSE_LIMIT
from tests.orm.move_support import (
    MoveCounter,
    Store,
    make_store,
    run_child,
    start_child,
    wait_child,
)

pytestmark = pytest.mark.slow  # every test runs a child process

#: step -> (the state of the record the kill leaves, whether the unit of work is committed)
KILLS = {
    "recorded": ("preparing", False),
    "prepared": ("preparing", False),
    "decided": ("committing", True),
    "committed": ("committing", True),
}


@pytest.fixture
def store(postgres_database: str | None, postgres2_database: str | None) -> Iterator[Store]:
    """A store on two servers: metadata and ``a`` on the main one, ``b`` on the second."""
    if postgres_database is None or postgres2_database is None:
        pytest.skip("two PostgreSQL servers are needed (set CLAYSTORE_REQUIRE_POSTGRES=1 to fail)")
    with (
        _fresh_schema(postgres_database) as meta,
        _fresh_schema(postgres_database) as a,
        _fresh_schema(postgres2_database) as b,
    ):
        made = make_store(meta, a, b)
        try:
            yield made
        finally:  # what a failed test left prepared would keep the schemas from being dropped
            for url in made.urls.values():
                drop_prepared(url, twophase.gid_prefix(made.ids["default"]))


def _counters(store: Store) -> tuple[UUID, UUID]:
    """A counter (at 0) on backend ``a`` and one on backend ``b``."""
    with Client(store.meta):
        first, second = MoveCounter(), MoveCounter()
        first.make_persistent(backend_id="a")
        second.make_persistent(backend_id="b")
        return first._dc_meta.id, second._dc_meta.id


def _stored(store: Store, ids: tuple[UUID, UUID]) -> tuple[list[int], list[int]]:
    """The two counters as the servers hold them (committed state)."""
    return (
        values_in(store.urls["a"], "move_crash_counter", "counter", ids[0]),
        values_in(store.urls["b"], "move_crash_counter", "counter", ids[1]),
    )


def _in_doubt(store: Store) -> tuple[list[str], list[str]]:
    """This store's prepared transactions in the database of ``a`` (main server) and in that of
    ``b`` (second server)."""
    prefix = twophase.gid_prefix(store.ids["default"])
    return prepared_gids(store.urls["a"], prefix), prepared_gids(store.urls["b"], prefix)


@pytest.mark.parametrize("step", list(KILLS))
def test_a_commit_killed_at_a_step_is_all_or_nothing_after_the_next_start(
    store: Store, step: str
) -> None:
    """kill -9 at ``step``: before the restart, each server holds a prepared transaction
    (from ``prepared`` to the COMMIT PREPAREDs) and the record is there; the next start
    commits both (decision recorded: ``decided``, ``committed``) or rolls both back
    (``recorded``, ``prepared``); then no prepared transaction and no record is left."""
    ids = _counters(store)
    killed = run_child("commit", store.meta, str(ids[0]), str(ids[1]), "--kill", step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    state, committed = KILLS[step]
    assert [r["state"] for r in commit_rows(store.meta)] == [state]
    in_doubt = _in_doubt(store)
    if step in ("prepared", "decided"):
        assert [len(gids) for gids in in_doubt] == [1, 1]  # one on each server
        assert _stored(store, ids) == ([0], [0])  # prepared: not visible yet
    else:
        assert in_doubt == ([], [])
    expected = 1 if committed else 0
    with Client(store.meta) as client:
        resolved = client.resolved_at_start
        outcome = "committed" if committed else "rolled back"
        assert {r.outcome for r in resolved} <= {outcome}
        assert len(resolved) == sum(len(gids) for gids in in_doubt)
        first, second = (MoveCounter.get_by_id(i) for i in ids)
        assert (first.counter, second.counter) == (expected, expected)
        assert client.repair_transactions() == []
    assert _stored(store, ids) == ([expected], [expected])
    assert _in_doubt(store) == ([], [])
    assert commit_rows(store.meta) == []


def _wait_paused(child: object, directory: Path) -> None:
    deadline = time.monotonic() + PAUSE_LIMIT
    while not (directory / "paused").exists():
        if child.poll() is not None:  # type: ignore[attr-defined]
            code, out, err = wait_child(child)  # type: ignore[arg-type]
            pytest.fail(f"the committer ended before pausing: {code} {out!r} {err[-3000:]!r}")
        assert time.monotonic() < deadline, "the committer did not reach its step"
        time.sleep(0.01)


def test_a_live_commit_is_left_to_its_process(store: Store, tmp_path: Path) -> None:
    """While the committer is paused after its PREPAREs (alive, before its decision),
    another client's start and its repair_transactions() end nothing; then the committer
    finishes and both servers hold the unit of work."""
    ids = _counters(store)
    directory = tmp_path / "pause"
    directory.mkdir()
    child = start_child(
        "commit",
        store.meta,
        str(ids[0]),
        str(ids[1]),
        "--pause",
        "prepared",
        "--dir",
        str(directory),
    )
    try:
        _wait_paused(child, directory)
        with Client(store.meta) as client:  # its start recovers what is not alive
            assert client.resolved_at_start == []
            assert client.repair_transactions() == []
        assert [len(gids) for gids in _in_doubt(store)] == [1, 1]
        assert [r["state"] for r in commit_rows(store.meta)] == ["preparing"]
        (directory / "go").touch()
        code, out, err = wait_child(child)
        assert (code, out) == (0, "committed\n"), err[-3000:]
    finally:
        if child.poll() is None:
            child.kill()
            wait_child(child)
    assert _stored(store, ids) == ([1], [1])
    assert _in_doubt(store) == ([], [])
    assert commit_rows(store.meta) == []
