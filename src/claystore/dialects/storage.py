"""The space a database's tables take, per engine (placeholder until written)."""

from __future__ import annotations

from sqlalchemy.engine import Connection


class Storage:
    """Sizes of the tables of one database (``conn``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn


class PostgreSQLStorage(Storage):
    """PostgreSQL."""


class SQLiteStorage(Storage):
    """SQLite."""
