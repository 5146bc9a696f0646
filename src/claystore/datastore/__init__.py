"""The datastore API of claystore: keys, queries and datastores (``datastore`` 0.3, Python 3).

This package is the public surface of :mod:`claystore.datastore`; applications and ported
``datastore`` code import from here::

    from claystore.datastore import DictDatastore, Key, Query

Modules: :mod:`.key` (Key, Namespace; their 0.3.6 hash is :mod:`.keyhash`), :mod:`.query`
(Query, Cursor, and the documented total order of values; Filter and Order are in
:mod:`.conditions`), :mod:`.values`
(that order), :mod:`.basic` (the Datastore contract and the basic stores), :mod:`.shims`,
:mod:`.directory`,
:mod:`.collections`, :mod:`.serialize`, :mod:`.filesystem`; over SQL: :mod:`.jsontable`
(the JSON-table datastore, compiled by :mod:`.jsoncompiler`), :mod:`.sqlorder` (the total
order as SQL), :mod:`.sqlcursor` (lazy results of SQL), and :mod:`.objects`
(:class:`ObjectDatastore`, over stored objects through the port the ORM implements).  Method
names keep the original camelCase so ported code runs.  Nothing here imports the ORM.
"""

from __future__ import annotations

from claystore.datastore import serialize
from claystore.datastore.basic import (
    Batch,
    BatchOperation,
    Datastore,
    DictDatastore,
    InterfaceMappingDatastore,
    NullDatastore,
    ShimDatastore,
)
from claystore.datastore.collections import (
    DatastoreCollection,
    ShardedDatastore,
    TieredDatastore,
    stable_key_hash,
)
from claystore.datastore.directory import DirectoryDatastore, DirectoryTreeDatastore
from claystore.datastore.filesystem import FileSystemDatastore
from claystore.datastore.jsontable import SQLDatastore
from claystore.datastore.key import Key, Namespace
from claystore.datastore.objects import ObjectDatastore
from claystore.datastore.query import (
    Cursor,
    Filter,
    Order,
    Query,
    chain_gen,
    compare_values,
    is_iterable,
    limit_gen,
    offset_gen,
    value_sort_key,
)
from claystore.datastore.serialize import SerializerShimDatastore
from claystore.datastore.shims import (
    CacheShimDatastore,
    KeyTransformDatastore,
    LoggingDatastore,
    LowercaseKeyDatastore,
    NamespaceDatastore,
    NestedPathDatastore,
    SymlinkDatastore,
)

__all__ = [
    "Batch",
    "BatchOperation",
    "CacheShimDatastore",
    "Cursor",
    "Datastore",
    "DatastoreCollection",
    "DictDatastore",
    "DirectoryDatastore",
    "DirectoryTreeDatastore",
    "FileSystemDatastore",
    "Filter",
    "InterfaceMappingDatastore",
    "Key",
    "KeyTransformDatastore",
    "LoggingDatastore",
    "LowercaseKeyDatastore",
    "Namespace",
    "NamespaceDatastore",
    "NestedPathDatastore",
    "NullDatastore",
    "ObjectDatastore",
    "Order",
    "Query",
    "SQLDatastore",
    "SerializerShimDatastore",
    "ShardedDatastore",
    "ShimDatastore",
    "SymlinkDatastore",
    "TieredDatastore",
    "chain_gen",
    "compare_values",
    "is_iterable",
    "limit_gen",
    "offset_gen",
    "serialize",
    "stable_key_hash",
    "value_sort_key",
]
