"""Tests for claystore.datastore.shims and claystore.datastore.directory."""

from __future__ import annotations

import logging

import pytest

from claystore.datastore import (
    CacheShimDatastore,
    DictDatastore,
    DirectoryDatastore,
    DirectoryTreeDatastore,
    Key,
    KeyTransformDatastore,
    LoggingDatastore,
    LowercaseKeyDatastore,
    NamespaceDatastore,
    NestedPathDatastore,
    Query,
    SymlinkDatastore,
)
from claystore.errors import (
    ConfigurationError,
    DatastoreError,
    InvalidKeyError,
    SymlinkCycleError,
)

# -- key transforms ---------------------------------------------------------------------------


def test_key_transform_applies_to_every_operation():
    """get, put, delete, contains and the query key go through keytransform."""
    ds = DictDatastore()
    kt = KeyTransformDatastore(ds, keytransform=lambda key: key.reverse)
    kt.put(Key("/x/c"), "v")
    assert ds.get(Key("/c/x")) == "v"
    assert kt.get(Key("/x/c")) == "v"
    assert kt.contains(Key("/x/c"))
    assert list(kt.query(Query(Key("/c")))) == ["v"]
    kt.delete(Key("/x/c"))
    assert not ds.contains(Key("/c/x"))


def test_key_transform_defaults_to_identity():
    """Without keytransform, keys pass unchanged."""
    ds = DictDatastore()
    KeyTransformDatastore(ds).put(Key("/a"), 1)
    assert ds.get(Key("/a")) == 1


def test_lowercase_key_datastore():
    """Keys are lowercased, queries included."""
    ds = DictDatastore()
    lds = LowercaseKeyDatastore(ds)
    lds.put(Key("/People/ANN"), "ann")
    assert ds.get(Key("/people/ann")) == "ann"
    assert lds.get(Key("/PEOPLE/Ann")) == "ann"
    assert list(lds.query(Query(Key("/PEOPLE")))) == ["ann"]
    assert LowercaseKeyDatastore.lowercaseKey(Key("/AbC")) == Key("/abc")


def test_namespace_datastore():
    """Every key, and the query key, lives under the namespace."""
    ds = DictDatastore()
    nd = NamespaceDatastore("/a/b", ds)
    nd.put(Key("/c/d"), "cd")
    assert ds.get(Key("/a/b/c/d")) == "cd"
    assert nd.namespaceKey(Key("/x")) == Key("/a/b/x")
    assert list(nd.query(Query(Key("/c")))) == ["cd"]


def test_nested_path_examples():
    """nestedPath splits into depth pieces of length characters."""
    nested = NestedPathDatastore.nestedPath
    assert nested("abcdefghijkl", 3, 2) == "ab/cd/ef"
    assert nested("abcdefghijkl", 4, 2) == "ab/cd/ef/gh"
    assert nested("abcdefghijkl", 3, 4) == "abcd/efgh/ijkl"
    assert nested("abcdefghijkl", 1, 4) == "abcd"
    assert nested("abcdefghijkl", 3, 10) == "abcdefghij/kl"
    assert NestedPathDatastore.nested_path("abc", 2, 1) == "a/b"


def test_nested_path_datastore_stores_under_nested_keys():
    """Keys go under a prefix built from their name, repeated if too short."""
    ds = DictDatastore()
    np = NestedPathDatastore(ds, depth=3, length=2)
    np.put(Key("/abcdefghijkl"), 1)
    np.put(Key("abc"), 2)
    np.put(Key("/coll/xyzw"), 3)
    assert ds.get(Key("/ab/cd/ef/abcdefghijkl")) == 1
    assert ds.get(Key("/ab/ca/bc/abc")) == 2
    assert ds.get(Key("/xy/zw/xy/coll/xyzw")) == 3
    assert np.get(Key("/coll/xyzw")) == 3


def test_nested_path_datastore_options_and_refusals():
    """keyfn picks the nested text; bad sizes, empty names and queries are refused."""
    ds = DictDatastore()
    np = NestedPathDatastore(ds, depth=2, length=2, keyfn=lambda key: key.name.upper())
    np.put(Key("/abcd"), 1)
    assert ds.get(Key("/AB/CD/abcd")) == 1
    assert np.nestKey(Key("/x/abc")) == Key("/AB/CA/x/abc")
    with pytest.raises(ConfigurationError):
        NestedPathDatastore(ds, depth=0)
    with pytest.raises(InvalidKeyError):
        NestedPathDatastore(ds).put(Key("/"), 1)
    with pytest.raises(NotImplementedError):
        NestedPathDatastore(ds).query(Query(Key("/")))


