"""Registry-aware operations for migration scripts: what alembic's ``op`` cannot know.

Alembic changes tables; these also keep claystore's conventions and registry consistent, so
that stored objects, ``get_by_id`` and aliases survive the change:

- :func:`rename_model` (a class renamed, or given another ``__tablename__``): the table, its
  link tables ``<table>_<field>`` and claystore's indexes (``ix_<table>_<column>``,
  ``uq_<table>_<column>``) are renamed, and the class key every object carries (``dc_class``
  in the hierarchy's root table, ``class_name`` in ``dc_object``) follows.
- :func:`drop_model` (a class removed): its objects leave the registry (``dc_object``,
  ``dc_alias``), other objects' lists of references, and the tables of the class's ancestors;
  then the tables of the class, its subclasses and their link tables are dropped.
- :func:`rename_field`: a field's column (``<field>_id`` for a reference) or link table, and
  its indexes.
- :func:`add_field`: a NOT NULL column whose class gives a default, existing rows filled with
  it (autogenerate writes it for such fields).
- :func:`nullable_index_term`: the index term of a nullable ``Indexed`` field, compiled per
  engine (autogenerate writes it).

Autogenerate cannot see renames (it proposes a drop and an add, which loses the data): write
them by hand with these.  Each has its downgrade: ``rename_model(new, old)``,
``rename_field(table, new, old)``, ``op.drop_column`` for :func:`add_field`; the downgrade of
:func:`drop_model` creates the tables again (the ``create_table`` calls autogenerate wrote),
empty: the objects are gone.

Called inside a migration's ``upgrade()``/``downgrade()`` (they use ``alembic.op`` and its
connection, ``op.get_bind()``), from user migration scripts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection, Inspector

from claystore.dialects.base import Dialect
from claystore.dialects.indexes import NullableIndexTerm
from claystore.dialects.names import MAX_IDENTIFIER_BYTES, fit_identifier, fits
from claystore.dialects.registry import dialect_class
from claystore.errors import MigrationError
from claystore.orm.mapping import index_name
from claystore.orm.system import SYSTEM_TABLE_PREFIX, dc_alias, dc_object

__all__ = [
    "add_field",
    "drop_model",
    "nullable_index_term",
    "rename_field",
    "rename_model",
]

#: A name :func:`~claystore.dialects.names.fit_identifier` may have shortened (it ends with
#: ``_`` and 8 hex digits of a hash, near the length limit): the field it stands for cannot
#: be read back from it.
_SHORTENED = re.compile(r"_[0-9a-f]{8}$")
_SHORTENED_MIN_BYTES = MAX_IDENTIFIER_BYTES - 12


# -- what the database holds ---------------------------------------------------------------------


class _Schema:
    """The tables of the migration's database and the foreign keys between them, read once
    per operation (before it changes anything)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        inspector: Inspector = sa.inspect(conn)
        self.inspector = inspector
        self.tables = set(inspector.get_table_names())
        keys = inspector.get_multi_foreign_keys()
        self.foreign_keys = {table: found for (_, table), found in keys.items()}

    def require(self, table: str, operation: str) -> None:
        if table not in self.tables:
            msg = (
                f"{operation}: the database has no table {table!r}; give the class's table "
                "name (snake_case of the class name, e.g. 'sales_order' for SalesOrder, or "
                "its __tablename__)"
            )
            raise MigrationError(msg)

    def refuse_taken(self, table: str, operation: str) -> None:
        if table in self.tables:
            msg = f"{operation}: table {table!r} exists already; choose another name"
            raise MigrationError(msg)
        if not fits(table):
            msg = (
                f"{operation}: table name {table!r} is longer than {MAX_IDENTIFIER_BYTES} "
                "bytes; choose a shorter one"
            )
            raise MigrationError(msg)

    def referring(self, table: str, column: str) -> list[str]:
        """Tables whose ``column`` references ``table``'s id: subclass tables (``id``) or link
        tables (``owner_id``)."""
        return sorted(
            name
            for name, keys in self.foreign_keys.items()
            if any(
                fk["referred_table"] == table and fk["constrained_columns"] == [column]
                for fk in keys
            )
        )

    def parent(self, table: str) -> str | None:
        """The table of the parent class (``id`` references it), or None for a root class."""
        for fk in self.foreign_keys.get(table, []):
            if fk["constrained_columns"] == ["id"] and fk["referred_table"] != table:
                return str(fk["referred_table"])
        return None

    def ancestors(self, table: str) -> list[str]:
        """Parent first, root last."""
        found = []
        parent = self.parent(table)
        while parent is not None and parent not in found:
            found.append(parent)
            parent = self.parent(parent)
        return found

    def descendants(self, table: str) -> list[str]:
        """The tables of every subclass, children before grandchildren."""
        found: list[str] = []
        pending = [table]
        while pending:
            children = [t for t in self.referring(pending.pop(0), "id") if t not in found]
            found.extend(children)
            pending.extend(children)
        return found

    def link_tables(self) -> list[str]:
        """Every link table: ``owner_id`` references a table, and ``target_id`` is there."""
        return sorted(
            name
            for name, keys in self.foreign_keys.items()
            if any(fk["constrained_columns"] == ["owner_id"] for fk in keys)
            and "target_id" in self.columns(name)
        )

    def columns(self, table: str) -> set[str]:
        return {c["name"] for c in self.inspector.get_columns(table)}

    def index_names(self, table: str) -> set[str]:
        return {str(i["name"]) for i in self.inspector.get_indexes(table) if i["name"]}


