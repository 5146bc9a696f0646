"""Tests for claystore.datastore.query: Query, Filter, Order, Cursor and the generators."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from claystore.datastore import (
    Cursor,
    Filter,
    Key,
    Order,
    Query,
    chain_gen,
    compare_values,
    is_iterable,
    limit_gen,
    offset_gen,
    value_sort_key,
)
from claystore.errors import CursorError, QueryError

# -- the total order --------------------------------------------------------------------------


def test_total_order_ranks():
    """None < bool < numbers < str < anything else, without TypeError."""
    values = ["b", 2.5, None, [1], True, "a", 1, False, {"x": 1}, -3]
    ordered = sorted(values, key=value_sort_key)
    assert ordered == [None, False, True, -3, 1, 2.5, "a", "b", {"x": 1}, [1]]


def test_numbers_compare_numerically_and_bools_are_not_numbers():
    """1 equals 1.0, but True is not 1 and None equals only None."""
    assert compare_values(1, 1.0) == 0
    assert compare_values(True, 1) == -1
    assert compare_values(None, None) == 0
    assert compare_values(None, 0) == -1
    assert compare_values("10", 9) == 1


def test_nan_sorts_after_numbers_and_equals_itself():
    """NaN sorts after every number, before str, and equals only NaN."""
    nan = math.nan
    assert compare_values(nan, math.inf) == 1
    assert compare_values(nan, "a") == -1
    assert compare_values(nan, float("nan")) == 0


# -- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "passing"),
    [
        ("<", [None, 5]),
        ("<=", [None, 5, 10]),
        ("=", [10]),
        ("!=", [None, 5, 15, "x"]),
        (">=", [10, 15, "x"]),
        (">", [15, "x"]),
    ],
)
def test_filter_operators(op, passing):
    """Each of the six operators compares value op filter.value in the total order."""
    condition = Filter("n", op, 10)
    values = [None, 5, 10, 15, "x"]
    assert [v for v in values if condition.valuePasses(v)] == passing


def test_filter_equals_none_matches_missing_fields():
    """field = None matches None and missing fields; field != None matches the rest."""
    records = [{"age": None}, {}, {"age": 3}]
    assert list(Filter("age", "=", None).generator(records)) == [{"age": None}, {}]
    assert list(Filter("age", "!=", None).generator(records)) == [{"age": 3}]


def test_filter_mixed_types_never_raise():
    """Comparing a str field to an int filter value follows the total order."""
    records = [{"v": "a"}, {"v": 1}, {"v": None}, {"v": 2.5}]
    assert [r["v"] for r in Filter("v", ">", 1).generator(records)] == ["a", 2.5]


def test_filter_rejects_unknown_operator_and_empty_field():
    """An unknown operator or an empty field name is a QueryError (a ValueError)."""
    with pytest.raises(QueryError, match="unknown operator"):
        Filter("age", "==", 3)
    with pytest.raises(ValueError, match="non-empty"):
        Filter("", "=", 3)
    assert Filter.conditional_operators == ("<", "<=", "=", "!=", ">=", ">")


def test_filter_classmethod_applies_all_filters():
    """Filter.filter keeps items passing every filter, lazily."""
    people = [{"name": "a", "age": 20}, {"name": "b", "age": 12}, {"name": "c", "age": 40}]
    result = Filter.filter([Filter("age", ">=", 18), Filter("name", "!=", "c")], people)
    assert not isinstance(result, list)
    assert list(result) == [people[0]]


def test_filter_reads_attributes_then_items():
    """Objects are read by attribute, then by item; dicts by item even for 'items'."""
    obj = SimpleNamespace(age=30)
    assert Filter("age", "=", 30)(obj)
    assert Filter("items", "=", 2)({"items": 2})
    assert Filter("missing", "=", None)(obj)


def test_filter_repr_str_eq():
    """Filters have a readable str/repr and compare by field, op and value."""
    condition = Filter("name", "=", "John Cleese")
    assert repr(condition) == "Filter('name', '=', 'John Cleese')"
    assert str(condition) == "name = John Cleese"
    assert condition == Filter("name", "=", "John Cleese")
    assert condition != Filter("name", "!=", "John Cleese")


# -- orders -----------------------------------------------------------------------------------


def test_order_parsing():
    """'+f' and 'f' are ascending, '-f' descending; an empty field is refused."""
    assert Order("+name").isAscending()
    assert Order("score").isAscending()
    assert Order("score").field == "score"
    assert Order("-age").isDescending()
    assert str(Order("age")) == "+age"
    assert repr(Order("-age")) == "Order('-age')"
    assert Order.order_operators == ("-", "+")
    for bad in ("", "+", "-"):
        with pytest.raises(QueryError):
            Order(bad)


def test_order_sorted_with_none_first_and_mixed_types():
    """Order.sorted puts None first ascending and last descending, never raising."""
    items = [{"v": 3}, {"v": None}, {"v": "x"}, {}, {"v": 1.5}]
    assert [i.get("v") for i in Order.sorted(items, [Order("+v")])] == [None, None, 1.5, 3, "x"]
    assert [i.get("v") for i in Order.sorted(items, [Order("-v")])] == ["x", 3, 1.5, None, None]


def test_order_sorted_multiple_orders_is_stable():
    """Multiple orders sort lexicographically, and full ties keep input order."""
    items = [
        {"a": 1, "b": 2, "id": 1},
        {"a": 0, "b": 9, "id": 2},
        {"a": 1, "b": 5, "id": 3},
        {"a": 1, "b": 5, "id": 4},
    ]
    result = Order.sorted(items, [Order("-a"), Order("+b")])
    assert [i["id"] for i in result] == [1, 3, 4, 2]


def test_multiple_order_comparison():
    """multipleOrderComparison returns a -1/0/1 comparison function."""
    compare = Order.multipleOrderComparison([Order("-a"), Order("b")])
    assert compare({"a": 2}, {"a": 1}) == -1
    assert compare({"a": 1, "b": 1}, {"a": 1, "b": 2}) == -1
    assert compare({"a": 1, "b": 2}, {"a": 1, "b": 2}) == 0


def test_sort_key_sorts_mixed_values_in_the_total_order():
    """sort_key orders values Python cannot compare (None, numbers), in the order's direction."""
    order = Order("-v")
    items = [{"v": 1}, {"v": None}, {"v": 3}]
    assert sorted(items, key=order.sort_key) == [{"v": 3}, {"v": 1}, {"v": None}]
    assert sorted(items, key=Order("v").sort_key) == [{"v": None}, {"v": 1}, {"v": 3}]


