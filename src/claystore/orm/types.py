"""Python type -> SQL type, and the value codecs that go with it.

Owns the one ordered type-map function (:func:`sql_type_for`), :class:`JSONValue` (a JSON
container field whose values its codec converts, so non-JSON scalars inside containers
round-trip exactly), the scalar checks used when a value is assigned, and the JSON codecs of
scalars.  The column types that differ per engine (text by code point, aware datetimes, exact
decimals, JSON documents) come from :mod:`claystore.dialects.types`.

Called by :mod:`claystore.orm.fields` (to check and describe fields) and by
:mod:`claystore.orm.mapping` (to build columns).  Does no I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect as SQLAlchemyDialect
from sqlalchemy.types import TypeEngine
from typing_extensions import override

from claystore.dialects.types import AwareDateTime, CodePointString, ExactDecimal, JSONDocument

#: Python scalar types a column can hold, in the order :func:`sql_type_for` tests them.
SCALAR_TYPES: tuple[type, ...] = (
    bool,
    int,
    float,
    Decimal,
    str,
    bytes,
    dt.datetime,
    dt.date,
    dt.time,
    dt.timedelta,
    uuid.UUID,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class JSONValue(JSONDocument):
    """A JSON container column (JSONB on PostgreSQL) whose Python values are converted by a
    field's codec (tuples, sets, datetimes and other scalars inside containers round-trip
    exactly)."""

    cache_ok = False  # carries per-field codecs

    def __init__(self, encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> None:
        super().__init__()
        self._encode = encode
        self._decode = decode

    @override
    def process_bind_param(self, value: Any, dialect: SQLAlchemyDialect) -> Any:
        return None if value is None else self._encode(value)

    @override
    def process_result_value(self, value: Any, dialect: SQLAlchemyDialect) -> Any:
        return None if value is None else self._decode(value)


def sql_type_for(python_type: Any) -> TypeEngine[Any]:  # noqa: PLR0911 - the type map is one ordered function
    """Return the SQL column type for a scalar Python type.

    The order of the tests matters and is the whole type map:
    bool before int (bool is an int subclass); Enum before str and int (StrEnum and IntEnum
    subclass them); datetime before date (datetime subclasses date).
    """
    if python_type is bool:
        return sa.Boolean()
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return sa.Enum(
            python_type,
            native_enum=False,
            create_constraint=False,
            length=max((len(m.name) for m in python_type), default=1),
            validate_strings=True,
        )
    if python_type is int:
        return sa.BigInteger()
    if python_type is float:
        return sa.Double()
    if python_type is Decimal:
        return ExactDecimal()
    if python_type is str:
        return CodePointString()  # compared by code point on every engine, like str
    if python_type is bytes:
        return sa.LargeBinary()
    if python_type is dt.datetime:
        return AwareDateTime()
    if python_type is dt.date:
        return sa.Date()
    if python_type is dt.time:
        return sa.Time()
    if python_type is dt.timedelta:
        return sa.Interval()
    if python_type is uuid.UUID:
        return sa.Uuid()
    msg = f"no SQL type for {python_type!r}"
    raise TypeError(msg)


def is_scalar_type(python_type: Any) -> bool:
    """True for the types a single column holds (the scalars above and Enum subclasses)."""
    if python_type in SCALAR_TYPES:
        return True
    return isinstance(python_type, type) and issubclass(python_type, enum.Enum)


def check_scalar(python_type: Any, value: Any) -> Any:  # noqa: PLR0911, PLR0912 - a case per kind
    """Return ``value`` converted to ``python_type`` or raise ``TypeError`` with the reason.

    The rules every value of the type follows, in a column or inside a JSON container.
    Accepts what the numeric tower allows (int for float and Decimal) and nothing looser:
    bool is not accepted for int or float.  Refuses what no engine would give back as it was:
    naive datetimes (an ambiguous instant), datetimes outside the years 1-9999 in UTC, times
    with a tzinfo, NaN, ``-0.0``, and text with a NUL character or a lone surrogate.
    """
    if python_type in (int, float, Decimal) and not isinstance(value, bool):
        if python_type is int and isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                msg = f"{value} does not fit in a 64-bit integer"
                raise TypeError(msg)
            return value
        if isinstance(value, python_type):
            _check_number(value)
            return value
        if isinstance(value, int):
            return _widen(python_type, value)
    elif python_type is str and isinstance(value, str):
        return _check_text(value)
    elif python_type is bytes and isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    elif python_type is dt.datetime and isinstance(value, dt.datetime):
        return _check_datetime(value)
    elif python_type is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
    elif python_type is dt.time and isinstance(value, dt.time):
        if value.tzinfo is not None:
            msg = (
                f"{value!r} has a tzinfo, which a time field does not keep; store a naive "
                "time (value.replace(tzinfo=None)), or an aware datetime for an instant"
            )
            raise TypeError(msg)
        return value
    elif python_type not in (int, float, Decimal) and isinstance(value, python_type):
        return value  # bool, str, timedelta, UUID, Enum members
    msg = f"expected {type_name(python_type)}, got {type(value).__name__} {value!r:.60}"
    raise TypeError(msg)


def _check_number(value: float | Decimal) -> None:
    """Refuse the floats and Decimals no engine gives back as they were: NaN, ``-0.0``."""
    if isinstance(value, Decimal):
        if value.is_nan():  # also sNaN, which cannot even be compared
            msg = f"{value!r}: NaN is not stored alike on every engine (SQLite has none); use None"
            raise TypeError(msg)
        return
    if value != value:  # NaN  # noqa: PLR0124 - the NaN test
        msg = "NaN is not stored alike on every engine (SQLite makes it NULL); use None"
        raise TypeError(msg)
    refuse_negative_zero(value)


def refuse_negative_zero(value: float) -> None:
    """Refuse ``-0.0``, which comes back as ``0.0`` (SQLite's REAL and PostgreSQL's JSON drop
    the sign of zero): in a float column and in a JSON document alike."""
    if value == 0 and math.copysign(1.0, value) < 0:
        msg = (
            "-0.0 comes back as 0.0 (SQLite's REAL and PostgreSQL's JSON drop the sign of "
            "zero); assign 0.0 (value + 0.0 turns -0.0 into 0.0)"
        )
        raise TypeError(msg)


def _widen(python_type: Any, value: int) -> Any:
    """An int given for a float or Decimal, converted (refused when a float cannot hold it)."""
    try:
        return python_type(value)
    except OverflowError:
        msg = f"an int of {value.bit_length()} bits is too large for a float; use Decimal"
        raise TypeError(msg) from None


def _check_text(value: str) -> str:
    """Refuse text no engine stores: a NUL character, a lone surrogate (not UTF-8)."""
    if "\x00" in value:
        msg = "a str with a NUL character (\\x00) cannot be stored as text; use bytes"
        raise TypeError(msg)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        msg = (
            f"a str with a lone surrogate ({bad!r} at position {exc.start}) cannot be stored "
            "as text (it is not UTF-8); decode the bytes it came from with errors='replace', "
            "or store bytes"
        )
        raise TypeError(msg) from None
    return value


def _check_datetime(value: dt.datetime) -> dt.datetime:
    """Refuse naive datetimes and those with no UTC form (they are stored in UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "a naive datetime is ambiguous; give it a timezone (datetime.now(UTC))"
        raise TypeError(msg)
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        msg = (
            f"{value!r} is outside the years 1-9999 in UTC, where datetimes are stored; "
            "use a datetime that has a UTC form"
        )
        raise TypeError(msg) from None
    return value


#: A timedelta column's range on every engine: SQLite stores it as a datetime from 1970.
TIMEDELTA_MIN: dt.timedelta = dt.datetime.min - dt.datetime(1970, 1, 1)
TIMEDELTA_MAX: dt.timedelta = dt.datetime.max - dt.datetime(1970, 1, 1)
#: A Decimal column's range on every engine: PostgreSQL's NUMERIC holds up to 131072 digits
#: before the decimal point and 16383 after it.
DECIMAL_MAX_ADJUSTED = 131071
DECIMAL_MIN_EXPONENT = -16383


def check_column(python_type: Any, value: Any) -> Any:
    """:func:`check_scalar`, plus what a column holds on every engine (JSON holds more):
    Decimals as PostgreSQL's NUMERIC keeps them, timedeltas as SQLite keeps them."""
    value = check_scalar(python_type, value)
    if python_type is Decimal and value.is_finite():
        _check_decimal_column(value)
    elif python_type is dt.timedelta and not TIMEDELTA_MIN <= value <= TIMEDELTA_MAX:
        msg = (
            f"{value!r} is beyond what a timedelta column holds on every engine "
            f"({TIMEDELTA_MIN.days} to {TIMEDELTA_MAX.days} days: SQLite stores it as a "
            "datetime from 1970); store a shorter duration, or its total in an int field"
        )
        raise TypeError(msg)
    return value


def _check_decimal_column(value: Decimal) -> None:
    sign, _, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if sign and not value:
        msg = (
            f"{value!r} comes back as {abs(value)!r} (PostgreSQL's NUMERIC has no negative "
            "zero); assign abs(value)"
        )
        raise TypeError(msg)
    if value.adjusted() > DECIMAL_MAX_ADJUSTED or exponent < DECIMAL_MIN_EXPONENT:
        msg = (
            f"{value!r:.60} is beyond what a Decimal column holds on every engine (PostgreSQL's "
            f"NUMERIC: up to {DECIMAL_MAX_ADJUSTED + 1} digits before the decimal point and "
            f"{-DECIMAL_MIN_EXPONENT} after it); round it (value.quantize(...)) or store str"
        )
        raise TypeError(msg)
    if exponent > 0:
        msg = (
            f"{value!r:.60} has a positive exponent, which PostgreSQL's NUMERIC does not keep "
            "(Decimal('1E+2') comes back as Decimal('100')); assign Decimal(int(value))"
        )
        raise TypeError(msg)


def type_name(python_type: Any) -> str:
    """A short readable name for a type, for error messages."""
    return getattr(python_type, "__name__", None) or repr(python_type)


# -- JSON element codecs ---------------------------------------------------------------------
# JSON holds str, int, float, bool, None natively; other scalars inside containers are stored
# as strings (ISO dates, decimal text, UUID text, enum names, base64 bytes) or, for timedeltas,
# as whole microseconds (an int), and decoded back by the field's annotation.  Timedeltas
# written by claystore 0.1.0 are float seconds (which lose microseconds beyond about 285
# years); a float is still read as seconds.

_MICROSECOND = dt.timedelta(microseconds=1)


def encode_json_scalar(python_type: Any, value: Any) -> Any:  # noqa: PLR0911 - one case per type
    """Encode one scalar of ``python_type`` for a JSON document."""
    if value is None or python_type in (str, int, float, bool):
        return value
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return value.name
    if python_type is bytes:
        return base64.b64encode(value).decode("ascii")
    if python_type is dt.timedelta:
        return value // _MICROSECOND  # exact: a float of seconds is not, beyond ~285 years
    if python_type is dt.datetime:
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if python_type in (dt.date, dt.time):
        return value.isoformat()
    return str(value)  # Decimal, UUID


def decode_json_scalar(python_type: Any, value: Any) -> Any:  # noqa: PLR0911 - one case per type
    """Decode one scalar of ``python_type`` from a JSON document."""
    if value is None or python_type in (str, int, bool):
        return value
    if python_type is float:
        return float(value)
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return python_type[value]
    if python_type is bytes:
        return base64.b64decode(value)
    if python_type is dt.timedelta:
        return _decode_timedelta(value)
    if python_type is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if python_type is dt.date:
        return dt.date.fromisoformat(value)
    if python_type is dt.time:
        return dt.time.fromisoformat(value)
    if python_type is Decimal:
        return Decimal(value)
    if python_type is uuid.UUID:
        return uuid.UUID(value)
    msg = f"cannot decode {python_type!r} from JSON"
    raise TypeError(msg)


def encode_json_key(python_type: Any, value: Any) -> str:
    """Encode a dict key (JSON object keys are strings)."""
    encoded = encode_json_scalar(python_type, value)
    return encoded if isinstance(encoded, str) else str(encoded)


def decode_json_key(python_type: Any, text: str) -> Any:
    """Decode a dict key written by :func:`encode_json_key`."""
    if python_type is int:
        return int(text)
    if python_type is float:
        return float(text)
    if python_type is bool:
        return text == "True"
    if python_type is dt.timedelta:
        is_int = text.lstrip("-").isdigit()
        return _decode_timedelta(int(text) if is_int else float(text))
    return decode_json_scalar(python_type, text)


def _decode_timedelta(value: float) -> dt.timedelta:
    """A timedelta from whole microseconds (an int), or from float seconds (written before)."""
    if isinstance(value, int):
        return dt.timedelta(microseconds=value)
    return dt.timedelta(seconds=value)
