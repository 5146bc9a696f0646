"""Level 1 of the integrity check: the classes.

Owns :func:`check`: on every backend that answers, the tables of every class the backend holds
(:meth:`~claystore.housekeeping.run.Contents.is_stored`: its table exists or its registry names
it) -- the class's table and its parents', their columns, indexes and link tables -- against
the model (:func:`claystore.orm.schema.compare`), each difference a ``SCHEMA`` problem; and,
when the whole store is checked, the class names of the registry that no loaded model class
has (``UNKNOWN_CLASS``, with the table name and the number of objects, never a crash).

A class that a backend does not hold at all is skipped: its tables are made on first use.
The tables are read as they are (:meth:`~claystore.orm.database.Database.inspecting`): the
check creates and evolves nothing.

Called by :mod:`.integrity`, first of the levels.
"""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa

from claystore.housekeeping.report import Problem, ProblemKind
from claystore.housekeeping.run import CheckRun, Contents
from claystore.orm import mapping, schema
from claystore.orm.database import Database
from claystore.orm.mapping import ModelInfo
from claystore.orm.schema import Difference, DifferenceKind

__all__ = ["check"]

TASK = "level 1: classes"


def check(run: CheckRun) -> None:
    """Level 1 over every backend that answers (those that do not are skipped here and
    reported by level 2)."""
    reachable = list(run.databases())
    for done, (backend_id, database) in enumerate(reachable, start=1):
        contents = run.contents(backend_id, database)
        check_tables(run, backend_id, database)
        if run.collection is None:
            check_class_names(run, backend_id, contents)
        run.tick(TASK, done, len(reachable))


# -- tables ------------------------------------------------------------------------------------


def _owners(infos: list[ModelInfo]) -> dict[str, tuple[sa.Table, ModelInfo, str | None]]:
    """Table name -> (the table, the class whose own table or link table it is, the link
    table's field) for the tables of ``infos`` and their parents."""
    owners: dict[str, tuple[sa.Table, ModelInfo, str | None]] = {}
    for info in infos:
        for model in info.hierarchy:
            owners.setdefault(model.tablename, (model.table, model, None))
            for field_name, link in model.link_tables.items():
                owners.setdefault(link.name, (link, model, field_name))
    return owners


def check_tables(run: CheckRun, backend_id: UUID, database: Database) -> None:
    """Compare the tables of the classes a backend holds with their model, one ``SCHEMA``
    problem per difference."""
    owners = _owners(run.stored_classes(backend_id, database))
    if not owners:
        return
    with database.inspecting() as conn:
        differences = schema.compare(conn, [table for table, _, _ in owners.values()])
    run.report.count("tables", len(owners))
    backend = run.backend_name(backend_id)
    for difference in differences:
        table, model, link_field = owners[difference.table]
        field = link_field or difference.column or _index_field(table, difference.index)
        run.report_problem(
            Problem(
                kind=ProblemKind.SCHEMA,
                message=_message(difference, model, backend),
                class_name=model.cls.__name__,
                table=difference.table,
                field=field,
                backend=backend,
            )
        )


def _index_field(table: sa.Table, name: str | None) -> str | None:
    """The column(s) of the model index ``name`` of ``table`` (None: no such index)."""
    for index in table.indexes:
        if index.name == name:
            columns = [getattr(e, "column", e) for e in index.expressions]
            return ", ".join(str(getattr(c, "name", c)) for c in columns)
    return None


def _message(difference: Difference, model: ModelInfo, backend: str) -> str:
    """What differs, and what to do about it."""
    kind = difference.kind
    if kind is DifferenceKind.MISSING_TABLE:
        fix = (
            "the rows it held are gone: restore the table from a backup; or, to go on without "
            'them, start a client with schema="create" (it makes the table empty) and run '
            "the check again at level 2 to find the objects left without rows"
        )
    elif difference.can_evolve:
        fix = (
            'start a client with schema="evolve" to apply it (nothing is lost), or write a '
            "migration: claystore db revision --autogenerate, then claystore db upgrade"
        )
    else:
        fix = (
            "write a migration (claystore db revision --autogenerate, edit it, then claystore "
            "db upgrade), or restore the table from a backup"
        )
    return f"{difference} (class {model.cls.__name__}, backend {backend!r}): {fix}"


# -- class names -------------------------------------------------------------------------------


def check_class_names(run: CheckRun, backend_id: UUID, contents: Contents) -> None:
    """One ``UNKNOWN_CLASS`` problem per registry class name no model class maps to."""
    run.report.count("registry classes", len(contents.registry))
    backend = run.backend_name(backend_id)
    for name, count in sorted(contents.registry.items()):
        if mapping.info_for_table(name) is not None:
            continue
        objects = f"{count} object{'s' if count != 1 else ''}"
        run.report_problem(
            Problem(
                kind=ProblemKind.UNKNOWN_CLASS,
                message=(
                    f"{objects} on backend {backend!r} are registered as class {name!r} "
                    f"(dc_object.class_name, table {name!r}) and no loaded model class has that "
                    "table: import the module that defines the class before the check (or "
                    "give the class __tablename__ = " + repr(name) + "); if the class is gone "
                    "for good, delete those objects' rows (registry and table)"
                ),
                class_name=name,
                table=name,
                backend=backend,
            )
        )
