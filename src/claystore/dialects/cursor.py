"""Hot statements run on the driver's cursor: compiled once, converted by generated code.

Owns :class:`CompiledSelect` and :func:`select_rows`: a SQLAlchemy ``SELECT`` (a row by id, a
locked row) compiled once per engine, its parameters and result columns converted with
SQLAlchemy's own bind and result processors (applied by one generated function per shape, as
bulk INSERTs are: :func:`claystore.dialects.base.processed_rows`), executed through
``Connection._cursor_execute`` -- so the engine's statement listeners see it, driver errors
are wrapped and translated (``handle_error``) and a lost connection is invalidated exactly as
for any statement -- without building an execution context and a result object per call
(about 45 us of Python per statement on SQLite, against 7 us for the statement itself).

A statement with expanding parameters (``IN`` lists) whose values come at execution is not
compiled here: :func:`select_rows` runs it through ``Connection.execute``.

Called by the loaders (:mod:`claystore.orm.loading`).  Knows nothing of the ORM.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["MAX_COMPILED", "CompiledSelect", "execute_driver", "select_rows"]

Processor = Callable[[Any], Any]


def _converter(
    processors: Sequence[Processor | None],
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function making a tuple of a row with the processors applied (None values and
    columns without a processor pass as they are): one generated tuple display per shape."""
    width = len(processors)
    positions = [i for i, proc in enumerate(processors) if proc is not None]
    if not positions:
        return tuple
    names = {pos: f"p{pos}" for pos in positions}
    items = [
        f"(None if r[{i}] is None else {names[i]}(r[{i}]))" if i in names else f"r[{i}]"
        for i in range(width)
    ]
    source = f"def convert(r):\n    return ({', '.join(items)},)"
    namespace: dict[str, Any] = {names[pos]: processors[pos] for pos in positions}
    exec(source, namespace)
    convert: Callable[[Sequence[Any]], tuple[Any, ...]] = namespace["convert"]
    return convert


class CompiledSelect:
    """One SELECT compiled for one engine: its SQL, how its parameters are sent (by position
    or by name, bind processors applied), and how its rows are converted (the result
    processors, chosen from the driver's column types at the first run, as SQLAlchemy does)."""

    __slots__ = ("_bound", "_constant", "_convert", "_lock", "_params", "_result_types", "sql")

    def __init__(self, statement: sa.Select[Any], dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            # values rendered in the SQL (a LIMIT), known now: render them once
            compiled = statement.compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True}
            )
        self.sql: str = compiled.string
        binds = cast("Mapping[str, Processor]", compiled._bind_processors)
        bound = compiled.construct_params(_check=False)  # by the names rendered in the SQL
        names = list(compiled.positiontup or ()) if dialect.positional else list(bound)
        pairs = [(name, binds.get(name)) for name in names]
        if dialect.positional:
            getters = [(operator.itemgetter(name), proc) for name, proc in pairs]

            def positional(values: Mapping[str, Any]) -> Any:
                return tuple(
                    (proc(get(values)) if proc is not None else get(values))
                    for get, proc in getters
                )

            self._params: Callable[[Mapping[str, Any]], Any] = positional
        else:

            def named(values: Mapping[str, Any]) -> Any:
                return {
                    name: (proc(values[name]) if proc is not None else values[name])
                    for name, proc in pairs
                }

            self._params = named
        #: the values bound in the statement itself (a model query's filter values, limit)
        self._bound = bound
        self._constant = (
            self._params(self._bound)
            if all(value is not None for value in self._bound.values())
            else None
        )
        self._convert: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
        self._lock = threading.Lock()
        self._result_types: list[Any] = [column[3] for column in compiled._result_columns]

    @staticmethod
    def supports(statement: sa.Select[Any], dialect: sa.Dialect) -> bool:
        """Whether the statement compiles to SQL this class can send as it is: the values
        SQLAlchemy renders into the SQL at execution (``IN`` lists, some LIMITs) are in the
        statement already."""
        compiled = statement.compile(dialect=dialect)
        rendered = compiled.literal_execute_params | compiled.post_compile_params
        return all(bind.value is not None and not bind.expanding for bind in rendered)

    def rows(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of the statement with these parameter values, converted."""
        if values:
            params = self._params({**self._bound, **values})
        elif self._constant is not None:
            params = self._constant
        else:
            params = self._params(self._bound)
        cursor = conn.connection.cursor()
        try:
            conn._cursor_execute(cursor, self.sql, params)
            raw = cursor.fetchall()
            convert = self._convert
            if convert is None:
                convert = self._converter(conn.dialect, cursor.description)
        finally:
            cursor.close()
        return [convert(row) for row in raw]

    def _converter(
        self, dialect: sa.Dialect, description: Sequence[Sequence[Any]] | None
    ) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        with self._lock:
            if self._convert is None:
                codes = [entry[1] for entry in description or ()]
                processors = [
                    type_._cached_result_processor(dialect, code)
                    for type_, code in zip(self._result_types, codes, strict=True)
                ]
                self._convert = _converter(processors)
            return self._convert


#: How many compiled statements are kept (the oldest dropped first): model queries bring one
#: statement per set of filter values.
MAX_COMPILED = 2_048

_compiled: dict[tuple[Any, type, str], CompiledSelect | None] = {}
_compiled_lock = threading.Lock()


def select_rows(
    conn: Connection, statement: sa.Select[Any], values: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of ``statement`` with these parameter values (converted as SQLAlchemy
    converts them), through :class:`CompiledSelect` when the statement allows it."""
    dialect = conn.dialect
    key = (statement, type(dialect), dialect.paramstyle)
    try:
        compiled = _compiled[key]
    except KeyError:
        supported = CompiledSelect.supports(statement, dialect)
        compiled = CompiledSelect(statement, dialect) if supported else None
        with _compiled_lock:
            while _compiled and len(_compiled) >= MAX_COMPILED:
                _compiled.pop(next(iter(_compiled)), None)
            _compiled[key] = compiled
    if compiled is None:
        return conn.execute(statement, dict(values)).all()
    return compiled.rows(conn, values)


def execute_driver(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """Run a statement in the driver's own SQL (parameters processed already) for each of
    ``rows``; returns the rows it changed.  One row (an activemethod's UPDATE) goes straight to
    the cursor as :func:`select_rows` does; several go as one ``executemany``."""
    if len(rows) != 1:
        return int(conn.exec_driver_sql(sql, rows).rowcount)
    cursor = conn.connection.cursor()
    try:
        conn._cursor_execute(cursor, sql, rows[0])
        return int(cursor.rowcount)
    finally:
        cursor.close()
