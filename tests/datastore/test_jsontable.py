"""SQLDatastore: one table of JSON values; single-statement operations; queries as SQL.

Every test runs on SQLite and PostgreSQL (``db_url``).  The query semantics are checked
against DictDatastore (the naive path is the spec); the broad random comparison lives in
tests/test_differential.py.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from claystore import Client, errors
from claystore.datastore import (
    DictDatastore,
    Key,
    Query,
    ShardedDatastore,
    SQLDatastore,
)
from claystore.datastore.jsontable import encode_value
from claystore.datastore.sqlcursor import SQLCursor
from tests.statements import count_statements


@pytest.fixture
def store(db_url: str) -> Iterator[SQLDatastore]:
    """An SQLDatastore on an empty database of each engine."""
    ds = SQLDatastore(db_url, table="store")
    yield ds
    ds.close()


def keys_of(cursor: Any) -> list[str]:
    return [str(key) for key, _ in cursor.items()]


def same_as_dict(store: SQLDatastore, records: dict[Key, Any], query: Query) -> list[str]:
    """Run ``query`` on ``store`` and on a DictDatastore with ``records``; assert equal keys."""
    naive = DictDatastore()
    for key, value in records.items():
        naive.put(key, value)
    expected = keys_of(naive.query(query.copy()))
    got = keys_of(store.query(query.copy()))
    assert got == expected
    return got


def fill(store: SQLDatastore, records: dict[Key, Any]) -> dict[Key, Any]:
    with store.batch() as batch:
        for key, value in records.items():
            batch.put(key, value)
    return records


# -- the datastore API ------------------------------------------------------------------------


def test_get_put_delete_contains_round_trip(store: SQLDatastore) -> None:
    """put stores a value that get returns; delete removes it; missing keys read as None."""
    key = Key("/Comedy/MontyPython")
    assert store.get(key) is None
    assert not store.contains(key)
    store.put(key, {"name": "Monty", "films": [1, 2.5, "x"], "nested": {"a": None}})
    assert store.contains(key)
    assert store.get(key) == {"name": "Monty", "films": [1, 2.5, "x"], "nested": {"a": None}}
    store.delete(key)
    assert store.get(key) is None
    assert not store.contains(key)
    store.delete(key)  # deleting a missing key is not an error


def test_putting_none_deletes_the_key(store: SQLDatastore) -> None:
    """put(key, None) deletes the key, in a batch too, as in DictDatastore."""
    store.put(Key("/n"), 1)
    store.put(Key("/n"), None)
    assert not store.contains(Key("/n"))
    with store.batch() as batch:
        batch.put(Key("/m"), 1)
        batch.put(Key("/o"), 2)
    with store.batch() as batch:
        batch.put(Key("/m"), None)
    assert [str(key) for key, _ in store.query(Query(Key("/"))).items()] == ["/o"]


def test_every_operation_is_one_statement(store: SQLDatastore) -> None:
    """get, put, delete and contains each send one SQL statement (besides BEGIN)."""
    key = Key("/a")
    engine = store.engine
    for call, verb in [
        (lambda: store.put(key, 1), "INSERT"),
        (lambda: store.get(key), "SELECT"),
        (lambda: store.contains(key), "SELECT"),
        (lambda: store.delete(key), "DELETE"),
    ]:
        with count_statements(engine) as log:
            call()
        data = [s for s in log.statements if not s.lstrip().upper().startswith("BEGIN")]
        assert len(data) == 1
        assert data[0].lstrip().upper().startswith(verb)


def test_put_is_an_upsert(store: SQLDatastore) -> None:
    """Putting a key twice replaces the value in the one row the key has."""
    store.put(Key("/a/b"), 1)
    store.put(Key("/a/b"), {"v": 2})
    assert store.get(Key("/a/b")) == {"v": 2}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT key, path FROM store")).all()
    assert rows == [("/a/b", "/a")]


def test_table_is_created_once_with_key_and_collection_index(db_url: str) -> None:
    """The table has a key primary key and an index on (path, key); reopening keeps data."""
    first = SQLDatastore(db_url, table="shared")
    first.put(Key("/x/1"), "one")
    second = SQLDatastore(first.engine, table="shared")
    assert second.get(Key("/x/1")) == "one"
    inspector = sa.inspect(first.engine)
    assert inspector.get_pk_constraint("shared")["constrained_columns"] == ["key"]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("shared")}
    assert indexes["ix_shared_path_key"] == ["path", "key"]
    first.close()


def test_accepts_url_engine_or_started_client(db_url: str) -> None:
    """A URL, an Engine and a started Client all work; anything else is refused."""
    with Client(db_url) as client:
        through_client = SQLDatastore(client, table="kv")
        through_client.put(Key("/k"), [1, 2])
        assert SQLDatastore(client.engine, table="kv").get(Key("/k")) == [1, 2]
        assert SQLDatastore(db_url, table="kv").get(Key("/k")) == [1, 2]
    with pytest.raises(errors.ClientNotStartedError):
        SQLDatastore(Client(db_url))
    with pytest.raises(errors.DatastoreTypeError, match="URL, an SQLAlchemy Engine"):
        SQLDatastore(42)


def test_a_url_that_cannot_work_is_refused_at_construction(db_url: str, tmp_path) -> None:
    """A malformed URL, or one naming a driver that does not exist, raises ConfigurationError
    naming the URL and the fix, before any connection (hardening, issue 12 C)."""
    with pytest.raises(errors.ConfigurationError, match=r"SQLDatastore\('not a url'\): not a"):
        SQLDatastore("not a url")
    with pytest.raises(ValueError, match=r"write one like 'sqlite:///data\.db'"):
        SQLDatastore("not a url", table="kv")
    backend = sa.engine.make_url(db_url).get_backend_name()
    wrong_driver = sa.engine.make_url(db_url).set(drivername=f"{backend}+nodriver")
    with pytest.raises(errors.ConfigurationError, match="nodriver"):
        SQLDatastore(wrong_driver)
    assert list(tmp_path.iterdir()) == []  # not even an SQLite file was created


@pytest.mark.parametrize("table", ["dc_object", "dc_alias", "DC_Object", "sqlite_x", "pg_class"])
def test_reserved_table_names_are_refused_at_construction(db_url: str, table: str) -> None:
    """A table name with a reserved prefix (claystore's dc_, the engines' sqlite_ and pg_, in
    any letter case) raises ConfigurationError at construction; the table is not touched."""
    with Client(db_url) as client:
        before = sa.inspect(client.engine).get_table_names()
        with pytest.raises(errors.ConfigurationError, match=f"table {table!r}.*another table"):
            SQLDatastore(client, table=table)
        assert sa.inspect(client.engine).get_table_names() == before
        assert "dc_object" in before
    with pytest.raises(errors.ConfigurationError, match="belong to"):
        SQLDatastore(db_url, table=table)


def test_a_table_that_is_not_a_datastore_table_is_refused(db_url: str) -> None:
    """An existing table with other columns (a model's) raises ConfigurationError at
    construction, its rows untouched."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE employee (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(sa.text("INSERT INTO employee VALUES (1, 'ann')"))
    with pytest.raises(errors.ConfigurationError, match=r"'employee' exists.*\['id', 'name'\]"):
        SQLDatastore(engine, table="employee")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM employee")).all() == [("ann",)]
    engine.dispose()


def test_table_names_up_to_63_bytes_work_on_every_engine(db_url: str) -> None:
    """A 63-byte table name works on both engines (its index name is shortened); a longer one
    raises ConfigurationError on both."""
    name = "t" * 63
    store = SQLDatastore(db_url, table=name)
    store.put(Key("/a/b"), 1)
    assert list(store.query(Query(Key("/a")))) == [1]
    indexes = sa.inspect(store.engine).get_indexes(name)
    assert [len(index["name"]) for index in indexes] == [63]
    store.close()
    with pytest.raises(errors.ConfigurationError, match="at most 63 bytes"):
        SQLDatastore(db_url, table="t" * 64)
    with pytest.raises(errors.ConfigurationError, match="at most 63 bytes"):
        SQLDatastore(db_url, table="é" * 32)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((1, 2), "tuple is not a JSON value"),
        ({1: "a"}, "keys are str"),
        ({"a": [math.nan]}, r"value of /v\['a'\]\[0\]: nan"),
        (math.inf, "not a JSON number"),
        (2**64, "does not fit in 64 bits"),
        ("a\x00b", "NUL"),
        ({"a": {1, 2}}, "set is not a JSON value"),
    ],
)
def test_values_json_cannot_hold_exactly_are_refused(
    store: SQLDatastore, value: Any, message: str
) -> None:
    """Values that would not come back as stored raise DatastoreTypeError naming where."""
    with pytest.raises(errors.DatastoreTypeError, match=message):
        store.put(Key("/v"), value)
    assert not store.contains(Key("/v"))


