"""The transaction of an explicit unit of work (``client.session()``): :class:`UnitOfWork`.

Owns :class:`UnitOfWork`, the form of :class:`~claystore.orm.transaction.Transaction` that a
session runs (the same verbs; the mode is the type, never a flag).  It differs in what it
does: it is its own identity scope and owns what it loads (held weakly until changed, so
streaming a large query stays bounded in memory), registers new objects and aliases now but
writes them at the next flush, flushes before reads so queries see its changes, updates
optimistically (``WHERE dc_version = <as loaded>``), and at commit hands what it loaded to the
client's identity map.

Begun by :mod:`claystore.orm.context` for :class:`claystore.orm.session.Session`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from claystore.orm import aliases
from claystore.orm.fields import Field
from claystore.orm.graph import collect_transient
from claystore.orm.loading import IdentityScope
from claystore.orm.rows import RowReader
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState
from claystore.orm.transaction import Transaction

__all__ = ["UnitOfWork"]


def _forgetter(entries: dict[UUID, ObjectState]) -> Callable[[weakref.KeyedRef[Any, UUID]], None]:
    """The callback that drops the entry of a weakly held object once it is collected."""

    def forget(ref: weakref.KeyedRef[Any, UUID]) -> None:
        current = entries.get(ref.key)
        if current is not None and current.obj is None:
            del entries[ref.key]

    return forget


class UnitOfWork(Transaction):
    """The transaction of ``client.session()``: its own identity scope, deferred writes,
    optimistic updates (see the module docstring)."""

    check_versions = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._forget = _forgetter(self.entries)

    @property
    def scope(self) -> IdentityScope:
        """A unit of work is its own identity scope."""
        return self

    # -- identity scope ------------------------------------------------------------------------

    def find(self, object_id: UUID) -> Any | None:
        """The object this unit of work sees for an id: its own, else the client's if it can
        own it at once; None means "load a copy"."""
        state = self.entries.get(object_id)
        if state is not None:
            obj = state.obj
            if obj is not None:
                return obj
        obj = self.identity.get(object_id)
        if obj is not None and obj.__dict__.get(STATE_ATTR) is not None and self.try_own(obj):
            return obj
        return None

    def adopt(self, pairs: list[tuple[UUID, Any]]) -> dict[int, Any] | None:
        """Track objects just loaded (their columns are current), held weakly until something
        changes them."""
        entries = self.entries
        forget = self._forget
        losers: dict[int, Any] | None = None
        for object_id, obj in pairs:
            current = entries.get(object_id)
            existing = current.obj if current is not None else None
            if existing is not None:
                if losers is None:
                    losers = {}
                losers[id(obj)] = existing
                continue
            state: ObjectState = obj.__dict__[STATE_ATTR]
            state.owner = self
            state.ref = weakref.KeyedRef(obj, forget, object_id)
            state.mark_loaded(obj)
            entries[object_id] = state
        return losers

    def absorb(self, obj: Any, row: Sequence[Any], reader: RowReader) -> None:
        """An object this unit of work owns but has not loaded (found in the client's identity
        map, or owned for a write) takes the values of the row a query read for it, so that
        reading it costs no statement; assigned fields keep their values.  So does a new object
        it created and flushed (the row is what the flush wrote)."""
        state: ObjectState = obj.__dict__[STATE_ATTR]
        if (
            state.owner is self
            and not state.fresh
            and state.object_id not in self.staged
            and state.lifecycle is not Lifecycle.DELETED
        ):
            reader.refresh(obj, row, skip=state.dirty)
            state.mark_loaded(obj)

    def try_own(self, obj: Any) -> bool:
        """Own ``obj`` if no other open transaction holds it (never waits)."""
        state: ObjectState = obj.__dict__[STATE_ATTR]
        if not self.ownership.try_acquire(state, self):
            return False
        if state.object_id not in self.entries:
            state.held = obj
            self.entries[state.object_id] = state
        return True

    # -- reading and storing -------------------------------------------------------------------

    def read_field(self, obj: Any, state: ObjectState, field: Field) -> Any:
        """A field of an object, which this unit of work owns from now on."""
        entry = self.entries.get(state.object_id)
        if entry is None:
            entry = self.own(obj, state)
        return self.read(entry, field)

    def prepare_read(self) -> None:
        """Flush first, so that what is read sees this unit of work's changes."""
        self.flush()

    def persist(
        self,
        roots: list[Any],
        *,
        recursive: bool = True,
        backend_id: UUID | None = None,
        alias: str | None = None,
    ) -> list[Any]:
        """Register every transient object reachable from ``roots`` (and ``alias`` for the
        first root, refused now if it is taken); they are written at the next flush."""
        if alias is not None:
            aliases.check_free(self.conn, self.dataset, alias)
        objects = collect_transient(roots, recursive=recursive)
        if objects:
            self.stage(objects, backend_id)
        if alias is not None:
            self.pending_aliases.append((self.dataset, alias, roots[0]))
        return objects

    def _settle_committed(self) -> None:
        """After the COMMIT, what this unit of work loaded joins the client's identity map."""
        super()._settle_committed()
        persistent = Lifecycle.PERSISTENT
        for state in list(self.entries.values()):
            obj = state.obj
            if obj is not None and state.lifecycle is persistent:
                self.identity.add(state.object_id, obj)
