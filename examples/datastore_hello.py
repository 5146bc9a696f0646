"""Hello world in every kind of datastore: the same five calls, different storage.

Run it with ``python examples/datastore_hello.py``.  It walks the hello worlds of the
original ``datastore`` documentation: a dict, the file system, a serializer, tiered access
(cache in front of complete stores) and sharding.  Files go to a temporary folder that is
removed at the end.
"""

from __future__ import annotations

import json
import tempfile

from claystore import datastore
from claystore.datastore.filesystem import FileSystemDatastore


def hello(title: str, ds: datastore.Datastore) -> None:
    """Put, check, get and delete Key('hello') in ``ds``, printing each answer."""
    print(f"== {title}")
    key = datastore.Key("hello")
    ds.put(key, "world")
    print("contains:", ds.contains(key))
    print("get:", ds.get(key))
    ds.delete(key)
    print("after delete:", ds.get(key))


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        hello("Hello Dict", datastore.DictDatastore())
        hello("Hello filesystem", FileSystemDatastore(f"{root}/files"))
        hello("Hello Serialization", datastore.serialize.shim(datastore.DictDatastore(), json))

        cache = datastore.DictDatastore()
        middle = datastore.serialize.shim(datastore.DictDatastore())
        files = FileSystemDatastore(f"{root}/tiered")
        with datastore.TieredDatastore([cache, middle, files]) as tiers:
            hello("Hello Tiered Access", tiers)

        shards = [datastore.DictDatastore() for _ in range(10)]
        sharded = datastore.ShardedDatastore(shards)
        hello("Hello Sharding", sharded)
        sharded.put(datastore.Key("hello"), "world")
        print("stored in shard:", sharded.shard(datastore.Key("hello")))


if __name__ == "__main__":
    main()
