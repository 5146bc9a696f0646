"""The datastore API over stored model objects: :class:`ObjectDatastore`, and the port it uses.

Owns the key syntax of stored objects — ``Key("/Employee:<id or alias>")`` names the
``Employee`` (or subclass instance) with that id, or with that alias in the client's dataset —
and the datastore verbs over it: ``get``, ``put`` (store the object and give it the alias),
``delete``, ``contains``, ``query`` and batches.  So shims and collections compose with stored
objects: ``TieredDatastore([DictDatastore(), ObjectDatastore(client)])`` is a cache in front of
them.

The objects themselves are reached through :class:`ObjectStore`, a port this module defines
and the ORM implements (:class:`claystore.orm.objectstore.ModelObjectStore`, returned by a
started :meth:`claystore.Client.object_store`).  This package imports nothing from the ORM.

Called by applications.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from claystore.datastore.basic import BatchOperation, Datastore
from claystore.datastore.key import Key
from claystore.datastore.query import Cursor, Query
from claystore.errors import DatastoreTypeError, InvalidKeyError

__all__ = ["ObjectDatastore", "ObjectStore"]


class ObjectStore(Protocol):
    """Stored objects by class name and id-or-alias: what :class:`ObjectDatastore` needs from
    a claystore client.  ``class_name`` is a model class's ``__name__`` (its subclasses
    included); an unknown one raises :class:`~claystore.errors.InvalidKeyError`."""

    def get_object(self, class_name: str, ident: str) -> Any:
        """The object ``ident`` names, or None."""

    def has_object(self, class_name: str, ident: str) -> bool:
        """Whether ``ident`` names a stored object (nothing loaded)."""

    def put_object(self, class_name: str, ident: str, value: Any) -> None:
        """Store ``value`` if needed and give it the alias ``ident`` (unless it is its id)."""

    def delete_object(self, class_name: str, ident: str) -> None:
        """Delete the object ``ident`` names (nothing if there is none)."""

    def query_objects(self, query: Query) -> Cursor:
        """Run a query whose key names a class (``/Employee``) as SQL; a lazy cursor."""

    def transaction(self) -> AbstractContextManager[Any]:
        """One transaction around several operations."""


class ObjectDatastore(Datastore):
    """Stored model objects, seen through the datastore API.

    ``ObjectDatastore(client)`` takes a :class:`claystore.Client`, started by the time the
    store is used (each operation asks the client for its :class:`ObjectStore`, so the
    datastore follows the client across restarts).  Keys are ``Key("/<Class>:<id or
    alias>")``; the class is a model class's ``__name__`` and includes its subclasses.

    - ``get(key)``: the object with that id (or alias, in the client's dataset), or None.
    - ``put(key, obj)``: stores ``obj`` (if it is not stored yet) and gives it the alias; an
      alias that named another object moves to ``obj`` (the other object stays stored).
    - ``delete(key)``: deletes the object the key names (``dc_delete``).
    - ``query(Query(Key("/Employee")) ...)``: one SELECT; results are keyed ``/Employee:<id>``.

    ``batch()`` applies its writes in one transaction.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"<ObjectDatastore {self.client!r}>"

    def _store(self) -> ObjectStore:
        opener = getattr(self.client, "object_store", None)
        if not callable(opener):
            msg = f"ObjectDatastore needs a claystore Client, not {type(self.client).__name__}"
            raise DatastoreTypeError(msg)
        store: ObjectStore = opener()  # a stopped client raises ClientNotStartedError
        return store

    @staticmethod
    def _parse(key: Any) -> tuple[str, str]:
        """The class name and the id-or-alias a key names."""
        if not isinstance(key, Key):
            msg = f"datastore keys must be Key objects, not {type(key).__name__}: use Key({key!r})"
            raise DatastoreTypeError(msg)
        parts = key.list
        class_name, colon, ident = parts[0].partition(":") if len(parts) == 1 else ("", "", "")
        if not (class_name and colon and ident):
            msg = (
                f"ObjectDatastore keys name one object, Key('/<Class>:<id or alias>'), "
                f"not {str(key)!r}"
            )
            raise InvalidKeyError(msg)
        return class_name, ident

    def get(self, key: Key) -> Any:
        """The object ``key`` names, or None."""
        class_name, ident = self._parse(key)
        return self._store().get_object(class_name, ident)

    def contains(self, key: Key) -> bool:
        """Whether ``key`` names a stored object (registry lookups only, nothing loaded)."""
        class_name, ident = self._parse(key)
        return self._store().has_object(class_name, ident)

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` (recursively, if it is not stored yet) under the key's alias, in one
        transaction; a key with the object's own id only stores it."""
        class_name, ident = self._parse(key)
        self._store().put_object(class_name, ident, value)

    def delete(self, key: Key) -> None:
        """Delete the object ``key`` names (no error if there is none)."""
        class_name, ident = self._parse(key)
        self._store().delete_object(class_name, ident)

    def query(self, query: Query) -> Cursor:
        """Run ``query`` (key ``/<Class>``) as one SELECT; a lazy cursor of objects."""
        return self._store().query_objects(query)

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        """Apply batched puts and deletes in one transaction."""
        with self._store().transaction():
            super().commit_batch(operations)
