"""Class queries over several backends: one SELECT per backend, merged in the query's order.

Owns :func:`spread` (whether a class query must read several backends), :func:`run_merged`
(the objects of a model query in a store with several backends) and :func:`count_merged`.

Each backend runs the query's SELECT (:func:`~claystore.orm.modelcompiler.compile_model_query`,
the same statement as on one database: its indexes serve it alike) with ``limit + offset`` as
its limit and no offset; rows whose registry entry names another backend (the copies of a move
under way, see below) are dropped as they come.  The backends' streams -- each fetched in
chunks and hydrated a chunk at a time, as on one database -- are merged by the query's order,
which is the datastore's total order written as a sort key here exactly as
:mod:`claystore.datastore.sqlorder` writes it in SQL (NULL lowest, values of a column compare in
their type's order, text by code point, ties broken by id); the offset and the limit are
applied to the merged stream.  Memory: one chunk per backend.  The backends' SELECTs run at
the same time (the router's threads open each read and fetch its first chunk; a backend the
open transaction has written to is read on that transaction's connection, in its thread), so
a query costs about its slowest backend, not their sum.  ``count()`` adds up each backend's
count (counted at the same time too), then applies offset and limit.

Consistency: each backend is read at its own snapshot (a read transaction begun when the query
starts, or the open transaction's own connection to that backend, which sees its flushed
changes); the result is not one snapshot of the whole store.  Moves are what could make an
object seem to be on two backends or on none (between a move's delete on its source and its
promotion on the target): a query first waits for the moves of objects of its class under way
(:func:`claystore.orm.moving.settle`, which also repairs a dead mover's move), and when a move
began while the backends' reads were opening, it opens them again once that move has ended.
Two rows of one object that still meet in the merge (a move switched in the few milliseconds
between two backends' reads) are alike and returned once.

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
from claystore.orm.modelcompiler import ModelPlan, compile_model_query
from claystore.orm.rows import RowReader, backend_uuid
from claystore.orm.state import Snapshot, end_snapshot
from claystore.orm.transaction import Transaction, current_transaction

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.datastore.query import Query
    from claystore.datastore.sqlcursor import SQLCursor
    from claystore.dialects.base import Dialect
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


class _Plans:
    """The plans of one query run, compiled once per engine (backends of one engine share
    theirs) and window."""

    def __init__(
        self, info: ModelInfo, query: Query, known: tuple[Dialect, ModelPlan] | None = None
    ) -> None:
        self.info = info
        self.query = query
        self._plans: dict[tuple[type, int | None, int], ModelPlan] = {}
        if known is not None:  # compiled already (the cursor's): the same window is not again
            dialect, plan = known
            self._plans[(type(dialect), plan.limit, plan.offset)] = plan

    def get(self, dialect: Dialect, limit: int | None, offset: int) -> ModelPlan:
        key = (type(dialect), limit, offset)
        plan = self._plans.get(key)
        if plan is None:
            plan = compile_model_query(self.info, self.query, dialect, window=(limit, offset))
            self._plans[key] = plan
        return plan


Fetch = Callable[[sa.Select[Any], bool], Iterable[Sequence[Any]]]


def _reading(
    context: ObjectContext,
    tx: Transaction | None,
    backend_id: UUID,
    bounded: bool,
    stack: contextlib.ExitStack,
) -> tuple[Loader, Fetch]:
    """The loader of a backend's objects and how to run a SELECT there: on the open
    transaction's connection to it (which sees the transaction's changes) if it has one, else
    a short read (a result of one chunk at most) or a read transaction of its own."""
    if tx is not None and tx.began(backend_id):
        loader = tx.writer_for(backend_id)

        def in_transaction(statement: sa.Select[Any], at_once: bool) -> Iterable[Sequence[Any]]:
            if at_once:
                return [loader.conn.execute(statement).all()]
            stream = tx.stream(statement, _CHUNK, backend_id)
            stack.callback(stream.close)
            return stream.batches(_CHUNK)

        return loader, in_transaction
    database = context.router.database(backend_id)
    reading = database.reader() if bounded else database.read_transaction(chunk=_CHUNK)
    conn = stack.enter_context(reading)
    scope = context.identity if tx is None else tx.scope
    loader = Loader(conn, context, scope, database.dialect, backend_id=backend_id, route=tx)

    def on_its_own(statement: sa.Select[Any], at_once: bool) -> Iterable[Sequence[Any]]:
        if at_once:
            return [conn.execute(statement).all()]
        return conn.execute(statement).partitions()

    return loader, on_its_own


class _Backend:
    """One backend's part of a query: its read, opened (the SELECT run, its first rows
    fetched) in any thread, then its objects in the query's order.

    Rows whose registry entry names another backend (the copies of a move under way) are
    left out; when a limited SELECT returned some, the rows after its window make up for them
    (one more SELECT, only then).
    """

    def __init__(
        self,
        context: ObjectContext,
        tx: Transaction | None,
        backend_id: UUID,
        plans: _Plans,
        window: int | None,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.context = context
        self.snapshot = snapshot  # outside transactions: the loop whose rows answer reads
        self.tx = tx
        self.backend_id = backend_id
        self.database = context.router.database(backend_id)  # opened here, on first use
        self.plans = plans
        self.window = window
        self.plan = plans.get(self.database.dialect, window, 0)
        self.stack = contextlib.ExitStack()
        # the transaction's own connection is used by its thread only; an in-memory database
        # is one connection
        self.here = (tx is not None and tx.began(backend_id)) or self.database.dialect.is_memory
        self._head: Sequence[Any] | None = None
        self._rest: Iterator[Sequence[Any]] = iter(())

    def _bounded(self, size: int | None) -> bool:
        return size is not None and size <= _CHUNK

    def open(self) -> None:
        """Open the backend's read and run the query's SELECT there."""
        try:
            self.loader, self.fetch = _reading(
                self.context, self.tx, self.backend_id, self._bounded(self.window), self.stack
            )
            batches = iter(self.fetch(self.plan.statement, self._bounded(self.window)))
            self._head = next(batches, None)
            self._rest = batches
        except sa.exc.SQLAlchemyError as exc:
            raise self.database.translate(exc) from exc

    def close(self) -> None:
        """End the backend's read."""
        self.stack.close()

    def objects(self) -> Iterator[tuple[Any, UUID, Any]]:
        """``(sort key, id, object)`` of the backend's objects in the query's order."""
        size, skip = self.window, 0
        batches: Iterator[Sequence[Any]] = itertools.chain(
            () if self._head is None else (self._head,), self._rest
        )
        plan = self.plan
        key_of: Callable[[Any], Any] | None = None
        readers: dict[str, RowReader] | None = None
        backend_id = self.backend_id
        try:
            while True:
                fetched = dropped = 0
                for rows in batches:
                    if not rows:
                        continue
                    if key_of is None or readers is None:
                        keys = list(rows[0]._fields)
                        key_of = _sort_key(self.plans.info, self.plans.query, keys)
                        readers = plan.readers(keys)
                    fetched += len(rows)
                    mine = [row for row in rows if backend_uuid(row[4]) == backend_id]
                    dropped += len(rows) - len(mine)
                    objects = self.loader.instances(mine, readers, self.snapshot)
                    for row, obj in zip(mine, objects, strict=True):
                        yield key_of(row), row[0], obj
                if size is None or fetched < size or not dropped:
                    return
                skip, size = skip + size, dropped
                plan = self.plans.get(self.database.dialect, size, skip)
                batches = iter(self.fetch(plan.statement, self._bounded(size)))
        except sa.exc.SQLAlchemyError as exc:
            raise self.database.translate(exc) from exc