# -- queries ----------------------------------------------------------------------------------


def test_query_defaults():
    """A query defaults to the root collection with no limit, offset or conditions."""
    query = Query()
    assert query.key == Key("/")
    assert (query.limit, query.offset, query.offset_key) == (None, 0, None)
    assert query.filters == []
    assert query.orders == []


def test_query_filter_and_order_chain_on_the_same_query():
    """filter and order mutate the query and return it, so unassigned calls count."""
    query = Query(Key("/Person"))
    returned = query.filter("age", ">", 18).filter(Filter("sex", "=", "Female"))
    query.order("+age").order(Order("-home"))
    assert returned is query
    assert query.filters == [Filter("age", ">", 18), Filter("sex", "=", "Female")]
    assert query.orders == [Order("+age"), Order("-home")]


def test_query_filter_argument_errors():
    """filter needs (field, op, value) or one Filter."""
    with pytest.raises(QueryError):
        Query().filter("age", ">")


def test_query_validates_limit_and_offset():
    """A negative or non-int limit or offset is a QueryError."""
    with pytest.raises(QueryError):
        Query(limit=-1)
    with pytest.raises(QueryError):
        Query(offset=-2)
    with pytest.raises(QueryError):
        Query(limit=True)  # type: ignore[arg-type]
    query = Query()
    with pytest.raises(QueryError):
        query.offset = 1.5  # type: ignore[assignment]


