"""Class queries over several backends: one SELECT per backend, merged in the query's order.

Owns :func:`spread` (whether a class query must read several backends), :func:`run_merged`
(the objects of a model query in a store with several backends) and :func:`count_merged`.

Each backend runs the query's SELECT (:func:`~claystore.orm.modelcompiler.compile_model_query`)
restricted to the objects at home there (a backend also holds the copies of a move under way,
which are not its own), with ``limit + offset`` as its limit and no offset.  The backends'
streams -- each fetched in chunks and hydrated a chunk at a time, as on one database -- are
merged by the query's order, which is the datastore's total order written as a sort key here
exactly as :mod:`claystore.datastore.sqlorder` writes it in SQL (NULL lowest, values of a
column compare in their type's order, text by code point, ties broken by id); the offset and
the limit are applied to the merged stream.  Memory: one chunk per backend.  ``count()`` adds
up each backend's count, then applies offset and limit.

Consistency: each backend is read at its own snapshot (a read transaction begun when the query
starts, or the open transaction's own connection to that backend, which sees its flushed
changes); the result is not one snapshot of the whole store.  An object whose move between
two backends switched between the moments those two were read may come from both: its two
rows are alike, so they meet in the merge and the object is returned once.

Called by :mod:`claystore.orm.modelquery`.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa

from claystore.datastore.sqlorder import limit_of
from claystore.orm import moving
from claystore.orm.loading import Loader
from claystore.orm.modelcompiler import compile_model_query
from claystore.orm.transaction import Transaction, current_transaction

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.datastore.query import Query
    from claystore.datastore.sqlcursor import SQLCursor
    from claystore.orm.context import ObjectContext
    from claystore.orm.mapping import ModelInfo

__all__ = ["BACKENDS_MAX_AGE", "count_merged", "run_merged", "spread"]

_CHUNK = 1000


#: How old (seconds) the list of registered backends a class query reads may be: a backend
#: another process added is queried within this time (re-reading it for every query would
#: cost a round trip to the metadata database each time).
BACKENDS_MAX_AGE = 1.0


def spread(context: ObjectContext) -> bool:
    """Whether the store has several backends, so that a class query reads each of them (the
    registered backends are read again when the last read is older than
    :data:`BACKENDS_MAX_AGE`: another process may have added one)."""
    router = context.router
    router.refresh(max_age=BACKENDS_MAX_AGE)
    return len(router.known()) > 1


class _Descending:
    """A sort key part in descending order."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key

    def __lt__(self, other: _Descending) -> bool:
        return other.key < self.key

    def __gt__(self, other: _Descending) -> bool:
        return self.key < other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


def _sort_key(info: ModelInfo, query: Query, keys: Sequence[str]) -> Callable[[Any], Any]:
    """The merge key of a row with these column ``keys``: the query's orders, then the id, as
    the backends' ORDER BY sorts them (NULL lowest: first ascending, last descending)."""
    positions = {key: n for n, key in enumerate(keys)}
    parts = [
        (positions[info.fields[order.field].key], order.isAscending()) for order in query.orders
    ]
    if not parts:
        return lambda row: row[0]

    def key(row: Any) -> tuple[Any, ...]:
        out: list[Any] = []
        for position, ascending in parts:
            value = row[position]
            part = (0,) if value is None else (1, value)
            out.append(part if ascending else _Descending(part))
        out.append(row[0])
        return tuple(out)

    return key


def _stream(
    context: ObjectContext,
    tx: Transaction | None,
    backend_id: UUID,
    *,
    query: Query,
    info: ModelInfo,
    window: int | None,
    stack: contextlib.ExitStack,
) -> Iterator[tuple[Any, UUID, Any]]:
    """``(sort key, id, object)`` of one backend's objects in the query's order."""
    database = context.router.database(backend_id)
    dialect = database.dialect
    plan = compile_model_query(info, query, dialect, home=backend_id, window=(window, 0))
    bounded = window is not None and window <= _CHUNK  # one chunk at most: read at once
    batches: Iterable[Sequence[Any]]
    try:
        if tx is not None and tx.began(backend_id):  # sees the transaction's own changes
            loader = tx.writer_for(backend_id)
            if bounded:
                batches = [loader.conn.execute(plan.statement).all()]
            else:
                stream = tx.stream(plan.statement, _CHUNK, backend_id)
                stack.callback(stream.close)
                batches = stream.batches(_CHUNK)
        else:
            if bounded:
                conn = stack.enter_context(database.reader())
                batches = [conn.execute(plan.statement).all()]
            else:
                conn = stack.enter_context(database.read_transaction(chunk=_CHUNK))
                batches = conn.execute(plan.statement).partitions()
            scope = context.identity if tx is None else tx.scope
            loader = Loader(conn, context, scope, dialect, backend_id=backend_id, route=tx)
        key_of: Callable[[Any], Any] | None = None
        readers = None
        for rows in batches:
            if not rows:
                continue
            if key_of is None or readers is None:
                keys = list(rows[0]._fields)
                key_of, readers = _sort_key(info, query, keys), plan.readers(keys)
            objects = loader.instances(rows, readers)
            for row, obj in zip(rows, objects, strict=True):
                yield key_of(row), row[0], obj
    except sa.exc.SQLAlchemyError as exc:
        raise database.translate(exc) from exc


