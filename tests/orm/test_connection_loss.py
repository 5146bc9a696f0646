"""A PostgreSQL server that restarts: every operation afterwards succeeds (dead pooled
connections are replaced, a read whose connection dies is run again) or raises
ConnectionLostError, a DatabaseConnectionError that says the connection was lost.

A restart is what pooled connections see when every backend of their database ends: most tests
end them with ``pg_terminate_backend`` on a database of their own (the shared server is never
restarted); one test restarts a throwaway cluster of its own for real, twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore import Client, DataClayObject, activemethod, errors
from tests.conftest import ADMIN_URL, REQUIRE_POSTGRES
from tests.models import Counter, Employee

#: The throwaway cluster restarted for real (created on first use, stopped after the session).
CLUSTER = "claystore_restart"
CLUSTER_PORT = 5435


class Probe(DataClayObject):
    """A counter whose activemethod runs a callback after its write, before the commit."""

    __tablename__ = "loss_probe"
    count: int = 0

    @activemethod
    def bump_then(self, action: Callable[[], None]) -> int:
        """Add one, then call ``action``."""
        self.count += 1
        action()
        return self.count


def _admin(url: str) -> sa.Engine:
    """An engine on the server's maintenance database; no pool (a restart leaves it none)."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def end_backends(admin_url: str, database: str, pids: list[int] | None = None) -> None:
    """End every backend of ``database`` (or those of ``pids``) as a server restart does, and
    wait until they are gone."""
    engine = _admin(admin_url)
    which = "datname = :db" + (" AND pid = ANY(:pids)" if pids is not None else "")
    params: dict[str, Any] = {"db": database, "pids": pids or []}
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE {which} AND pid <> pg_backend_pid()"
                ),
                params,
            )
            deadline = time.monotonic() + 30
            left = sa.text(
                f"SELECT count(*) FROM pg_stat_activity WHERE {which} AND pid <> pg_backend_pid()"
            )
            while conn.execute(left, params).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        engine.dispose()


@contextlib.contextmanager
def own_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of ``admin_url`` (dropped at the end): its URL."""
    name = f"claystore_loss_{uuid.uuid4().hex[:12]}"
    engine = _admin(admin_url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture
def loss_url(postgres_database: str | None) -> Iterator[str]:
    """A database of this test's own on the shared server (its backends may be ended)."""
    if postgres_database is None:
        pytest.skip("PostgreSQL is not reachable (set CLAYSTORE_REQUIRE_POSTGRES=1 to fail)")
    with own_database(ADMIN_URL) as url:
        yield url


def fill_pool(client: Client, size: int = 4) -> None:
    """Leave ``size`` idle connections in the client's pool (all of them die in a restart)."""
    with contextlib.ExitStack() as stack:
        for _ in range(size):
            stack.enter_context(client.engine.connect()).exec_driver_sql("SELECT 1")


def use_everything(client: Client, counter: Counter, expected: int) -> None:
    """Writes and reads of every kind, right after a restart: all succeed (a write first: it
    is not retried, so it needs a live connection at once)."""
    assert counter.increment() == expected  # an activemethod
    assert counter.count == expected  # an autocommit field read
    assert Counter.get_by_alias("c") is counter
    assert Employee.get_by_id(Employee.get_by_alias("e")._dc_meta.id).name == "Ann"
    assert [e.name for e in Employee.dc_query()] == ["Ann"]
    assert Employee.dc_query().count() == 1
    assert len(client.get_backends()) == 1
    counter.history = [expected]  # an autocommit assignment
    Counter().make_persistent()  # a new object
    with client.session():
        Employee.get_by_alias("e").salary = float(expected)
    assert Employee.get_by_alias("e").salary == float(expected)
    assert counter.history == [expected]


def start_and_fill(url: str) -> tuple[Client, Counter]:
    """A started client on ``url`` with a counter "c" and an employee "e"."""
    client = Client(url).start()
    counter = Counter()
    counter.make_persistent("c")
    Employee("Ann", 0.0).make_persistent("e")
    return client, counter


def test_every_operation_succeeds_after_two_restarts_in_a_row(loss_url: str) -> None:
    """After every backend of the database ends (a restart, as pooled connections see it),
    twice in a row, reads and writes of every kind succeed: no 'cannot connect', no dead
    pooled connection left behind."""
    database = make_url(loss_url).database
    assert database is not None
    client, counter = start_and_fill(loss_url)
    try:
        for restart in (1, 2):
            fill_pool(client)
            end_backends(ADMIN_URL, database)
            use_everything(client, counter, restart)
    finally:
        client.stop()


