"""Level 2 of the integrity check: the registry.

Owns :func:`check`, which reports, in this order:

- every registered backend that does not answer (``UNREACHABLE_BACKEND``);
- every move between backends left in the journal (``PENDING_MOVE``: ``dc_move``) and every
  commit across backends left in doubt (``PENDING_COMMIT``: a ``dc_commit`` record, or a
  transaction of this store left prepared on a backend with no record);
- on each backend, for each class checked whose tables are there (level 1 reports the others):
  registry rows whose object row is missing from one of the class's tables
  (``MISSING_OBJECT_ROW``), and object rows -- in the root table and in each subclass table --
  without a registry row (``UNREGISTERED_ROW``); the objects of a pending move are left out
  (their shadows on the target are the move's, not a problem);
- version lineage: registry rows whose ``original_id`` or ``parent_id`` is in no backend's
  registry (``BROKEN_VERSION``);
- aliases (``dc_alias``, metadata database) naming an object no backend's registry holds
  (``DANGLING_ALIAS``).

The row checks are anti-joins in SQL over windows of ids (:func:`.scan.windows`): memory and
statement sizes stay bounded whatever the size of the tables.  Ids that may live on another
backend (an original, an aliased object) are looked up there in batches
(:func:`.scan.found_on`); when a backend does not answer, nothing is reported missing for
want of it.  With a collection, only its classes' rows, versions and moves are checked
(aliases and commits name no class: they are checked with the whole store).

Called by :mod:`.integrity`, after level 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from claystore.housekeeping.report import Problem, ProblemKind
from claystore.housekeeping.run import CheckRun
from claystore.housekeeping.scan import Window, found_on, windows
from claystore.orm import mapping, moving, twophase
from claystore.orm.database import Database
from claystore.orm.mapping import ModelInfo
from claystore.orm.system import dc_alias, dc_commit, dc_move, dc_object

__all__ = ["check"]

REPAIR_MOVES = "run client.repair_moves() (or `claystore backends repair`)"
REPAIR_COMMITS = "run client.repair_transactions() (or `claystore backends repair`)"

Reachable = list[tuple[UUID, Database]]


def check(run: CheckRun) -> None:
    """Level 2 over every backend (see the module docstring)."""
    reachable = list(run.databases())
    check_backends(run)
    moving_ids = check_moves(run)
    if run.collection is None:
        check_commits(run, reachable)
    for backend_id, database in reachable:
        check_rows(run, backend_id, database, moving_ids)
    check_versions(run, reachable)
    if run.collection is None:
        check_aliases(run, reachable)


# -- backends, moves, commits ------------------------------------------------------------------


def check_backends(run: CheckRun) -> None:
    """One ``UNREACHABLE_BACKEND`` problem per backend that did not answer."""
    for backend_id, reason in run.unreachable.items():
        info = run.backends.get(backend_id)
        where = f" at {info.url}" if info is not None else ""
        run.report_problem(
            Problem(
                kind=ProblemKind.UNREACHABLE_BACKEND,
                message=(
                    f"backend {run.backend_name(backend_id)!r} ({backend_id}){where} does not "
                    f"answer, so its objects were not checked: {reason}. Make its server "
                    "reachable (or correct its URL), then run the check again"
                ),
                backend=run.backend_name(backend_id),
            )
        )


def _is_alive(work: moving.Entry | twophase.Record) -> bool:
    """Whether the process that owns a journal entry or commit record still runs (a malformed
    owner counts as gone)."""
    try:
        return work.alive
    except ValueError:
        return False


def _owner_text(owner: str, *, alive: bool) -> str:
    return f"by process {owner}, {'still running' if alive else 'gone'}"


def check_moves(run: CheckRun) -> set[UUID]:
    """One ``PENDING_MOVE`` problem per journal entry (of a class checked); returns the ids of
    the objects every entry moves."""
    checked = {model.tablename for info in run.classes for model in info.hierarchy}
    moving_ids: set[UUID] = set()
    with run.router.metadata.inspecting() as conn:
        entries = [moving.Entry.of(row) for row in conn.execute(sa.select(dc_move))]
    for entry in entries:
        moving_ids.update(entry.object_ids)
        tables = [name for name, _ in entry.tables]
        if run.collection is not None and not checked.intersection(tables):
            continue
        known = [i for i in map(mapping.info_for_table, tables) if i is not None]
        alive = _is_alive(entry)
        ids = ", ".join(str(i) for i in entry.object_ids[:5])
        more = "..." if len(entry.object_ids) > 5 else ""
        state = "is under way" if alive else "was interrupted"
        run.report_problem(
            Problem(
                kind=ProblemKind.PENDING_MOVE,
                message=(
                    f"the move {entry.id} of {len(entry.object_ids)} object(s) ({ids}{more}) "
                    f"from backend {run.backend_name(entry.source)!r} to "
                    f"{run.backend_name(entry.target)!r} {state} in state {entry.state!r} "
                    f"({_owner_text(entry.owner, alive=alive)}): {REPAIR_MOVES} to finish or undo "
                    "it" + (" once its process has ended" if alive else "")
                ),
                class_name=known[0].cls.__name__ if known else None,
                object_id=entry.object_ids[0] if len(entry.object_ids) == 1 else None,
                backend=run.backend_name(entry.source),
            )
        )
    return moving_ids


def check_commits(run: CheckRun, reachable: Reachable) -> None:
    """One ``PENDING_COMMIT`` problem per commit record left, and per transaction of this
    store left prepared on a backend without a record."""
    prefix = twophase.gid_prefix(run.router.metadata_id)
    prepared: dict[str, UUID] = {}
    for backend_id, database in reachable:  # listed before the records are read: as recover
        dialect = database.dialect
        if dialect.has_two_phase_commit:
            with database.inspecting() as conn:
                for gid in dialect.prepared_gids(conn, prefix):
                    prepared.setdefault(gid, backend_id)
    with run.router.metadata.inspecting() as conn:
        records = [twophase.Record.of(row) for row in conn.execute(sa.select(dc_commit))]
    recorded = {gid for record in records for _, gid in record.participants}
    for record in records:
        alive = _is_alive(record)
        where = ", ".join(sorted({repr(run.backend_name(b)) for b, _ in record.participants}))
        run.report_problem(
            Problem(
                kind=ProblemKind.PENDING_COMMIT,
                message=(
                    f"the commit {record.id} across backends ({where or 'none yet'}) is left in "
                    f"state {record.state!r} ({_owner_text(record.owner, alive=alive)}): "
                    "its prepared transactions hold their rows locked until it ends; "
                    f"{REPAIR_COMMITS} to commit or roll it back everywhere"
                ),
                backend=run.backend_name(run.router.metadata_id),
            )
        )
    for gid, backend_id in prepared.items():
        if gid in recorded:
            continue
        run.report_problem(
            Problem(
                kind=ProblemKind.PENDING_COMMIT,
                message=(
                    f"the transaction {gid} is left prepared on backend "
                    f"{run.backend_name(backend_id)!r} with no record of its commit (a crash "
                    "before its decision): it holds its rows locked; "
                    f"{REPAIR_COMMITS} to roll it back"
                ),
                backend=run.backend_name(backend_id),
            )
        )


# -- object rows and registry rows -------------------------------------------------------------


def check_rows(run: CheckRun, backend_id: UUID, database: Database, skip: set[UUID]) -> None:
    """Registry rows against object rows on one backend, for the classes checked whose
    tables are all there; the objects of ``skip`` (being moved) left out."""
    contents = run.contents(backend_id, database)
    infos = [i for i in run.stored_classes(backend_id, database) if contents.has_tables(i)]
    registered = [i for i in infos if contents.registry.get(i.tablename)]
    if registered:
        _missing_rows(run, backend_id, database, registered, skip)
    reported: set[UUID] = set()
    for table, dc_classes in _object_tables(infos):
        _unregistered_rows(run, backend_id, database, (table, dc_classes), skip, reported)


def _missing_rows(
    run: CheckRun,
    backend_id: UUID,
    database: Database,
    infos: list[ModelInfo],
    skip: set[UUID],
) -> None:
    """``MISSING_OBJECT_ROW``: registry rows of the classes of ``infos`` (each its own, not
    its subclasses') without a row in each of their tables.  The registry is read in windows
    of ids (a walk of its primary key: no scan per window whatever the engine's statistics),
    each window once per class."""
    task = "level 2: registry rows"
    total = sum(run.contents(backend_id, database).registry.values())
    backend = run.backend_name(backend_id)
    done = 0
    with database.inspecting() as conn:
        for window in windows(conn, dc_object.c.id, [], run.batch):
            for info in infos:
                for row in conn.execute(_missing_in(info, window)):
                    object_id: UUID = row[0]
                    if object_id in skip:
                        continue
                    missing = [
                        m.tablename for m, gone in zip(info.hierarchy, row[1:], strict=True) if gone
                    ]
                    _report_missing(run, info, object_id, missing, backend)
            done += window.rows
            run.report.count("registry rows", window.rows)
            run.tick(task, done, total)


def _missing_in(info: ModelInfo, window: Window) -> sa.Select[Any]:
    """The registry rows of ``info``'s class in ``window`` that miss a row in one of its
    tables: the id, then per table whether it misses its row.  The window bounds both sides
    of each join (in its ON clause), so the engine reads every table by its key in the
    window's range: without statistics PostgreSQL would otherwise hash a whole table per
    window."""
    registry = dc_object.alias("registry")
    key = registry.c.id
    tables = [model.table.alias(f"t{n}") for n, model in enumerate(info.hierarchy)]
    joined: sa.FromClause = registry
    for table in tables:
        joined = joined.outerjoin(table, sa.and_(table.c.id == key, *window.bounds(table.c.id)))
    return (
        sa.select(key, *(t.c.id.is_(None) for t in tables))
        .select_from(joined)
        .where(
            registry.c.class_name == info.tablename,
            *window.bounds(key),
            sa.or_(*(t.c.id.is_(None) for t in tables)),
        )
        .order_by(key)
    )


def _report_missing(
    run: CheckRun, info: ModelInfo, object_id: UUID, missing: list[str], backend: str
) -> None:
    name = info.cls.__name__
    tables = " and ".join(repr(t) for t in missing)
    run.report_problem(
        Problem(
            kind=ProblemKind.MISSING_OBJECT_ROW,
            message=(
                f"{name} {object_id} is registered on backend {backend!r} (dc_object) but "
                f"has no row in table {tables}: loading it fails. Restore the row from a "
                "backup, or delete the registry row (and the object's other rows) if the "
                "object is gone for good"
            ),
            class_name=name,
            table=missing[0],
            object_id=object_id,
            backend=backend,
        )
    )


def _object_tables(infos: Sequence[ModelInfo]) -> list[tuple[sa.Table, list[str] | None]]:
    """The tables holding the objects of ``infos`` (classes checked, all their tables there),
    each with the ``dc_class`` values to read of it (None: every row): every own table, and
    the root table of a class whose root is not checked itself (its rows of checked classes)."""
    names = {info.tablename for info in infos}
    tables: list[tuple[sa.Table, list[str] | None]] = [(info.table, None) for info in infos]
    partial: dict[str, list[str]] = {}
    for info in infos:
        if info.root.tablename not in names:
            partial.setdefault(info.root.tablename, []).append(info.tablename)
    for root_name, classes in partial.items():
        root = mapping.info_for_table(root_name)
        if root is not None:
            tables.append((root.table, sorted(classes)))
    return tables


def _unregistered_rows(  # noqa: PLR0917 - the scan of one table on one backend
    run: CheckRun,
    backend_id: UUID,
    database: Database,
    scanned: tuple[sa.Table, list[str] | None],
    skip: set[UUID],
    reported: set[UUID],
) -> None:
    """``UNREGISTERED_ROW``: rows of one object table without a registry row."""
    table, dc_classes = scanned
    info = mapping.info_for_table(table.name)
    assert info is not None
    is_root = info.parent is None
    where: list[sa.ColumnElement[bool]] = []
    if dc_classes is not None:
        where.append(table.c.dc_class.in_(dc_classes))
    registry = dc_object.alias("registry")
    columns: list[Any] = [table.c.id, table.c.dc_class if is_root else sa.literal(None)]
    backend = run.backend_name(backend_id)
    task = f"level 2: {info.cls.__name__} rows"
    done = 0
    with database.inspecting() as conn:
        for window in windows(conn, table.c.id, [], run.batch):  # a walk of the key
            statement = (
                sa.select(*columns)
                .select_from(
                    table.outerjoin(  # both sides read by key (see _missing_in)
                        registry,
                        sa.and_(registry.c.id == table.c.id, *window.bounds(registry.c.id)),
                    )
                )
                .where(registry.c.id.is_(None), *where, *window.bounds(table.c.id))
                .order_by(table.c.id)
            )
            for object_id, dc_class in conn.execute(statement):
                if object_id in skip or object_id in reported:
                    continue
                reported.add(object_id)
                owner = mapping.info_for_table(dc_class) if dc_class else info
                name = owner.cls.__name__ if owner is not None else str(dc_class)
                _report_unregistered(run, name, table.name, object_id, backend)
            done += window.rows
            run.report.count(f"{info.cls.__name__} rows", window.rows)
            run.tick(task, done, None)


def _report_unregistered(
    run: CheckRun, name: str, table: str, object_id: UUID, backend: str
) -> None:
    run.report_problem(
        Problem(
            kind=ProblemKind.UNREGISTERED_ROW,
            message=(
                f"{name} {object_id} has a row in table {table!r} on backend {backend!r} but "
                "no registry row (dc_object): no query, alias or get_by_id finds it. Restore "
                "its registry row from a backup if the object should exist, else delete its "
                "rows"
            ),
            class_name=name,
            table=table,
            object_id=object_id,
            backend=backend,
        )
    )


# -- versions and aliases ----------------------------------------------------------------------


def check_versions(run: CheckRun, reachable: Reachable) -> None:
    """``BROKEN_VERSION``: registry rows of versions (of the classes checked) whose original
    or parent is in no backend's registry."""
    everywhere = [database for _, database in reachable]
    for backend_id, database in reachable:
        names = [i.tablename for i in run.stored_classes(backend_id, database)]
        if not names:
            continue
        version = dc_object
        original, parent = dc_object.alias("original"), dc_object.alias("parent")
        lost_original = version.c.original_id.is_not(None) & original.c.id.is_(None)
        lost_parent = version.c.parent_id.is_not(None) & parent.c.id.is_(None)
        has_original = version.c.original_id.is_not(None)
        joined = version.outerjoin(original, original.c.id == version.c.original_id).outerjoin(
            parent, parent.c.id == version.c.parent_id
        )
        of_classes = version.c.class_name.in_(names)
        with database.inspecting() as conn:
            # the walk of the partial index of versions (no scan per window), the classes
            # filtered in the window's statement
            for window in windows(conn, version.c.id, [has_original], run.batch):
                statement = (
                    sa.select(
                        version.c.id,
                        version.c.class_name,
                        lost_original,
                        lost_parent,
                        version.c.original_id,
                        version.c.parent_id,
                    )
                    .select_from(joined)
                    .where(of_classes, *window.bounds(version.c.id), lost_original | lost_parent)
                    .order_by(version.c.id)
                )
                suspects = conn.execute(statement).all()
                run.report.count("versions", window.rows)
                if suspects:
                    _report_versions(run, backend_id, suspects, everywhere)


def _report_versions(
    run: CheckRun, backend_id: UUID, suspects: Sequence[Any], everywhere: list[Database]
) -> None:
    """Report the versions among ``suspects`` (rows whose original or parent is not on their
    own backend) whose original or parent no backend holds."""
    if run.unreachable:
        return  # it may be on the backend that does not answer
    wanted = {row.original_id for row in suspects if row[2]} | {
        row.parent_id for row in suspects if row[3]
    }
    found = found_on(everywhere, wanted)
    backend = run.backend_name(backend_id)
    for row in suspects:
        gone = [
            (what, object_id)
            for what, object_id, lost in (
                ("original_id", row.original_id, row[2]),
                ("parent_id", row.parent_id, row[3]),
            )
            if lost and object_id not in found
        ]
        if not gone:
            continue
        info = mapping.info_for_table(row.class_name)
        name = info.cls.__name__ if info is not None else row.class_name
        which = " and its ".join(
            f"{'original' if what == 'original_id' else 'parent'} {object_id}"
            for what, object_id in gone
        )
        run.report_problem(
            Problem(
                kind=ProblemKind.BROKEN_VERSION,
                message=(
                    f"{name} {row.id} on backend {backend!r} is a version whose {which} is in "
                    "no backend's registry: it can no longer be consolidated. Restore the "
                    "object from a backup, or delete the version"
                ),
                class_name=name,
                object_id=row.id,
                field=gone[0][0],
                backend=backend,
            )
        )


def check_aliases(run: CheckRun, reachable: Reachable) -> None:
    """``DANGLING_ALIAS``: aliases (metadata database) naming an object in no backend's
    registry."""
    metadata = run.router.metadata
    everywhere = [database for _, database in reachable]
    if all(database is not metadata for database in everywhere):
        return  # the metadata database did not answer: reported as unreachable
    alias = dc_alias
    registry = dc_object.alias("registry")
    joined = alias.outerjoin(registry, registry.c.id == alias.c.object_id)
    backend = run.backend_name(run.router.metadata_id)
    with metadata.inspecting() as conn:
        for window in windows(conn, alias.c.object_id, [], run.batch):
            statement = (
                sa.select(alias.c.dataset, alias.c.name, alias.c.object_id)
                .select_from(joined)
                .where(registry.c.id.is_(None), *window.bounds(alias.c.object_id))
                .order_by(alias.c.object_id, alias.c.dataset, alias.c.name)
            )
            suspects = conn.execute(statement).all()
            run.report.count("aliases", window.rows)
            if not suspects or run.unreachable:
                continue
            found = found_on(
                [d for d in everywhere if d is not metadata], {row.object_id for row in suspects}
            )
            for row in suspects:
                if row.object_id not in found:
                    _report_alias(run, row, backend)


def _report_alias(run: CheckRun, row: Any, backend: str) -> None:
    run.report_problem(
        Problem(
            kind=ProblemKind.DANGLING_ALIAS,
            message=(
                f"alias {row.name!r} of dataset {row.dataset!r} names object {row.object_id}, "
                "which is in no backend's registry: get_by_alias fails. Delete the alias "
                f"(Class.delete_alias({row.name!r}, dataset={row.dataset!r})) or restore the "
                "object from a backup"
            ),
            object_id=row.object_id,
            field=row.name,
            backend=backend,
        )
    )
