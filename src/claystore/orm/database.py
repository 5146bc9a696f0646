"""One client's database: the engine and its dialect, every connection claystore opens on it,
and the model tables known to exist there.

Owns :class:`Database`, the one place where connections are opened, in three shapes:

- :meth:`Database.reader`: a short read outside any transaction (committed state; autocommit
  on PostgreSQL); :meth:`Database.read` runs such a read once more on a new connection when
  the first one was lost (a server restart); :meth:`Database.inspecting`: the same without
  the schema check (the integrity check's reads, which must not change the tables);
- :meth:`Database.open_write` / :meth:`Database.close_write`: the connection of a write
  transaction, begun so that it holds what it needs (SQLite ``BEGIN IMMEDIATE``) — used by
  :class:`claystore.orm.transaction.Transaction`, which opens it lazily;
- :meth:`Database.read_transaction`: a read transaction whose rows stream in chunks (a query
  iterated outside any transaction).

Driver errors are translated here (:func:`claystore.dialects.translate.translate_error`).  An
in-memory SQLite database is one shared connection, used by one thread at a time.

Also owns :meth:`Database.ensure_tables`: the schema check of model classes defined since the
last check (cheap when none were), per the client's schema mode (:data:`SCHEMA_MODES`):
compared first without a lock (so that a start never waits for another process's writer when
the tables are in place), then, only if something must change, again under the schema lock in
a write transaction: missing tables are created, existing ones compared with their classes
(:mod:`claystore.orm.schema`), the safe differences applied in ``"evolve"`` mode, and any
other difference raised as :class:`~claystore.errors.SchemaDriftError` before anything is read
or written.  Callers ensure tables *before* they write (the transaction does it before each
flush), so the layers below never reach back up for DDL.

Created by :mod:`claystore.orm.context` (one per start of a client).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from claystore.dialects.base import Dialect
from claystore.dialects.translate import translate_error
from claystore.errors import (
    ClientClosedError,
    ConfigurationError,
    ConnectionLostError,
    SchemaDriftError,
)
from claystore.orm import mapping, schema

T = TypeVar("T")

#: How a client treats the model tables at start (``Client(..., schema=...)``):
#: ``create`` missing tables and check the others; ``evolve``: also apply the changes that
#: cannot lose data; ``check``: create nothing, any difference raises; ``skip``: neither.
SCHEMA_MODES = ("create", "evolve", "check", "skip")


def check_schema_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`SCHEMA_MODES`; raises ConfigurationError."""
    if mode not in SCHEMA_MODES:
        msg = f"schema={mode!r} is not a schema mode; use one of {', '.join(SCHEMA_MODES)}"
        raise ConfigurationError(msg)
    return mode


