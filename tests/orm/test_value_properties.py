"""Property: every supported annotation stores every value exactly, or refuses it alike.

Random values of every annotation claystore stores (scalars, ``X | None``, Literals, Enums,
JSON containers typed and untyped, references and containers of references), with the edges
that engines change or refuse (``-0.0``, NaN, infinities, Decimals with huge or tiny
exponents, ``Decimal('-0')``, datetimes with offsets at the ends of the calendar, naive times
and aware ones, timedeltas beyond a column's range, NUL characters and lone surrogates, big
ints), go through assignment, ``make_persistent`` and a fresh client's load on SQLite and on
PostgreSQL.  Each value either comes back exactly (same type, same digits and exponent, same
sign of zero, same microseconds; datetimes as the same instant in UTC) or its assignment
raises :class:`FieldTypeError` -- exactly when the rules written in :func:`unstorable` (the
documented rules of the README's type table) say so.
"""

# ruff: noqa: RUF012 - class-level values of model fields are defaults, copied per object

from __future__ import annotations

import datetime as dt
import enum
import math
import typing
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claystore import Client, DataClayObject, errors
from claystore.orm.types import (
    DECIMAL_MAX_ADJUSTED,
    DECIMAL_MIN_EXPONENT,
    INT64_MAX,
    INT64_MIN,
    TIMEDELTA_MAX,
    TIMEDELTA_MIN,
)

# -- the model: one field per annotation ---------------------------------------------------------


class PropColor(enum.Enum):
    RED = "r"
    GREEN = "g"


class PropLevel(enum.IntEnum):
    LOW = 1
    HIGH = 2


class PropTarget(DataClayObject):
    __tablename__ = "prop_target"

    n: int = 0


class PropOther(DataClayObject):
    __tablename__ = "prop_other"


class PropValues(DataClayObject):
    __tablename__ = "prop_values"

    b: bool | None = None
    i: int | None = None
    f: float | None = None
    d: Decimal | None = None
    s: str | None = None
    raw: bytes | None = None
    when: dt.datetime | None = None
    day: dt.date | None = None
    at: dt.time | None = None
    span: dt.timedelta | None = None
    key: UUID | None = None
    color: PropColor | None = None
    level: PropLevel | None = None
    lit: Literal["low", "high"] | None = None
    lit_int: Literal[1, 2, 3] | None = None
    ints: list[int] = []
    floats: list[float] = []
    decimals: list[Decimal] = []
    texts: list[str] = []
    raws: list[bytes] = []
    whens: list[dt.datetime] = []
    days: set[dt.date] = set()
    ats: list[dt.time] = []
    spans: list[dt.timedelta] = []
    keys: frozenset[UUID] = frozenset()
    colors: list[PropColor] = []
    levels: tuple[PropLevel, ...] = ()
    lits: list[Literal["x", "y"]] = []
    maybe: list[int | None] = []
    pair: tuple[int, str] | None = None
    many: tuple[float, ...] = ()
    by_str: dict[str, float] = {}
    by_int: dict[int, str] = {}
    by_uuid: dict[UUID, Decimal] = {}
    by_span: dict[dt.timedelta, dt.date] = {}
    by_color: dict[PropColor, bool] = {}
    by_day: dict[dt.date, list[dt.time]] = {}
    nested: dict[str, list[int | None]] = {}
    deep: list[list[dict[str, tuple[int, ...]]]] = []
    anys: list[Any] = []
    loose_list: list = []  # type: ignore[type-arg]  # untyped JSON on purpose
    loose_dict: dict = {}  # type: ignore[type-arg]
    ref: PropTarget | None = None
    either: PropTarget | PropOther | None = None
    ref_list: list[PropTarget] = []
    ref_tuple: tuple[PropTarget, ...] = ()
    ref_set: set[PropTarget] = set()
    ref_dict: dict[str, PropTarget] = {}


FIELDS: dict[str, Any] = typing.get_type_hints(PropValues, localns=globals())
# the fields read back in the order annotated (the README's type table, row by row)
NAMES = [n for n in PropValues.__annotations__ if n in FIELDS]