def _dialect(conn: Connection) -> type[Dialect]:
    return dialect_class(conn.dialect.name)


def _rename_column_indexes(
    schema: _Schema, existing: set[str], *, was: tuple[str, str], now: tuple[str, str]
) -> None:
    """Rename claystore's index (plain or unique) of column ``was`` = (table, column), now
    ``now``, when it is among the ``existing`` index names."""
    for unique in (False, True):
        old = index_name(*was, unique=unique)
        new = index_name(*now, unique=unique)
        if old in existing and old != new:
            _dialect(schema.conn).rename_index(schema.conn, now[0], old, new)


def _registry_tables(schema: _Schema) -> bool:
    return dc_object.name in schema.tables and dc_alias.name in schema.tables


# -- rename_model --------------------------------------------------------------------------------


def rename_model(old: str, new: str, *, link_fields: Iterable[str] | None = None) -> None:
    """Rename model table ``old`` to ``new`` (the class was renamed or given another
    ``__tablename__``), with its link tables and claystore's indexes, and the class key of its
    stored objects: they keep their ids, aliases and references.  The downgrade is
    ``rename_model(new, old)``.

    ``link_fields``: the names of the class's own list/set/tuple/dict-of-references fields.
    Needed only when a link table name was shortened to fit 63 bytes (the field cannot be read
    back from it); by default the link tables are found through their foreign key.
    """
    operation = f"rename_model({old!r}, {new!r})"
    conn = op.get_bind()
    schema = _Schema(conn)
    schema.require(old, operation)
    schema.refuse_taken(new, operation)
    links = _owned_link_tables(schema, old, link_fields, operation)
    renamed_links = {link: fit_identifier(f"{new}_{field}") for link, field in links.items()}
    for target in renamed_links.values():
        schema.refuse_taken(target, operation)
    ancestors = schema.ancestors(old)
    root = ancestors[-1] if ancestors else old  # holds dc_class, the class key of every row
    has_class_key = "dc_class" in schema.columns(root)
    columns = schema.columns(old)
    table_indexes = schema.index_names(old)
    link_indexes = {link: schema.index_names(link) for link in links}

    op.rename_table(old, new)
    for column in columns:
        _rename_column_indexes(schema, table_indexes, was=(old, column), now=(new, column))
    for link, target in renamed_links.items():
        op.rename_table(link, target)
        _rename_column_indexes(
            schema, link_indexes[link], was=(link, "target_id"), now=(target, "target_id")
        )
    if has_class_key:
        rows = sa.table(new if root == old else root, sa.column("dc_class"))
        _replace_class_key(conn, rows.c.dc_class, old, new)
    if dc_object.name in schema.tables:
        _replace_class_key(conn, dc_object.c.class_name, old, new)


def _owned_link_tables(
    schema: _Schema, table: str, fields: Iterable[str] | None, operation: str
) -> dict[str, str]:
    """Link table -> field name, for the link tables of ``table``'s own fields."""
    if fields is not None:
        found = {fit_identifier(f"{table}_{field}"): field for field in fields}
        missing = [link for link in found if link not in schema.tables]
        if missing:
            msg = f"{operation}: link_fields name link tables the database lacks: {missing}"
            raise MigrationError(msg)
        return found
    links = {}
    for link in schema.referring(table, "owner_id"):
        field = link.removeprefix(f"{table}_")
        if field == link or (
            len(link.encode()) >= _SHORTENED_MIN_BYTES and _SHORTENED.search(link)
        ):
            msg = (
                f"{operation}: cannot tell which field link table {link!r} belongs to (its "
                "name may have been shortened to fit); pass link_fields=[...], the names of "
                f"the class's list/set/tuple/dict-of-references fields"
            )
            raise MigrationError(msg)
        links[link] = field
    return links


def _replace_class_key(conn: Connection, column: sa.ColumnClause[Any], old: str, new: str) -> None:
    table = column.table
    assert isinstance(table, sa.TableClause)
    conn.execute(sa.update(table).where(column == old).values({column.name: new}))


# -- drop_model ----------------------------------------------------------------------------------


