"""Field values: how the datastore reads them from objects and how it orders them.

This module owns the one comparison helper of the datastore, :func:`value_sort_key` (with
:func:`compare_values` and :class:`DescendingKey`), and :func:`default_object_getattr`, the
default way to read a field of a stored object.  :mod:`claystore.datastore.query` calls it
for filters, orders and result ordering, :mod:`claystore.datastore.collections` for merging
shards; the total order itself is documented in :mod:`claystore.datastore.query`.

In short: None < bool < numbers (int, float, Decimal, numerically) < str (code point) <
anything else (by type name, then natural order for dates, times, UUIDs and bytes, else repr).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "DescendingKey",
    "ObjectGetattr",
    "compare_values",
    "default_object_getattr",
    "value_sort_key",
]

#: Reads field ``field`` of a stored object.
ObjectGetattr = Callable[[Any, str], Any]


_NATURALLY_ORDERED = (dt.datetime, dt.date, dt.time, dt.timedelta, uuid.UUID, bytes)


def value_sort_key(value: Any) -> tuple[Any, ...]:  # noqa: PLR0911 - one rank per kind
    """Return the sort key of ``value`` in the total order of :mod:`claystore.datastore.query`.

    Two values are equal in that order exactly when their sort keys are equal.
    """
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return (2, 1)
        return (2, 0, value)
    if isinstance(value, Decimal):  # a number like the others (compares exactly with them)
        return (2, 1) if value.is_nan() else (2, 0, value)
    if isinstance(value, str):
        return (3, value)
    kind = type(value)
    if kind in _NATURALLY_ORDERED:  # same-type values in their own order, as SQL compares them
        if kind is dt.datetime or kind is dt.time:  # naive and aware never meet
            return (4, kind.__name__, value.utcoffset() is not None, value)
        return (4, kind.__name__, value)
    return (4, kind.__name__, repr(value))


def compare_values(left: Any, right: Any) -> int:
    """Compare two values in the total order: -1, 0 or 1 (never raises ``TypeError``)."""
    left_key, right_key = value_sort_key(left), value_sort_key(right)
    if left_key < right_key:
        return -1
    return 1 if left_key > right_key else 0


class DescendingKey:
    """Wraps a sort key so that it sorts in reverse, for descending orders."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key

    def __lt__(self, other: DescendingKey) -> bool:
        return other.key < self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DescendingKey) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]  # sort helper only, never a dict key


def default_object_getattr(obj: Any, field: str) -> Any:
    """Read ``field`` of ``obj``: mappings by item, other objects by attribute, then item.

    A missing field reads as ``None``.  Mappings (dict records) are read by item only, so a
    record field called ``items`` or ``keys`` is the stored value, not the dict method.
    """
    if isinstance(obj, Mapping):
        return obj.get(field)
    if hasattr(obj, field):
        return getattr(obj, field)
    if isinstance(obj, str | bytes):
        return None
    try:
        return obj[field]
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
