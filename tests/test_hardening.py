"""Hardening: locks held by other processes, starting beside a writer, bad arguments, and
read-only databases -- each gets a claystore error at the call that caused it, naming the value
and the fix, with nothing written, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import multiprocessing
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.dialects.sqlite.pysqlite  # imported before a fork drops privileges
from sqlalchemy.engine import make_url

import claystore.dialects.sqlite  # noqa: F401  (imported before a fork drops privileges)
from claystore import Client, DataClayObject, activemethod, errors
from claystore.client import MAX_LOCK_TIMEOUT, MIN_LOCK_TIMEOUT
from claystore.datastore import Key, Query
from claystore.orm.mapping import forget_models
from claystore.orm.modelquery import MAX_SQL_COUNT
from tests.models import Counter, Employee

ROOT = Path(__file__).resolve().parents[1]


class LockHolder(DataClayObject):
    """A counter whose activemethod can keep its row locked (in another process)."""

    __tablename__ = "hardening_lock_holder"
    count: int = 0

    @activemethod
    def hold(self) -> None:
        """Bump the count, say so, and keep the row locked until stdin closes."""
        self.count += 1
        print("holding", flush=True)
        sys.stdin.readline()

    @activemethod
    def bump(self) -> int:
        """Add one."""
        self.count += 1
        return self.count


def start_script(script: str, db_url: str, ready: str) -> subprocess.Popen[str]:
    """Run ``script`` (argv[1]: the database URL) in a new process importing this checkout;
    returns once it printed ``ready``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != ready:
        process.kill()
        process.wait(30)
        pytest.fail(f"the other process did not get ready (printed {line!r})")
    return process


def finish(process: subprocess.Popen[str]) -> None:
    """Let a process from :func:`start_script` go on (stdin closes) and wait for its end."""
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(60) == 0


HOLD_ROW = """
    import sys
    from claystore import Client
    from tests.test_hardening import LockHolder

    with Client(sys.argv[1]):
        LockHolder.get_by_alias("held").hold()
"""


@pytest.fixture
def held_elsewhere(db_url: str, client: Client) -> Iterator[subprocess.Popen[str]]:
    """Another process inside an activemethod of the LockHolder "held" (its row locked)."""
    LockHolder().make_persistent("held")
    process = start_script(HOLD_ROW, db_url, "holding")
    try:
        yield process
    finally:
        if process.returncode is None:
            finish(process)


# -- 1. a row another process holds ----------------------------------------------------------


def test_activemethod_on_a_row_another_process_holds_raises_lock_timeout(
    db_url: str, held_elsewhere: subprocess.Popen[str]
) -> None:
    """An activemethod waiting for a row another process holds raises LockTimeoutError after
    lock_timeout (alone, and inside a session: no raw driver error), writing nothing."""
    with Client(db_url, lock_timeout=0.3) as impatient:
        holder = LockHolder.get_by_alias("held")
        began = time.monotonic()
        with pytest.raises(errors.LockTimeoutError, match="lock"):
            holder.bump()
        with impatient.session():
            with pytest.raises(errors.LockTimeoutError, match="lock") as info:
                holder.bump()
            assert not isinstance(info.value, sa.exc.SQLAlchemyError)
        assert time.monotonic() - began < 20
        finish(held_elsewhere)
        assert holder.count == 1  # the other process's increment only
        assert holder.bump() == 2  # and the row is free again


# -- 2. starting beside a writer -------------------------------------------------------------

WRITE_AND_WAIT = """
    import sys
    from claystore import Client, DataClayObject
    from tests.test_hardening import LockHolder

    with Client(sys.argv[1]) as client:
        holder = LockHolder.get_by_alias("held")
        with client.session() as session:
            holder.count = 41
            session.flush()  # the transaction's connection is open, the row written

            class LateTable(DataClayObject):  # its table is created in this transaction
                __tablename__ = "hardening_late"
                n: int = 0

            session.add(LateTable())
            session.flush()  # (the schema lock held on PostgreSQL)
            print("writing", flush=True)
            sys.stdin.readline()
"""


