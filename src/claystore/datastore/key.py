"""Keys: the hierarchical names every datastore object is stored under.

This module owns :class:`Key` and :class:`Namespace`.  Every datastore, query and shim in
:mod:`claystore.datastore` names objects with a :class:`Key`; nothing here does I/O.

A key is a slash-separated path of namespaces, like a file system path::

    Key('/Comedy/MontyPython/Actor:JohnCleese')

Normalisation: a leading slash is added, duplicate and trailing slashes are removed, and the
root key is ``/``.  ``.`` and ``..`` are ordinary names, never interpreted.  A namespace may
carry a *field* (its type) before a ``:``; the part after the last ``:`` is its *value* (the
key's name).  Keys compare and sort by their string form, and hash as datastore 0.3.6 hashed
them, the same in every process (:mod:`.keyhash`).  ``bytes`` are never accepted: decode
them first (``Key(raw.decode())``), so a key can never read ``"/b'x'"``.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Final

from claystore.datastore.keyhash import stable_hash
from claystore.errors import DatastoreTypeError, InvalidKeyError

__all__ = ["Key", "Namespace"]

_SLASH: Final = "/"
_set_slot = object.__setattr__


class Namespace(str):
    """One component of a :class:`Key`: a string with an optional ``field:`` prefix.

    Examples::

        Namespace('Bruces')                # field '', value 'Bruces'
        Namespace('Song:PhilosopherSong')  # field 'Song', value 'PhilosopherSong'
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Namespace({str(self)!r})"

    #: Separates a namespace's field (type) from its value.
    namespace_delimiter: Final = ":"

    @property
    def field(self) -> str:
        """The part before the first ``:``, or ``''`` when there is none."""
        if self.namespace_delimiter in self:
            return self.split(self.namespace_delimiter)[0]
        return ""

    @property
    def value(self) -> str:
        """The part after the last ``:`` (the whole namespace when there is no ``:``)."""
        return self.split(self.namespace_delimiter)[-1]


def _text_of(part: object, what: str) -> str:
    """Return ``part`` as text; refuse bytes and anything that is not a str, Key or int."""
    if isinstance(part, Key):
        return part._string
    if isinstance(part, str):
        return str(part)
    if isinstance(part, bytes | bytearray | memoryview):
        kind = type(part).__name__
        msg = f"{what} must be text, not {kind}: decode it first ({what}(raw.decode()))"
        raise DatastoreTypeError(msg)
    if isinstance(part, int) and not isinstance(part, bool):
        return str(part)
    msg = f"{what} must be a str or Key, not {type(part).__name__}: {part!r}"
    raise DatastoreTypeError(msg)


