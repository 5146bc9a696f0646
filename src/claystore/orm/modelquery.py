"""Model queries: ``Employee.dc_query()`` and ``client.query(Query(Key("/Employee")))``.

Owns :class:`ModelQuery` (a datastore :class:`~claystore.datastore.Query` bound to a model
class, with a fluent ``limit(n)`` / ``offset(n)``, iteration, :meth:`~ModelQuery.count` and
:meth:`~ModelQuery.first`), :class:`QueryableObject` (``dc_query``, mixed into
:class:`~claystore.orm.model.DataClayObject`) and :func:`query_objects`, which runs a query
as the one SELECT :mod:`claystore.orm.modelcompiler` compiles and turns its rows into objects
through the one loading path (:meth:`claystore.orm.loading.Loader.instances`).

Results stream: outside a transaction the SELECT runs on its own connection in a read
transaction; inside an open transaction (an activemethod, a unit of work) pending changes are
flushed first and the SELECT runs on the transaction's connection.  Either way rows are fetched
in chunks (a server-side cursor on PostgreSQL) and hydrated a chunk at a time, so a result
larger than memory can be iterated;
a unit of work holds the objects it loads weakly until they change.  A query whose limit fits
in one chunk is simply read at once (one round trip).  In a store of several backends, every
backend runs the SELECT and :mod:`claystore.orm.querymerge` merges their streams.

Called by users (``dc_query``), by :meth:`claystore.Client.query` and by
:class:`claystore.datastore.objects.ObjectDatastore`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Self, cast

import sqlalchemy as sa

from claystore.datastore.key import Key
from claystore.datastore.query import Entry, Order, Query, QueryDict
from claystore.datastore.sqlcursor import SQLCursor
from claystore.datastore.sqlorder import RENDER_COUNTS, limit_of
from claystore.dialects.cursor import select_rows
from claystore.errors import QueryError
from claystore.orm.asynctwin import iterate_async, run_blocking
from claystore.orm.context import ObjectContext, active_context
from claystore.orm.loading import Loader
from claystore.orm.mapping import ModelInfo, find_model
from claystore.orm.modelcompiler import ModelPlan, check_filter_value, compile_model_query
from claystore.orm.plancache import model_plan
from claystore.orm.querymerge import count_merged, run_merged, spread
from claystore.orm.rows import RowReader
from claystore.orm.rowstream import Resume, RowStream
from claystore.orm.state import Snapshot, end_snapshot
from claystore.orm.transaction import current_transaction

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["ModelCursor", "ModelQuery", "NoLimit", "QueryCount", "QueryableObject", "query_objects"]

_CHUNK = 1000
#: The largest limit or offset a model query takes: SQL's (and SQLite's) largest integer.
MAX_SQL_COUNT = 2**63 - 1


# -- fluent limit / offset ---------------------------------------------------------------------


class QueryCount(int):
    """A model query's ``limit`` or ``offset``: an int that also sets it when called, so
    ``query.limit(10)`` chains and ``query.limit + 1`` still counts."""

    _query: ModelQuery
    _name: str

    def __new__(cls, value: int, query: ModelQuery, name: str) -> Self:
        """The count ``value``, bound to ``query``'s parameter ``name``."""
        count = super().__new__(cls, value)
        count._query = query
        count._name = name
        return count

    def __call__(self, value: int | None) -> ModelQuery:
        """Set this parameter of the query; return the query."""
        setattr(self._query, self._name, value)
        return self._query


class NoLimit:
    """A model query's ``limit`` while it has none: equal to None, falsy, above every count.

    ``query.limit(10)`` sets the limit.  ``query.limit is None`` is False: use ``==``.
    """

    __slots__ = ("_query",)

    def __init__(self, query: ModelQuery) -> None:
        self._query = query

    def __call__(self, value: int | None) -> ModelQuery:
        """Set the query's limit; return the query."""
        self._query.limit = value
        return self._query

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, NoLimit)

    def __hash__(self) -> int:
        return hash(None)

    def __bool__(self) -> bool:
        return False

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return isinstance(other, NoLimit)

    def __gt__(self, other: object) -> bool:
        return not isinstance(other, NoLimit)

    def __ge__(self, other: object) -> bool:
        return True

    def __add__(self, other: object) -> NoLimit:
        return self

    __radd__ = __add__

    def __repr__(self) -> str:
        return "None"


