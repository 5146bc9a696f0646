"""Values at the edges: stored exactly, or refused at assignment alike on both engines.

Every value a field accepts reads back exactly after a fresh client loads it (sign of zero,
every microsecond, every digit); what an engine would change or refuse with a raw error is
refused when it is assigned (:class:`FieldTypeError` naming class, field, value and fix), the
same on SQLite and PostgreSQL, with nothing written.  Also: naive datetimes in query filters,
and the text of aliases and dataset names.  Random values of every annotation are in
tests/orm/test_value_properties.py.
"""

# ruff: noqa: RUF012 - class-level values of model fields are defaults, copied per object

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore import Client, DataClayObject, errors
from claystore.datastore import Key, Query
from claystore.orm.fields import FieldKind
from claystore.orm.types import TIMEDELTA_MAX, TIMEDELTA_MIN

PLUS_5 = dt.timezone(dt.timedelta(hours=5))
MINUS_5 = dt.timezone(dt.timedelta(hours=-5))


class ValEdge(DataClayObject):
    __tablename__ = "val_edge"

    at: dt.time | None = None
    when: dt.datetime | None = None
    span: dt.timedelta | None = None
    f: float | None = None
    money: Decimal | None = None
    text: str | None = None
    times: list[dt.time] = []
    spans: list[dt.timedelta] = []
    span_keys: dict[dt.timedelta, int] = {}
    floats: list[float] = []
    moneys: list[Decimal] = []
    texts: list[str] = []
    loose: list = []  # type: ignore[type-arg]  # untyped JSON on purpose
    doc: dict = {}  # type: ignore[type-arg]
    other: ValEdge | None = None
    named: dict[str, ValEdge] = {}
    picks: list[Literal["x", "y"]] = []


def _oid(obj: Any) -> UUID:
    return obj._dc_state.object_id  # type: ignore[no-any-return]


def reload(db_url: str, obj: Any, field: str) -> Any:
    """``field`` of ``obj`` as a fresh client reads it from the database."""
    with Client(db_url):
        return getattr(type(obj).get_by_id(_oid(obj)), field)


def rows(client: Client, table: str) -> int:
    with client.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def stored(db_url: str, field: str, value: Any) -> Any:
    """Assign ``value`` to ``field`` of a new object, store it, read it back fresh."""
    obj = ValEdge()
    setattr(obj, field, value)
    obj.make_persistent()
    return reload(db_url, obj, field)


def refused(field: str, value: Any, *fragments: str) -> None:
    """Assigning ``value`` raises FieldTypeError naming class, field and each fragment."""
    with pytest.raises(errors.FieldTypeError) as caught:
        setattr(ValEdge(), field, value)
    message = str(caught.value)
    assert f"ValEdge.{field}" in message
    for fragment in fragments:
        assert fragment in message, message


def same_float(a: float, b: float) -> bool:
    return type(a) is type(b) and a == b and math.copysign(1, a) == math.copysign(1, b)


# -- time, datetime, timedelta -----------------------------------------------------------------


def test_time_with_tzinfo_is_refused_and_naive_time_is_kept(client: Client, db_url: str) -> None:
    """A time with a tzinfo (its offset would be lost) is refused in a column and in a
    container; naive times come back exactly."""
    aware = dt.time(1, 2, 3, 4, tzinfo=PLUS_5)
    refused("at", aware, "tzinfo", "replace(tzinfo=None)")
    refused("times", [aware], "tzinfo")
    assert stored(db_url, "at", dt.time(23, 59, 59, 999999)) == dt.time(23, 59, 59, 999999)
    back = stored(db_url, "times", [dt.time(0, 0), dt.time(1, 2, 3, 4)])
    assert back == [dt.time(0, 0), dt.time(1, 2, 3, 4)]
    assert all(t.tzinfo is None for t in back)
    assert rows(client, "val_edge") == 2


def test_timedeltas_in_containers_keep_every_microsecond(client: Client, db_url: str) -> None:
    """Timedeltas inside JSON containers (list items, dict keys) come back to the
    microsecond, however long (a float of seconds lost them beyond about 285 years)."""
    spans = [
        dt.timedelta(days=300 * 365, microseconds=1),
        dt.timedelta.max,
        dt.timedelta.min,
        dt.timedelta(microseconds=-1),
    ]
    assert stored(db_url, "spans", spans) == spans
    keys = {dt.timedelta(days=400 * 365, microseconds=7): 1, dt.timedelta(seconds=-1.5): 2}
    assert stored(db_url, "span_keys", keys) == keys


