"""Who holds locks on a database's tables, per engine, and how a stale holder is ended.

Owns :class:`HeldLock` (one holder as the engine sees it) and :class:`Locks` with one subclass
per engine, reached with ``dialect.locks(conn)``:

- :class:`PostgreSQLLocks`: the sessions holding relation locks on the given tables (row
  writes and ``SELECT ... FOR UPDATE`` take one on the table), read from ``pg_locks`` joined
  with ``pg_stat_activity``; the tables are resolved through the connection's ``search_path``
  (so a store kept in its own schema sees its own tables only).  A holder is ended with
  ``pg_terminate_backend``.
- :class:`SQLiteLocks`: SQLite locks the database *file*, so its holders are processes.  On
  Linux, ``/proc/locks`` lists the POSIX locks on the database file and its ``-shm`` file with
  the pid of each process; a process's age and command line come from ``/proc/<pid>``.
  A writer that died leaves uncommitted frames at the end of the ``-wal`` file (WAL mode), or
  a hot ``-journal`` (rollback mode), which no live process holds: a *stale* holder, recovered
  with ``PRAGMA wal_checkpoint(TRUNCATE)`` or by reading the database (SQLite rolls a hot
  journal back then).  A live process is never ended: on SQLite the lock holder is an
  application itself, and killing it is not a database's decision.  Elsewhere than Linux no
  process is listed (only stale files).

Called by :mod:`claystore.housekeeping.locks`.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from typing_extensions import override

#: How long ``pg_terminate_backend`` waits for the session to end (milliseconds).
TERMINATE_WAIT_MS = 5000


@dataclasses.dataclass(frozen=True)
class HeldLock:
    """A holder of locks on some tables of one database, as its engine reports it."""

    pid: int | None  # server process (PostgreSQL), client process (SQLite); None: none alive
    tables: tuple[str, ...]
    age: float | None  # seconds (transaction on PostgreSQL, process or file on SQLite)
    state: str
    application_name: str | None = None
    query: str | None = None
    is_own: bool = False
    is_stale: bool = False
    note: str | None = None
    #: clear_locks can end it (a PostgreSQL session; a crashed SQLite writer's leftovers), else
    #: it is told about only (a live SQLite process: the application itself)
    can_end: bool = False


class Locks:
    """Lock holders of one database (``conn``: a connection to it, outside a transaction).
    The base lists none and ends none."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def holders(self, tables: Sequence[str], own: Iterable[int] = ()) -> list[HeldLock]:
        """Every holder of locks on ``tables`` (names as claystore creates them); those whose
        pid is in ``own`` (or the calling connection's) are marked ``is_own``."""
        return []

    def clear(self, holder: HeldLock) -> tuple[bool, str | None]:
        """End ``holder``: whether it was ended, and why not (or what was done)."""
        return False, "this engine cannot end lock holders"


# -- PostgreSQL ----------------------------------------------------------------------------------

_PG_HOLDERS = sa.text(
    """
    WITH claystore_table AS (
        SELECT to_regclass(quote_ident(name))::oid AS oid, name
        FROM unnest(CAST(:tables AS text[])) AS name
    )
    SELECT a.pid,
           EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS age,
           coalesce(a.state, a.backend_type) AS state,
           a.application_name,
           a.query,
           array_agg(DISTINCT t.name ORDER BY t.name) AS tables,
           a.pid = pg_backend_pid() AS is_caller
    FROM pg_locks AS l
    JOIN claystore_table AS t ON t.oid = l.relation
    JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'relation'
      AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    GROUP BY a.pid, a.xact_start, a.state, a.backend_type, a.application_name, a.query
    ORDER BY age DESC NULLS LAST, a.pid
    """
)

#: SQLSTATE of "permission denied" (terminating another role's session without the right).
_INSUFFICIENT_PRIVILEGE = "42501"