def check_sql_count(name: str, count: object) -> None:
    """Raise QueryError when a query's ``limit`` or ``offset`` (``name``) is beyond what SQL
    takes (:data:`MAX_SQL_COUNT`); no limit (None, :class:`NoLimit`) is fine."""
    if isinstance(count, int) and count > MAX_SQL_COUNT:
        msg = (
            f"Query {name} must be at most {MAX_SQL_COUNT} (the largest count SQL takes), "
            f"not {count!r}"
        )
        raise QueryError(msg)


class _CountParameter:
    """``limit`` / ``offset`` of :class:`ModelQuery`: stored and checked by the base
    :class:`Query` property, read back as a callable :class:`QueryCount`."""

    def __init__(self, name: str) -> None:
        self.name = name
        base: property = getattr(Query, name)
        assert base.fget is not None
        assert base.fset is not None
        self.read: Callable[[Query], Any] = base.fget
        self.write: Callable[[Query, Any], None] = base.fset

    def __get__(self, query: ModelQuery | None, owner: type | None = None) -> Any:
        if query is None:
            return self
        value = self.read(query)
        return NoLimit(query) if value is None else QueryCount(value, query, self.name)

    def __set__(self, query: ModelQuery, value: Any) -> None:
        try:
            previous: tuple[Any, ...] = (self.read(query),)
        except AttributeError:  # being set for the first time, by Query.__init__
            previous = ()
        self.write(query, None if isinstance(value, NoLimit) else value)
        try:
            check_sql_count(self.name, self.read(query))
        except QueryError:
            if previous:  # the query stays as it was
                self.write(query, previous[0])
            raise


# -- the query ---------------------------------------------------------------------------------