def test_a_client_starts_and_reads_while_another_process_writes(
    db_url: str, client: Client
) -> None:
    """While another process holds a write transaction open (rows updated, a table created),
    a new client starts and reads the committed state within a short lock_timeout: a start
    takes no lock when the tables are in place."""
    LockHolder().make_persistent("held")
    writer = start_script(WRITE_AND_WAIT, db_url, "writing")
    try:
        began = time.monotonic()
        with Client(db_url, lock_timeout=0.5):
            assert LockHolder.get_by_alias("held").count == 0
            assert Counter.dc_query().count() == 0
        assert time.monotonic() - began < 10
    finally:
        finish(writer)
    assert LockHolder.get_by_alias("held").count == 41


def define_later() -> type[DataClayObject]:
    """A model class defined on the spot (each call a new class with the same table)."""

    class Later(DataClayObject):
        __tablename__ = "hardening_later"
        n: int = 0

    return Later


def test_a_class_defined_after_start_whose_table_exists_takes_no_schema_lock(
    db_url: str, client: Client
) -> None:
    """Writing objects of a class defined after the client started, in a transaction, checks
    its table without the schema lock when the table is in place (so it does not wait for
    another process that is creating tables)."""
    first = define_later()
    first().make_persistent()  # its table exists from now on
    forget_models(first)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with Client(db_url) as second:
        sa.event.listen(second.engine, "before_cursor_execute", record)
        later = first
        try:
            with second.session() as session:
                session.add(Counter())
                session.flush()  # the transaction's connection is open
                later = define_later()
                session.add(later())
                session.flush()  # checks (does not create) the table, in the transaction
            sa.event.remove(second.engine, "before_cursor_execute", record)
            assert later.dc_query().count() == 2  # type: ignore[attr-defined]
        finally:
            forget_models(later)
    assert statements
    assert not [s for s in statements if "advisory" in s]


# -- 3. bad arguments ------------------------------------------------------------------------


