"""Collections: datastores made of several datastores (tiers of caches, shards).

This module owns :class:`DatastoreCollection`, :class:`TieredDatastore`,
:class:`ShardedDatastore` and :func:`stable_key_hash`, the default sharding function.
Applications build them from any datastores; they call only their member stores.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from claystore.datastore.basic import BatchOperation, Datastore
from claystore.datastore.key import Key
from claystore.datastore.keyhash import stable_hash
from claystore.datastore.query import Cursor, Query, entry_sort_key
from claystore.errors import DatastoreError, DatastoreTypeError

__all__ = ["DatastoreCollection", "ShardedDatastore", "TieredDatastore", "stable_key_hash"]


def stable_key_hash(key: Key | str) -> int:
    """Return the hash datastore 0.3.6 gave ``key``: ``hash(key)`` for a Key, and the same for
    its text (:func:`~claystore.datastore.keyhash.stable_hash`).

    Unlike ``hash()`` of a ``str`` it does not change between runs (``PYTHONHASHSEED``), so
    a key always goes to the same shard -- the shard 0.3.6's ``ShardedDatastore`` chose.
    """
    return stable_hash(str(key if isinstance(key, Key) else Key(key)))


def _check_store(store: Any) -> Datastore:
    if not isinstance(store, Datastore):
        msg = f"a datastore collection holds Datastores, not {type(store).__name__}"
        raise DatastoreTypeError(msg)
    return store


class DatastoreCollection(Datastore):
    """Base of datastores that group other datastores; ``close()`` closes them all."""

    def __init__(self, stores: Iterable[Datastore] = ()) -> None:
        self._stores: list[Datastore] = [_check_store(store) for store in stores]

    @property
    def stores(self) -> list[Datastore]:
        """The member datastores, in order (a copy)."""
        return list(self._stores)

    def datastore(self, index: int) -> Datastore:
        """Return the datastore at ``index``."""
        return self._stores[index]

    def appendDatastore(self, store: Datastore) -> None:
        """Append ``store`` to this collection."""
        self._stores.append(_check_store(store))

    def insertDatastore(self, index: int, store: Datastore) -> None:
        """Insert ``store`` into this collection at ``index``."""
        self._stores.insert(index, _check_store(store))

    def removeDatastore(self, store: Datastore) -> None:
        """Remove ``store`` from this collection."""
        self._stores.remove(store)

    def close(self) -> None:
        """Close every member datastore."""
        for store in self._stores:
            store.close()

    def __len__(self) -> int:
        return len(self._stores)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._stores!r})"


class TieredDatastore(DatastoreCollection):
    """Datastores checked in order: fast caches first, the most complete store last.

    - ``get`` returns the first value found and copies it into the tiers above that one;
    - ``put`` and ``delete`` go to every tier;
    - ``contains`` is true if any tier holds the key;
    - ``query`` goes to the last (most complete) tier.
    """

    def get(self, key: Key) -> Any:
        """Return the first tier's value for ``key``, filling the tiers above it."""
        for index, store in enumerate(self._stores):
            value = store.get(key)
            if value is not None:
                for upper in self._stores[:index]:
                    upper.put(key, value)
                return value
        return None

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` in every tier."""
        for store in self._stores:
            store.put(key, value)

    def delete(self, key: Key) -> None:
        """Remove ``key`` from every tier."""
        for store in self._stores:
            store.delete(key)

    def contains(self, key: Key) -> bool:
        """Return whether any tier holds ``key``."""
        return any(store.contains(key) for store in self._stores)

    def query(self, query: Query) -> Cursor:
        """Answer ``query`` from the last (most complete) tier."""
        if not self._stores:
            return query.evaluate(())
        return self._stores[-1].query(query)

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        """Apply the batch to every tier, each tier in one go."""
        for store in self._stores:
            store.commit_batch(operations)


class ShardedDatastore(DatastoreCollection):
    """Datastores that each hold a share of the keys, picked by ``shardingfn(key) % n``.

    The default sharding function, :func:`stable_key_hash` (``hash(key)``, as in 0.3.6), sends
    a key to the same shard in every process, the shard 0.3.6 chose.  Adding, removing or
    reordering shards moves keys: fix the shard list before storing data that must persist.
    Queries ask every shard and merge the results, so orders, ``offset`` and ``limit`` apply
    to the whole data set.
    """

    def __init__(
        self,
        stores: Iterable[Datastore] = (),
        shardingfn: Callable[[Key], int] = stable_key_hash,
    ) -> None:
        if not callable(shardingfn):
            msg = (
                f"ShardedDatastore shardingfn must be callable (Key -> int), not "
                f"{type(shardingfn).__name__} {shardingfn!r}"
            )
            raise DatastoreTypeError(msg)
        super().__init__(stores)
        self.shardingfn = shardingfn

    def shard(self, key: Key) -> int:
        """Return the index of the shard that holds ``key``."""
        if not self._stores:
            msg = "ShardedDatastore has no shards: appendDatastore() some first"
            raise DatastoreError(msg)
        return self.shardingfn(key) % len(self._stores)

    def shardDatastore(self, key: Key) -> Datastore:
        """Return the shard that holds ``key``."""
        return self._stores[self.shard(key)]

    def get(self, key: Key) -> Any:
        """Return the object named by ``key`` from its shard."""
        return self.shardDatastore(key).get(key)

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` in the shard of ``key``."""
        self.shardDatastore(key).put(key, value)

    def delete(self, key: Key) -> None:
        """Remove ``key`` from its shard."""
        self.shardDatastore(key).delete(key)

    def contains(self, key: Key) -> bool:
        """Return whether the shard of ``key`` holds it."""
        return self.shardDatastore(key).contains(key)

    def shard_query_generator(self, query: Query) -> Iterator[Any]:
        """Yield each shard's results for ``query`` in turn (no order across shards)."""
        for store in self._stores:
            yield from store.query(query)

    def query(self, query: Query) -> Cursor:
        """Merge every shard's results into one sequence in the query's order.

        Each shard returns its results sorted by the query's orders, then by key, and limited
        to ``offset + limit``; the sorted streams are merged lazily and the offset and limit
        applied to the merged sequence.
        """
        per_shard = query.copy()
        per_shard.offset = 0
        per_shard.limit = None if query.limit is None else query.offset + query.limit
        streams = [store.query(per_shard).items() for store in self._stores]
        merged = heapq.merge(*streams, key=entry_sort_key(query.orders))
        return Cursor.from_items(query, merged).apply_offset().apply_limit()

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        """Split the batch by shard and apply each part to its shard in one go."""
        by_shard: defaultdict[int, list[BatchOperation]] = defaultdict(list)
        for operation in operations:
            by_shard[self.shard(operation.key)].append(operation)
        for index, part in sorted(by_shard.items()):
            self._stores[index].commit_batch(part)
