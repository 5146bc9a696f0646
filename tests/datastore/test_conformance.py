"""claystore.datastore behaves as the released datastore 0.3.6 does (issue 12, section A).

One test (or a few) per item of the issue, most harmful first.  The expected values were
checked against datastore 0.3.6 as released, run under CPython 2.7.18 (64-bit) with its
``smhasher`` dependency; where claystore deliberately differs, ``docs/datastore.md`` lists it
("Differences from datastore 0.3.6") and the test here pins claystore's side.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any

import pytest

from claystore.datastore import (
    CacheShimDatastore,
    Cursor,
    Datastore,
    DatastoreCollection,
    DictDatastore,
    DirectoryTreeDatastore,
    Filter,
    InterfaceMappingDatastore,
    Key,
    LoggingDatastore,
    Namespace,
    NestedPathDatastore,
    Order,
    Query,
    SerializerShimDatastore,
    ShardedDatastore,
    SymlinkDatastore,
    serialize,
)
from claystore.datastore.filesystem import FileSystemDatastore
from claystore.datastore.keyhash import murmur3_x86_128
from claystore.errors import (
    ConfigurationError,
    DatastoreError,
    DatastoreNotImplementedError,
    DatastoreTypeError,
    QueryError,
    SymlinkCycleError,
)

# -- 1. put(key, None) deletes ----------------------------------------------------------------


def test_item1_dict_put_none_deletes_the_key():
    """Item 1: DictDatastore.put(k, None) deletes k: not contained, not counted, not queried."""
    ds = DictDatastore()
    ds.put(Key("/a/x"), 1)
    ds.put(Key("/a/y"), 2)
    ds.put(Key("/a/x"), None)
    ds.put(Key("/a/never"), None)
    assert not ds.contains(Key("/a/x"))
    assert not ds.contains(Key("/a/never"))
    assert len(ds) == 1
    assert list(ds.query(Query(Key("/a")))) == [2]
    with ds.batch() as batch:
        batch.put(Key("/a/y"), None)
    assert len(ds) == 0
    assert ds._items == {}


def test_item1_file_store_put_none_deletes_the_file(tmp_path):
    """Item 1: put(k, None) deletes k in a file store too, also through a serializer shim."""
    files = FileSystemDatastore(tmp_path)
    files.put(Key("/a"), "text")
    files.put(Key("/a"), None)
    assert not files.contains(Key("/a"))
    store = serialize.shim(FileSystemDatastore(tmp_path / "json"))
    store.put(Key("/b"), {"n": 1})
    store.put(Key("/b"), None)
    assert not store.contains(Key("/b"))
    assert list(store.query(Query(Key("/")))) == []


# -- 2. hash(Key) is 0.3.6's, the same in every process ---------------------------------------

#: hash(datastore.Key(text)) under datastore 0.3.6 on 64-bit CPython 2.7.18
#: (smhasher.murmur3_x86_64(text) as a C long).
HASHES_OF_0_3_6 = {
    "/hello": 253424850106919123,
    "/": -8751619531311254345,
    "/Comedy/MontyPython/Actor:JohnCleese": 291097459511056742,
    "/a": -2024634643028494247,
    "/b": -9211993237028840326,
    "/x/y:z": 2226879564827127155,
    "/" + "q" * 40: -7684228725018435262,
}


@pytest.mark.parametrize(("text", "expected"), sorted(HASHES_OF_0_3_6.items()))
def test_item2_key_hash_is_the_hash_of_0_3_6(text, expected):
    """Item 2: hash(Key) equals the value datastore 0.3.6 gave on 64-bit Python 2.7."""
    assert hash(Key(text)) == expected
    assert hash(Key(text + "/")) == expected  # the normal form is hashed


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", "00000000000000000000000000000000"),
        (b"The quick brown fox jumps over the lazy dog", "c383152f672ceeec6cf67b5d2c1de9e5"),
        (b"a" * 15, "78fa8d8d331a81a560dfb090484c863a"),
        (b"b" * 16, "fa40a40ba7e3ccdcf560399f15647bee"),
        (b"c" * 33, "9655cdab110429440e9ebd22073d39a0"),
    ],
)
def test_item2_murmur3_matches_smhasher(data, digest):
    """Item 2: the MurmurHash3_x86_128 under the key hash gives smhasher's bytes (seed 0)."""
    words = murmur3_x86_128(data)
    assert b"".join(word.to_bytes(4, "little") for word in words).hex() == digest