def test_timedeltas_written_as_float_seconds_are_still_read(client: Client, db_url: str) -> None:
    """Containers written by an earlier release (float seconds) still read as timedeltas."""
    obj = ValEdge()
    obj.make_persistent()
    plain = sa.table(
        "val_edge",
        sa.column("id", sa.Uuid),
        sa.column("spans", sa.JSON),
        sa.column("span_keys", sa.JSON),
    )
    with client.engine.begin() as conn:
        conn.execute(
            sa.update(plain)
            .where(plain.c.id == _oid(obj))
            .values(spans=[3.5, -86400.0], span_keys={"1.25": 1, "25920000000000.0": 2})
        )
    assert reload(db_url, obj, "spans") == [dt.timedelta(seconds=3.5), dt.timedelta(days=-1)]
    assert reload(db_url, obj, "span_keys") == {
        dt.timedelta(seconds=1.25): 1,
        dt.timedelta(days=300_000_000): 2,
    }


def test_timedelta_columns_hold_the_same_range_on_both_engines(client: Client, db_url: str) -> None:
    """A timedelta column stores its whole range exactly on both engines, and refuses what
    lies beyond (SQLite stores durations as datetimes from 1970; PostgreSQL took more)."""
    assert stored(db_url, "span", TIMEDELTA_MAX) == TIMEDELTA_MAX
    assert stored(db_url, "span", TIMEDELTA_MIN) == TIMEDELTA_MIN
    for beyond in (dt.timedelta(days=3_000_000), dt.timedelta.max, dt.timedelta.min):
        refused("span", beyond, repr(beyond), "2932896 days")
    refused("span", TIMEDELTA_MAX + dt.timedelta(microseconds=1), "beyond")
    assert rows(client, "val_edge") == 2


def test_datetimes_without_a_utc_form_are_refused(client: Client, db_url: str) -> None:
    """A datetime that falls before year 1 or after year 9999 in UTC (where it is stored)
    is refused at assignment, in a column and in a container."""
    early = dt.datetime(1, 1, 1, tzinfo=PLUS_5)
    late = dt.datetime(9999, 12, 31, 23, tzinfo=MINUS_5)
    refused("when", early, repr(early), "years 1-9999 in UTC")
    refused("when", late, "years 1-9999 in UTC")
    obj = ValEdge()
    obj.make_persistent()
    with pytest.raises(errors.FieldTypeError, match=r"ValEdge\.when"):
        obj.when = early
    assert reload(db_url, obj, "when") is None


def test_extreme_datetimes_load_whatever_the_server_time_zone(
    db_url: str, engine_name: str
) -> None:
    """The first and last UTC instants come back exactly, also from a PostgreSQL session
    whose time zone would put them outside Python's range."""
    url = db_url
    if engine_name == "postgresql":
        parsed = make_url(db_url)
        options = f"{parsed.query['options']} -ctimezone=Asia/Tokyo"
        url = parsed.update_query_dict({"options": options}).render_as_string(False)
    first = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    last = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    with Client(url):
        low, high = ValEdge(), ValEdge()
        low.when, high.when = first, last
        low.make_persistent()
        high.make_persistent()
    assert reload(url, low, "when") == first
    assert reload(url, high, "when") == last
    assert reload(url, high, "when").utcoffset() == dt.timedelta(0)


# -- numbers -----------------------------------------------------------------------------------


def test_negative_zero_float_is_refused_everywhere(client: Client, db_url: str) -> None:
    """-0.0 (SQLite's REAL and PostgreSQL's JSON drop its sign) is refused in a column, a
    typed container and untyped JSON; 0.0 comes back positive."""
    for field, value in (("f", -0.0), ("floats", [1.0, -0.0]), ("loose", [[-0.0]])):
        refused(field, value, "-0.0", "value + 0.0")
    refused("doc", {"x": -0.0}, "-0.0")
    assert same_float(stored(db_url, "f", 0.0), 0.0)
    assert same_float(stored(db_url, "floats", [0.0])[0], 0.0)
    assert same_float(stored(db_url, "f", -1e-300), -1e-300)
    assert same_float(stored(db_url, "f", -math.inf), -math.inf)


def test_int_too_large_for_a_float_field_is_refused(client: Client) -> None:
    """An int no float can hold is refused with FieldTypeError, not OverflowError."""
    refused("f", 10**400, "too large for a float", "Decimal")
    refused("floats", [10**400], "too large for a float")


