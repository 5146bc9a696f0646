"""PostgreSQL (psycopg 3): the production engine.

Owns :class:`PostgreSQLDialect`: the row lock (``SELECT ... FOR UPDATE OF <root table>``), the
lock timeout (set once per connection), pooled connections a restarted server ended replaced
at checkout (:func:`has_hung_up`), bulk loads through ``COPY``, short reads in autocommit
mode (one round trip, no transaction to end), snapshots across several reads (REPEATABLE
READ), two-phase commit (``PREPARE TRANSACTION``, ``COMMIT PREPARED`` in autocommit mode,
``pg_prepared_xacts``), and URLs (pinned to psycopg 3; built from dataClay-style host/port
arguments).  Also how PostgreSQL is made to keep the datastore's order: text under ``COLLATE
"C"`` (code-point order, whatever the server locale), ``NULLS FIRST`` in ascending orders and
indexes, JSON documents as JSONB (exact numbers and typed equality), and no NUL in text.  SQL
reporting across backends through ``postgres_fdw`` (:mod:`claystore.dialects.federation`).

Called through :mod:`claystore.dialects.registry`.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final
from uuid import UUID

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.types import TypeEngine
from typing_extensions import override

from claystore.dialects.base import (
    OPERATORS,
    Dialect,
    JSONType,
    json_type_case,
    on_conflict_update,
    refuse_lone_surrogates,
    sql_constant,
)
from claystore.dialects.checks import PostgreSQLValueChecks
from claystore.dialects.cursor import processed_rows
from claystore.dialects.federation import Federation, ForeignSource, foreign_source_of
from claystore.dialects.locks import PostgreSQLLocks
from claystore.dialects.storage import PostgreSQLStorage
from claystore.errors import ConfigurationError

#: The longest ``application_name`` the server keeps (NAMEDATALEN - 1 bytes).
_APPLICATION_NAME_BYTES: Final = 63

# advisory lock key for CREATE TABLE between processes ("claystor" in ASCII)
_SCHEMA_LOCK_KEY = 0x636C_6179_7374_6F72
# below this many rows a plain executemany is as quick as COPY
_COPY_THRESHOLD = 200
#: The gids claystore gives prepared transactions.
_GID: Final = re.compile("[A-Za-z0-9_]{1,200}")
#: SQLSTATE of COMMIT/ROLLBACK PREPARED for a gid no prepared transaction has.
_UNDEFINED_OBJECT: Final = "42704"
#: jsonb_typeof() names -> JSON types (``null`` is NULL like a missing member).
_JSON_TYPES: Final = {
    "boolean": JSONType.BOOLEAN,
    "number": JSONType.NUMBER,
    "string": JSONType.STRING,
    "object": JSONType.OBJECT,
    "array": JSONType.ARRAY,
}


def has_hung_up(dbapi_connection: Any) -> bool:
    """True when an idle psycopg connection is dead: closed, broken, or its socket readable.

    An idle connection has nothing to read unless the server is ending it (a server that
    restarts or ends a backend sends a last error message and closes the socket), so a poll
    of the socket -- a system call, no round trip -- tells a connection a restarted server
    left behind from a live one.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    try:
        fd = dbapi_connection.pgconn.socket
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - no poll() on Windows
        return bool(readable)  # pragma: no cover
    except (OSError, ValueError, psycopg.Error):
        return True


def application_name() -> str:
    """The ``application_name`` claystore gives its sessions: ``claystore <host> <pid>``, cut
    to the 63 bytes the server keeps (so that ``pg_stat_activity`` tells them apart)."""
    name = f"claystore {socket.gethostname()} {os.getpid()}".encode()
    return name[:_APPLICATION_NAME_BYTES].decode(errors="ignore")


def _checked_gid(gid: str) -> str:
    """``gid`` if it can be written into SQL as it is (claystore's gids are letters, digits
    and underscores)."""
    if not _GID.fullmatch(gid):
        msg = f"{gid!r} is not a gid claystore makes (letters, digits and underscores)"
        raise ValueError(msg)
    return gid


