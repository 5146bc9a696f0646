"""Level 4 of the integrity check: every stored value decodes to its field's declared type.

Owns :func:`check`.  Each class table is read once per backend, in one statement whose rows
stream :attr:`CheckRun.batch` at a time (a server-side cursor on PostgreSQL), so memory stays
bounded whatever the table's size.  What SQL can judge, SQL judges (the conditions come from
the engine's dialect, :mod:`claystore.dialects.checks`): enum columns hold a member's name
(:attr:`ProblemKind.UNKNOWN_ENUM`), ``Literal`` columns one of the values, text holds no NUL
character (:attr:`ProblemKind.NUL_IN_TEXT`), SQLite's typeless columns hold the storage type of
their field -- a number where a number is declared, 32 hex digits for an id
(:attr:`ProblemKind.WRONG_TYPE`) -- and its date and time text reads as one
(:attr:`ProblemKind.INVALID_DATETIME`); a column the model declares NOT NULL holds no NULL.
Without JSON fields only the rows with a problem leave the database.

JSON containers are judged in Python with the field's own codec
(:mod:`claystore.orm.jsoncodec`): the text must parse (else
:attr:`ProblemKind.UNDECODABLE_VALUE`; PostgreSQL's JSONB holds only valid JSON, so there only
the shape is checked), and the document must decode to a value of the declared type that
encodes back to a document of the same shape (else :attr:`ProblemKind.WRONG_TYPE`: a list where
a dict is declared, an element of the wrong type, a date that does not parse).

Called by :mod:`.integrity` through :func:`check`.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from claystore.dialects.checks import StoredKind, TimeKind, ValueChecks
from claystore.housekeeping.documents import DocumentReader
from claystore.housekeeping.report import Problem, ProblemKind
from claystore.housekeeping.run import CheckRun
from claystore.housekeeping.stored import CheckedField, StoredTables, as_object_id, checked_fields
from claystore.orm.fields import Field, FieldKind
from claystore.orm.mapping import ModelInfo

__all__ = ["check"]

#: The storage each scalar type's column has (SQLite's typeless columns are checked for it).
_STORED: dict[Any, StoredKind] = {
    bool: "bool",
    int: "int",
    float: "float",
    Decimal: "decimal",
    str: "text",
    bytes: "bytes",
    uuid.UUID: "uuid",
}
_TIMES: dict[Any, TimeKind] = {
    dt.datetime: "datetime",
    dt.date: "date",
    dt.time: "time",
    dt.timedelta: "timedelta",
}


@attrs.frozen
class _Rule:
    """One condition SQL checks on a column: the problem it finds and how to say it."""

    field: Field
    table: str
    column: sa.ColumnElement[Any]
    kind: ProblemKind
    condition: sa.ColumnElement[bool]
    reason: str


def check(run: CheckRun) -> None:
    """Level 4: every stored value of the classes checked decodes to its declared type."""
    selected = {info.tablename for info in run.classes}
    for backend_id, database in run.databases():
        checks = database.dialect.value_checks()
        with database.read_transaction(chunk=run.batch, ensure=False) as conn:
            stored = StoredTables(conn)
            for info in run.classes:
                fields = [
                    f for f in checked_fields(info, selected, stored) if not f.field.kind.is_link
                ]
                if fields:
                    _check_table(run, backend_id, conn, checks=checks, info=info, fields=fields)


def _check_table(
    run: CheckRun,
    backend_id: UUID,
    conn: Connection,
    *,
    checks: ValueChecks,
    info: ModelInfo,
    fields: list[CheckedField],
) -> None:
    """The rows of ``info``'s table (and its ancestors' columns when they are checked with
    it), on one backend: one statement, streamed.  It tells, per row, whether any SQL
    condition holds, and gives the JSON texts; the rare row with a problem is read once
    more to tell which conditions hold and what the values are."""
    table = info.table
    source: sa.FromClause = table
    for holder in dict.fromkeys(f.holder for f in fields if f.holder is not table):
        source = source.join(holder, holder.c.id == table.c.id)  # an ancestor's columns
    rules = [rule for f in fields for rule in _rules(f, checks)]
    documents = [f for f in fields if f.field.kind is FieldKind.JSON]
    if not rules and not documents:
        return
    any_rule = sa.or_(*(r.condition for r in rules)) if rules else sa.false()
    picked: list[sa.ColumnElement[Any]] = [sa.type_coerce(table.c.id, sa.String)]
    picked.append(sa.case((any_rule, 1)))
    picked += [checks.json_text(f.holder.c[f.field.column_name]) for f in documents]
    statement = sa.select(*picked).select_from(source)
    if not documents:
        statement = statement.where(any_rule)  # only the rows with a problem leave
    readers = [(2 + n, DocumentReader(f.field), f) for n, f in enumerate(documents)]
    name = info.cls.__name__
    task = f"level 4: {name}"
    total = _count(conn, table)
    done = 0
    report = _Reporter(run, backend_id, name)
    for part in conn.execute(statement).partitions(run.batch):
        for row in part:
            if row[1] is not None:
                _explain(conn, source, table, rules=rules, row_id=row[0], report=report)
        for index, read, document in readers:  # a column at a time: the loop is map's
            found = list(map(read, [row[index] for row in part]))
            if found.count(None) != len(found):
                for row, problem in zip(part, found, strict=True):
                    if problem is not None:
                        report(row[0], document.field, document.holder.name, *problem)
        if documents:
            done += len(part)
            run.tick(task, done, total)
    run.report.count(f"{name} rows decoded", total)
    run.tick(task, total, total)


def _explain(
    conn: Connection,
    source: sa.FromClause,
    table: sa.Table,
    *,
    rules: list[_Rule],
    row_id: Any,
    report: _Reporter,
) -> None:
    """Report the conditions that hold for one row, with the values they found."""
    object_id = as_object_id(row_id)
    if object_id is None:
        return  # an id that is no id: the registry check reports the row
    picked: list[sa.ColumnElement[Any]] = [sa.case((r.condition, 1)) for r in rules]
    picked += [sa.type_coerce(r.column, sa.String) for r in rules]
    row = conn.execute(
        sa.select(*picked).select_from(source).where(table.c.id == object_id)
    ).first()
    if row is None:
        return
    for n, rule in enumerate(rules):
        if row[n] is not None:
            value = row[len(rules) + n]
            shown = "NULL" if value is None else repr(value)[:80]
            report(row_id, rule.field, rule.table, rule.kind, f"{rule.reason}: {shown}")


def _count(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@attrs.define
class _Reporter:
    """Reports the problems of one class's rows on one backend."""

    run: CheckRun
    backend_id: UUID
    class_name: str

    def __call__(
        self, row_id: Any, field: Field, table: str, kind: ProblemKind, reason: str
    ) -> None:
        self.run.report_problem(
            Problem(
                kind=kind,
                message=f"{field.label} ({field.annotation}): {reason}",
                class_name=self.class_name,
                table=table,
                object_id=as_object_id(row_id),
                field=field.name,
                backend=self.run.backend_name(self.backend_id),
            )
        )