# -- strategies per type, with the edges ------------------------------------------------------

TEXT_CHARACTERS = st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Cs"])
EDGE_OFFSETS = st.sampled_from([dt.timedelta(hours=h) for h in (-23, -5, 0, 5, 14)]).map(
    dt.timezone
)
TIMEZONES = st.none() | EDGE_OFFSETS | st.timezones()


def _decimal_of(sign: int, digits: tuple[int, ...], exponent: int) -> Decimal:
    return Decimal((sign, digits, exponent))


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


HASHABLE: dict[Any, st.SearchStrategy[Any]] = {
    bool: st.booleans(),
    int: st.integers(-(2**64), 2**64)
    | st.sampled_from([INT64_MIN, INT64_MAX, INT64_MIN - 1, INT64_MAX + 1, 0]),
    float: st.floats()
    | st.sampled_from([-0.0, 0.0, 5e-324, -1.7976931348623157e308, 1e16, math.inf, math.nan]),
    Decimal: st.decimals(allow_nan=True, allow_infinity=True)
    | st.builds(
        _decimal_of,
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=1, max_size=30).map(tuple),
        st.integers(-17000, 5) | st.integers(-40, 5),
    )
    | st.sampled_from(
        [
            Decimal("-0"),
            Decimal("-0.00"),
            Decimal("1E+2"),
            Decimal("1.10"),
            Decimal("NaN"),
            Decimal("1E+200000"),
            Decimal("1E-16383"),
            Decimal("1E-16384"),
            Decimal("9" * 131072),
            Decimal("-Infinity"),
        ]
    ),
    str: st.text(TEXT_CHARACTERS, max_size=12)
    | st.sampled_from(["", "a\x00", "\ud800", "x\udfffy", "é✓😀", "\U0010ffff"]),
    bytes: st.binary(max_size=16),
    dt.datetime: st.datetimes(timezones=TIMEZONES)
    | st.sampled_from(
        [
            dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            dt.datetime(1, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
            dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        ]
    ),
    dt.date: st.dates(),
    dt.time: st.times(timezones=st.none() | st.none() | EDGE_OFFSETS),
    dt.timedelta: st.timedeltas()
    | st.sampled_from(
        [
            TIMEDELTA_MAX,
            TIMEDELTA_MIN,
            TIMEDELTA_MAX + dt.timedelta(microseconds=1),
            TIMEDELTA_MIN - dt.timedelta(microseconds=1),
            dt.timedelta(days=300 * 365, microseconds=1),
        ]
    ),
    UUID: st.uuids(),
    PropColor: st.sampled_from(PropColor),
    PropLevel: st.sampled_from(PropLevel),
}

# JSON's own values, for untyped documents.  Untyped floats stay below 1e16: PostgreSQL's
# JSONB gives an integral float of 1e16 or more back as an int (a documented rule of untyped
# JSON; typed containers keep floats).
json_floats = st.floats(min_value=-1e16, max_value=1e16, exclude_min=True, exclude_max=True) | (
    st.sampled_from([-0.0, math.nan, math.inf])
)
json_scalars = st.none() | st.booleans() | st.integers() | json_floats | HASHABLE[str]
json_values = st.recursive(
    json_scalars | st.sampled_from([10**4000, _deep_list(201), _deep_list(200)]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(HASHABLE[str], children, max_size=3)
    ),
    max_leaves=8,
)