def test_numbers_round_trip_with_their_type(store: SQLDatastore) -> None:
    """Ints stay ints and floats stay floats, huge and negative zero included."""
    values = [1, 1.0, 2**60, float(2**60), 1e16, 1e300, -0.0, 5e-324, 2**63 - 1]
    store.put(Key("/n"), values)
    back = store.get(Key("/n"))
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]


def test_bad_keys_are_refused(store: SQLDatastore) -> None:
    """Keys must be Key objects whose text SQL can store."""
    with pytest.raises(errors.DatastoreTypeError, match="Key objects"):
        store.put("/a", 1)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidKeyError, match="NUL"):
        store.put(Key("/a\x00b"), 1)


def test_batch_is_one_transaction_and_last_write_wins(store: SQLDatastore) -> None:
    """A batch applies in one transaction; a bad value in it writes nothing."""
    store.put(Key("/b/0"), "old")
    with count_statements(store.engine) as log, store.batch() as batch:
        for n in range(50):
            batch.put(Key("/b").child(n), n)
        batch.delete(Key("/b/0"))
        batch.put(Key("/b/1"), "again")
    writes = log.matching("INSERT") + log.matching("DELETE")
    assert len(writes) == 2
    assert store.get(Key("/b/0")) is None
    assert store.get(Key("/b/1")) == "again"
    batch = store.batch()
    batch.put(Key("/b/2"), "new")
    batch.put(Key("/b/3"), (1,))
    with pytest.raises(errors.DatastoreTypeError):
        batch.commit()
    assert store.get(Key("/b/2")) == 2


