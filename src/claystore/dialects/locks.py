"""The sessions or processes holding locks on a database's tables, per engine (placeholder)."""

from __future__ import annotations

from sqlalchemy.engine import Connection


class Locks:
    """Lock holders of one database (``conn``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn


class PostgreSQLLocks(Locks):
    """PostgreSQL."""


class SQLiteLocks(Locks):
    """SQLite."""