def _open_all(context: ObjectContext, parts: Sequence[_Backend]) -> None:
    """Open every backend's read: those that can, at the same time (each SELECT then runs on
    its server while the others run on theirs); raises the first failure once all ended."""
    elsewhere = [part for part in parts if not part.here]
    futures = [context.router.pool().submit(part.open) for part in elsewhere[1:]]
    errors: list[BaseException] = []
    for part in [*elsewhere[:1], *(p for p in parts if p.here)]:
        try:
            part.open()
        except Exception as exc:
            errors.append(exc)
    for future in futures:
        error = future.exception()
        if error is not None:
            errors.append(error)
    if errors:
        raise errors[0]


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


def _settle(context: ObjectContext, tx: Transaction | None, info: ModelInfo) -> None:
    """Wait for the moves of objects of ``info``'s class under way to end (see
    :func:`claystore.orm.moving.settle`)."""
    object_ids = _moving(context, info)
    if not object_ids:
        return
    if tx is not None:
        tx.settle(object_ids)
    else:
        moving.settle(context.router, object_ids, timeout=context.lock_timeout)


_ATTEMPTS = 3


def run_merged(
    context: ObjectContext, plan: ModelPlan, query: Query, cursor: SQLCursor
) -> Iterator[tuple[UUID, Any]]:
    """``(id, object)`` of every backend's results of ``query``, in its order, offset and
    limit applied to the whole (see the module docstring).  ``plan``: the query compiled for
    the metadata database (reused where a backend runs the same window).

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
    info = plan.info
    plans = _Plans(info, query, (context.dialect, plan))
    snapshot = Snapshot() if tx is None else None
    try:
        yield from _merge(context, tx, plans, window, (limit, offset), cursor, snapshot)
    finally:
        if snapshot is not None:
            end_snapshot(snapshot)


def _merge(  # noqa: PLR0917 - the one caller's locals
    context: ObjectContext,
    tx: Transaction | None,
    plans: _Plans,
    window: int | None,
    page: tuple[int | None, int],
    cursor: SQLCursor,
    snapshot: Snapshot | None,
) -> Iterator[tuple[UUID, Any]]:
    """:func:`run_merged`'s reads: every backend opened, their streams merged."""
    limit, offset = page
    info = plans.info
    for attempt in range(_ATTEMPTS):
        _settle(context, tx, info)
        with contextlib.ExitStack() as stack:
            parts = []
            for backend_id in context.router.known():
                part = _Backend(context, tx, backend_id, plans, window, snapshot=snapshot)
                stack.callback(part.close)
                parts.append(part)
            _open_all(context, parts)  # every backend's read is open from here on
            if attempt + 1 < _ATTEMPTS and _moving(context, info):
                continue  # a move began meanwhile: read again once it has ended
            merged = heapq.merge(*(part.objects() for part in parts), key=_first)
            yield from _window(merged, limit, offset, cursor)
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
    added up (a move under way is waited for, as by :func:`run_merged`), then offset and
    limit applied."""
    tx = current_transaction(context)
    if tx is not None:
        tx.flush()
    plans = _Plans(info, query)
    total = 0
    for attempt in range(_ATTEMPTS):
        _settle(context, tx, info)
        total = 0
        futures = []
        for backend_id in context.router.known():
            database = context.router.database(backend_id)
            statement = plans.get(database.dialect, None, 0).count()
            if tx is not None and tx.began(backend_id):
                total += _count(statement, tx.conn_for(backend_id))
            else:  # the backends count at the same time
                work = functools.partial(database.read, functools.partial(_count, statement))
                futures.append(context.router.pool().submit(work))
        total += sum(future.result() for future in futures)
        if attempt + 1 == _ATTEMPTS or not _moving(context, info):
            break
    rest = max(total - query.offset, 0)
    limit = limit_of(query)
    return rest if limit is None else min(rest, limit)