def test_in_memory_sqlite_works() -> None:
    """An in-memory SQLite database (one shared connection) stores and queries."""
    store = SQLDatastore("sqlite://")
    store.put(Key("/m/a"), {"x": 2})
    store.put(Key("/m/b"), {"x": 1})
    assert [r["x"] for r in store.query(Query(Key("/m")).order("x"))] == [1, 2]
    store.close()


# -- queries ----------------------------------------------------------------------------------


def test_query_selects_the_collection_only(store: SQLDatastore) -> None:
    """Query(Key('/Comedy')) returns the children of /Comedy, not deeper or other keys."""
    records = fill(
        store,
        {
            Key("/Comedy/a"): 1,
            Key("/Comedy:MP"): 2,
            Key("/Comedy/a/deeper"): 3,
            Key("/Drama/b"): 4,
            Key("/Comedy"): 5,
        },
    )
    assert same_as_dict(store, records, Query(Key("/Comedy"))) == ["/Comedy/a", "/Comedy:MP"]
    assert same_as_dict(store, records, Query(Key("/"))) == ["/Comedy"]


def test_compiled_sql_is_one_select_with_bound_values(store: SQLDatastore) -> None:
    """Filters, orders, limit and offset become one SELECT; values are parameters, not SQL."""
    evil = "'; DROP TABLE store; --"
    fill(store, {Key("/p/1"): {"name": evil}, Key("/p/2"): {"name": "x"}})
    query = Query(Key("/p"), limit=5, offset=0).filter("name", "=", evil).order("-name")
    query.offset = 1
    compiled = store.compile(query).statement.compile(dialect=store.engine.dialect)
    sql = str(compiled)
    assert sql.count("SELECT") == 1
    for part in ("WHERE", "ORDER BY", "LIMIT", "OFFSET"):
        assert part in sql
    assert evil not in sql
    assert "DROP" not in sql
    # bound as a parameter (on PostgreSQL as its JSON text, compared as JSONB)
    assert any(evil in str(value) for value in compiled.params.values())
    # limit and offset are numbers in the SQL that runs (SQLite plans ``LIMIT ?`` as unknown)
    ran = store.query(query).statement
    assert ran == str(
        store.compile(query).statement.compile(
            dialect=store.engine.dialect, compile_kwargs={"render_postcompile": True}
        )
    )
    assert "LIMIT 5 OFFSET 1" in ran
    query.offset = 0
    assert [r["name"] for r in store.query(query)] == [evil]
    assert store.contains(Key("/p/2"))  # the table is still there


