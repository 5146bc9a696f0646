"""The model tables in the database against the model classes: compare, and evolve safely.

Owns :class:`Difference` (one way a table in the database differs from its class: a missing
table, column or index, a column of another type or nullability, a column or unique index the
model does not have), :func:`compare` (one inspection per table, batched where the engine can),
:func:`column_types_match` (types as claystore maps them, shared with the alembic integration
so that an unchanged model autogenerates an empty migration), and :func:`evolve`, which applies
the differences that cannot lose data:

- a new column that is nullable or has a class-level default (existing rows get the default);
- a new index (a unique one only when no two rows hold the same values: else
  :class:`~claystore.errors.SchemaDriftError` names the duplicates);
- a unique index the model no longer has is dropped;
- where the engine alters columns in place: a wider ``VARCHAR`` (an enum that gained a longer
  member name), a NOT NULL column whose field became optional.

Everything else (a type change, a removed or renamed field) needs a migration.  A column that
is nullable in the database where the model says NOT NULL is accepted: claystore never writes
None into such a field (it refuses the object first), and an engine that cannot alter columns
adds every evolved column as nullable.

Called by :class:`claystore.orm.database.Database` (at start and when classes are defined
later) and by :mod:`claystore.migrations` (type comparison for alembic).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import Dialect as SQLAlchemyDialect
from sqlalchemy.types import TypeEngine

from claystore.dialects.base import Dialect
from claystore.dialects.registry import dialect_class
from claystore.errors import SchemaDriftError
from claystore.orm import mapping
from claystore.orm.fields import Field

__all__ = [
    "Difference",
    "DifferenceKind",
    "column_types_match",
    "compare",
    "drift_error",
    "evolve",
]


class DifferenceKind(enum.Enum):
    """What differs between a table in the database and its model class."""

    MISSING_TABLE = "missing table"
    MISSING_COLUMN = "missing column"
    EXTRA_COLUMN = "column not in the model"
    COLUMN_TYPE = "column type"
    NOT_NULL = "column is NOT NULL"
    MISSING_INDEX = "missing index"
    EXTRA_UNIQUE = "unique index not in the model"


@attrs.frozen
class Difference:
    """One difference between the database and the model classes.

    ``table`` and ``column`` name where; ``model`` and ``database`` say what each has (a type,
    an index's columns); ``can_evolve`` is True when ``Client(schema="evolve")`` applies it
    without losing data.
    """

    kind: DifferenceKind
    table: str
    column: str | None = None
    model: str | None = None
    database: str | None = None
    can_evolve: bool = False
    #: for an index difference: the index's name
    index: str | None = None

    @property
    def where(self) -> str:
        """``table.column`` (or the table)."""
        return f"{self.table}.{self.column}" if self.column else self.table

    def __str__(self) -> str:
        kind = DifferenceKind
        text = {
            kind.MISSING_TABLE: lambda: f"missing table (model: {self.model})",
            kind.MISSING_COLUMN: lambda: f"missing column (model: {self.model})",
            kind.EXTRA_COLUMN: lambda: (
                f"column ({self.database}) is not in the model (a removed or renamed field?)"
            ),
            kind.COLUMN_TYPE: lambda: f"column is {self.database}, model says {self.model}",
            kind.NOT_NULL: lambda: f"column is NOT NULL, model says {self.model}",
            kind.MISSING_INDEX: lambda: f"missing {self.model}",
            kind.EXTRA_UNIQUE: lambda: f"{self.database} is not in the model",
        }[self.kind]()
        return f"{self.where}: {text}"


# -- types -------------------------------------------------------------------------------------

_SIZED = re.compile(r"^(?P<base>[A-Z ]+?)\s*\((?P<size>\d+)\)(?P<rest>.*)$")


def _ddl(type_: TypeEngine[Any], sa_dialect: SQLAlchemyDialect) -> str | None:
    try:
        return " ".join(type_.compile(dialect=sa_dialect).upper().split())
    except sa.exc.CompileError:  # a type the engine's reflection did not know
        return None


def column_types_match(
    sa_dialect: SQLAlchemyDialect, model: TypeEngine[Any], database: TypeEngine[Any]
) -> bool:
    """True when a column of type ``database`` (reflected) stores what the model's ``model``
    type stores, as claystore maps types on this engine: the same DDL type, where a text
    column may be longer than the model needs (or of any length where the engine does not
    enforce lengths)."""
    wanted, found = _ddl(model, sa_dialect), _ddl(database, sa_dialect)
    if wanted is None or found is None:
        return False
    if wanted == found:
        return True
    sizes = _sizes(wanted, found)
    return sizes is not None and (
        sizes[1] >= sizes[0] or not dialect_class(sa_dialect.name).enforces_text_length
    )


def _sizes(wanted: str, found: str) -> tuple[int, int] | None:
    """(the model's size, the database's) of two DDL types that differ only in their size
    (``VARCHAR(8)`` and ``VARCHAR(5)``), else None."""
    model_match, db_match = _SIZED.match(wanted), _SIZED.match(found)
    if model_match is None or db_match is None:
        return None
    if (model_match["base"], model_match["rest"]) != (db_match["base"], db_match["rest"]):
        return None
    return int(model_match["size"]), int(db_match["size"])


def _is_widening(
    sa_dialect: SQLAlchemyDialect, model: TypeEngine[Any], db: TypeEngine[Any]
) -> bool:
    """True when the database's column is the model's type, only shorter."""
    wanted, found = _ddl(model, sa_dialect), _ddl(db, sa_dialect)
    sizes = None if wanted is None or found is None else _sizes(wanted, found)
    return sizes is not None and sizes[1] < sizes[0]


# -- what the model says -----------------------------------------------------------------------


def _fields_by_column(table: sa.Table) -> dict[str, Field]:
    info = mapping.info_for_table(table.name)
    if info is None:
        return {}
    return {f.column_name: f for f in info.own_fields if not f.kind.is_link}


def _model_text(column: sa.Column[Any], field: Field | None, sa_dialect: SQLAlchemyDialect) -> str:
    if field is None:
        return _ddl(column.type, sa_dialect) or repr(column.type)
    text = field.annotation
    if field.has_default:
        text += f", default {field.default!r}"
    return text


def _index_text(columns: Sequence[str], *, unique: bool) -> str:
    return f"{'unique index' if unique else 'index'} on ({', '.join(columns)})"


def _table_owner(table: sa.Table) -> str:
    info = mapping.info_for_table(table.name)
    if info is not None:
        return f"class {info.cls.__name__}"
    owner = table.info.get("claystore_owner")
    return f"link table of {owner}" if owner else "table"


# -- compare -----------------------------------------------------------------------------------


def compare(conn: Connection, tables: Sequence[sa.Table]) -> list[Difference]:
    """Every difference between ``tables`` (model tables) and the database on ``conn``; a
    table that does not exist is one ``MISSING_TABLE`` difference."""
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    present = [t for t in tables if t.name in existing]
    differences = [
        Difference(DifferenceKind.MISSING_TABLE, t.name, model=_table_owner(t), can_evolve=True)
        for t in tables
        if t.name not in existing
    ]
    if not present:
        return differences
    names = [t.name for t in present]
    columns = inspector.get_multi_columns(filter_names=names)
    indexes = inspector.get_multi_indexes(filter_names=names)
    uniques = inspector.get_multi_unique_constraints(filter_names=names)
    sa_dialect = conn.dialect
    for table in present:
        key = (None, table.name)
        differences.extend(_compare_columns(sa_dialect, table, columns.get(key, [])))
        differences.extend(_compare_indexes(table, indexes.get(key, []), uniques.get(key, [])))
    return differences


def _compare_columns(
    sa_dialect: SQLAlchemyDialect, table: sa.Table, reflected: Iterable[Any]
) -> Iterable[Difference]:
    found = {c["name"]: c for c in reflected}
    fields = _fields_by_column(table)
    can_alter = dialect_class(sa_dialect.name).can_alter_columns
    for column in table.columns:
        field = fields.get(column.name)
        model = _model_text(column, field, sa_dialect)
        db = found.pop(column.name, None)
        if db is None:
            addable = column.nullable or (field is not None and field.has_default)
            yield Difference(
                DifferenceKind.MISSING_COLUMN,
                table.name,
                column.name,
                model=model,
                can_evolve=bool(addable) and not column.primary_key,
            )
            continue
        db_type = db["type"]
        if not column_types_match(sa_dialect, column.type, db_type):
            yield Difference(
                DifferenceKind.COLUMN_TYPE,
                table.name,
                column.name,
                model=model,
                database=_ddl(db_type, sa_dialect) or repr(db_type),
                can_evolve=can_alter and _is_widening(sa_dialect, column.type, db_type),
            )
        if column.nullable and not db["nullable"] and not column.primary_key:
            yield Difference(
                DifferenceKind.NOT_NULL,
                table.name,
                column.name,
                model=f"{model} (may be None)",
                database="NOT NULL",
                can_evolve=can_alter,
            )
    for name, db in found.items():
        nullability = "NULL" if db["nullable"] else "NOT NULL"
        yield Difference(
            DifferenceKind.EXTRA_COLUMN,
            table.name,
            name,
            database=f"{_ddl(db['type'], sa_dialect) or repr(db['type'])} {nullability}",
        )


def _compare_indexes(
    table: sa.Table, reflected: Iterable[Any], constraints: Iterable[Any]
) -> Iterable[Difference]:
    """Model indexes against the database's, by columns and uniqueness (names may differ: a
    database made by an earlier release has a unique constraint where claystore now makes a
    unique index).  Indexes the model does not have are the user's, except unique ones on
    model columns, which would refuse writes the model allows."""
    found: list[tuple[tuple[str, ...], bool, str | None, bool]] = [
        (tuple(c or "" for c in i["column_names"]), bool(i["unique"]), i["name"], False)
        for i in reflected
        if not i.get("duplicates_constraint")
    ]
    found += [(tuple(c["column_names"]), True, c["name"], True) for c in constraints]
    used: set[int] = set()
    for index in table.indexes:
        columns = tuple(_index_columns(index))
        match = next(
            (n for n, f in enumerate(found) if f[0] == columns and f[1] == bool(index.unique)),
            None,
        )
        if match is None:
            yield Difference(
                DifferenceKind.MISSING_INDEX,
                table.name,
                model=_index_text(columns, unique=bool(index.unique)),
                index=index.name if isinstance(index.name, str) else None,
                can_evolve=True,
            )
        else:
            used.add(match)
    model_columns = set(table.c.keys())
    for n, (columns, unique, name, is_constraint) in enumerate(found):
        if n in used or not unique or not set(columns) <= model_columns:
            continue
        if set(columns) <= {c.name for c in table.primary_key.columns}:
            continue
        yield Difference(
            DifferenceKind.EXTRA_UNIQUE,
            table.name,
            database=f"unique {'constraint' if is_constraint else 'index'} {name or ''} on "
            f"({', '.join(columns)})".replace("  ", " "),
            index=name,
            can_evolve=not is_constraint and name is not None,
        )


def _index_columns(index: sa.Index) -> list[str]:
    names = []
    for expression in index.expressions:
        column = getattr(expression, "column", expression)
        names.append(getattr(column, "name", str(column)))
    return names


# -- evolve ------------------------------------------------------------------------------------


def evolve(conn: Connection, dialect: Dialect, differences: Sequence[Difference]) -> None:
    """Apply the differences that can evolve (``can_evolve``), in the caller's transaction.

    Missing tables are the caller's to create.  Raises :class:`SchemaDriftError` naming the
    duplicate values when a unique index cannot be made.
    """
    ops = Operations(MigrationContext.configure(conn))
    for difference in differences:
        if not difference.can_evolve or difference.kind is DifferenceKind.MISSING_TABLE:
            continue
        table = mapping.metadata.tables[difference.table]
        match difference.kind:
            case DifferenceKind.MISSING_COLUMN:
                _add_column(conn, ops, dialect, table, difference.column or "")
            case DifferenceKind.COLUMN_TYPE:  # a wider text column
                column = table.c[difference.column or ""]
                ops.alter_column(table.name, column.name, type_=column.type)
            case DifferenceKind.NOT_NULL:  # only the constraint: the type stays as it is
                column = table.c[difference.column or ""]
                ops.alter_column(table.name, column.name, nullable=True, existing_type=column.type)
            case DifferenceKind.MISSING_INDEX:
                _create_index(conn, dialect, table, difference)
            case DifferenceKind.EXTRA_UNIQUE:
                ops.drop_index(difference.index or "", table_name=table.name)
            case _:  # pragma: no cover - every evolvable kind is above
                pass


def _add_column(
    conn: Connection, ops: Operations, dialect: Dialect, table: sa.Table, name: str
) -> None:
    column = table.c[name]
    field = _fields_by_column(table).get(name)
    ops.add_column(table.name, sa.Column(name, column.type, nullable=True))
    if field is not None and field.has_default and field.default is not None:
        conn.execute(table.update().values({name: field.default_value()}))
        if not column.nullable and dialect.can_alter_columns:
            ops.alter_column(table.name, name, nullable=False, existing_type=column.type)


def _create_index(
    conn: Connection, dialect: Dialect, table: sa.Table, difference: Difference
) -> None:
    index = next(i for i in table.indexes if i.name == difference.index)
    if index.unique:
        columns = [table.c[n] for n in _index_columns(index)]
        duplicates = conn.execute(
            sa.select(*columns, sa.func.count())
            .where(sa.and_(*(c.is_not(None) for c in columns)))
            .group_by(*columns)
            .having(sa.func.count() > 1)
            .limit(5)
        ).all()
        if duplicates:
            shown = "; ".join(
                f"{', '.join(repr(v) for v in row[:-1])} ({row[-1]} rows)" for row in duplicates
            )
            msg = (
                f"{difference.table}: cannot add the {difference.model}: existing rows hold the "
                f"same values ({shown}, at {dialect.describe()}); make them distinct first, "
                "or drop unique=True"
            )
            raise SchemaDriftError(msg, (difference,))
    index.create(conn)


# -- the error ---------------------------------------------------------------------------------


def drift_error(
    where: str, differences: Sequence[Difference], *, evolving: bool
) -> SchemaDriftError:
    """The :class:`SchemaDriftError` for ``differences``: every one on its own line, and the
    ways out."""
    lines = [f"the tables at {where} do not match the model classes:"]
    lines += [f"  - {d}{'' if d.can_evolve else '  [needs a migration]'}" for d in differences]
    if not evolving and all(d.can_evolve for d in differences):
        lines.append(
            'Start the client with schema="evolve" to apply these changes (none loses data), '
            "or write a migration: claystore db revision --autogenerate -m MESSAGE, then "
            "claystore db upgrade (see docs/migrations.md)."
        )
    else:
        lines.append(
            "Write a migration for the changes marked [needs a migration]: "
            "claystore db revision --autogenerate -m MESSAGE, edit it (renames and data "
            "changes: claystore.migrations.ops), then claystore db upgrade (see "
            'docs/migrations.md); schema="evolve" applies only the others.'
        )
    return SchemaDriftError("\n".join(lines), tuple(differences))
