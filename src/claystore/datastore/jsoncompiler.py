"""The JSON-table datastore's query compiler: datastore queries -> SQL on one JSON table.

Owns :class:`JSONQueryCompiler`, which compiles queries for
:class:`~claystore.datastore.jsontable.SQLDatastore` tables into a :class:`JSONPlan`, and
does no I/O.  The engine reads the JSON documents (members, their types, typed comparisons and
ordering keys) through its :class:`~claystore.dialects.base.Dialect`; the order itself is
:mod:`claystore.datastore.sqlorder`'s.

How the total order (:mod:`claystore.datastore.query`) becomes SQL: every field of a record
has a *class* -- 0 missing/null, 1 bool, 2 number, 3 string, 4 object, 5 array (``dict`` sorts
before ``list``; :class:`~claystore.dialects.base.JSONType`).  Orders sort by class, then by a
typed key inside the class; a filter is decided by class where the classes differ and by a
typed comparison where they are the same: numbers exactly (SQLite compares INTEGER and REAL
exactly; PostgreSQL compares JSONB numbers as ``numeric``), strings by code point (SQLite
``BINARY``, PostgreSQL ``COLLATE "C"``).  Ties are broken by key.  What SQL cannot decide
exactly is left to Python, after SQL has narrowed the rows (:class:`JSONPlan`): filters on
objects or arrays (Python compares them by ``repr``), orders meeting such values (flagged per
row), fields Python reads as attributes of records that are not JSON objects (``count`` of a
list record; checked first), and fields read through a custom ``object_getattr``.

Called by :mod:`claystore.datastore.jsontable`.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

import attrs
import sqlalchemy as sa

from claystore.datastore.query import Filter, Order, Query
from claystore.datastore.sqlorder import (
    INT64_MAX,
    INT64_MIN,
    compare_bracketed,
    compare_keys,
    is_plain,
    json_number,
    limit_of,
    op_holds,
    row_count,
    sql_compare,
    value_class,
)
from claystore.dialects.base import Dialect, JSONType, sql_constant

__all__ = ["CLASS_KEYS", "JSONPlan", "JSONQueryCompiler", "attribute_types", "encode_json_string"]

# -- the total order, by class ----------------------------------------------------------------

NULL, BOOL, NUMBER, STRING, OBJECT, ARRAY = JSONType
#: The total-order prefix (rank, type name) of each SQL class of JSON values.
CLASS_KEYS: Final[dict[int, tuple[Any, ...]]] = {
    NULL: (0,),
    BOOL: (1,),
    NUMBER: (2,),
    STRING: (3,),
    OBJECT: (4, "dict"),
    ARRAY: (4, "list"),
}


def encode_json_string(text: str) -> str:
    """A str as JSON text (unicode kept as is)."""
    return json.dumps(text, ensure_ascii=False)


_TOP_LEVEL_TYPES: Final = (("array", list), ("string", str), ("boolean", bool), ("null", None))


def attribute_types(field: str) -> list[str]:
    """Top-level JSON types whose Python value has an attribute named ``field``: a record of
    such a type reads that field as the attribute, not as None (``default_object_getattr``)."""
    kinds = [kind for kind, type_ in _TOP_LEVEL_TYPES if hasattr(type_, field)]
    if hasattr(0, field) or hasattr(0.0, field):
        kinds.append("number")
    return kinds


@attrs.define
class JSONPlan:
    """A query compiled for :class:`SQLDatastore`: what SQL does and what Python must do."""

    statement: sa.Select[Any]  # the one SELECT, when SQL does everything
    narrowing: sa.Select[Any]  # rows Python finishes: collection + safe exact filters, key order
    risky_check: sa.Select[Any] | None  # is any record read as an object with attributes?
    in_python: list[str]  # why Python must evaluate the query (empty: SQL does it all)
    has_flag: bool  # statement's last column flags rows whose order SQL cannot decide
    skip_count: sa.Select[Any] | None  # how many rows the offset skipped (for empty pages)


class JSONQueryCompiler:
    """Translates datastore queries into SELECTs on a :class:`SQLDatastore` table, for the
    engine of ``dialect`` (which reads the JSON documents)."""

    def __init__(self, table: sa.Table, dialect: Dialect) -> None:
        self.table = table
        self.dialect = dialect

    def class_of(self, field: str) -> sa.ColumnElement[int]:
        """The class (:class:`~claystore.dialects.base.JSONType`) of ``field`` in each record."""
        return self.dialect.json_type(self.table.c.value, field)

    def _typed(self, field: str, klass: int, op: str, value: Any) -> sa.ColumnElement[bool] | bool:
        """``field <op> value`` for records whose field has ``value``'s class (bool, number or
        string); True/False when the answer is the same for every such record."""
        if klass == NUMBER and isinstance(value, float) and not math.isfinite(value):
            return op_holds(op, 1 if value == -math.inf else -1)  # stored numbers are finite
        document, dialect = self.table.c.value, self.dialect
        if klass == STRING:
            return dialect.compare_text(op, dialect.json_member_text(document, field), value)
        stored = dialect.json_member(document, field)
        literal = dialect.json_literal(value, json_number(value))
        if isinstance(literal, int) and not INT64_MIN <= literal <= INT64_MAX:
            return compare_bracketed(op, stored, literal)  # no driver binds it as an integer
        return sql_compare(op, stored, literal)

    def filter_clause(self, condition: Filter) -> sa.ColumnElement[bool] | None:
        """The WHERE clause of a filter, or None when SQL cannot decide it exactly.

        The typed comparison comes first in each conjunction and the class test second, so
        that for most rows one JSON lookup decides (SQLite evaluates AND left to right).
        """
        field, op, value = condition.field, condition.op, condition.value
        wanted = value_class(value)
        if wanted in (CLASS_KEYS[OBJECT], CLASS_KEYS[ARRAY]):
            return None  # Python compares dicts and lists by repr()
        if op in ("=", "!=") and wanted in ((1,), (2,), (3,)):
            equality = self._equality(field, op, value)
            if equality is not None:
                return equality
        klass = self.class_of(field)
        always: list[int] = []
        typed: list[sa.ColumnElement[bool]] = []
        for code, key in CLASS_KEYS.items():
            if key != wanted or code == NULL:
                if op_holds(op, compare_keys(key, wanted)):
                    always.append(code)
                continue
            clause = self._typed(field, code, op, value)
            if clause is True:
                always.append(code)
            elif clause is not False:
                typed.append(sa.and_(clause, klass == sql_constant(code)))
        if len(always) == len(CLASS_KEYS):
            return sa.true()
        parts = typed + ([klass.in_([sql_constant(c) for c in always])] if always else [])
        return sa.or_(*parts) if parts else sa.false()

    def _equality(self, field: str, op: str, value: Any) -> sa.ColumnElement[bool] | None:
        """``=`` / ``!=`` with a bool, number or str decided by the engine's JSON equality
        alone, when it holds only within one JSON type; None when the class test is needed."""
        if isinstance(value, float) and not math.isfinite(value):
            return sa.true() if op == "!=" else sa.false()  # stored numbers are finite
        text = encode_json_string(value) if isinstance(value, str) else json_number(value)
        return self.dialect.json_equals(op, self.table.c.value, field, value, text)

    def order_terms(self, order: Order) -> list[sa.ColumnElement[Any]]:
        """ORDER BY terms of one order: the class, then the typed key(s) inside it."""
        field = order.field
        klass = self.class_of(field)
        keys = self.dialect.json_order_keys(self.table.c.value, field, klass)
        return [t.asc() if order.isAscending() else t.desc() for t in (klass, *keys)]

    def _risky(self, fields: list[str]) -> sa.ColumnElement[bool] | None:
        kinds = sorted({kind for field in fields for kind in attribute_types(field)})
        if not kinds:
            return None
        return self.dialect.json_root_type_in(self.table.c.value, kinds)

    def value_column(self) -> sa.ColumnElement[Any]:
        """The stored JSON as text."""
        return self.dialect.json_as_text(self.table.c.value)

    def compile(self, query: Query) -> JSONPlan:
        """Compile ``query``: the one SELECT that answers it when SQL can, and the narrowing
        SELECT plus the reasons when Python has to finish it."""
        table = self.table
        scope = [table.c.path == str(query.key)]
        if query.offset_key is not None:
            scope.append(table.c.key > str(query.offset_key))
        in_python: list[str] = []
        pushed: list[sa.ColumnElement[bool]] = []
        safe: list[sa.ColumnElement[bool]] = []  # also exact for records that are not objects
        for condition in query.filters:
            clause = self.filter_clause(condition) if is_plain(condition, query) else None
            if clause is None:
                in_python.append(f"filter {condition}: SQL cannot compare it exactly")
                continue
            pushed.append(clause)
            if not attribute_types(condition.field):
                safe.append(clause)
        if not all(is_plain(order, query) for order in query.orders):
            in_python.append("orders: they read fields through a custom object_getattr")
        columns: list[Any] = [table.c.key, self.value_column()]
        if query.orders:
            flags = (self.class_of(o.field) >= sql_constant(OBJECT) for o in query.orders)
            columns.append(sa.or_(*flags))
        order_by = [term for order in query.orders for term in self.order_terms(order)]
        statement = (
            sa.select(*columns)
            .where(*scope, *pushed)
            .order_by(*order_by, table.c.key)
            .limit(row_count(limit_of(query)))
            .offset(row_count(query.offset or None))
        )
        narrowing = (
            sa.select(table.c.key, self.value_column()).where(*scope, *safe).order_by(table.c.key)
        )
        fields = [c.field for c in query.filters] + [o.field for o in query.orders]
        risky = self._risky(fields)
        check = None if risky is None else sa.select(sa.literal(1)).where(*scope, risky).limit(1)
        skip_count = None
        if query.offset and limit_of(query) != 0:  # limit 0 reads nothing, skips nothing
            skipped = sa.select(table.c.key).where(*scope, *pushed).limit(row_count(query.offset))
            skip_count = sa.select(sa.func.count()).select_from(skipped.subquery())
        return JSONPlan(statement, narrowing, check, in_python, bool(query.orders), skip_count)