def test_decimal_negative_zero_is_refused_in_a_column(client: Client, db_url: str) -> None:
    """Decimal('-0') (PostgreSQL's NUMERIC has no negative zero) is refused in a column and
    kept exactly in a container (stored as text there)."""
    refused("money", Decimal("-0"), "Decimal('-0')", "abs(value)")
    refused("money", Decimal("-0.000"), "Decimal('-0.000')")
    back = stored(db_url, "moneys", [Decimal("-0"), Decimal("-0.00")])
    assert [str(d) for d in back] == ["-0", "-0.00"]
    assert str(stored(db_url, "money", Decimal("0.000"))) == "0.000"


def test_decimal_with_positive_exponent_is_refused_in_a_column(client: Client, db_url: str) -> None:
    """Decimal('1E+2') (NUMERIC would give back 100) is refused in a column; its fix is
    stored exactly, and containers keep the exponent."""
    refused("money", Decimal("1E+2"), "positive exponent", "Decimal(int(value))")
    assert str(stored(db_url, "money", Decimal(int(Decimal("1E+2"))))) == "100"
    assert str(stored(db_url, "moneys", [Decimal("1E+2")])[0]) == "1E+2"


def test_decimal_column_range_is_the_same_on_both_engines(client: Client, db_url: str) -> None:
    """The largest and finest Decimals NUMERIC holds round-trip on both engines; beyond them
    they are refused at assignment on both (PostgreSQL raised a raw overflow)."""
    largest = Decimal("9" * 131072 + "." + "9" * 16383)
    finest = Decimal("-1E-16383")
    assert stored(db_url, "money", largest) == largest
    assert stored(db_url, "money", finest).as_tuple() == finest.as_tuple()
    for beyond in (Decimal("1E+200000"), Decimal("1" + "0" * 131072), Decimal("1E-16384")):
        refused("money", beyond, "beyond what a Decimal column holds", "quantize")
    assert stored(db_url, "moneys", [Decimal("1E-200000")]) == [Decimal("1E-200000")]


def test_decimal_nan_and_snan_are_refused(client: Client, db_url: str) -> None:
    """NaN and sNaN Decimals are refused with FieldTypeError (sNaN raised decimal's
    InvalidOperation); infinities are stored."""
    for value in (Decimal("sNaN"), Decimal("NaN"), Decimal("-sNaN")):
        refused("money", value, "NaN is not stored alike", "None")
        refused("moneys", [value], "NaN")
    assert stored(db_url, "money", Decimal("-Infinity")) == Decimal("-Infinity")


# -- text and JSON -----------------------------------------------------------------------------


def test_lone_surrogates_are_refused(client: Client) -> None:
    """A str with a lone surrogate (not UTF-8: a raw UnicodeEncodeError before) is refused
    in a column, typed and untyped containers and dict keys."""
    refused("text", "a\ud800b", "lone surrogate", "'\\ud800' at position 1", "errors='replace'")
    refused("texts", ["ok", "\udfff"], "lone surrogate")
    refused("loose", ["\ud800"], "lone surrogate")
    refused("doc", {"\ud800": 1}, "lone surrogate")
    refused("span_keys", {"x": 1}, "expected timedelta")


def test_json_nesting_is_limited_alike(client: Client, db_url: str) -> None:
    """Untyped JSON nests at most 200 levels (deeper raised RecursionError); 200 levels are
    stored and read back exactly on both engines."""

    def nested(depth: int) -> list[Any]:
        value: list[Any] = []
        for _ in range(depth - 1):
            value = [value]
        return value

    refused("loose", nested(201), "more than 200 levels")
    refused("loose", nested(950), "more than 200 levels")
    looped: list[Any] = []
    looped.append(looped)
    refused("loose", looped, "more than 200 levels")
    assert stored(db_url, "loose", nested(200)) == nested(200)


def test_huge_ints_in_untyped_json_are_refused(client: Client, db_url: str) -> None:
    """An int of more than 4000 digits (JSON text cannot be written for it) is refused;
    big ints below that are stored exactly."""
    refused("loose", [10**4000], "too large for JSON text", "str(value)")
    assert stored(db_url, "loose", [10**3999, -(2**64)]) == [10**3999, -(2**64)]