def test_item2_key_hash_is_the_same_in_every_process():
    """Item 2: hash(Key) does not depend on PYTHONHASHSEED, so hash(key) % n is stable."""
    code = (
        "from claystore.datastore import Key;"
        "print([hash(Key(f'/k{i}')) for i in range(20)], hash(Key('/hello')))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    outputs = set()
    for seed in ("0", "1", "12345"):
        env["PYTHONHASHSEED"] = seed
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout)
    local = f"{[hash(Key(f'/k{i}')) for i in range(20)]} {HASHES_OF_0_3_6['/hello']}\n"
    assert outputs == {local}


def test_item2_sharding_by_hash_picks_the_shards_of_0_3_6():
    """Item 2: ShardedDatastore (default, or shardingfn=hash) puts keys where 0.3.6 did."""
    for shardingfn in (None, hash):
        stores = [DictDatastore() for _ in range(10)]
        sharded = ShardedDatastore(stores) if shardingfn is None else ShardedDatastore(stores, hash)
        sharded.put(Key("/hello"), "world")
        assert stores[3].get(Key("/hello")) == "world"  # -> 253424850106919123 % 10


# -- 3. symlinks ------------------------------------------------------------------------------


def test_item3_putting_a_link_value_replaces_the_link_not_its_source():
    """Item 3: put(b, '<key>/datastore_link') relinks b; the old source keeps its value."""
    child = DictDatastore()
    links = SymlinkDatastore(child)
    links.put(Key("/A"), 1)
    links.put(Key("/C"), 3)
    links.link(Key("/A"), Key("/B"))
    links.put(Key("/B"), "/C/datastore_link")
    assert child.get(Key("/A")) == 1
    assert child.get(Key("/B")) == "/C/datastore_link"
    assert links.get(Key("/B")) == 3


def test_item3_a_link_value_that_makes_a_cycle_is_refused():
    """Item 3: putting a link value that would close a cycle raises and writes nothing."""
    child = DictDatastore()
    links = SymlinkDatastore(child)
    links.put(Key("/A"), 1)
    links.link(Key("/A"), Key("/B"))
    with pytest.raises(SymlinkCycleError):
        links.put(Key("/A"), "/B/datastore_link")
    assert child.get(Key("/A")) == 1


def test_item3_symlink_shims_stack():
    """Item 3: a symlink shim over a symlink shim links, relinks and writes through links."""
    inner = SymlinkDatastore(DictDatastore())
    outer = SymlinkDatastore(inner)
    outer.put(Key("/A"), 1)
    outer.link(Key("/A"), Key("/B"))
    outer.link(Key("/A"), Key("/B"))
    assert outer.get(Key("/B")) == 1
    assert inner.child_datastore.get(Key("/B")) == "/A/datastore_link"
    outer.put(Key("/B"), 2)
    assert (outer.get(Key("/A")), outer.get(Key("/B"))) == (2, 2)
    outer.link(Key("/B"), Key("/C"))
    assert outer.get(Key("/C")) == 2
    outer.delete(Key("/B"))
    assert outer.get(Key("/A")) == 2


# -- 4. directory trees keep /A:directory -----------------------------------------------------


def test_item4_directory_tree_keeps_directories_at_the_directory_instance():
    """Item 4: the directory of /A is /A:directory, so /A holds a value and has children."""
    child = DictDatastore()
    tree = DirectoryTreeDatastore(child)
    tree.put(Key("/A"), "a")
    tree.put(Key("/A/B"), 1)
    tree.put(Key("/A/C"), 2)
    assert tree.get(Key("/A")) == "a"
    assert child.get(Key("/A:directory")) == ["/A/B", "/A/C"]
    assert child.get(Key("/:directory")) == ["/A"]
    assert list(tree.query(Query(Key("/A")))) == [1, 2]
    tree.delete(Key("/A/B"))
    tree.delete(Key("/A/C"))
    assert not child.contains(Key("/A:directory"))
    assert tree.directory(Key("/A")) == []