def drop_model(table: str) -> None:
    """Remove a model class for good: its objects (and those of its subclasses) leave the
    registry, their aliases, other objects' lists and dicts of references, and the tables of
    the class's ancestors; the tables of the class, its subclasses and their link tables are
    dropped.  References to the removed objects in other objects' fields read as None, as
    after any delete.  The downgrade creates the tables again, empty."""
    operation = f"drop_model({table!r})"
    conn = op.get_bind()
    if table.startswith(SYSTEM_TABLE_PREFIX):
        msg = f"{operation}: {table!r} is one of claystore's system tables, not a model table"
        raise MigrationError(msg)
    schema = _Schema(conn)
    schema.require(table, operation)
    doomed = [table, *schema.descendants(table)]
    doomed_links = [link for t in doomed for link in schema.referring(t, "owner_id")]
    ids: sa.Select[Any] = sa.select(sa.column("id")).select_from(sa.table(table))
    if _registry_tables(schema):
        conn.execute(sa.delete(dc_alias).where(dc_alias.c.object_id.in_(ids)))
        conn.execute(sa.delete(dc_object).where(dc_object.c.id.in_(ids)))
    for link in schema.link_tables():
        if link not in doomed_links:
            target = sa.table(link, sa.column("target_id"))
            conn.execute(sa.delete(target).where(target.c.target_id.in_(ids)))
    ancestors = schema.ancestors(table)
    for link in [link for ancestor in ancestors for link in schema.referring(ancestor, "owner_id")]:
        owned = sa.table(link, sa.column("owner_id"))
        conn.execute(sa.delete(owned).where(owned.c.owner_id.in_(ids)))
    # root first: where the engine enforces foreign keys, deleting a row deletes its rows in
    # the subclass tables (``ON DELETE CASCADE``), the ones the next statements read included
    for ancestor in reversed(ancestors):
        rows = sa.table(ancestor, sa.column("id"))
        conn.execute(sa.delete(rows).where(rows.c.id.in_(ids)))
    for link in doomed_links:
        op.drop_table(link)
    for dropped in reversed(doomed):  # subclasses before the tables they reference
        op.drop_table(dropped)


# -- rename_field --------------------------------------------------------------------------------


def rename_field(table: str, old: str, new: str) -> None:
    """Rename field ``old`` of the class whose table is ``table`` to ``new``: its column
    (``<field>_id`` for a reference) or its link table ``<table>_<field>``, and claystore's
    index of it; the values stay.  The downgrade is ``rename_field(table, new, old)``."""
    operation = f"rename_field({table!r}, {old!r}, {new!r})"
    conn = op.get_bind()
    schema = _Schema(conn)
    schema.require(table, operation)
    columns = schema.columns(table)
    indexes = schema.index_names(table)
    reference_old, reference_new = fit_identifier(f"{old}_id"), fit_identifier(f"{new}_id")
    link_old, link_new = fit_identifier(f"{table}_{old}"), fit_identifier(f"{table}_{new}")
    if old in columns:
        renames = (old, fit_identifier(new))
    elif reference_old in columns:
        renames = (reference_old, reference_new)
    elif link_old in schema.tables:
        schema.refuse_taken(link_new, operation)
        link_indexes = schema.index_names(link_old)
        op.rename_table(link_old, link_new)
        _rename_column_indexes(
            schema, link_indexes, was=(link_old, "target_id"), now=(link_new, "target_id")
        )
        return
    else:
        msg = (
            f"{operation}: table {table!r} has no column {old!r} (a field), "
            f"{reference_old!r} (a reference) or link table {link_old!r} (a container of "
            "references); check the field's old name"
        )
        raise MigrationError(msg)
    column, renamed = renames
    if renamed in columns:
        msg = f"{operation}: table {table!r} has a column {renamed!r} already"
        raise MigrationError(msg)
    op.alter_column(table, column, new_column_name=renamed)
    _rename_column_indexes(schema, indexes, was=(table, column), now=(table, renamed))


# -- written by autogenerate ---------------------------------------------------------------------


def add_field(table: str, column: sa.Column[Any], *, default: Any) -> None:
    """Add ``column`` (a model field's) to ``table``, existing rows holding ``default`` (in the
    form the column stores: an enum member's name, a JSON document).  A NOT NULL column
    becomes NOT NULL after the rows are filled, where the engine alters columns in place (on
    SQLite it stays nullable, which claystore accepts: it never writes None into such a
    field).  The downgrade is ``op.drop_column(table, column.name)``."""
    conn = op.get_bind()
    op.add_column(table, sa.Column(column.name, column.type, nullable=True))
    if default is not None:
        filled = sa.table(table, sa.column(column.name, column.type))
        conn.execute(sa.update(filled).values({column.name: default}))
    if not column.nullable and _dialect(conn).can_alter_columns:
        op.alter_column(table, column.name, nullable=False, existing_type=column.type)


def nullable_index_term(column: str) -> sa.ColumnElement[Any]:
    """The index term of a nullable ``Indexed`` field's column, for ``op.create_index``: an
    index that serves claystore's order (None lowest) in both directions, on every engine."""
    return NullableIndexTerm(sa.column(column))
