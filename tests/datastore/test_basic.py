"""Tests for claystore.datastore.basic: the Datastore contract and the basic stores."""

from __future__ import annotations

from typing import Any

import pytest

from claystore.datastore import (
    Batch,
    Datastore,
    DictDatastore,
    InterfaceMappingDatastore,
    Key,
    NullDatastore,
    Query,
    ShimDatastore,
)
from claystore.datastore.basic import BatchOperation
from claystore.errors import DatastoreNotImplementedError, DatastoreTypeError


class FakeMemcache:
    """A dict-backed stand-in for a memcached client (get/set/delete)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> bool:
        self.data[key] = value
        return True

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class RecordingStore(DictDatastore):
    """A DictDatastore that records close() and batch commits."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0
        self.batches: list[list[BatchOperation]] = []

    def close(self) -> None:
        self.closed += 1

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        self.batches.append(list(operations))
        super().commit_batch(operations)


def test_datastore_is_a_plain_base_class():
    """Datastore can be built; an operation a subclass did not define is NotImplementedError."""
    store = Datastore()
    with pytest.raises(DatastoreNotImplementedError, match=r"Datastore does not implement get"):
        store.get(Key("/a"))
    with pytest.raises(NotImplementedError):
        store.contains(Key("/a"))


def test_dict_datastore_get_put_delete_contains():
    """DictDatastore stores, finds and removes objects; missing keys read as None."""
    ds = DictDatastore()
    key = Key("/hello")
    assert ds.get(key) is None
    assert not ds.contains(key)
    ds.put(key, "world")
    assert ds.get(key) == "world"
    assert ds.contains(key)
    ds.put(key, "again")
    assert ds.get(key) == "again"
    ds.delete(key)
    assert ds.get(key) is None
    ds.delete(key)


def test_dict_datastore_groups_by_key_path():
    """Objects are grouped by key.path and an emptied collection disappears."""
    ds = DictDatastore()
    ds.put(Key("/Comedy/Actor:JohnCleese"), 1)
    ds.put(Key("/Comedy/Actor:MichaelPalin"), 2)
    ds.put(Key("/Comedy/Sketch:CheeseShop"), 3)
    assert set(ds._items) == {"/Comedy/Actor", "/Comedy/Sketch"}
    ds.delete(Key("/Comedy/Sketch:CheeseShop"))
    assert set(ds._items) == {"/Comedy/Actor"}
    assert len(ds) == 2


def test_dict_query_scopes_to_children_of_the_query_key():
    """Query(Key('/a')) returns objects whose key.path is /a, not deeper ones."""
    ds = DictDatastore()
    ds.put(Key("/a/x"), "x")
    ds.put(Key("/a/y"), "y")
    ds.put(Key("/a/x/deep"), "deep")
    ds.put(Key("/b/z"), "z")
    assert list(ds.query(Query(Key("/a")))) == ["x", "y"]
    assert list(ds.query(Query(Key("/")))) == []
    assert list(ds.query(Query(Key("/missing")))) == []


def test_dict_query_typed_collection():
    """Query(Key('/Comedy/Actor')) returns the Actor instances of /Comedy."""
    ds = DictDatastore()
    ds.put(Key("/Comedy/Actor:JohnCleese"), "john")
    ds.put(Key("/Comedy/Actor:EricIdle"), "eric")
    ds.put(Key("/Comedy/Sketch:CheeseShop"), "cheese")
    assert list(ds.query(Query(Key("/Comedy/Actor")))) == ["eric", "john"]


def test_dict_query_with_filters_orders_limit_offset():
    """DictDatastore applies every query operation, ties broken by key."""
    ds = DictDatastore()
    for name, age in [("e", 30), ("a", 20), ("c", 30), ("b", None), ("d", 10)]:
        ds.put(Key(f"/p/{name}"), {"name": name, "age": age})
    query = Query(Key("/p"), limit=3, offset=1).filter("age", ">=", 10).order("-age")
    assert [r["name"] for r in ds.query(query)] == ["e", "a", "d"]


