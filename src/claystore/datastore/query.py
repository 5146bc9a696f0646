"""Queries: the description of a set of objects, and its naive (in-Python) evaluation.

This module owns :class:`Query` and :class:`Cursor` (with :class:`Filter` and :class:`Order`
from :mod:`claystore.datastore.conditions`, re-exported here), the generator helpers
(:func:`limit_gen`, :func:`offset_gen`, :func:`chain_gen`, :func:`is_iterable`) and
documents **the total order of values** that :mod:`claystore.datastore.values` implements
(:func:`value_sort_key`, :func:`compare_values`).
Every datastore in :mod:`claystore.datastore` calls it to evaluate queries; the SQL-backed
stores translate the same rules into SQL.

Total order of values
---------------------
Filters, orders and the merge of sharded results compare field values with one helper,
:func:`value_sort_key`, so comparing any two values never raises ``TypeError``.  Values rank:

1. ``None`` -- a missing field reads as ``None``;
2. ``bool`` -- ``False < True``;
3. numbers -- ``int``, ``float`` and ``Decimal`` (not ``bool``) compared numerically, so
   ``1 == 1.0``; a NaN sorts after every other number and equals only NaN;
4. ``str`` -- by Unicode code point (Python's ``<``: case-sensitive, ``'B' < 'a'``);
5. anything else -- by type name; then ``datetime``, ``date``, ``time``, ``timedelta``,
   ``UUID`` and ``bytes`` in their natural order (naive before aware datetimes), as SQL
   compares them; other values by ``repr()``.

Values of different ranks are never equal: ``True`` does not match ``= 1`` and ``None`` only
matches ``= None``.  ``<``, ``<=``, ``>=`` and ``>`` follow the same order, so ``age < 18``
matches records whose age is ``None`` or missing.

Result order
------------
Every query result sequence is sorted by the query's orders, then by ascending key string
(``str(key)``): ties never depend on insertion order, dict order or shard layout.  A query
without orders therefore returns objects in key order.  ``offset_key`` keeps only objects
whose key string sorts after it (keyset pagination), then ``offset`` skips and ``limit`` cuts.
A cursor built from bare values (``query(iterable)``) has no keys, so ties keep input order.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

from claystore.datastore.conditions import Entry, Filter, Order, entry_sort_key
from claystore.datastore.key import Key
from claystore.datastore.values import (
    ObjectGetattr,
    compare_values,
    default_object_getattr,
    value_sort_key,
)
from claystore.errors import CursorError, DatastoreTypeError, QueryError

__all__ = [
    "Cursor",
    "Entry",
    "Filter",
    "Order",
    "Query",
    "QueryDict",
    "chain_gen",
    "compare_values",
    "default_object_getattr",
    "entry_sort_key",
    "is_iterable",
    "limit_gen",
    "offset_gen",
    "value_sort_key",
]

T = TypeVar("T")

#: The plain-data form of a query (see :meth:`Query.dict`).
QueryDict = dict[str, Any]

_ROOT: Final = Key("/")


# -- generators -------------------------------------------------------------------------------


def limit_gen(limit: int, iterable: Iterable[T]) -> Iterator[T]:
    """Yield at most ``limit`` items of ``iterable`` (never reads one item too many)."""
    if limit <= 0:
        return
    for count, item in enumerate(iterable, 1):
        yield item
        if count >= limit:
            return


def offset_gen(
    offset: int, iterable: Iterable[T], skip_signal: Callable[[T], Any] | None = None
) -> Iterator[T]:
    """Skip the first ``offset`` items of ``iterable``, then yield the rest.

    ``skip_signal``, if given, is called with every skipped item.
    """
    iterator = iter(iterable)
    for _ in range(offset):
        try:
            item = next(iterator)
        except StopIteration:
            return
        if skip_signal is not None:
            skip_signal(item)
    yield from iterator


def chain_gen(iterables: Iterable[Iterable[T]]) -> Iterator[T]:
    """Yield every item of each iterable in ``iterables``, one iterable after another."""
    for iterable in iterables:
        yield from iterable


def is_iterable(obj: Any) -> bool:
    """Return whether ``obj`` can be iterated."""
    try:
        iter(obj)
    except TypeError:
        return False
    return True


# -- queries ----------------------------------------------------------------------------------


def _check_count(name: str, value: Any, *, optional: bool) -> int | None:
    """A limit or offset as a non-negative int (or None when optional).

    As in 0.3.6, ``int()`` is applied, so ``"5"`` and ``5.0`` count as 5; bools, fractions and
    negative counts are refused.
    """
    if value is None and optional:
        return None
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = int(value)
    elif isinstance(value, str | float):
        with contextlib.suppress(ValueError, OverflowError):
            count = int(value)
        if isinstance(value, float) and count != value:
            count = None
    if count is None or count < 0:
        msg = f"Query {name} must be a non-negative int{' or None' if optional else ''}, "
        msg += f"not {value!r}"
        raise QueryError(msg)
    return count


class Query:
    """A description of a set of objects: a collection key, filters, orders, limit, offset.

    ``Query(Key('/Comedy'))`` selects the objects whose ``key.path`` is ``/Comedy`` (the
    collection's children).  ``filter`` and ``order`` add to *this* query and return it, so
    calls chain: ``Query(Key('/Person')).filter('age', '>', 18).order('-age')``.

    ``object_getattr`` reads a field of an object; pass one (or override the static method in
    a subclass) to query another data model.  It is given to every filter and order added.
    """

    #: Reads a field of an object; replace it to match another data model.
    object_getattr: ObjectGetattr = staticmethod(default_object_getattr)

    def __init__(
        self,
        key: Key = _ROOT,
        limit: int | str | None = None,
        offset: int | str = 0,
        offset_key: Key | str | None = None,
        object_getattr: ObjectGetattr | None = None,
    ) -> None:
        if not isinstance(key, Key):
            kind = type(key).__name__
            msg = f"Query key must be a Key, not {kind} {key!r}: use Query(Key({key!r}))"
            raise DatastoreTypeError(msg)
        self.key = key
        self.limit = limit
        self.offset = offset
        self.offset_key = offset_key
        self.filters: list[Filter] = []
        self.orders: list[Order] = []
        if object_getattr is not None:
            self.object_getattr = object_getattr

    @property
    def limit(self) -> int | None:
        """The maximum number of results, or None for no limit."""
        return self._limit

    @limit.setter
    def limit(self, value: int | str | None) -> None:
        self._limit = _check_count("limit", value, optional=True)

    @property
    def offset(self) -> int:
        """The number of results to skip."""
        return self._offset

    @offset.setter
    def offset(self, value: int | str) -> None:
        self._offset = _check_count("offset", value, optional=False) or 0

    @property
    def offset_key(self) -> Key | None:
        """Only results whose key string sorts after this key are returned (or None)."""
        return self._offset_key

    @offset_key.setter
    def offset_key(self, value: Key | str | None) -> None:
        self._offset_key = None if value is None else Key(value)

    def _has_custom_getattr(self) -> bool:
        return "object_getattr" in vars(self) or (
            type(self).object_getattr is not Query.object_getattr
        )

    def filter(self, *args: Any) -> Query:
        """Add a filter, ``filter(field, op, value)`` or ``filter(Filter(...))``; return self.

        ``query.filter('age', '>', 18).filter('sex', '=', 'Female')``
        """
        if len(args) == 1 and isinstance(args[0], Filter):
            condition = args[0]
        elif len(args) == 3:
            condition = Filter(*args)
        else:
            msg = f"Query.filter takes (field, op, value) or one Filter, not {args!r}"
            raise QueryError(msg)
        if self._has_custom_getattr():
            condition.object_getattr = self.object_getattr
        self.filters.append(condition)
        return self

    def order(self, order: str | Order) -> Query:
        """Add an order -- ``'+field'``, ``'-field'`` or ``'field'`` -- and return self.

        ``query.order('+age').order('-home')``
        """
        sort = order if isinstance(order, Order) else Order(order)
        if self._has_custom_getattr():
            sort.object_getattr = self.object_getattr
        self.orders.append(sort)
        return self

    def copy(self) -> Query:
        """Return a copy of this query (its filter and order lists are copied too)."""
        clone = _copy.copy(self)
        clone.filters = list(self.filters)
        clone.orders = list(self.orders)
        return clone

    def dict(self) -> QueryDict:
        """Return this query as plain data (``key``, ``limit``, ``offset``, ``filter``, ...)."""
        data: QueryDict = {"key": str(self.key)}
        if self.limit is not None:
            data["limit"] = self.limit
        if self.offset:
            data["offset"] = self.offset
        if self.offset_key is not None:
            data["offset_key"] = str(self.offset_key)
        if self.filters:
            data["filter"] = [[f.field, f.op, f.value] for f in self.filters]
        if self.orders:
            data["order"] = [str(o) for o in self.orders]
        return data

    @classmethod
    def from_dict(cls, dictionary: QueryDict) -> Query:
        """Build a query from the plain data :meth:`dict` returns (other entries are ignored,
        as in 0.3.6; a missing ``key`` means the root ``/``)."""
        query = cls(
            Key(dictionary.get("key", "/")),
            limit=dictionary.get("limit"),
            offset=dictionary.get("offset", 0),
            offset_key=dictionary.get("offset_key"),
        )
        for condition in dictionary.get("filter", []):
            query.filter(condition if isinstance(condition, Filter) else Filter(*condition))
        for order in dictionary.get("order", []):
            query.order(order)
        return query

    def sort_key(self, entry: Entry) -> tuple[Any, ...]:
        """Return the position key of a ``(key, value)`` result: its orders, then its key."""
        return entry_sort_key(self.orders)(entry)

    def __call__(self, iterable: Iterable[Any]) -> Cursor:
        """Naively apply this query to the objects in ``iterable`` (no keys: ties keep order)."""
        return Cursor(self, iterable).apply_all()

    def evaluate(self, items: Iterable[Entry]) -> Cursor:
        """Naively apply this query to ``(key, value)`` pairs; ties are broken by key.

        This is how the in-Python datastores answer :meth:`Datastore.query`.
        """
        return Cursor.from_items(self, items).apply_all()

    def __repr__(self) -> str:
        return f"Query.from_dict({self.dict()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Query):
            return NotImplemented
        return self.dict() == other.dict()

    def __hash__(self) -> int:
        """The hash of the repr, as in 0.3.6 (a query changed after hashing hashes anew)."""
        return hash(repr(self))


# -- cursors ----------------------------------------------------------------------------------


class Cursor:
    """The lazy result of a query: iterate it once to get the matching objects.

    ``returned`` counts the objects iterated so far and ``skipped`` the objects the offset
    skipped.  ``apply_filter``, ``apply_order``, ``apply_offset`` and ``apply_limit`` add the
    query's operations (in that order) before iteration begins; work happens while iterating,
    except that an order must read every matching object before yielding the first.
    """

    def __init__(self, query: Query, iterable: Iterable[Any]) -> None:
        if not isinstance(query, Query):
            msg = f"Cursor needs a Query, not {type(query).__name__} {query!r}"
            raise QueryError(msg)
        if not is_iterable(iterable):
            msg = f"Cursor needs an iterable of results, not {type(iterable).__name__} {iterable!r}"
            raise QueryError(msg)
        self.query = query
        self._entries: Iterable[Entry] = ((None, value) for value in iterable)
        self._iterator: Iterator[Entry] | None = None
        self.returned = 0
        self.skipped = 0

    @classmethod
    def from_items(cls, query: Query, items: Iterable[Entry]) -> Cursor:
        """Return a cursor over ``(key, value)`` pairs, with no operation applied yet."""
        cursor = cls(query, ())
        cursor._entries = items
        return cursor

    # -- building -----------------------------------------------------------------------------

    def _ensure_modification_is_safe(self) -> None:
        if self._iterator is not None:
            msg = "Cursor already iterating: apply operations before iterating it"
            raise CursorError(msg)

    def apply_filter(self) -> Cursor:
        """Naively apply the query's filters (and ``offset_key``); returns self."""
        self._ensure_modification_is_safe()
        filters = list(self.query.filters)
        after = self.query.offset_key
        if filters or after is not None:
            self._entries = _filtered(self._entries, filters, after)
        return self

    def apply_order(self) -> Cursor:
        """Naively apply the query's orders (ties by key); returns self."""
        self._ensure_modification_is_safe()
        if self.query.orders:
            self._entries = _sorted_lazily(self._entries, entry_sort_key(self.query.orders))
        return self

    def apply_offset(self) -> Cursor:
        """Naively apply the query's offset, counting skipped objects; returns self."""
        self._ensure_modification_is_safe()
        if self.query.offset:
            # a weak method: the generator must not keep the cursor (and, for SQL stores, its
            # connection) alive in a reference cycle once the caller drops the cursor
            count_skip = weakref.WeakMethod(self._count_skip)

            def signal(entry: Entry) -> None:
                method = count_skip()
                if method is not None:
                    method(entry)

            self._entries = offset_gen(self.query.offset, self._entries, signal)
        return self

    def apply_limit(self) -> Cursor:
        """Naively apply the query's limit; returns self."""
        self._ensure_modification_is_safe()
        if self.query.limit is not None:
            self._entries = limit_gen(self.query.limit, self._entries)
        return self

    def apply_all(self) -> Cursor:
        """Apply filters, orders, offset and limit, in that order; returns self."""
        return self.apply_filter().apply_order().apply_offset().apply_limit()

    def map_values(self, function: Callable[[Any], Any]) -> Cursor:
        """Pass every result value through ``function`` lazily (shims use it); returns self."""
        self._ensure_modification_is_safe()
        self._entries = ((key, function(value)) for key, value in self._entries)
        return self

    def _count_skip(self, _entry: Entry) -> None:
        self.skipped += 1

    # -- iterating ----------------------------------------------------------------------------

    def _start(self) -> Iterator[Entry]:
        if self._iterator is not None:
            msg = "Cursor can be iterated only once: run the query again"
            raise CursorError(msg)
        self._iterator = iter(self._entries)
        return self._iterator

    def __iter__(self) -> Cursor:
        self._start()
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._start()
        assert self._iterator is not None
        _key, value = next(self._iterator)
        self.returned += 1
        return value

    def next(self) -> Any:
        """Return the next object (the Python 2 iterator name, kept for ported code)."""
        return self.__next__()

    def items(self) -> Iterator[Entry]:
        """Iterate ``(key, value)`` pairs instead of values (key is None if unknown)."""
        iterator = self._start()
        return self._counted(iterator)

    def _counted(self, iterator: Iterator[Entry]) -> Iterator[Entry]:
        for entry in iterator:
            self.returned += 1
            yield entry

    def __repr__(self) -> str:
        return f"<Cursor {self.query!r} returned={self.returned} skipped={self.skipped}>"


def _filtered(
    entries: Iterable[Entry], filters: list[Filter], after: Key | None
) -> Iterator[Entry]:
    """Yield the entries that pass every filter and whose key sorts after ``after``."""
    after_text = None if after is None else str(after)
    for key, value in entries:
        if after_text is not None:
            if key is None:
                msg = "Query offset_key needs keyed results; this cursor holds bare values"
                raise QueryError(msg)
            if str(key) <= after_text:
                continue
        if all(condition(value) for condition in filters):
            yield key, value


def _sorted_lazily(
    entries: Iterable[Entry], key: Callable[[Entry], tuple[Any, ...]]
) -> Iterator[Entry]:
    """Sort ``entries`` when the first result is asked for, not before."""
    yield from sorted(entries, key=key)