class ModelQuery(Query):
    """A datastore query bound to a model class; iterating it yields stored objects.

    ``Employee.dc_query().filter("salary", ">", 1000).order("-salary").limit(10)`` -- filters
    and orders name fields; values compare in the datastore's total order (None < bool <
    numbers < str), NULLs first when ascending; ties are broken by id.  Iterating runs one
    SELECT (again for each iteration); objects come back through the identity map, each as
    its own class (subclasses included).  :meth:`count` and :meth:`first` run one statement.
    An unknown field, a container field, or a comparison SQL cannot answer exactly raises
    :class:`~claystore.errors.QueryError`.
    """

    limit = _CountParameter("limit")  # an int you can call: query.limit(10)
    offset = _CountParameter("offset")

    def __init__(
        self,
        model: type,
        *,
        limit: int | None = None,
        offset: int = 0,
        offset_key: Key | str | None = None,
        context: ObjectContext | None = None,
    ) -> None:
        self.model = model
        self.info = _info_of(model)
        self.context = context
        super().__init__(Key(f"/{model.__name__}"), limit, offset, offset_key)

    def filter(self, *args: Any) -> Self:
        """Add a filter ``(field, op, value)``; returns this query.  A value whose rows would
        depend on the process's time zone (a naive datetime) raises :class:`QueryError` here;
        the rest is checked when the query runs."""
        super().filter(*args)
        condition = self.filters[-1]
        try:
            check_filter_value(self.info, condition.field, condition.op, condition.value)
        except QueryError:
            self.filters.pop()
            raise
        return self

    def order(self, order: str | Order) -> Self:
        """Add an order (``"+field"``, ``"-field"``); returns this query."""
        super().order(order)
        return self

    def copy(self) -> Self:
        """A copy of the query (same class and client; filter and order lists copied)."""
        return cast("Self", super().copy())

    def dict(self) -> QueryDict:
        """The query as plain data (as :meth:`Query.dict`)."""
        data = super().dict()
        limit = limit_of(self)
        data.pop("limit", None)
        if limit is not None:
            data = {"key": data.pop("key"), "limit": limit, **data}
        return data

    @classmethod
    def from_dict(cls, dictionary: QueryDict) -> ModelQuery:
        """A model query from plain data; its key names the class (``/Employee``)."""
        plain = Query.from_dict(dictionary)
        query = cls(find_model(plain.key.name).cls, offset_key=plain.offset_key)
        query.limit, query.offset = plain.limit, plain.offset
        query.filters, query.orders = plain.filters, plain.orders
        return query

    def _context(self) -> ObjectContext:
        return self.context if self.context is not None else active_context()

    def cursor(self) -> SQLCursor:
        """Run the query: a lazy cursor over the objects (``cursor.items()``: with keys)."""
        return query_objects(self._context(), self)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.cursor())

    def statement(self) -> sa.Select[Any]:
        """The SELECT this query runs (for reading or EXPLAIN; values bound as parameters)."""
        context = self._context()
        return compile_model_query(self.info, self, context.dialect).statement

    def count(self) -> int:
        """How many objects iterating would return (limit and offset applied): one SELECT (on
        each backend, counts added up, when the store has several)."""
        context = self._context()
        context.check_open()
        if spread(context):
            return count_merged(context, self.info, self)
        plan = compile_model_query(self.info, self, context.dialect)
        with _query_loader(context) as loader:
            return int(loader.conn.execute(plan.count()).scalar_one())

    def first(self) -> Any:
        """The first object in the query's order, or None."""
        single = self.copy()
        single.limit = 1
        return next(iter(single.cursor()), None)

    def a_iter(self, *, batch: int = 100) -> AsyncIterator[Any]:
        """The objects, for ``async for``: the query runs off the event loop and its objects
        come ``batch`` at a time (memory holds one batch and the cursor's chunk, as a plain
        loop does).  Inside an async session it runs in the session (its changes flushed
        first; the objects are the session's, read and changed from memory).  Outside one,
        the read rule of query loops holds in the task: the objects answer reads of their
        column fields from the rows loaded, while the loop runs."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            msg = f"a_iter(batch={batch!r}): give a whole number of objects, 1 or more"
            raise QueryError(msg)
        return iterate_async(self, self._context, batch)

    async def a_count(self) -> int:
        """Coroutine form of :meth:`count`."""
        return await run_blocking(self.count)

    async def a_first(self) -> Any:
        """Coroutine form of :meth:`first`."""
        return await run_blocking(self.first)

    async def a_fetch(self) -> list[Any]:
        """All the objects, as a list (one SELECT, run off the event loop)."""
        return await run_blocking(list, self)


class QueryableObject:
    """Query methods of model classes."""

    @classmethod
    def dc_query(cls) -> ModelQuery:
        """A query on this class's stored objects (subclasses included), run against the
        active client when iterated."""
        return ModelQuery(cls)


# -- running -----------------------------------------------------------------------------------


def _info_of(model: type) -> ModelInfo:
    info = getattr(model, "_dc_info", None)
    if not isinstance(info, ModelInfo):
        msg = f"{model!r} is not a model class (a DataClayObject subclass)"
        raise QueryError(msg)
    return info


def _model_of(query: Query) -> ModelInfo:
    if isinstance(query, ModelQuery):
        return query.info
    names = query.key.list
    if len(names) != 1 or ":" in names[0]:
        msg = (
            f"a model query's key names one class, like Query(Key('/Employee')), "
            f"not {str(query.key)!r}"
        )
        raise QueryError(msg)
    return find_model(names[0])


@contextlib.contextmanager
def _query_loader(context: ObjectContext) -> Iterator[Loader]:
    """The loader a query reads with: the open transaction's, its pending changes written first
    (a query sees them, in an activemethod too), else one on a short read."""
    tx = current_transaction(context)
    if tx is not None:
        tx.flush()
        yield tx.loader
        return
    with context.database.reader() as conn:
        yield context.loader(conn)


class ModelCursor(SQLCursor):
    """The cursor of a model query: iterating it gives objects; keys (``/<Class>:<id>``) are
    made only for callers that ask for them (:meth:`items`, the naive ``apply_*`` operations,
    :meth:`map_values`), so plain iteration does not pay for them."""

    def __init__(
        self,
        query: Query,
        class_name: str,
        run: Callable[[SQLCursor], Iterator[Any]],
        statement: Callable[[], str],
    ) -> None:
        super().__init__(query, run, statement)
        self._class_name = class_name
        self._keyed = False

    def _with_keys(self) -> None:
        if self._keyed:
            return
        self._keyed = True
        prefix = f"{self._class_name}:"
        make_key = Key.from_parts

        def keyed(pairs: Iterable[tuple[Any, Any]]) -> Iterator[Entry]:
            for object_id, obj in pairs:
                name = f"{prefix}{object_id}"
                yield make_key(f"/{name}", (name,)), obj

        self._entries = keyed(self._entries)

    def _ensure_modification_is_safe(self) -> None:
        super()._ensure_modification_is_safe()
        self._with_keys()

    def items(self) -> Iterator[Entry]:
        """Iterate ``(key, object)`` pairs instead of objects."""
        if self._iterator is None:
            self._with_keys()
        return super().items()


def query_objects(context: ObjectContext, query: Query) -> SQLCursor:
    """Run a datastore ``Query`` whose key names a model class (``Key("/Employee")``) as one
    SELECT; returns a lazy cursor of objects keyed ``/<Class>:<id>``.  Backs
    :meth:`claystore.Client.query`."""
    if not isinstance(query, Query):
        msg = f"query_objects needs a datastore Query, not {type(query).__name__}"
        raise QueryError(msg)
    context.check_open()
    for name, count in (("limit", query.limit), ("offset", query.offset)):
        check_sql_count(name, count)
    info = _model_of(query)
    plan = model_plan(info, query, context.dialect)
    dialect = context.engine.dialect
    return ModelCursor(
        query,
        info.cls.__name__,
        lambda cursor: _run(context, plan, query, cursor),
        lambda: str(plan.statement.compile(dialect=dialect, compile_kwargs=RENDER_COUNTS)),
    )


def _run(
    context: ObjectContext, plan: ModelPlan, query: Query, cursor: SQLCursor
) -> Iterator[tuple[Any, Any]]:
    """The query's results, streamed (see the module docstring)."""
    context.check_open()
    if spread(context):
        yield from run_merged(context, plan, query, cursor)
        return
    bounded = plan.limit is not None and plan.limit <= _CHUNK  # at most one chunk: no cursor
    tx = current_transaction(context)
    # outside transactions, the loop's objects read the rows it loaded while it runs
    snapshot = Snapshot() if tx is None else None
    try:
        if bounded or context.dialect.is_memory:
            with _query_loader(context) as loader:
                rows = select_rows(loader.conn, plan.statement, {})
                cursor.skipped = _skipped(loader.conn, plan, query, bool(rows))
                entries = list(
                    _entries(loader, plan, [rows], cursor, snapshot=snapshot, keyed=False)
                )
            yield from entries
            return
        if tx is None:
            with context.database.read_transaction(chunk=_CHUNK) as conn:
                result = conn.execute(plan.statement)
                seen = yield from _entries(
                    context.loader(conn),
                    plan,
                    result.partitions(),
                    cursor,
                    query.offset,
                    snapshot=snapshot,
                )
                cursor.skipped = _skipped(conn, plan, query, seen > 0)
            return
    finally:
        if snapshot is not None:
            end_snapshot(snapshot)
    # a transaction's query streams on its connection (reads belong to the transaction); when
    # the transaction ends under it (a session committing every N objects), the rest of the
    # query runs again after the last row it gave, in the transaction open then
    assert tx is not None
    tx.flush()
    try:
        stream = tx.stream(plan.statement, _CHUNK, resume=_resumer(context, plan, query))
        try:
            batches = stream.batches(_CHUNK)
            seen = yield from _entries(
                tx.loader,
                plan,
                batches,
                cursor,
                query.offset,
                stream=stream,
                relocate=functools.partial(_open_loader, context, stream),
            )
        finally:
            stream.close()
        if seen:
            cursor.skipped = query.offset
        else:  # nothing came, so nothing ran in between: the transaction is still open
            cursor.skipped = _skipped(tx.conn, plan, query, has_rows=False)
    except sa.exc.SQLAlchemyError as exc:
        raise context.database.translate(exc) from exc