# -- symlinks ---------------------------------------------------------------------------------


def test_symlink_chains_are_followed():
    """A link to a link reads and writes the final target."""
    dds = DictDatastore()
    sds = SymlinkDatastore(dds)
    a, b, c = Key("/A"), Key("/B"), Key("/C")
    sds.put(a, 1)
    sds.link(a, b)
    sds.link(b, c)
    assert sds.get(c) == 1
    sds.put(c, 2)
    assert dds.get(a) == 2
    assert dds.get(c) == "/B/datastore_link"
    assert sds.contains(c)


def test_symlink_dangling_link_reads_none():
    """A link whose target is gone reads as None; deleting a link keeps the target."""
    sds = SymlinkDatastore(DictDatastore())
    a, b = Key("/A"), Key("/B")
    sds.put(a, 1)
    sds.link(a, b)
    sds.delete(b)
    assert sds.get(a) == 1
    sds.link(a, b)
    sds.delete(a)
    assert sds.get(b) is None
    assert not sds.contains(b)


def test_symlink_cycle_is_refused_at_link_time():
    """link() refuses to create a cycle, naming the chain."""
    sds = SymlinkDatastore(DictDatastore())
    a, b, c = Key("/A"), Key("/B"), Key("/C")
    sds.put(a, 1)
    sds.link(a, b)
    sds.link(b, c)
    with pytest.raises(SymlinkCycleError, match="/C -> /B -> /A"):
        sds.link(c, a)
    with pytest.raises(SymlinkCycleError):
        sds.link(a, a)
    assert sds.get(a) == 1


def test_symlink_cycle_written_directly_is_detected_when_followed():
    """A cycle stored behind the shim's back raises SymlinkCycleError instead of looping."""
    dds = DictDatastore()
    sds = SymlinkDatastore(dds)
    dds.put(Key("/A"), "/B/datastore_link")
    dds.put(Key("/B"), "/A/datastore_link")
    with pytest.raises(SymlinkCycleError, match="symlink cycle: /A -> /B -> /A"):
        sds.get(Key("/A"))
    with pytest.raises(RecursionError):
        sds.put(Key("/B"), 1)


def test_symlink_query_follows_links_before_filtering():
    """Query results show link targets, and filters see the target values."""
    sds = SymlinkDatastore(DictDatastore())
    sds.put(Key("/data/x"), {"n": 5})
    sds.put(Key("/data/y"), {"n": 1})
    sds.link(Key("/data/x"), Key("/view/x"))
    sds.link(Key("/data/y"), Key("/view/y"))
    sds.link(Key("/data/gone"), Key("/view/z"))
    query = Query(Key("/view")).filter("n", ">", 2)
    assert list(sds.query(query)) == [{"n": 5}]
    assert list(sds.query(Query(Key("/view")))) == [{"n": 5}, {"n": 1}]


# -- directories ------------------------------------------------------------------------------


def test_directory_datastore_manual_api():
    """directory, directoryAdd, directoryRead and directoryRemove manage a key list."""
    ds = DirectoryDatastore(DictDatastore())
    foo = Key("/foo")
    assert list(ds.directoryRead(foo)) == []
    ds.directory(foo)
    assert ds.get(foo) == []
    ds.directoryAdd(foo, Key("/foo/bar"))
    ds.directoryAdd(foo, Key("/foo/baz"))
    ds.directoryAdd(foo, Key("/foo/bar"))
    assert list(ds.directoryRead(foo)) == [Key("/foo/bar"), Key("/foo/baz")]
    ds.directory(foo)
    assert len(ds.get(foo)) == 2
    ds.directoryRemove(foo, Key("/foo/bar"))
    ds.directoryRemove(foo, Key("/foo/never"))
    ds.directoryRemove(Key("/nodir"), Key("/x"))
    assert ds.get(foo) == ["/foo/baz"]


def test_directory_add_creates_the_directory():
    """directoryAdd on a missing directory creates it."""
    ds = DirectoryDatastore(DictDatastore())
    ds.directoryAdd(Key("/d"), Key("/elsewhere/x"))
    assert ds.get(Key("/d")) == ["/elsewhere/x"]


def test_directory_refuses_to_overwrite_a_value():
    """directory() on a key holding another value raises instead of replacing it."""
    ds = DirectoryDatastore(DictDatastore())
    ds.put(Key("/v"), {"a": 1})
    with pytest.raises(DatastoreError, match="not a directory"):
        ds.directory(Key("/v"))
    assert ds.get(Key("/v")) == {"a": 1}