def test_containers_changed_in_place_are_checked_before_writing(
    client: Client, db_url: str
) -> None:
    """A container changed in place in a session with a value no engine stores alike raises
    FieldTypeError at the commit, on both engines, and nothing is written."""
    obj = ValEdge()
    obj.texts = ["a"]
    obj.floats = [1.0]
    obj.make_persistent()
    bad_changes = [
        (lambda: obj.texts.append("b\x00"), "NUL character"),
        (lambda: obj.texts.append("\ud800"), "lone surrogate"),
        (lambda: obj.floats.append(-0.0), "-0.0"),
    ]
    for change, fragment in bad_changes:
        with pytest.raises(errors.FieldTypeError, match=fragment), client.session():
            change()
    assert reload(db_url, obj, "texts") == ["a"]
    assert reload(db_url, obj, "floats") == [1.0]
    with pytest.raises(errors.FieldTypeError, match=r"ValEdge\.texts"):
        _add_and_change(client)
    assert rows(client, "val_edge") == 1


def _add_and_change(client: Client) -> None:
    """Add a new object in a session, then put a NUL character into its list in place."""
    with client.session() as session:
        fresh = ValEdge()
        fresh.texts = []
        session.add(fresh)
        fresh.texts.append("\x00")


def test_dict_of_references_refuses_keys_no_engine_stores(client: Client, db_url: str) -> None:
    """A dict of references is keyed by text: a key with a NUL or a lone surrogate is refused
    at assignment and, put in place in a session, at the commit, with nothing written."""
    refused("named", {"a\x00": ValEdge()}, "NUL character")
    refused("named", {"\ud800": ValEdge()}, "lone surrogate")
    obj = ValEdge()
    obj.named = {"ok": ValEdge()}
    obj.make_persistent()
    with pytest.raises(errors.FieldTypeError, match=r"ValEdge\.named"), client.session():
        obj.named["b\x00"] = ValEdge()
    assert list(reload(db_url, obj, "named")) == ["ok"]
    assert rows(client, "val_edge") == 2


def test_literals_inside_containers_are_values(client: Client, db_url: str) -> None:
    """``list[Literal["x", "y"]]`` is a JSON list of those strings (its strings were taken
    for names of model classes, and the class was refused)."""
    assert ValEdge._dc_info.fields["picks"].kind is FieldKind.JSON
    refused("picks", ["x", "z"], "'z' is not one of")
    assert stored(db_url, "picks", ["y", "x", "y"]) == ["y", "x", "y"]


# -- query filters -----------------------------------------------------------------------------


def test_naive_datetime_in_a_filter_is_refused(client: Client) -> None:
    """A naive datetime in a model query filter or an SQLAlchemy expression raises
    QueryError naming the field and the value (its rows would depend on the time zone)."""
    naive = dt.datetime(2024, 1, 1, 12)
    query = ValEdge.dc_query()
    with pytest.raises(errors.QueryError, match=r"ValEdge\.when > datetime\.datetime\(2024"):
        query.filter("when", ">", naive)
    assert query.filters == []  # the query stays usable
    with pytest.raises(errors.QueryError, match=r"ValEdge\.when <= datetime"):
        list(client.query(Query(Key("/ValEdge")).filter("when", "<=", naive)))
    with pytest.raises(errors.QueryError, match="naive datetime"):
        ValEdge.dc_query().filter("when", "=", naive).count()
    with pytest.raises(errors.QueryError, match="tzinfo=UTC"):
        _ = ValEdge.when > naive
    with pytest.raises(errors.QueryError, match="naive datetime"):
        _ = ValEdge.when.in_([dt.datetime(2024, 1, 1, tzinfo=dt.UTC), naive])
    with pytest.raises(errors.QueryError, match=r"ValEdge\.at < .*tzinfo"):
        list(ValEdge.dc_query().filter("at", "<", dt.time(1, tzinfo=dt.UTC)))


def test_aware_filters_give_the_same_rows_on_both_engines(client: Client) -> None:
    """Aware datetimes filter by instant; datetimes and timedeltas beyond what a column holds
    compare with every stored value instead of failing on SQLite (or PostgreSQL)."""
    obj = ValEdge()
    obj.when = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    obj.span = dt.timedelta(days=1)
    obj.make_persistent()
    ValEdge().make_persistent()  # NULLs: below everything

    def count(field: str, op: str, value: Any) -> int:
        return len(list(ValEdge.dc_query().filter(field, op, value)))

    assert count("when", "=", dt.datetime(2024, 1, 1, 17, tzinfo=PLUS_5)) == 1
    assert count("when", ">", dt.datetime(2024, 1, 1, 8, tzinfo=MINUS_5)) == 0
    early = dt.datetime(1, 1, 1, tzinfo=PLUS_5)
    late = dt.datetime(9999, 12, 31, 23, tzinfo=MINUS_5)
    assert [count("when", op, early) for op in ("<", ">", "=", "!=")] == [1, 1, 0, 2]
    assert [count("when", op, late) for op in ("<", ">", "=", "!=")] == [2, 0, 0, 2]
    huge = dt.timedelta(days=3_000_000)
    assert [count("span", op, huge) for op in ("<", ">=", "!=")] == [2, 0, 2]
    assert [count("span", op, -huge) for op in ("<", ">", "=")] == [1, 1, 0]


