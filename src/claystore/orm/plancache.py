"""Compiled model queries, kept: the plan of a query run again is not built again.

Owns :func:`model_plan`, the cache in front of
:func:`claystore.orm.modelcompiler.compile_model_query`: a query's plan (its SELECT, with the
filter values bound in it, and how to read its rows) is kept per class, engine and the query's
exact contents (filters with the type and ``repr`` of each value, orders, limit, offset,
offset key), so a query a program runs again -- a page, a top-10, a lookup by a field -- skips
building and compiling its statement, and its rows are read on the driver's cursor
(:mod:`claystore.dialects.cursor`) by a statement compiled once.  A query with a value that
cannot be a dictionary key (a list, a dict) is compiled each time.  At most
:data:`MAX_PLANS` plans are kept, the oldest dropped first; defining or forgetting model
classes starts afresh (the plans name their tables).

Called by :mod:`claystore.orm.modelquery`.  No I/O.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from claystore.datastore.sqlorder import is_plain
from claystore.orm.mapping import ModelInfo, generation
from claystore.orm.modelcompiler import ModelPlan, compile_model_query

if TYPE_CHECKING:
    from claystore.datastore.query import Filter, Order, Query
    from claystore.dialects.base import Dialect

__all__ = ["MAX_PLANS", "model_plan"]

#: How many compiled queries are kept (per process).
MAX_PLANS = 512

_plans: dict[tuple[Any, ...], ModelPlan] = {}
_lock = threading.Lock()


def _key(info: ModelInfo, query: Query, dialect: Dialect) -> tuple[Any, ...] | None:
    """What makes two queries compile to the same plan (None: not cacheable, such as a query
    reading fields its own way, which compiling refuses)."""
    conditions: list[Filter | Order] = [*query.filters, *query.orders]
    if not all(is_plain(c, query) for c in conditions):
        return None
    filters = tuple((type(f), f.field, f.op, type(f.value), repr(f.value)) for f in query.filters)
    orders = tuple((type(o), str(o)) for o in query.orders)
    offset_key = None if query.offset_key is None else str(query.offset_key)
    key = (
        info,
        generation(),
        type(dialect),
        filters,
        orders,
        query.limit,
        query.offset,
        offset_key,
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def model_plan(info: ModelInfo, query: Query, dialect: Dialect) -> ModelPlan:
    """The plan of ``query`` on ``info``'s class for the engine of ``dialect`` (compiled the
    first time, then kept)."""
    key = _key(info, query, dialect)
    if key is None:
        return compile_model_query(info, query, dialect)
    plan = _plans.get(key)
    if plan is None:
        plan = compile_model_query(info, query, dialect)
        with _lock:
            while _plans and len(_plans) >= MAX_PLANS:
                _plans.pop(next(iter(_plans)), None)
            _plans[key] = plan
    return plan
