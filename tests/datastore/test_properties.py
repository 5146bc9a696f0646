"""Property tests: key laws, and query results checked against a reference evaluation.

The reference evaluation below is written independently of claystore.datastore.query: it
ranks values (None < bool < number < str), compares within a rank with Python's operators
(NaN after every number), filters, sorts with a comparison function (orders, then key
string) and slices.  Every store must return exactly its sequence.
"""

from __future__ import annotations

import math
from functools import cmp_to_key
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claystore.datastore import (
    DictDatastore,
    Key,
    Namespace,
    Query,
    ShardedDatastore,
    TieredDatastore,
    serialize,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- keys -------------------------------------------------------------------------------------

segments = st.text(min_size=1, max_size=6).filter(lambda s: "/" not in s)
keys = st.lists(segments, max_size=5).map(Key)


@SETTINGS
@given(st.text(max_size=30))
def test_key_normalisation_is_idempotent(raw):
    """Normalising a normalised key changes nothing, and the form is canonical."""
    key = Key(raw)
    text = str(key)
    assert Key(text) == key
    assert str(Key(text)) == text
    assert Key.removeDuplicateSlashes(text) == text
    assert text.startswith("/")
    assert "//" not in text
    assert text == "/" or not text.endswith("/")


@SETTINGS
@given(keys, segments)
def test_parent_child_laws(key, segment):
    """child then parent is the identity, and child adds exactly one namespace."""
    child = key.child(segment)
    assert child.parent == key
    assert child.list == [*key.list, segment]
    assert child.name == Namespace(segment).value
    assert child.type == Namespace(segment).field
    assert key.isAncestorOf(child)
    assert child.isDescendantOf(key)
    assert not child.isAncestorOf(key)


@SETTINGS
@given(keys)
def test_reverse_and_list_laws(key):
    """reverse is an involution and a key rebuilds from its list."""
    assert key.reverse.reverse == key
    assert key.reverse.list == key.list[::-1]
    assert Key(key.list) == key
    assert key.path in (key.parent, key.parent.child(key.type))
    assert hash(Key(str(key))) == hash(key)


@SETTINGS
@given(keys, keys)
def test_key_order_matches_string_order(left, right):
    """Keys compare exactly like their strings."""
    assert (left < right) == (str(left) < str(right))
    assert (left == right) == (str(left) == str(right))


# -- the reference evaluation -----------------------------------------------------------------


def rank(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 2
    assert isinstance(value, str)
    return 3


def reference_compare(a: Any, b: Any) -> int:
    if rank(a) != rank(b):
        return -1 if rank(a) < rank(b) else 1
    if a is None:
        return 0
    if rank(a) == 2 and (math.isnan(a) or math.isnan(b)):
        return int(math.isnan(a)) - int(math.isnan(b))
    return (a > b) - (a < b)


OPERATORS = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    "!=": lambda c: c != 0,
    ">=": lambda c: c >= 0,
    ">": lambda c: c > 0,
}


def reference(records: dict[Key, dict[str, Any]], spec: dict[str, Any]) -> list[str]:
    """Evaluate a query spec over records the straightforward way; return result keys."""
    rows = [(key, rec) for key, rec in records.items() if key.path == spec["key"]]
    if spec["offset_key"] is not None:
        rows = [(key, rec) for key, rec in rows if str(key) > str(spec["offset_key"])]
    rows = [
        (key, rec)
        for key, rec in rows
        if all(
            OPERATORS[op](reference_compare(rec.get(field), value))
            for field, op, value in spec["filters"]
        )
    ]

    def compare_rows(x, y):
        for field, descending in spec["orders"]:
            result = reference_compare(x[1].get(field), y[1].get(field))
            if result:
                return -result if descending else result
        return (str(x[0]) > str(y[0])) - (str(x[0]) < str(y[0]))

    rows.sort(key=cmp_to_key(compare_rows))
    rows = rows[spec["offset"] :]
    if spec["limit"] is not None:
        rows = rows[: spec["limit"]]
    return [str(key) for key, _ in rows]


def build_query(spec: dict[str, Any]) -> Query:
    query = Query(spec["key"], limit=spec["limit"], offset=spec["offset"])
    query.offset_key = spec["offset_key"]
    for field, op, value in spec["filters"]:
        query.filter(field, op, value)
    for field, descending in spec["orders"]:
        query.order(("-" if descending else "+") + field)
    return query


# -- strategies -------------------------------------------------------------------------------

FIELDS = ["a", "b", "c"]
MAIN = Key("/c")
COLLECTIONS = [MAIN, Key("/d"), Key("/c/x"), Key("/c/T")]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False),
    st.just(math.nan),
    st.sampled_from([0.5, 1.0, 2.0, -0.0]),
    st.text(alphabet="abAB", max_size=2),
)
# Most records land in the main collection, so most queries have results to order and cut.
collections_weighted = st.sampled_from([MAIN] * 5 + COLLECTIONS[1:])
records_strategy = st.dictionaries(
    keys=st.tuples(
        collections_weighted,
        st.text(alphabet="abxyz-.", min_size=1, max_size=3),
        st.sampled_from(["", "", "T:"]),
    ).map(lambda t: t[0].child(t[2] + t[1])),
    values=st.dictionaries(st.sampled_from(FIELDS), values),
    min_size=4,
    max_size=30,
)
query_specs = st.fixed_dictionaries(
    {
        "key": collections_weighted,
        "filters": st.lists(
            st.tuples(st.sampled_from(FIELDS), st.sampled_from(list(OPERATORS)), values),
            max_size=2,
        ),
        "orders": st.lists(st.tuples(st.sampled_from(FIELDS), st.booleans()), max_size=3),
        "limit": st.none() | st.integers(0, 8),
        "offset": st.sampled_from([0, 0, 1, 2, 5]),
        "offset_key": st.sampled_from([None, None, None, Key("/c/b"), Key("/c/x"), Key("/d/y")]),
    }
)