def _end_prepared(conn: Connection, verb: str, gid: str) -> bool:
    """``COMMIT PREPARED`` or ``ROLLBACK PREPARED`` (``verb``) of ``gid`` on ``conn``, which is
    put in autocommit mode (the statement cannot run inside a transaction block); False when
    no prepared transaction has that gid."""
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        conn.exec_driver_sql(f"{verb} PREPARED '{_checked_gid(gid)}'")
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == _UNDEFINED_OBJECT:
            return False
        raise
    finally:
        conn.rollback()  # SQLAlchemy's own transaction (nothing on the server: autocommit)
    return True


class _UuidArrayText(sa.types.UserDefinedType[str]):
    """A ``uuid[]`` parameter given as the text of the array, ``'{id,id,...}'`` (no
    conversion on the way: the server parses it once, as the parameter's value)."""

    cache_ok = True
    render_bind_cast = True  # %(name)s::UUID[]: the parameter itself has the array type

    def get_col_spec(self, **_: Any) -> str:
        return "UUID[]"

    def bind_processor(self, dialect: sa.Dialect) -> None:
        return None


class PostgreSQLDialect(Dialect):
    """PostgreSQL, through psycopg 3."""

    name = "postgresql"
    title = "PostgreSQL"
    has_exact_json_numbers = True  # JSONB numbers are numeric
    #: The port of a server URL that names none.
    default_port: ClassVar[int] = 5432

    @override
    @classmethod
    def normalise_url(cls, url: URL) -> URL:
        """Pin ``postgresql://`` (and ``postgres://``, psycopg2) URLs to psycopg 3, the driver
        claystore depends on."""
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            return url.set(drivername="postgresql+psycopg")
        return url

    @override
    @classmethod
    def server_url(
        cls,
        host: str,
        port: Any,
        username: str | None,
        password: str | None,
        database: str | None,
    ) -> URL:
        try:
            if isinstance(port, bool | float):
                raise TypeError(port)  # int(True) is 1, int(5432.9) is 5432: not a port
            port_number = int(port) if port not in (None, "") else cls.default_port
        except (TypeError, ValueError):
            msg = f"port must be a number from 1 to 65535, not {port!r}"
            raise ConfigurationError(msg) from None
        if not 1 <= port_number <= 65535:
            msg = f"port must be a number from 1 to 65535, not {port!r}"
            raise ConfigurationError(msg)
        return URL.create(
            "postgresql+psycopg",
            username=username or None,
            password=password or None,
            host=host,
            port=port_number,
            # like libpq: the database defaults to the user's name
            database=database or username or "postgres",
        )

    def __init__(self, url: URL) -> None:
        super().__init__(url)
        #: the psycopg connections of the engines configured here (see :meth:`session_ids`)
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()

    @override
    def storage(self, conn: Connection) -> PostgreSQLStorage:
        return PostgreSQLStorage(conn)

    @override
    def locks(self, conn: Connection) -> PostgreSQLLocks:
        return PostgreSQLLocks(conn)

    @override
    def session_ids(self) -> frozenset[int]:
        """The backend pids of the open connections, recorded as each was made (no round
        trip: psycopg knows its backend's pid)."""
        with self._sessions_lock:
            connections = list(self._sessions)
        return frozenset(c.info.backend_pid for c in connections if not c.closed)

    @override
    def value_checks(self) -> PostgreSQLValueChecks:
        return PostgreSQLValueChecks()

    @override
    def engine_options(self) -> dict[str, Any]:
        # no pre-ping (a round trip on every checkout): connections are recycled hourly and
        # SQLAlchemy invalidates the pool when a statement finds a connection dead
        return {"pool_size": 8, "max_overflow": 24, "pool_recycle": 3600}

    @override
    def configure(self, engine: Engine, *, lock_timeout: float) -> None:
        """The lock timeout, set once per connection; and at each checkout from the pool, a
        connection whose server side has gone (a restarted server) is replaced by a new one
        (:func:`has_hung_up`: no round trip).  Each connection is named (``application_name``,
        :func:`application_name`, sent with the connection's start-up: no round trip) unless
        the user named it (the URL's query, ``connect_args`` or ``PGAPPNAME``), and is
        recorded as one of the client's own sessions (:meth:`session_ids`)."""
        super().configure(engine, lock_timeout=lock_timeout)
        timeout_ms = int(lock_timeout * 1000)
        sessions, sessions_lock = self._sessions, self._sessions_lock

        @event.listens_for(engine, "do_connect")
        def on_do_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: Any) -> None:
            if "application_name" not in cparams and "PGAPPNAME" not in os.environ:
                cparams["application_name"] = application_name()

        @event.listens_for(engine, "checkout")
        def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            if has_hung_up(dbapi_connection):
                msg = "the server ended this pooled connection (it restarted?)"
                raise sa.exc.DisconnectionError(msg)

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # once per connection, not per transaction: saves a round trip on every write
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            dbapi_connection.execute(f"SET lock_timeout = '{timeout_ms}ms'")
            # datetimes come back in UTC whatever the server's zone: in another zone, those
            # within hours of year 1 or 9999 would have no Python form and fail to load
            dbapi_connection.execute("SET TIME ZONE 'UTC'")
            dbapi_connection.autocommit = autocommit
            with sessions_lock:
                sessions.add(dbapi_connection)

    @override
    def reader(self, conn: Connection) -> Connection:
        return conn.execution_options(isolation_level="AUTOCOMMIT")

    @override
    @classmethod
    def id_not_among(
        cls, id_column: sa.ColumnElement[Any], other_id: sa.ColumnElement[Any], where: Any
    ) -> sa.ColumnElement[bool]:
        """``NOT EXISTS``, which the planner turns into an anti-join it sizes itself: a
        ``NOT IN`` is always a hashed subplan, which reads the whole other table when it has
        no statistics yet (just after a bulk load: 7 ms instead of 0.04 ms for a top 10 over
        100,000 objects)."""
        return ~sa.exists().where(other_id == id_column, where)

    @override
    def read_snapshot(self, conn: Connection) -> None:
        """REPEATABLE READ: PostgreSQL's default (READ COMMITTED) sees each statement's own
        snapshot."""
        conn.execution_options(isolation_level="REPEATABLE READ")

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
    def copy_between(
        self, source: Connection, target: Connection, table: sa.Table, key: str, ids: Sequence[UUID]
    ) -> bool:
        """``COPY (SELECT ...) TO STDOUT`` on the source piped into ``COPY ... FROM STDIN`` on
        the target, in binary: the server's own bytes, no row built or converted in Python.
        Statement listeners of both engines see the two statements."""
        preparer = source.dialect.identifier_preparer
        name = preparer.format_table(table).replace("%", "%%")
        columns = ", ".join(preparer.quote(c.name) for c in table.columns).replace("%", "%%")
        where = preparer.quote(key).replace("%", "%%") + " = ANY(%s::uuid[])"
        out = f"COPY (SELECT {columns} FROM {name} WHERE {where}) TO STDOUT (FORMAT BINARY)"
        into = f"COPY {name} ({columns}) FROM STDIN (FORMAT BINARY)"
        ids_text = "{" + ",".join([i.hex for i in ids]) + "}"
        reader = source.connection.driver_connection.cursor()  # type: ignore[union-attr]
        writer = target.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for conn, cursor, statement in ((source, reader, out), (target, writer, into)):
            for listener in conn.dispatch.before_cursor_execute:
                listener(conn, cursor, statement, (), None, False)
        with reader.copy(out, (ids_text,)) as rows, writer.copy(into) as copy:
            for data in rows:
                copy.write(data)
        return True

    has_two_phase_commit = True

    @override
    def can_prepare(self, conn: Connection) -> bool:
        """The server allows prepared transactions: ``max_prepared_transactions`` > 0 (0, the
        default, turns them off)."""
        return int(conn.exec_driver_sql("SHOW max_prepared_transactions").scalar_one()) > 0

    @override
    def prepare_refusal(self) -> str:
        return (
            f"the server at {self.url.host or 'localhost'}:{self.url.port or self.default_port} "
            "has max_prepared_transactions = 0 (prepared transactions off): set it above 0 "
            "(for instance to max_connections) and restart the server"
        )

    @override
    def prepare(self, conn: Connection, gid: str) -> None:
        conn.exec_driver_sql(f"PREPARE TRANSACTION '{_checked_gid(gid)}'")
        conn.commit()  # the server's transaction ended with the PREPARE; now SQLAlchemy's

    @override
    def commit_prepared(self, conn: Connection, gid: str) -> bool:
        return _end_prepared(conn, "COMMIT", gid)

    @override
    def rollback_prepared(self, conn: Connection, gid: str) -> bool:
        return _end_prepared(conn, "ROLLBACK", gid)

    @override
    def prepared_gids(self, conn: Connection, prefix: str) -> list[str]:
        """From ``pg_prepared_xacts``, those of this database (a server holds those of all
        its databases)."""
        statement = sa.text(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
            "AND starts_with(gid, :prefix) ORDER BY prepared"
        )
        return list(conn.execute(statement, {"prefix": prefix}).scalars())

    @override
    def interrupt(self, dbapi_connection: Any) -> None:
        # a cancel request on a connection of its own (the server stops the running query;
        # with none running it does nothing)
        dbapi_connection.cancel_safe(timeout=5.0)

    @override
    def has_written(self, conn: Connection) -> bool:
        """The transaction has a transaction id (it has one once it writes or locks a row)."""
        statement = "SELECT txid_current_if_assigned() IS NOT NULL"
        return bool(conn.exec_driver_sql(statement).scalar_one())

    @override
    def lock_schema(self, conn: Connection) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})

    @override
    def lock_rows(self, statement: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
        return statement.with_for_update(of=table)

    among_limit: ClassVar[int] = 50_000

    @override
    @classmethod
    def among(cls, column: sa.ColumnElement[Any], ids: Sequence[UUID]) -> sa.ColumnElement[bool]:
        """``column = ANY(:ids)``, the ids as the text of one ``uuid[]`` parameter
        (``'{...}'``): the statement text stays short and the same whatever their number
        (psycopg parses it once, the server can keep its plan), where an ``IN`` list renders,
        and psycopg parses, one parameter per id; and joining their text is several times
        quicker than psycopg's dumping of a list of UUIDs item by item."""
        text = "{" + ",".join([i.hex for i in ids]) + "}"
        return column == sa.any_(sa.bindparam(None, text, type_=_UuidArrayText()))

    @override
    @classmethod
    def upsert(cls, table: sa.Table, values: Mapping[str, Any]) -> sa.Insert:
        return on_conflict_update(postgresql.insert(table), table, values)

    @override
    def federation(self, conn: Connection) -> Federation:
        """``postgres_fdw`` foreign tables and views (:mod:`claystore.dialects.federation`)."""
        return Federation(conn)

    @override
    def foreign_source(self, conn: Connection) -> ForeignSource:
        """The host, port, name and user of this database as a foreign server and user
        mapping, its tables in the current schema of ``conn``."""
        return foreign_source_of(self.url, conn)

    # -- SQL: text by code point ("C" collation), NULL lowest ----------------------------------

    @override
    @classmethod
    def compare_text(
        cls, op: str, stored: sa.ColumnElement[Any], value: str
    ) -> sa.ColumnElement[bool] | bool:
        """Under ``COLLATE "C"``.  PostgreSQL text cannot hold NUL, so a value with one is
        compared through its part before the NUL (no stored text equals it)."""
        refuse_lone_surrogates(value)
        collated = stored.collate("C")
        if "\x00" in value:
            if op in ("=", "!="):
                return op == "!="
            op, value = ("<=" if op in ("<", "<=") else ">"), value[: value.index("\x00")]
        clause: sa.ColumnElement[bool] = OPERATORS[op](collated, value)
        return clause

    @override
    @classmethod
    def order_term(
        cls, column: sa.ColumnElement[Any], *, ascending: bool, nullable: bool, is_text: bool
    ) -> sa.ColumnElement[Any]:
        """Text under ``COLLATE "C"``; a nullable column says ``NULLS FIRST`` ascending and
        ``NULLS LAST`` descending (PostgreSQL sorts NULL highest)."""
        if is_text:
            column = column.collate("C")
        term = column.asc() if ascending else column.desc()
        if nullable:
            term = term.nulls_first() if ascending else term.nulls_last()
        return term

    # -- SQL: JSONB documents --------------------------------------------------------------------

    @override
    @classmethod
    def json_type(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[int]:
        kind: sa.ColumnElement[Any] = sa.func.jsonb_typeof(cls.json_member(document, field))
        return json_type_case(_JSON_TYPES, kind)

    @override
    @classmethod
    def json_member(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[Any]:
        """``document -> field``: the member as JSONB."""
        return document.op("->", return_type=postgresql.JSONB())(sa.literal(field))

    @override
    @classmethod
    def json_member_text(cls, document: sa.ColumnElement[Any], field: str) -> sa.ColumnElement[Any]:
        """``document ->> field``."""
        return document.op("->>", return_type=sa.Text())(sa.literal(field))

    @override
    @classmethod
    def json_literal(cls, value: bool | float, json_text: str) -> Any:
        """The JSONB of ``json_text``: JSONB compares numbers exactly, as ``numeric``."""
        return cls.json_from_text(sa.literal(json_text))

    @override
    @classmethod
    def json_equals(
        cls,
        op: str,
        document: sa.ColumnElement[Any],
        field: str,
        value: bool | float | str,
        json_text: str,
    ) -> sa.ColumnElement[bool] | None:
        """JSONB equality is exact across types (``1`` is neither ``true`` nor ``"1"``,
        ``1 = 1.0``), so no comparison of types is needed."""
        if isinstance(value, str):
            if "\x00" in value:  # JSONB cannot hold it: nothing stored equals it
                return sa.true() if op == "!=" else sa.false()
            refuse_lone_surrogates(value)
        literal = cls.json_from_text(sa.literal(json_text))
        equal = cls.json_member(document, field) == literal
        return equal if op == "=" else sa.func.coalesce(equal, sa.false()) == sa.false()

    @override
    @classmethod
    def json_order_keys(
        cls, document: sa.ColumnElement[Any], field: str, json_type: sa.ColumnElement[int]
    ) -> list[sa.ColumnElement[Any]]:
        """Typed keys, NULL outside their types (JSON null is not SQL NULL in JSONB): strings
        under ``COLLATE "C"``, then booleans and numbers as JSONB."""
        string = sql_constant(JSONType.STRING)
        scalars = [sql_constant(JSONType.BOOLEAN), sql_constant(JSONType.NUMBER)]
        text = sa.case((json_type == string, cls.json_member_text(document, field)))
        scalar = sa.case((json_type.in_(scalars), cls.json_member(document, field)))
        return [text.collate("C"), scalar]

    @override
    @classmethod
    def json_root_type_in(
        cls, document: sa.ColumnElement[Any], type_names: Sequence[str]
    ) -> sa.ColumnElement[bool]:
        return sa.func.jsonb_typeof(document).in_(type_names)

    @override
    @classmethod
    def json_as_text(cls, document: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.cast(document, sa.Text)

    @override
    @classmethod
    def json_from_text(cls, text: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.cast(text, postgresql.JSONB)

    # -- column storage types and indexes --------------------------------------------------------

    @override
    @classmethod
    def code_point_text_type(cls, text: sa.String) -> TypeEngine[str]:
        """``COLLATE "C"``, so that ORDER BY and indexes agree with Python's sort instead of
        the server locale's."""
        return type(text)(length=text.length, collation="C")

    @override
    @classmethod
    def json_document_type(cls, plain: TypeEngine[Any]) -> TypeEngine[Any]:
        """JSONB (indexable, comparable with ``->``/``->>``)."""
        return postgresql.JSONB()

    @override
    @classmethod
    def nullable_index_term(cls, column: sa.ColumnClause[Any]) -> sa.ColumnElement[Any]:
        """``NULLS FIRST``: PostgreSQL's indexes sort NULL last unless told, and could then
        serve neither direction of the datastore's order."""
        return column.asc().nulls_first()
