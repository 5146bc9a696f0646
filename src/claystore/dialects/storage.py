"""The space a database's tables take on disk, per engine.

Owns :class:`Storage` (what every engine answers: the tables of the current schema) and one
subclass per engine, reached through :meth:`Dialect.storage(conn)
<claystore.dialects.base.Dialect.storage>`:

- :class:`PostgreSQLStorage`: ``pg_total_relation_size`` of each table of the connection's
  current schema (the first schema of its ``search_path``): the table's heap, its TOAST table
  and every index of it, in whole 8 KiB pages, free space inside them included;
- :class:`SQLiteStorage`: with the ``dbstat`` virtual table (SQLite built with
  ``SQLITE_ENABLE_DBSTAT_VTAB``, as most builds are), the pages of each table's b-tree and of
  its indexes' (``pgsize``, summed per table); without it only the whole file is known
  (``PRAGMA page_count`` x ``page_size``), and a table's size is refused rather than guessed
  (:attr:`SQLiteStorage.has_dbstat`).

Called by :mod:`claystore.housekeeping.storage`, which picks the tables (claystore's) and adds
them up per backend.  Imports nothing above ``dialects/``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from typing_extensions import override

from claystore import errors

__all__ = ["PostgreSQLStorage", "SQLiteStorage", "Storage"]


class Storage:
    """Sizes of the tables of one database (``conn``: a connection to it).

    The default knows the tables (engine-independent) and no size: an engine overrides
    :meth:`table_sizes` and :meth:`database_size`.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @property
    def can_measure_tables(self) -> bool:
        """Whether :meth:`table_sizes` can measure tables one by one (not: only the whole
        database is known, :meth:`database_size`)."""
        return False

    def table_names(self) -> list[str]:
        """The tables of the connection's current schema."""
        return list(sa.inspect(self.conn).get_table_names())

    def table_sizes(self, tables: Collection[str]) -> dict[str, int]:
        """Bytes each of ``tables`` takes with its indexes (tables that do not exist are left
        out)."""
        msg = f"claystore cannot measure the tables of a {self.conn.dialect.name} database"
        raise errors.ConfigurationError(msg)

    def database_size(self) -> int:
        """Bytes the whole database takes (every table, claystore's or not)."""
        msg = f"claystore cannot measure a {self.conn.dialect.name} database"
        raise errors.ConfigurationError(msg)


class PostgreSQLStorage(Storage):
    """PostgreSQL: ``pg_total_relation_size`` (heap + TOAST + indexes) of the tables of the
    current schema, found by name in ``pg_class``."""

    @override
    @property
    def can_measure_tables(self) -> bool:
        return True

    @override
    def table_sizes(self, tables: Collection[str]) -> dict[str, int]:
        if not tables:
            return {}
        statement = sa.text(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND c.relname IN :names"
        ).bindparams(sa.bindparam("names", expanding=True))
        rows = self.conn.execute(statement, {"names": sorted(tables)})
        return {str(name): int(size) for name, size in rows}

    @override
    def database_size(self) -> int:
        """The tables of the current schema (the database may hold other schemas: other
        stores')."""
        return sum(self.table_sizes(self.table_names()).values())


class SQLiteStorage(Storage):
    """SQLite: the ``dbstat`` virtual table when the library has it, else page counts."""

    #: Whether this process's SQLite library has the ``dbstat`` virtual table; None until the
    #: first :class:`SQLiteStorage` asks (once per process: it is a compile-time option).
    #: Tests set it to False to take the page-count path.
    has_dbstat: ClassVar[bool | None] = None

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        if SQLiteStorage.has_dbstat is None:
            SQLiteStorage.has_dbstat = _find_dbstat(conn)

    @override
    @property
    def can_measure_tables(self) -> bool:
        return bool(SQLiteStorage.has_dbstat)

    @override
    def table_sizes(self, tables: Collection[str]) -> dict[str, int]:
        """The pages of each table's b-tree and of its indexes' (their ``pgsize`` in
        ``dbstat``): overflow pages included, free pages of the file not."""
        if not self.can_measure_tables:
            msg = (
                f"the SQLite library of this Python (SQLite {_version(self.conn)}) has no "
                "dbstat table, so the size of single tables (one class's) is unknown; only "
                "the whole database file can be measured.  Run with a SQLite library built "
                "with SQLITE_ENABLE_DBSTAT_VTAB (as most Linux distributions' are) to measure "
                "one class"
            )
            raise errors.ConfigurationError(msg)
        if not tables:
            return {}
        statement = sa.text(
            "SELECT m.tbl_name, sum(s.pgsize) FROM sqlite_master AS m "
            "JOIN dbstat('main', 1) AS s ON s.name = m.name "
            "WHERE m.type IN ('table', 'index') AND m.tbl_name IN :names "
            "GROUP BY m.tbl_name"
        ).bindparams(sa.bindparam("names", expanding=True))
        rows = self.conn.execute(statement, {"names": sorted(tables)})
        return {str(name): int(size or 0) for name, size in rows}

    @override
    def database_size(self) -> int:
        """The database file as SQLite sees it: ``page_count`` x ``page_size`` (every table and
        index, SQLite's own schema table and the free pages; pages still in the ``-wal`` file
        are counted as the database's)."""
        pages = self.conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        page_size = self.conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        return int(pages) * int(page_size)


def _find_dbstat(conn: Connection) -> bool:
    """Whether ``conn``'s SQLite has the ``dbstat`` virtual table: a statement naming it is
    prepared (``LIMIT 0`` reads no page); SQLite refuses it with "no such table" if not (an
    error that leaves a transaction as it was)."""
    try:
        conn.exec_driver_sql("SELECT name FROM dbstat LIMIT 0").all()
    except sa.exc.OperationalError as exc:
        if "dbstat" not in str(exc.orig):
            raise
        return False
    return True


def _version(conn: Connection) -> str:
    return ".".join(str(part) for part in conn.dialect.server_version_info or ())
