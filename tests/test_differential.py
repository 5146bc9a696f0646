"""Differential property tests: the SQL paths return exactly the naive path's sequence.

For random records and random queries (all six operators, 0-3 orders, limit, offset,
offset_key), on each engine: model queries (``client.query`` on a model class), SQLDatastore
and DictDatastore (the naive evaluation, the spec) return the same keys in the same order,
and their cursors count the same ``returned`` and ``skipped``.  All stores hold the same
records under the same keys (``/QDiff:<id>``), so ties broken by key are comparable.

A second property mixes types inside one field (and records that are not objects, arrays
and objects), which only the datastores can hold, to exercise the classes of the total order
and the parts SQLDatastore hands to Python.

Each example stores a fresh data set in tables reused across examples, then runs several
queries on it, which keeps the whole module to a few seconds per engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claystore import Client, DataClayObject
from claystore.datastore import DictDatastore, Key, Query, SQLDatastore
from claystore.orm.context import active_context
from claystore.orm.modelquery import ModelQuery
from claystore.orm.state import stored_state


class QDiff(DataClayObject):
    __tablename__ = "q_diff"

    i: int | None = None
    f: float | None = None
    s: str | None = None
    b: bool | None = None


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OPS = ["<", "<=", "=", "!=", ">=", ">"]

# -- values -----------------------------------------------------------------------------------

ints = st.integers(-4, 4) | st.sampled_from([2**53, 2**53 + 1, -(2**62), 2**63 - 1])
floats = st.floats(-4, 4, allow_nan=False) | st.sampled_from(
    [-0.0, 0.5, 1.0, 2.0, float(2**53), 2.0**60, 1e300, -1e-300]
)
texts = st.text(alphabet="aAbBzZé😀ß ", max_size=3)
# filter values may be anything the total order ranks, including what no column stores
probe_values = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.sampled_from([2**64, -(2**70) - 1, 2**60 + 1]),
    floats,
    st.sampled_from([math.inf, -math.inf, math.nan, 2.5, -3.5]),
    texts,
    st.sampled_from(["a\x00", "\x00", "B\x00z"]),
)


def build_query(spec: dict[str, Any], keys: list[Key]) -> Query:
    query = Query(Key("/QDiff"), limit=spec["limit"], offset=spec["offset"])
    if spec["offset_key"] is not None and keys:
        query.offset_key = sorted(keys)[spec["offset_key"] % len(keys)]
    for field, op, value in spec["filters"]:
        query.filter(field, op, value)
    for field, descending in spec["orders"]:
        query.order(("-" if descending else "+") + field)
    return query


def query_specs(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "filters": st.lists(
                st.tuples(st.sampled_from(fields), st.sampled_from(OPS), probe_values),
                max_size=3,
            ),
            "orders": st.lists(st.tuples(st.sampled_from(fields), st.booleans()), max_size=3),
            "limit": st.none() | st.integers(0, 8),
            "offset": st.sampled_from([0, 0, 0, 1, 2, 5]),
            "offset_key": st.none() | st.none() | st.integers(0, 50),
        }
    )


def run(store: Any, query: Query) -> tuple[list[str], int, int]:
    """The keys a store returns for ``query``, and its cursor's returned/skipped counts."""
    cursor = store.query(query.copy())
    keys = [str(key) for key, _ in cursor.items()]
    return keys, cursor.returned, cursor.skipped


# -- models, SQLDatastore and DictDatastore on typed records ----------------------------------