def test_a_read_whose_connection_dies_runs_again_on_a_new_one(loss_url: str) -> None:
    """A read whose connection dies just before its SELECT (a restart in between) is run
    once more on a new connection and succeeds: field reads, get_by_id, get_by_alias."""
    database = make_url(loss_url).database
    assert database is not None
    client, counter = start_and_fill(loss_url)
    ended: list[int] = []

    def end_this_connection(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not ended and "FROM counter" in statement:
            pid = conn.connection.driver_connection.info.backend_pid
            ended.append(pid)
            end_backends(ADMIN_URL, database, [pid])

    sa.event.listen(client.engine, "before_cursor_execute", end_this_connection)
    try:
        reads: list[Callable[[], Any]] = [
            lambda: counter.count,
            lambda: Counter.get_by_id(counter._dc_meta.id).count,
            lambda: Counter.get_by_alias("c").count,
        ]
        for read in reads:
            ended.clear()
            assert read() == 0
            assert len(ended) == 1  # its first connection did die
    finally:
        sa.event.remove(client.engine, "before_cursor_execute", end_this_connection)
        client.stop()


def test_a_write_whose_connection_dies_raises_connection_lost(loss_url: str) -> None:
    """A write whose connection dies before its commit raises ConnectionLostError (a
    DatabaseConnectionError saying the connection was lost, not 'cannot connect'); nothing
    of it is stored, and the next write succeeds."""
    database = make_url(loss_url).database
    assert database is not None
    with Client(loss_url) as client:
        probe = Probe()
        probe.make_persistent()
        with pytest.raises(errors.ConnectionLostError, match="lost the connection") as info:
            probe.bump_then(lambda: end_backends(ADMIN_URL, database))
        assert isinstance(info.value, errors.DatabaseConnectionError)
        assert "cannot connect" not in str(info.value)
        assert probe.count == 0

        def write_in_a_session() -> None:
            with client.session() as session:
                probe.count = 7
                session.flush()
                end_backends(ADMIN_URL, database)

        with pytest.raises(errors.ConnectionLostError, match="run it again"):
            write_in_a_session()
        assert probe.count == 0
        assert probe.bump_then(lambda: None) == 1


# -- a real restart ------------------------------------------------------------------------------


def _clusters() -> dict[str, tuple[str, str]]:
    """The server's clusters: name -> (version, status)."""
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    )
    found = {}
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found[fields[1]] = (fields[0], fields[3])
    return found


def _ctl(version: str, action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, CLUSTER, action],
        check=True,
        capture_output=True,
        text=True,
    )


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    engine = _admin(url)
    try:
        while True:
            try:
                with engine.connect():
                    return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def restart_cluster() -> Iterator[tuple[str, Callable[[], None]]]:
    """A PostgreSQL cluster of claystore's tests alone (port 5435, trust auth), created if it
    does not exist yet (``pg_createcluster``: needs root) and started; stopped at the end of
    the session.  Yields its maintenance URL and a function that restarts it."""
    problem = ""
    if not (shutil.which("pg_createcluster") and shutil.which("pg_ctlcluster")):
        problem = "the pg_createcluster/pg_ctlcluster commands (postgresql-common) are missing"
    elif os.geteuid() != 0:
        problem = "creating a PostgreSQL cluster needs root"
    version = ""
    if not problem:
        try:
            with open(Path("/tmp/claystore_restart_cluster.lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers: one creates it
                clusters = _clusters()
                if CLUSTER not in clusters:
                    version = max((v for v, _ in clusters.values()), key=float, default="15")
                    subprocess.run(
                        [
                            *("pg_createcluster", version, CLUSTER, "-p", str(CLUSTER_PORT)),
                            *("--", "--auth=trust"),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    clusters = _clusters()
                version, status = clusters[CLUSTER]
                if status != "online":
                    _ctl(version, "start")
        except (subprocess.CalledProcessError, OSError, KeyError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            problem = f"the throwaway cluster {CLUSTER} could not be made ready: {detail}"
    if problem:
        if REQUIRE_POSTGRES:
            pytest.fail(f"{problem} (CLAYSTORE_REQUIRE_POSTGRES=1)")
        pytest.skip(problem)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{CLUSTER_PORT}/postgres"
    _wait_ready(url)

    def restart() -> None:
        _ctl(version, "restart")
        _wait_ready(url)

    try:
        yield url, restart
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ctl(version, "stop")


def test_every_operation_succeeds_after_two_real_server_restarts(
    restart_cluster: tuple[str, Callable[[], None]],
) -> None:
    """A real server restart (``pg_ctlcluster restart`` of a throwaway cluster), twice in a
    row: reads and writes of every kind succeed afterwards."""
    admin_url, restart = restart_cluster
    with own_database(admin_url) as url:
        client, counter = start_and_fill(url)
        try:
            for restarts in (1, 2):
                fill_pool(client)
                restart()
                use_everything(client, counter, restarts)
        finally:
            client.stop()