def test_datastores_refuse_non_key_keys():
    """Passing a str instead of a Key is a TypeError that says to wrap it."""
    with pytest.raises(DatastoreTypeError, match="Key"):
        DictDatastore().put("/a", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        NullDatastore().get("/a")  # type: ignore[arg-type]


def test_null_datastore_stores_nothing():
    """NullDatastore accepts writes and returns nothing."""
    ds = NullDatastore()
    ds.put(Key("/a"), 1)
    assert ds.get(Key("/a")) is None
    assert not ds.contains(Key("/a"))
    ds.delete(Key("/a"))
    assert list(ds.query(Query())) == []


def test_interface_mapping_datastore_maps_methods():
    """InterfaceMappingDatastore calls the named service methods with str(key)."""
    mc = FakeMemcache()
    ds = InterfaceMappingDatastore(mc, put="set", key=str)
    ds.put(Key("Hello"), "World")
    assert mc.data == {"/Hello": "World"}
    assert ds.get(Key("/Hello")) == "World"
    assert ds.contains(Key("/Hello"))
    ds.delete(Key("/Hello"))
    assert ds.get(Key("/Hello")) is None


def test_interface_mapping_datastore_cannot_query():
    """A get/put/delete service cannot answer queries: NotImplementedError, as in 0.3.6."""
    ds = InterfaceMappingDatastore(FakeMemcache(), put="set")
    with pytest.raises(DatastoreNotImplementedError, match="FakeMemcache"):
        ds.query(Query())


def test_shim_datastore_passes_everything_to_child():
    """The default shim delegates every operation, and close, to its child."""
    child = RecordingStore()
    shim = ShimDatastore(child)
    shim.put(Key("/a/b"), 1)
    assert child.get(Key("/a/b")) == 1
    assert shim.get(Key("/a/b")) == 1
    assert shim.contains(Key("/a/b"))
    assert list(shim.query(Query(Key("/a")))) == [1]
    shim.delete(Key("/a/b"))
    assert not child.contains(Key("/a/b"))
    shim.close()
    assert child.closed == 1
    assert repr(shim) == "ShimDatastore(<RecordingStore>)"


def test_shim_needs_a_datastore():
    """A shim refuses a child that is not a Datastore."""
    with pytest.raises(DatastoreTypeError):
        ShimDatastore({})  # type: ignore[arg-type]


def test_datastore_is_a_context_manager():
    """Leaving a with block closes the datastore, also on error."""
    store = RecordingStore()
    with store as entered:
        assert entered is store
    assert store.closed == 1
    with pytest.raises(ZeroDivisionError), ShimDatastore(store):
        _ = 1 / 0
    assert store.closed == 2


def test_batch_applies_writes_together_on_commit():
    """A batch writes nothing until commit, then applies puts and deletes in order."""
    store = RecordingStore()
    store.put(Key("/old"), "x")
    batch = store.batch()
    assert isinstance(batch, Batch)
    batch.put(Key("/a"), 1)
    batch.put(Key("/b"), 2)
    batch.delete(Key("/old"))
    batch.delete(Key("/b"))
    assert len(batch) == 4
    assert store.get(Key("/a")) is None
    batch.commit()
    assert store.get(Key("/a")) == 1
    assert store.get(Key("/b")) is None
    assert store.get(Key("/old")) is None
    assert len(store.batches) == 1
    assert len(batch) == 0


def test_batch_context_manager_commits_or_discards():
    """A batch block commits on success and discards its writes on error."""
    store = RecordingStore()
    with store.batch() as batch:
        batch.put(Key("/a"), 1)
    assert store.get(Key("/a")) == 1

    def failing_block():
        with store.batch() as batch:
            batch.put(Key("/b"), 2)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing_block()
    assert store.get(Key("/b")) is None
    assert len(store.batches) == 1


def test_batch_refuses_non_keys():
    """A batch checks keys when collecting, not at commit."""
    with pytest.raises(DatastoreTypeError):
        DictDatastore().batch().put("/a", 1)  # type: ignore[arg-type]