def test_total_order_across_types(store: SQLDatastore) -> None:
    """None < bool < numbers < str < objects/arrays, in orders and in filters."""
    records = fill(
        store,
        {Key("/m").child(n): {"v": v} for n, v in enumerate([3, "x", None, 2.5, True, "B"])}
        | {Key("/m/missing"): {}},
    )
    assert same_as_dict(store, records, Query(Key("/m")).order("+v")) == [
        "/m/2",
        "/m/missing",
        "/m/4",
        "/m/3",
        "/m/0",
        "/m/5",
        "/m/1",
    ]
    assert same_as_dict(store, records, Query(Key("/m")).filter("v", "<", 3)) == [
        "/m/2",
        "/m/3",
        "/m/4",
        "/m/missing",
    ]
    for op in ("<", "<=", "=", "!=", ">=", ">"):
        for value in (None, False, True, 0, 2.5, 3, "B", "a", math.inf, -math.inf, math.nan):
            same_as_dict(store, records, Query(Key("/m")).filter("v", op, value))


def test_true_is_not_one_and_ints_equal_floats(store: SQLDatastore) -> None:
    """True does not match = 1; 1 matches = 1.0; -0.0 ties with 0."""
    records = fill(
        store,
        {Key("/t/a"): {"v": True}, Key("/t/b"): {"v": 1}, Key("/t/c"): {"v": 1.0}},
    )
    assert same_as_dict(store, records, Query(Key("/t")).filter("v", "=", 1)) == ["/t/b", "/t/c"]
    assert same_as_dict(store, records, Query(Key("/t")).filter("v", "=", True)) == ["/t/a"]
    zeros = fill(store, {Key("/z/b"): {"v": -0.0}, Key("/z/a"): {"v": 0}})
    assert same_as_dict(store, zeros, Query(Key("/z")).order("-v")) == ["/z/a", "/z/b"]


def test_numbers_compare_exactly_beyond_double_precision(store: SQLDatastore) -> None:
    """Integers and floats near 2**53 and beyond 2**63 compare exactly, as in Python."""
    big = 2**53
    records = fill(
        store,
        {
            Key("/e/a"): {"v": big},
            Key("/e/b"): {"v": big + 1},
            Key("/e/c"): {"v": float(big)},
            Key("/e/d"): {"v": float(2**60)},
            Key("/e/e"): {"v": 2**60 + 1},
            Key("/e/f"): {"v": 1e300},
        },
    )
    assert same_as_dict(store, records, Query(Key("/e")).order("v")) == [
        "/e/a",
        "/e/c",
        "/e/b",
        "/e/d",
        "/e/e",
        "/e/f",
    ]
    for value in (big + 1, float(big), 2**60, 2**60 + 1, 2**64 + 1, 10**400, -(10**400)):
        for op in ("<", "<=", "=", "!=", ">=", ">"):
            same_as_dict(store, records, Query(Key("/e")).filter("v", op, value))


def test_strings_compare_by_code_point(store: SQLDatastore) -> None:
    """Mixed case and unicode sort by code point ('B' < 'a' < 'z' < 'é' < '😀')."""
    words = ["a", "B", "é", "z", "😀", "ß", "A", "", "aa", "Z"]
    records = fill(store, {Key("/s").child(n): {"w": w} for n, w in enumerate(words)})
    got = same_as_dict(store, records, Query(Key("/s")).order("w"))
    assert [records[Key(k)]["w"] for k in got] == sorted(words)
    same_as_dict(store, records, Query(Key("/s")).filter("w", ">", "Z").order("-w"))
    same_as_dict(store, records, Query(Key("/s")).filter("w", "<", "a\x00b"))


def test_ties_are_broken_by_key(store: SQLDatastore) -> None:
    """Equal values come back in ascending key order, whatever the order's direction."""
    records = fill(store, {Key("/t").child(k): {"v": 1} for k in "dbca"})
    assert same_as_dict(store, records, Query(Key("/t")).order("-v")) == [
        "/t/a",
        "/t/b",
        "/t/c",
        "/t/d",
    ]


