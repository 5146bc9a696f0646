"""SQLite: the embedded default.

Owns :class:`SQLiteDialect`: the pragmas (WAL journal so readers never block the writer,
foreign keys on, a busy timeout so writers queue instead of failing), and the transaction
modes: the pysqlite driver's own implicit transactions are switched off and claystore emits
``BEGIN`` itself -- ``BEGIN IMMEDIATE`` for writes, which takes the database's write lock up
front (SQLite's row lock: an activemethod's read-modify-write can never interleave with
another writer's).  A database in a directory this process cannot write is opened ``immutable``
(:func:`is_in_read_only_directory`): SQLite could not open it otherwise.  Also what SQLite
lacks and how claystore makes up for it: no exact decimal or timestamp-with-time-zone type
(exact text and UTC ISO text instead, with their column types :class:`DecimalText` and
:class:`ISOTimestampText`), no NaN, and JSON read through ``json_extract``/``json_type``
(``json_each`` for member names a JSON path cannot spell).  Its default collation (BINARY)
already compares text by code point, and its indexes and ORDER BY already sort NULL lowest.
Migrations change tables in alembic's batch mode, and rename an index by creating it again
(SQLite has no ``ALTER INDEX``).

Called through :mod:`claystore.dialects.registry`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import Dialect as SQLAlchemyDialect
from sqlalchemy.types import TypeDecorator, TypeEngine
from typing_extensions import override

from claystore import errors
from claystore.dialects.base import (
    OPERATORS,
    Dialect,
    JSONType,
    json_type_case,
    on_conflict_update,
)
from claystore.dialects.checks import SQLiteValueChecks
from claystore.dialects.locks import SQLiteLocks
from claystore.dialects.storage import SQLiteStorage

_BEGIN_OPTION = "claystore_begin"

#: The head of a CREATE INDEX statement, up to and including the index name (quoted or not).
_INDEX_NAME: Final = re.compile(
    r"^(\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?)"
    r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[^\s(]+)',
    re.IGNORECASE,
)

#: json_type() names -> JSON types.
_JSON_TYPES: Final = {
    "null": JSONType.NULL,
    "true": JSONType.BOOLEAN,
    "false": JSONType.BOOLEAN,
    "integer": JSONType.NUMBER,
    "real": JSONType.NUMBER,
    "text": JSONType.STRING,
    "object": JSONType.OBJECT,
    "array": JSONType.ARRAY,
}
#: The first character of a document's JSON text, by JSON type (any other: a number).
_FIRST_CHARS: Final = {"array": "[", "string": '"', "boolean": "tf", "null": "n"}
_NUMBER_CHARS: Final = "-0123456789"


class ISOTimestampText(TypeDecorator[dt.datetime]):
    """An aware datetime as ISO-8601 text with a fixed ``+00:00`` offset (given in UTC), which
    sorts in time order."""

    impl = sa.String(32)
    cache_ok = True

    @override
    def process_bind_param(self, value: dt.datetime | None, dialect: SQLAlchemyDialect) -> Any:
        return None if value is None else value.isoformat(timespec="microseconds")

    @override
    def process_result_value(self, value: Any, dialect: SQLAlchemyDialect) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value)


class DecimalText(TypeDecorator[Decimal]):
    """A Decimal as its canonical text (SQLite's REAL would round it)."""

    impl = sa.String
    cache_ok = True

    @override
    def process_bind_param(self, value: Decimal | None, dialect: SQLAlchemyDialect) -> Any:
        return None if value is None else str(value)

    @override
    def process_result_value(self, value: Any, dialect: SQLAlchemyDialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def _use_wal(cursor: Any, timeout: float) -> None:
    """Put the database in WAL mode (readers never wait for the writer) unless it is already.

    SQLite refuses a change of journal mode with "database is locked" at once, without waiting
    for its busy timeout, while another connection holds the database (two clients starting on
    a new file together: the other one is switching it to WAL).  Wait for it as the busy timeout
    would, up to ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc).lower():
                return  # a database this process cannot write: its readers need no WAL
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def is_in_read_only_directory(path: str) -> bool:
    """True for an existing database file in a directory this process cannot write, and that
    no process has open in WAL mode (no ``-wal`` or ``-shm`` file beside it).

    SQLite cannot open such a WAL database even to read (it would create its ``-shm`` file
    there); nothing can write it either (a writer needs the directory too), so it is opened
    ``immutable``: read as it is on disk.
    """
    if not os.path.isfile(path):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    if os.access(directory, os.W_OK):
        return False
    return not any(os.path.exists(path + suffix) for suffix in ("-wal", "-shm"))


class SQLiteDialect(Dialect):
    """SQLite, through the pysqlite driver."""

    name = "sqlite"
    title = "SQLite"
    has_exact_decimals = False  # Decimals are exact text, which SQL cannot compare as numbers
    enforces_text_length = False  # VARCHAR(n) holds any text
    can_alter_columns = False  # ALTER TABLE only adds, renames and drops columns
    needs_batch_migrations = True  # so alembic rebuilds a table where ALTER TABLE cannot

    @override
    @property
    def is_memory(self) -> bool:
        database = self.url.database
        return not database or database == ":memory:" or "mode=memory" in str(self.url)

    @override
    def storage(self, conn: Connection) -> SQLiteStorage:
        return SQLiteStorage(conn)

    @override
    def interrupt(self, dbapi_connection: Any) -> None:
        if not self.is_memory:  # an in-memory database's one connection is everyone's
            dbapi_connection.interrupt()

    @override
    def locks(self, conn: Connection) -> SQLiteLocks:
        return SQLiteLocks(conn)

    @override
    def value_checks(self) -> SQLiteValueChecks:
        return SQLiteValueChecks()

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
        super().configure(engine, lock_timeout=lock_timeout)
        is_memory = self.is_memory
        busy_ms = int(lock_timeout * 1000)

        @event.listens_for(engine, "do_connect")
        def on_do_connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: Any) -> None:
            if is_memory or cparams.get("uri") or not cargs:
                return
            path = str(cargs[0])
            if is_in_read_only_directory(path):  # readable only as an immutable file
                cargs[0] = f"file:{urllib.parse.quote(os.path.abspath(path))}?immutable=1"
                cparams["uri"] = True

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # claystore emits BEGIN itself
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not is_memory:
                _use_wal(cursor, lock_timeout)
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

    among_limit = 50_000

    @override
    def copy_between(
        self, source: Connection, target: Connection, table: sa.Table, key: str, ids: Sequence[UUID]
    ) -> bool:
        """The rows as stored (driver values, no type conversion), read with one SELECT and
        written with one executemany."""
        preparer = source.dialect.identifier_preparer
        name = preparer.format_table(table)
        columns = ", ".join(preparer.quote(c.name) for c in table.columns)
        marks = ", ".join("?" * len(table.columns))
        ids_json = "[" + ",".join(f'"{i.hex}"' for i in ids) + "]"
        rows = source.exec_driver_sql(
            f"SELECT {columns} FROM {name} "
            f"WHERE {preparer.quote(key)} IN (SELECT value FROM json_each(?))",
            (ids_json,),
        ).all()
        if rows:
            target.exec_driver_sql(
                f"INSERT INTO {name} ({columns}) VALUES ({marks})", [tuple(r) for r in rows]
            )
        return True

    @override
    @classmethod
    def among(cls, column: sa.ColumnElement[Any], ids: Sequence[UUID]) -> sa.ColumnElement[bool]:
        """The ids (stored as 32 hex digits) go as one JSON array read by ``json_each``: one
        bind parameter whatever their number, where an ``IN`` list takes one per id."""
        text = "[" + ",".join(f'"{i.hex}"' for i in ids) + "]"
        items = sa.func.json_each(sa.bindparam(None, text, type_=sa.String)).table_valued("value")
        return column.in_(sa.select(items.c.value))

    @override
    @classmethod
    def drop_foreign_keys(cls, conn: Connection, table: str) -> None:
        """SQLite cannot drop a constraint: the table is made again without its foreign keys
        (same columns, rows and indexes)."""
        inspector = sa.inspect(conn)
        if not inspector.get_foreign_keys(table):
            return
        old = sa.Table(table, sa.MetaData(), autoload_with=conn)
        rebuilt = sa.Table(
            f"{table}_rebuilt",
            sa.MetaData(),
            *(
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in old.columns
            ),
        )
        rebuilt.create(conn)
        names = [c.name for c in old.columns]
        conn.execute(sa.insert(rebuilt).from_select(names, sa.select(*old.columns)))
        indexes = inspector.get_indexes(table)
        old.drop(conn)
        preparer = conn.dialect.identifier_preparer
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.quote(rebuilt.name)} RENAME TO {preparer.quote(table)}"
        )
        renamed = sa.Table(table, sa.MetaData(), autoload_with=conn)
        for index in indexes:
            columns = [renamed.c[str(name)] for name in index["column_names"]]
            sa.Index(index["name"], *columns, unique=bool(index["unique"])).create(conn)

    @override
    @classmethod
    def rename_index(cls, conn: Connection, table: str, old: str, new: str) -> None:
        """SQLite cannot rename an index: drop it and create it again from its own
        ``CREATE INDEX`` statement under the new name."""
        sql = conn.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"),
            {"name": old},
        ).scalar()
        if not isinstance(sql, str):  # an index SQLite made itself (a constraint's): no SQL
            msg = f"SQLite index {old!r} of table {table!r} has no CREATE statement to rename"
            raise errors.MigrationError(msg)
        preparer = conn.dialect.identifier_preparer
        renamed, count = _INDEX_NAME.subn(lambda m: m[1] + preparer.quote(new), sql, count=1)
        if not count:  # pragma: no cover - SQLite stores every index's CREATE INDEX statement
            msg = f"cannot read the CREATE INDEX statement of SQLite index {old!r}: {sql}"
            raise errors.MigrationError(msg)
        conn.exec_driver_sql(f"DROP INDEX {preparer.quote(old)}")
        conn.exec_driver_sql(renamed)

    @override
    def describe(self) -> str:
        return f"SQLite database {self.url.database or ':memory:'}"

    @override
    @classmethod
    def upsert(cls, table: sa.Table, values: Mapping[str, Any]) -> sa.Insert:
        return on_conflict_update(sqlite.insert(table), table, values)

    # -- SQL -----------------------------------------------------------------------------------

    @override
    @classmethod
    def compare_nan(
        cls, op: str, column: sa.ColumnElement[Any], nan: float
    ) -> sa.ColumnElement[bool] | bool:
        """SQLite stores no NaN (it makes it NULL): every stored number sorts before NaN."""
        return bool(OPERATORS[op](-1, 0))

    # -- JSON documents: json_extract / json_type ----------------------------------------------

    @staticmethod
    def _json_path(field: str) -> str | None:
        if '"' in field or "\\" in field or any(ord(ch) < 0x20 for ch in field):
            return None  # SQLite's JSON paths cannot spell it: use json_each
        return f'$."{field}"'

    @classmethod
    def _json_lookup(
        cls, document: sa.ColumnElement[Any], field: str, column: str
    ) -> sa.ColumnElement[Any]:
        """json_each's ``type`` or ``atom`` column of member ``field``."""
        path = cls._json_path(field)
        if path is not None:
            name = "json_type" if column == "type" else "json_extract"
            return getattr(sa.func, name)(document, path)  # type: ignore[no-any-return]
        each = sa.func.json_each(document).table_valued("key", "type", "atom")
        return sa.select(each.c[column]).where(each.c.key == field).scalar_subquery()

    @override
    @classmethod
    def json_type(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[int]:
        return json_type_case(_JSON_TYPES, cls._json_lookup(document, field, "type"))

    @override
    @classmethod
    def json_member(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[Any]:
        """The member's SQL value (``json_extract``: true and false are 1 and 0)."""
        return cls._json_lookup(document, field, "atom")

    @override
    @classmethod
    def json_order_keys(
        cls, document: sa.ColumnElement[Any], field: str, json_type: sa.ColumnElement[int]
    ) -> list[sa.ColumnElement[Any]]:
        return [cls.json_member(document, field)]

    @override
    @classmethod
    def json_root_type_in(
        cls, document: sa.ColumnElement[Any], type_names: Sequence[str]
    ) -> sa.ColumnElement[bool]:
        """By the first character of the document's JSON text."""
        chars = "".join(_FIRST_CHARS.get(name, _NUMBER_CHARS) for name in type_names)
        return sa.func.substr(document, 1, 1).in_(sorted(set(chars)))

    # -- column storage types ------------------------------------------------------------------

    @override
    @classmethod
    def aware_datetime_type(cls) -> TypeEngine[dt.datetime]:
        return ISOTimestampText()

    @override
    @classmethod
    def exact_decimal_type(cls) -> TypeEngine[Decimal]:
        return DecimalText()
