"""Level 3 of the integrity check: references point at existing objects of an allowed class.

Owns :func:`check`.  A reference field is stored as a ``<field>_id`` column of its class's
table, a container of references (``list[Employee]``, ``dict[str, Employee | Office]``...) as
the rows ``(owner_id, position | key, target_id)`` of a link table; JSON containers never hold
references (:mod:`claystore.orm.fields` refuses them).  Each reference must name an object that
has a registry row (``dc_object``) on some backend -- an object may live on another backend
than the object that points at it -- whose class (the registry's ``class_name``: the table of
the object's own class) is one the field declares, or a subclass of one.

Per backend, for each table holding references: one anti-join of the references against the
registry (``LEFT JOIN dc_object ... WHERE dc_object.id IS NULL``, or a class name not allowed),
its rows streamed in batches of :attr:`CheckRun.batch`; the ids missing on that backend are
then looked up on the others, a batch at a time (:meth:`Dialect.among
<claystore.dialects.base.Dialect.among>`).  Reports :attr:`ProblemKind.DANGLING_REFERENCE`
(the owner, its id, the field, the missing id) and :attr:`ProblemKind.WRONG_CLASS_REFERENCE`
(the class found and those allowed).  A class the registry names that no model defines is
level 1's problem, not reported here; tables and columns missing on a backend are skipped.

Called by :mod:`.integrity` through :func:`check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from claystore.dialects.base import Dialect
from claystore.errors import UnsupportedTypeError
from claystore.housekeeping.report import Problem, ProblemKind
from claystore.housekeeping.run import CheckRun
from claystore.housekeeping.stored import (
    CheckedField,
    StoredTables,
    as_object_id,
    checked_fields,
    is_reference,
)
from claystore.orm import mapping
from claystore.orm.database import Database
from claystore.orm.mapping import ModelInfo
from claystore.orm.system import dc_object

__all__ = ["check"]


@attrs.frozen
class _Target:
    """What a reference field allows: the table names (class keys) and the class names."""

    tables: frozenset[str]
    names: str  # "Employee | Office" for messages


def _read_id(value: Any) -> Any:
    """A stored id as a UUID, else as it is stored."""
    return as_object_id(value) or value


@attrs.frozen
class _Suspect:
    """A reference that its own backend's registry does not back: missing there (``found``
    None), or naming an object of a class not allowed."""

    owner: str  # the owner's class name
    owner_id: UUID | None
    field: str
    target: Any = attrs.field(converter=_read_id)
    allowed: _Target = attrs.field()
    found: str | None = attrs.field()  # the class name (table) the registry gives, None: no row


def check(run: CheckRun) -> None:
    """Level 3: every reference column and link row of the classes checked points at an
    existing object of an allowed class, on whichever backend holds it."""
    databases = list(run.databases())
    known = {info.tablename for info in mapping.models()}
    selected = {info.tablename for info in run.classes}
    for backend_id, database in databases:
        others = [(i, d) for i, d in databases if i != backend_id]
        with database.read_transaction(chunk=run.batch, ensure=False) as conn:
            stored = StoredTables(conn)
            if not stored.has(dc_object, "id", "class_name"):
                continue  # no registry here: level 1 reports it
            for info in run.classes:
                fields = [
                    f for f in checked_fields(info, selected, stored) if is_reference(f.field)
                ]
                columns = [f for f in fields if not f.field.kind.is_link]
                scan = _Scan(run, backend_id, conn, others, known)
                if columns:
                    _check_columns(scan, info, columns)
                for link in (f for f in fields if f.field.kind.is_link):
                    _check_link(scan, info, link)


def _allowed(checked: CheckedField) -> _Target | None:
    """The classes ``checked``'s field may point at (None: its annotation names a class no
    loaded module defines, which level 1 reports)."""
    try:
        targets = checked.field.targets()
    except UnsupportedTypeError:
        return None
    tables = frozenset(
        sub.tablename
        for target in targets
        for sub in mapping.iter_subclass_infos(target._dc_info)  # type: ignore[attr-defined]
    )
    return _Target(tables, " | ".join(t.__name__ for t in targets))


@attrs.frozen
class _Scan:
    """What the checks of one backend share."""

    run: CheckRun
    backend_id: UUID
    conn: Connection
    others: Sequence[tuple[UUID, Database]]  # the other backends that answer
    known: set[str]  # the table names of every model class


def _check_columns(scan: _Scan, info: ModelInfo, columns: list[CheckedField]) -> None:
    """The reference columns of ``info`` (one statement for all of them: one registry join
    per column), on one backend."""
    allowed = [(c, _allowed(c)) for c in columns]
    checked = [(c, target) for c, target in allowed if target is not None]
    if not checked:
        return
    table = info.table
    source: sa.FromClause = table
    for holder in dict.fromkeys(c.holder for c, _ in checked if c.holder is not table):
        source = source.join(holder, holder.c.id == table.c.id)  # an ancestor's columns
    picked: list[sa.ColumnElement[Any]] = [table.c.id]
    suspicious: list[sa.ColumnElement[bool]] = []
    for c, target in checked:
        column = c.holder.c[c.field.column_name]
        registry = dc_object.alias()
        source = source.outerjoin(registry, registry.c.id == column)
        picked += [sa.type_coerce(column, sa.String), registry.c.class_name]
        wrong = sa.or_(registry.c.id.is_(None), registry.c.class_name.not_in(target.tables))
        suspicious.append(sa.and_(column.is_not(None), wrong))
    statement = sa.select(*picked).select_from(source).where(sa.or_(*suspicious))
    name = info.cls.__name__
    for part in scan.conn.execute(statement).partitions(scan.run.batch):
        suspects = [
            _Suspect(
                name, as_object_id(row[0]), c.field.name, row[1 + 2 * n], target, row[2 + 2 * n]
            )
            for row in part
            for n, (c, target) in enumerate(checked)
            if _is_suspect(row[1 + 2 * n], row[2 + 2 * n], target, scan.known)
        ]
        _settle(scan, suspects)
    total = _count(scan.conn, table)
    scan.run.report.count(f"{name} references", total * len(checked))
    scan.run.tick(f"level 3: {name}", total, total)


def _check_link(scan: _Scan, info: ModelInfo, link: CheckedField) -> None:
    """The rows of one link table (of ``info``'s objects), on one backend."""
    target = _allowed(link)
    if target is None:
        return
    rows = link.holder
    registry = dc_object.alias()
    source: sa.FromClause = rows.outerjoin(registry, registry.c.id == rows.c.target_id)
    where = sa.or_(registry.c.id.is_(None), registry.c.class_name.not_in(target.tables))
    if link.scope is not None:
        where = sa.and_(where, rows.c.owner_id.in_(sa.select(link.scope.c.id)))
    statement = sa.select(
        sa.type_coerce(rows.c.owner_id, sa.String),
        sa.type_coerce(rows.c.target_id, sa.String),
        registry.c.class_name,
    ).select_from(source)
    name = info.cls.__name__
    for part in scan.conn.execute(statement.where(where)).partitions(scan.run.batch):
        suspects = [
            _Suspect(name, as_object_id(owner), link.field.name, target_id, target, found)
            for owner, target_id, found in part
            if _is_suspect(target_id, found, target, scan.known)
        ]
        _settle(scan, suspects)
    total = _count(scan.conn, rows)
    scan.run.report.count(f"{name}.{link.field.name} link rows", total)
    scan.run.tick(f"level 3: {name}.{link.field.name}", total, total)


def _is_suspect(value: Any, found: str | None, target: _Target, known: set[str]) -> bool:
    """Whether a row of the anti-join is a problem to look into: a reference whose registry
    row is missing here, or names a known class that is not allowed."""
    if value is None:
        return False
    if found is None:
        return True
    return found not in target.tables and found in known


def _count(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _settle(scan: _Scan, suspects: list[_Suspect]) -> None:
    """Look the references missing on their own backend up on the others, then report what
    is still missing or of a class not allowed."""
    missing = {s.target for s in suspects if s.found is None and isinstance(s.target, UUID)}
    found = _find_elsewhere(sorted(missing), scan.others)
    for suspect in suspects:
        if suspect.found is not None:
            _report_wrong_class(scan, suspect, scan.backend_id)
            continue
        elsewhere = found.get(suspect.target)
        if elsewhere is None:
            _report_dangling(scan, suspect)
            continue
        where, class_name = elsewhere
        if class_name not in suspect.allowed.tables and class_name in scan.known:
            _report_wrong_class(scan, attrs.evolve(suspect, found=class_name), where)


def _find_elsewhere(
    ids: list[UUID], others: Sequence[tuple[UUID, Database]]
) -> dict[UUID, tuple[UUID, str]]:
    """The registry rows of ``ids`` on the other backends: id -> (backend, class name)."""
    found: dict[UUID, tuple[UUID, str]] = {}
    for other_id, database in others:
        wanted = [i for i in ids if i not in found]
        if not wanted:
            break
        with database.inspecting() as conn:  # reads only: creates no table
            rows = _registry_rows(database.dialect, wanted, conn)
        found.update((object_id, (other_id, class_name)) for object_id, class_name in rows)
    return found


def _registry_rows(dialect: Dialect, ids: list[UUID], conn: Connection) -> list[tuple[UUID, str]]:
    """The registry rows (id, class name) of those of ``ids`` that ``conn``'s database holds,
    :attr:`Dialect.among_limit <claystore.dialects.base.Dialect.among_limit>` ids a statement."""
    if not StoredTables(conn).has(dc_object, "id", "class_name"):
        return []
    rows: list[tuple[UUID, str]] = []
    limit = dialect.among_limit
    for start in range(0, len(ids), limit):
        statement = sa.select(dc_object.c.id, dc_object.c.class_name).where(
            dialect.among(dc_object.c.id, ids[start : start + limit])
        )
        rows += [(object_id, class_name) for object_id, class_name in conn.execute(statement)]
    return rows


def _report_dangling(scan: _Scan, suspect: _Suspect) -> None:
    run, backend_id = scan.run, scan.backend_id
    target = suspect.target
    what = f"object {target}" if isinstance(target, UUID) else f"{target!r}, which is no object id,"
    run.report_problem(
        Problem(
            kind=ProblemKind.DANGLING_REFERENCE,
            message=(
                f"{suspect.owner}.{suspect.field} points to {what} that no backend holds "
                "(no registry row)"
            ),
            class_name=suspect.owner,
            object_id=suspect.owner_id,
            field=suspect.field,
            backend=run.backend_name(backend_id),
        )
    )


def _report_wrong_class(scan: _Scan, suspect: _Suspect, where: UUID) -> None:
    run, backend_id = scan.run, scan.backend_id
    info = mapping.info_for_table(suspect.found or "")
    found = info.cls.__name__ if info is not None else suspect.found
    place = "" if where == backend_id else f" on backend {run.backend_name(where)!r}"
    run.report_problem(
        Problem(
            kind=ProblemKind.WRONG_CLASS_REFERENCE,
            message=(
                f"{suspect.owner}.{suspect.field} points to object {suspect.target}{place}, "
                f"a {found}; the field allows {suspect.allowed.names} (or a subclass)"
            ),
            class_name=suspect.owner,
            object_id=suspect.owner_id,
            field=suspect.field,
            backend=run.backend_name(backend_id),
        )
    )
