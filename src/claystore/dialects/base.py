"""The engine-support contract, the lazy registry by URL scheme, and error translation.

Owns :class:`EngineSupport` (what claystore needs from an engine: how to configure a
SQLAlchemy engine, how to open a write transaction that holds its locks, how to lock a row),
:func:`dialect_for` (``sqlite`` -> :mod:`.sqlite`, ``postgresql`` -> :mod:`.postgresql`) and
:func:`translate_error`, the one place where driver errors become claystore errors.

Called by the client (engine set-up) and by :mod:`claystore.orm.context` (transactions).
Knows nothing of the ORM.
"""

from __future__ import annotations

import importlib
import operator
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from claystore import errors

_MODULES = {"sqlite": "claystore.dialects.sqlite", "postgresql": "claystore.dialects.postgresql"}


class EngineSupport:
    """Engine-specific behaviour.  Subclasses override what differs."""

    name = "generic"

    def __init__(self, url: URL) -> None:
        self.url = url
        self._plans: dict[
            tuple[sa.Table, tuple[str, ...]], tuple[str, list[Callable[[Any], Any] | None]]
        ] = {}

    def engine_options(self) -> dict[str, Any]:
        """Extra keyword arguments for ``create_engine``."""
        return {}

    def configure(self, engine: Engine, *, lock_timeout: float) -> None:
        """Install event listeners (pragmas, BEGIN modes) on a new engine."""

    def begin(self, conn: Connection, *, write: bool, lock_timeout: float) -> None:
        """Begin a transaction on ``conn``; a write transaction takes what it needs so that it
        will not fail later for lack of a lock."""
        conn.begin()

    def reader(self, conn: Connection) -> Connection:
        """Prepare ``conn`` for a short read that needs no transaction."""
        return conn

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
        result = conn.exec_driver_sql(statement, processed_rows(rows, processors))
        return int(result.rowcount)

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

    def lock_rows(self, statement: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
        """Make a SELECT of ``table``'s rows hold them locked until the transaction ends."""
        return statement

    @property
    def is_memory(self) -> bool:
        """True for a database that lives in one process's memory (one shared connection)."""
        return False

    def describe(self) -> str:
        """Where the database is, for messages (never shows the password)."""
        url = self.url
        where = f"{url.host or 'localhost'}:{url.port or 'default port'}"
        return f"{url.get_backend_name()} database {url.database!r} at {where}"


_converters: dict[tuple[int, ...], Callable[..., tuple[Any, ...]]] = {}


def _row_converter(width: int, positions: tuple[int, ...]) -> Callable[..., tuple[Any, ...]]:
    """A function ``(row, *processors) -> row`` applying the processors at ``positions``
    (generated once per shape: one tuple display per row, no per-value Python loop)."""
    key = (width, *positions)
    converter = _converters.get(key)
    if converter is None:
        names = {pos: f"p{i}" for i, pos in enumerate(positions)}
        items = [
            f"(None if r[{i}] is None else {names[i]}(r[{i}]))" if i in names else f"r[{i}]"
            for i in range(width)
        ]
        source = f"def convert(r, {', '.join(names.values())}):\n    return ({', '.join(items)},)"
        namespace: dict[str, Any] = {}
        exec(source, namespace)
        converter = namespace["convert"]
        _converters[key] = converter
    return converter


def processed_rows(
    rows: list[tuple[Any, ...]], processors: list[Callable[[Any], Any] | None]
) -> list[tuple[Any, ...]]:
    """Apply bind processors to the columns that have one (the others pass through as is)."""
    positions = tuple(i for i, proc in enumerate(processors) if proc is not None)
    if not positions or not rows:
        return rows
    converter = _row_converter(len(processors), positions)
    procs = [processors[i] for i in positions]
    return [converter(row, *procs) for row in rows]


def dialect_for(url: URL) -> EngineSupport:
    """The engine support for ``url``'s backend; raises ConfigurationError if unsupported."""
    backend = url.get_backend_name()
    module_name = _MODULES.get(backend)
    if module_name is None:
        supported = ", ".join(sorted(_MODULES))
        msg = f"claystore supports {supported} databases, not {backend!r} ({_safe(url)})"
        raise errors.ConfigurationError(msg)
    module = importlib.import_module(module_name)
    support: EngineSupport = module.Support(url)
    return support


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _scrub(text: str, url: URL | None) -> str:
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return text


def translate_error(exc: BaseException, url: URL | None = None) -> errors.ClaystoreError:
    """The claystore error for a driver/SQLAlchemy error; the original is kept as ``.orig``.

    Messages name where the database is and never contain the password.
    """
    if isinstance(exc, errors.ClaystoreError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    text = _scrub(str(orig).strip().splitlines()[0] if str(orig).strip() else repr(orig), url)
    where = ""
    if url is not None:
        host = url.host or "localhost"
        if url.get_backend_name() == "sqlite":
            where = f"SQLite database {url.database or ':memory:'}"
        else:
            where = (
                f"{url.get_backend_name()} at {host}:{url.port or 5432} (database {url.database!r})"
            )
    lowered = text.lower()
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("55P03",) or "database is locked" in lowered or "lock timeout" in lowered:
        return errors.LockTimeoutError(f"{where}: lock not available in time: {text}", orig)
    if sqlstate == "40P01":
        return errors.LockTimeoutError(
            f"{where}: deadlock detected, transaction undone: {text}", orig
        )
    if isinstance(exc, sa.exc.IntegrityError):
        return errors.IntegrityError(f"{where}: write refused by a constraint: {text}", orig)
    is_connection_state = sqlstate is None or sqlstate.startswith(("08", "28", "3D", "57P"))
    is_server = url is not None and url.get_backend_name() != "sqlite"
    if (
        isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
        and is_connection_state
        and (is_server or "unable to open" in lowered)
    ):
        return errors.DatabaseConnectionError(f"cannot connect to {where}: {text}", orig)
    return errors.DatabaseError(f"{where}: {text}" if where else text, orig)