def test_get_by_id_of_a_malformed_id_names_it(client: Client) -> None:
    """get_by_id with text that is no UUID (or a non-id value) raises ObjectDoesNotExistError
    (a KeyError) naming the value and what an id looks like."""
    for bad in ("not-a-uuid", "", 5, None):
        with pytest.raises(errors.ObjectDoesNotExistError, match="is not an object id") as info:
            Employee.get_by_id(bad)  # type: ignore[arg-type]
        assert repr(bad) in str(info.value)
        assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_a_url_with_a_bad_port_is_refused(port: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL (or DC_URL) whose port is not a number from 1 to 65535 raises ConfigurationError
    at construction, naming the port, never the password."""
    url = f"postgresql://user:secret@db:{port}/claystore"
    with pytest.raises(errors.ConfigurationError, match="port") as info:
        Client(url)
    assert "secret" not in str(info.value)
    assert port in str(info.value)
    monkeypatch.setenv("DC_URL", url)
    with pytest.raises(errors.ConfigurationError, match=f"port .*{port}"):
        Client()


@pytest.mark.parametrize("port", ["abc", 0, -1, 70000, True, 5432.5, "54 32"])
def test_a_bad_port_argument_is_refused(port: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """host/port arguments and DC_PORT take a port from 1 to 65535 (an int or its text)."""
    with pytest.raises(errors.ConfigurationError, match=f"port must be .*not {port!r}"):
        Client(host="db", port=port)
    monkeypatch.delenv("DC_URL", raising=False)
    monkeypatch.setenv("DC_HOST", "db")
    monkeypatch.setenv("DC_PORT", str(port))
    with pytest.raises(errors.ConfigurationError, match="port must be"):
        Client()


@pytest.mark.parametrize(
    "timeout", ["x", "30", None, True, math.nan, math.inf, 0, -1, 0.0001, MAX_LOCK_TIMEOUT + 1]
)
def test_a_bad_lock_timeout_is_refused(db_url: str, timeout: Any) -> None:
    """lock_timeout takes seconds from 1 ms to about 24 days; anything else raises
    ConfigurationError at construction, naming the value."""
    with pytest.raises(errors.ConfigurationError, match="lock_timeout must be") as info:
        Client(db_url, lock_timeout=timeout)
    assert repr(timeout) in str(info.value)


@pytest.mark.parametrize("timeout", [MIN_LOCK_TIMEOUT, MAX_LOCK_TIMEOUT, 5, Fraction(1, 2)])
def test_the_lock_timeout_bounds_work_on_both_engines(db_url: str, timeout: Any) -> None:
    """The shortest and the longest lock_timeout start and write on both engines."""
    with Client(db_url, lock_timeout=timeout) as started:
        assert started.lock_timeout == float(timeout)
        counter = Counter()
        counter.make_persistent()
        assert counter.increment() == 1


@pytest.mark.parametrize(
    ("argument", "value"),
    [("dataset", 5), ("dataset", b"d"), ("username", 5), ("database", ["d"]), ("url", 5)],
)
def test_arguments_of_the_wrong_type_are_refused(argument: str, value: Any) -> None:
    """Client(dataset=5) and the like raise ConfigurationError naming the argument and the
    value's type (before anything connects)."""
    with pytest.raises(errors.ConfigurationError, match=f"{argument} must be a str"):
        Client(**{argument: value})


def test_a_password_of_the_wrong_type_is_refused_without_showing_it() -> None:
    """password=b'secret' is refused, and the message does not show it."""
    with pytest.raises(errors.ConfigurationError, match="password must be a str") as info:
        Client(host="db", password=b"secret")  # type: ignore[arg-type]
    assert "secret" not in str(info.value)


def test_a_bad_dataset_type_writes_nothing(db_url: str, client: Client) -> None:
    """Client(db_url, dataset=5) is refused before it connects: the database is untouched."""
    with pytest.raises(errors.ConfigurationError, match="dataset must be a str, not int 5"):
        Client(db_url, dataset=5)  # type: ignore[arg-type]
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM dc_object")).scalar_one() == 0


@pytest.mark.parametrize("name", [5, 0, False, b"t", "", "  ", "a\x00b", "bad\ud800"])
def test_a_bad_tablename_is_refused_when_the_class_is_defined(name: Any) -> None:
    """__tablename__ must be a non-blank str without NUL or lone surrogates: otherwise
    MappingError names the class and the value when the class is defined."""

    def define() -> None:
        class BadTable(DataClayObject):
            __tablename__ = name
            n: int = 0

        forget_models(BadTable)  # pragma: no cover - only if the name were accepted

    with pytest.raises(errors.MappingError, match="__tablename__") as info:
        define()
    assert "BadTable" in str(info.value)


@pytest.mark.parametrize("count", [MAX_SQL_COUNT + 1, 2**70])
def test_limit_and_offset_beyond_sql_are_refused_at_the_call(client: Client, count: int) -> None:
    """limit(2**70) and offset(2**70) raise QueryError at the call (the query keeps its
    values); a plain datastore Query with such a limit is refused by client.query()."""
    Employee("a", 1.0).make_persistent()
    query = Employee.dc_query().limit(5).offset(1)
    with pytest.raises(errors.QueryError, match=f"limit must be at most {MAX_SQL_COUNT}"):
        query.limit(count)
    with pytest.raises(errors.QueryError, match=f"offset must be at most {MAX_SQL_COUNT}"):
        query.offset(count)
    assert (query.limit, query.offset) == (5, 1)
    with pytest.raises(errors.QueryError, match="limit must be at most"):
        client.query(Query(Key("/Employee"), limit=count))
    with pytest.raises(errors.QueryError, match="offset must be at most"):
        client.query(Query(Key("/Employee"), offset=count))


def test_the_largest_limit_and_offset_run_on_both_engines(client: Client) -> None:
    """limit and offset of 2**63 - 1 run as SQL on both engines."""
    Employee("a", 1.0).make_persistent()
    assert len(list(Employee.dc_query().limit(MAX_SQL_COUNT))) == 1
    assert list(Employee.dc_query().offset(MAX_SQL_COUNT)) == []
    assert Employee.dc_query().order("name").limit(MAX_SQL_COUNT).offset(MAX_SQL_COUNT).count() == 0


# -- 3. read-only databases ------------------------------------------------------------------


def read_only_url(db_url: str) -> str:
    """The same database, opened so that it cannot be written: SQLite ``mode=ro``,
    PostgreSQL ``default_transaction_read_only``."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///file:{url.database}?mode=ro&uri=true"
    options = f"{url.query.get('options', '')} -cdefault_transaction_read_only=on".strip()
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_a_read_only_database_starts_reads_and_refuses_writes(db_url: str) -> None:
    """A database this client cannot write starts (nothing to create), reads, and raises
    ReadOnlyDatabaseError (a PermissionError) naming it and the fix at each write, writing
    nothing -- the same on both engines."""
    with Client(db_url):
        Counter().make_persistent("c")
    with Client(read_only_url(db_url), lock_timeout=1):
        counter = Counter.get_by_alias("c")
        assert counter.count == 0
        writes: list[Callable[[], Any]] = [
            counter.increment,
            lambda: setattr(counter, "count", 5),
            lambda: Counter().make_persistent(),
            lambda: counter.add_alias("other"),
        ]
        for write in writes:
            with pytest.raises(errors.ReadOnlyDatabaseError, match="is read-only") as info:
                write()
            assert "nothing was written" in str(info.value)
            assert isinstance(info.value, PermissionError)
        assert counter.count == 0
    with Client(db_url) as writable, writable.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM dc_object")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM dc_alias")).scalar_one() == 1


def _as_unprivileged(job: Callable[[str], dict[str, str]], path: str) -> dict[str, str]:
    """``job(path)`` run by a user that file permissions apply to: this process when it is
    not root, else a forked child that became ``nobody`` (root ignores permissions)."""
    if os.geteuid() != 0:
        return job(path)
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:  # pragma: no cover - every Debian/Ubuntu image has nobody
        pytest.skip("no 'nobody' user to drop root privileges to")
    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)

    def child() -> None:
        os.setgid(nobody.pw_gid)
        os.setgroups([])
        os.setuid(nobody.pw_uid)
        try:
            send.send(job(path))
        except BaseException as exc:  # reported to the parent, which fails the test
            send.send({"error": f"{type(exc).__name__}: {exc}"})

    process = fork.Process(target=child)
    process.start()
    outcome: dict[str, str] = receive.recv() if receive.poll(120) else {"error": "no answer"}
    process.join(30)
    return outcome


def _read_then_write(path: str) -> dict[str, str]:
    """Start a client on ``path``, read the counter "c", then try to write."""
    outcome: dict[str, str] = {}
    with Client(f"sqlite:///{path}", lock_timeout=0.5):
        counter = Counter.get_by_alias("c")
        outcome["count"] = str(counter.count)
        try:
            counter.increment()
        except errors.ClaystoreError as exc:
            outcome["write"] = f"{type(exc).__name__}: {exc}"
        outcome["after"] = str(counter.count)
    return outcome


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is private to its user)."""
    directory = Path(tempfile.mkdtemp(prefix="claystore-ro-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def _make_database(path: Path) -> None:
    with Client(f"sqlite:///{path}"):
        Counter().make_persistent("c")
    assert not Path(f"{path}-wal").exists()  # closed cleanly: no WAL files left


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_sqlite_file_or_directory_is_readable(
    shared_directory: Path, what: str
) -> None:
    """An SQLite database the user cannot write -- a read-only file, or any file in a
    read-only directory (where SQLite cannot create its -shm file, so it is opened
    immutable) -- starts and reads; a write raises ReadOnlyDatabaseError naming the file and
    the fix, and writes nothing.  Run as a user file permissions apply to."""
    path = shared_directory / "store.db"
    _make_database(path)
    path.chmod(0o444)
    if what == "file" and os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")  # the directory is writable by the reader
        os.chown(shared_directory, nobody.pw_uid, nobody.pw_gid)
    if what == "directory":
        shared_directory.chmod(0o555)
    try:
        outcome = _as_unprivileged(_read_then_write, str(path))
    finally:
        if os.geteuid() == 0:
            os.chown(shared_directory, 0, 0)
        shared_directory.chmod(0o755)
        path.chmod(0o644)
    assert "error" not in outcome, outcome["error"]
    assert outcome["count"] == "0"
    assert outcome["write"].startswith("ReadOnlyDatabaseError")
    assert str(path) in outcome["write"]
    assert "make the file and its directory writable" in outcome["write"]
    assert outcome["after"] == "0"
    with Client(f"sqlite:///{path}"):
        assert Counter.get_by_alias("c").count == 0


def test_a_new_sqlite_file_in_a_read_only_directory_says_so(shared_directory: Path) -> None:
    """Creating a database where the user may not write raises DatabaseConnectionError that
    names the file and the directory to check."""
    shared_directory.chmod(0o555)

    def start(path: str) -> dict[str, str]:
        try:
            Client(f"sqlite:///{path}").start()
        except errors.ClaystoreError as exc:
            return {"start": f"{type(exc).__name__}: {exc}"}
        return {"start": "started"}

    outcome = _as_unprivileged(start, str(shared_directory / "new.db"))
    assert outcome["start"].startswith("DatabaseConnectionError"), outcome
    assert "new.db" in outcome["start"]
    assert "directory" in outcome["start"]
