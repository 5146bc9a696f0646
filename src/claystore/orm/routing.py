"""Routing: every backend database of a started client, and reads that follow objects to them.

Owns :class:`Router` — one per started client: the metadata database (the first backend) and
the other backends' :class:`~claystore.orm.database.Database` objects, each opened on first
use from its URL in the metadata database (so backends another client added are found), and
the threads that run statements on several backends at once (:meth:`Router.pool`) — and
:class:`ReadRoute`, the connections of one read outside any transaction, one short read per
backend touched, closed together at the end.

A route is what a :class:`~claystore.orm.loading.Loader` asks when an object is not on its
own backend: the loader of another backend (:meth:`ReadRoute.loader_for`), the backends to
look in, and :meth:`ReadRoute.settle` — wait for (or finish) the moves under way of some
objects, so that an object in the middle of a move is found exactly once.  The transaction
(:mod:`claystore.orm.transaction`) is the route of the reads and writes made inside it.

Created by the client (the router) and by :mod:`claystore.orm.context` (read routes).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from uuid import UUID

from claystore.errors import BackendDoesNotExistError, DatabaseConnectionError
from claystore.orm import backends, moving
from claystore.orm.loading import Loader

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.orm.database import Database
    from claystore.orm.loading import IdentityScope
    from claystore.orm.state import Jar

__all__ = ["ReadRoute", "Router"]

#: How many statements on other backends a client runs at once (the threads of
#: :meth:`Router.pool`).
POOL_THREADS = 8

#: Opens the database of a backend: ``(backend id, URL with password) -> Database``.
Opener = Callable[[UUID, str], "Database"]


class Router:
    """The databases of one started client's backends (see the module docstring)."""

    def __init__(self, metadata: Database, metadata_id: UUID, opener: Opener) -> None:
        self.metadata = metadata
        self.metadata_id = metadata_id
        metadata.backend_id = metadata_id
        self._opener = opener
        self._databases: dict[UUID, Database] = {metadata_id: metadata}
        self._urls: dict[UUID, tuple[str, str]] = {}  # id -> (name, URL)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._read_at = -math.inf  # when the registered backends were last read (monotonic)

    def __repr__(self) -> str:
        return f"<Router {len(self._databases)} open of {len(self._urls) + 1} backends>"

    def refresh(self, max_age: float | None = None) -> bool:
        """Read the backends registered in the metadata database again (with ``max_age``: only
        if the last read is older than that many seconds); True when some were added since the
        last read."""
        if max_age is not None and time.monotonic() - self._read_at < max_age:
            return False
        read_at = time.monotonic()
        urls = self.metadata.read(backends.connect_urls, ensure=False)  # system tables only
        with self._lock:
            added = bool(urls.keys() - self._urls.keys())
            self._urls = urls
            self._read_at = read_at
        return added

    def known(self) -> list[UUID]:
        """The backends known to this router, the metadata database first."""
        return [self.metadata_id, *self._urls]

    def database(self, backend_id: UUID) -> Database:
        """The database of a backend, opened on first use; raises
        :class:`BackendDoesNotExistError` for a backend not (or no longer) registered."""
        found = self._databases.get(backend_id)
        if found is not None:
            return found
        if backend_id not in self._urls:
            self.refresh()
        with self._lock:
            found = self._databases.get(backend_id)
            if found is not None:
                return found
            registered = self._urls.get(backend_id)
            if registered is None:
                raise BackendDoesNotExistError(backend_id)
            name, url = registered
            try:
                found = self._opener(backend_id, url)
            except DatabaseConnectionError as exc:
                msg = f"backend {name!r} ({backend_id}) cannot be reached: {exc}"
                raise DatabaseConnectionError(msg, exc.orig) from None
            self._databases[backend_id] = found
        return found

    def pool(self) -> ThreadPoolExecutor:
        """The threads that run statements on several backends at once (made on first use)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=POOL_THREADS, thread_name_prefix="claystore-backends"
                )
            return self._pool

    def opened(self) -> list[Database]:
        """The databases opened so far (the metadata database first)."""
        return list(self._databases.values())

    def forget(self, backend_id: UUID) -> Database | None:
        """Drop a removed backend (its database is returned, for its owner to dispose of)."""
        with self._lock:
            self._urls.pop(backend_id, None)
            return self._databases.pop(backend_id, None)

    def close(self) -> None:
        """Stop every database (their engines are disposed of by their owner) and the
        threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for database in self.opened():
            database.close()


class ReadRoute:
    """The connections of one read outside any transaction: a short read per backend, opened
    when the read first needs that backend, all closed at the end (a context manager)."""

    def __init__(self, router: Router, context: Jar, scope: IdentityScope) -> None:
        self.router = router
        self.context = context
        self.scope = scope
        self._stack = contextlib.ExitStack()
        self._loaders: dict[UUID, Loader] = {}

    def __enter__(self) -> ReadRoute:
        return self

    def __exit__(self, *exc: object) -> None:
        self._loaders.clear()
        self._stack.close()

    def loader_for(self, backend_id: UUID, *, write: bool = False) -> Loader:
        """The loader of a backend (its short read opened now if it is not yet; ``write`` is
        for transactions: a read outside one locks nothing)."""
        del write
        loader = self._loaders.get(backend_id)
        if loader is None:
            database = self.router.database(backend_id)
            conn: Connection = self._stack.enter_context(database.reader())
            loader = Loader(
                conn, self.context, self.scope, database.dialect, backend_id=backend_id, route=self
            )
            self._loaders[backend_id] = loader
        return loader

    def backend_ids(self) -> list[UUID]:
        """Where to look for objects, the metadata database first."""
        return self.router.known()

    def settle(self, object_ids: Iterable[UUID]) -> bool:
        """Wait for the moves under way of these objects to end (finishing those whose mover
        died); True when there was one (look again)."""
        return moving.settle(self.router, object_ids)

    def refresh_backends(self) -> bool:
        """Read the registered backends again (another client may have added some)."""
        return self.router.refresh()
