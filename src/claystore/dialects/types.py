"""Column types whose storage each engine's dialect decides: one table definition, every engine.

Owns the engine-independent column types that several packages share -- text compared by code
point (:class:`CodePointString`, :class:`CodePointText`), JSON documents (:class:`JSONDocument`
of Python values, :class:`JSONText` given and read as JSON text), :class:`AwareDateTime` and
:class:`ExactDecimal`.  Each is a :class:`~sqlalchemy.types.TypeDecorator` whose storage type
comes from the dialect class of the engine it is compiled for
(:func:`~claystore.dialects.registry.dialect_class`), so one ``MetaData`` serves every engine
and alembic autogenerate reads it.  What an engine stores (``COLLATE "C"`` text, JSONB,
``timestamptz``, ``NUMERIC``, or text on SQLite) is in the engine's module.
``load_dialect_impl`` returns that storage type as the dialect class gives it, not adapted to
the driver: DDL renders it as written (``TEXT``), and SQLAlchemy adapts it for binding values.

Called by :mod:`claystore.orm.types` (the type map of model fields) and by
:mod:`claystore.datastore.jsontable` (the JSON-table datastore's table).  No I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect as SQLAlchemyDialect
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.types import TypeDecorator, TypeEngine
from typing_extensions import override

from claystore.dialects.registry import dialect_class
from claystore.errors import QueryError

__all__ = [
    "AwareDateTime",
    "CodePointString",
    "CodePointText",
    "ExactDecimal",
    "JSONDocument",
    "JSONText",
]


class _StorageType(TypeDecorator[Any]):
    """A column type whose storage the engine's dialect decides.

    ``name`` is None: SQLAlchemy counts every ``TypeDecorator`` as a schema event target, and
    alembic asks such a type for the name of its constraint when a column is renamed in batch
    mode (SQLite); without this the question reached the storage type, which has no name.
    """

    name: str | None = None
    cache_ok = True


class CodePointString(_StorageType, TypeDecorator[str]):
    """A VARCHAR compared by code point on every engine, like Python's ``str`` (ORDER BY and
    indexes agree with Python's sort, not with a server locale)."""

    impl = sa.String
    cache_ok = True

    @override
    def load_dialect_impl(self, dialect: SQLAlchemyDialect) -> TypeEngine[Any]:
        text = self.impl_instance
        assert isinstance(text, sa.String)
        return dialect_class(dialect.name).code_point_text_type(text)


class CodePointText(CodePointString):
    """A TEXT compared by code point on every engine, like Python's ``str``."""

    impl = sa.Text
    cache_ok = True


class JSONDocument(_StorageType, TypeDecorator[Any]):
    """A JSON document of Python values (dicts, lists, str, numbers, bools, None): the
    engine's own JSON document type, else SQLAlchemy's JSON."""

    impl = sa.JSON
    cache_ok = True

    @override
    def load_dialect_impl(self, dialect: SQLAlchemyDialect) -> TypeEngine[Any]:
        return dialect_class(dialect.name).json_document_type(self.impl_instance)


class JSONText(_StorageType, TypeDecorator[str]):
    """A JSON document given and read as JSON text: the engine's own JSON document type, else
    TEXT.  Write it through :meth:`~claystore.dialects.base.Dialect.json_from_text` and read
    it through :meth:`~claystore.dialects.base.Dialect.json_as_text`."""

    impl = sa.Text
    cache_ok = True

    @override
    def load_dialect_impl(self, dialect: SQLAlchemyDialect) -> TypeEngine[Any]:
        return dialect_class(dialect.name).json_document_type(self.impl_instance)


def _refuse_naive(values: Iterable[Any]) -> None:
    """Raise :class:`QueryError` for a naive datetime: which instant it means would depend on
    the process's time zone."""
    for value in values:
        if isinstance(value, list | tuple | set | frozenset):  # in_(), between()
            _refuse_naive(value)
        elif isinstance(value, dt.datetime) and value.utcoffset() is None:
            msg = (
                f"{value!r} is a naive datetime, which is ambiguous (its instant would depend "
                "on the process's time zone); give it a timezone, e.g. datetime(..., tzinfo=UTC)"
            )
            raise QueryError(msg)


class _InstantComparator(
    TypeDecorator.Comparator[dt.datetime], sa.DateTime.Comparator[dt.datetime]
):
    """Compares an aware datetime column with aware datetimes only (``Employee.hired >
    datetime(2024, 1, 1)`` raises :class:`QueryError` when the expression is written)."""

    @override
    def operate(self, op: OperatorType, *other: Any, **kwargs: Any) -> sa.ColumnElement[Any]:
        _refuse_naive(other)
        return super().operate(op, *other, **kwargs)

    @override
    def reverse_operate(self, op: OperatorType, other: Any, **kwargs: Any) -> sa.ColumnElement[Any]:
        _refuse_naive((other,))
        return super().reverse_operate(op, other, **kwargs)


class AwareDateTime(_StorageType, TypeDecorator[dt.datetime]):
    """A timezone-aware datetime.

    Given to the engine in UTC, and back aware (UTC) on every engine, so comparisons never mix
    naive and aware.  A naive datetime is refused (:class:`QueryError`), in an expression and
    as a bound value: which instant it means would depend on the process's time zone.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True
    comparator_factory = _InstantComparator  # replaces TypeDecorator's memoized property

    @override
    def load_dialect_impl(self, dialect: SQLAlchemyDialect) -> TypeEngine[Any]:
        return dialect_class(dialect.name).aware_datetime_type()

    @override
    def process_bind_param(self, value: dt.datetime | None, dialect: SQLAlchemyDialect) -> Any:
        if value is None:
            return None
        _refuse_naive((value,))
        return value.astimezone(dt.UTC)

    @override
    def process_result_value(self, value: Any, dialect: SQLAlchemyDialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.astimezone(dt.UTC)


class ExactDecimal(_StorageType, TypeDecorator[Decimal]):
    """A Decimal that keeps every digit (``NUMERIC`` where the engine has it)."""

    impl = sa.Numeric
    cache_ok = True

    @override
    def load_dialect_impl(self, dialect: SQLAlchemyDialect) -> TypeEngine[Any]:
        return dialect_class(dialect.name).exact_decimal_type()

    @override
    def process_result_value(self, value: Any, dialect: SQLAlchemyDialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))