def test_null_and_missing_fields_tie(store: SQLDatastore) -> None:
    """A JSON null and a missing field are both None: they tie, and ties go by key."""
    records = fill(store, {Key("/u/aa"): {"x": None}, Key("/u/a"): {}, Key("/u/b"): {"x": 0}})
    assert same_as_dict(store, records, Query(Key("/u")).order("+x")) == ["/u/a", "/u/aa", "/u/b"]
    assert same_as_dict(store, records, Query(Key("/u")).order("-x")) == ["/u/b", "/u/a", "/u/aa"]


def test_several_orders_limit_offset_and_offset_key(store: SQLDatastore) -> None:
    """Orders chain; offset_key, offset and limit cut the sequence like the naive path."""
    records = fill(
        store,
        {
            Key("/o").child(f"k{n}"): {"a": n % 3, "b": None if n % 4 == 0 else str(n % 5)}
            for n in range(20)
        },
    )
    query = Query(Key("/o"), limit=7, offset=3).order("-a").order("+b")
    same_as_dict(store, records, query)
    query.offset_key = Key("/o/k12")
    same_as_dict(store, records, query)


def test_cursor_counts_returned_and_skipped(store: SQLDatastore) -> None:
    """returned and skipped match the naive cursor, also for a page past the end."""
    fill(store, {Key("/c").child(n): {"n": n} for n in range(5)})
    for offset, limit in [(2, 2), (4, 10), (9, None), (0, 0)]:
        query = Query(Key("/c"), limit=limit, offset=offset)
        naive = DictDatastore()
        for n in range(5):
            naive.put(Key("/c").child(n), {"n": n})
        expected = naive.query(query.copy())
        list(expected)
        cursor = store.query(query.copy())
        list(cursor)
        assert (cursor.returned, cursor.skipped) == (expected.returned, expected.skipped)


def test_cursor_is_lazy_and_iterates_once(store: SQLDatastore) -> None:
    """No SQL runs before iteration; a second iteration is refused."""
    store.put(Key("/l/a"), 1)
    with count_statements(store.engine) as log:
        cursor = store.query(Query(Key("/l")))
    assert len(log) == 0
    assert list(cursor) == [1]
    with pytest.raises(errors.CursorError):
        list(cursor)