class PostgreSQLLocks(Locks):
    """The sessions of this database holding relation locks on the tables (granted ones: a
    session waiting for a lock holds nothing yet).  Prepared transactions hold locks without a
    session and are not listed (the integrity check reports them as pending commits)."""

    @override
    def holders(self, tables: Sequence[str], own: Iterable[int] = ()) -> list[HeldLock]:
        if not tables:
            return []
        own_pids = set(own)
        rows = self.conn.execute(_PG_HOLDERS, {"tables": list(tables)}).mappings()
        return [
            HeldLock(
                pid=int(row["pid"]),
                tables=tuple(row["tables"]),
                age=None if row["age"] is None else max(float(row["age"]), 0.0),
                state=str(row["state"] or "unknown"),
                application_name=row["application_name"] or None,
                query=row["query"] or None,
                is_own=bool(row["is_caller"]) or int(row["pid"]) in own_pids,
                can_end=True,
            )
            for row in rows
        ]

    @override
    def clear(self, holder: HeldLock) -> tuple[bool, str | None]:
        """``pg_terminate_backend``, waiting up to :data:`TERMINATE_WAIT_MS` for the session
        to end (its locks are free when this returns True)."""
        if holder.pid is None or holder.is_own:
            return False, "one of the caller's own sessions" if holder.is_own else None
        version = int(self.conn.exec_driver_sql("SHOW server_version_num").scalar_one())
        if version >= 140000:
            statement = sa.text("SELECT pg_terminate_backend(:pid, :wait)")
        else:  # pragma: no cover - servers before 14 cannot wait for the end
            statement = sa.text("SELECT pg_terminate_backend(:pid)")
        try:
            ended = self.conn.execute(
                statement, {"pid": holder.pid, "wait": TERMINATE_WAIT_MS}
            ).scalar()
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
                raise
            self.conn.rollback()
            return False, f"not allowed to terminate it: {str(exc.orig).strip()}"
        if ended:
            return True, "terminated"
        return False, "the session did not end (already gone, or still ending)"


# -- SQLite ----------------------------------------------------------------------------------------

#: Byte offsets SQLite locks (os_unix.c): the rollback-mode locks on the database file...
_PENDING_BYTE = 0x40000000
_RESERVED_BYTE = _PENDING_BYTE + 1
#: ... and the WAL-mode locks on the ``-shm`` file: the writer's, then the readers' marks.
_WAL_WRITE_BYTE = 120
_WAL_READ_BYTES = range(123, 128)
#: The first bytes of a journal SQLite still has to roll back.
_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")
_WAL_HEADER = 32
_FRAME_HEADER = 24


@dataclasses.dataclass
class _FileLock:
    """One line of ``/proc/locks``."""

    pid: int
    is_write: bool
    device: tuple[int, int]
    inode: int
    start: int
    end: int | None  # None: to the end of the file (EOF)

    def covers(self, offset: int) -> bool:
        return self.start <= offset and (self.end is None or offset <= self.end)


def _read_proc_locks() -> list[_FileLock]:
    """The POSIX locks of every process (Linux ``/proc/locks``; elsewhere none)."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8 or parts[1] == "->" or parts[1] not in ("POSIX", "OFDLCK"):
            continue  # a waiter, or a flock() lock (SQLite takes none)
        major, minor, inode = parts[5].split(":")
        found.append(
            _FileLock(
                pid=int(parts[4]),
                is_write=parts[3] == "WRITE",
                device=(int(major, 16), int(minor, 16)),
                inode=int(inode),
                start=int(parts[6]),
                end=None if parts[7] == "EOF" else int(parts[7]),
            )
        )
    return found


def _file_key(path: str) -> tuple[tuple[int, int], int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino


def _process_age(pid: int) -> float | None:
    """Seconds since process ``pid`` started (``/proc/<pid>/stat``), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime in ticks
    return max(uptime - started, 0.0)


def _process_text(pid: int, name: str) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


def _file_age(path: str) -> float | None:
    try:
        return max(time.time() - os.stat(path).st_mtime, 0.0)
    except OSError:
        return None


def uncommitted_wal_frames(path: str) -> int:
    """How many frames at the end of the WAL file ``path`` follow its last commit (frames of
    this WAL generation: their salts match the header's)."""
    try:
        with open(path, "rb") as wal:
            header = wal.read(_WAL_HEADER)
            if len(header) < _WAL_HEADER:
                return 0
            page_size = struct.unpack(">I", header[8:12])[0]
            page_size = 65536 if page_size == 1 else page_size
            salts = header[16:24]
            frames = after_commit = 0
            while True:
                frame = wal.read(_FRAME_HEADER)
                if len(frame) < _FRAME_HEADER or frame[8:16] != salts:
                    return after_commit
                frames += 1
                after_commit = 0 if struct.unpack(">I", frame[4:8])[0] else after_commit + 1
                wal.seek(page_size, os.SEEK_CUR)
    except OSError:
        return 0