def result_keys(store, query: Query) -> list[str]:
    return [str(key) for key, _ in store.query(query).items()]


def fill(store, records):
    for key, record in records.items():
        store.put(key, record)
    return store


@SETTINGS
@given(records_strategy, query_specs)
def test_dict_query_matches_reference(records, spec):
    """DictDatastore.query returns exactly the reference sequence, values included."""
    store = fill(DictDatastore(), records)
    cursor = store.query(build_query(spec))
    pairs = list(cursor.items())
    assert [str(key) for key, _ in pairs] == reference(records, spec)
    assert all(value is records[key] for key, value in pairs)


@SETTINGS
@given(records_strategy, query_specs, st.integers(1, 5))
def test_sharded_query_matches_single_dict(records, spec, shard_count):
    """Sharded queries equal the same query on one DictDatastore with the same data."""
    single = fill(DictDatastore(), records)
    sharded = fill(ShardedDatastore([DictDatastore() for _ in range(shard_count)]), records)
    query = build_query(spec)
    expected = result_keys(single, query)
    assert result_keys(sharded, query.copy()) == expected
    assert list(sharded.query(query.copy())) == list(single.query(query.copy()))


@SETTINGS
@given(records_strategy, query_specs)
def test_tiered_query_matches_single_dict(records, spec):
    """Tiered queries equal the same query on one DictDatastore with the same data."""
    single = fill(DictDatastore(), records)
    tiered = fill(TieredDatastore([DictDatastore(), DictDatastore()]), records)
    query = build_query(spec)
    assert result_keys(tiered, query) == result_keys(single, query.copy())


@SETTINGS
@given(records_strategy, query_specs)
def test_serialized_query_matches_reference(records, spec):
    """A json-serialized store answers queries on the deserialized values like the reference."""
    store = fill(serialize.shim(DictDatastore()), records)
    assert result_keys(store, build_query(spec)) == reference(records, spec)
