"""The engine's dialect: the contract of everything that differs per database engine.

Owns :class:`Dialect`, which one file per engine fulfils (:mod:`.sqlite`, :mod:`.postgresql`),
grouped as the class reads:

- engine set-up and transactions (engine options and listeners, a write transaction that holds
  its locks, short reads, one snapshot across several reads, schema and row locks, bulk
  INSERT/UPDATE), the upsert, and two-phase commit (prepared transactions: a unit of work
  that writes to several databases);
- SQL the engines spell differently: text compared by code point, NULL ordering and collation
  in ORDER BY terms, the NaN of float columns, whether Decimal columns compare in SQL, and the
  members of JSON documents in the JSON-table datastore (:class:`JSONType` names their types);
- column storage types and index terms, read through :mod:`.types` and :mod:`.indexes` so that
  one ``MetaData`` serves every engine;
- URLs: the driver an engine's URL is pinned to, and a server URL from dataClay-style
  arguments;
- schema migrations: whether alembic must work in batch mode, and how an index is renamed;
- SQL reporting across backends: the federation's statements and how they reach a backend
  (:mod:`.federation`; the default refuses);
- housekeeping: the space tables take (:mod:`.storage`), who holds locks on them
  (:mod:`.locks`), and the SQL of the data check (:mod:`.checks`).

A method's default is what an engine that already does what claystore needs would do; an
engine overrides what differs (where no engine-independent SQL exists, the default raises).
What the engine *is* needs no database and is a class attribute or class method; what
concerns one database (its URL, its connections) is an instance method.

The translation of driver errors into claystore errors lives in :mod:`.translate`, the lazy
registry of engines in :mod:`.registry`.

Called by the client (engine set-up), :mod:`claystore.orm.context` (transactions), the
compilers (:mod:`claystore.orm.modelcompiler`, :mod:`claystore.datastore.jsoncompiler`), the
JSON-table datastore, :mod:`claystore.migrations` (the alembic environment and operations),
and :mod:`.types` / :mod:`.indexes`.  Knows nothing of the ORM or the datastore.
"""

from __future__ import annotations

import datetime as dt
import enum
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.types import TypeEngine

from claystore import errors
from claystore.dialects.checks import ValueChecks
from claystore.dialects.cursor import execute_driver, processed_rows
from claystore.dialects.federation import Federation, ForeignSource, refusal
from claystore.dialects.locks import Locks
from claystore.dialects.storage import Storage
from claystore.dialects.translate import translate_at_source_of

#: ``left <op> right`` for the six comparison operators of datastore filters.
OPERATORS: Final[Mapping[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}

#: Text no driver can send (a lone surrogate is not UTF-8).
LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def has_unstorable_chars(text: str) -> bool:
    """True when ``text`` holds a NUL (PostgreSQL's text refuses it) or a lone surrogate (no
    driver can send it): text no engine stores alike."""
    return "\x00" in text or LONE_SURROGATE.search(text) is not None


class JSONType(enum.IntEnum):
    """The type of a JSON value (missing counts as null), numbered in the datastore's total
    order -- null, bool, number, str, then objects before arrays -- so that ``ORDER BY`` the
    number sorts as the datastore does."""

    NULL = 0
    BOOLEAN = 1
    NUMBER = 2
    STRING = 3
    OBJECT = 4
    ARRAY = 5


def sql_constant(value: int | str) -> sa.ColumnElement[Any]:
    """A constant written into the SQL text (type codes and type names, never user data)."""
    return sa.literal_column(repr(value) if isinstance(value, str) else str(int(value)))


def json_type_case(
    names: Mapping[str, JSONType], type_name: sa.ColumnElement[Any]
) -> sa.ColumnElement[int]:
    """The :class:`JSONType` number of an engine's JSON type name (``names``: the engine's
    names; any other name, and NULL, is :attr:`JSONType.NULL`)."""
    whens = {sql_constant(name): sql_constant(code) for name, code in names.items()}
    return sa.case(whens, value=type_name, else_=sql_constant(JSONType.NULL))


def refuse_lone_surrogates(value: str) -> str:
    """``value``, or :class:`~claystore.errors.QueryError` if it holds a lone surrogate."""
    if LONE_SURROGATE.search(value):
        msg = f"{value!r:.60} holds a lone surrogate, which cannot be sent to the database"
        raise errors.QueryError(msg)
    return value


def on_conflict_update(insert: Any, table: sa.Table, values: Mapping[str, Any]) -> sa.Insert:
    """``insert`` (SQLite's or PostgreSQL's INSERT of ``values`` into ``table``) made to update
    the row whose primary key is taken with the other values instead (``ON CONFLICT (key) DO
    UPDATE``, the form both engines share)."""
    statement = insert.values(**values)
    keys = table.primary_key.columns
    upsert: sa.Insert = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: statement.excluded[name] for name in values if name not in keys},
    )
    return upsert


