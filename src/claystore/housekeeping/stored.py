"""What levels 3 and 4 of the integrity check read: the stored tables and the fields to check.

Owns :class:`StoredTables` (the tables and columns a backend database really has, inspected
once per backend, so that a check skips what level 1 reports missing instead of failing on
it), :func:`checked_fields` (which fields of a class a check reads, and from which table), and
:func:`as_object_id` (a stored id read as a UUID, None when it is not one).

Called by :mod:`.references` and :mod:`.data`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from claystore.orm.fields import Field, FieldKind
from claystore.orm.mapping import ModelInfo

__all__ = ["CheckedField", "StoredTables", "as_object_id", "checked_fields"]


class StoredTables:
    """The tables of one database and their columns, as they are stored (inspected once)."""

    def __init__(self, conn: Connection) -> None:
        self._inspector = sa.inspect(conn)
        self._names = set(self._inspector.get_table_names())
        self._columns: dict[str, set[str]] = {}

    def has(self, table: sa.Table, *columns: str) -> bool:
        """Whether ``table`` is stored, with every one of ``columns``."""
        if table.name not in self._names:
            return False
        if not columns:
            return True
        stored = self._columns.get(table.name)
        if stored is None:
            stored = {c["name"] for c in self._inspector.get_columns(table.name)}
            self._columns[table.name] = stored
        return all(column in stored for column in columns)


@attrs.frozen
class CheckedField:
    """A field a check reads for a class: the field and the table that holds its column or
    rows (``holder``: the declaring class's table, or its link table)."""

    field: Field
    holder: sa.Table
    #: the class's own table when ``holder`` is an ancestor's (its rows restrict the check
    #: to the class's objects), else None
    scope: sa.Table | None


def checked_fields(
    info: ModelInfo, selected: set[str], stored: StoredTables
) -> Iterator[CheckedField]:
    """The fields of ``info`` to check, with the tables they are read from: its own fields,
    and those of its ancestors when no ancestor is among the classes checked (``selected``:
    their table names; a whole-store check reads each field once, in its declaring class's
    table).  Fields whose table or column is not stored are left out (level 1 reports them)."""
    ancestors_checked = info.parent is not None and info.parent.tablename in selected
    if not stored.has(info.table, "id"):
        return
    for owner in info.hierarchy:
        if owner is not info and ancestors_checked:
            continue
        scope = None if owner is info else info.table
        for field in owner.own_fields:
            if field.kind.is_link:
                link = owner.link_tables[field.name]
                if stored.has(link, "owner_id", "target_id"):
                    yield CheckedField(field, link, scope)
            elif stored.has(owner.table, "id", field.column_name):
                yield CheckedField(field, owner.table, scope)


def is_reference(field: Field) -> bool:
    """Whether ``field`` holds references (a reference column or a link table)."""
    return field.kind is FieldKind.REF or field.kind.is_link


def as_object_id(value: Any) -> UUID | None:
    """A stored object id (a UUID, or its 32 hex digits on SQLite) as a UUID; None when the
    value is no id at all."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None
