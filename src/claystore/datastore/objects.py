"""The datastore API over stored model objects: :class:`ObjectDatastore`.

Owns the mapping between datastore keys and model objects: ``Key("/Employee:<id or alias>")``
names the ``Employee`` (or subclass instance) with that id, or with that alias in the client's
dataset.  ``get``, ``put`` (store the object and give it the alias), ``delete``,
``contains`` and ``query`` (one SELECT, :mod:`claystore.orm.query`) go through the client's
object context, so shims and collections compose with stored objects:
``TieredDatastore([DictDatastore(), ObjectDatastore(client)])`` is a cache in front of them.

Called by applications.  Imports :mod:`claystore.orm` when first used (the ORM imports this
package, so importing it at module level would be circular).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa

from claystore.datastore.basic import BatchOperation, Datastore
from claystore.datastore.key import Key
from claystore.datastore.query import Query
from claystore.datastore.sqlcursor import SQLCursor
from claystore.errors import (
    AliasDoesNotExistError,
    DatastoreError,
    DatastoreTypeError,
    InvalidKeyError,
    QueryError,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.orm.context import ObjectContext
    from claystore.orm.mapping import ModelInfo

__all__ = ["ObjectDatastore"]


def _as_uuid(text: str) -> UUID | None:
    try:
        value = UUID(text)
    except ValueError:
        return None
    return value if str(value) == text.lower() else None


class ObjectDatastore(Datastore):
    """Stored model objects, seen through the datastore API.

    ``ObjectDatastore(client)`` takes a started :class:`claystore.Client` (or its object
    context).  Keys are ``Key("/<Class>:<id or alias>")``; the class is a model class's
    ``__name__`` and includes its subclasses.

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

    def _context(self) -> ObjectContext:
        from claystore.orm.context import ObjectContext  # noqa: PLC0415 - see module docstring

        if isinstance(self.client, ObjectContext):
            return self.client
        if not hasattr(type(self.client), "context"):
            msg = f"ObjectDatastore needs a claystore Client, not {type(self.client).__name__}"
            raise DatastoreTypeError(msg)
        context: ObjectContext = self.client.context  # a started Client, or it raises
        return context

    @staticmethod
    def _parse(key: Any) -> tuple[ModelInfo, str]:
        """The class and the id-or-alias a key names."""
        from claystore.orm.modelcompiler import find_model  # noqa: PLC0415 - see module docstring

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
        try:
            return find_model(class_name), ident
        except QueryError as exc:
            msg = f"{key}: {exc}"
            raise InvalidKeyError(msg) from None

    @staticmethod
    def _resolve(
        conn: Connection, context: ObjectContext, info: ModelInfo, ident: str
    ) -> UUID | None:
        """The id of the object of ``info``'s class (or a subclass) that ``ident`` names."""
        from claystore.orm import aliases  # noqa: PLC0415 - see module docstring
        from claystore.orm.mapping import iter_subclass_infos  # noqa: PLC0415
        from claystore.orm.system import dc_object  # noqa: PLC0415

        tables = {sub.tablename for sub in iter_subclass_infos(info)}

        def candidates() -> Iterator[UUID]:
            as_id = _as_uuid(ident)
            if as_id is not None:
                yield as_id
            with contextlib.suppress(AliasDoesNotExistError):  # then an alias (even id-like)
                yield aliases.lookup(conn, context.dataset, ident)

        for object_id in candidates():
            statement = sa.select(dc_object.c.class_name).where(dc_object.c.id == object_id)
            if conn.execute(statement).scalar() in tables:
                return object_id
        return None

    def get(self, key: Key) -> Any:
        """The object ``key`` names, or None."""
        from claystore.orm import loading  # noqa: PLC0415 - see module docstring

        info, ident = self._parse(key)
        context = self._context()
        with context.connection() as conn:
            object_id = self._resolve(conn, context, info, ident)
            if object_id is None:
                return None
            return loading.load_objects(conn, context, [object_id]).get(object_id)

    def contains(self, key: Key) -> bool:
        """Whether ``key`` names a stored object (registry lookups only, nothing loaded)."""
        info, ident = self._parse(key)
        context = self._context()
        with context.connection() as conn:
            return self._resolve(conn, context, info, ident) is not None

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` (recursively, if it is not stored yet) under the key's alias, in one
        transaction; a key with the object's own id only stores it."""
        from claystore.orm import aliases  # noqa: PLC0415 - see module docstring
        from claystore.orm.state import stored_state  # noqa: PLC0415

        info, ident = self._parse(key)
        if not isinstance(value, info.cls):
            msg = f"{key} names a {info.cls.__name__}; cannot put a {type(value).__name__} there"
            raise DatastoreTypeError(msg)
        context = self._context()
        with context.transaction() as tx:
            obj: Any = value
            if not obj.is_registered:
                tx.persist([obj])
            state = stored_state(obj)
            if state.context is not context:
                msg = f"{value!r} belongs to another client; put it through that client's store"
                raise DatastoreError(msg)
            if ident == str(state.object_id):
                return
            try:
                current = aliases.lookup(tx.conn, context.dataset, ident)
            except AliasDoesNotExistError:
                current = None
            if current == state.object_id:
                return
            if current is not None:
                aliases.delete(tx.conn, context.dataset, ident)
            aliases.add(tx.conn, context.dataset, ident, state.object_id)

    def delete(self, key: Key) -> None:
        """Delete the object ``key`` names (no error if there is none)."""
        context = self._context()
        with context.transaction():
            obj = self.get(key)
            if obj is not None:
                obj.dc_delete()

    def query(self, query: Query) -> SQLCursor:
        """Run ``query`` (key ``/<Class>``) as one SELECT; a lazy cursor of objects."""
        from claystore.orm.query import query_objects  # noqa: PLC0415 - see module docstring

        return query_objects(self._context(), query)

    def commit_batch(self, operations: list[BatchOperation]) -> None:
        """Apply batched puts and deletes in one transaction."""
        with self._context().transaction():
            super().commit_batch(operations)