def test_item4_directories_written_by_0_3_6_are_found():
    """Item 4: a store laid out by 0.3.6 (lists at <parent>:directory) is read as is."""
    child = DictDatastore()
    child.put(Key("/people/ann"), {"age": 31})
    child.put(Key("/people/bob"), {"age": 17})
    child.put(Key("/people:directory"), ["/people/bob", "/people/ann"])
    tree = DirectoryTreeDatastore(child)
    assert tree.directory(Key("/people")) == ["/people/bob", "/people/ann"]
    adults = Query(Key("/people")).filter("age", ">=", 18)
    assert list(tree.query(adults)) == [{"age": 31}]
    tree.put(Key("/people/cy"), {"age": 45})
    assert child.get(Key("/people:directory")) == ["/people/bob", "/people/ann", "/people/cy"]


# -- 5. plain base classes --------------------------------------------------------------------


class KeyValueOnly(Datastore):
    """A ported key-value wrapper: get, put and delete, no query."""

    def __init__(self) -> None:
        self.data: dict[Key, Any] = {}

    def get(self, key: Key) -> Any:
        return self.data.get(key)

    def put(self, key: Key, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: Key) -> None:
        self.data.pop(key, None)


def test_item5_a_subclass_without_query_works_until_query_is_called():
    """Item 5: a Datastore subclass without query is built and used; query() raises then."""
    store = KeyValueOnly()
    store.put(Key("/a"), 1)
    assert store.get(Key("/a")) == 1
    assert store.contains(Key("/a"))
    with pytest.raises(NotImplementedError, match=r"KeyValueOnly does not implement query"):
        store.query(Query())
    with pytest.raises(DatastoreNotImplementedError):
        DatastoreCollection([store]).put(Key("/b"), 2)


# -- 6. the cache shim ------------------------------------------------------------------------


def test_item6_cache_shim_takes_cache_and_does_not_fill_it_on_a_miss():
    """Item 6: CacheShimDatastore(ds, cache=c) reads c, then ds, and leaves c as it was."""
    cache, child = DictDatastore(), DictDatastore()
    shim = CacheShimDatastore(child, cache=cache)
    child.put(Key("/a"), 1)
    assert shim.get(Key("/a")) == 1
    assert not cache.contains(Key("/a"))
    assert shim.cache_datastore is cache
    alias = CacheShimDatastore(child, cache_datastore=cache)
    assert alias.cache_datastore is cache


