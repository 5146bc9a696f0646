"""Shims: datastores that change keys or add behaviour in front of a child datastore.

This module owns :class:`KeyTransformDatastore` and its key-rewriting subclasses
(:class:`LowercaseKeyDatastore`, :class:`NamespaceDatastore`, :class:`NestedPathDatastore`),
:class:`SymlinkDatastore`, :class:`LoggingDatastore` and :class:`CacheShimDatastore`.
Applications stack them over any :class:`~claystore.datastore.basic.Datastore`; each one
calls only its child (and, for the cache shim, its cache).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from claystore.datastore.basic import Datastore, ShimDatastore, scope_entries
from claystore.datastore.key import Key
from claystore.datastore.query import Cursor, Entry, Query
from claystore.errors import (
    ConfigurationError,
    DatastoreNotImplementedError,
    DatastoreTypeError,
    InvalidKeyError,
    SymlinkCycleError,
)

__all__ = [
    "CacheShimDatastore",
    "KeyTransformDatastore",
    "LoggingDatastore",
    "LowercaseKeyDatastore",
    "NamespaceDatastore",
    "NestedPathDatastore",
    "SymlinkDatastore",
]


def _identity(key: Key) -> Key:
    return key


class KeyTransformDatastore(ShimDatastore):
    """A shim that rewrites every incoming key with ``keytransform`` before the child sees it.

    >>> ds = DictDatastore()
    >>> kt = KeyTransformDatastore(ds, keytransform=lambda key: key.reverse)
    >>> ds.put(Key('/a/b/c'), 'abc')
    >>> kt.get(Key('/c/b/a'))
    'abc'

    A query's collection key is rewritten too; results keep the child's keys.
    """

    def __init__(
        self, datastore: Datastore, keytransform: Callable[[Key], Key] | None = None
    ) -> None:
        super().__init__(datastore)
        self.keytransform: Callable[[Key], Key] = keytransform or _identity

    def _transform(self, key: Key) -> Key:
        return self.keytransform(key)

    def get(self, key: Key) -> Any:
        """Return the object named by ``keytransform(key)``."""
        return self.child_datastore.get(self._transform(key))

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` under ``keytransform(key)``."""
        self.child_datastore.put(self._transform(key), value)

    def delete(self, key: Key) -> None:
        """Remove the object named by ``keytransform(key)``."""
        self.child_datastore.delete(self._transform(key))

    def contains(self, key: Key) -> bool:
        """Return whether ``keytransform(key)`` is in the child datastore."""
        return self.child_datastore.contains(self._transform(key))

    def query(self, query: Query) -> Cursor:
        """Query the child for the collection ``keytransform(query.key)``."""
        rewritten = query.copy()
        rewritten.key = self._transform(query.key)
        return self.child_datastore.query(rewritten)


class LowercaseKeyDatastore(KeyTransformDatastore):
    """A shim that lowercases every incoming key, so keys become case-insensitive."""

    def __init__(self, datastore: Datastore) -> None:
        super().__init__(datastore, keytransform=self.lowercaseKey)

    @classmethod
    def lowercaseKey(cls, key: Key) -> Key:
        """Return ``key`` lowercased."""
        return Key(str(key).lower())


class NamespaceDatastore(KeyTransformDatastore):
    """A shim that puts every incoming key under ``namespace``.

    ``NamespaceDatastore('/a/b', ds).get(Key('/c/d'))`` reads ``/a/b/c/d`` from ``ds``.
    """

    def __init__(self, namespace: Key | str, datastore: Datastore) -> None:
        self.namespace = Key(namespace)
        super().__init__(datastore, keytransform=self.namespaceKey)

    def namespaceKey(self, key: Key) -> Key:
        """Return ``namespace.child(key)``."""
        return self.namespace.child(key)


