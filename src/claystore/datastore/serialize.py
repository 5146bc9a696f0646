"""Serializers and the shim that applies them on the way into and out of a datastore.

This module owns the serializer protocol (:class:`Serializer`: ``dumps``/``loads``, the
``pickle``/``json`` interface), the ready-made serializers (:class:`NonSerializer`,
:class:`prettyjson`, :class:`Stack`, :class:`map_serializer`), the generators
:func:`serialized_gen` / :func:`deserialized_gen`, and :class:`SerializerShimDatastore` with
its shortcut :func:`shim`.  Applications wrap a datastore with it::

    ds = serialize.shim(FileSystemDatastore('/tmp/data'))   # json by default
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Protocol

from claystore.datastore.basic import Datastore, ShimDatastore, scope_entries
from claystore.datastore.key import Key
from claystore.datastore.query import Cursor, Entry, Query
from claystore.errors import ConfigurationError, DatastoreTypeError

__all__ = [
    "NonSerializer",
    "Serializer",
    "SerializerLike",
    "SerializerShimDatastore",
    "Stack",
    "default_serializer",
    "deserialized_gen",
    "map_serializer",
    "prettyjson",
    "serialized_gen",
    "shim",
]


class SerializerLike(Protocol):
    """Anything with ``dumps`` and ``loads``: a :class:`Serializer`, ``json``, ``pickle``."""

    def dumps(self, value: Any, /) -> Any:
        """Return ``value`` serialized."""
        ...

    def loads(self, value: Any, /) -> Any:
        """Return ``value`` deserialized."""
        ...


#: The serializer :class:`SerializerShimDatastore` uses when given none (as in 0.3.6).
default_serializer: SerializerLike = json


class Serializer:
    """The serializing protocol: ``dumps(value)`` and ``loads(data)`` (override both)."""

    @staticmethod
    def implements_serializer_interface(cls: object) -> bool:  # noqa: PLW0211 - 0.3.6's name
        """Return whether ``cls`` (a class, module or object) has callable ``loads`` and
        ``dumps``."""
        return callable(getattr(cls, "loads", None)) and callable(getattr(cls, "dumps", None))

    @classmethod
    def dumps(cls, value: Any) -> Any:
        """Return ``value`` serialized."""
        raise NotImplementedError

    @classmethod
    def loads(cls, value: Any) -> Any:
        """Return ``value`` deserialized."""
        raise NotImplementedError


class NonSerializer(Serializer):
    """Serializes nothing: for values that are already strings (or already serialized)."""

    @classmethod
    def dumps(cls, value: Any) -> Any:
        """Return ``value`` unchanged."""
        return value

    @classmethod
    def loads(cls, value: Any) -> Any:
        """Return ``value`` unchanged."""
        return value


class prettyjson(Serializer):
    """JSON with sorted keys and indentation: readable, diff-friendly stored values.

    The text is 0.3.6's, byte for byte: indent 1, ``", "`` between items (so lines end in a
    space), non-ASCII characters as ASCII escapes.
    """

    @classmethod
    def dumps(cls, value: Any) -> str:
        """Return ``value`` as pretty-printed JSON."""
        return json.dumps(value, sort_keys=True, indent=1, separators=(", ", ": "))

    @classmethod
    def loads(cls, value: Any) -> Any:
        """Return the value of the JSON text ``value``."""
        return json.loads(value)


class Stack(list[SerializerLike]):
    """A list of serializers applied in sequence: ``dumps`` first to last, ``loads`` back.

    ``Stack([map_serializer, json])`` wraps non-mapping values, then writes JSON.
    It follows the :class:`Serializer` protocol.
    """

    def dumps(self, value: Any) -> Any:
        """Return ``value`` serialized by every serializer, first to last."""
        for serializer in self:
            value = serializer.dumps(value)
        return value

    def loads(self, value: Any) -> Any:
        """Return ``value`` deserialized by every serializer, last to first."""
        for serializer in reversed(self):
            value = serializer.loads(value)
        return value


class map_serializer(Serializer):
    """Makes every value a mapping: non-mappings are wrapped as ``{'@wrapped': value}``.

    Useful before serializers that only store documents (BSON).
    """

    #: The key that wraps a non-mapping value.
    sentinel: ClassVar[str] = "@wrapped"

    @classmethod
    def dumps(cls, value: Any) -> Any:
        """Return ``value`` if it is a mapping, else ``{sentinel: value}``."""
        return value if isinstance(value, Mapping) else {cls.sentinel: value}

    @classmethod
    def loads(cls, value: Any) -> Any:
        """Return the wrapped value of ``{sentinel: value}``, else ``value`` itself."""
        if isinstance(value, Mapping) and len(value) == 1 and cls.sentinel in value:
            return value[cls.sentinel]
        return value


def serialized_gen(serializer: SerializerLike, iterable: Iterable[Any]) -> Iterator[Any]:
    """Yield each item of ``iterable`` serialized, lazily."""
    for item in iterable:
        yield serializer.dumps(item)


def deserialized_gen(serializer: SerializerLike, iterable: Iterable[Any]) -> Iterator[Any]:
    """Yield each item of ``iterable`` deserialized, lazily."""
    for item in iterable:
        yield serializer.loads(item)


class SerializerShimDatastore(ShimDatastore):
    """A shim that serializes values on ``put`` and deserializes them on ``get`` and ``query``.

    ``serializer`` is anything with ``dumps``/``loads`` (default: the ``json`` module).  As in
    0.3.6 it is tried at construction: ``{'value': repr(shim)}`` must come back equal from
    ``loads(dumps(...))``, else :class:`~claystore.errors.ConfigurationError` (nothing is
    written).  Queries read the collection from the child, deserialize each value lazily, and
    evaluate filters and orders on the deserialized values -- so filters work on fields even
    when the child stores text.
    """

    #: The default serializer.
    serializer: SerializerLike = default_serializer

    def __init__(self, datastore: Datastore, serializer: SerializerLike | None = None) -> None:
        super().__init__(datastore)
        if serializer is not None:
            self.serializer = serializer
        self._check_serializer()

    def _check_serializer(self) -> None:
        """Refuse a serializer without dumps/loads, or one that does not round-trip a dict."""
        serializer = self.serializer
        if not Serializer.implements_serializer_interface(serializer):
            msg = (
                f"{type(self).__name__} needs a serializer with callable dumps and loads "
                f"(json, pickle, serialize.prettyjson ...), not {serializer!r}"
            )
            raise DatastoreTypeError(msg)
        test = {"value": repr(self)}
        try:
            back = serializer.loads(serializer.dumps(test))
        except Exception as exc:
            msg = f"serializer {serializer!r} fails on {test!r} ({exc!r}): fix or replace it"
            raise ConfigurationError(msg) from exc
        if back != test:
            msg = (
                f"serializer {serializer!r} does not round-trip: loads(dumps({test!r})) gave "
                f"{back!r}; fix or replace it"
            )
            raise ConfigurationError(msg)

    def serializedValue(self, value: Any) -> Any:
        """Return ``value`` serialized (None stays None)."""
        return None if value is None else self.serializer.dumps(value)

    def deserializedValue(self, value: Any) -> Any:
        """Return ``value`` deserialized (None stays None)."""
        return None if value is None else self.serializer.loads(value)

    def get(self, key: Key) -> Any:
        """Return the child's value for ``key``, deserialized (None if missing)."""
        return self.deserializedValue(self.child_datastore.get(key))

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` serialized in the child."""
        self.child_datastore.put(key, self.serializedValue(value))

    def query(self, query: Query) -> Cursor:
        """Evaluate ``query`` over the child's collection, deserializing values lazily."""
        return query.evaluate(self._deserialized(scope_entries(self.child_datastore, query)))

    def _deserialized(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        for key, value in entries:
            yield key, self.deserializedValue(value)


def shim(datastore: Datastore, serializer: SerializerLike | None = None) -> SerializerShimDatastore:
    """Return ``datastore`` wrapped in a :class:`SerializerShimDatastore`.

    ``my_store = serialize.shim(my_store, json)``
    """
    return SerializerShimDatastore(datastore, serializer)
