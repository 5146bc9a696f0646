"""SQLite: the embedded default.

Owns the pragmas (WAL journal so readers never block the writer, foreign keys on, a busy
timeout so writers queue instead of failing), and the transaction modes: the pysqlite driver's
own implicit transactions are switched off and claystore emits ``BEGIN`` itself —
``BEGIN IMMEDIATE`` for writes, which takes the database's write lock up front (SQLite's row
lock: an activemethod's read-modify-write can never interleave with another writer's).

Called through :func:`claystore.dialects.base.dialect_for`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, pool
from sqlalchemy.engine import Connection, Engine
from typing_extensions import override

from claystore.dialects.base import EngineSupport

_BEGIN_OPTION = "claystore_begin"


class Support(EngineSupport):
    """SQLite engine support."""

    name = "sqlite"

    @override
    @property
    def is_memory(self) -> bool:
        database = self.url.database
        return not database or database == ":memory:" or "mode=memory" in str(self.url)

    @override
    def engine_options(self) -> dict[str, Any]:
        if self.is_memory:
            # one connection shared by every thread; the context serialises its use
            return {
                "poolclass": pool.StaticPool,
                "connect_args": {"check_same_thread": False},
            }
        return {"pool_size": 8, "max_overflow": 24}

    @override
    def configure(self, engine: Engine, *, lock_timeout: float) -> None:
        is_memory = self.is_memory
        busy_ms = int(lock_timeout * 1000)

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # claystore emits BEGIN itself
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not is_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
            if mode:
                conn.exec_driver_sql(f"BEGIN {mode}")

    @override
    def begin(self, conn: Connection, *, write: bool, lock_timeout: float) -> None:
        conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE" if write else "DEFERRED"})
        conn.begin()

    @override
    def reader(self, conn: Connection) -> Connection:
        return conn.execution_options(**{_BEGIN_OPTION: None})

    @override
    def describe(self) -> str:
        return f"SQLite database {self.url.database or ':memory:'}"
