"""Indexes whose definition each engine's dialect decides: one table definition, every engine.

Owns :func:`nullable_column_index` (an index that serves the datastore's order, NULL lowest,
over a nullable column) and :func:`partial_index` (an index of the rows where a condition
holds).  Each asks every engine's dialect class
(:func:`~claystore.dialects.registry.dialect_classes`), so one ``MetaData`` serves every
engine and alembic autogenerate reads it.

Called by :mod:`claystore.orm.mapping` (model tables) and :mod:`claystore.orm.system` (the
registry table).  No I/O.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from claystore.dialects.registry import dialect_classes

__all__ = ["nullable_column_index", "partial_index"]


def nullable_column_index(name: str, column: sa.Column[Any]) -> list[sa.Index]:
    """Index ``column`` (a nullable column of a table) so that the index serves the
    datastore's order in both directions: one index named ``name`` per engine, with the
    engine's :meth:`~claystore.dialects.base.Dialect.nullable_index_term`, each created on its
    own engine only."""
    return [
        sa.Index(name, cls.nullable_index_term(column)).ddl_if(dialect=cls.name)
        for cls in dialect_classes()
    ]


def partial_index(
    name: str, *columns: str, where: sa.ColumnElement[bool] | sa.TextClause
) -> sa.Index:
    """An index of ``columns`` over the rows where ``where`` holds, on every engine with
    partial indexes (the others index every row)."""
    options: dict[str, Any] = {}
    for cls in dialect_classes():
        options.update(cls.partial_index_options(where))
    return sa.Index(name, *columns, **options)