def test_query_copy_is_independent():
    """A copy has its own filter and order lists."""
    query = Query(Key("/a"), limit=3).filter("x", "=", 1)
    clone = query.copy()
    clone.filter("y", "=", 2).order("-x")
    clone.limit = 5
    assert len(query.filters) == 1
    assert query.orders == []
    assert query.limit == 3
    assert len(clone.filters) == 2
    assert clone.limit == 5


def test_query_dict_round_trip():
    """dict() gives plain data and from_dict() rebuilds an equal query."""
    query = Query(Key("/Person"), limit=10, offset=5, offset_key=Key("/Person/b"))
    query.filter("age", ">=", 18).filter("name", "!=", None).order("-age").order("name")
    data = query.dict()
    assert data == {
        "key": "/Person",
        "limit": 10,
        "offset": 5,
        "offset_key": "/Person/b",
        "filter": [["age", ">=", 18], ["name", "!=", None]],
        "order": ["-age", "+name"],
    }
    assert Query.from_dict(data) == query
    assert Query.from_dict({"key": "/a"}).dict() == {"key": "/a"}


def test_query_from_dict_without_key_is_the_root():
    """from_dict of data without a key queries the root collection."""
    assert Query.from_dict({"limit": 2}).dict() == {"key": "/", "limit": 2}


def test_object_getattr_override_on_instance():
    """A query's object_getattr is used by its filters and orders."""
    versions = [
        SimpleNamespace(key="b", attributes={"age": {"value": 30}}),
        SimpleNamespace(key="a", attributes={"age": {"value": 10}}),
        SimpleNamespace(key="c", attributes={"age": {"value": 20}}),
    ]

    def getter(version, field):
        if field in ("key", "committed", "created", "hash"):
            return getattr(version, field)
        return version.attributes[field]["value"]

    query = Query(Key("/v"), object_getattr=getter).filter("age", ">", 15).order("-age")
    assert [v.key for v in query(versions)] == ["b", "c"]
    assert [v.key for v in query.copy()(versions)] == ["b", "c"]


def test_object_getattr_override_in_subclass():
    """A Query subclass overriding object_getattr applies it to added filters."""

    class UpperQuery(Query):
        @staticmethod
        def object_getattr(obj, field):
            return obj[field.upper()]

    query = UpperQuery().filter("a", "=", 1)
    assert list(query([{"A": 1}, {"A": 2}])) == [{"A": 1}]


def test_query_call_applies_everything_in_order():
    """query(iterable) filters, orders, then applies offset and limit."""
    items = [{"n": n} for n in [5, 3, 9, 1, 7, 2]]
    query = Query(limit=2, offset=1).filter("n", ">", 1).order("-n")
    assert [i["n"] for i in query(items)] == [7, 5]


def test_offset_key_keeps_keys_after_it():
    """offset_key keeps only results whose key sorts after it, before offset and limit."""
    items = [(Key(f"/c/{name}"), name) for name in "abcde"]
    query = Query(Key("/c"), offset_key=Key("/c/b"), offset=1, limit=2)
    assert list(query.evaluate(items)) == ["d", "e"]


def test_offset_key_needs_keys():
    """offset_key on a bare-value cursor is a QueryError when iterated."""
    cursor = Query(offset_key="/x")(["a"])
    with pytest.raises(QueryError, match="offset_key"):
        list(cursor)


def test_evaluate_breaks_ties_by_key():
    """Keyed evaluation sorts ties by ascending key string."""
    items = [(Key("/c/z"), {"v": 1}), (Key("/c/a"), {"v": 1}), (Key("/c/m"), {"v": 0})]
    cursor = Query(Key("/c")).order("+v").evaluate(items)
    assert [str(k) for k, _ in cursor.items()] == ["/c/m", "/c/a", "/c/z"]


# -- cursors ----------------------------------------------------------------------------------


def test_cursor_counts_returned_and_skipped():
    """returned counts yielded objects and skipped counts offset skips."""
    cursor = Query(offset=2, limit=3)(range(10))
    assert list(cursor) == [2, 3, 4]
    assert cursor.returned == 3
    assert cursor.skipped == 2


