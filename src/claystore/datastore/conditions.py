"""Conditions of a query: :class:`Filter` (a field compared with a value) and :class:`Order`
(a field to sort by), and :func:`entry_sort_key`, the position of a ``(key, value)`` result.

Both compare values in the total order :mod:`claystore.datastore.query` documents
(:mod:`claystore.datastore.values` implements it).  :class:`~claystore.datastore.query.Query`
holds them; its naive evaluation, the SQL compilers and the shard merge call them.  They are
re-exported by :mod:`claystore.datastore.query`.  No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Final, TypeVar

from claystore.datastore.key import Key
from claystore.datastore.values import (
    DescendingKey,
    ObjectGetattr,
    compare_values,
    default_object_getattr,
    value_sort_key,
)
from claystore.errors import QueryError

__all__ = ["Entry", "Filter", "Order", "entry_sort_key"]

T = TypeVar("T")

#: One query result with its key: ``(key, value)``; the key is None for bare-value cursors.
Entry = tuple[Key | None, Any]

_OPERATOR_TESTS: Final[dict[str, Callable[[int], bool]]] = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    "!=": lambda c: c != 0,
    ">=": lambda c: c >= 0,
    ">": lambda c: c > 0,
}


class Filter:
    """A condition on one field: ``Filter('age', '>=', 18)``.

    An object passes when ``object_getattr(obj, field) <op> value`` holds in the total order
    (module docstring).  ``object_getattr`` may be replaced on the class or on an instance.
    """

    #: Conditional operators that filters support.
    conditional_operators: ClassVar[tuple[str, ...]] = tuple(_OPERATOR_TESTS)

    #: Reads a field of an object; replace it to match another data model.
    object_getattr: ObjectGetattr = staticmethod(default_object_getattr)

    def __init__(self, field: str, op: str, value: Any) -> None:
        if not isinstance(field, str) or not field:
            msg = f"Filter field must be a non-empty str, not {field!r}"
            raise QueryError(msg)
        if op not in _OPERATOR_TESTS:
            ops = " ".join(self.conditional_operators)
            msg = f"Filter({field!r}, {op!r}, ...): unknown operator {op!r}; use one of {ops}"
            raise QueryError(msg)
        self.field = field
        self.op = op
        self.value = value

    def valuePasses(self, value: Any) -> bool:
        """Return whether ``value`` (a field's value) passes this filter."""
        return _OPERATOR_TESTS[self.op](compare_values(value, self.value))

    def __call__(self, obj: Any) -> bool:
        """Return whether object ``obj`` passes this filter."""
        return self.valuePasses(self.object_getattr(obj, self.field))

    def generator(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield the items of ``iterable`` that pass this filter, lazily."""
        for item in iterable:
            if self(item):
                yield item

    @classmethod
    def filter(cls, filters: Filter | Iterable[Filter], iterable: Iterable[T]) -> Iterator[T]:
        """Yield the items of ``iterable`` that pass every filter in ``filters`` (one Filter or
        several), lazily."""
        checks = [filters] if isinstance(filters, Filter) else list(filters)
        for item in iterable:
            if all(check(item) for check in checks):
                yield item

    def __str__(self) -> str:
        return f"{self.field} {self.op} {self.value}"

    def __repr__(self) -> str:
        return f"Filter({self.field!r}, {self.op!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return (self.field, self.op, self.value) == (other.field, other.op, other.value)

    def __hash__(self) -> int:
        """The hash of the repr (as in 0.3.6), so filters with unhashable values hash too."""
        return hash(repr(self))


class Order:
    """A sort condition: ``Order('+name')`` ascending, ``Order('-age')`` descending.

    Without a sign the order is ascending (``Order('score')``).  Values sort in the total
    order of the module docstring; ``None`` and missing fields come first when ascending.
    """

    #: Ordering operators: ``+`` is ascending, ``-`` is descending.
    order_operators: ClassVar[tuple[str, str]] = ("-", "+")

    #: Reads a field of an object; replace it to match another data model.
    object_getattr: ObjectGetattr = staticmethod(default_object_getattr)

    def __init__(self, order: str | Order) -> None:
        text = str(order) if isinstance(order, Order) else order
        if not isinstance(text, str):
            msg = f"Order must be a str like '+name' or '-age', not {text!r}"
            raise QueryError(msg)
        op, field = ("+", text)
        if text[:1] in self.order_operators:
            op, field = text[0], text[1:]
        if not field:
            msg = f"Order({text!r}) names no field: write '+field' or '-field'"
            raise QueryError(msg)
        self.op = op
        self.field = field
        if isinstance(order, Order) and "object_getattr" in vars(order):
            self.object_getattr = order.object_getattr

    def isAscending(self) -> bool:
        """Return whether this order is ascending (``+``)."""
        return self.op == "+"

    def isDescending(self) -> bool:
        """Return whether this order is descending (``-``)."""
        return self.op == "-"

    def keyfn(self, obj: Any) -> Any:
        """Return the value of this order's field in ``obj`` (as in 0.3.6).

        Python 3 cannot compare every pair of values (``None < 3`` raises); to sort mixed
        values in the total order use :meth:`sort_key`, or ``value_sort_key(order.keyfn(x))``.
        """
        return self.object_getattr(obj, self.field)

    def sort_key(self, obj: Any) -> tuple[Any, ...] | DescendingKey:
        """Return the sort key of ``obj`` in the total order, in this order's direction."""
        key = value_sort_key(self.keyfn(obj))
        return key if self.op == "+" else DescendingKey(key)

    @classmethod
    def multipleOrderComparison(cls, orders: Iterable[Order]) -> Callable[[Any, Any], int]:
        """Return a function comparing two objects by ``orders`` (-1, 0 or 1)."""
        chosen = list(orders)

        def compare(left: Any, right: Any) -> int:
            for order in chosen:
                result = compare_values(
                    order.object_getattr(left, order.field),
                    order.object_getattr(right, order.field),
                )
                if result:
                    return result if order.isAscending() else -result
            return 0

        return compare

    @classmethod
    def sorted(cls, items: Iterable[T], orders: Iterable[Order]) -> list[T]:
        """Return ``items`` sorted by ``orders`` (stable: ties keep their input order)."""
        chosen = list(orders)
        return sorted(items, key=lambda obj: tuple(order.sort_key(obj) for order in chosen))

    def __str__(self) -> str:
        return f"{self.op}{self.field}"

    def __repr__(self) -> str:
        return f"Order({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Order):
            return NotImplemented
        return (self.op, self.field) == (other.op, other.field)

    def __hash__(self) -> int:
        return hash(repr(self))


def entry_sort_key(orders: Iterable[Order]) -> Callable[[Entry], tuple[Any, ...]]:
    """Return the sort key of ``(key, value)`` entries: the orders, then ascending key string."""
    chosen = tuple(orders)

    def sort_key(entry: Entry) -> tuple[Any, ...]:
        key, value = entry
        return (*(order.sort_key(value) for order in chosen), "" if key is None else str(key))

    return sort_key
