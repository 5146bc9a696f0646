"""The datastore contract and the basic stores built on it.

This module owns :class:`Datastore` (the get/put/delete/contains/query contract, plus
``close()``, context-manager use and :meth:`Datastore.batch`), :class:`Batch`,
:class:`NullDatastore`, :class:`DictDatastore`, :class:`InterfaceMappingDatastore` and
:class:`ShimDatastore`, the base of every store that wraps another.  Applications call these
stores directly; shims (:mod:`.shims`, :mod:`.directory`, :mod:`.serialize`), collections
(:mod:`.collections`) and :mod:`.filesystem` build on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from claystore.datastore.key import Key
from claystore.datastore.query import Cursor, Entry, Query
from claystore.errors import DatastoreNotImplementedError, DatastoreTypeError

__all__ = [
    "Batch",
    "BatchOperation",
    "Datastore",
    "DictDatastore",
    "InterfaceMappingDatastore",
    "NullDatastore",
    "ShimDatastore",
]


def _require_key(key: Any) -> Key:
    """Return ``key`` if it is a Key; refuse anything else with a clear message."""
    if isinstance(key, Key):
        return key
    msg = f"datastore keys must be Key objects, not {type(key).__name__}: use Key({key!r})"
    raise DatastoreTypeError(msg)


@dataclass(frozen=True, slots=True)
class BatchOperation:
    """One write collected by a :class:`Batch`: a put (with its value) or a delete."""

    kind: Literal["put", "delete"]
    key: Key
    value: Any = None


class Batch:
    """Puts and deletes collected for one datastore and applied together by :meth:`commit`.

    Nothing reaches the datastore before ``commit()``; reads in the meantime see the old
    values.  As a context manager it commits when the block ends normally and discards the
    collected writes when the block raises::

        with ds.batch() as batch:
            batch.put(Key('/a'), 1)
            batch.delete(Key('/b'))
    """

    def __init__(self, datastore: Datastore) -> None:
        self.datastore = datastore
        self.operations: list[BatchOperation] = []

    def put(self, key: Key, value: Any) -> None:
        """Collect a put of ``value`` under ``key``."""
        self.operations.append(BatchOperation("put", _require_key(key), value))

    def delete(self, key: Key) -> None:
        """Collect a delete of ``key``."""
        self.operations.append(BatchOperation("delete", _require_key(key)))

    def commit(self) -> None:
        """Apply the collected writes, in order, and empty the batch."""
        operations, self.operations = self.operations, []
        self.datastore.commit_batch(operations)

    def discard(self) -> None:
        """Forget the collected writes without applying them."""
        self.operations = []

    def __len__(self) -> int:
        return len(self.operations)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _not_implemented(store: Datastore, operation: str) -> DatastoreNotImplementedError:
    name = type(store).__name__
    msg = f"{name} does not implement {operation}(): define {name}.{operation} to offer it"
    return DatastoreNotImplementedError(msg)


class Datastore:
    """Storage for key-value pairs: ``get``, ``put``, ``delete``, ``contains``, ``query``.

    Datastores can be backed by anything -- memory, files, databases, other datastores -- and
    combined (sharded, tiered, wrapped in shims).  ``get`` of a missing key returns None (no
    ``KeyError``), so None means "nothing stored": ``DictDatastore``, ``FileSystemDatastore``
    and ``SQLDatastore`` treat ``put(key, None)`` as ``delete(key)``, as 0.3.6's
    ``DictDatastore`` does.  Every datastore is a context manager whose exit
    calls :meth:`close`.

    As in datastore 0.3.6 this is a plain base class: a subclass defines the operations it
    offers, and calling one it did not define raises
    :class:`~claystore.errors.DatastoreNotImplementedError` (a ``NotImplementedError``), so
    a key-value store without ``query`` still works for the rest.
    """

    def get(self, key: Key) -> Any:
        """Return the object named by ``key``, or None if it does not exist."""
        raise _not_implemented(self, "get")

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` under ``key`` (how values are stored is up to the datastore)."""
        raise _not_implemented(self, "put")

    def delete(self, key: Key) -> None:
        """Remove the object named by ``key`` (no error if it does not exist)."""
        raise _not_implemented(self, "delete")

    def query(self, query: Query) -> Cursor:
        """Return a cursor over the objects matching ``query`` (see :class:`Query`)."""
        raise _not_implemented(self, "query")

    def contains(self, key: Key) -> bool:
        """Return whether an object is stored under ``key`` (default: pays for a ``get``)."""
        return self.get(key) is not None

    # -- additions beyond the original API ----------------------------------------------------

    def batch(self) -> Batch:
        """Return a :class:`Batch` that collects puts and deletes for :meth:`commit_batch`."""
        return Batch(self)

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        """Apply batched writes in order (stores with a faster bulk path override this)."""
        for operation in operations:
            if operation.kind == "put":
                self.put(operation.key, operation.value)
            else:
                self.delete(operation.key)

    def close(self) -> None:
        """Release what this datastore holds (files, connections); the default does nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class NullDatastore(Datastore):
    """Stores nothing but conforms to the API; useful in tests."""

    def get(self, key: Key) -> Any:
        """Return None: nothing is ever stored."""
        _require_key(key)
        return None

    def put(self, key: Key, value: Any) -> None:
        """Do nothing."""
        _require_key(key)

    def delete(self, key: Key) -> None:
        """Do nothing."""
        _require_key(key)

    def query(self, query: Query) -> Cursor:
        """Return an empty cursor."""
        return query.evaluate(())


class DictDatastore(Datastore):
    """Simple in-memory datastore backed by nested dicts.

    Objects are grouped in collections by ``str(key.path)``: ``_items['/0'][Key('/0/A')]``.
    A query reads the collection ``str(query.key)`` and returns its values in the order of
    the query, ties (and queries without orders) in ascending key order.
    """

    def __init__(self) -> None:
        self._items: dict[str, dict[Key, Any]] = {}

    def _collection(self, key: Key) -> dict[Key, Any]:
        return self._items.setdefault(str(key.path), {})

    def get(self, key: Key) -> Any:
        """Return the object named by ``key`` from the collection ``key.path``, or None."""
        collection = self._items.get(str(_require_key(key).path))
        return None if collection is None else collection.get(key)

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` in the collection ``key.path``; None deletes ``key`` (as in 0.3.6)."""
        if value is None:
            self.delete(key)
            return
        self._collection(_require_key(key))[key] = value

    def delete(self, key: Key) -> None:
        """Remove ``key`` from its collection (and drop the collection once empty)."""
        path = str(_require_key(key).path)
        collection = self._items.get(path)
        if collection is not None and key in collection:
            del collection[key]
            if not collection:
                del self._items[path]

    def contains(self, key: Key) -> bool:
        """Return whether ``key`` is in its collection."""
        collection = self._items.get(str(_require_key(key).path))
        return collection is not None and key in collection

    def query(self, query: Query) -> Cursor:
        """Evaluate ``query`` over the collection ``str(query.key)``."""
        collection = self._items.get(str(query.key), {})
        ordered = sorted(collection.items(), key=lambda item: str(item[0]))
        return query.evaluate(ordered)

    def __len__(self) -> int:
        return sum(len(collection) for collection in self._items.values())


