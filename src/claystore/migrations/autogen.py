"""claystore's reading of alembic autogenerate: what it compares, what it proposes, and how the
proposals are written into a migration script.

Owns the autogenerate options that :func:`claystore.migrations.environment.run_migrations`
gives alembic:

- :func:`include_name`: claystore's own ``dc_*`` tables are left out (they carry their own
  schema version, :mod:`claystore.migrations.system`).  Every other table is alembic's as
  usual: one in the database that no imported model class defines is proposed for DROP.
- :func:`compare_type`: types as claystore maps them
  (:func:`claystore.orm.schema.column_types_match`), so that an unchanged model autogenerates
  an empty migration on every engine.
- :func:`process_revision_directives`: the proposals read as claystore's own schema check
  reads the tables (:mod:`claystore.orm.schema`), so that ``claystore db check`` and
  ``Client(schema="check")`` agree:

  * a column a downgrade adds back (the upgrade removed its field) comes back nullable
    unless it has a server default: the rows have no value for it;

  * a column that is nullable in the database where the model says NOT NULL is accepted
    (claystore refuses None before writing; SQLite's ``schema="evolve"`` adds every column
    as nullable), so no ``alter_column(nullable=False)`` is proposed for it;
  * table comments (claystore writes the class name there) are documentation, not schema;
  * a new NOT NULL column of a field with a class-level default becomes
    :func:`claystore.migrations.ops.add_field`, which gives existing rows the default
    (a bare ``add_column`` of a NOT NULL column fails on a table with rows);
  * the index of a nullable ``Indexed`` field is written with
    :func:`claystore.migrations.ops.nullable_index_term`, which each engine compiles its own
    way (``NULLS FIRST`` on PostgreSQL).

- :func:`render_item`: claystore's column types written as the engine-independent types of
  :mod:`claystore.dialects.types`, so that a migration generated on SQLite runs on PostgreSQL
  and the other way round.
- :func:`describe_difference`: one autogenerate difference as a line for people
  (``claystore db check``).

Called by :mod:`claystore.migrations.environment` (the options) and by :mod:`claystore.cli`
(:func:`describe_difference`).  No I/O of its own.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import graphlib
import math
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy.types import TypeEngine

from claystore.dialects.indexes import NullableIndexTerm
from claystore.dialects.types import JSONDocument
from claystore.orm import mapping
from claystore.orm.fields import Field, FieldKind
from claystore.orm.schema import column_types_match
from claystore.orm.system import SYSTEM_TABLE_PREFIX

__all__ = [
    "OPS_ALIAS",
    "TYPES_ALIAS",
    "AddFieldOp",
    "NullableIndexOp",
    "compare_type",
    "describe_difference",
    "include_name",
    "process_revision_directives",
    "render_item",
]

#: The names migration scripts import claystore's operations and column types under (see the
#: ``script.py.mako`` template).
OPS_ALIAS = "claystore_ops"
TYPES_ALIAS = "claystore_types"


# -- what is compared --------------------------------------------------------------------------


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name``: every name but claystore's system tables (``dc_*``)."""
    del parent_names
    return not (type_ == "table" and (name or "").startswith(SYSTEM_TABLE_PREFIX))


