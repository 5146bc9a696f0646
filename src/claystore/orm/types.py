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

    Accepts what the numeric tower allows (int for float and Decimal) and nothing looser:
    bool is not accepted for int or float, naive datetimes are refused (ambiguous instant).
    """
    if python_type in (int, float, Decimal) and not isinstance(value, bool):
        if python_type is int and isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                msg = f"{value} does not fit in a 64-bit integer"
                raise TypeError(msg)
            return value
        if isinstance(value, python_type):
            if value != value:  # NaN  # noqa: PLR0124 - the NaN test
                msg = "NaN is not stored alike on every engine (SQLite makes it NULL); use None"
                raise TypeError(msg)
            return value
        if isinstance(value, int):
            return python_type(value)
    elif python_type is str and isinstance(value, str):
        if "\x00" in value:
            msg = "a str with a NUL character (\\x00) cannot be stored as text; use bytes"
            raise TypeError(msg)
        return value
    elif python_type is bytes and isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    elif python_type is dt.datetime and isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            msg = "a naive datetime is ambiguous; give it a timezone (datetime.now(UTC))"
            raise TypeError(msg)
        return value
    elif python_type is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
    elif python_type not in (int, float, Decimal) and isinstance(value, python_type):
        return value  # bool, str, time, timedelta, UUID, Enum members
    msg = f"expected {type_name(python_type)}, got {type(value).__name__} {value!r:.60}"
    raise TypeError(msg)


def type_name(python_type: Any) -> str:
    """A short readable name for a type, for error messages."""
    return getattr(python_type, "__name__", None) or repr(python_type)


# -- JSON element codecs ---------------------------------------------------------------------
# JSON holds str, int, float, bool, None natively; other scalars inside containers are stored
# as strings (ISO dates, decimal text, UUID text, enum names, base64 bytes) and decoded back by
# the field's annotation.


def encode_json_scalar(python_type: Any, value: Any) -> Any:  # noqa: PLR0911 - one case per type
    """Encode one scalar of ``python_type`` for a JSON document."""
    if value is None or python_type in (str, int, float, bool):
        return value
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return value.name
    if python_type is bytes:
        return base64.b64encode(value).decode("ascii")
    if python_type is dt.timedelta:
        return value.total_seconds()
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
        return dt.timedelta(seconds=value)
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
        return dt.timedelta(seconds=float(text))
    return decode_json_scalar(python_type, text)