def test_item6_cache_shim_refuses_a_cache_that_is_not_a_datastore():
    """Item 6: a cache that is not a Datastore (or none) is a TypeError naming the value."""
    with pytest.raises(DatastoreTypeError, match=r"not dict \{'k': 1\}"):
        CacheShimDatastore(DictDatastore(), cache={"k": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not NoneType"):
        CacheShimDatastore(DictDatastore())
    with pytest.raises(ConfigurationError, match="not both"):
        CacheShimDatastore(DictDatastore(), cache=DictDatastore(), cache_datastore=DictDatastore())


# -- 7. serializers are tried at construction -------------------------------------------------


class LosingSerializer(serialize.Serializer):
    """Loses everything it is given."""

    @classmethod
    def dumps(cls, value: Any) -> Any:
        return "x"

    @classmethod
    def loads(cls, value: Any) -> Any:
        return {}


class FailingSerializer(serialize.Serializer):
    """Cannot read what it writes."""

    @classmethod
    def dumps(cls, value: Any) -> Any:
        return json.dumps(value)

    @classmethod
    def loads(cls, value: Any) -> Any:
        raise ValueError(value)


def test_item7_a_serializer_that_does_not_round_trip_is_refused():
    """Item 7: SerializerShimDatastore tries loads(dumps(...)) at construction and refuses
    a serializer that loses the value, fails, or lacks dumps/loads."""
    child = DictDatastore()
    with pytest.raises(ConfigurationError, match=r"does not round-trip.* gave \{\}"):
        SerializerShimDatastore(child, LosingSerializer)
    with pytest.raises(ConfigurationError, match="FailingSerializer"):
        serialize.shim(child, FailingSerializer)
    with pytest.raises(DatastoreTypeError, match="callable dumps and loads"):
        serialize.shim(child, object())  # type: ignore[arg-type]
    assert len(child) == 0
    for working in (json, serialize.prettyjson, serialize.NonSerializer, serialize.Stack([])):
        serialize.shim(child, working)


# -- 8. Filter.filter takes one filter --------------------------------------------------------


def test_item8_filter_filter_accepts_a_single_filter():
    """Item 8: Filter.filter(one_filter, items) filters by that filter."""
    items = [{"a": 1}, {"a": 2}, {"a": 3}]
    assert list(Filter.filter(Filter("a", ">", 1), items)) == [{"a": 2}, {"a": 3}]


# -- 9. Query arguments -----------------------------------------------------------------------


def test_item9_limit_and_offset_go_through_int():
    """Item 9: Query(key, limit="5", offset="3") counts 5 and 3, as int() reads them."""
    query = Query(Key("/a"), limit="5", offset="3")
    assert (query.limit, query.offset) == (5, 3)
    query.limit = 2.0  # type: ignore[assignment]
    assert query.limit == 2
    assert Query.from_dict({"key": "/a", "limit": "4"}).limit == 4
    for bad in ("x", "1.5", 1.5, -1, True):
        with pytest.raises(QueryError):
            Query(Key("/a"), limit=bad)  # type: ignore[arg-type]


def test_item9_from_dict_ignores_unknown_entries():
    """Item 9: Query.from_dict skips entries it does not know, and takes Filter objects."""
    data = {"key": "/a", "orders": ["+x"], "whatever": 1, "filter": [Filter("x", "=", 1)]}
    assert Query.from_dict(data).dict() == {"key": "/a", "filter": [["x", "=", 1]]}


def test_item9_query_key_must_be_a_key():
    """Item 9: Query('/a') with a str is a TypeError that says to wrap it in Key."""
    with pytest.raises(DatastoreTypeError, match=r"use Query\(Key\('/a'\)\)"):
        Query("/a")  # type: ignore[arg-type]


# -- 10. Order.keyfn --------------------------------------------------------------------------


def test_item10_order_keyfn_returns_the_field_value():
    """Item 10: Order.keyfn(obj) is the value of the order's field."""
    assert Order("-v").keyfn({"v": 7}) == 7
    assert Order("v").keyfn({}) is None
    people = [{"age": 40}, {"age": 12}, {"age": 25}]
    assert sorted(people, key=Order("age").keyfn) == [{"age": 12}, {"age": 25}, {"age": 40}]


# -- 11. hashes and text forms ----------------------------------------------------------------


def test_item11_filters_and_queries_hash_by_their_repr():
    """Item 11: Filter, Order and Query are hashable (hash of the repr), list values too."""
    condition = Filter("tags", "=", [1, 2])
    assert hash(condition) == hash(repr(condition))
    query = Query(Key("/a")).filter("tags", "=", [1, 2]).order("-x")
    assert hash(query) == hash(repr(query))
    assert hash(Order("+a")) == hash(repr(Order("+a")))
    assert len({Filter("a", "=", 1), Filter("a", "=", 1)}) == 1


def test_item11_namespace_repr_and_filter_str():
    """Item 11: repr(Namespace('B')) and str(Filter('key', '>', '/A')) read as in 0.3.6."""
    assert repr(Namespace("B")) == "Namespace('B')"
    assert Key("/A:b").namespaces == [Namespace("A:b")]
    assert repr(Key("/A:b").namespaces) == "[Namespace('A:b')]"
    assert str(Filter("key", ">", "/A")) == "key > /A"
    assert str(Filter("n", "=", None)) == "n = None"
    assert repr(Filter("key", ">", "/A")) == "Filter('key', '>', '/A')"


# -- 12. NotImplementedError for queries that cannot be answered ------------------------------


def test_item12_nested_path_and_interface_mapping_queries_are_not_implemented():
    """Item 12: NestedPathDatastore.query and InterfaceMappingDatastore.query raise
    NotImplementedError, naming the store."""
    with pytest.raises(NotImplementedError, match="NestedPathDatastore"):
        NestedPathDatastore(DictDatastore()).query(Query())
    service: dict[str, Any] = {}
    mapped = InterfaceMappingDatastore(service, put="setdefault", delete="pop")
    with pytest.raises(NotImplementedError, match="dict offers only get/put/delete"):
        mapped.query(Query())


# -- 13. a file where the root should be ------------------------------------------------------


def test_item13_file_store_on_a_file_raises_runtime_error(tmp_path):
    """Item 13: FileSystemDatastore on a path that is a file raises a RuntimeError naming it."""
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(RuntimeError, match="is a file, not a directory") as info:
        FileSystemDatastore(path)
    assert isinstance(info.value, DatastoreError)
    assert str(path) in str(info.value)
    assert path.read_text() == "x"


# -- 14. cursors and sharding functions are checked -------------------------------------------


def test_item14_cursor_checks_its_query_and_iterable():
    """Item 14: a Cursor without a Query, or over something not iterable, is a ValueError."""
    with pytest.raises(ValueError, match="Cursor needs a Query, not str 'q'"):
        Cursor("q", [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not int 5"):
        Cursor(Query(), 5)  # type: ignore[arg-type]
    assert list(Cursor(Query(), iter([1, 2]))) == [1, 2]


def test_item14_sharded_datastore_refuses_a_sharding_function_that_is_not_callable():
    """Item 14: ShardedDatastore(shardingfn=5) is a TypeError naming the value."""
    with pytest.raises(DatastoreTypeError, match=r"shardingfn must be callable.*not int 5"):
        ShardedDatastore([DictDatastore()], shardingfn=5)  # type: ignore[arg-type]


# -- 15. serializers and logging --------------------------------------------------------------


def test_item15_default_serializer_and_interface_check():
    """Item 15: serialize.default_serializer is json; implements_serializer_interface tells
    serializers from other objects."""
    assert serialize.default_serializer is json
    assert SerializerShimDatastore(DictDatastore()).serializer is json
    check = serialize.Serializer.implements_serializer_interface
    assert check(json)
    assert check(serialize.prettyjson)
    assert check(serialize.Stack([json]))
    assert not check(object)
    assert not check(type("HalfSerializer", (), {"dumps": staticmethod(json.dumps)}))


def test_item15_prettyjson_text_is_that_of_0_3_6():
    """Item 15: prettyjson writes 0.3.6's text: indent 1, ', ' separators, ASCII escapes."""
    text = serialize.prettyjson.dumps({"b": [1, {"x": "\u2713"}], "a": "caf\xe9"})
    expected = '{\n "a": "caf\\u00e9", \n "b": [\n  1, \n  {\n   "x": "\\u2713"\n  }\n ]\n}'
    assert text == expected


def test_item15_logging_datastore_logs_values_at_debug(caplog):
    """Item 15: LoggingDatastore logs put and get at INFO and their values at DEBUG."""
    logged = LoggingDatastore(DictDatastore())
    with caplog.at_level(logging.DEBUG, logger="claystore.datastore"):
        logged.put(Key("/a"), {"v": 1})
        logged.get(Key("/a"))
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert records == [
        ("INFO", "<DictDatastore>: put /a"),
        ("DEBUG", "<DictDatastore>: put /a value {'v': 1}"),
        ("INFO", "<DictDatastore>: get /a"),
        ("DEBUG", "<DictDatastore>: get /a value {'v': 1}"),
    ]


# -- other behaviour of 0.3.6 ---------------------------------------------------------------


def test_key_len_and_iteration_read_its_text():
    """len(key) and iter(key) are those of the key's text, as in 0.3.6."""
    assert len(Key("/a/b:c")) == 6
    assert list(Key("a")) == ["/", "a"]
    assert Key(Key("/a")) == Key("/a")