typed_records = st.lists(
    st.fixed_dictionaries(
        {
            "i": st.none() | ints,
            "f": st.none() | floats.map(lambda f: f + 0.0),  # a float field refuses -0.0
            "s": st.none() | texts,
            "b": st.none() | st.booleans(),
        }
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture
def stores(client: Client, db_url: str) -> tuple[Client, SQLDatastore]:
    """A started client and an SQLDatastore on the same database."""
    return client, SQLDatastore(client, table="q_diff_store")


def _clear(client: Client, sql: SQLDatastore) -> None:
    with client.engine.begin() as conn:
        conn.execute(sa.delete(QDiff._dc_info.table))
        conn.execute(sa.text("DELETE FROM dc_object WHERE class_name = 'q_diff'"))
        conn.execute(sa.delete(sql.table))


@SETTINGS
@given(records=typed_records, specs=st.lists(query_specs(["i", "f", "s", "b"]), max_size=6))
def test_model_queries_sql_store_and_dict_agree(
    stores: tuple[Client, SQLDatastore], records: list[dict[str, Any]], specs: list[Any]
) -> None:
    """Model queries, SQLDatastore and DictDatastore return the same sequence for every
    query over the same typed records (ints, floats, unicode/mixed-case strings, None)."""
    client, sql = stores
    _clear(client, sql)
    objects = []
    with active_context().transaction():
        for record in records:
            obj = QDiff()
            for name, value in record.items():
                setattr(obj, name, value)
            obj.make_persistent()
            objects.append(obj)
    naive = DictDatastore()
    keys = []
    with sql.batch() as batch:
        for obj, record in zip(objects, records, strict=True):
            key = Key(f"/QDiff:{stored_state(obj).object_id}")
            keys.append(key)
            naive.put(key, record)
            batch.put(key, record)
    for spec in specs:
        query = build_query(spec, keys)
        expected = run(naive, query)
        assert run(sql, query) == expected, query
        assert run(client, query) == expected, query


# -- SQLDatastore and DictDatastore on mixed records ------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
mixed_values = scalars | st.lists(st.integers(0, 2), max_size=2) | st.just({"k": 1})
mixed_records = st.dictionaries(
    keys=st.text(alphabet="abcxyz", min_size=1, max_size=3).map(lambda n: Key("/QDiff").child(n)),
    values=st.one_of(
        st.dictionaries(st.sampled_from(["x", "y", "real"]), scalars, max_size=3),
        st.dictionaries(st.sampled_from(["x", "y"]), mixed_values, max_size=2),
        scalars,
    ),
    min_size=1,
    max_size=25,
)


@SETTINGS
@given(records=mixed_records, specs=st.lists(query_specs(["x", "y", "real"]), max_size=6))
def test_sql_store_agrees_with_dict_on_mixed_records(
    db_url: str, records: dict[Key, Any], specs: list[Any]
) -> None:
    """With any mix of types in one field, and records that are not objects, SQLDatastore
    returns the DictDatastore sequence (deciding in Python what SQL cannot)."""
    sql = SQLDatastore(db_url, table="q_diff_mixed")
    try:
        with sql.engine.begin() as conn:
            conn.execute(sa.delete(sql.table))
        naive = DictDatastore()
        with sql.batch() as batch:
            for key, value in records.items():
                naive.put(key, value)
                batch.put(key, value)
        for spec in specs:
            query = build_query(spec, list(records))
            query.key = Key("/QDiff")
            assert run(sql, query) == run(naive, query), query
    finally:
        sql.close()


# -- model queries over two backends ----------------------------------------------------------


@pytest.fixture
def two_backends(db_url: str, backend_url_factory: Any) -> Iterator[tuple[Client, list[Any]]]:
    """A started client whose store has two backends (on PostgreSQL: two servers), and the
    ids of its backends."""
    with Client(db_url) as started:
        started.add_backend(backend_url_factory("second"))
        yield started, list(started.get_backends())


def _clear_everywhere(client: Client) -> None:
    """Delete every QDiff object, on whichever backend it lives."""
    for obj in list(QDiff.dc_query()):
        obj.dc_delete()


@SETTINGS
@given(
    records=st.lists(st.tuples(typed_records.map(lambda r: r[0]), st.integers(0, 1)), max_size=25),
    specs=st.lists(query_specs(["i", "f", "s", "b"]), max_size=6),
)
def test_model_queries_over_two_backends_agree_with_dict(
    two_backends: tuple[Client, list[Any]],
    records: list[tuple[dict[str, Any], int]],
    specs: list[Any],
) -> None:
    """Objects spread at random over two backends: every model query returns what the naive
    evaluation (and so one database) returns, in the same order, with the same returned and
    skipped counts, and ``count()`` agrees."""
    client, backends = two_backends
    _clear_everywhere(client)
    naive = DictDatastore()
    keys = []
    for backend in (0, 1):  # a unit of work per backend: SQLite cannot commit across two
        with client.session():
            for record, where in records:
                if where != backend:
                    continue
                obj = QDiff()
                for name, value in record.items():
                    setattr(obj, name, value)
                obj.make_persistent(backend_id=backends[where])
                key = Key(f"/QDiff:{stored_state(obj).object_id}")
                keys.append(key)
                naive.put(key, record)
    for spec in specs:
        query = build_query(spec, keys)
        expected = run(naive, query)
        assert run(client, query) == expected, query
        model_query = ModelQuery.from_dict(query.dict())
        assert model_query.count() == len(expected[0]), query
