"""The client's housekeeping methods (Deker's ``Client`` API), as a base class of the client.

Owns :class:`Housekeeping`: ``check_integrity``, ``calculate_storage_size``, ``list_locks``,
``clear_locks``, ``stats``, ``list_aliases``, ``for cls in client``, ``meta_version`` and
their ``a_`` twins.
Each method asks the started client for its router (:attr:`Housekeeping.context`) and hands it
to :mod:`.integrity`, :mod:`.storage`, :mod:`.locks` or :mod:`.stats`.

Inherited by :class:`claystore.client.Client` (which provides ``context`` and
``lock_timeout``); nothing else uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from claystore.housekeeping import aliases, integrity, locks, stats, storage
from claystore.housekeeping.report import (
    AliasInfo,
    ClassStats,
    IntegrityReport,
    LockHolder,
    StorageSize,
)
from claystore.housekeeping.run import BATCH, Progress
from claystore.orm.context import ObjectContext

__all__ = ["Housekeeping"]


class Housekeeping:
    """Integrity checks, sizes, locks and statistics of a started client's store."""

    lock_timeout: float

    @property
    def context(self) -> ObjectContext:
        """The started client's object context (the client overrides this)."""
        raise NotImplementedError

    def check_integrity(
        self,
        level: int = 1,
        stop_on_error: bool = True,
        to_file: bool | str | Path = False,
        collection: Any = None,
        *,
        progress: Progress | None = None,
        batch: int = BATCH,
    ) -> IntegrityReport:
        """Check the store (every backend) at ``level`` 1-4, each level including those below:
        1 classes (tables, columns, indexes, link tables; every class the registry names is
        known), 2 registry (object rows and registry rows match; aliases, versions, backends,
        moves), 3 references (reference columns and link rows point at existing objects of an
        allowed class), 4 data (every stored value decodes to its declared type).

        ``collection`` (a model class, its name or its table's) checks one class and its
        subclasses.  ``stop_on_error`` stops at the first problem.  ``to_file``: ``True``
        writes the report to ``claystore-check-<date>.txt`` in the current directory, a path
        writes there (``.json``: the JSON form).  Prints nothing; reads only, never repairs.
        Returns an :class:`~claystore.housekeeping.report.IntegrityReport` (``.ok``,
        ``.problems``).  ``progress(task, done, total)`` is called after each batch read."""
        report = integrity.check(
            self.context.router,
            level=level,
            stop_on_error=stop_on_error,
            collection=collection,
            progress=progress,
            batch=batch,
        )
        if to_file is not False:
            report.write(to_file)
        return report

    async def a_check_integrity(self, *args: Any, **kwargs: Any) -> IntegrityReport:
        """Coroutine form of :meth:`check_integrity`."""
        return await asyncio.to_thread(self.check_integrity, *args, **kwargs)

    def calculate_storage_size(self, collection_name: Any = None) -> StorageSize:
        """The space the store uses on every backend, or that of one class (a model class, its
        name or its table's: its table, its subclasses' and link tables, their indexes, and its
        share of the registry).  ``.bytes``, ``.human`` (``"12.3 MiB"``), ``.backends`` (per
        backend).  See docs/operations.md for what is counted."""
        return storage.calculate(self.context.router, collection_name)

    async def a_calculate_storage_size(self, collection_name: Any = None) -> StorageSize:
        """Coroutine form of :meth:`calculate_storage_size`."""
        return await asyncio.to_thread(self.calculate_storage_size, collection_name)

    def list_locks(self, collection_name: Any = None) -> list[LockHolder]:
        """The sessions (PostgreSQL) or processes (SQLite) holding locks on the store's tables
        (or one class's), with their age, application name and query, and the writers a crash
        left behind (SQLite); terminates nothing."""
        return locks.list_locks(self.context.router, collection_name)

    async def a_list_locks(self, collection_name: Any = None) -> list[LockHolder]:
        """Coroutine form of :meth:`list_locks`."""
        return await asyncio.to_thread(self.list_locks, collection_name)

    def clear_locks(
        self, collection_name: Any = None, older_than: float | None = None
    ) -> list[LockHolder]:
        """End the locks that outlive their owners: on PostgreSQL, terminate the sessions
        holding locks on the store's tables (or one class's) for longer than ``older_than``
        seconds (default: the client's ``lock_timeout``), never the caller's own (the asking
        connection and every open connection of this client); on SQLite, recover what a
        crashed writer left (uncommitted ``-wal`` frames: a checkpoint; a hot ``-journal``:
        rolled back), whatever its age.  A live SQLite process is never killed: there the lock
        holder is the application itself.  Returns every holder found, with ``cleared`` set on
        those ended and ``note`` saying what was done or why not."""
        wait = self.lock_timeout if older_than is None else older_than
        return locks.clear_locks(self.context.router, collection_name, older_than=wait)

    async def a_clear_locks(
        self, collection_name: Any = None, older_than: float | None = None
    ) -> list[LockHolder]:
        """Coroutine form of :meth:`clear_locks`."""
        return await asyncio.to_thread(self.clear_locks, collection_name, older_than)

    def stats(self) -> list[ClassStats]:
        """Every class the store holds objects of (over every backend): its objects per
        backend, versions and aliases; classes no loaded module defines are listed by table."""
        return stats.class_stats(self.context.router)

    async def a_stats(self) -> list[ClassStats]:
        """Coroutine form of :meth:`stats`."""
        return await asyncio.to_thread(self.stats)

    def list_aliases(self, dataset: str | None = None) -> list[AliasInfo]:
        """Every alias of ``dataset`` (else of every dataset) with the object it names: its
        class's table and backend (None for an alias whose object is gone)."""
        return aliases.list_aliases(self.context.router, dataset)

    async def a_list_aliases(self, dataset: str | None = None) -> list[AliasInfo]:
        """Coroutine form of :meth:`list_aliases`."""
        return await asyncio.to_thread(self.list_aliases, dataset)

    def __iter__(self) -> Iterator[type]:
        """The model classes the store holds objects of (``for cls in client``)."""
        return iter(stats.stored_classes(self.context.router))

    @property
    def meta_version(self) -> str:
        """The schema version of claystore's system tables in the metadata database."""
        return stats.meta_version(self.context.router)
