"""``Client``: where the data lives, and the start/stop of everything that uses it.

Owns configuration (a URL, dataClay-style arguments, or the ``DC_*`` environment variables;
default ``sqlite:///claystore.db``), the SQLAlchemy engine, schema creation at start, the
active-client context variables (through :class:`~claystore.orm.context.ObjectContext`), and
the client-level API (``get_backends``, ...).

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
import numbers
import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from claystore.dialects import dialect_class, dialect_for, translate_error
from claystore.dialects.base import Dialect
from claystore.dialects.registry import DEFAULT_URL, configured_url, parse_url
from claystore.errors import ClientNotStartedError, ConfigurationError
from claystore.migrations.system import (
    SYSTEM_SCHEMA_VERSION,
    read_system_version,
    upgrade_system_schema,
)
from claystore.orm import backends as backend_registry
from claystore.orm.aliases import check_dataset
from claystore.orm.context import ObjectContext
from claystore.orm.database import Database, check_schema_mode
from claystore.orm.mapping import metadata
from claystore.orm.modelquery import query_objects
from claystore.orm.objectstore import ModelObjectStore
from claystore.orm.session import Session, transactional
from claystore.orm.system import dc_schema

__all__ = ["DEFAULT_URL", "Client"]

DEFAULT_DATASET = "default"
#: The bounds of ``lock_timeout`` in seconds: 1 ms (PostgreSQL reads 0 as "wait forever"), and
#: the longest wait both engines count in milliseconds (a signed 32-bit number).
MIN_LOCK_TIMEOUT = 0.001
MAX_LOCK_TIMEOUT = 2_147_483.0

log = logging.getLogger("claystore")

P = ParamSpec("P")
R = TypeVar("R")


def _postgres_url(
    host: str,
    port: Any,
    username: str | None,
    password: str | None,
    database: str | None,
) -> URL:
    """The PostgreSQL URL of dataClay-style arguments (the port defaults to 5432)."""
    return dialect_class("postgresql").server_url(host, port, username, password, database)


def resolve_url(
    url: str | URL | None,
    *,
    host: str | None,
    port: Any,
    username: str | None,
    password: str | None,
    database: str | None,
    environ: Mapping[str, str],
) -> URL:
    """The database URL from arguments, then environment, then the default."""
    if url is not None and (host is not None or port is not None):
        msg = "give either a URL or host/port arguments, not both"
        raise ConfigurationError(msg)
    if url is not None:
        if not isinstance(url, str | URL):
            msg = f"url must be a str or an sqlalchemy URL, not {type(url).__name__}"
            raise ConfigurationError(msg)
        return parse_url(url)
    if host is not None:
        return _postgres_url(host, port, username, password, database)
    return configured_url(
        environ, port=port, username=username, password=password, database=database
    )


def check_lock_timeout(value: object) -> float:
    """``value`` as seconds to wait for a lock; raises ConfigurationError unless it is a
    number from :data:`MIN_LOCK_TIMEOUT` to :data:`MAX_LOCK_TIMEOUT`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"lock_timeout must be a number of seconds (such as 30), not {value!r}"
        raise ConfigurationError(msg)
    seconds = float(value)
    if not MIN_LOCK_TIMEOUT <= seconds <= MAX_LOCK_TIMEOUT:  # NaN too
        msg = (
            f"lock_timeout must be from {MIN_LOCK_TIMEOUT:g} to {MAX_LOCK_TIMEOUT:.0f} seconds "
            f"(about 24 days), not {value!r}"
        )
        raise ConfigurationError(msg)
    return seconds


class Client:
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
        self._engine: Engine | None = None
        self._context: ObjectContext | None = None
        self._token: Any = None

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
        options: dict[str, Any] = {"echo": self._echo, **self._support.engine_options()}
        options.update(self._engine_options)
        engine = sa.create_engine(self._url, **options)
        self._support.configure(engine, lock_timeout=self.lock_timeout)
        try:
            with engine.connect() as conn:
                default_backend = self._read_system_tables(conn)
                if default_backend is None:  # something to create or upgrade: under the lock
                    self._support.begin(conn, write=True, lock_timeout=self.lock_timeout)
                    self._support.lock_schema(conn)
                    upgrade_system_schema(conn, self._support)
                    default_backend = backend_registry.ensure_default(conn)
                    conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise translate_error(exc, self._url) from None
        except BaseException:  # a refused system schema: nothing was written
            engine.dispose()
            raise
        database = Database(
            engine, self._support, lock_timeout=self.lock_timeout, schema=self.schema
        )
        context = self._context
        if context is None:  # the same context across restarts: its objects stay usable
            context = ObjectContext(
                database,
                dataset=self.dataset,
                username=self.username,
                default_backend_id=default_backend,
                lock_timeout=self.lock_timeout,
                owner=self,
            )
        else:
            context.reopen(database, default_backend_id=default_backend)
        try:
            database.ensure_tables()
        except Exception:
            context.deactivate()
            engine.dispose()
            raise
        self._engine = engine
        self._context = context
        self._token = context.activate()
        log.info("claystore client started on %s (dataset %s)", self.url, self.dataset)
        return self

    def _read_system_tables(self, conn: Connection) -> UUID | None:
        """The default backend's id when the system tables are in place at this release's
        version, read without taking a lock (a start then never waits for another process's
        writer); None when something must be created or upgraded."""
        self._support.begin(conn, write=False, lock_timeout=self.lock_timeout)
        try:
            if not sa.inspect(conn).has_table(dc_schema.name):
                return None
            if read_system_version(conn) != SYSTEM_SCHEMA_VERSION:
                return None
            return backend_registry.find_default(conn)
        finally:
            conn.rollback()

    def stop(self) -> None:
        """Disconnect.  Objects keep their values in memory; using them needs a restart."""
        context = self._context
        if context is not None and context.is_open:
            context.deactivate(self._token)
            self._token = None
        if self._engine is not None:
            self._engine.dispose()
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
        """Every backend, by id (``list(client.get_backends())`` gives the ids)."""
        context = self._require_context()
        with context.connection() as conn:
            return backend_registry.list_backends(conn, self.url)

    async def a_get_backends(self) -> dict[UUID, backend_registry.BackendInfo]:
        """Coroutine form of :meth:`get_backends`."""
        return await asyncio.to_thread(self.get_backends)
