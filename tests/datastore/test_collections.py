"""Tests for claystore.datastore.collections: DatastoreCollection, tiers and shards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from claystore.datastore import (
    DatastoreCollection,
    DictDatastore,
    Key,
    NullDatastore,
    Query,
    ShardedDatastore,
    TieredDatastore,
    stable_key_hash,
)
from claystore.datastore.basic import BatchOperation
from claystore.errors import DatastoreError, DatastoreTypeError


class Recording(DictDatastore):
    """A DictDatastore that records close() and batch commits."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.batches: list[list[BatchOperation]] = []

    def close(self) -> None:
        self.closed = True

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        self.batches.append(list(operations))
        super().commit_batch(operations)


def test_collection_management():
    """appendDatastore, insertDatastore, removeDatastore and datastore(i) edit the list."""
    a, b, c = DictDatastore(), DictDatastore(), DictDatastore()
    tiers = TieredDatastore([a])
    tiers.appendDatastore(c)
    tiers.insertDatastore(1, b)
    assert [tiers.datastore(i) for i in range(3)] == [a, b, c]
    assert tiers.stores == [a, b, c]
    assert len(tiers) == 3
    tiers.removeDatastore(b)
    assert tiers.stores == [a, c]
    with pytest.raises(DatastoreTypeError):
        tiers.appendDatastore({})  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError):
        DatastoreCollection().get(Key("/a"))


def test_collection_close_closes_every_store():
    """Closing a collection (or leaving its with block) closes all members."""
    stores = [Recording(), Recording()]
    with ShardedDatastore(stores):
        pass
    assert all(store.closed for store in stores)


# -- tiers ------------------------------------------------------------------------------------


def test_tiered_get_returns_first_hit_and_fills_upper_tiers():
    """get reads tiers in order and copies a hit into the tiers above it."""
    cache, middle, bottom = DictDatastore(), DictDatastore(), DictDatastore()
    ds = TieredDatastore([cache, middle, bottom])
    bottom.put(Key("/a"), "bottom")
    assert ds.get(Key("/a")) == "bottom"
    assert cache.get(Key("/a")) == "bottom"
    assert middle.get(Key("/a")) == "bottom"
    cache.put(Key("/a"), "cache")
    assert ds.get(Key("/a")) == "cache"
    assert ds.get(Key("/none")) is None


def test_tiered_put_delete_contains_go_to_all():
    """put and delete write through every tier; contains checks any tier."""
    tiers = [DictDatastore(), DictDatastore()]
    ds = TieredDatastore(tiers)
    ds.put(Key("/a"), 1)
    assert all(t.get(Key("/a")) == 1 for t in tiers)
    assert ds.contains(Key("/a"))
    ds.delete(Key("/a"))
    assert not any(t.contains(Key("/a")) for t in tiers)
    tiers[1].put(Key("/b"), 2)
    assert ds.contains(Key("/b"))


def test_tiered_query_uses_last_tier():
    """Queries go to the last (most complete) tier."""
    top, bottom = DictDatastore(), DictDatastore()
    ds = TieredDatastore([top, bottom])
    top.put(Key("/c/only-top"), "top")
    bottom.put(Key("/c/only-bottom"), "bottom")
    assert list(ds.query(Query(Key("/c")))) == ["bottom"]
    assert list(TieredDatastore().query(Query())) == []
    assert TieredDatastore().get(Key("/a")) is None


def test_tiered_batch_goes_to_every_tier_at_once():
    """A batch on a tiered store is committed to each tier in one call."""
    tiers = [Recording(), Recording()]
    ds = TieredDatastore(tiers)
    with ds.batch() as batch:
        batch.put(Key("/a"), 1)
        batch.put(Key("/b"), 2)
    assert [len(t.batches) for t in tiers] == [1, 1]
    assert tiers[0].get(Key("/b")) == 2


# -- shards -----------------------------------------------------------------------------------


def test_stable_key_hash_is_the_hash_of_the_key():
    """The default sharding function is hash(key), 0.3.6's fixed hash, for a Key or its text."""
    assert stable_key_hash(Key("hello")) == hash(Key("hello")) == 253424850106919123
    assert stable_key_hash("hello//") == stable_key_hash(Key("/hello"))
    assert ShardedDatastore([DictDatastore()] * 10).shard(Key("/hello")) == 3


