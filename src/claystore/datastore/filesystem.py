"""A datastore that keeps each object in its own file under a root folder.

This module owns :class:`FileSystemDatastore` and :func:`ensure_directory_exists`.
Applications use it directly for text values, or under
:func:`claystore.datastore.serialize.shim` for any JSON-able value.

Layout: the key's namespaces become folders, ``:`` nests too, and the object's file takes the
``.obj`` extension, so under root ``/data``::

    Key('/Comedy:MontyPython/Actor:JohnCleese')  ->  /data/Comedy/MontyPython/Actor/JohnCleese.obj

Writes are atomic: the value goes to a temporary file in the target folder, is flushed to
disk, and is renamed over the object's file, so a crash leaves either the old object or the
new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from claystore.datastore.basic import Datastore
from claystore.datastore.key import Key
from claystore.datastore.query import Cursor, Entry, Query
from claystore.errors import DatastoreError, DatastoreTypeError, InvalidKeyError

__all__ = ["FileSystemDatastore", "ensure_directory_exists"]

_TEMP_PREFIX = ".claystore-tmp-"


def ensure_directory_exists(directory: str | os.PathLike[str]) -> None:
    """Create ``directory`` (and its parents) unless it exists.

    Raises :class:`~claystore.errors.DatastoreError` (a ``RuntimeError``, as in 0.3.6) if a
    file is in the way.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        msg = f"{path} is a file, not a directory: move it away or choose another root"
        raise DatastoreError(msg)
    path.mkdir(parents=True, exist_ok=True)


class FileSystemDatastore(Datastore):
    """Simple flat-file datastore: one ``.obj`` file per object under ``root``.

    Values are text (``str``), written as UTF-8 exactly as given (``put(key, None)`` deletes
    ``key``); wrap the store with :func:`~claystore.datastore.serialize.shim` to store other
    values.  A root that is a file raises :class:`~claystore.errors.DatastoreError` (a
    ``RuntimeError``).  With
    ``case_sensitive=False`` paths are lowercased, so keys differing only in case name the
    same object.  Because ``:`` and ``/`` both make folders, ``/a:b`` and ``/a/b`` name the
    same file.  A query lists the ``.obj`` files of the folder of ``query.key``.
    Namespaces that are ``.``, ``..`` or empty (``/a:``) cannot be file names and raise
    :class:`~claystore.errors.InvalidKeyError`.
    """

    #: File names (without folder) that queries skip.
    ignore_list: ClassVar[tuple[str, ...]] = ()
    #: Extension of object files.
    object_extension: ClassVar[str] = ".obj"

    def __init__(self, root: str | os.PathLike[str], case_sensitive: bool = True) -> None:
        self.root_path = os.fspath(root)
        self.case_sensitive = case_sensitive
        ensure_directory_exists(self.root_path)

    # -- paths --------------------------------------------------------------------------------

    def relative_path(self, key: Key) -> str:
        """Return the folder path of ``key`` relative to the root (``Comedy/MontyPython``)."""
        if not isinstance(key, Key):
            msg = f"FileSystemDatastore keys must be Key objects, not {type(key).__name__}"
            raise DatastoreTypeError(msg)
        parts = str(key).replace(":", "/").split("/")[1:]
        if parts == [""]:
            return ""
        for part in parts:
            if part in ("", ".", "..") or "\x00" in part or os.sep in part:
                msg = f"{key!r}: namespace {part!r} cannot be a file name"
                raise InvalidKeyError(msg)
        relative = "/".join(parts)
        return relative if self.case_sensitive else relative.lower()

    def path(self, key: Key) -> str:
        """Return the folder path of ``key`` under the root."""
        return os.path.join(self.root_path, *self.relative_path(key).split("/"))

    def relative_object_path(self, key: Key) -> str:
        """Return the object file path of ``key`` relative to the root."""
        relative = self.relative_path(key)
        if not relative:
            msg = "the root key '/' names the store itself, not an object"
            raise InvalidKeyError(msg)
        return relative + self.object_extension

    def object_path(self, key: Key) -> str:
        """Return the object file path of ``key``."""
        return os.path.join(self.root_path, *self.relative_object_path(key).split("/"))

    # -- operations ---------------------------------------------------------------------------

    def get(self, key: Key) -> Any:
        """Return the text stored under ``key``, or None if there is no such file."""
        path = self.object_path(key)
        try:
            with open(path, encoding="utf-8", newline="") as file:
                return file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            msg = f"cannot read {key} from {path}: {exc}"
            raise DatastoreError(msg) from exc

    def put(self, key: Key, value: Any) -> None:
        """Write the text ``value`` to the file of ``key``, atomically; None deletes ``key``."""
        if value is None:
            self.delete(key)
            return
        if not isinstance(value, str):
            msg = (
                f"FileSystemDatastore stores str values, not {type(value).__name__}: "
                "wrap it with claystore.datastore.serialize.shim(ds) to store objects"
            )
            raise DatastoreTypeError(msg)
        path = self.object_path(key)
        directory = os.path.dirname(path)
        try:
            ensure_directory_exists(directory)
            descriptor, temp_path = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)
        except OSError as exc:
            msg = f"cannot write {key} under {directory}: {exc}"
            raise DatastoreError(msg) from exc
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
                file.write(value)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_path, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp_path)
            if isinstance(exc, OSError):
                msg = f"cannot write {key} to {path}: {exc}"
                raise DatastoreError(msg) from exc
            raise

    def delete(self, key: Key) -> None:
        """Remove the file of ``key`` (no error if there is none)."""
        path = self.object_path(key)
        try:
            os.remove(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            msg = f"cannot delete {key} at {path}: {exc}"
            raise DatastoreError(msg) from exc

    def contains(self, key: Key) -> bool:
        """Return whether the file of ``key`` exists (no read)."""
        return os.path.isfile(self.object_path(key))

    def query(self, query: Query) -> Cursor:
        """Evaluate ``query`` over the ``.obj`` files in the folder of ``query.key``.

        Result keys are rebuilt as ``query.key.child(file name)``.
        """
        return query.evaluate(self._folder_entries(query.key))

    def _folder_entries(self, collection: Key) -> Iterator[Entry]:
        """Yield ``(key, text)`` for each object file in the folder of ``collection``."""
        folder = self.path(collection)
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        extension = self.object_extension
        stems = sorted(
            name[: -len(extension)]
            for name in names
            if name.endswith(extension) and name != extension and name not in self.ignore_list
        )
        for stem in stems:
            key = collection.child(stem)
            value = self.get(key)
            if value is not None:
                yield key, value

    def __repr__(self) -> str:
        return f"FileSystemDatastore({self.root_path!r})"