def _rules(checked: CheckedField, checks: ValueChecks) -> Iterator[_Rule]:
    """The SQL conditions of one column field (none for JSON: read in Python)."""
    field = checked.field
    column = checked.holder.c[field.column_name]
    table = checked.holder.name

    def rule(
        kind: ProblemKind, condition: sa.ColumnElement[bool] | None, reason: str
    ) -> Iterator[_Rule]:
        if condition is not None:
            yield _Rule(field, table, column, kind, sa.and_(column.is_not(None), condition), reason)

    if not field.nullable and field.kind is not FieldKind.REF:
        yield _Rule(
            field,
            table,
            column,
            ProblemKind.WRONG_TYPE,
            column.is_(None),
            "NULL, which the field does not allow",
        )
    if field.kind is FieldKind.REF:
        yield from rule(
            ProblemKind.WRONG_TYPE, checks.not_stored_as(column, "id"), "not an object id"
        )
        return
    if field.kind is not FieldKind.SCALAR:
        return
    python_type = field.python_type
    text = sa.type_coerce(column, sa.String)
    if field.literal_values is not None:
        values = field.literal_values
        if python_type is not bool:
            shown = ", ".join(map(repr, values))
            yield from rule(
                ProblemKind.WRONG_TYPE, column.not_in(values), f"a value not one of {shown}"
            )
        return
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        names = [member.name for member in python_type]
        yield from rule(
            ProblemKind.UNKNOWN_ENUM,
            text.not_in(names),
            f"a name that {python_type.__name__} has no member of",
        )
        return
    if python_type in _TIMES:
        kind = _TIMES[python_type]
        yield from rule(
            ProblemKind.INVALID_DATETIME,
            checks.invalid_time(column, kind),
            f"text that does not read as a {kind}",
        )
        return
    stored = _STORED.get(python_type)
    if stored is None:
        return
    yield from rule(
        ProblemKind.WRONG_TYPE,
        checks.not_stored_as(column, stored),
        f"a value not stored as {stored}",
    )
    if stored == "text":
        yield from rule(
            ProblemKind.NUL_IN_TEXT, checks.text_has_nul(column), "text holding a NUL character"
        )
