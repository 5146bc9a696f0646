"""PostgreSQL (psycopg 3): the production engine.

Owns the row lock (``SELECT ... FOR UPDATE OF <root table>``), the lock timeout (set once per
connection), bulk loads through ``COPY``, and short reads in autocommit mode (one round trip,
no transaction to end).

Called through :func:`claystore.dialects.base.dialect_for`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from typing_extensions import override

from claystore.dialects.base import EngineSupport, processed_rows

# advisory lock key for CREATE TABLE between processes ("claystor" in ASCII)
_SCHEMA_LOCK_KEY = 0x636C_6179_7374_6F72
# below this many rows a plain executemany is as quick as COPY
_COPY_THRESHOLD = 200


class Support(EngineSupport):
    """PostgreSQL engine support."""

    name = "postgresql"

    @override
    def engine_options(self) -> dict[str, Any]:
        # no pre-ping (a round trip on every checkout): connections are recycled hourly and
        # SQLAlchemy invalidates the pool when a statement finds a connection dead
        return {"pool_size": 8, "max_overflow": 24, "pool_recycle": 3600}

    @override
    def configure(self, engine: Engine, *, lock_timeout: float) -> None:
        timeout_ms = int(lock_timeout * 1000)

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # once per connection, not per transaction: saves a round trip on every write
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            dbapi_connection.execute(f"SET lock_timeout = '{timeout_ms}ms'")
            dbapi_connection.autocommit = autocommit

    @override
    def reader(self, conn: Connection) -> Connection:
        return conn.execution_options(isolation_level="AUTOCOMMIT")

    @override
    def insert_rows(
        self, conn: Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Bulk rows go through ``COPY ... FROM STDIN`` (several times faster than INSERTs);
        statement listeners of the engine see it like any other statement."""
        if len(rows) < _COPY_THRESHOLD:
            super().insert_rows(conn, table, columns, rows)
            return
        _, processors = self._insert_plan(conn, table, tuple(columns))
        preparer = conn.dialect.identifier_preparer
        column_list = ", ".join(preparer.quote(c) for c in columns)
        statement = f"COPY {preparer.format_table(table)} ({column_list}) FROM STDIN"
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if conn.dispatch.before_cursor_execute:
            for listener in conn.dispatch.before_cursor_execute:
                listener(conn, cursor, statement, (), None, True)
        with cursor.copy(statement) as copy:
            for row in processed_rows(rows, processors):
                copy.write_row(row)

    @override
    def lock_schema(self, conn: Connection) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})

    @override
    def lock_rows(self, statement: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
        return statement.with_for_update(of=table)
