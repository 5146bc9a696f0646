"""Stored model objects by class name and id-or-alias: the ORM side of ``ObjectDatastore``.

Owns :class:`ModelObjectStore`, the implementation of the
:class:`claystore.datastore.objects.ObjectStore` port: it finds the model class a key names,
resolves an id or an alias (in the client's dataset) to an object of that class or a subclass
(registry lookups), and loads, stores, names and deletes objects through the client's object
context.  ``ObjectDatastore`` (key syntax, datastore verbs) stays in the datastore package,
which knows nothing of the ORM.

Created by :meth:`claystore.Client.object_store`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from claystore.datastore.query import Query
from claystore.errors import (
    AliasDoesNotExistError,
    DatastoreError,
    DatastoreTypeError,
    InvalidKeyError,
    QueryError,
)
from claystore.orm import aliases
from claystore.orm.context import ObjectContext
from claystore.orm.mapping import ModelInfo, find_model, iter_subclass_infos
from claystore.orm.model import persist
from claystore.orm.modelquery import query_objects
from claystore.orm.state import stored_state

if TYPE_CHECKING:
    from claystore.datastore.sqlcursor import SQLCursor
    from claystore.orm.loading import Loader

__all__ = ["ModelObjectStore"]


def _as_uuid(text: str) -> UUID | None:
    try:
        value = UUID(text)
    except ValueError:
        return None
    return value if str(value) == text.lower() else None


class ModelObjectStore:
    """The stored objects of one client context, by class name and id or alias."""

    def __init__(self, context: ObjectContext) -> None:
        self.context = context

    def __repr__(self) -> str:
        return f"<ModelObjectStore {self.context!r}>"

    @staticmethod
    def _model(class_name: str, ident: str) -> ModelInfo:
        try:
            return find_model(class_name)
        except QueryError as exc:
            msg = f"/{class_name}:{ident}: {exc}"
            raise InvalidKeyError(msg) from None

    def _resolve(self, loader: Loader, info: ModelInfo, ident: str) -> UUID | None:
        """The id of the object of ``info``'s class (or a subclass) that ``ident`` names (on
        any backend; aliases are in the metadata database, ``loader``'s)."""
        conn = loader.conn
        tables = {sub.tablename for sub in iter_subclass_infos(info)}
        dataset = self.context.dataset

        def candidates() -> Iterator[UUID]:
            as_id = _as_uuid(ident)
            if as_id is not None:
                yield as_id
            with contextlib.suppress(AliasDoesNotExistError):  # then an alias (even id-like)
                yield aliases.lookup(conn, dataset, ident)

        for object_id in candidates():
            found = loader.homes([object_id]).get(object_id)
            if found is not None and found[1] in tables:
                return object_id
        return None

    def get_object(self, class_name: str, ident: str) -> Any:
        """The object ``ident`` names, or None."""
        info = self._model(class_name, ident)
        with self.context.loading() as loader:
            object_id = self._resolve(loader, info, ident)
            if object_id is None:
                return None
            return loader.objects([object_id]).get(object_id)

    def has_object(self, class_name: str, ident: str) -> bool:
        """Whether ``ident`` names a stored object (registry lookups only)."""
        info = self._model(class_name, ident)
        with self.context.loading() as loader:
            return self._resolve(loader, info, ident) is not None

    def put_object(self, class_name: str, ident: str, value: Any) -> None:
        """Store ``value`` (recursively, if needed) and give it the alias ``ident``; an alias
        that named another object moves to ``value``.  One transaction."""
        info = self._model(class_name, ident)
        if not isinstance(value, info.cls):
            msg = (
                f"/{class_name}:{ident} names a {info.cls.__name__}; "
                f"cannot put a {type(value).__name__} there"
            )
            raise DatastoreTypeError(msg)
        context = self.context
        with context.transaction() as tx:
            state = stored_state(value) if value.is_registered else None  # type: ignore[attr-defined]
            if state is not None:
                if state.context is not context:
                    msg = f"{value!r} belongs to another client; put it through that client's store"
                    raise DatastoreError(msg)
                if ident == str(state.object_id):
                    return
            try:
                current = aliases.lookup(tx.conn, context.dataset, ident)
            except AliasDoesNotExistError:
                current = None
            if state is not None and current == state.object_id:
                return
            if current is not None:  # the alias moves to this object
                aliases.delete(tx.conn, context.dataset, ident)
            if state is None:
                persist(context, [value], alias=ident)
            else:
                aliases.add(tx.conn, context.dataset, ident, state.object_id)

    def delete_object(self, class_name: str, ident: str) -> None:
        """Delete the object ``ident`` names (nothing if there is none)."""
        with self.context.transaction():
            obj = self.get_object(class_name, ident)
            if obj is not None:
                obj.dc_delete()

    def query_objects(self, query: Query) -> SQLCursor:
        """Run ``query`` (key ``/<Class>``) as one SELECT; a lazy cursor of objects."""
        return query_objects(self.context, query)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """One transaction around several operations."""
        return self.context.transaction()
