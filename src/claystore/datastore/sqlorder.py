"""The datastore's total order of values, written as SQL: what both query compilers share.

Owns the engine-independent pieces of turning datastore filters and orders into SQL, and does
no I/O: :func:`value_class` (the part of a value's total-order key SQL decides by class),
:func:`op_holds` and :func:`compare_keys` (deciding a filter from a comparison result),
:func:`sql_compare`, exact comparisons of doubles with integers (:func:`bracket_int`,
:func:`compare_bracketed`), :func:`json_number` (the exact JSON text of a number), the
64-bit integer bounds, :func:`is_plain` (whether SQL can evaluate a filter or order at all),
and the query's LIMIT/OFFSET (:func:`limit_of`, :func:`row_count`, :data:`RENDER_COUNTS`).
What differs per engine is the dialect's (:mod:`claystore.dialects`).

Called by the two compilers -- :mod:`claystore.datastore.jsoncompiler` (the JSON-table
datastore's) and :mod:`claystore.orm.modelcompiler` (model queries') -- and by
:mod:`claystore.datastore.jsontable`, :mod:`claystore.datastore.sqlcursor` and
:mod:`claystore.orm.modelquery`.
"""

from __future__ import annotations

import math
from typing import Any, Final

import sqlalchemy as sa

from claystore.datastore.query import Filter, Order, Query
from claystore.datastore.values import value_sort_key
from claystore.dialects.base import OPERATORS

__all__ = [
    "EXACT_FLOAT_LIMIT",
    "INT64_MAX",
    "INT64_MIN",
    "RENDER_COUNTS",
    "bracket_int",
    "compare_bracketed",
    "compare_keys",
    "is_plain",
    "json_number",
    "limit_of",
    "op_holds",
    "row_count",
    "sql_compare",
    "value_class",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
EXACT_FLOAT_LIMIT: Final = 2.0**53  # below it, repr() of an integral float is exact


def value_class(value: Any) -> tuple[Any, ...]:
    """The part of ``value``'s total-order key that SQL decides by class: the rank, and for
    values of the last rank ("anything else") the type name."""
    key = value_sort_key(value)
    return key[:1] if key[0] < 4 else key[:2]


def op_holds(op: str, comparison: int) -> bool:
    """Whether ``stored <op> value`` holds when comparing them gave ``comparison`` (-1/0/1)."""
    return bool(OPERATORS[op](comparison, 0))


def sql_compare(op: str, left: Any, right: Any) -> sa.ColumnElement[bool]:
    """The SQL expression ``left <op> right``."""
    clause: sa.ColumnElement[bool] = OPERATORS[op](left, right)
    return clause


def limit_of(query: Query) -> int | None:
    """``query.limit`` as an int, or None for no limit (model queries' ``limit`` is callable)."""
    limit = query.limit
    return int(limit) if isinstance(limit, int) else None


RENDER_COUNTS: Final = {"render_postcompile": True}  # compile_kwargs: row_count() numbers shown


def row_count(count: int | None) -> Any:
    """A LIMIT or OFFSET written into the SQL as a number, not bound as a parameter (None
    stays None).  SQLite plans ``LIMIT ?`` as if no limit were known and may then prefer an
    index scan with a row lookup per entry to a plain table scan (1.3x slower on a
    1,000,000-row collection); the statement stays cached, the number is rendered at run time.
    """
    if count is None:
        return None
    return sa.bindparam(None, int(count), type_=sa.Integer(), literal_execute=True)


def compare_keys(left: tuple[Any, ...], right: tuple[Any, ...]) -> int:
    """-1, 0 or 1 as ``left`` sorts before, with or after ``right``."""
    return (left > right) - (left < right)


def bracket_int(value: int) -> tuple[float, float]:
    """The doubles just below and above ``value`` (the same double twice when one equals it;
    the largest finite double and infinity beyond them): ``x < value`` is ``x <= low`` and
    ``x > value`` is ``x >= high`` for every double ``x``."""
    try:
        as_float = float(value)
    except OverflowError:
        largest = math.nextafter(math.inf, 0.0)
        return (largest, math.inf) if value > 0 else (-math.inf, -largest)
    if int(as_float) == value:
        return as_float, as_float
    if as_float < value:
        return as_float, math.nextafter(as_float, math.inf)
    return math.nextafter(as_float, -math.inf), as_float


def compare_bracketed(op: str, stored: Any, value: int) -> sa.ColumnElement[bool] | bool:
    """``stored <op> value`` for a column of doubles and an int no double may equal exactly."""
    low, high = bracket_int(value)
    if low == high:
        return sql_compare(op, stored, low)
    if op in ("=", "!="):
        return op == "!="
    return sql_compare("<=", stored, low) if op in ("<", "<=") else sql_compare(">=", stored, high)


def json_number(value: bool | float) -> str:
    """The exact JSON text of a bool, int (any size) or finite float, for comparisons with
    JSONB numbers on PostgreSQL (``numeric``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    return f"{int(value)}.0" if abs(value) >= EXACT_FLOAT_LIMIT else float.__repr__(value)


def is_plain(condition: Filter | Order, query: Query) -> bool:
    """Whether a filter or order reads fields the default way (so SQL can evaluate it)."""
    base = Filter if isinstance(condition, Filter) else Order
    return (
        type(condition) is base
        and "object_getattr" not in vars(condition)
        and "object_getattr" not in vars(query)
        and type(query).object_getattr is Query.object_getattr
    )