def _open_loader(context: ObjectContext, stream: RowStream) -> Loader | None:
    """The loader of the transaction open now in this thread, if any (which then detaches
    ``stream`` when it ends, like the transaction that began it)."""
    tx = current_transaction(context)
    if tx is None:
        return None
    tx.adopt_stream(stream)
    return tx.loader


def _resumer(context: ObjectContext, plan: ModelPlan, query: Query) -> Resume:
    """How a transaction's stream of ``query`` goes on after the transaction ended: the rows
    after the last one it gave (a keyset in the query's order), the limit less what it gave,
    in the transaction open now (its pending changes written first, as for every query); with
    none open (the session ended under the loop), the rest is read into memory."""
    limit = plan.limit

    def resume(stream: RowStream, last: Any, count: int) -> tuple[Any, Loader] | None:
        remaining = None if limit is None else limit - count
        if remaining is not None and remaining <= 0:
            return None
        rest = compile_model_query(
            plan.info, query, context.dialect, window=(remaining, 0), after=last
        )
        tx = current_transaction(context)
        if tx is not None:
            tx.flush()
            return tx.continue_stream(stream, rest.statement, _CHUNK), tx.loader
        with context.database.reader() as conn:
            return conn.execute(rest.statement).freeze()(), context.loader(conn)

    return resume