def _hashable(annotation: Any) -> st.SearchStrategy[Any]:
    strategy = strategy_for(annotation)
    if annotation is Decimal:  # a signalling NaN cannot be hashed (a set or key cannot hold it)
        return strategy.filter(lambda d: not d.is_snan())
    return strategy


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Values for ``annotation``: most of them storable, some at or beyond its edges."""
    if annotation in HASHABLE:
        return HASHABLE[annotation]
    if annotation is Any or annotation is list or annotation is dict:
        if annotation is list:
            return st.lists(json_values, max_size=3)
        if annotation is dict:
            return st.dictionaries(HASHABLE[str], json_values, max_size=3)
        return json_values
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return st.sampled_from([*args, "other" if isinstance(args[0], str) else 4])
    if origin in (typing.Union, type(int | None)):
        rest = [a for a in args if a is not type(None)]
        return st.none() | st.one_of([strategy_for(a) for a in rest])
    if isinstance(annotation, type) and issubclass(annotation, DataClayObject):
        return st.builds(annotation)
    if origin in (list, tuple) and (origin is list or args[1:] == (Ellipsis,)):
        items = st.lists(strategy_for(args[0]), max_size=4)
        return items if origin is list else items.map(tuple) | items
    if origin is tuple:
        return st.tuples(*(strategy_for(a) for a in args))
    if origin in (set, frozenset):
        if isinstance(args[0], type) and issubclass(args[0], DataClayObject):
            return st.lists(st.builds(args[0]), max_size=3).map(origin)
        return st.sets(_hashable(args[0]), max_size=4).map(origin)
    if origin is dict:
        return st.dictionaries(_hashable(args[0]), strategy_for(args[1]), max_size=4)
    raise AssertionError(annotation)  # pragma: no cover - every annotation has a strategy


# -- the rules: what every engine stores, and exact comparison ---------------------------------


def _bad_text(text: str) -> bool:
    return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _negative_zero(value: float) -> bool:
    return value == 0 and math.copysign(1.0, value) < 0


def _bad_scalar(kind: Any, value: Any, *, column: bool) -> bool:
    """Whether ``value`` of scalar type ``kind`` is refused (in a column, or in JSON)."""
    if kind is int:
        return not INT64_MIN <= value <= INT64_MAX
    if kind is float:
        return math.isnan(value) or _negative_zero(value) or (not column and math.isinf(value))
    if kind is Decimal:
        if value.is_nan():
            return True
        if not column or value.is_infinite():
            return False
        sign, _, exponent = value.as_tuple()
        beyond = value.adjusted() > DECIMAL_MAX_ADJUSTED or exponent < DECIMAL_MIN_EXPONENT
        return beyond or exponent > 0 or bool(sign and not value)
    if kind is str:
        return _bad_text(value)
    if kind is dt.datetime:
        if value.utcoffset() is None:
            return True
        try:
            value.astimezone(dt.UTC)
        except OverflowError:
            return True
        return False
    if kind is dt.time:
        return value.tzinfo is not None
    if kind is dt.timedelta:
        return column and not TIMEDELTA_MIN <= value <= TIMEDELTA_MAX
    return False


def _bad_json(value: Any, depth: int) -> bool:
    """Whether an untyped JSON value is refused (depth: its lists' and dicts' nesting)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return abs(value) >= 10**4000
    if isinstance(value, float):
        return not math.isfinite(value) or _negative_zero(value)
    if isinstance(value, str):
        return _bad_text(value)
    if depth > 200:
        return True
    if isinstance(value, dict):
        return any(_bad_text(k) or _bad_json(v, depth + 1) for k, v in value.items())
    return any(_bad_json(v, depth + 1) for v in value)


def unstorable(annotation: Any, value: Any, *, column: bool = True) -> bool:
    """Whether assigning ``value`` to a field annotated ``annotation`` must raise."""
    if value is None:
        return False  # every field here is optional, and None items come from `X | None`
    if annotation in (list, dict):
        return _bad_json(value, 1)
    if annotation is Any:
        return _bad_json(value, 2)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return value not in args
    if origin in (typing.Union, type(int | None)):
        rest = [a for a in args if a is not type(None)]
        return len(rest) == 1 and unstorable(rest[0], value, column=column)
    if isinstance(annotation, type) and issubclass(annotation, DataClayObject):
        return False
    if origin is dict:
        return any(
            unstorable(args[0], k, column=False) or unstorable(args[1], v, column=False)
            for k, v in value.items()
        )
    if origin is tuple and args[1:] != (Ellipsis,):
        return any(unstorable(a, v, column=False) for a, v in zip(args, value, strict=True))
    if origin in (list, tuple, set, frozenset):
        return any(unstorable(args[0], v, column=False) for v in value)
    return _bad_scalar(annotation, value, column=column)


