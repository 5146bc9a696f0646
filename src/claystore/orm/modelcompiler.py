"""The model query's compiler: model queries -> one SELECT, behind ``Employee.dc_query()``.

Owns :func:`compile_model_query` (also behind ``client.query``), which turns a datastore
:class:`~claystore.datastore.Query` on a model class into one SELECT on the class's tables
(typed columns, so indexes serve filters and orders), joined with the registry
(``dc_object``: dataset and backend of each row) and, when the class has subclasses, LEFT
OUTER JOINed with their tables so that every object comes back as its own class from the same
statement; its leading columns are the row shape of every object SELECT
(:func:`claystore.orm.rows.object_columns`).  Does no I/O.
The total order written as SQL is :mod:`claystore.datastore.sqlorder`'s; what differs per
engine (text by code point, NULL ordering, NaN, Decimal comparisons) is the engine's
:class:`~claystore.dialects.base.Dialect`.

Semantics are the datastore's (:mod:`claystore.datastore.query`): values compare in the total
order None < bool < numbers < str, a missing value (NULL) is None, results are ordered by the
query's orders then by key -- ``/<Class>:<id>``, so by ``id``.  A column holds one type, so a
filter compares with a value of another rank by rank alone (``age < "x"`` holds for every
row), and NULL decides by rank too (``age < 5`` holds for NULL; ascending orders put NULLs
first).  Integers and floats compare exactly across int and float columns.  Columns of other
types (datetime, date, time, timedelta, UUID, bytes, Decimal on PostgreSQL) compare in their
type's natural order with values of the same type; Enum fields take ``=``/``!=`` only;
references take ``=``/``!=`` with an object, an id or None.  Anything else (containers, link
tables, custom ``object_getattr``, mixed types among those) raises :class:`QueryError`.

Called by :mod:`claystore.orm.modelquery`.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Context, Decimal
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.datastore.key import Key
from claystore.datastore.query import Filter, Order, Query
from claystore.datastore.sqlorder import (
    INT64_MAX,
    INT64_MIN,
    compare_bracketed,
    compare_keys,
    is_plain,
    limit_of,
    op_holds,
    row_count,
    sql_compare,
    value_class,
)
from claystore.dialects.base import Dialect
from claystore.errors import QueryError
from claystore.orm.fields import Field, FieldKind
from claystore.orm.mapping import ModelInfo, generation, iter_subclass_infos
from claystore.orm.rows import RowReader, object_columns
from claystore.orm.state import STATE_ATTR
from claystore.orm.system import dc_object
from claystore.orm.types import (
    DECIMAL_MAX_ADJUSTED,
    DECIMAL_MIN_EXPONENT,
    TIMEDELTA_MAX,
    TIMEDELTA_MIN,
)

__all__ = [
    "ClassSelect",
    "ModelPlan",
    "RowShape",
    "check_filter_value",
    "class_select",
    "compile_model_query",
]


@attrs.frozen
class RowShape:
    """How to read one concrete class's object from a row: ``(field key, row label)`` pairs
    for the fields that are not labelled by their key (a subclass's own fields)."""

    info: ModelInfo
    relabel: tuple[tuple[str, str], ...]


@attrs.frozen
class ModelPlan:
    """A compiled model query: the one SELECT, and what counting needs."""

    info: ModelInfo
    statement: sa.Select[Any]  # the one SELECT: objects in query order
    shapes: dict[str, RowShape]  # by dc_class: the class and how to read its rows
    where: list[sa.ColumnElement[bool]]
    limit: int | None
    offset: int

    _readers: dict[tuple[str, ...], dict[str, RowReader]] = attrs.field(
        factory=dict, eq=False, repr=False
    )

    def readers(self, keys: Sequence[str] | None = None) -> dict[str, RowReader]:
        """How to read each concrete class's objects from rows with these column ``keys``
        (default: the statement's own), made once per plan and shape of row."""
        shape_key = tuple(self.statement.selected_columns.keys()) if keys is None else tuple(keys)
        readers = self._readers.get(shape_key)
        if readers is None:
            positions = {key: n for n, key in enumerate(shape_key)}
            readers = {
                name: RowReader(shape.info, positions, dict(shape.relabel))
                for name, shape in self.shapes.items()
            }
            self._readers[shape_key] = readers
        return readers

    def _ids(self) -> sa.Select[Any]:
        return sa.select(self.info.root.table.c.id).select_from(self.info.selectable())

    def count(self) -> sa.Select[Any]:
        """SELECT of how many objects iterating would return (limit and offset applied)."""
        ids = self._ids().where(*self.where)
        ids = ids.limit(row_count(self.limit)).offset(row_count(self.offset or None))
        return sa.select(sa.func.count()).select_from(ids.subquery())

    def skip_count(self) -> sa.Select[Any] | None:
        """SELECT of how many rows the offset skips (None when it skips nothing)."""
        if not self.offset or self.limit == 0:  # limit 0 reads nothing, so skips nothing
            return None
        ids = self._ids().where(*self.where).limit(row_count(self.offset))
        return sa.select(sa.func.count()).select_from(ids.subquery())


# -- fields ------------------------------------------------------------------------------------


def _field(info: ModelInfo, name: str, use: str) -> Field:
    field = info.fields.get(name)
    if field is None:
        names = ", ".join(sorted(info.fields)) or "none"
        msg = f"{info.cls.__name__} has no field {name!r} to {use}; its fields: {names}"
        raise QueryError(msg)
    if field.kind.is_link:
        msg = (
            f"{field.label} ({field.annotation}) is stored in a link table and cannot be used "
            f"to {use}; query its target class instead"
        )
        raise QueryError(msg)
    if field.kind is FieldKind.JSON:
        msg = (
            f"{field.label} ({field.annotation}) is a JSON container and cannot be used to "
            f"{use}; model queries compare scalar and reference fields"
        )
        raise QueryError(msg)
    return field


def _column_class(field: Field) -> tuple[Any, ...]:
    """The total-order class of a scalar column's values."""
    python_type = field.python_type
    if python_type is bool:
        return (1,)
    if python_type in (int, float, Decimal):  # numbers, as in the total order
        return (2,)
    if python_type is str:
        return (3,)
    return (4, python_type.__name__)


def _check_typed(field: Field, op: str, value: Any, dialect: Dialect) -> None:
    """Refuse comparisons SQL would answer differently from what the user meant."""
    python_type = field.python_type
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        if op not in ("=", "!=") or not (value is None or isinstance(value, python_type)):
            msg = (
                f"{field.label} holds {python_type.__name__} members, stored by name: "
                f"filter it with = or != and a {python_type.__name__} member (or None), "
                f"not {op} {value!r}"
            )
            raise QueryError(msg)
        return
    if python_type is Decimal and not dialect.has_exact_decimals:
        msg = (
            f"{field.label} is a Decimal, stored as exact text on {dialect.title}, which SQL "
            "cannot compare as a number; compare it in Python, or use PostgreSQL"
        )
        raise QueryError(msg)
    _check_instant(field, op, value)
    wanted, kept = value_class(value), _column_class(field)
    if isinstance(value, Decimal) or python_type is Decimal:  # Decimals meet Decimals only
        mismatched = not (isinstance(value, Decimal) and python_type is Decimal)
    else:
        mismatched = wanted != kept and 4 in (wanted[0], kept[0])  # beyond str
    if value is not None and mismatched:
        msg = (
            f"{field.label} is {field.annotation}: compare it with {python_type.__name__} "
            f"values (or None), not with {type(value).__name__} {value!r:.40}"
        )
        raise QueryError(msg)


def check_filter_value(info: ModelInfo, name: str, op: str, value: Any) -> None:
    """Refuse at once a filter value whose rows would depend on the process's time zone (a
    naive datetime, a time with a tzinfo); everything else is checked when the query
    compiles."""
    field = info.fields.get(name)
    if field is not None and field.kind is FieldKind.SCALAR:
        _check_instant(field, op, value)


def _check_instant(field: Field, op: str, value: Any) -> None:
    """Refuse the datetimes and times whose meaning depends on the process's time zone."""
    python_type = field.python_type
    if python_type is dt.datetime and isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            msg = (
                f"{field.label} {op} {value!r}: a naive datetime is ambiguous (the rows it "
                "matches would depend on the process's time zone); give it a timezone, "
                "e.g. datetime(..., tzinfo=UTC)"
            )
            raise QueryError(msg)
    elif python_type is dt.time and isinstance(value, dt.time) and value.tzinfo is not None:
        msg = (
            f"{field.label} {op} {value!r}: {field.label} holds times without a tzinfo; "
            "compare it with one (value.replace(tzinfo=None))"
        )
        raise QueryError(msg)


def _compare_number(
    op: str, column: Any, python_type: type, value: Any, dialect: Dialect
) -> sa.ColumnElement[bool] | bool:
    """``column <op> value`` for a numeric column and a value of its kind, exactly."""
    if python_type is Decimal:
        return _compare_decimal(op, column, value)
    if isinstance(value, float) and math.isnan(value):
        if python_type is float:
            return dialect.compare_nan(op, column, value)
        return op_holds(op, -1)  # NaN sorts after every number, and int columns hold no NaN
    if python_type is float:
        if isinstance(value, int):
            return compare_bracketed(op, column, value)
        return sql_compare(op, column, value)
    return _compare_int_column(op, column, value)


def _compare_int_column(op: str, column: Any, value: float) -> sa.ColumnElement[bool] | bool:
    """``column <op> value`` for a 64-bit int column: floats become the integer bounds they
    imply (``x < 2.5`` is ``x <= 2``), so the column's index still serves."""
    if isinstance(value, float):
        if math.isinf(value):
            return op_holds(op, -1 if value > 0 else 1)
        if not value.is_integer():
            if op in ("=", "!="):
                return op == "!="
            low = math.floor(value)
            return _compare_int_column("<=" if op in ("<", "<=") else ">", column, low)
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        return op_holds(op, -1 if value > 0 else 1)
    return sql_compare(op, column, value)


def _compare_decimal(op: str, column: Any, value: Decimal) -> sa.ColumnElement[bool] | bool:
    """``column <op> value`` for a Decimal column, also for values no column holds: NaN
    (after every number), and finite values beyond NUMERIC's range (between every finite
    column value and the infinities) or with more decimal places than it keeps."""
    if value.is_nan():
        return op_holds(op, -1)  # columns hold no NaN (refused at assignment)
    if not value.is_finite():
        return sql_compare(op, column, value)
    if value.adjusted() > DECIMAL_MAX_ADJUSTED:
        if op in ("=", "!="):
            return op == "!="
        below = op in ("<", "<=")
        if value > 0:  # every finite column value is below it, Infinity above
            return sql_compare("<" if below else ">=", column, Decimal("Infinity"))
        return sql_compare("<=" if below else ">", column, Decimal("-Infinity"))
    return _compare_fine_decimal(op, column, value)


def _compare_fine_decimal(op: str, column: Any, value: Decimal) -> sa.ColumnElement[bool] | bool:
    """``column <op> value`` for a finite Decimal in NUMERIC's range, which may have more
    decimal places than a column keeps (it then lies strictly between two column values)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < DECIMAL_MIN_EXPONENT:
        digits = max(value.adjusted(), 0) - DECIMAL_MIN_EXPONENT + 2
        low = value.quantize(
            Decimal(1).scaleb(DECIMAL_MIN_EXPONENT), rounding=ROUND_FLOOR, context=Context(digits)
        )
        if low != value:
            if op in ("=", "!="):
                return op == "!="
            return sql_compare("<=" if op in ("<", "<=") else ">", column, low)
        value = low
    return sql_compare(op, column, value)


def _beyond_column(python_type: Any, value: Any) -> int | None:
    """How every value a column of ``python_type`` holds compares with ``value`` (-1: below,
    1: above) when ``value`` lies beyond the column's range, else None."""
    if python_type is dt.timedelta and isinstance(value, dt.timedelta):
        if value > TIMEDELTA_MAX:
            return -1
        if value < TIMEDELTA_MIN:
            return 1
    elif python_type is dt.datetime and isinstance(value, dt.datetime):
        try:
            value.astimezone(dt.UTC)
        except OverflowError:  # before year 1 or after year 9999 in UTC
            offset = value.utcoffset()
            return 1 if offset is not None and offset > dt.timedelta(0) else -1
    return None


def _same_class(
    field: Field, column: Any, op: str, value: Any, dialect: Dialect
) -> sa.ColumnElement[bool] | bool:
    rank = _column_class(field)[0]
    if rank == 2:
        return _compare_number(op, column, field.python_type, value, dialect)
    if rank == 3:
        return dialect.compare_text(op, column, value)
    beyond = _beyond_column(field.python_type, value)
    if beyond is not None:
        return op_holds(op, beyond)
    return sql_compare(op, column, sa.literal(value, column.type))  # bools too: a bound value


def _ref_clause(field: Field, column: Any, op: str, value: Any) -> sa.ColumnElement[bool]:
    if op not in ("=", "!="):
        msg = f"{field.label} is a reference: filter it with = or != (an object, id or None)"
        raise QueryError(msg)
    if value is None:
        return column.is_(None) if op == "=" else column.is_not(None)  # type: ignore[no-any-return]
    if isinstance(value, UUID):
        target = value
    else:
        state = getattr(value, "__dict__", {}).get(STATE_ATTR)
        if state is None:
            msg = (
                f"{field.label} {op} {value!r}: the object is not stored, so nothing refers "
                "to it; make_persistent() it first (or compare with None)"
            )
            raise QueryError(msg)
        target = state.object_id
    if op == "=":
        return column == target  # type: ignore[no-any-return]
    return sa.or_(column != target, column.is_(None))


def filter_clause(
    info: ModelInfo, condition: Filter, dialect: Dialect
) -> sa.ColumnElement[bool] | None:
    """The WHERE clause of one filter (None when it holds for every row)."""
    field = _field(info, condition.field, "filter on")
    op, value = condition.op, condition.value
    column = info.table_of(field).c[field.column_name]
    if field.kind is FieldKind.REF:
        return _ref_clause(field, column, op, value)
    _check_typed(field, op, value, dialect)
    wanted = value_class(value)
    kept = _column_class(field)
    if wanted == kept:
        rows = _same_class(field, column, op, value, dialect)
    else:
        rows = op_holds(op, compare_keys(kept, wanted))
    nulls_pass = field.nullable and op_holds(op, compare_keys((0,), wanted))
    if rows is True and (nulls_pass or not field.nullable):
        return None
    parts: list[sa.ColumnElement[bool]] = []
    if rows is True:
        parts.append(column.is_not(None))
    elif rows is not False:
        parts.append(rows)
    if nulls_pass:
        parts.append(column.is_(None))
    return sa.or_(*parts) if parts else sa.false()


def order_field(info: ModelInfo, order: Order, dialect: Dialect) -> Field:
    """The field an order sorts by; raises :class:`QueryError` for fields with no order."""
    field = _field(info, order.field, "order by")
    if field.kind is FieldKind.REF:
        msg = f"{field.label} is a reference, which has no order; order by a scalar field"
        raise QueryError(msg)
    python_type = field.python_type
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        msg = f"{field.label} holds {python_type.__name__} members, which have no order"
        raise QueryError(msg)
    _check_typed(field, "=", None, dialect)
    return field


def order_term(column: Any, field: Field, order: Order, dialect: Dialect) -> sa.ColumnElement[Any]:
    """ORDER BY term for ``column`` (NULLs first ascending, last descending; text by code
    point): the dialect writes it."""
    return dialect.order_term(
        column,
        ascending=order.isAscending(),
        nullable=field.nullable,
        is_text=field.python_type is str,
    )


def _offset_key_clause(info: ModelInfo, offset_key: Key, id_column: Any) -> Any:
    """``str(key) > offset_key`` for keys ``/<Class>:<id>``, as a condition on ids."""
    text, prefix = str(offset_key), f"/{info.cls.__name__}:"
    if not text.startswith(prefix):
        return sa.true() if text < prefix else sa.false()
    rest = text[len(prefix) :]
    if not rest:
        return sa.true()
    try:
        after = UUID(rest)
    except ValueError:
        after = None
    if after is None or str(after) != rest:
        msg = f"offset_key {text!r} is not a key of {prefix}<id>; pass a key a query returned"
        raise QueryError(msg) from None
    return id_column > after


def _after_clause(
    info: ModelInfo, orders: Sequence[tuple[Order, Field]], row: Any, dialect: Dialect
) -> sa.ColumnElement[bool]:
    """The rows after ``row`` in the order ``orders`` then id: for orders ``a, b`` the rows
    with ``a`` beyond the row's, or the same ``a`` and ``b`` beyond, or the same both and a
    greater id.  Each comparison is the filter of the same operator (the total order of
    queries: NULL first, text by code point), so the keyset agrees with ORDER BY."""
    values = row._mapping
    clause: sa.ColumnElement[bool] = info.root.table.c.id > row[0]
    for order, field in reversed(orders):
        value = values[field.key]
        beyond = filter_clause(
            info, Filter(field.name, ">" if order.isAscending() else "<", value), dialect
        )
        same = filter_clause(info, Filter(field.name, "=", value), dialect)
        clause = sa.or_(
            sa.true() if beyond is None else beyond,
            sa.and_(sa.true() if same is None else same, clause),
        )
    return clause


# -- the statement -----------------------------------------------------------------------------


def _subclass_tables(info: ModelInfo) -> list[tuple[ModelInfo, sa.Table]]:
    """The tables of ``info``'s subclasses (any depth), parents first."""
    own = {id(i.table) for i in info.hierarchy}
    found: dict[int, tuple[ModelInfo, sa.Table]] = {}
    for sub in iter_subclass_infos(info):
        for member in sub.hierarchy:
            if id(member.table) not in own:
                found.setdefault(id(member.table), (member, member.table))
    return sorted(found.values(), key=lambda pair: len(pair[0].hierarchy))


@attrs.frozen
class ClassSelect:
    """What every query on one class selects, and from where (built once per class)."""

    select: sa.Select[Any]  # row_select(info)'s labels, the registry's, subclasses' fields
    source: sa.FromClause  # the class's tables, subclass tables LEFT OUTER JOINed, registry
    shapes: dict[str, RowShape]


_class_selects: dict[tuple[int, int], ClassSelect] = {}


def class_select(info: ModelInfo) -> ClassSelect:
    """The columns and tables every query on ``info``'s class selects, and how to read each
    concrete class from the rows; built once per class (and again when classes are mapped)."""
    cache_key = (id(info), generation())
    cached = _class_selects.get(cache_key)
    if cached is not None:
        return cached
    root = info.root.table
    source: sa.FromClause = info.selectable()
    columns = object_columns(info)  # the row shape of every object SELECT, then subclasses'
    labels: dict[tuple[str, str], str] = {}
    for number, (owner, table) in enumerate(_subclass_tables(info)):
        source = source.outerjoin(table, table.c.id == root.c.id)
        for field in owner.own_fields:
            if not field.kind.is_link:
                label = f"_dc_s{number}_{field.name}"
                labels[(table.name, field.name)] = label
                columns.append(table.c[field.column_name].label(label))
    shapes: dict[str, RowShape] = {}
    for sub in iter_subclass_infos(info):
        relabel = tuple(
            (f.key, labels[(sub.table_of(f).name, f.name)])
            for f in sub.column_fields
            if f.name not in info.fields
        )
        shapes[sub.tablename] = RowShape(sub, relabel)
    registered = source.join(dc_object, dc_object.c.id == root.c.id)
    built = ClassSelect(sa.select(*columns), registered, shapes)
    _class_selects[cache_key] = built
    return built


def _not_a_version(root: sa.Table, dialect: Dialect) -> sa.ColumnElement[bool]:
    """Versions (working copies made by ``new_version``) are not results of class queries:
    the ids among the registry's few version rows (through its partial index) are left out,
    as the engine plans it best (``Dialect.id_not_among``)."""
    registry = dc_object.alias("dc_versions")
    return dialect.id_not_among(root.c.id, registry.c.id, registry.c.original_id.is_not(None))


def compile_model_query(
    info: ModelInfo,
    query: Query,
    dialect: Dialect,
    *,
    window: tuple[int | None, int] | None = None,
    after: Any = None,
) -> ModelPlan:
    """Compile ``query`` on ``info``'s class for the engine of ``dialect``.

    Without a limit: one SELECT of the joined tables.  With a limit, the same statement
    first picks the page of ids (filter, order, limit, offset on the class's own tables, so
    an index serves it) and joins the registry and subclass tables to those rows only.

    ``window``: ``(limit, offset)`` instead of the query's; ``after``: a row of this query's
    results: only the rows after it in the query's order (a keyset, to resume a stream).
    """
    plain = all(is_plain(f, query) for f in query.filters)
    if not plain or not all(is_plain(o, query) for o in query.orders):
        msg = (
            f"{info.cls.__name__} queries run as SQL, so they read fields as stored: "
            "a custom object_getattr (or Filter/Order subclass) cannot be used"
        )
        raise QueryError(msg)
    root = info.root.table
    where = [c for c in (filter_clause(info, f, dialect) for f in query.filters) if c is not None]
    select = class_select(info)
    where.append(_not_a_version(root, dialect))
    if query.offset_key is not None:
        where.append(_offset_key_clause(info, query.offset_key, root.c.id))
    orders = [(o, order_field(info, o, dialect)) for o in query.orders]
    keys = [info.table_of(f).c[f.column_name] for _, f in orders]
    if after is not None:
        where.append(_after_clause(info, orders, after, dialect))
    limit, skip = (limit_of(query), query.offset) if window is None else window
    offset = row_count(skip or None)
    if limit is None:
        terms = [order_term(k, f, o, dialect) for k, (o, f) in zip(keys, orders, strict=True)]
        statement = (
            select.select.select_from(select.source)
            .where(*where)
            .order_by(*terms, root.c.id)
            .offset(offset)
        )
    else:
        inner = [order_term(k, f, o, dialect) for k, (o, f) in zip(keys, orders, strict=True)]
        page = (
            sa.select(root.c.id.label("id"), *(k.label(f"o{n}") for n, k in enumerate(keys)))
            .select_from(info.selectable())
            .where(*where)
            .order_by(*inner, root.c.id)
            .limit(row_count(limit))
            .offset(offset)
            .subquery("page")
        )
        outer = [order_term(page.c[f"o{n}"], f, o, dialect) for n, (o, f) in enumerate(orders)]
        statement = select.select.select_from(page.join(select.source, root.c.id == page.c.id))
        statement = statement.order_by(*outer, page.c.id)
    return ModelPlan(info, statement, select.shapes, where, limit, skip)