def _skipped(conn: Connection, plan: ModelPlan, query: Query, has_rows: bool) -> int:
    """How many rows the offset skipped: all of it when a row came back, else counted."""
    skip_count = None if has_rows else plan.skip_count()
    if skip_count is None:
        return query.offset if has_rows else 0
    return int(conn.execute(skip_count).scalar_one())


def _entries(
    loader: Loader,
    plan: ModelPlan,
    batches: Iterable[Sequence[Any]],
    cursor: SQLCursor,
    skipped: int | None = None,
    *,
    snapshot: Snapshot | None = None,
    stream: RowStream | None = None,
    relocate: Callable[[], Loader | None] | None = None,
    keyed: bool = True,
) -> Generator[tuple[Any, Any], None, int]:
    """``(object id, object)`` for each row (:class:`ModelCursor` makes keys of the ids when
    asked): hydrated as the row's own class through the loader, a batch of rows at a time;
    returns how many rows came.  ``skipped``: what ``cursor.skipped`` reads while rows come;
    ``snapshot``: the loop whose rows answer the objects' reads (outside transactions);
    ``stream``: where the rows come from, whose ``loader`` (the transaction that read them)
    loads each batch instead of ``loader``; ``relocate``: the loader of the transaction open
    now, for the rest of a batch whose transaction ended; ``keyed``: the rows know their
    column keys (else they are in the order of the plan's statement)."""
    readers: dict[str, RowReader] | None = None
    seen = 0
    for rows in batches:
        if not rows:
            continue
        if readers is None:
            readers = plan.readers(list(rows[0]._fields) if keyed else None)
        if stream is None:
            objects = loader.instances(rows, readers, snapshot)
        else:
            generation = stream.generation
            objects = stream.loader.instances(rows, readers)
        seen += len(rows)
        if skipped is not None:
            cursor.skipped = skipped
        for position, row in enumerate(rows):
            if stream is not None and stream.generation != generation:
                # the transaction that loaded this batch ended (a session's commit): the rest
                # of it joins the transaction open now, from the rows already read
                generation = stream.generation
                now = relocate() if relocate is not None else None
                if now is not None:
                    objects[position:] = now.instances(rows[position:], readers)
            yield row[0], objects[position]
    return seen
