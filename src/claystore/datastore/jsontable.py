"""The JSON-table datastore: any JSON value, stored under its key in one SQL table.

Owns :class:`SQLDatastore` (its table -- :func:`datastore_table` --, connections,
get/put/delete/contains, batches, running queries) and the JSON text a stored value becomes
(:func:`encode_value`, which refuses what JSON cannot hold exactly).  Queries are compiled by
:mod:`claystore.datastore.jsoncompiler` and return a
:class:`~claystore.datastore.sqlcursor.SQLCursor`; what SQL cannot decide exactly is evaluated
in Python after SQL narrowed the rows, and the cursor says so.  What differs per engine (the
upsert, JSONB, snapshots, exact JSON numbers) is the engine's
:class:`~claystore.dialects.base.Dialect`.

Called by applications (``from claystore.datastore import SQLDatastore``).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from claystore.datastore.basic import BatchOperation, Datastore
from claystore.datastore.jsoncompiler import JSONPlan, JSONQueryCompiler
from claystore.datastore.key import Key
from claystore.datastore.query import Entry, Query
from claystore.datastore.sqlcursor import SQLCursor, finish_in_python
from claystore.datastore.sqlorder import INT64_MAX, INT64_MIN, RENDER_COUNTS, json_number, limit_of
from claystore.dialects import Dialect, dialect_for, normalise_url, translate_error
from claystore.dialects.base import has_unstorable_chars
from claystore.dialects.names import fit_identifier, fits, reserved_prefix
from claystore.dialects.types import CodePointText, JSONText
from claystore.errors import ConfigurationError, DatastoreTypeError, InvalidKeyError

__all__ = ["SQLDatastore", "datastore_table", "encode_value"]


# -- stored values ----------------------------------------------------------------------------


def _check_text(text: str, where: str) -> str:
    if has_unstorable_chars(text):
        msg = (
            f"{where}: {text!r:.60} holds a NUL or a lone surrogate, which PostgreSQL cannot "
            "store; clean the text (or encode it, e.g. base64) first"
        )
        raise DatastoreTypeError(msg)
    return text


def _write(value: Any, out: list[str], exact: bool, where: str) -> None:  # noqa: PLR0912
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            msg = f"{where}: {value} does not fit in 64 bits; store it as a str"
            raise DatastoreTypeError(msg)
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            msg = f"{where}: {value!r} is not a JSON number; store None or a str instead"
            raise DatastoreTypeError(msg)
        # exact: all digits of big floats, so that numeric comparisons with ints are exact
        out.append(json_number(value) if exact else float.__repr__(value))
    elif isinstance(value, str):
        out.append(json.dumps(_check_text(value, where), ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for index, (name, item) in enumerate(value.items()):
            if not isinstance(name, str):
                msg = f"{where}: JSON object keys are str, not {type(name).__name__} {name!r}"
                raise DatastoreTypeError(msg)
            out.append(", " if index else "")
            out.append(json.dumps(_check_text(name, where), ensure_ascii=False) + ": ")
            _write(item, out, exact, f"{where}[{name!r}]")
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            out.append(", " if index else "")
            _write(item, out, exact, f"{where}[{index}]")
        out.append("]")
    else:
        msg = (
            f"{where}: a {type(value).__name__} is not a JSON value (None, bool, int, float, "
            "str, list, dict); convert it, or wrap the store in a serializer shim"
        )
        raise DatastoreTypeError(msg)


def encode_value(value: Any, *, exact_numbers: bool = False, where: str = "value") -> str:
    """The JSON text of ``value``; raises :class:`DatastoreTypeError` for anything JSON cannot
    hold exactly (tuples, non-str keys, NaN, integers beyond 64 bits, NUL characters).

    With ``exact_numbers`` (PostgreSQL, where JSONB numbers compare as ``numeric``) floats of
    2**53 or more are written with all their digits, so they compare exactly with integers.
    """
    out: list[str] = []
    _write(value, out, exact_numbers, where)
    return "".join(out)


# -- the datastore ----------------------------------------------------------------------------


def datastore_table(name: str) -> sa.Table:
    """The table of a :class:`SQLDatastore` (in its own MetaData): ``key`` (primary key),
    ``path`` (the key's collection, indexed with ``key``), ``value`` (JSON text; JSONB on
    PostgreSQL).  Text compares by code point on both engines."""
    metadata = sa.MetaData()
    return sa.Table(
        name,
        metadata,
        sa.Column("key", CodePointText(), primary_key=True),
        sa.Column("path", CodePointText(), nullable=False),
        sa.Column("value", JSONText(), nullable=False),
        sa.Index(fit_identifier(f"ix_{name}_path_key"), "path", "key"),
        comment="claystore SQLDatastore: one JSON value per key",
    )


#: The columns of a SQLDatastore table, to recognise one that already exists.
_COLUMNS = frozenset({"key", "path", "value"})


def _check_table_name(table: Any) -> str:
    """``table`` if every engine can hold a SQLDatastore under that name, else raise."""
    if not isinstance(table, str) or not table:
        msg = f"SQLDatastore table must be a non-empty str, not {table!r}"
        raise DatastoreTypeError(msg)
    reserved = reserved_prefix(table)
    if reserved is not None:
        owner = "claystore's system tables" if reserved == "dc_" else "the database engine"
        msg = (
            f"SQLDatastore table {table!r}: names starting with {reserved!r} belong to "
            f"{owner}; choose another table name (the default is 'datastore')"
        )
        raise ConfigurationError(msg)
    if has_unstorable_chars(table) or not fits(table):
        msg = (
            f"SQLDatastore table {table!r:.80}: a table name must be at most 63 bytes of UTF-8 "
            "without NUL characters (the limit of PostgreSQL); choose a shorter name"
        )
        raise ConfigurationError(msg)
    return table


def _engine_from_url(target: str | URL, lock_timeout: float) -> Engine:
    """A new engine for the database URL ``target``; a malformed URL or one naming an engine
    or driver claystore cannot use raises ConfigurationError (nothing is connected)."""
    try:
        url = normalise_url(make_url(target))
    except sa.exc.ArgumentError as exc:
        msg = (
            f"SQLDatastore({str(target)!r}): not a database URL ({exc}); write one like "
            "'sqlite:///data.db' or 'postgresql://user@host/dbname'"
        )
        raise ConfigurationError(msg) from None
    dialect = dialect_for(url)
    try:
        engine = sa.create_engine(url, **dialect.engine_options())
    except sa.exc.ArgumentError as exc:  # NoSuchModuleError: a driver that is not installed
        safe = url.render_as_string(hide_password=True)
        msg = f"SQLDatastore({safe!r}): {exc}; use the engine's default driver or install it"
        raise ConfigurationError(msg) from None
    dialect.configure(engine, lock_timeout=lock_timeout)
    return engine


def _engine_for(target: Any, lock_timeout: float) -> tuple[Engine, bool]:
    """The engine to use for ``target`` (a URL, an Engine, or a started Client) and whether
    the datastore created it (and so disposes of it on close)."""
    if isinstance(target, Engine):
        return target, False
    if isinstance(target, str | URL):
        return _engine_from_url(target, lock_timeout), True
    client_engine = getattr(target, "engine", None)  # a claystore Client (raises if stopped)
    if isinstance(client_engine, Engine):
        return client_engine, False
    msg = (
        f"SQLDatastore needs a database URL, an SQLAlchemy Engine or a started Client, "
        f"not {type(target).__name__}"
    )
    raise DatastoreTypeError(msg)


class SQLDatastore(Datastore):
    """Any JSON value, stored under its key in one SQL table; queries run as SQL.

    ``SQLDatastore("sqlite:///data.db")``, ``SQLDatastore(engine)`` or
    ``SQLDatastore(client)`` (a started :class:`claystore.Client`), with ``table`` naming the
    table (created if missing).  A malformed URL, a table name that is reserved (``dc_``,
    ``sqlite_``, ``pg_``) or longer than 63 bytes, and an existing table that is not a
    SQLDatastore's raise :class:`~claystore.errors.ConfigurationError` here, before anything
    is written.  ``get``, ``put`` (an upsert), ``delete`` and ``contains`` are
    one statement each; ``batch()`` applies its writes in one transaction.  ``query`` compiles
    filters, orders, ``limit``, ``offset`` and ``offset_key`` into one SELECT that returns the
    same sequence as :class:`~claystore.datastore.DictDatastore` would
    (:mod:`claystore.datastore.jsoncompiler`), streamed in chunks of ``chunk_size`` rows.

    Values are what JSON holds exactly -- None, bool, int (64-bit), finite float, str, and
    lists and str-keyed dicts of them; anything else raises
    :class:`~claystore.errors.DatastoreTypeError` (wrap the store in a serializer shim for
    other types).  ``put(key, None)`` deletes ``key``, as ``DictDatastore`` does.  On
    PostgreSQL (JSONB) objects come back with their keys in JSONB's order.  ``dialect`` is the
    engine's :class:`~claystore.dialects.base.Dialect`.
    """

    def __init__(
        self,
        target: str | URL | Engine | Any,
        table: str = "datastore",
        *,
        chunk_size: int = 1000,
        lock_timeout: float = 60.0,
    ) -> None:
        _check_table_name(table)
        self.lock_timeout = float(lock_timeout)
        self.chunk_size = int(chunk_size)
        self.engine, self._owns_engine = _engine_for(target, self.lock_timeout)
        self.dialect: Dialect = dialect_for(self.engine.url)
        self.table = datastore_table(table)
        self.compiler = JSONQueryCompiler(self.table, self.dialect)
        # an in-memory SQLite database is one shared connection: one user at a time
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.dialect.is_memory else contextlib.nullcontext()
        )
        self._upsert = self._upsert_statement()
        try:
            with self._connect(write=True) as conn:
                self.dialect.lock_schema(conn)
                self.table.metadata.create_all(conn, checkfirst=True)
                self._check_existing_table(conn)
        except BaseException:
            self.close()
            raise

    def _check_existing_table(self, conn: Connection) -> None:
        """Refuse a table of that name that holds something else (a model's table)."""
        columns = {column["name"] for column in sa.inspect(conn).get_columns(self.table.name)}
        if columns != _COLUMNS:
            msg = (
                f"SQLDatastore table {self.table.name!r} exists and is not a SQLDatastore's "
                f"(columns {sorted(columns)}, not {sorted(_COLUMNS)}); choose another table name"
            )
            raise ConfigurationError(msg)

    def __repr__(self) -> str:
        return f"<SQLDatastore {self.dialect.describe()} table {self.table.name!r}>"

    # -- connections ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(
        self, *, write: bool, stream: bool = False, snapshot: bool = False
    ) -> Iterator[Connection]:
        """A connection in a transaction (committed at exit); driver errors translated."""
        with self._serial:
            try:
                with self.engine.connect() as conn:
                    if snapshot:  # several statements, one view of the data
                        self.dialect.read_snapshot(conn)
                    if stream:
                        conn.execution_options(yield_per=self.chunk_size)
                    self.dialect.begin(conn, write=write, lock_timeout=self.lock_timeout)
                    yield conn
                    conn.commit()
            except sa.exc.SQLAlchemyError as exc:
                raise translate_error(exc, self.engine.url) from exc

    def _key_text(self, key: Any) -> str:
        if not isinstance(key, Key):
            msg = f"datastore keys must be Key objects, not {type(key).__name__}: use Key({key!r})"
            raise DatastoreTypeError(msg)
        text = str(key)
        if has_unstorable_chars(text):
            msg = f"key {text!r} holds a NUL or a lone surrogate, which SQL text cannot store"
            raise InvalidKeyError(msg)
        return text

    def _encode(self, value: Any, key: str) -> str:
        exact = self.dialect.has_exact_json_numbers
        return encode_value(value, exact_numbers=exact, where=f"value of {key}")

    # -- the datastore API ---------------------------------------------------------------------

    def get(self, key: Key) -> Any:
        """The value stored under ``key``, or None (one SELECT)."""
        text = self._key_text(key)
        statement = sa.select(self.compiler.value_column()).where(self.table.c.key == text)
        with self._connect(write=False) as conn:
            stored = conn.execute(statement).scalar()
        return None if stored is None else json.loads(stored)

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` under ``key``, replacing any value there (one upsert); None deletes
        ``key`` (one DELETE)."""
        if value is None:
            self.delete(key)
            return
        text = self._key_text(key)
        row = {"k": text, "p": str(key.path), "v": self._encode(value, text)}
        with self._connect(write=True) as conn:
            conn.execute(self._upsert, row)

    def delete(self, key: Key) -> None:
        """Remove ``key`` (no error if it is not stored)."""
        text = self._key_text(key)
        with self._connect(write=True) as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.key == text))

    def contains(self, key: Key) -> bool:
        """Whether a value is stored under ``key``."""
        text = self._key_text(key)
        statement = sa.select(sa.literal(1)).where(self.table.c.key == text)
        with self._connect(write=False) as conn:
            return conn.execute(statement).first() is not None

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        """Apply batched writes in one transaction: one DELETE and one upsert executemany
        (the last write to each key wins, as if applied in order)."""
        final: dict[str, BatchOperation] = {}
        for operation in operations:
            text = self._key_text(operation.key)
            final.pop(text, None)
            final[text] = operation
        puts = [
            {"k": text, "p": str(op.key.path), "v": self._encode(op.value, text)}
            for text, op in final.items()
            if op.kind == "put" and op.value is not None
        ]
        deletes = [
            {"k": text} for text, op in final.items() if op.kind == "delete" or op.value is None
        ]
        with self._connect(write=True) as conn:
            if deletes:
                conn.execute(
                    sa.delete(self.table).where(self.table.c.key == sa.bindparam("k")), deletes
                )
            if puts:
                conn.execute(self._upsert, puts)

    def compile(self, query: Query) -> JSONPlan:
        """The SQL plan of ``query`` (``plan.statement`` is the SELECT); no I/O."""
        return self.compiler.compile(query)

    def query(self, query: Query) -> SQLCursor:
        """Run ``query`` as SQL; returns a lazy, streaming :class:`SQLCursor`."""
        plan = self.compile(query)
        sql_dialect = self.engine.dialect

        limit = limit_of(query)
        small = limit is not None and limit <= self.chunk_size and not plan.in_python

        def run(cursor: SQLCursor) -> Iterator[Entry]:
            if self.dialect.is_memory or small:  # one shared connection, or one chunk at most
                yield from list(self._stream(cursor, plan, query, stream=False))
            else:
                yield from self._stream(cursor, plan, query, stream=True)

        def render() -> str:
            return str(plan.statement.compile(dialect=sql_dialect, compile_kwargs=RENDER_COUNTS))

        return SQLCursor(query, run, render, plan.in_python)

    def _stream(
        self, cursor: SQLCursor, plan: JSONPlan, query: Query, *, stream: bool
    ) -> Iterator[Entry]:
        with self._connect(
            write=False, stream=stream, snapshot=plan.risky_check is not None
        ) as conn:
            python = bool(plan.in_python)
            check = plan.risky_check
            if not python and check is not None and conn.execute(check).first() is not None:
                cursor.note_python(
                    "some records are not JSON objects, and Python reads the queried "
                    "fields as their attributes"
                )
                python = True
            if python:
                yield from finish_in_python(cursor, self._rows(conn, plan.narrowing), query, 0)
                return
            result = conn.execute(plan.statement)
            returned = 0
            for row in result:
                if plan.has_flag and row[2]:
                    result.close()
                    cursor.note_python(
                        "orders: records hold objects or arrays in an ordered field, which "
                        "Python orders by repr()"
                    )
                    rows = self._rows(conn, plan.narrowing)
                    yield from finish_in_python(cursor, rows, query, returned)
                    return
                cursor.skipped = query.offset
                returned += 1
                yield Key(row[0]), json.loads(row[1])
            if not returned and plan.skip_count is not None:
                cursor.skipped = conn.execute(plan.skip_count).scalar_one()

    @staticmethod
    def _rows(conn: Connection, statement: sa.Select[Any]) -> Iterator[Entry]:
        for key, text in conn.execute(statement):
            yield Key(key), json.loads(text)

    def _upsert_statement(self) -> sa.Insert:
        value = self.dialect.json_from_text(sa.bindparam("v", type_=sa.Text))
        row = {"key": sa.bindparam("k"), "path": sa.bindparam("p"), "value": value}
        return self.dialect.upsert(self.table, row)

    def close(self) -> None:
        """Dispose of the engine if this datastore created it (from a URL)."""
        if self._owns_engine:
            self.engine.dispose()