def test_cursor_is_lazy():
    """A cursor without orders reads its source only as it is iterated."""
    seen = []

    def source():
        for n in range(100):
            seen.append(n)
            yield n

    cursor = Query(limit=3).filter("real", ">", 0)(source())
    assert seen == []
    assert list(cursor) == [1, 2, 3]
    assert seen == [0, 1, 2, 3]


def test_cursor_iterates_once():
    """A second iteration of a cursor is a CursorError (a RuntimeError)."""
    cursor = Query()([1, 2])
    assert list(cursor) == [1, 2]
    with pytest.raises(CursorError):
        iter(cursor)
    with pytest.raises(RuntimeError):
        cursor.items()


def test_cursor_refuses_changes_after_iteration_starts():
    """apply_* after iteration began is a CursorError."""
    cursor = Cursor(Query(limit=1), [1, 2, 3])
    assert cursor.next() == 1
    with pytest.raises(CursorError):
        cursor.apply_limit()


def test_cursor_apply_steps_individually():
    """apply_filter/order/offset/limit can be applied one by one."""
    query = Query(limit=2, offset=1).filter("real", "<", 5).order("-real")
    cursor = Cursor(query, [4, 8, 1, 3, 2])
    cursor.apply_filter()
    cursor.apply_order()
    assert list(cursor) == [4, 3, 2, 1]
    cursor = Cursor(query, [4, 8, 1, 3, 2]).apply_offset().apply_limit()
    assert list(cursor) == [8, 1]


def test_cursor_items_and_map_values():
    """items() yields (key, value) pairs; map_values transforms values lazily."""
    cursor = Cursor.from_items(Query(), [(Key("/a"), 1), (Key("/b"), 2)]).map_values(str)
    assert list(cursor.items()) == [(Key("/a"), "1"), (Key("/b"), "2")]
    assert cursor.returned == 2
    assert list(Query()(["x"]).items()) == [(None, "x")]


# -- generators -------------------------------------------------------------------------------


def test_limit_gen_reads_no_more_than_needed():
    """limit_gen stops after limit items without pulling one more."""
    source = iter(range(10))
    assert list(limit_gen(3, source)) == [0, 1, 2]
    assert next(source) == 3
    assert list(limit_gen(0, range(3))) == []


def test_offset_gen_signals_skips():
    """offset_gen skips offset items and reports each to skip_signal."""
    skipped = []
    assert list(offset_gen(2, "abcd", skipped.append)) == ["c", "d"]
    assert skipped == ["a", "b"]
    assert list(offset_gen(5, "ab")) == []


def test_chain_gen_and_is_iterable():
    """chain_gen joins iterables; is_iterable tells iterables apart."""
    assert list(chain_gen([[1, 2], (3,), iter([4])])) == [1, 2, 3, 4]
    assert is_iterable([])
    assert is_iterable("abc")
    assert is_iterable(x for x in ())
    assert not is_iterable(3)
    assert not is_iterable(None)


def test_decimals_dates_and_uuids_sort_naturally():
    """Decimal is a number; dates, times, UUIDs and bytes keep their own order (not repr's)."""
    import datetime as dt
    import uuid
    from decimal import Decimal

    from claystore.datastore.values import value_sort_key

    assert sorted([Decimal("10"), 9.5, Decimal("9")], key=value_sort_key) == [
        Decimal("9"),
        9.5,
        Decimal("10"),
    ]
    days = [dt.date(2024, 10, 1), dt.date(2024, 9, 30), dt.date(2023, 12, 31)]
    assert sorted(days, key=value_sort_key) == sorted(days)
    ids = [uuid.UUID(int=10), uuid.UUID(int=9)]
    assert sorted(ids, key=value_sort_key) == sorted(ids)
    naive, aware = dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert sorted([aware, naive], key=value_sort_key) == [naive, aware]  # never TypeError
    assert value_sort_key(Decimal("NaN")) == value_sort_key(float("nan"))