def test_directory_datastore_query():
    """A query on a directory returns the listed objects; other queries go to the child."""
    ds = DirectoryDatastore(DictDatastore())
    ds.put(Key("/people/bob"), {"age": 17})
    ds.put(Key("/people/ann"), {"age": 31})
    ds.put(Key("/people/cy"), {"age": 45})
    ds.directoryAdd(Key("/adults"), Key("/people/cy"))
    ds.directoryAdd(Key("/adults"), Key("/people/ann"))
    ds.directoryAdd(Key("/adults"), Key("/people/deleted"))
    assert list(ds.query(Query(Key("/adults")))) == [{"age": 31}, {"age": 45}]
    assert list(ds.query(Query(Key("/adults")).order("-age"))) == [{"age": 45}, {"age": 31}]
    assert len(list(ds.query(Query(Key("/people"))))) == 3


def test_directory_tree_tracks_children_automatically():
    """Puts add the key to its parent's directory and deletes remove it."""
    rds = DirectoryTreeDatastore(DictDatastore())
    a, b, c = Key("/A"), Key("/A/B"), Key("/A/C")
    assert rds.directory(a) == []
    rds.put(b, 1)
    rds.put(c, 2)
    rds.put(b, 3)
    assert rds.directory(a) == ["/A/B", "/A/C"]
    assert list(rds.directory_values_generator(a)) == [3, 2]
    assert list(rds.query(Query(a).order("-real"))) == [3, 2]
    rds.delete(b)
    assert rds.directory(a) == ["/A/C"]
    rds.put(Key("/top"), "t")
    assert rds.directory(Key("/")) == ["/top"]
    assert rds.get(Key("/:directory")) == ["/top"]


def test_directory_tree_refuses_a_directory_key_holding_a_value():
    """A directory key that holds something else than a key list raises and writes nothing."""
    child = DictDatastore()
    rds = DirectoryTreeDatastore(child)
    child.put(Key("/v:directory"), "plain")
    with pytest.raises(DatastoreError, match="/v:directory holds a str"):
        rds.put(Key("/v/child"), 1)
    assert child.get(Key("/v:directory")) == "plain"


# -- logging and caching ----------------------------------------------------------------------


def test_logging_datastore_logs_every_access(caplog):
    """Each operation is logged, then passed to the child."""
    child = DictDatastore()
    ds = LoggingDatastore(child)
    with caplog.at_level(logging.INFO, logger="claystore.datastore"):
        ds.put(Key("/a/b"), 1)
        assert ds.get(Key("/a/b")) == 1
        assert ds.contains(Key("/a/b"))
        assert list(ds.query(Query(Key("/a")))) == [1]
        ds.delete(Key("/a/b"))
    messages = [record.getMessage() for record in caplog.records]
    assert [m.split(": ", 1)[1].split(" ")[0] for m in messages] == [
        "put",
        "get",
        "contains",
        "query",
        "delete",
    ]
    assert "/a/b" in messages[0]
    assert child.get(Key("/a/b")) is None


def test_logging_datastore_custom_logger_and_level(caplog):
    """A given logger and level are used."""
    logger = logging.getLogger("test.custom")
    ds = LoggingDatastore(DictDatastore(), logger=logger, level=logging.WARNING)
    with caplog.at_level(logging.WARNING, logger="test.custom"):
        ds.get(Key("/x"))
    assert [(r.name, r.levelno) for r in caplog.records] == [("test.custom", logging.WARNING)]


def test_cache_shim_reads_cache_first():
    """get prefers the cache, then the child; writes go to both stores."""
    cache, child = DictDatastore(), DictDatastore()
    ds = CacheShimDatastore(child, cache=cache)
    child.put(Key("/a"), "from child")
    assert ds.get(Key("/a")) == "from child"
    cache.put(Key("/a"), "from cache")
    assert ds.get(Key("/a")) == "from cache"
    ds.put(Key("/b"), 2)
    assert (cache.get(Key("/b")), child.get(Key("/b"))) == (2, 2)
    ds.delete(Key("/b"))
    assert not cache.contains(Key("/b"))
    assert not child.contains(Key("/b"))
    cache.put(Key("/only-cache"), 1)
    assert ds.contains(Key("/only-cache"))
    assert ds.get(Key("/missing")) is None
    assert not cache.contains(Key("/missing"))
