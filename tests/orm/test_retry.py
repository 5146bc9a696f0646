"""retry_on_conflict: a read-modify-write in a session, run again on a version conflict."""

from __future__ import annotations

import contextvars
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

import claystore
from claystore import Client, DataClayObject, activemethod, errors, retry_on_conflict


class Tally(DataClayObject):
    __tablename__ = "retry_tally"

    n: int = 0
    note: str = ""

    @activemethod
    def try_retry_inside(self) -> None:
        retry_on_conflict(self.bump)

    def bump(self) -> int:
        self.n += 1
        return self.n


def stored_n(client: Client) -> int:
    with client.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT n FROM retry_tally")).scalar_one())


def test_retry_on_conflict_is_public() -> None:
    """The helper is part of the pinned public surface."""
    assert "retry_on_conflict" in claystore.__all__
    assert claystore.retry_on_conflict is retry_on_conflict


def test_returns_what_the_function_returns_and_commits(client: Client) -> None:
    """One run without a conflict: its changes are committed and its result returned."""
    tally = Tally()
    tally.make_persistent()
    assert retry_on_conflict(tally.bump) == 1
    assert stored_n(client) == 1


def test_eight_threads_sharing_one_object_lose_no_increment(client: Client) -> None:
    """8 threads x 100 increments of one shared object through the helper end exactly at 800."""
    tally = Tally()
    tally.make_persistent()

    def work() -> None:
        for _ in range(100):
            retry_on_conflict(tally.bump)

    context = contextvars.copy_context()
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(context.copy().run, work) for _ in range(8)]:
            future.result()
    assert stored_n(client) == 800
    assert tally.n == 800


def test_eight_clients_lose_no_increment(db_url: str, client: Client) -> None:
    """8 threads, each with its own client and handle, x 100 increments end exactly at 800
    (on PostgreSQL their sessions really conflict and are run again)."""
    Tally().make_persistent("tally")
    runs: list[int] = []

    def work() -> None:
        with Client(db_url):
            mine = Tally.get_by_alias("tally")

            def bump() -> None:
                runs.append(1)
                mine.n += 1

            for _ in range(100):
                retry_on_conflict(bump, attempts=50)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stored_n(client) == 800
    assert len(runs) >= 800


def test_a_conflict_runs_the_function_again_in_a_new_session(client: Client) -> None:
    """A run that ends in VersionConflictError writes nothing; the next run starts afresh."""
    tally = Tally()
    tally.make_persistent()
    runs: list[int] = []

    def bump() -> int:
        runs.append(tally.n)
        tally.n += 1
        tally.note = f"run {len(runs)}"
        if len(runs) == 1:
            raise errors.VersionConflictError("Tally changed by someone else (simulated)")
        return tally.n

    assert retry_on_conflict(bump, pause=0) == 1
    assert runs == [0, 0]  # the second run saw the committed 0, not the first run's 1
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT n, note FROM retry_tally")).one() == (1, "run 2")


def test_a_real_concurrent_change_is_retried(engine_name: str, client: Client) -> None:
    """A row another writer changes after the session loaded it: the run is done again on the
    new value, and neither change is lost."""
    if engine_name == "sqlite":
        pytest.skip("a SQLite session holds the write lock: no one else can commit meanwhile")
    tally = Tally()
    tally.make_persistent()
    runs: list[int] = []

    def bump() -> None:
        runs.append(tally.n)
        if len(runs) == 1:
            with client.engine.begin() as conn:  # another writer commits meanwhile
                conn.execute(sa.text("UPDATE retry_tally SET n = 10, dc_version = 2"))
        tally.n += 1

    retry_on_conflict(bump, pause=0)
    assert runs == [0, 10]
    assert stored_n(client) == 11


def test_gives_up_after_the_last_attempt(client: Client) -> None:
    """A conflict in every run is raised after ``attempts`` runs, with nothing written."""
    tally = Tally()
    tally.make_persistent()
    runs: list[int] = []

    def always_conflicts() -> None:
        runs.append(1)
        tally.n += 1
        raise errors.VersionConflictError("Tally changed by someone else (simulated)")

    with pytest.raises(errors.VersionConflictError, match="simulated"):
        retry_on_conflict(always_conflicts, attempts=3, pause=0)
    assert len(runs) == 3
    assert stored_n(client) == 0


def test_other_errors_are_raised_at_once(client: Client) -> None:
    """An exception other than a conflict rolls the run back and is raised without a retry."""
    tally = Tally()
    tally.make_persistent()
    runs: list[int] = []

    def fails() -> None:
        runs.append(1)
        tally.n += 1
        raise ValueError("not a conflict")

    with pytest.raises(ValueError, match="not a conflict"):
        retry_on_conflict(fails)
    assert runs == [1]
    assert stored_n(client) == 0
    assert tally.n == 0


def test_client_picks_the_client(db_url: str, client: Client) -> None:
    """``client=`` runs the sessions on that client."""
    tally = Tally()
    tally.make_persistent()
    retry_on_conflict(tally.bump, client=client)
    assert stored_n(client) == 1


def test_refused_inside_an_open_session_or_activemethod(client: Client) -> None:
    """Inside a session or an activemethod it cannot own its transaction: SessionStateError,
    and the function is not run."""
    tally = Tally()
    tally.make_persistent()
    with client.session(), pytest.raises(errors.SessionStateError, match="call it outside"):
        retry_on_conflict(tally.bump)
    with pytest.raises(errors.SessionStateError, match="session of its own"):
        tally.try_retry_inside()
    assert stored_n(client) == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("attempts", 0),
        ("attempts", -1),
        ("attempts", "3"),
        ("attempts", True),
        ("attempts", 2.0),
        ("pause", -0.1),
        ("pause", math.nan),
        ("pause", math.inf),
        ("pause", "0.1"),
    ],
)
def test_bad_options_are_refused_before_running(option: str, value: Any) -> None:
    """attempts must be a whole number >= 1 and pause a finite number >= 0; nothing runs."""
    runs: list[int] = []
    with pytest.raises(errors.ConfigurationError, match=rf"{option}=.*give"):
        retry_on_conflict(lambda: runs.append(1), **{option: value})
    assert runs == []
