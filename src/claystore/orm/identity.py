"""The identity map of one client context, and object ids.

Owns the rule "one stored object is one Python object while it is alive" across the threads of
a client: a weak-valued map from object id to object, shared by every thread of the context
(SQLAlchemy's identity map belongs to one session and one thread; claystore objects are
handles that any thread of the client may use, as in dataClay).  Entries vanish when the
program drops its last reference.

Also owns :func:`new_object_id`: time-ordered UUIDs (version 7 layout), so primary-key indexes
grow at the right end instead of splitting pages at random; and :func:`object_id_of`, the id a
caller gave (a UUID or its text).

It is the identity scope of everything loaded outside a unit of work (a unit of work is its own
scope, see :class:`claystore.orm.sessionwork.UnitOfWork`): :meth:`IdentityMap.find` and
:meth:`IdentityMap.adopt` are what :mod:`claystore.orm.loading` calls on a scope.

Created by :mod:`claystore.orm.context`; used by the loaders and the transaction.  No I/O.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any
from uuid import UUID

from claystore.errors import ObjectDoesNotExistError


class IdentityMap:
    """Weak map ``object id -> object`` for one client context (thread-safe)."""

    def __init__(self) -> None:
        self._objects: weakref.WeakValueDictionary[UUID, Any] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def get(self, object_id: UUID) -> Any | None:
        """The live object with this id, or None."""
        return self._objects.get(object_id)

    find = get  # the identity-scope verb :mod:`claystore.orm.loading` calls

    def add(self, object_id: UUID, obj: Any) -> Any:
        """Register ``obj`` unless another live object already has the id; return the winner."""
        with self._lock:
            existing = self._objects.get(object_id)
            if existing is not None:
                return existing
            self._objects[object_id] = obj
            return obj

    def add_many(self, pairs: list[tuple[UUID, Any]]) -> None:
        """Register freshly created objects (their ids are new, so none can exist yet)."""
        with self._lock:
            self._objects.update(pairs)

    def adopt(self, pairs: list[tuple[UUID, Any]]) -> dict[int, Any] | None:
        """Register freshly loaded objects, like :meth:`add` for each: where another live
        object already has the id, it wins.  Returns ``{id(loser): winner}``, or None when
        every object was registered."""
        losers: dict[int, Any] | None = None
        objects = self._objects
        with self._lock:
            for object_id, obj in pairs:
                existing = objects.get(object_id)
                if existing is None:
                    objects[object_id] = obj
                else:
                    if losers is None:
                        losers = {}
                    losers[id(obj)] = existing
        return losers

    def absorb(self, obj: Any, row: Any, reader: Any) -> None:
        """Outside transactions a row found for a live object changes nothing (its reads go to
        the database, or to a running query loop's row)."""

    def discard(self, object_id: UUID) -> None:
        """Forget the object with this id (deleted, or insert rolled back)."""
        with self._lock:
            self._objects.pop(object_id, None)

    def __len__(self) -> int:
        return len(self._objects)

    def clear(self) -> None:
        """Forget every object."""
        with self._lock:
            self._objects.clear()


_last_ms = 0
_counter = 0
_id_lock = threading.Lock()


def new_object_ids(count: int) -> list[UUID]:
    """``count`` new time-ordered ids (increasing), made in one go."""
    global _last_ms, _counter
    with _id_lock:
        now = max(time.time_ns() // 1_000_000, _last_ms)
        counter = _counter + 1 if now == _last_ms else 0
        stamps: list[int] = []
        for _ in range(count):
            if counter > 0xFFF:
                now += 1
                counter = 0
            stamps.append((now & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62)
            counter += 1
        _last_ms, _counter = now, counter - 1
    rand = os.urandom(8 * count)
    mask = 0x3FFF_FFFF_FFFF_FFFF
    return [
        UUID(int=stamp | int.from_bytes(rand[8 * i : 8 * i + 8], "big") & mask)
        for i, stamp in enumerate(stamps)
    ]


def new_object_id() -> UUID:
    """A new time-ordered UUID (RFC 9562 version 7: 48-bit ms timestamp, a 12-bit counter
    so that ids made in the same millisecond by this process still increase, random bits)."""
    return new_object_ids(1)[0]


def object_id_of(value: object) -> UUID:
    """``value`` -- a UUID, or its text -- as an object id; anything else names no object:
    raises :class:`~claystore.errors.ObjectDoesNotExistError` saying why."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    detail = (
        f"{value!r:.80} is not an object id; ids are UUIDs (obj._dc_meta.id), given as a UUID "
        "or its text such as '0190a5b2-7c3e-7d41-8e2f-5a6b7c8d9e0f'"
    )
    raise ObjectDoesNotExistError(repr(value)[:80], detail)