def test_results_stream_in_chunks(db_url: str, engine_name: str) -> None:
    """Queries stream (PostgreSQL: a server-side cursor); close() frees the connection."""
    store = SQLDatastore(db_url, table="big", chunk_size=50)
    fill(store, {Key("/big").child(f"{n:05}"): {"n": n} for n in range(500)})
    seen: list[tuple[Any, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        context = args[-2]
        seen.append((type(cursor).__name__, context.execution_options.get("yield_per")))

    event.listen(store.engine, "before_cursor_execute", record)
    cursor = store.query(Query(Key("/big")).order("-n"))
    first = next(cursor)
    event.remove(store.engine, "before_cursor_execute", record)
    assert first == {"n": 499}
    assert seen[-1][1] == 50
    if engine_name == "postgresql":
        assert seen[-1][0] == "ServerCursor"
    assert store.engine.pool.checkedout() == 1
    cursor.close()
    assert store.engine.pool.checkedout() == 0
    dropped = store.query(Query(Key("/big")))
    next(dropped)
    assert store.engine.pool.checkedout() == 1
    del dropped  # a cursor dropped half-way frees its connection at once
    assert store.engine.pool.checkedout() == 0
    store.close()


# -- what SQL cannot decide is evaluated in Python -------------------------------------------


def test_filters_on_arrays_and_objects_run_in_python(
    store: SQLDatastore, caplog: pytest.LogCaptureFixture
) -> None:
    """A list or dict filter value is compared in Python (by repr), and the cursor says so."""
    records = fill(
        store,
        {Key("/j/a"): {"v": [1, 2]}, Key("/j/b"): {"v": [1]}, Key("/j/c"): {"v": {"k": 1}}},
    )
    query = Query(Key("/j")).filter("v", ">=", [1, 2])
    with caplog.at_level(logging.INFO, logger="claystore.datastore.sql"):
        cursor = store.query(query.copy())
    assert cursor.evaluated_in_python == ["filter v >= [1, 2]: SQL cannot compare it exactly"]
    assert "evaluated in Python" in caplog.text
    assert same_as_dict(store, records, query) == ["/j/a", "/j/b"]  # by repr: "[1]" > "[1, 2]"


def test_orders_meeting_arrays_or_objects_switch_to_python(store: SQLDatastore) -> None:
    """An order that meets arrays or objects finishes in Python, same sequence as naive."""
    records = fill(
        store,
        {Key("/r").child(n): {"v": v} for n, v in enumerate([3, [2], {"b": 1}, [10], "s", None])},
    )
    query = Query(Key("/r"), limit=4, offset=1).order("-v")
    cursor = store.query(query.copy())
    list(cursor)
    assert cursor.evaluated_in_python
    same_as_dict(store, records, query)
    plain = store.query(Query(Key("/r"), limit=2).order("+v"))
    list(plain)
    assert plain.evaluated_in_python == []  # the page never met an array


def test_fields_read_as_attributes_of_non_object_records(store: SQLDatastore) -> None:
    """A field Python reads as an attribute of a non-dict record (5 .real) is decided in
    Python, so the result still equals the naive one."""
    records = fill(store, {Key("/w/a"): 5, Key("/w/b"): {"real": 5}, Key("/w/c"): "text"})
    cursor = store.query(Query(Key("/w")).filter("real", "=", 5))
    assert keys_of(cursor) == ["/w/a", "/w/b"]
    assert cursor.evaluated_in_python
    same_as_dict(store, records, Query(Key("/w")).filter("real", "=", 5))
    dict_only = store.query(Query(Key("/w")).filter("colour", "=", None))
    list(dict_only)
    assert dict_only.evaluated_in_python == []


def test_custom_object_getattr_runs_in_python(store: SQLDatastore) -> None:
    """A query with its own object_getattr is evaluated in Python over the collection."""
    fill(store, {Key("/g/a"): {"d": {"n": 2}}, Key("/g/b"): {"d": {"n": 1}}})
    query = Query(Key("/g"), object_getattr=lambda r, f: r["d"][f]).order("n")
    cursor = store.query(query)
    assert keys_of(cursor) == ["/g/b", "/g/a"]
    assert cursor.evaluated_in_python


def test_awkward_field_names_are_data(store: SQLDatastore) -> None:
    """Field names with dots, quotes, backslashes and unicode address that exact field."""
    names = ["a.b", 'q"uote', "back\\slash", "tab\tx", "é", "$", "[0]"]
    records = fill(
        store,
        {Key("/f").child(n): {name: n, "a": {"b": 99}} for n, name in enumerate(names)},
    )
    for name in names:
        assert same_as_dict(store, records, Query(Key("/f")).filter(name, ">=", 0)) == [
            f"/f/{names.index(name)}"
        ]
        same_as_dict(store, records, Query(Key("/f")).order(f"-{name}"))


def test_sharded_sql_stores_merge_like_one_dict(db_url: str) -> None:
    """Shards of SQLDatastores (one table each) answer queries like one DictDatastore."""
    shards = [SQLDatastore(db_url, table=f"shard{n}") for n in range(3)]
    sharded = ShardedDatastore(shards)
    naive = DictDatastore()
    for n in range(30):
        for target in (sharded, naive):
            target.put(Key("/s").child(n), {"n": n % 7, "s": str(n)})
    query = Query(Key("/s"), limit=6, offset=4).order("-n").filter("s", "<", "5")
    assert keys_of(sharded.query(query.copy())) == keys_of(naive.query(query.copy()))
    # the merged Cursor keeps a reference cycle (its offset generator holds the cursor), so
    # the shards' half-read cursors are freed by the cycle collector, not at once
    gc.collect()
    assert all(shard.engine.pool.checkedout() == 0 for shard in shards)
    for shard in shards:
        shard.close()


def test_encode_value_writes_exact_numbers_for_postgresql() -> None:
    """Floats of 2**53 or more are written with all their digits when exact is asked."""
    assert encode_value(float(2**60), exact_numbers=True) == "1152921504606846976.0"
    assert encode_value(float(2**60)) == "1.152921504606847e+18"
    assert encode_value({"a": [True, None, "é"]}) == '{"a": [true, null, "é"]}'


def test_query_returns_an_sql_cursor(store: SQLDatastore) -> None:
    """query() returns an SQLCursor carrying its SQL text."""
    cursor = store.query(Query(Key("/x")))
    assert isinstance(cursor, SQLCursor)
    assert "SELECT" in cursor.statement
