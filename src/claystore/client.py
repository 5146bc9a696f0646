"""``Client``: where the data lives, and the start/stop of everything that uses it.

Owns configuration (a URL, dataClay-style arguments, or the ``DC_*`` environment variables;
default ``sqlite:///claystore.db``), the SQLAlchemy engine, schema creation at start, the
active-client context variables (through :class:`~claystore.orm.context.ObjectContext`), and
the client-level API (``get_backends``, ``add_backend``, ``remove_backend``, ...); the
housekeeping methods (``check_integrity``, ``calculate_storage_size``, ``clear_locks``...) come
from :class:`~claystore.housekeeping.api.Housekeeping`.

Backends: the database of the URL is the *metadata database* (the first, default backend);
:meth:`Client.add_backend` registers more databases, whose URLs it keeps; every start opens
each of them (their system tables created or upgraded, model tables checked per the schema
mode), ends the commits across backends a crash left in doubt
(:func:`claystore.orm.twophase.recover`: a prepared transaction holds its locks, so first) and
the moves a crash interrupted (:func:`claystore.orm.moving.repair`).

Configuration order: the ``url`` argument; else ``host``/``port``/``username``/``password``/
``database`` arguments (PostgreSQL); else ``DC_URL``; else ``DC_HOST``, ``DC_PORT``,
``DC_USERNAME``, ``DC_PASSWORD``, ``DC_DATABASE``; else the SQLite default.  The dataset comes
from ``dataset``, else ``DC_DATASET``, else ``"default"``.  The password never appears in
``repr``, messages or logs.

Called by users; creates the ORM context.  Nothing in ``orm``/``datastore``/``dialects``
imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from claystore.configuration import (
    MAX_LOCK_TIMEOUT,
    MIN_LOCK_TIMEOUT,
    check_lock_timeout,
    resolve_url,
)
from claystore.dialects import dialect_for, translate_error
from claystore.dialects.base import Dialect
from claystore.dialects.registry import DEFAULT_URL, parse_url
from claystore.errors import ClientNotStartedError, ConfigurationError, DatabaseConnectionError
from claystore.housekeeping.api import Housekeeping
from claystore.migrations.system import (
    SYSTEM_SCHEMA_VERSION,
    read_system_version,
    upgrade_system_schema,
)
from claystore.orm import backends as backend_registry
from claystore.orm import moving, twophase
from claystore.orm.aliases import check_dataset
from claystore.orm.asyncsession import AsyncSession
from claystore.orm.asynctwin import current_runner
from claystore.orm.context import ObjectContext
from claystore.orm.database import Database, check_schema_mode
from claystore.orm.federation import FederationReport, federate
from claystore.orm.mapping import metadata
from claystore.orm.modelquery import query_objects
from claystore.orm.objectstore import ModelObjectStore
from claystore.orm.routing import Router
from claystore.orm.session import Session, transactional
from claystore.orm.system import dc_schema

__all__ = [
    "DEFAULT_URL",
    "MAX_LOCK_TIMEOUT",
    "MIN_LOCK_TIMEOUT",
    "Client",
    "check_lock_timeout",
    "resolve_url",
]

DEFAULT_DATASET = "default"
log = logging.getLogger("claystore")

P = ParamSpec("P")
R = TypeVar("R")


class Client(Housekeeping):
    """A connection to a claystore database (and, later, its other backends).

    ``Client()`` reads the ``DC_*`` environment variables or uses ``sqlite:///claystore.db``;
    ``Client("postgresql+psycopg://user:pw@host/db")`` takes a URL;
    ``Client(host=..., port=..., username=..., password=..., dataset=...)`` connects to
    PostgreSQL the dataClay way.

    ``schema`` says what :meth:`start` does with the model classes' tables: ``"create"``
    (the default) creates missing tables and raises :class:`~claystore.errors.SchemaDriftError`
    when an existing table differs from its class; ``"evolve"`` also applies the changes that
    cannot lose data (new nullable or defaulted columns, new indexes); ``"check"`` creates
    nothing and raises on any difference; ``"skip"`` neither creates nor checks (migrations
    are run separately: see docs/migrations.md).

    ``lock_timeout`` is how long an operation waits for a lock another transaction holds
    (seconds, from 1 ms to about 24 days) before it raises
    :class:`~claystore.errors.LockTimeoutError`.  Arguments of the wrong type or out of range
    raise :class:`~claystore.errors.ConfigurationError` here, before anything connects.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`; it can be started
    again after it stops.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        host: str | None = None,
        port: int | str | None = None,
        username: str | None = None,
        password: str | None = None,
        dataset: str | None = None,
        database: str | None = None,
        lock_timeout: float = 60.0,
        schema: str = "create",
        backend: Any = None,
        echo: bool = False,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        environ = os.environ
        for name, value in (
            ("host", host),
            ("username", username),
            ("password", password),
            ("dataset", dataset),
            ("database", database),
        ):
            if value is not None and not isinstance(value, str):
                shown = "" if name == "password" else f" {value!r}"
                msg = f"{name} must be a str, not {type(value).__name__}{shown}"
                raise ConfigurationError(msg)
        self._url = resolve_url(
            url,
            host=host,
            port=port,
            username=username,
            password=password,
            database=database,
            environ=environ,
        )
        self.dataset: str = check_dataset(dataset or environ.get("DC_DATASET") or DEFAULT_DATASET)
        self.username: str | None = self._url.username
        self.lock_timeout = check_lock_timeout(lock_timeout)
        self.schema = check_schema_mode(schema)
        self._echo = echo
        self._engine_options = dict(engine_options or {})
        self._support: Dialect = dialect_for(self._url)
        if backend is not None and not isinstance(backend, str | UUID):
            msg = f"backend must be a backend name or id (str or UUID), not {backend!r}"
            raise ConfigurationError(msg)
        self._backend = backend
        self._engine: Engine | None = None
        self._engines: list[Engine] = []  # of the other backends
        self._context: ObjectContext | None = None
        self._token: Any = None
        #: The interrupted moves the last :meth:`start` ended (see :meth:`repair_moves`).
        self.repaired_at_start: list[moving.Repaired] = []
        #: The in-doubt commits across backends the last :meth:`start` ended (see
        #: :meth:`repair_transactions`).
        self.resolved_at_start: list[twophase.Resolved] = []

    # -- description ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL with the password hidden."""
        return self._url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        status = "open" if self.is_open else "closed"
        return f"Client({self.url!r}, dataset={self.dataset!r}) [{status}]"

    @property
    def is_open(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._context is not None and self._context.is_open

    @property
    def is_closed(self) -> bool:
        """True when the client is not started."""
        return not self.is_open

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for plain SQLAlchemy work on the same database)."""
        if self._engine is None:
            msg = "the client is not started; call client.start() first"
            raise ClientNotStartedError(msg)
        return self._engine

    @property
    def context(self) -> ObjectContext:
        """The object context of the started client (what stored objects and queries use);
        raises ClientNotStartedError when the client is stopped."""
        return self._require_context()

    @property
    def metadata(self) -> sa.MetaData:
        """The model classes' tables (``claystore.metadata``)."""
        return metadata

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Connect, check the tables against the model classes (per the ``schema`` mode: see
        the class), and make this the active client.  Idempotent.  Raises
        :class:`~claystore.errors.SchemaDriftError` when the tables differ from the classes,
        before anything is read or written.

        The check reads first and takes no lock: a database whose tables are in place starts
        while another process writes (and a read-only one starts at all).  Only when something
        must be created or upgraded does it take the write lock (SQLite) or the schema lock
        (PostgreSQL), and check again under it."""
        if self.is_open:
            return self
        engine = self._new_engine(self._url, self._support)
        try:
            with engine.connect() as conn:
                default_backend = self._prepare_system_tables(conn, self._support)
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise translate_error(exc, self._url) from None
        except BaseException:  # a refused system schema: nothing was written
            engine.dispose()
            raise
        database = Database(
            engine, self._support, lock_timeout=self.lock_timeout, schema=self.schema
        )
        router = Router(database, default_backend, self._open_backend)
        context = self._context
        try:
            router.refresh()
            database.ensure_tables()
            for backend_id in router.known()[1:]:  # every backend: its tables, now
                try:
                    router.database(backend_id).ensure_tables()
                except DatabaseConnectionError as exc:  # its objects fail when used
                    log.warning("claystore could not open a backend at start: %s", exc)
            chosen = default_backend
            if self._backend is not None:
                chosen = backend_registry.resolve(
                    database.read(lambda conn: backend_registry.list_backends(conn, self.url)),
                    self._backend,
                )
            if context is None:  # the same context across restarts: its objects stay usable
                context = ObjectContext(
                    router,
                    dataset=self.dataset,
                    username=self.username,
                    default_backend_id=chosen,
                    lock_timeout=self.lock_timeout,
                    owner=self,
                )
            else:
                context.reopen(router, default_backend_id=chosen)
            resolved_now = twophase.recover(router)
            for resolved in resolved_now:
                log.warning("claystore ended an in-doubt transaction: %s", resolved)
            repaired_now = moving.repair(router)
            for repaired in repaired_now:
                log.warning("claystore repaired an interrupted move: %s", repaired)
        except BaseException:
            router.close()
            if context is not None:
                context.is_open = False
            self._dispose(engine)
            raise
        self._engine = engine
        self._context = context
        self.repaired_at_start = repaired_now
        self.resolved_at_start = resolved_now
        self._token = context.activate()
        log.info("claystore client started on %s (dataset %s)", self.url, self.dataset)
        return self

    def _new_engine(self, url: URL, support: Dialect) -> Engine:
        """An engine on ``url`` with this client's options, configured by its dialect."""
        options: dict[str, Any] = {"echo": self._echo, **support.engine_options()}
        options.update(self._engine_options)
        engine = sa.create_engine(url, **options)
        support.configure(engine, lock_timeout=self.lock_timeout)
        return engine

    def _prepare_system_tables(
        self, conn: Connection, support: Dialect, *, store_id: UUID | None = None
    ) -> UUID:
        """Create or upgrade the system tables of a database (under the lock, only when
        needed); returns its default backend's id — for a backend database (``store_id``
        given) the store's."""
        if store_id is None:
            found = self._read_system_tables(conn, support)
            if found is not None:
                return found
        elif self._system_tables_current(conn, support):
            return store_id
        support.begin(conn, write=True, lock_timeout=self.lock_timeout)
        support.lock_schema(conn)
        upgrade_system_schema(conn, support)
        if store_id is None:
            backend_registry.refuse_backend_as_store(conn, support.describe())
            store_id = backend_registry.ensure_default(conn)
        conn.commit()
        return store_id

    def _open_backend(self, backend_id: UUID, url: str) -> Database:
        """The database of a registered backend (the router's opener): connected, its system
        tables at this release's version."""
        parsed = parse_url(url)
        support = dialect_for(parsed)
        engine = self._new_engine(parsed, support)
        try:
            with engine.connect() as conn:
                self._prepare_system_tables(conn, support, store_id=backend_id)
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            error = translate_error(exc, parsed)
            raise error from None
        self._engines.append(engine)
        database = Database(engine, support, lock_timeout=self.lock_timeout, schema=self.schema)
        database.backend_id = backend_id
        return database

    def _dispose(self, engine: Engine | None) -> None:
        if engine is not None:
            engine.dispose()
        engines, self._engines = self._engines, []
        for other in engines:
            other.dispose()

    def _read_system_tables(self, conn: Connection, support: Dialect) -> UUID | None:
        """The default backend's id when the system tables are in place at this release's
        version, read without taking a lock (a start then never waits for another process's
        writer); None when something must be created or upgraded.  Raises
        :class:`ConfigurationError` on a database that is another store's backend."""
        support.begin(conn, write=False, lock_timeout=self.lock_timeout)
        try:
            if not sa.inspect(conn).has_table(dc_schema.name):
                return None
            if read_system_version(conn) != SYSTEM_SCHEMA_VERSION:
                return None
            backend_registry.refuse_backend_as_store(conn, support.describe())
            return backend_registry.find_default(conn)
        finally:
            conn.rollback()

    def _system_tables_current(self, conn: Connection, support: Dialect) -> bool:
        """Whether a backend database's system tables are at this release's version (a read
        without a lock)."""
        support.begin(conn, write=False, lock_timeout=self.lock_timeout)
        try:
            inspector = sa.inspect(conn)
            return inspector.has_table(dc_schema.name) and (
                read_system_version(conn) == SYSTEM_SCHEMA_VERSION
            )
        finally:
            conn.rollback()

    def stop(self) -> None:
        """Disconnect.  Objects keep their values in memory; using them needs a restart."""
        context = self._context
        if context is not None and context.is_open:
            context.deactivate(self._token)
            self._token = None
        if self._engine is not None:
            self._dispose(self._engine)
            self._engine = None
            log.info("claystore client stopped on %s", self.url)

    close = stop

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _require_context(self) -> ObjectContext:
        if self._context is None or not self._context.is_open:
            msg = "the client is not started; call client.start() or use `with client:`"
            raise ClientNotStartedError(msg)
        return self._context

    # -- units of work -------------------------------------------------------------------------

    def session(self) -> Session:
        """A unit of work: ``with client.session() as session: ...`` (see
        :mod:`claystore.orm.session`): loads once, writes in batches at commit, all or nothing.
        Inside another session it is a savepoint."""
        return Session(self._require_context())

    def a_session(self) -> AsyncSession:
        """The unit of work for coroutines: ``async with client.a_session() as session: ...``
        (see :mod:`claystore.orm.asyncsession`): loads, flushes and the commit run on the
        session's own worker thread, objects it loaded are read and changed in the task from
        memory; committed at exit, rolled back on an exception or a cancellation.  Inside
        another async session of the same task it is a savepoint."""
        return AsyncSession(self._require_context())

    async def a_session_dependency(self) -> AsyncIterator[AsyncSession]:
        """The request's async session, as a dependency with ``yield`` (FastAPI:
        ``session: AsyncSession = Depends(client.a_session_dependency, scope="function")``):
        the session of :class:`claystore.web.ASGISessionMiddleware` when it runs the request
        (committed with the response), else a new one committed when the handler returns."""
        outer = current_runner()
        if outer is not None and outer.owner is self._context and outer.session is not None:
            yield outer.session  # the middleware's: it ends with the response
            return
        async with self.a_session() as session:
            yield session

    def transactional(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorator: run each call of ``func`` in its own session (commit on return, roll
        back on an exception) — the session-per-request pattern for web handlers."""
        return transactional(self.session)(func)

    # -- queries -------------------------------------------------------------------------------

    def query(self, query: Any) -> Any:
        """Run a datastore ``Query`` on a model class (``Query(Key("/Employee"))``) as one
        SELECT; returns a cursor of objects."""
        return query_objects(self._require_context(), query)

    def object_store(self) -> ModelObjectStore:
        """The stored objects of this started client by class name and id or alias: what
        :class:`claystore.datastore.ObjectDatastore` works on (``ObjectDatastore(client)``)."""
        return ModelObjectStore(self._require_context())

    # -- backends ------------------------------------------------------------------------------

    def get_backends(self) -> dict[UUID, backend_registry.BackendInfo]:
        """Every backend, by id, the metadata database (the default backend) first
        (``list(client.get_backends())`` gives the ids); URLs shown without password."""
        context = self._require_context()
        return context.database.read(lambda conn: backend_registry.list_backends(conn, self.url))

    async def a_get_backends(self) -> dict[UUID, backend_registry.BackendInfo]:
        """Coroutine form of :meth:`get_backends`."""
        return await asyncio.to_thread(self.get_backends)

    def add_backend(self, url: str | URL, name: str | None = None) -> UUID:
        """Register another database (PostgreSQL or SQLite, empty or a former backend of this
        store) as a backend; returns its id.  Its system tables are created there and every
        client of this metadata database sees it.

        Raises :class:`~claystore.errors.DatabaseConnectionError` when it cannot be reached and
        :class:`~claystore.errors.BackendAlreadyExistsError` when it is registered already
        (under any URL), is a metadata database, or the name is taken; nothing is registered
        then.  ``name`` defaults to the database's name.
        """
        context = self._require_context()
        parsed = parse_url(url, "backend url")
        support = dialect_for(parsed)
        if support.is_memory:
            msg = (
                f"{support.describe()} lives in one process's memory: a backend must be a "
                "database other clients can open (a file or a server)"
            )
            raise ConfigurationError(msg)
        full_url = parsed.render_as_string(hide_password=False)
        existing = self.get_backends()
        if name is None:
            name = self._backend_name(parsed, {info.name for info in existing.values()})
        backend_registry.check_name(name)
        store_id = context.router.metadata_id
        backend_registry.check_free_name({info.name for info in existing.values()}, name)
        engine = self._new_engine(parsed, support)
        try:
            with engine.connect() as target:
                support.begin(target, write=False, lock_timeout=self.lock_timeout)
                backend_registry.check_target(target, full_url, store_id, set(existing))
                target.rollback()  # what was read: refused before anything is written
                self._prepare_system_tables(target, support, store_id=store_id)
                support.begin(target, write=True, lock_timeout=self.lock_timeout)
                meta = context.database.open_write()
                try:
                    backend_id = backend_registry.register(
                        meta, target, full_url, name, store_id=store_id
                    )
                    target.commit()
                    meta.commit()
                except BaseException:
                    meta.rollback()
                    raise
                finally:
                    context.database.close_write(meta)
        except sa.exc.SQLAlchemyError as exc:
            raise translate_error(exc, parsed) from None
        finally:
            engine.dispose()
        context.router.refresh()
        context.router.database(backend_id).ensure_tables()
        log.info("claystore backend %s added: %s", name, support.describe())
        return backend_id

    @staticmethod
    def _backend_name(url: URL, taken: set[str]) -> str:
        """A free name for a backend: its database's name (a file's stem), numbered if taken."""
        base = os.path.splitext(os.path.basename(url.database or ""))[0] or "backend"
        name, number = base[: backend_registry.MAX_NAME_LENGTH - 8], 1
        candidate = name
        while candidate in taken:
            number += 1
            candidate = f"{name}-{number}"
        return candidate

    def remove_backend(self, backend: Any) -> None:
        """Unregister a backend (by id or name).  Refused with
        :class:`~claystore.errors.BackendInUseError` while objects live on it (move them
        first), for the metadata database, and while a move to or from it is not repaired."""
        context = self._require_context()
        infos = self.get_backends()
        info = infos[backend_registry.resolve(infos, backend)]
        backend_registry.refuse_default(info)
        database = context.router.database(info.id)
        meta = context.database.open_write()
        try:
            target = database.open_write()
            try:
                backend_registry.check_removable(meta, target, info)
                backend_registry.unregister(meta, target, info.id)
                target.commit()
                meta.commit()
            finally:
                database.close_write(target)
        except BaseException:
            meta.rollback()
            raise
        finally:
            context.database.close_write(meta)
        forgotten = context.router.forget(info.id)
        if forgotten is not None:
            forgotten.close()
        log.info("claystore backend %s removed", info.name)

    def repair_moves(self) -> list[moving.Repaired]:
        """End the moves between backends that a crash interrupted (each is finished or
        undone, so that every object is on exactly one backend); moves still under way in a
        live process are left alone.  A start does it too (:attr:`repaired_at_start`); returns
        what was repaired."""
        return moving.repair(self._require_context().router)

    def federate(self) -> FederationReport:
        """Set up SQL reporting across backends in the metadata database (PostgreSQL): a view
        ``claystore_all.<table>`` per model class defined (and per link table) over the
        objects of every backend, through ``postgres_fdw`` foreign tables; run it again after
        adding a backend or changing the models.  Returns what was made, and the backends
        skipped (SQLite).  Raises :class:`~claystore.errors.FederationError`, changing
        nothing, when it cannot be set up.  See docs/backends.md."""
        return federate(self._require_context().router)

    async def a_federate(self) -> FederationReport:
        """Coroutine form of :meth:`federate`."""
        return await asyncio.to_thread(self.federate)

    def repair_transactions(self) -> list[twophase.Resolved]:
        """End the transactions across backends that a crash left in doubt (prepared on some
        backends, not yet committed or rolled back): committed everywhere when their commit
        was decided, else rolled back everywhere; commits under way in a live process are left
        alone.  A start does it too (:attr:`resolved_at_start`); returns what was ended."""
        return twophase.recover(self._require_context().router)

    async def a_add_backend(self, url: str | URL, name: str | None = None) -> UUID:
        """Coroutine form of :meth:`add_backend`."""
        return await asyncio.to_thread(self.add_backend, url, name)

    async def a_remove_backend(self, backend: Any) -> None:
        """Coroutine form of :meth:`remove_backend`."""
        await asyncio.to_thread(self.remove_backend, backend)