class NestedPathDatastore(KeyTransformDatastore):
    """A shim that spreads keys over nested namespaces built from their names, like git objects.

    With ``depth=3, length=2``, ``Key('/abcdefghijkl')`` is stored as
    ``Key('/ab/cd/ef/abcdefghijkl')``.  Names shorter than ``depth * length`` are repeated
    until long enough (``abc`` goes to ``/ab/ca/bc/abc``).  ``keyfn`` picks the text to nest
    by (default: the key's name).  Objects of one collection land in different nested
    collections, so :meth:`query` raises
    :class:`~claystore.errors.DatastoreNotImplementedError` (a ``NotImplementedError``).
    """

    def __init__(
        self,
        datastore: Datastore,
        depth: int = 3,
        length: int = 2,
        keyfn: Callable[[Key], str] | None = None,
    ) -> None:
        if depth < 1 or length < 1:
            msg = f"NestedPathDatastore needs depth >= 1 and length >= 1, not {depth}, {length}"
            raise ConfigurationError(msg)
        self.nest_depth = depth
        self.nest_length = length
        self.nest_keyfn: Callable[[Key], str] = keyfn or (lambda key: key.name)
        super().__init__(datastore, keytransform=self.nestKey)

    def nestKey(self, key: Key) -> Key:
        """Return ``key`` under its nested path: ``/ab/cd/ef/abcdefghijkl``."""
        nest = self.nest_keyfn(key)
        if not nest:
            msg = f"{key!r} has an empty name: NestedPathDatastore cannot nest it"
            raise InvalidKeyError(msg)
        needed = self.nest_depth * self.nest_length
        nest *= math.ceil(needed / len(nest))
        return Key(self.nestedPath(nest, self.nest_depth, self.nest_length)).child(key)

    @staticmethod
    def nestedPath(path: str, depth: int, length: int) -> str:
        """Return the first ``depth`` pieces of ``length`` characters of ``path``, '/'-joined.

        ``nestedPath('abcdefghijkl', 3, 2) == 'ab/cd/ef'`` and
        ``nestedPath('abcdefghijkl', 3, 4) == 'abcd/efgh/ijkl'``.
        """
        pieces = [path[start : start + length] for start in range(0, len(path), length)]
        return "/".join(pieces[:depth])

    #: The same function, under the name the original documentation's examples use.
    nested_path = nestedPath

    def query(self, query: Query) -> Cursor:
        """Refuse (``NotImplementedError``): nesting spreads one collection over many."""
        msg = (
            f"NestedPathDatastore cannot answer {query!r}: nesting spreads one collection "
            "over many; query the child datastore per nested collection instead"
        )
        raise DatastoreNotImplementedError(msg)