def _first(item: tuple[Any, UUID, Any]) -> Any:
    return item[0]


def _moving(context: ObjectContext, info: ModelInfo) -> list[UUID]:
    """The ids of the objects of ``info``'s class hierarchy that moves under way are moving."""
    table = info.root.table.name
    return [
        object_id
        for entry in moving.journal(context.router)
        if any(name == table for name, _key in entry.tables)
        for object_id in entry.object_ids
    ]


def _settle(context: ObjectContext, tx: Transaction | None, object_ids: list[UUID]) -> None:
    """Wait for the moves of these objects to end (see :func:`claystore.orm.moving.settle`)."""
    if tx is not None:
        tx.settle(object_ids)
    else:
        moving.settle(context.router, object_ids, timeout=context.lock_timeout)


_END: Any = object()
_ATTEMPTS = 3


def run_merged(
    context: ObjectContext, info: ModelInfo, query: Query, cursor: SQLCursor
) -> Iterator[tuple[UUID, Any]]:
    """``(id, object)`` of every backend's results of ``query``, in its order, offset and
    limit applied to the whole (see the module docstring).

    A move of objects of the class under way when the query starts is waited for; one that
    began while the backends' reads were opening makes the query open them again once it has
    ended (up to three times): an object switching backends between the moments two backends
    are read would be missed by both.
    """
    limit, offset = limit_of(query), query.offset
    cursor.skipped = 0
    if limit == 0:
        return
    window = None if limit is None else limit + offset
    tx = current_transaction(context)
    if tx is not None:
        tx.flush()
    for attempt in range(_ATTEMPTS):
        moved = _moving(context, info)
        if moved:
            _settle(context, tx, moved)
        with contextlib.ExitStack() as stack:
            streams = []
            for backend_id in context.router.known():
                stream = _stream(
                    context, tx, backend_id, query=query, info=info, window=window, stack=stack
                )
                first = next(stream, _END)  # the backend's read is open from here on
                if first is not _END:
                    streams.append(itertools.chain((first,), stream))
            if attempt + 1 < _ATTEMPTS and _moving(context, info):
                continue  # a move began meanwhile: read again once it has ended
            yield from _window(heapq.merge(*streams, key=_first), limit, offset, cursor)
            return


def _window(
    merged: Iterator[tuple[Any, UUID, Any]], limit: int | None, offset: int, cursor: SQLCursor
) -> Iterator[tuple[UUID, Any]]:
    """Offset and limit applied to the merged stream (an object met twice in a row: once)."""
    seen = given = 0
    last: UUID | None = None
    for _key, object_id, obj in merged:
        if object_id == last:  # the two copies of an object moved meanwhile: once
            continue
        last = object_id
        seen += 1
        if seen <= offset:
            continue
        cursor.skipped = offset
        yield object_id, obj
        given += 1
        if limit is not None and given >= limit:
            return
    if not given:
        cursor.skipped = seen


def _count(statement: sa.Select[Any], conn: Connection) -> int:
    return int(conn.execute(statement).scalar_one())


def count_merged(context: ObjectContext, info: ModelInfo, query: Query) -> int:
    """How many objects iterating ``query`` returns over every backend: each backend's count
    added up, then offset and limit applied."""
    tx = current_transaction(context)
    if tx is not None:
        tx.flush()
    total = 0
    for backend_id in context.router.known():
        database = context.router.database(backend_id)
        plan = compile_model_query(info, query, database.dialect, home=backend_id, window=(None, 0))
        statement = plan.count()
        if tx is not None and tx.began(backend_id):
            total += int(tx.conn_for(backend_id).execute(statement).scalar_one())
        else:
            total += database.read(functools.partial(_count, statement))
    rest = max(total - query.offset, 0)
    limit = limit_of(query)
    return rest if limit is None else min(rest, limit)