def is_hot_journal(path: str) -> bool:
    """Whether the rollback journal ``path`` holds changes to roll back (it starts with the
    journal header)."""
    try:
        with open(path, "rb") as journal:
            return journal.read(len(_JOURNAL_MAGIC)) == _JOURNAL_MAGIC
    except OSError:
        return False


class SQLiteLocks(Locks):
    """The processes holding the database file's locks, and what a dead writer left behind
    (see the module docstring).  A lock covers the whole database: a holder's ``tables`` are
    those of ``tables`` that this database has."""

    def _database_path(self) -> str | None:
        for _seq, name, path in self.conn.exec_driver_sql("PRAGMA database_list").all():
            if name == "main":
                return str(path) or None  # "": in memory, no file and no file locks
        return None  # pragma: no cover - every SQLite connection has a main database

    def _present(self, tables: Sequence[str]) -> tuple[str, ...]:
        existing = set(
            self.conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
            .scalars()
            .all()
        )
        return tuple(sorted(name for name in tables if name in existing))

    @override
    def holders(self, tables: Sequence[str], own: Iterable[int] = ()) -> list[HeldLock]:
        path = self._database_path()
        if path is None:
            return []
        # the files first: the first read of the database would roll a hot journal back
        database, shm = _file_key(path), _file_key(path + "-shm")
        file_locks = _read_proc_locks()
        stale = self._stale(path)
        present = self._present(tables)
        if not present:
            return []
        by_pid: dict[int, list[tuple[str, _FileLock]]] = {}
        for lock in file_locks:
            key = (lock.device, lock.inode)
            if key == database:
                by_pid.setdefault(lock.pid, []).append(("db", lock))
            elif key == shm:
                by_pid.setdefault(lock.pid, []).append(("shm", lock))
        found: list[HeldLock] = []
        has_writer = False
        for pid, locks in sorted(by_pid.items()):
            is_writer = any(
                lock.is_write and lock.covers(_WAL_WRITE_BYTE if where == "shm" else _RESERVED_BYTE)
                for where, lock in locks
            )
            is_reader = any(
                where == "shm" and any(lock.covers(mark) for mark in _WAL_READ_BYTES)
                for where, lock in locks
            )
            has_writer = has_writer or is_writer
            found.append(
                HeldLock(
                    pid=pid,
                    tables=present,
                    age=_process_age(pid),
                    state="writing" if is_writer else "reading" if is_reader else "open",
                    application_name=_process_text(pid, "comm"),
                    query=_process_text(pid, "cmdline"),
                    is_own=pid == os.getpid(),
                )
            )
        if not has_writer:  # else the files are the live writer's
            found.extend(dataclasses.replace(held, tables=present) for held in stale)
        found.sort(key=lambda held: -(held.age or 0.0))
        return found

    def _stale(self, path: str) -> list[HeldLock]:
        """What a writer that is gone left: uncommitted WAL frames, a hot journal."""
        stale = []
        frames = uncommitted_wal_frames(path + "-wal")
        if frames:
            stale.append(
                HeldLock(
                    pid=None,
                    tables=(),
                    age=_file_age(path + "-wal"),
                    state="stale wal",
                    is_stale=True,
                    note=f"{frames} uncommitted frames at the end of {path}-wal, no live writer",
                )
            )
        if is_hot_journal(path + "-journal"):
            stale.append(
                HeldLock(
                    pid=None,
                    tables=(),
                    age=_file_age(path + "-journal"),
                    state="stale journal",
                    is_stale=True,
                    note=f"hot journal {path}-journal, no live writer",
                )
            )
        return stale

    @override
    def clear(self, holder: HeldLock) -> tuple[bool, str | None]:
        """Recover a stale holder: a checkpoint that empties the WAL (``TRUNCATE``), or a read
        that rolls a hot journal back.  A live process is left alone."""
        if not holder.is_stale:
            return False, "a live process (SQLite: the application itself); never ended"
        path = self._database_path()
        if path is None:  # pragma: no cover - stale holders are found on files only
            return False, None
        if holder.state == "stale journal":
            self.conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").all()
            if is_hot_journal(path + "-journal"):
                return False, "the journal is still to roll back (another process holds it?)"
            return True, "hot journal rolled back"
        busy, _log, _done = self.conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if busy or uncommitted_wal_frames(path + "-wal"):
            return False, "the checkpoint could not finish (a reader or writer is busy)"
        return True, "checkpointed: the WAL is empty"
