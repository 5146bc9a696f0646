"""Directory shims: datastores that keep lists of keys ("directories") next to objects.

This module owns :class:`DirectoryDatastore`, the manual directory API of datastore 0.3.6
(``directory``, ``directoryAdd``, ``directoryRead``, ``directoryRemove``), and
:class:`DirectoryTreeDatastore`, the automatic one where every put and delete updates the
directory of the key's parent (kept at ``<parent>:directory``, as 0.3.6 keeps it).  A
directory is stored in the child datastore as a plain list of key strings, so it survives
any serializer.  Applications stack these over any datastore; they call only their child.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from claystore.datastore.basic import ShimDatastore
from claystore.datastore.key import Key
from claystore.datastore.query import Cursor, Entry, Query
from claystore.errors import DatastoreError

__all__ = ["DirectoryDatastore", "DirectoryTreeDatastore"]


def _entries_of(value: Any, dir_key: Key) -> list[str] | None:
    """Return the directory list stored as ``value`` (None if nothing is stored)."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(entry, str) for entry in value):
        return list(value)
    msg = f"{dir_key} holds a {type(value).__name__}, not a directory (a list of key strings)"
    raise DatastoreError(msg)


class _DirectoryShim(ShimDatastore):
    """Reads and writes directory lists in the child datastore."""

    def _read_directory(self, dir_key: Key) -> list[str] | None:
        return _entries_of(self.child_datastore.get(dir_key), dir_key)

    def _entry_values(self, entries: Iterable[str]) -> Iterator[Entry]:
        """Yield ``(key, value)`` for each entry, in key order, skipping deleted objects."""
        for text in sorted(set(entries)):
            key = Key(text)
            value = self.child_datastore.get(key)
            if value is not None:
                yield key, value


class DirectoryDatastore(_DirectoryShim):
    """A shim with directories managed by hand (datastore 0.3.6).

    >>> ds = DirectoryDatastore(DictDatastore())
    >>> ds.directory(Key('/foo'))
    >>> ds.directoryAdd(Key('/foo'), Key('/foo/bar'))
    >>> list(ds.directoryRead(Key('/foo')))
    [Key('/foo/bar')]

    A query whose key is a directory returns the objects its entries name; any other query
    goes to the child datastore.
    """

    def directory(self, dir_key: Key) -> None:
        """Create an empty directory at ``dir_key`` unless one is there already.

        Raises :class:`~claystore.errors.DatastoreError` if ``dir_key`` holds another value.
        """
        if self._read_directory(dir_key) is None:
            self.child_datastore.put(dir_key, [])

    def directoryRead(self, dir_key: Key) -> Iterator[Key]:
        """Yield the keys in the directory at ``dir_key`` (nothing if there is none)."""
        for text in self._read_directory(dir_key) or []:
            yield Key(text)

    def directoryAdd(self, dir_key: Key, key: Key) -> None:
        """Add ``key`` to the directory at ``dir_key``, creating the directory if needed."""
        entries = self._read_directory(dir_key) or []
        if str(key) not in entries:
            entries.append(str(key))
            self.child_datastore.put(dir_key, entries)

    def directoryRemove(self, dir_key: Key, key: Key) -> None:
        """Remove ``key`` from the directory at ``dir_key`` (no-op if either is missing)."""
        entries = self._read_directory(dir_key)
        if entries is not None and str(key) in entries:
            self.child_datastore.put(dir_key, [entry for entry in entries if entry != str(key)])

    def query(self, query: Query) -> Cursor:
        """Evaluate ``query`` over the directory at ``query.key``, or ask the child."""
        value = self.child_datastore.get(query.key)
        if isinstance(value, list):
            entries = _entries_of(value, query.key) or []
            return query.evaluate(self._entry_values(entries))
        return self.child_datastore.query(query)


class DirectoryTreeDatastore(_DirectoryShim):
    """A shim that records every stored key in its parent's directory, like a file system.

    As in datastore 0.3.6, the directory of ``/A`` is stored at ``/A:directory`` (the key's
    instance ``directory``), so a key can hold a value and have children, and directories
    written by 0.3.6 are found::

        >>> rds = DirectoryTreeDatastore(DictDatastore())
        >>> rds.put(Key('/A'), 'a value')
        >>> rds.put(Key('/A/B'), 1)
        >>> rds.directory(Key('/A')), rds.get(Key('/A:directory'))
        (['/A/B'], ['/A/B'])

    Deleting the last entry deletes the directory.  A query for ``Query(Key('/A'))`` returns
    the objects listed in ``/A``'s directory.  ``put(key, None)`` deletes ``key``.
    """

    #: The instance name under which a key's directory is stored.
    directory_name: ClassVar[str] = "directory"

    def directory_key(self, key: Key) -> Key:
        """Return the key that holds the directory of ``key`` (``/A`` -> ``/A:directory``); a
        key already named ``directory`` is its own."""
        return key if key.name == self.directory_name else key.instance(self.directory_name)

    def put(self, key: Key, value: Any) -> None:
        """Store ``value`` under ``key`` and add ``key`` to its parent's directory."""
        if value is None:
            self.delete(key)
            return
        self.child_datastore.put(key, value)
        if str(key) == "/":
            return
        dir_key = self.directory_key(key.parent)
        entries = self._read_directory(dir_key) or []
        if str(key) not in entries:
            entries.append(str(key))
            self.child_datastore.put(dir_key, entries)

    def delete(self, key: Key) -> None:
        """Remove ``key`` and its entry in its parent's directory (and the directory, once
        empty)."""
        self.child_datastore.delete(key)
        if str(key) == "/":
            return
        dir_key = self.directory_key(key.parent)
        entries = self._read_directory(dir_key)
        if entries is not None and str(key) in entries:
            entries.remove(str(key))
            if entries:
                self.child_datastore.put(dir_key, entries)
            else:
                self.child_datastore.delete(dir_key)

    def directory(self, key: Key) -> list[str]:
        """Return the key strings in the directory of ``key`` (``[]`` if there is none)."""
        return self._read_directory(self.directory_key(key)) or []

    def directory_values_generator(self, key: Key) -> Iterator[Any]:
        """Yield the objects named in the directory of ``key``, in key order."""
        for _entry_key, value in self._entry_values(self.directory(key)):
            yield value

    def query(self, query: Query) -> Cursor:
        """Evaluate ``query`` over the objects listed in the directory of ``query.key``."""
        return query.evaluate(self._entry_values(self.directory(query.key)))
