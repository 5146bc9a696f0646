"""``client.list_locks`` and ``client.clear_locks``: locks held by a second process (a raw
connection in an open write transaction, :mod:`tests.housekeeping.lock_holder`), the caller's
own session, collections, PostgreSQL's ``application_name``, and what a SQLite writer killed
mid-transaction leaves behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore import Client, DataClayObject, activemethod
from claystore.dialects.locks import SQLiteLocks
from claystore.errors import ConfigurationError, LockTimeoutError
from claystore.housekeeping.report import LockHolder
from tests.housekeeping.lock_holder import APPLICATION_NAME

ROOT = Path(__file__).resolve().parents[2]
COUNTER_TABLE = "hk_lock_counter"
OTHER_TABLE = "hk_lock_other"


class LkCounter(DataClayObject):
    """A counter bumped by an activemethod (a locked read-modify-write of its row)."""

    __tablename__ = COUNTER_TABLE
    counter: int = 0
    note: str = ""

    @activemethod
    def bump(self) -> int:
        """Add one."""
        self.counter += 1
        return self.counter


class LkOther(DataClayObject):
    """Another class, whose table another process locks in the collection tests."""

    __tablename__ = OTHER_TABLE
    counter: int = 0
    note: str = ""


@contextlib.contextmanager
def lock_held(url: str, table: str, *flags: str) -> Iterator[subprocess.Popen[str]]:
    """A second process holding a write lock on ``table`` (it printed ``locked``); killed and
    waited for at the end."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    command = [sys.executable, "-m", "tests.housekeeping.lock_holder", url, table, *flags]
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(30)
        if holder.stdout is not None:
            holder.stdout.close()


def foreign(holders: list[LockHolder]) -> list[LockHolder]:
    """The holders that are live and not the caller's."""
    return [h for h in holders if not h.is_own and not h.is_stale]


def stored_counter(client: Client, table: str = COUNTER_TABLE) -> int:
    """The committed ``counter`` of the (one) row of ``table``."""
    with client.engine.connect() as conn:
        return int(conn.execute(sa.text(f'SELECT counter FROM "{table}"')).scalar_one())


def test_list_locks_shows_another_process_holding_a_lock(db_url: str, engine_name: str) -> None:
    """A second process in an open write transaction on an object's row is listed, with its
    age, tables and what identifies it, and not as the caller's own; nothing is ended."""
    with Client(db_url) as client:
        LkCounter().make_persistent()
        with lock_held(db_url, COUNTER_TABLE) as holder:
            time.sleep(0.05)
            [found] = foreign(client.list_locks())
            assert COUNTER_TABLE in found.tables
            assert found.age is not None
            assert found.age > 0
            assert found.backend == "default"
            assert not found.cleared
            if engine_name == "postgresql":  # a server session, named by its client
                assert found.application_name == APPLICATION_NAME
                assert found.state == "idle in transaction"
                assert "UPDATE" in (found.query or "")
            else:  # a process holding the database file's write lock
                assert found.pid == holder.pid
                assert found.state == "writing"
                assert "lock_holder" in (found.query or "")
            assert holder.poll() is None
        assert foreign(client.list_locks()) == []


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_clear_locks_ends_a_stuck_session_then_an_activemethod_succeeds(db_url: str) -> None:
    """An activemethod times out on a row another session holds; clear_locks(older_than=0)
    terminates that session (its change rolled back) and the activemethod then succeeds."""
    with Client(db_url, lock_timeout=1) as client:
        counter = LkCounter()
        counter.make_persistent()
        with lock_held(db_url, COUNTER_TABLE):
            with pytest.raises(LockTimeoutError):
                counter.bump()
            [found] = foreign(client.clear_locks(older_than=0))
            assert found.cleared
            assert found.application_name == APPLICATION_NAME
            assert foreign(client.list_locks()) == []
            assert counter.bump() == 1
        assert stored_counter(client) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_clear_locks_never_kills_a_live_sqlite_process(db_url: str) -> None:
    """On SQLite the lock holder is an application: clear_locks lists the live writer with
    its pid, ends nothing and says why."""
    with Client(db_url) as client:
        LkCounter().make_persistent()
        with lock_held(db_url, COUNTER_TABLE) as holder:
            [found] = foreign(client.clear_locks(older_than=0))
            assert found.pid == holder.pid
            assert not found.cleared
            assert "never ended" in (found.note or "")
            time.sleep(0.1)
            assert holder.poll() is None
            assert [h.pid for h in foreign(client.list_locks())] == [holder.pid]