class Dialect:
    """What claystore needs from one database engine; one subclass per engine.

    Made by :func:`~claystore.dialects.registry.dialect_for` for one database (``url``); the
    class itself is found by SQLAlchemy dialect name
    (:func:`~claystore.dialects.registry.dialect_class`).
    """

    #: SQLAlchemy's name of the engine, which is also its URL scheme.
    name: ClassVar[str] = "generic"
    #: The engine's name in messages.
    title: ClassVar[str] = "SQL"
    #: Whether Decimal columns are an exact number type that SQL compares as numbers (not:
    #: they hold exact text, which SQL cannot compare as numbers).
    has_exact_decimals: ClassVar[bool] = True
    #: Whether JSON numbers compare as exact decimals, so that a stored float must be written
    #: with all its digits to compare exactly with integers.
    has_exact_json_numbers: ClassVar[bool] = False
    #: Whether the engine refuses text longer than a ``VARCHAR(n)`` column's length (not: the
    #: length is a comment, and a shorter column holds any text).
    enforces_text_length: ClassVar[bool] = True
    #: Whether ``ALTER TABLE`` can change a column's type and nullability in place (not: the
    #: table must be rebuilt, which only a migration does).
    can_alter_columns: ClassVar[bool] = True
    #: Whether alembic migrations must change tables in batch mode (``render_as_batch``:
    #: copy the table, change the copy, swap) because ``ALTER TABLE`` is too limited.
    needs_batch_migrations: ClassVar[bool] = False

    def __init__(self, url: URL) -> None:
        self.url = url
        self._plans: dict[
            tuple[sa.Table, tuple[str, ...]], tuple[str, list[Callable[[Any], Any] | None]]
        ] = {}

    # -- URLs ----------------------------------------------------------------------------------

    @classmethod
    def normalise_url(cls, url: URL) -> URL:
        """``url`` pinned to the driver claystore uses for this engine (unchanged if it names
        another engine, or the driver is already the one)."""
        return url

    @classmethod
    def server_url(
        cls,
        host: str,
        port: Any,
        username: str | None,
        password: str | None,
        database: str | None,
    ) -> URL:
        """The URL of a database on a server, from dataClay-style arguments."""
        msg = f"{cls.title} databases are not on a server: give a URL instead of host/port"
        raise errors.ConfigurationError(msg)

    # -- engine set-up and transactions --------------------------------------------------------

    def engine_options(self) -> dict[str, Any]:
        """Extra keyword arguments for ``create_engine``."""
        return {}

    def configure(self, engine: Engine, *, lock_timeout: float) -> None:
        """Install event listeners (pragmas, BEGIN modes) on a new engine.  The default
        raises lock timeouts, deadlocks, writes to a read-only database and lost connections
        as claystore errors where they happen (:func:`translate_at_source`); an engine's
        override calls it."""
        translate_at_source_of(engine, self.url)

    def begin(self, conn: Connection, *, write: bool, lock_timeout: float) -> None:
        """Begin a transaction on ``conn``; a write transaction takes what it needs so that it
        will not fail later for lack of a lock."""
        conn.begin()

    def reader(self, conn: Connection) -> Connection:
        """Prepare ``conn`` for a short read that needs no transaction."""
        return conn

    def read_snapshot(self, conn: Connection) -> None:
        """Make the transaction begun next on ``conn`` see one snapshot of the data in all its
        statements (several reads that must agree).  The default: the engine's transactions
        already do."""

    def insert_rows(
        self, conn: Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """INSERT many rows (tuples in ``columns`` order, Python values) as one statement.

        The default sends one executemany through the driver, with SQLAlchemy's own bind
        processors applied column by column (the same conversions Core applies, without its
        per-row parameter dictionaries).
        """
        statement, processors = self._insert_plan(conn, table, tuple(columns))
        conn.exec_driver_sql(statement, processed_rows(rows, processors))

    def _insert_plan(
        self, conn: Connection, table: sa.Table, columns: tuple[str, ...]
    ) -> tuple[str, list[Callable[[Any], Any] | None]]:
        key = (table, columns)
        plan = self._plans.get(key)
        if plan is None:
            dialect = conn.dialect
            preparer = dialect.identifier_preparer
            marker = "?" if dialect.paramstyle == "qmark" else "%s"
            statement = (
                f"INSERT INTO {preparer.format_table(table)} "
                f"({', '.join(preparer.quote(c) for c in columns)}) "
                f"VALUES ({', '.join([marker] * len(columns))})"
            )
            processors = [self._processor(table.c[name].type, dialect) for name in columns]
            plan = (statement, processors)
            self._plans[key] = plan
        return plan

    def update_rows(
        self,
        conn: Connection,
        table: sa.Table,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        *,
        check_version: bool,
    ) -> int:
        """UPDATE many rows by id as one executemany; returns how many rows were written.

        Each row is ``(*values of columns, id)`` plus the expected ``dc_version`` when
        ``check_version``.  Tables with a ``dc_version`` column get it raised by one.
        """
        key = (table, ("update", str(check_version), *columns))
        plan = self._plans.get(key)
        if plan is None:
            dialect = conn.dialect
            preparer = dialect.identifier_preparer
            marker = "?" if dialect.paramstyle == "qmark" else "%s"
            sets = [f"{preparer.quote(c)} = {marker}" for c in columns]
            if "dc_version" in table.c:
                sets.append("dc_version = dc_version + 1")
            where = f"id = {marker}" + (f" AND dc_version = {marker}" if check_version else "")
            statement = f"UPDATE {preparer.format_table(table)} SET {', '.join(sets)} WHERE {where}"
            names = [*columns, "id"] + (["dc_version"] if check_version else [])
            plan = (statement, [self._processor(table.c[n].type, dialect) for n in names])
            self._plans[key] = plan
        statement, processors = plan
        return execute_driver(conn, statement, processed_rows(rows, processors))

    @staticmethod
    def _processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
        """SQLAlchemy's bind processor for a column type; for a UUID stored as 32 hex digits
        (no native type) the same conversion done in C (ids are most of a bulk insert)."""
        processor: Callable[[Any], Any] | None = type_.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None and type(type_) is sa.Uuid and not dialect.supports_native_uuid:
            return operator.attrgetter("hex")
        return processor

    def lock_schema(self, conn: Connection) -> None:
        """Serialise schema changes between processes for the rest of the transaction."""

    @classmethod
    def rename_index(cls, conn: Connection, table: str, old: str, new: str) -> None:
        """Rename index ``old`` of ``table`` to ``new`` (in the caller's transaction)."""
        del table
        preparer = conn.dialect.identifier_preparer
        conn.exec_driver_sql(f"ALTER INDEX {preparer.quote(old)} RENAME TO {preparer.quote(new)}")

    @classmethod
    def drop_foreign_keys(cls, conn: Connection, table: str) -> None:
        """Drop every foreign key of ``table`` (in the caller's transaction)."""
        preparer = conn.dialect.identifier_preparer
        for key in sa.inspect(conn).get_foreign_keys(table):
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.quote(table)} "
                f"DROP CONSTRAINT {preparer.quote(str(key['name']))}"
            )

    def lock_rows(self, statement: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
        """Make a SELECT of ``table``'s rows hold them locked until the transaction ends."""
        return statement

    def copy_between(
        self, source: Connection, target: Connection, table: sa.Table, key: str, ids: Sequence[UUID]
    ) -> bool:
        """Copy the rows of ``table`` whose ``key`` column (object ids) is one of ``ids`` (at
        most :attr:`among_limit`) from ``source`` to ``target``, two databases of this engine,
        as they are stored, without building them in Python.  False when the engine has no such
        way: the caller then selects and inserts them."""
        return False

    #: How many ids one :meth:`among` condition takes (callers send longer lists in parts).
    among_limit: ClassVar[int] = 500

    @classmethod
    def among(cls, column: sa.ColumnElement[Any], ids: Sequence[UUID]) -> sa.ColumnElement[bool]:
        """``column`` (of object ids, :class:`sa.Uuid`) holds one of ``ids`` (at most
        :attr:`among_limit`): the default is ``IN (...)``, one bind parameter per id."""
        return column.in_(ids)

    @classmethod
    def upsert(cls, table: sa.Table, values: Mapping[str, Any]) -> sa.Insert:
        """INSERT ``values`` (column name -> value or bind parameter) into ``table``; a row
        whose primary key is taken gets the other values instead."""
        msg = f"claystore has no upsert for {cls.title}"
        raise NotImplementedError(msg)

    # -- two-phase commit (a unit of work that writes to several databases) --------------------

    #: Whether the engine has prepared transactions (``PREPARE TRANSACTION``) at all.
    has_two_phase_commit: ClassVar[bool] = False

    def can_prepare(self, conn: Connection) -> bool:
        """Whether this database can take part in a two-phase commit now (the engine has
        prepared transactions and the server allows some).  The default: it cannot."""
        return False

    def prepare_refusal(self) -> str:
        """Why this database cannot take part in a two-phase commit, and the fix (for
        messages, once :meth:`can_prepare` said no)."""
        return f"{self.title} has no two-phase commit (prepared transactions)"

    def prepare(self, conn: Connection, gid: str) -> None:
        """End the transaction on ``conn`` with its first phase: prepared under ``gid`` (its
        changes and locks kept by the server, even across a crash, until
        :meth:`commit_prepared` or :meth:`rollback_prepared`); ``conn`` is out of any
        transaction after it."""
        msg = f"{self.title} databases have no two-phase commit"
        raise NotImplementedError(msg)

    def commit_prepared(self, conn: Connection, gid: str) -> bool:
        """Commit the prepared transaction ``gid`` of this database (``conn``: any connection
        to it, out of any transaction); False when there is no such prepared transaction (it
        was ended already)."""
        msg = f"{self.title} databases have no two-phase commit"
        raise NotImplementedError(msg)

    def rollback_prepared(self, conn: Connection, gid: str) -> bool:
        """Roll back the prepared transaction ``gid`` (as :meth:`commit_prepared`)."""
        msg = f"{self.title} databases have no two-phase commit"
        raise NotImplementedError(msg)

    def prepared_gids(self, conn: Connection, prefix: str) -> list[str]:
        """The prepared transactions of this database whose gid starts with ``prefix``.  The
        default: none (the engine has none)."""
        return []

    def has_written(self, conn: Connection) -> bool:
        """Whether the transaction on ``conn`` wrote anything yet.  The default (when the
        engine cannot tell): True."""
        return True

    def interrupt(self, dbapi_connection: Any) -> None:
        """Stop the statement running on a driver connection, from another thread (a cancelled
        async session: its rollback need not wait for a lock wait to time out).  The default:
        nothing (the statement runs to its end)."""

    @property
    def is_memory(self) -> bool:
        """True for a database that lives in one process's memory (one shared connection)."""
        return False

    def describe(self) -> str:
        """Where the database is, for messages (never shows the password)."""
        url = self.url
        where = f"{url.host or 'localhost'}:{url.port or 'default port'}"
        return f"{url.get_backend_name()} database {url.database!r} at {where}"

    # -- SQL reporting across backends (:mod:`.federation`) -------------------------------------

    def federation(self, conn: Connection) -> Federation:
        """The statements of a federation on ``conn``, a connection to this database (the
        metadata database); the default refuses (:class:`~claystore.errors.FederationError`)."""
        raise refusal(self.title, self.describe())

    def foreign_source(self, conn: Connection) -> ForeignSource | None:
        """How a federation's foreign tables reach this database (``conn``: a connection to
        it), None when they cannot (the default)."""
        return None

    # -- housekeeping: sizes and locks (:mod:`.storage`, :mod:`.locks`) ------------------------

    def storage(self, conn: Connection) -> Storage:
        """The sizes of this database's tables (``conn``: a connection to it)."""
        return Storage(conn)

    def locks(self, conn: Connection) -> Locks:
        """The holders of locks on this database's tables (``conn``: a connection to it)."""
        return Locks(conn)

    def session_ids(self) -> frozenset[int]:
        """The server's ids (PostgreSQL backend pids) of the connections now open on the
        engines this dialect configured: the caller's own sessions, never terminated by
        ``clear_locks``.  Engines without server sessions have none."""
        return frozenset()

    def value_checks(self) -> ValueChecks:
        """The SQL conditions of the data check (:mod:`.checks`): which stored values are not
        what claystore writes for their column's type."""
        return ValueChecks()

    # -- SQL: comparisons and orders -----------------------------------------------------------

    @classmethod
    def compare_text(
        cls, op: str, stored: sa.ColumnElement[Any], value: str
    ) -> sa.ColumnElement[bool] | bool:
        """``stored <op> value`` by code point, like Python's ``str`` (True/False when every
        row gives the same answer); raises QueryError for a lone surrogate.  The default: the
        engine's default collation compares by code point."""
        clause: sa.ColumnElement[bool] = OPERATORS[op](stored, refuse_lone_surrogates(value))
        return clause

    @classmethod
    def order_term(
        cls, column: sa.ColumnElement[Any], *, ascending: bool, nullable: bool, is_text: bool
    ) -> sa.ColumnElement[Any]:
        """The ORDER BY term sorting ``column`` as the datastore does: NULL lowest (first
        ascending, last descending), text by code point.  The default: the engine does both."""
        return column.asc() if ascending else column.desc()

    @classmethod
    def id_not_among(
        cls, id_column: sa.ColumnElement[Any], other_id: sa.ColumnElement[Any], where: Any
    ) -> sa.ColumnElement[bool]:
        """Rows whose ``id_column`` is not an ``other_id`` of the rows of another table that
        match ``where`` (versions left out of queries).  The default: an uncorrelated
        ``NOT IN``, evaluated once whatever the plan (an ephemeral index on SQLite)."""
        return id_column.not_in(sa.select(other_id).where(where))

    @classmethod
    def compare_nan(
        cls, op: str, column: sa.ColumnElement[Any], nan: float
    ) -> sa.ColumnElement[bool] | bool:
        """``column <op> nan`` for a float column, where NaN sorts after every number (the
        datastore's order).  The default: the engine stores NaN and orders it so."""
        clause: sa.ColumnElement[bool] = OPERATORS[op](column, nan)
        return clause

    # -- SQL: JSON documents of the JSON-table datastore ---------------------------------------

    @classmethod
    def json_type(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[int]:
        """The :class:`JSONType` of member ``field`` of each document (missing: NULL)."""
        msg = f"claystore cannot read JSON documents on {cls.title}"
        raise NotImplementedError(msg)

    @classmethod
    def json_member(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[Any]:
        """Member ``field`` of each document, to compare with :meth:`json_literal` (and to
        order booleans and numbers)."""
        msg = f"claystore cannot read JSON documents on {cls.title}"
        raise NotImplementedError(msg)

    @classmethod
    def json_member_text(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[Any]:
        """Member ``field`` of each document as SQL text, where it is a JSON string."""
        return cls.json_member(document, field)

    @classmethod
    def json_literal(cls, value: bool | float, json_text: str) -> Any:
        """The literal :meth:`json_member` compares with for a bool or number ``value``
        (``json_text``: the value written as exact JSON).  The default: the SQL value itself,
        booleans as 0 and 1."""
        return int(value) if isinstance(value, bool) else value

    @classmethod
    def json_equals(
        cls,
        op: str,
        document: sa.ColumnElement[Any],
        field: str,
        value: bool | float | str,
        json_text: str,
    ) -> sa.ColumnElement[bool] | None:
        """``member = value`` (or ``!=``) for a bool, finite number or str, when the engine's
        JSON equality already holds only within one JSON type (``1`` is neither ``true`` nor
        ``"1"``); ``json_text`` is the value written as exact JSON.  None (the default): the
        engine needs the comparison by :meth:`json_type` first."""
        return None

    @classmethod
    def json_order_keys(
        cls, document: sa.ColumnElement[Any], field: str, json_type: sa.ColumnElement[int]
    ) -> list[sa.ColumnElement[Any]]:
        """ORDER BY keys of member ``field`` inside its :class:`JSONType` (``json_type``:
        :meth:`json_type` of the member): booleans, numbers and strings in their own order."""
        msg = f"claystore cannot order JSON documents on {cls.title}"
        raise NotImplementedError(msg)

    @classmethod
    def json_root_type_in(
        cls, document: sa.ColumnElement[Any], type_names: Sequence[str]
    ) -> sa.ColumnElement[bool]:
        """Whether the JSON type of each whole document is one of ``type_names`` (``null``,
        ``boolean``, ``number``, ``string``, ``array``)."""
        msg = f"claystore cannot read JSON documents on {cls.title}"
        raise NotImplementedError(msg)

    @classmethod
    def json_as_text(cls, document: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """The stored document as JSON text.  The default: it is stored as text."""
        return document

    @classmethod
    def json_from_text(cls, text: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """A JSON document to store, given as JSON text.  The default: it is stored as text."""
        return text

    # -- column storage types and indexes (through .types and .indexes) -----------------------

    @classmethod
    def code_point_text_type(cls, text: sa.String) -> TypeEngine[str]:
        """The storage of ``text`` (a String or Text type) compared by code point, like
        Python's ``str``.  The default: the engine's default collation does it."""
        return text

    @classmethod
    def json_document_type(cls, plain: TypeEngine[Any]) -> TypeEngine[Any]:
        """The storage of a JSON document: the engine's own JSON document type, or ``plain``
        (how the document is kept without one: SQLAlchemy's JSON, or JSON text)."""
        return plain

    @classmethod
    def aware_datetime_type(cls) -> TypeEngine[dt.datetime]:
        """The storage of a timezone-aware datetime (given and read in UTC)."""
        return sa.DateTime(timezone=True)

    @classmethod
    def exact_decimal_type(cls) -> TypeEngine[Decimal]:
        """The storage of a Decimal that keeps every digit."""
        return sa.Numeric(asdecimal=True)

    @classmethod
    def nullable_index_term(cls, column: sa.ColumnClause[Any]) -> sa.ColumnElement[Any]:
        """The index term of a nullable indexed column, so that the index serves the
        datastore's order (NULL lowest) in both directions.  The default: the engine's
        indexes already sort NULL lowest."""
        return column

    @classmethod
    def partial_index_options(cls, where: sa.ColumnElement[bool] | sa.TextClause) -> dict[str, Any]:
        """Keyword arguments of ``sa.Index`` that index only the rows where ``where`` holds
        (an empty dict: the engine has no partial indexes and indexes every row)."""
        return {f"{cls.name}_where": where}
