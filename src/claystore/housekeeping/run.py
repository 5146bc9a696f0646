"""What every level of the integrity check shares: :class:`CheckRun`.

Owns :class:`CheckRun` (the backends, the classes checked, the report, the progress callback,
the backends that did not answer, what each backend holds: :class:`Contents`), the rule that
``stop_on_error`` stops at the first problem (:class:`StopCheck`), and what every housekeeping
module asks first: :func:`resolve_collection` (a ``collection`` argument -> its model class)
and :func:`registered_backends`.

Called by :mod:`.integrity` (which makes the run), by the level modules (:mod:`.classes`,
:mod:`.registry`, :mod:`.references`, :mod:`.data`) that read and report, and by
:mod:`.storage`, :mod:`.locks`, :mod:`.stats`, :mod:`.aliases`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.errors import ConfigurationError, DatabaseConnectionError
from claystore.housekeeping.report import IntegrityReport, Problem
from claystore.orm import backends as backend_registry
from claystore.orm import mapping
from claystore.orm.database import Database
from claystore.orm.mapping import ModelInfo
from claystore.orm.routing import Router
from claystore.orm.system import dc_object

__all__ = [
    "BATCH",
    "CheckRun",
    "Contents",
    "Progress",
    "StopCheck",
    "registered_backends",
    "resolve_collection",
]

#: Rows read per statement by the checks that stream a table (levels 2-4).
BATCH = 10_000

#: ``progress(task, done, total)``: ``done`` rows of ``total`` (None: unknown) checked in the
#: part of the check named ``task`` (``"level 4: Employee"``); called after each batch.
Progress = Callable[[str, int, "int | None"], None]


class StopCheck(Exception):
    """Raised by :meth:`CheckRun.report_problem` to stop at the first problem."""


@attrs.frozen
class Contents:
    """What one backend's database holds, read once per check: its table names and its
    registry's class names (``dc_object.class_name``) with their number of rows."""

    tables: frozenset[str]
    registry: dict[str, int]

    def is_stored(self, info: ModelInfo) -> bool:
        """Whether the backend holds ``info``'s class: its table exists or its registry names
        it (a class neither has is not a problem: its tables are made on first use)."""
        return info.tablename in self.tables or info.tablename in self.registry

    def has_tables(self, info: ModelInfo) -> bool:
        """Whether every table of ``info``'s class and its parents exists."""
        return all(model.tablename in self.tables for model in info.hierarchy)


@attrs.define
class CheckRun:
    """One run of the integrity check: what the level modules read and report into."""

    router: Router
    report: IntegrityReport
    #: every backend registered in the metadata database, by id
    backends: dict[UUID, backend_registry.BackendInfo]
    #: the model classes checked (a collection and its subclasses, else every model class)
    classes: list[ModelInfo]
    #: the collection's class, None when the whole store is checked
    collection: ModelInfo | None
    stop_on_error: bool
    progress: Progress | None = None
    batch: int = BATCH
    #: backends that did not answer (reported once, at level 2; skipped by every level)
    unreachable: dict[UUID, str] = attrs.field(factory=dict)
    #: what each backend holds (:meth:`contents`), read on first use
    read_contents: dict[UUID, Contents] = attrs.field(factory=dict)

    def report_problem(self, problem: Problem) -> None:
        """Add a problem to the report; stop the check if it stops at the first."""
        self.report.problems.append(problem)
        if self.stop_on_error:
            self.report.stopped = True
            raise StopCheck

    def backend_name(self, backend_id: UUID) -> str:
        """The name of a backend (its id when it is not registered)."""
        info = self.backends.get(backend_id)
        return info.name if info is not None else str(backend_id)

    def databases(self) -> Iterator[tuple[UUID, Database]]:
        """The database of every backend that answers, the metadata database first (the
        others are recorded in :attr:`unreachable`, with the reason)."""
        for backend_id in self.backends:
            if backend_id in self.unreachable:
                continue
            try:
                database = self.router.database(backend_id)
                with database.inspecting() as conn:
                    _ping(conn)
            except DatabaseConnectionError as exc:
                self.unreachable[backend_id] = str(exc)
                continue
            yield backend_id, database

    def contents(self, backend_id: UUID, database: Database) -> Contents:
        """What a backend holds (its tables, its registry's class names), read once per run
        without touching its tables (:meth:`~claystore.orm.database.Database.inspecting`)."""
        found = self.read_contents.get(backend_id)
        if found is None:
            with database.inspecting() as conn:
                tables = frozenset(sa.inspect(conn).get_table_names())
                counted = conn.execute(
                    sa.select(dc_object.c.class_name, sa.func.count()).group_by(
                        dc_object.c.class_name
                    )
                ).all()
            found = Contents(tables, {str(name): int(count) for name, count in counted})
            self.read_contents[backend_id] = found
        return found

    def stored_classes(self, backend_id: UUID, database: Database) -> list[ModelInfo]:
        """The classes checked that a backend holds (:meth:`Contents.is_stored`)."""
        contents = self.contents(backend_id, database)
        return [info for info in self.classes if contents.is_stored(info)]

    def tick(self, task: str, done: int, total: int | None) -> None:
        """Tell the progress callback, if any."""
        if self.progress is not None:
            self.progress(task, done, total)


def registered_backends(router: Router) -> dict[UUID, backend_registry.BackendInfo]:
    """Every backend registered in the metadata database, the metadata database first: one
    read of the system tables (no model table checked or created).  ``router.database(id)``
    opens one the router did not know yet."""
    metadata_url = router.metadata.dialect.url.render_as_string(hide_password=False)
    return router.metadata.read(
        lambda conn: backend_registry.list_backends(conn, metadata_url), ensure=False
    )


def _ping(conn: Any) -> None:
    conn.exec_driver_sql("SELECT 1").all()


def resolve_collection(collection: Any) -> ModelInfo | None:
    """The model class a ``collection`` argument names: a model class, its name or its table's
    name (None: the whole store); raises ConfigurationError naming the known classes."""
    if collection is None:
        return None
    info = getattr(collection, "_dc_info", None)
    if isinstance(info, ModelInfo):
        return info
    if isinstance(collection, str):
        by_table = mapping.info_for_table(collection)
        if by_table is not None:
            return by_table
        same = [i for i in mapping.models() if i.cls.__name__ == collection]
        if len(same) == 1:
            return same[0]
        if len(same) > 1:
            where = ", ".join(f"{i.cls.__module__}.{i.cls.__qualname__}" for i in same)
            msg = f"several model classes are named {collection!r} ({where}); pass the class"
            raise ConfigurationError(msg)
    known = ", ".join(sorted({i.cls.__name__ for i in mapping.models()})) or "none defined"
    msg = (
        f"collection {collection!r} is not a model class, a model class name or a table name "
        f"(model classes: {known})"
    )
    raise ConfigurationError(msg)