def test_clear_locks_never_ends_the_callers_own_session(db_url: str) -> None:
    """The caller's own open session is listed as its own, is not ended by
    clear_locks(older_than=0), and commits afterwards."""
    with Client(db_url) as client:
        counter = LkCounter()
        counter.make_persistent()
        with client.session() as session:
            counter.counter = 7
            session.flush()
            holders = client.clear_locks(older_than=0)
            own = [h for h in holders if h.is_own]
            assert own
            assert all(not h.cleared for h in holders)
            assert any(COUNTER_TABLE in h.tables for h in own)
            assert foreign(holders) == []
        assert stored_counter(client) == 7
        assert counter.bump() == 8


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_clear_locks_leaves_holders_younger_than_older_than(db_url: str) -> None:
    """A session younger than ``older_than`` is listed but not terminated."""
    with Client(db_url) as client:
        LkCounter().make_persistent()
        with lock_held(db_url, COUNTER_TABLE):
            [found] = foreign(client.clear_locks(older_than=3600))
            assert not found.cleared
            assert "younger than" in (found.note or "")
            [still] = foreign(client.list_locks())
            assert still.pid == found.pid


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_default_older_than_is_the_lock_timeout(db_url: str) -> None:
    """clear_locks() without ``older_than`` spares a session younger than the client's lock
    timeout and ends it once it is older."""
    with Client(db_url, lock_timeout=2) as client:
        LkCounter().make_persistent()
        with lock_held(db_url, COUNTER_TABLE):
            [young] = foreign(client.clear_locks())
            assert young.age is not None
            assert young.age < 2
            assert not young.cleared
            time.sleep(2.1 - young.age)
            [old] = foreign(client.clear_locks())
            assert old.cleared


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_collection_lists_only_the_locks_on_its_tables(db_url: str) -> None:
    """A lock on another class's table is not listed (nor cleared) for a collection; by class,
    name or table name the class whose table is locked lists it."""
    with Client(db_url) as client:
        LkCounter().make_persistent()
        LkOther().make_persistent()
        with lock_held(db_url, OTHER_TABLE):
            assert foreign(client.list_locks(LkCounter)) == []
            assert foreign(client.clear_locks(COUNTER_TABLE, older_than=0)) == []
            for collection in (LkOther, "LkOther", OTHER_TABLE, None):
                [found] = foreign(client.list_locks(collection))
                assert found.tables == (OTHER_TABLE,)