class Key:
    """The unique, hierarchical name of a stored object.

    ``Key(key)`` accepts a string (``'/Comedy/MontyPython'``), another Key, or a list of
    namespaces (``['Comedy', 'MontyPython']``).  Keys are immutable, hashable, and ordered by
    their string form (the same order the datastore uses to break ties between query results).

    >>> Key('/Comedy/MontyPython').child('Actor:JohnCleese')
    Key('/Comedy/MontyPython/Actor:JohnCleese')
    """

    __slots__ = ("_hash", "_list", "_string")

    _string: str
    _list: tuple[str, ...]
    _hash: int

    def __init__(self, key: Key | str | Iterable[str]) -> None:
        if isinstance(key, Key):
            text = key._string
        elif isinstance(key, str | bytes | bytearray | memoryview):
            text = _text_of(key, "Key")
        elif isinstance(key, Iterable):
            text = _SLASH.join(_text_of(part, "Key namespace") for part in key)
        else:
            text = _text_of(key, "Key")
        normal = self.removeDuplicateSlashes(text)
        self._string = normal
        self._list = tuple(part for part in normal.split(_SLASH) if part)

    @classmethod
    def from_normal(cls, text: str) -> Key:
        """A key from text already in normal form (leading slash, no empty parts), without
        normalising it again; for code that builds many keys of a known shape."""
        return cls.from_parts(text, tuple(part for part in text.split(_SLASH) if part))

    @classmethod
    def from_parts(cls, text: str, parts: tuple[str, ...]) -> Key:
        """A key from its normal text and its namespaces, both already known to agree (the
        fastest way to build a key; no checks)."""
        key = cls.__new__(cls)
        _set_slot(key, "_string", text)
        _set_slot(key, "_list", parts)
        return key

    # -- string forms, equality, ordering -----------------------------------------------------

    def __str__(self) -> str:
        return self._string

    def __repr__(self) -> str:
        return f"Key({self._string!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Key):
            return self._string == other._string
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, Key):
            return self._string != other._string
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Key):
            return self._string < other._string
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, Key):
            return self._string <= other._string
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, Key):
            return self._string > other._string
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, Key):
            return self._string >= other._string
        return NotImplemented

    def __hash__(self) -> int:
        """The hash datastore 0.3.6 gave this key (:func:`~.keyhash.stable_hash`): the same in
        every process, so ``hash(key) % n`` keeps a key on its shard."""
        try:
            return self._hash
        except AttributeError:
            value = stable_hash(self._string)
            _set_slot(self, "_hash", value)
            return value

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_list"):
            msg = f"{self!r} is immutable: build a new Key instead of setting {name!r}"
            raise AttributeError(msg)
        object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[type[Key], tuple[str]]:
        return (Key, (self._string,))

    def __len__(self) -> int:
        """The length of the key's text (as in 0.3.6): ``len(Key('/a')) == 2``."""
        return len(self._string)

    def __iter__(self) -> Iterator[str]:
        """The characters of the key's text (as in 0.3.6)."""
        return iter(self._string)

    # -- parts --------------------------------------------------------------------------------

    @property
    def list(self) -> list[str]:
        """The namespaces of this key as a list of strings (``[]`` for the root key)."""
        return list(self._list)

    @property
    def namespaces(self) -> builtins.list[Namespace]:
        """The namespaces of this key as :class:`Namespace` objects."""
        return [Namespace(part) for part in self._list]

    @property
    def name(self) -> str:
        """The value of the last namespace (``'JohnCleese'`` for ``/Actor:JohnCleese``)."""
        return Namespace(self._list[-1]).value if self._list else ""

    @property
    def type(self) -> str:
        """The field of the last namespace (``'Actor'`` for ``/Actor:JohnCleese``), or ``''``."""
        return Namespace(self._list[-1]).field if self._list else ""

    @property
    def path(self) -> Key:
        """The collection this key belongs to: its parent, then its type (if it has one).

        ``Key('/Comedy/Actor:JohnCleese').path == Key('/Comedy/Actor')`` and
        ``Key('/0/A').path == Key('/0')``.  Datastores group objects by this path, and a
        query for ``Query(Key('/Comedy/Actor'))`` returns the objects whose path it is.
        """
        parent = self.parent
        kind = self.type
        return parent.child(kind) if kind else parent

    @property
    def parent(self) -> Key:
        """The key without its last namespace; the root key is its own parent."""
        return Key(self._list[:-1])

    @property
    def reverse(self) -> Key:
        """The key with its namespaces in reverse order.

        >>> Key('/Comedy/MontyPython/Actor:JohnCleese').reverse
        Key('/Actor:JohnCleese/MontyPython/Comedy')
        """
        return Key(reversed(self._list))

    # -- building keys ------------------------------------------------------------------------

    def child(self, other: Key | str | int) -> Key:
        """Return the key of namespace(s) ``other`` under this key."""
        return Key(f"{self._string}/{_text_of(other, 'Key.child argument')}")

    def instance(self, other: Key | str | int) -> Key:
        """Return this key with ``:other`` appended to its last namespace.

        ``Key('/Comedy/Actor').instance('JohnCleese') == Key('/Comedy/Actor:JohnCleese')``.
        ``other`` is one name: a ``/`` in it raises :class:`~claystore.errors.InvalidKeyError`.
        """
        text = _text_of(other, "Key.instance argument")
        if _SLASH in text:
            msg = f"Key.instance({text!r}): an instance name cannot contain '/'; use child()"
            raise InvalidKeyError(msg)
        return Key(f"{self._string}{Namespace.namespace_delimiter}{text}")

    # -- ancestry -----------------------------------------------------------------------------

    def isAncestorOf(self, other: Key) -> bool:
        """Return whether this key is a proper ancestor of ``other``.

        >>> john = Key('/Comedy/MontyPython/Actor:JohnCleese')
        >>> Key('/Comedy').isAncestorOf(john)
        True
        """
        if not isinstance(other, Key):
            msg = f"isAncestorOf needs a Key, not {type(other).__name__}"
            raise DatastoreTypeError(msg)
        mine = self._list
        return len(other._list) > len(mine) and other._list[: len(mine)] == mine

    def isDescendantOf(self, other: Key) -> bool:
        """Return whether this key is a proper descendant of ``other``.

        >>> Key('/Comedy/MontyPython').isDescendantOf(Key('/Comedy'))
        True
        """
        if not isinstance(other, Key):
            msg = f"isDescendantOf needs a Key, not {type(other).__name__}"
            raise DatastoreTypeError(msg)
        return other.isAncestorOf(self)

    def isTopLevel(self) -> bool:
        """Return whether this key has exactly one namespace (``/Comedy``)."""
        return len(self._list) == 1

    # -- helpers ------------------------------------------------------------------------------

    @classmethod
    def randomKey(cls) -> Key:
        """Return a new top-level key made of a random UUID (32 hex digits)."""
        return cls(uuid.uuid4().hex)

    @classmethod
    def removeDuplicateSlashes(cls, path: str) -> str:
        """Return ``path`` normalised: one leading slash, no duplicate or trailing slashes.

        ``removeDuplicateSlashes('a//b/') == '/a/b'`` and ``removeDuplicateSlashes('') == '/'``.
        """
        text = _text_of(path, "path")
        return _SLASH + _SLASH.join(part for part in text.split(_SLASH) if part)