class Database:
    """The engine of one started client, and every connection claystore opens on it."""

    def __init__(
        self, engine: Engine, dialect: Dialect, *, lock_timeout: float, schema: str = "create"
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.backend_id: UUID | None = None  # set by the router that opens it
        self.lock_timeout = lock_timeout
        self.schema = schema  # one of SCHEMA_MODES (checked by the client)
        self.is_open = True
        self._checked: dict[str, sa.Table] = {}  # table name -> the Table checked
        #: tables of classes defined after start that differ from them -> the error raised
        self.drifted: dict[str, SchemaDriftError] = {}
        self._generation = -1
        self._can_prepare: bool | None = None  # asked once: see can_prepare
        self._ddl_lock = threading.Lock()
        # an in-memory SQLite database is one shared connection: use it one thread at a time
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if dialect.is_memory else contextlib.nullcontext()
        )

    def __repr__(self) -> str:
        return f"<Database {self.dialect.describe()}>"

    def close(self) -> None:
        """Stop: no more connections (the engine is disposed of by its owner)."""
        self.is_open = False

    def check_open(self) -> None:
        """Raise :class:`ClientClosedError` if the client was stopped."""
        if not self.is_open:
            msg = (
                f"the client of {self.dialect.describe()} is stopped; start it again "
                "(client.start() or `with client:`) to use its objects"
            )
            raise ClientClosedError(msg)

    def translate(self, exc: BaseException) -> BaseException:
        """The claystore error for a driver error on this database."""
        return translate_error(exc, self.dialect.url)

    # -- connections -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connected(self, *, ensure: bool = True) -> Iterator[Connection]:
        """A connection (tables ensured unless ``ensure`` is false, driver errors translated),
        closed at the end."""
        self.check_open()
        if ensure:
            self.ensure_tables()
        with self._serial:
            try:
                with self.engine.connect() as conn:
                    yield conn
            except sa.exc.SQLAlchemyError as exc:
                raise self.translate(exc) from exc

    @contextlib.contextmanager
    def reader(self) -> Iterator[Connection]:
        """A connection for a short read outside any transaction (committed state)."""
        with self._connected() as conn:
            yield self.dialect.reader(conn)

    @contextlib.contextmanager
    def inspecting(self) -> Iterator[Connection]:
        """A connection for a short read (as :meth:`reader`) that leaves the model tables as
        they are: no schema check, nothing created.  What the integrity check reads through,
        which reports a missing or drifted table instead of acting on it."""
        with self._connected(ensure=False) as conn:
            yield self.dialect.reader(conn)

    def read(self, run: Callable[[Connection], T], *, ensure: bool = True) -> T:
        """``run(conn)`` on a connection for a short read (see :meth:`reader`; ``ensure=False``:
        :meth:`inspecting`, for reads of the system tables alone); run once more on a new
        connection if the first one was lost (a server restart): a read is safe to repeat."""
        opened = self.reader if ensure else self.inspecting
        try:
            with opened() as conn:
                return run(conn)
        except ConnectionLostError:
            with opened() as conn:
                return run(conn)

    @contextlib.contextmanager
    def read_transaction(self, *, chunk: int, ensure: bool = True) -> Iterator[Connection]:
        """A read transaction whose results stream ``chunk`` rows at a time (rolled back at
        the end: it wrote nothing); ``ensure=False`` leaves the model tables as they are (no
        schema check, nothing created: the integrity check, as :meth:`inspecting`)."""
        with self._connected(ensure=ensure) as conn:
            conn.execution_options(yield_per=chunk)
            self.dialect.begin(conn, write=False, lock_timeout=self.lock_timeout)
            yield conn
            conn.rollback()

    def open_write(self) -> Connection:
        """A connection with a write transaction begun; end it with :meth:`close_write`."""
        self.check_open()
        self.ensure_tables()
        serial = self._serial
        serial.__enter__()
        try:
            conn = self.engine.connect()
            try:
                self.dialect.begin(conn, write=True, lock_timeout=self.lock_timeout)
            except BaseException:
                conn.close()
                raise
        except sa.exc.SQLAlchemyError as exc:
            serial.__exit__(None, None, None)
            raise self.translate(exc) from exc
        except BaseException:
            serial.__exit__(None, None, None)
            raise
        return conn

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction of its own (:meth:`open_write`), committed at the end of the
        block, rolled back if it raises."""
        conn = self.open_write()
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            self.close_write(conn)

    def close_write(self, conn: Connection) -> None:
        """Close a connection from :meth:`open_write` (its transaction already ended)."""
        try:
            conn.close()
        finally:
            self._serial.__exit__(None, None, None)

    def can_prepare(self) -> bool:
        """Whether this database can take part in a two-phase commit (asked once, on a short
        read, then kept; never asked of an engine without prepared transactions)."""
        if self._can_prepare is None:
            dialect = self.dialect
            self._can_prepare = dialect.has_two_phase_commit and self.read(dialect.can_prepare)
        return self._can_prepare

    # -- tables ------------------------------------------------------------------------------

    def has_new_tables(self) -> bool:
        """True when model classes were defined since the tables were last ensured."""
        return mapping.generation() != self._generation

    def ensure_tables(self, conn: Connection | None = None) -> None:
        """Check the tables of model classes defined since the last check (cheap when none
        were): create what is missing, compare the rest, evolve or raise per :attr:`schema`.
        With ``conn``, inside that transaction (DDL is transactional on both engines); else in
        a transaction of its own, all or nothing."""
        generation = mapping.generation()
        if generation == self._generation:
            return
        with self._ddl_lock:
            tables = [
                t for t in mapping.metadata.sorted_tables if self._checked.get(t.name) is not t
            ]
            try:
                if tables and self.schema != "skip":
                    if conn is not None:
                        self._check(conn, tables)
                    else:
                        self._check_apart(tables)
            except SchemaDriftError as exc:
                # the classes that drift do not block the others: their tables count as
                # checked (their objects are never written: refuse_drifted), the others are
                # checked again next time (what this check created was rolled back)
                drifting = {d.table for d in exc.differences}
                self.drifted.update((name, exc) for name in drifting)
                self._checked.update((t.name, t) for t in tables if t.name in drifting)
                raise
            self._checked.update((t.name, t) for t in tables)
            self._generation = generation

    def _check_apart(self, tables: list[sa.Table]) -> None:
        """:meth:`_check` in a transaction of its own: first a read transaction (which never
        waits for another process's writer), then, only when the tables must be created or
        evolved, a write transaction."""
        try:
            with self._serial, self.engine.connect() as own:
                self.dialect.begin(own, write=False, lock_timeout=self.lock_timeout)
                differences = schema.compare(own, tables)
                own.rollback()
                if not self._would_change(differences):
                    self._refuse(differences)
                    return
                self.dialect.begin(own, write=True, lock_timeout=self.lock_timeout)
                self._check(own, tables, changing=True)
                own.commit()
        except sa.exc.SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def _would_change(self, differences: list[schema.Difference]) -> bool:
        """Whether the schema mode changes the tables for some of ``differences``."""
        if self.schema == "create":
            return any(d.kind is schema.DifferenceKind.MISSING_TABLE for d in differences)
        return self.schema == "evolve" and any(d.can_evolve for d in differences)

    def _refuse(self, differences: list[schema.Difference]) -> None:
        """Raise the :class:`SchemaDriftError` of ``differences``, if there are any."""
        if differences:
            where = self.dialect.describe()
            raise schema.drift_error(where, differences, evolving=self.schema == "evolve")

    def refuse_drifted(self, classes: Iterable[type]) -> None:
        """Raise the :class:`SchemaDriftError` of the first of ``classes`` (model classes about
        to be written) whose tables differ from it."""
        for cls in classes:
            info: mapping.ModelInfo | None = cls.__dict__.get("_dc_info")
            if info is None:
                continue
            for model in info.hierarchy:
                for table in (model.table, *model.link_tables.values()):
                    error = self.drifted.get(table.name)
                    if error is not None and self._checked.get(table.name) is table:
                        raise error

    def _check(self, conn: Connection, tables: list[sa.Table], *, changing: bool = False) -> None:
        """The schema check of ``tables`` on ``conn`` (see :attr:`schema`): compared without
        a lock, and only when the mode changes something (or the caller found it would:
        ``changing``), compared again under the schema lock (held to the end of the
        transaction) and changed."""
        differences = [] if changing else schema.compare(conn, tables)
        if changing or self._would_change(differences):
            self.dialect.lock_schema(conn)
            differences = schema.compare(conn, tables)
            missing = [
                d.table for d in differences if d.kind is schema.DifferenceKind.MISSING_TABLE
            ]
            if missing:
                mapping.metadata.create_all(
                    conn, tables=[t for t in tables if t.name in missing], checkfirst=False
                )
                differences = [d for d in differences if d.table not in missing]
            if differences and self.schema == "evolve":
                schema.evolve(conn, self.dialect, differences)
                changed = {d.table for d in differences}
                differences = schema.compare(conn, [t for t in tables if t.name in changed])
        self._refuse(differences)