def compare_type(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool:
    """Alembic's ``compare_type``: True when the column in the database stores another type
    than the model's, as claystore maps types on this engine."""
    del inspected_column, metadata_column
    return not column_types_match(context.dialect, metadata_type, inspected_type)


# -- what is proposed --------------------------------------------------------------------------


class AddFieldOp(ops.AddColumnOp):
    """``add_column`` of a model field's NOT NULL column whose class gives a default: written
    as :func:`claystore.migrations.ops.add_field`, which fills existing rows with ``default``
    (already in the form the column stores: an enum's name, a JSON document)."""

    def __init__(self, table_name: str, column: sa.Column[Any], *, default: Any) -> None:
        super().__init__(table_name, column)
        self.default = default


class NullableIndexOp(ops.CreateIndexOp):
    """``create_index`` of a nullable ``Indexed`` field: written with
    :func:`claystore.migrations.ops.nullable_index_term` for each column."""

    @property
    def term_columns(self) -> list[str]:
        """The names of the indexed columns."""
        names = []
        for term in self.columns:
            column = term.column if isinstance(term, NullableIndexTerm) else term
            names.append(str(getattr(column, "name", column)))
        return names


def process_revision_directives(
    context: MigrationContext, revision: Any, directives: list[Any]
) -> None:
    """Alembic's ``process_revision_directives``: rewrite autogenerate's proposals as the
    module docstring says; the downgrade is the reverse of the rewritten upgrade."""
    del context, revision
    for script in directives:
        for upgrade, downgrade in zip(
            script.upgrade_ops_list, script.downgrade_ops_list, strict=True
        ):
            upgrade.ops[:] = _order_table_drops(_rewrite(upgrade.ops))
            downgrade.ops[:] = []
            upgrade.reverse_into(downgrade)
            _restored_columns_nullable(downgrade.ops)


def _restored_columns_nullable(proposed: Iterable[ops.MigrateOperation]) -> None:
    """A column that a downgrade adds back (the upgrade dropped it) comes back nullable when
    it has no server default: the table has rows, which have no value for it (a NOT NULL
    column could not be added), and claystore's check accepts a nullable column for a
    required field."""
    for op in proposed:
        if isinstance(op, ops.ModifyTableOps):
            _restored_columns_nullable(op.ops)
        elif (
            isinstance(op, ops.AddColumnOp)
            and not op.column.nullable
            and op.column.server_default is None
            and not op.column.primary_key
        ):
            op.column.nullable = True


def _rewrite(proposed: Iterable[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    result: list[ops.MigrateOperation] = []
    for op in proposed:
        if isinstance(op, ops.ModifyTableOps):
            kept: list[ops.MigrateOperation] = []
            for inner in op.ops:
                replaced = _rewrite_one(inner)
                if isinstance(replaced, AddFieldOp):
                    result.append(replaced)  # outside the (batch) block: it runs at once
                elif replaced is not None:
                    kept.append(replaced)
            if kept == op.ops:
                result.append(op)
            elif kept:
                result.append(ops.ModifyTableOps(op.table_name, kept, schema=op.schema))
        else:
            replaced = _rewrite_one(op)
            if replaced is not None:
                result.append(replaced)
    return result


def _order_table_drops(proposed: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    """The tables autogenerate drops (each with the drop of its indexes) in an order the
    foreign keys allow: a table before the tables it references (alembic proposes them in no
    particular order, and its downgrade creates them in the reverse one)."""
    drops = {op.table_name: op for op in proposed if isinstance(op, ops.DropTableOp)}
    if len(drops) < 2:
        return proposed
    groups: dict[str, list[ops.MigrateOperation]] = {name: [] for name in drops}
    first = None
    rest: list[ops.MigrateOperation] = []
    for position, op in enumerate(proposed):
        name = getattr(op, "table_name", None)
        is_index_drop = isinstance(op, ops.ModifyTableOps) and all(
            isinstance(inner, ops.DropIndexOp) for inner in op.ops
        )
        if name in groups and (op is drops[name] or is_index_drop):
            groups[name].append(op)
            first = position if first is None else first
        else:
            rest.append(op)
    order: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(drops):
        order.add(name)
        for key in drops[name].to_table().foreign_keys:
            referred = key.target_fullname.rsplit(".", 2)[-2]  # [schema.]table.column
            if referred in drops and referred != name:
                order.add(referred, name)  # dropped after the table that references it
    try:
        names = list(order.static_order())
    except graphlib.CycleError:  # tables that reference each other: as alembic proposed
        return proposed
    assert first is not None  # every op before it stayed in rest
    return [*rest[:first], *(op for name in names for op in groups[name]), *rest[first:]]


def _rewrite_one(op: ops.MigrateOperation) -> ops.MigrateOperation | None:
    """``op`` as claystore writes it, or None when claystore's check does not count it."""
    if isinstance(op, ops.CreateTableCommentOp | ops.DropTableCommentOp):
        return None
    if isinstance(op, ops.AlterColumnOp):
        if op.modify_nullable is False and op.existing_nullable:
            op.modify_nullable = None
        op.modify_comment = False
        return op if op.has_changes() else None
    if isinstance(op, ops.AddColumnOp) and not isinstance(op, AddFieldOp):
        return _add_field(op) or op
    if (
        isinstance(op, ops.CreateIndexOp)
        and not isinstance(op, NullableIndexOp)
        and any(isinstance(term, NullableIndexTerm) for term in op.columns)
    ):
        return NullableIndexOp(
            op.index_name, op.table_name, op.columns, schema=op.schema, unique=op.unique, **op.kw
        )
    return op


def _add_field(op: ops.AddColumnOp) -> AddFieldOp | None:
    column = op.column
    if column.nullable or column.primary_key:
        return None
    info = mapping.info_for_table(op.table_name)
    field = None
    if info is not None:
        field = next((f for f in info.own_fields if f.column_name == column.name), None)
    if field is None or not field.has_default or field.default is None:
        return None
    default = _stored_default(field)
    if _python_literal(default) is None:  # not writable into a script: alembic's op stays
        return None
    return AddFieldOp(op.table_name, column, default=default)


def _stored_default(field: Field) -> Any:
    """The field's default in the form its column stores (the script's column type has no
    codec)."""
    value = field.default_value()
    if field.kind is FieldKind.JSON and field.encode is not None:
        return field.encode(value)
    if isinstance(value, enum.Enum):  # stored by name
        return value.name
    return value


# -- how it is written -------------------------------------------------------------------------


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Alembic's ``render_item``: claystore's column types as the engine-independent types of
    :mod:`claystore.dialects.types` (a JSON container field as a plain JSON document: its
    codec is the model's business, not the table's); anything else as alembic writes it."""
    del autogen_context
    if type_ != "type" or not isinstance(obj, TypeEngine):
        return False
    if isinstance(obj, JSONDocument):
        return f"{TYPES_ALIAS}.JSONDocument()"
    if type(obj).__module__ == JSONDocument.__module__:
        return f"{TYPES_ALIAS}.{obj!r}"
    return False


@renderers.dispatch_for(AddFieldOp)
def _render_add_field(autogen_context: AutogenContext, op: AddFieldOp) -> str:
    add_column = renderers.dispatch(ops.AddColumnOp)(autogen_context, op)
    prefix = f"{autogen_context.opts['alembic_module_prefix'] or ''}add_column("
    literal = _python_literal(op.default)
    assert add_column.startswith(prefix)
    assert literal is not None
    text, imports = literal
    if autogen_context.imports is not None:
        autogen_context.imports.update(imports)
    arguments = add_column[len(prefix) : -1]
    return f"{OPS_ALIAS}.add_field({arguments}, default={text})"


@renderers.dispatch_for(NullableIndexOp)
def _render_nullable_index(autogen_context: AutogenContext, op: NullableIndexOp) -> str:
    in_batch = bool(getattr(autogen_context, "_has_batch", False))  # inside batch_alter_table
    prefix = "batch_op." if in_batch else autogen_context.opts["alembic_module_prefix"] or ""
    table = "" if in_batch else f"{op.table_name!r}, "
    terms = ", ".join(f"{OPS_ALIAS}.nullable_index_term({name!r})" for name in op.term_columns)
    return f"{prefix}create_index({op.index_name!r}, {table}[{terms}], unique={bool(op.unique)!r})"


def _python_literal(value: Any) -> tuple[str, set[str]] | None:  # noqa: PLR0911 - a case per type
    """Python source that evaluates to ``value``, and the imports it needs; None when there
    is none (a value of a type this does not know)."""
    if value is None or isinstance(value, bool | int | str | bytes):
        return repr(value), set()
    if isinstance(value, float):
        return (repr(value) if math.isfinite(value) else f"float({str(value)!r})"), set()
    if isinstance(value, decimal.Decimal):
        return f"decimal.Decimal({str(value)!r})", {"import decimal"}
    if isinstance(value, uuid.UUID):
        return f"uuid.UUID({str(value)!r})", {"import uuid"}
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return repr(value.astimezone(dt.UTC)), {"import datetime"}
    if isinstance(value, dt.date | dt.time | dt.timedelta) and getattr(value, "tzinfo", None) in (
        None,
        dt.UTC,
    ):
        return repr(value), {"import datetime"}
    if isinstance(value, list | tuple):
        items = [_python_literal(item) for item in value]
        if any(item is None for item in items):
            return None
        texts = [item[0] for item in items if item is not None]
        imports = set().union(*(item[1] for item in items if item is not None))
        if isinstance(value, tuple):
            return f"({', '.join(texts)}{',' if len(texts) == 1 else ''})", imports
        return f"[{', '.join(texts)}]", imports
    if isinstance(value, dict):
        pairs = [(_python_literal(k), _python_literal(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        texts = [f"{k[0]}: {v[0]}" for k, v in pairs if k is not None and v is not None]
        imports = set().union(*(k[1] | v[1] for k, v in pairs if k is not None and v is not None))
        return "{" + ", ".join(texts) + "}", imports
    return None


# -- differences for people --------------------------------------------------------------------


def describe_difference(diff: Any) -> str:  # noqa: PLR0911 - a case per kind of difference
    """One autogenerate difference (``alembic check``'s tuples) as a line for people."""
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return "; ".join(describe_difference(d) for d in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        table = diff[1]
        verb = "missing table" if kind == "add_table" else "table not in the models"
        return f"{verb}: {table.name}"
    if kind in ("add_column", "remove_column"):
        table, column = diff[2], diff[3]
        nullability = "NULL" if column.nullable else "NOT NULL"
        verb = "missing column" if kind == "add_column" else "column not in the models"
        return f"{verb}: {table}.{column.name} ({column.type!r} {nullability})"
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        verb = "missing index" if kind == "add_index" else "index not in the models"
        table = index.table.name if index.table is not None else "?"
        return f"{verb}: {index.name} on {table}"
    if kind == "modify_type":
        table, column, old, new = diff[2], diff[3], diff[5], diff[6]
        return f"column type: {table}.{column} is {old!r} in the database, {new!r} in the models"
    if kind == "modify_nullable":
        table, column, new = diff[2], diff[3], diff[6]
        wanted = "nullable" if new else "NOT NULL"
        return f"column nullability: {table}.{column} should be {wanted}"
    return repr(diff)