def test_sharding_is_stable_across_processes():
    """A key goes to the same shard whatever PYTHONHASHSEED a process uses."""
    code = (
        "from claystore.datastore import Key, ShardedDatastore, DictDatastore;"
        "ds = ShardedDatastore([DictDatastore() for _ in range(7)]);"
        "print([ds.shard(Key(f'/k{i}')) for i in range(20)])"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    outputs = set()
    for seed in ("1", "2", "random"):
        env["PYTHONHASHSEED"] = seed
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout)
    local = ShardedDatastore([DictDatastore() for _ in range(7)])
    assert outputs == {f"{[local.shard(Key(f'/k{i}')) for i in range(20)]}\n"}


def test_sharded_operations_use_one_shard():
    """Each key lives in exactly the shard the sharding function picks."""
    shards = [DictDatastore() for _ in range(4)]
    ds = ShardedDatastore(shards)
    for i in range(20):
        ds.put(Key(f"/k{i}"), i)
    for i in range(20):
        key = Key(f"/k{i}")
        holders = [n for n, shard in enumerate(shards) if shard.contains(key)]
        assert holders == [ds.shard(key)]
        assert ds.shardDatastore(key) is shards[ds.shard(key)]
        assert ds.get(key) == i
        assert ds.contains(key)
    assert sum(len(s) for s in shards) == 20
    assert sum(1 for s in shards if len(s)) > 1
    ds.delete(Key("/k3"))
    assert ds.get(Key("/k3")) is None


def test_custom_sharding_function():
    """shardingfn picks the shard index modulo the number of shards."""
    shards = [DictDatastore(), DictDatastore()]
    ds = ShardedDatastore(shards, shardingfn=lambda key: len(str(key)))
    ds.put(Key("/ab"), 1)
    assert shards[1].get(Key("/ab")) == 1


def test_sharded_without_shards_is_an_error():
    """Using a ShardedDatastore with no shards raises a clear error."""
    with pytest.raises(DatastoreError, match="no shards"):
        ShardedDatastore().put(Key("/a"), 1)
    assert list(ShardedDatastore().query(Query())) == []


def test_sharded_query_orders_offset_limit_globally():
    """Merged results follow the orders, offset and limit over all shards."""
    single = DictDatastore()
    ds = ShardedDatastore([DictDatastore() for _ in range(3)])
    for i in range(30):
        record = {"group": i % 4, "n": i}
        single.put(Key(f"/r/{i:02d}"), record)
        ds.put(Key(f"/r/{i:02d}"), record)
    query = Query(Key("/r"), offset=5, limit=10).filter("n", "!=", 7).order("-group")
    expected = list(single.query(query))
    assert [r["n"] for r in ds.query(query.copy())] == [r["n"] for r in expected]
    unordered = Query(Key("/r"), offset=3, limit=4)
    assert list(ds.query(unordered)) == list(single.query(unordered))


def test_sharded_cursor_counts_global_skips():
    """The merged cursor counts the global offset skips."""
    ds = ShardedDatastore([DictDatastore() for _ in range(3)])
    for i in range(9):
        ds.put(Key(f"/r/{i}"), i)
    cursor = ds.query(Query(Key("/r"), offset=4))
    assert list(cursor) == [4, 5, 6, 7, 8]
    assert (cursor.skipped, cursor.returned) == (4, 5)


def test_shard_query_generator_visits_every_shard():
    """shard_query_generator yields every shard's results in turn."""
    ds = ShardedDatastore([DictDatastore() for _ in range(3)])
    for i in range(6):
        ds.put(Key(f"/r/{i}"), i)
    assert sorted(ds.shard_query_generator(Query(Key("/r")))) == list(range(6))


def test_sharded_batch_is_split_by_shard():
    """A batch is committed once per shard that has writes, with that shard's writes."""
    shards = [Recording() for _ in range(3)]
    ds = ShardedDatastore(shards)
    with ds.batch() as batch:
        for i in range(12):
            batch.put(Key(f"/k{i}"), i)
    for index, shard in enumerate(shards):
        for part in shard.batches:
            assert all(ds.shard(op.key) == index for op in part)
    assert sum(len(part) for s in shards for part in s.batches) == 12
    assert all(len(s.batches) <= 1 for s in shards)
    assert ds.get(Key("/k11")) == 11


def test_sharded_over_null_store_returns_nothing():
    """Shards that hold nothing contribute nothing to the merge."""
    ds = ShardedDatastore([NullDatastore(), NullDatastore()])
    ds.put(Key("/a"), 1)
    assert list(ds.query(Query())) == []