class InterfaceMappingDatastore(Datastore):
    """Wraps an object that stores data through a get/put/delete-like interface.

    ``service`` is, for example, a memcached or redis client: ``get``, ``put`` and ``delete``
    name its methods, and ``key`` turns a :class:`Key` into the service's key (``str``)::

        mc_ds = InterfaceMappingDatastore(mc, put='set', key=str)

    Such services cannot enumerate keys, so :meth:`query` raises
    :class:`~claystore.errors.DatastoreNotImplementedError` (a ``NotImplementedError``).
    """

    def __init__(
        self,
        service: Any,
        get: str = "get",
        put: str = "put",
        delete: str = "delete",
        key: Callable[[Key], Any] = str,
    ) -> None:
        self._service = service
        self._get: Callable[[Any], Any] = getattr(service, get)
        self._put: Callable[[Any, Any], Any] = getattr(service, put)
        self._delete: Callable[[Any], Any] = getattr(service, delete)
        self._key = key

    def get(self, key: Key) -> Any:
        """Return the object the service holds under ``key``, or None."""
        return self._get(self._key(_require_key(key)))

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` in the service under ``key``."""
        self._put(self._key(_require_key(key)), value)

    def delete(self, key: Key) -> None:
        """Remove ``key`` from the service."""
        self._delete(self._key(_require_key(key)))

    def query(self, query: Query) -> Cursor:
        """Refuse (``NotImplementedError``): a get/put/delete service cannot enumerate keys."""
        msg = (
            f"{type(self._service).__name__} offers only get/put/delete, so "
            f"{query!r} cannot be answered; query the store that holds the full data"
        )
        raise DatastoreNotImplementedError(msg)


class ShimDatastore(Datastore):
    """A datastore that adds behaviour in front of a child datastore.

    Shims store nothing themselves: every call goes to ``child_datastore``.  Subclass it and
    override any of the operations, for example::

        def get(self, key):
            value = self.child_datastore.get(key)
            return json.loads(value)
    """

    def __init__(self, datastore: Datastore) -> None:
        if not isinstance(datastore, Datastore):
            msg = f"{type(self).__name__} wraps a Datastore, not {type(datastore).__name__}"
            raise DatastoreTypeError(msg)
        self.child_datastore = datastore

    def get(self, key: Key) -> Any:
        """Return ``child_datastore.get(key)``."""
        return self.child_datastore.get(key)

    def put(self, key: Key, value: Any) -> None:
        """Call ``child_datastore.put(key, value)``."""
        self.child_datastore.put(key, value)

    def delete(self, key: Key) -> None:
        """Call ``child_datastore.delete(key)``."""
        self.child_datastore.delete(key)

    def contains(self, key: Key) -> bool:
        """Return ``child_datastore.contains(key)``."""
        return self.child_datastore.contains(key)

    def query(self, query: Query) -> Cursor:
        """Return ``child_datastore.query(query)``."""
        return self.child_datastore.query(query)

    def close(self) -> None:
        """Close the child datastore."""
        self.child_datastore.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.child_datastore!r})"


def scope_entries(datastore: Datastore, query: Query) -> Iterator[Entry]:
    """Yield every ``(key, value)`` of ``datastore`` in ``query``'s collection, unfiltered.

    Shims that change values (deserialising, following links) read the collection through
    this and evaluate the query themselves, so filters see the values users see.
    """
    return datastore.query(Query(query.key)).items()