def test_decimal_filters_compare_exactly(client: Client, engine_name: str) -> None:
    """Decimal filters compare exactly, also with values no column holds (NaN, sNaN, beyond
    NUMERIC's range or its decimal places); SQLite refuses Decimal filters as before."""
    values = [Decimal(10**30), Decimal("1E-16383"), Decimal(0), Decimal("-Infinity")]
    for value in values:
        obj = ValEdge()
        obj.money = value
        obj.make_persistent()

    def found(op: str, value: Decimal) -> list[Decimal]:
        return sorted(o.money for o in ValEdge.dc_query().filter("money", op, value))

    if engine_name == "sqlite":
        with pytest.raises(errors.QueryError, match="stored as exact text on SQLite"):
            found(">", Decimal(1))
        return
    assert found(">", Decimal(10**20)) == [Decimal(10**30)]
    for nan in (Decimal("NaN"), Decimal("sNaN")):
        assert found("<", nan) == sorted(values)
        assert found(">=", nan) == []
    assert found("<", Decimal("1E+200000")) == sorted(values)
    assert found(">", Decimal("-1E+200000")) == sorted(values[:3])
    assert found("<=", Decimal("-1E+200000")) == [Decimal("-Infinity")]
    assert found(">", Decimal("1E-20000")) == [Decimal("1E-16383"), Decimal(10**30)]
    assert found("<", Decimal("5E-16384")) == [Decimal("-Infinity"), Decimal(0)]
    assert found("=", Decimal("1.0E-16383")) == [Decimal("1E-16383")]
    assert found("!=", Decimal("1E-20000")) == sorted(values)


# -- aliases and dataset names -----------------------------------------------------------------


def test_aliases_are_refused_alike_when_no_engine_stores_them(client: Client) -> None:
    """An alias over 500 characters, with a NUL or a lone surrogate, is refused before
    anything is written (SQLite stored it, PostgreSQL raised a raw DataError)."""
    for alias, fragment in (
        ("a" * 501, "501 characters long (at most 500)"),
        ("a\x00b", "NUL character"),
        ("a\ud800", "lone surrogate"),
    ):
        with pytest.raises(errors.ConfigurationError, match=re.escape(fragment)):
            ValEdge().make_persistent(alias)
        with pytest.raises(errors.ConfigurationError, match=re.escape(fragment)):
            ValEdge.get_by_alias(alias)
        with pytest.raises(errors.ConfigurationError, match=re.escape(fragment)):
            ValEdge.delete_alias(alias)
    assert rows(client, "val_edge") == 0
    assert rows(client, "dc_object") == 0
    obj = ValEdge()
    obj.make_persistent("a" * 500)
    assert ValEdge.get_by_alias("a" * 500) is obj
    with pytest.raises(errors.ConfigurationError, match="at most 500"):
        obj.add_alias("b" * 501)
    assert obj.get_aliases() == {"a" * 500}


@pytest.mark.parametrize(
    ("dataset", "fragment"),
    [
        ("d" * 201, r"201 characters long \(at most 200\)"),
        ("d\x00", "NUL"),
        ("\udc80", "surrogate"),
    ],
)
def test_dataset_names_are_refused_alike_before_anything_is_written(
    db_url: str, dataset: str, fragment: str
) -> None:
    """A dataset name no engine stores alike (over 200 characters, NUL, a lone surrogate) is
    refused by ``Client(...)`` itself, with ConfigurationError naming the fix, before anything
    is read or written, on both engines."""
    with Client(db_url) as good:
        stored_obj = ValEdge()
        stored_obj.make_persistent()
    with pytest.raises(errors.ConfigurationError, match=fragment) as caught:
        Client(db_url, dataset=dataset)
    assert "Client(dataset=...)" in str(caught.value)
    with Client(db_url) as client:
        assert rows(client, "val_edge") == 1
        assert rows(client, "dc_object") == 1
        assert rows(client, "dc_alias") == 0
    assert good is not client
    with Client(db_url, dataset="d" * 200):
        ok = ValEdge()
        ok.make_persistent("y")
        assert ValEdge.get_by_alias("y") is ok
        assert ok._dc_meta.dataset_name == "d" * 200