class SymlinkDatastore(ShimDatastore):
    """A shim whose keys can be symbolic links to other keys.

    ``link(a, b)`` makes ``b`` a link to ``a``: reading or writing ``b`` reads or writes ``a``
    (chains of links are followed).  Deleting ``b`` removes the link only.  A link is stored
    as the string ``'<source>/datastore_link'``; putting such a string stores it as it is (it
    makes or replaces a link, as in 0.3.6, and never writes through an existing link), so
    symlink shims stack.  A chain that comes back to a key it already visited raises
    :class:`~claystore.errors.SymlinkCycleError`, naming the chain.
    """

    #: Last namespace of a stored link value.
    sentinel: ClassVar[str] = "datastore_link"

    def _link_value(self, source_key: Key) -> str:
        return str(source_key.child(self.sentinel))

    def _link_target(self, value: Any) -> Key | None:
        """Return the key ``value`` links to, or None if ``value`` is not a link."""
        suffix = "/" + self.sentinel
        if isinstance(value, str) and value.startswith("/") and value.endswith(suffix):
            return Key(value[: -len(suffix)])
        return None

    def _resolve(self, key: Key) -> tuple[Key, Any]:
        """Follow links from ``key``; return the final key and its value."""
        chain = [key]
        value = self.child_datastore.get(key)
        target = self._link_target(value)
        while target is not None:
            if target in chain:
                path = " -> ".join(str(step) for step in [*chain, target])
                msg = f"symlink cycle: {path}; delete or relink one of these keys"
                raise SymlinkCycleError(msg)
            chain.append(target)
            key, value = target, self.child_datastore.get(target)
            target = self._link_target(value)
        return key, value

    def link(self, source_key: Key, target_key: Key) -> None:
        """Make ``target_key`` a link to ``source_key`` (refused if it would make a cycle)."""
        self._refuse_cycle(source_key, target_key)
        self.child_datastore.put(target_key, self._link_value(source_key))

    def _refuse_cycle(self, source_key: Key, target_key: Key) -> None:
        """Raise SymlinkCycleError if linking ``target_key`` to ``source_key`` makes a cycle."""
        if source_key == target_key:
            msg = f"symlink cycle: {target_key} -> {source_key}; a key cannot link to itself"
            raise SymlinkCycleError(msg)
        chain = [source_key]
        target = self._link_target(self.child_datastore.get(source_key))
        while target is not None:
            if target == target_key or target in chain:
                path = " -> ".join(str(step) for step in [target_key, *chain, target])
                msg = f"symlink cycle: {path}; link({source_key}, {target_key}) refused"
                raise SymlinkCycleError(msg)
            chain.append(target)
            target = self._link_target(self.child_datastore.get(target))

    def get(self, key: Key) -> Any:
        """Return the object named by ``key``, following links (None if a link dangles)."""
        return self._resolve(key)[1]

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` under ``key``, or under the key its links lead to; a link value is
        stored under ``key`` itself (refused if it would make a cycle)."""
        source = self._link_target(value)
        if source is not None:
            self._refuse_cycle(source, key)
            self.child_datastore.put(key, value)
            return
        final_key, _ = self._resolve(key)
        self.child_datastore.put(final_key, value)

    def contains(self, key: Key) -> bool:
        """Return whether ``key`` names an object, following links."""
        return self.get(key) is not None

    def query(self, query: Query) -> Cursor:
        """Evaluate ``query`` over the collection with every link replaced by its target."""
        return query.evaluate(self._followed(scope_entries(self.child_datastore, query)))

    def _followed(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        for key, stored in entries:
            value = stored
            if self._link_target(stored) is not None and key is not None:
                value = self._resolve(key)[1]
            if value is not None:
                yield key, value


class LoggingDatastore(ShimDatastore):
    """A shim that logs every access (with :mod:`logging`) before passing it on.

    Records go to ``logger`` (default: the ``claystore.datastore`` logger) at ``level``; as in
    0.3.6, ``get`` and ``put`` also log the value at ``DEBUG``.
    """

    def __init__(
        self,
        child_datastore: Datastore,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
    ) -> None:
        super().__init__(child_datastore)
        self.logger = logger or logging.getLogger("claystore.datastore")
        self.level = level

    def _log(self, operation: str, subject: Any) -> None:
        self.logger.log(self.level, "%r: %s %s", self.child_datastore, operation, subject)

    def _log_value(self, operation: str, key: Key, value: Any) -> None:
        self.logger.debug("%r: %s %s value %r", self.child_datastore, operation, key, value)

    def get(self, key: Key) -> Any:
        """Log, then return the child's object for ``key`` (logged at DEBUG)."""
        self._log("get", key)
        value = super().get(key)
        self._log_value("get", key, value)
        return value

    def put(self, key: Key, value: Any) -> None:
        """Log (the value at DEBUG), then store ``value`` under ``key`` in the child."""
        self._log("put", key)
        self._log_value("put", key, value)
        super().put(key, value)

    def delete(self, key: Key) -> None:
        """Log, then delete ``key`` in the child."""
        self._log("delete", key)
        super().delete(key)

    def contains(self, key: Key) -> bool:
        """Log, then ask the child whether it holds ``key``."""
        self._log("contains", key)
        return super().contains(key)

    def query(self, query: Query) -> Cursor:
        """Log, then return the child's cursor for ``query``."""
        self._log("query", query)
        return super().query(query)


class CacheShimDatastore(ShimDatastore):
    """A shim that keeps a cache datastore in front of its child: ``CacheShimDatastore(ds,
    cache=cache)``.

    As in 0.3.6: ``get`` reads the cache first, then the child (a miss does not fill the
    cache); ``put`` and ``delete`` write both; ``contains`` asks the cache, then the child;
    ``query`` goes to the child (the complete store).  ``cache_datastore=`` is accepted as
    another name for ``cache=``; the cache is kept as :attr:`cache_datastore`.
    """

    def __init__(
        self,
        datastore: Datastore,
        *,
        cache: Datastore | None = None,
        cache_datastore: Datastore | None = None,
    ) -> None:
        if cache is not None and cache_datastore is not None:
            msg = "CacheShimDatastore takes cache= or cache_datastore= (the same), not both"
            raise ConfigurationError(msg)
        chosen = cache if cache is not None else cache_datastore
        if not isinstance(chosen, Datastore):
            msg = (
                f"CacheShimDatastore's cache must be a Datastore, not "
                f"{type(chosen).__name__} {chosen!r}: pass cache=DictDatastore() or another store"
            )
            raise DatastoreTypeError(msg)
        super().__init__(datastore)
        self.cache_datastore: Datastore = chosen

    def get(self, key: Key) -> Any:
        """Return the cached object, else the child's (a miss leaves the cache as it is)."""
        value = self.cache_datastore.get(key)
        return value if value is not None else self.child_datastore.get(key)

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` in the cache and in the child."""
        self.cache_datastore.put(key, value)
        self.child_datastore.put(key, value)

    def delete(self, key: Key) -> None:
        """Remove ``key`` from the cache and from the child."""
        self.cache_datastore.delete(key)
        self.child_datastore.delete(key)

    def contains(self, key: Key) -> bool:
        """Return whether the cache or the child holds ``key``."""
        return self.cache_datastore.contains(key) or self.child_datastore.contains(key)

    def close(self) -> None:
        """Close the cache and the child."""
        self.cache_datastore.close()
        self.child_datastore.close()
