"""Indexes whose definition each engine's dialect decides: one table definition, every engine.

Owns :func:`nullable_column_index` (an index of a nullable column that serves the datastore's
order, NULL lowest) and :func:`partial_index` (an index of the rows where a condition holds).
Each is one ``Index`` whose DDL comes from the dialect class of the engine it is compiled for
(:func:`~claystore.dialects.registry.dialect_class`, :func:`~.registry.dialect_classes`), so
one ``MetaData`` serves every engine and alembic autogenerate compares it with what each
engine reflects.

Called by :mod:`claystore.orm.mapping` (model tables) and :mod:`claystore.orm.system` (the
registry table).  No I/O.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import UnaryExpression

from claystore.dialects.registry import dialect_class, dialect_classes

__all__ = ["nullable_column_index", "partial_index"]


class NullableIndexTerm(UnaryExpression[Any]):
    """The index term of a nullable column: what the engine's
    :meth:`~claystore.dialects.base.Dialect.nullable_index_term` says (``col ASC NULLS FIRST``
    on PostgreSQL, ``col`` on SQLite).  A unary expression of the column, so that SQLAlchemy
    finds the index's table and alembic compares it as an index of that column."""

    inherit_cache = True

    def __init__(self, column: sa.ColumnClause[Any]) -> None:
        super().__init__(column, type_=column.type)
        self.column = column


@compiles(NullableIndexTerm)
def _compile_nullable_index_term(
    element: NullableIndexTerm, compiler: SQLCompiler, **kw: Any
) -> str:
    term = dialect_class(compiler.dialect.name).nullable_index_term(element.column)
    return compiler.process(term, **kw)


def nullable_column_index(name: str, column: sa.Column[Any]) -> sa.Index:
    """Index ``column`` (a nullable column of a table) so that the index serves the
    datastore's order (NULL lowest) in both directions, on every engine."""
    return sa.Index(name, NullableIndexTerm(column))


def partial_index(
    name: str, *columns: str, where: sa.ColumnElement[bool] | sa.TextClause
) -> sa.Index:
    """An index of ``columns`` over the rows where ``where`` holds, on every engine with
    partial indexes (the others index every row)."""
    options: dict[str, Any] = {}
    for cls in dialect_classes():
        options.update(cls.partial_index_options(where))
    return sa.Index(name, *columns, **options)
