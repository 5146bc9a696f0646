"""Hot statements run on the driver's cursor: compiled once, converted by generated code.

Owns :class:`CompiledSelect` and :func:`select_rows`: a SQLAlchemy ``SELECT`` (a row by id, a
locked row) compiled once per engine, its parameters and result columns converted with
SQLAlchemy's own bind and result processors (applied by one generated function per shape, as
bulk INSERTs are: :func:`processed_rows`, also here), executed through
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

__all__ = ["MAX_COMPILED", "CompiledSelect", "execute_driver", "processed_rows", "select_rows"]

Processor = Callable[[Any], Any]


class _Unsupported(Exception):
    """A statement whose compiled form does not show all its parameters."""


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


def _converter(
    processors: Sequence[Processor | None],
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function making a tuple of a row with the processors applied (None values and
    columns without a processor pass as they are): :func:`_row_converter`'s function with
    the processors bound."""
    positions = tuple(i for i, proc in enumerate(processors) if proc is not None)
    if not positions:
        return tuple
    convert = _row_converter(len(processors), positions)
    procs = [processors[i] for i in positions]
    return lambda row: convert(row, *procs)


class CompiledSelect:
    """One shape of SELECT compiled for one engine: its SQL, how its parameters are sent (by
    position or by name, bind processors applied), and how its rows are converted (the result
    processors, chosen from the driver's column types at the first run, as SQLAlchemy does).

    A shape is SQLAlchemy's cache key of the statement (its structure, not its values), with
    the values SQLAlchemy renders into the SQL (a LIMIT) added: statements built anew with other
    values share it, each bringing its values (:meth:`bind`)."""

    __slots__ = (
        "_convert",
        "_defaults",
        "_lock",
        "_names",
        "_params",
        "_result_types",
        "sql",
    )

    def __init__(self, statement: sa.Select[Any], dialect: sa.Dialect, key: Any) -> None:
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        self.sql: str = compiled.string
        binds = cast("Mapping[str, Processor]", compiled._bind_processors)
        bound = compiled.construct_params(_check=False)  # by the names rendered in the SQL
        #: the name in the SQL of each of the cache key's bind parameters, in its order (None:
        #: rendered into the SQL, part of the shape)
        self._names: list[str | None] = []
        for bind in key.bindparams:
            name = compiled.bind_names.get(bind)
            if name is None and not (bind.literal_execute or bind.expanding):
                msg = f"bind parameter {bind.key!r} is not in the compiled SQL"
                raise _Unsupported(msg)
            self._names.append(name)
        self._defaults = bound
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
        self._convert: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
        self._lock = threading.Lock()
        self._result_types: list[Any] = [column[3] for column in compiled._result_columns]

    def bind(self, extracted: Sequence[Any]) -> Mapping[str, Any]:
        """The parameter values of a statement of this shape (its cache key's bind
        parameters, in order), by the names in the SQL."""
        values = dict(self._defaults)
        for name, bind in zip(self._names, extracted, strict=True):
            if name is not None:
                values[name] = bind.effective_value
        return values

    def rows(
        self, conn: Connection, bound: Mapping[str, Any], values: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The rows of the statement whose values are ``bound`` (:meth:`bind`), with these
        parameter values added, converted."""
        params = self._params({**bound, **values} if values else bound)
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


#: How many statements and shapes are kept (the oldest dropped first): model queries bring
#: one statement per set of filter values.
MAX_COMPILED = 2_048

_Bound = tuple[CompiledSelect, Mapping[str, Any]]
_statements: dict[tuple[Any, type, str], _Bound | None] = {}
_shapes: dict[tuple[Any, ...], CompiledSelect] = {}
_compiled_lock = threading.Lock()


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> None:
    with _compiled_lock:
        while cache and len(cache) >= MAX_COMPILED:
            cache.pop(next(iter(cache)), None)
        cache[key] = value


def _prepare(statement: sa.Select[Any], dialect: sa.Dialect) -> _Bound | None:
    """The shape of ``statement`` (compiled the first time it is met) and its values; None
    for a statement SQLAlchemy must render at each execution (an ``IN`` list given then)."""
    key = statement._generate_cache_key()
    if key is None:
        return None
    rendered = []
    for bind in key.bindparams:
        if bind.expanding or bind.literal_execute:
            if bind.value is None or bind.callable is not None:
                return None
            rendered.append(repr(bind.value))
    shape_key = (key.key, tuple(rendered), type(dialect), dialect.paramstyle)
    shape = _shapes.get(shape_key)
    if shape is None:
        try:
            shape = CompiledSelect(statement, dialect, key)
        except _Unsupported:
            return None
        _keep(_shapes, shape_key, shape)
    return shape, shape.bind(key.bindparams)


def select_rows(
    conn: Connection, statement: sa.Select[Any], values: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of ``statement`` with these parameter values (converted as SQLAlchemy
    converts them), through :class:`CompiledSelect` when the statement allows it."""
    dialect = conn.dialect
    key = (statement, type(dialect), dialect.paramstyle)
    try:
        prepared = _statements[key]
    except KeyError:
        prepared = _prepare(statement, dialect)
        _keep(_statements, key, prepared)
    if prepared is None:
        return conn.execute(statement, dict(values)).all()
    shape, bound = prepared
    return shape.rows(conn, bound, values)


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
