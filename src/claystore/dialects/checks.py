"""The SQL conditions of the data check (integrity level 4), per engine.

Owns :class:`ValueChecks` and its engine subclasses: for a stored column, the condition that
its value is not what claystore writes for the column's type -- text holding a NUL character,
a value of another storage type in SQLite's typeless columns, date or time text that does not
read as one -- and the expression that reads a JSON document as JSON text.  A method returns
None when the engine cannot hold such a value at all (a typed column on PostgreSQL, where a
``bigint`` holds only integers and text never holds NUL), so that the check skips it.

Every condition is meant for a non-NULL value: the caller adds ``column IS NOT NULL``.

Reached through :meth:`claystore.dialects.base.Dialect.value_checks`; called by
:mod:`claystore.housekeeping.data`.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from typing_extensions import override

__all__ = ["PostgreSQLValueChecks", "SQLiteValueChecks", "StoredKind", "TimeKind", "ValueChecks"]

#: The storage of a scalar column, as the data check names it.
#: ``id`` is a reference column's object id, checked for its length only: an id that is no
#: hex is also one that names no object, which the reference check reports.
StoredKind = Literal["bool", "int", "float", "decimal", "text", "bytes", "uuid", "id"]
#: The storage of a date or time column.
TimeKind = Literal["datetime", "date", "time", "timedelta"]

Condition = sa.ColumnElement[bool]


class ValueChecks:
    """The conditions of an engine whose columns are typed (the default): a column of a type
    holds only values of that type, so only what the type itself allows is checked."""

    #: Whether a JSON column holds only valid JSON (a JSON document type, not text).
    json_is_always_valid = False

    def text_has_nul(self, column: sa.ColumnElement[Any]) -> Condition | None:
        """The text in ``column`` holds a NUL character (None, the default: the engine's text
        refuses them)."""
        return None

    def not_stored_as(self, column: sa.ColumnElement[Any], kind: StoredKind) -> Condition | None:
        """The value in ``column`` is not stored as a ``kind`` (None: it cannot be otherwise)."""
        return None

    def invalid_time(self, column: sa.ColumnElement[Any], kind: TimeKind) -> Condition | None:
        """The value in ``column`` does not read as a ``kind`` (None: it cannot be otherwise)."""
        return None

    def json_text(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        """The JSON document in ``column`` as its JSON text (stored as text: as it is)."""
        return sa.type_coerce(column, sa.Text)


class PostgreSQLValueChecks(ValueChecks):
    """PostgreSQL: typed columns, text without NUL, JSONB (always valid JSON)."""

    json_is_always_valid = True

    @override
    def json_text(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return sa.cast(column, sa.Text)


#: What SQLite's ``typeof()`` gives for each storage claystore writes.
_SQLITE_TYPEOF: dict[str, tuple[str, ...]] = {
    "bool": ("integer",),
    "int": ("integer",),
    "float": ("real", "integer"),
    "decimal": ("text",),
    "text": ("text",),
    "bytes": ("blob",),
    "uuid": ("text",),
    "id": ("text",),
}
#: Characters that are never in a Decimal's text (``str(Decimal)``: digits, sign, point,
#: exponent; ``Infinity`` and ``NaN`` are tested apart).
_NOT_DECIMAL = "*[^0-9.E+-]*"
_NOT_HEX = "*[^0-9a-f]*"
_DATE = "[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]"
_TIME = "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]"


class SQLiteValueChecks(ValueChecks):
    """SQLite: typeless columns (any column holds any value), dates and times as ISO text,
    UUIDs as 32 hex digits, Decimals as text, JSON as text."""

    @override
    def text_has_nul(self, column: sa.ColumnElement[Any]) -> Condition | None:
        # the text's bytes: string functions may stop at a NUL, blob ones do not
        as_bytes = sa.cast(column, sa.LargeBinary)
        return sa.and_(
            sa.func.typeof(column) == "text", sa.func.instr(as_bytes, sa.literal(b"\x00")) > 0
        )

    @override
    def not_stored_as(self, column: sa.ColumnElement[Any], kind: StoredKind) -> Condition | None:
        stored = sa.func.typeof(column)
        wrong = stored.not_in(_SQLITE_TYPEOF[kind])
        text = sa.type_coerce(column, sa.Text)
        if kind == "bool":
            return sa.or_(wrong, text.not_in(["0", "1"]))
        if kind == "id":
            return sa.or_(wrong, sa.func.length(text) != 32)
        if kind == "uuid":
            return sa.or_(
                wrong, sa.func.length(text) != 32, text.op("GLOB", is_comparison=True)(_NOT_HEX)
            )
        if kind == "decimal":
            special = text.in_(["Infinity", "-Infinity"])
            return sa.or_(
                wrong, sa.and_(text.op("GLOB", is_comparison=True)(_NOT_DECIMAL), sa.not_(special))
            )
        return wrong

    @override
    def invalid_time(self, column: sa.ColumnElement[Any], kind: TimeKind) -> Condition | None:
        text = sa.type_coerce(column, sa.Text)
        not_text = sa.func.typeof(column) != "text"
        if kind == "time":
            shape = text.op("GLOB", is_comparison=True)(f"{_TIME}*")
            return sa.or_(not_text, sa.not_(shape), sa.func.time(text).is_(None))
        shape = text.op("GLOB", is_comparison=True)(f"{_DATE}{'T' if kind == 'datetime' else ''}*")
        day = sa.func.substr(text, 1, 10)
        # julianday() takes day 31 of any month; the date it gives back shows the overflow
        real_day = sa.func.date(sa.func.julianday(day))
        return sa.or_(
            not_text,
            sa.not_(shape),
            sa.func.julianday(text).is_(None),
            sa.and_(sa.func.substr(text, 9, 2) > "28", real_day.is_distinct_from(day)),
        )