def test_locks_on_another_backend_are_listed_under_its_name(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A lock held on a table of another backend of the store is listed under that backend's
    name (every backend is read)."""
    other = backend_url_factory("local")
    with Client(db_url) as client:
        client.add_backend(other, "b")
        LkCounter().make_persistent(backend_id="b")
        with lock_held(other, COUNTER_TABLE):
            [found] = foreign(client.list_locks())
            assert found.backend == "b"
            assert COUNTER_TABLE in found.tables
            [(backend, pid)] = [(h.backend, h.pid) for h in foreign(client.list_locks(LkCounter))]
            assert (backend, pid) == ("b", found.pid)


def test_bad_arguments_raise_clear_errors(client: Client) -> None:
    """An unknown collection, or an ``older_than`` that is no number of seconds, is refused
    with a ConfigurationError naming the value."""
    with pytest.raises(ConfigurationError, match="'NoSuchClass'"):
        client.list_locks("NoSuchClass")
    with pytest.raises(ConfigurationError, match="'NoSuchClass'"):
        client.clear_locks("NoSuchClass")
    for bad in (-1, "soon", float("nan")):
        with pytest.raises(ConfigurationError, match="older_than"):
            client.clear_locks(older_than=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_claystore_names_its_postgresql_sessions(client: Client) -> None:
    """claystore's connections carry ``application_name`` "claystore <host> <pid>" (at most
    63 bytes), and its sessions are its own in list_locks."""
    with client.engine.connect() as conn:
        name = conn.exec_driver_sql(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).scalar_one()
    assert name.startswith("claystore ")
    assert name.endswith(f" {os.getpid()}")
    assert len(name.encode()) <= 63


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_users_application_name_is_kept(db_url: str) -> None:
    """An ``application_name`` the user gives (in the URL, or in connect_args) is kept."""
    in_url = make_url(db_url).update_query_dict({"application_name": "from-url"})
    given = [
        (in_url.render_as_string(hide_password=False), {}, "from-url"),
        (db_url, {"connect_args": {"application_name": "from-args"}}, "from-args"),
    ]
    for url, options, expected in given:
        with Client(url, engine_options=options) as client, client.engine.connect() as conn:
            name = conn.exec_driver_sql(
                "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).scalar_one()
            assert name == expected


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_killed_sqlite_writer_is_stale_and_recovered(db_url: str) -> None:
    """A writer SIGKILLed with uncommitted pages in the -wal is reported stale (no pid, no
    live writer); clear_locks checkpoints it away, and the object reads its committed value
    and an activemethod works."""
    path = Path(str(make_url(db_url).database))
    with Client(db_url) as client:
        counter = LkCounter()
        counter.make_persistent(alias="counted")
        with lock_held(db_url, COUNTER_TABLE, "--spill") as holder:
            holder.send_signal(signal.SIGKILL)
            holder.wait(30)
        [stale] = [h for h in client.list_locks() if h.is_stale]
        assert stale.pid is None
        assert stale.state == "stale wal"
        assert COUNTER_TABLE in stale.tables
        assert not stale.cleared
        [recovered] = [h for h in client.clear_locks() if h.is_stale]
        assert recovered.cleared
        assert [h for h in client.list_locks() if h.is_stale] == []
        assert Path(f"{path}-wal").stat().st_size == 0
    with Client(db_url) as client:
        fresh = LkCounter.get_by_alias("counted")
        assert (fresh.counter, fresh.note) == (0, "")
        assert fresh.bump() == 1


def test_a_hot_sqlite_journal_is_stale_and_rolled_back(tmp_path: Path) -> None:
    """In rollback-journal mode, a writer killed mid-transaction leaves a hot -journal: it is
    reported stale, and clearing it rolls it back (the committed row is read)."""
    path = tmp_path / "journal.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = DELETE")
            conn.exec_driver_sql(f"CREATE TABLE {COUNTER_TABLE} (counter INTEGER, note TEXT)")
            conn.exec_driver_sql(f"INSERT INTO {COUNTER_TABLE} VALUES (1, '')")
        engine.dispose()  # no connection of ours left open on the file
        url = f"sqlite:///{path}"
        with lock_held(url, COUNTER_TABLE, "--rollback-journal", "--spill") as holder:
            holder.send_signal(signal.SIGKILL)
            holder.wait(30)
        assert Path(f"{path}-journal").stat().st_size > 0
        with engine.connect() as conn:
            locks = SQLiteLocks(conn)
            [stale] = locks.holders([COUNTER_TABLE])
            assert (stale.state, stale.is_stale, stale.pid) == ("stale journal", True, None)
            assert locks.clear(stale)[0]
            row = conn.exec_driver_sql(f"SELECT counter, length(note) FROM {COUNTER_TABLE}")
            assert row.one() == (1, 0)
            assert locks.holders([COUNTER_TABLE]) == []
    finally:
        engine.dispose()