def assert_exact(expected: Any, back: Any, where: str) -> None:
    """``back`` is ``expected`` as stored: same type, value and representation (datetimes:
    the same instant, in UTC; model objects: the same objects' ids)."""
    if isinstance(expected, DataClayObject):
        assert type(back) is type(expected), where
        assert back._dc_state.object_id == expected._dc_state.object_id, where
        return
    assert type(back) is type(expected), f"{where}: {back!r} is not a {type(expected)}"
    if isinstance(expected, float):
        assert back == expected, where
        assert math.copysign(1, back) == math.copysign(1, expected), where
    elif isinstance(expected, Decimal):
        assert back.as_tuple() == expected.as_tuple(), f"{where}: {back!r} != {expected!r}"
    elif isinstance(expected, dt.datetime):
        # a local time in a DST gap or fold never compares equal across zones (PEP 495):
        # compare with its instant, as Python itself reads it
        assert back == expected.astimezone(dt.UTC), where
        assert back.utcoffset() == dt.timedelta(0), where
    elif isinstance(expected, list | tuple):
        assert len(back) == len(expected), where
        for n, (e, b) in enumerate(zip(expected, back, strict=True)):
            assert_exact(e, b, f"{where}[{n}]")
    elif isinstance(expected, set | frozenset):
        assert len(back) == len(expected), where
        by_id = _matching(expected, back)
        for e, b in by_id:
            assert_exact(e, b, f"{where}{{{e!r}}}")
    elif isinstance(expected, dict):
        assert len(back) == len(expected), where
        for e_key, b_key in _matching(expected, back):
            assert_exact(e_key, b_key, f"{where} key {e_key!r}")
            assert_exact(expected[e_key], back[b_key], f"{where}[{e_key!r}]")
    else:
        assert back == expected, f"{where}: {back!r} != {expected!r}"


def _matching(expected: Any, back: Any) -> list[tuple[Any, Any]]:
    """Pairs of equal members of two sets (or dicts' keys); model objects by id."""
    if all(isinstance(e, DataClayObject) for e in expected):
        ids = {b._dc_state.object_id: b for b in back}
        return [(e, ids[e._dc_state.object_id]) for e in expected]
    found = {b: b for b in back}
    return [(e, found[e]) for e in expected]


# -- the property ------------------------------------------------------------------------------

records = st.fixed_dictionaries({name: strategy_for(FIELDS[name]) for name in NAMES})


@pytest.fixture
def started(db_url: str) -> Any:
    with Client(db_url) as client:
        yield client


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(record=records)
def test_every_annotation_stores_exactly_or_refuses_alike(
    started: Client, db_url: str, record: dict[str, Any]
) -> None:
    """Each field's random value either reads back exactly from a fresh client on this
    engine, or its assignment raises FieldTypeError naming the field -- exactly when the
    rules say no engine would give it back as it was."""
    obj = PropValues()
    expected: dict[str, Any] = {}
    for name, value in record.items():
        refusal: errors.FieldTypeError | None = None
        try:
            setattr(obj, name, value)
        except errors.FieldTypeError as exc:
            refusal = exc
        verdict = f"refused ({refusal})" if refusal else "accepted"
        must_refuse = unstorable(FIELDS[name], value)
        assert must_refuse == (refusal is not None), f"PropValues.{name} {verdict} {value!r:.200}"
        if refusal is None:
            expected[name] = getattr(obj, name)
        else:
            assert f"PropValues.{name}" in str(refusal)
    obj.make_persistent()
    with Client(db_url):
        back = PropValues.get_by_id(obj._dc_state.object_id)
        for name, value in expected.items():
            assert_exact(value, getattr(back, name), f"PropValues.{name}")
