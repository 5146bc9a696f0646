"""Per-object state: the lifecycle of a persistent object and where it lives.

Everything claystore keeps on a user object hangs off one attribute, ``_dc_state`` (an
:class:`ObjectState`).  A transient object (never stored, or deleted) has none.

The lifecycle, and its legal transitions (all made by :mod:`claystore.orm.transaction`):

====================  ======================================  =========================
from                  event                                   to
====================  ======================================  =========================
(transient)           inserted in an open transaction         NEW
NEW                   transaction commits                     PERSISTENT
NEW                   transaction rolls back                  (transient)
PERSISTENT            deleted in an open transaction          DELETED
DELETED               transaction commits                     (transient)
DELETED               transaction rolls back                  PERSISTENT
====================  ======================================  =========================

``owner`` is the open transaction that holds the object (it locked it, wrote to it, or, in a
unit of work, loaded it); while held, only that transaction serves the object from memory and
other threads read committed state from the database without caching it.

Called by the attribute descriptors, the transaction and the loaders.  No I/O.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from claystore.errors import ObjectNotRegisteredError

if TYPE_CHECKING:
    from claystore.orm.context import ObjectContext
    from claystore.orm.transaction import Transaction

STATE_ATTR = "_dc_state"


class Lifecycle(enum.Enum):
    """Where a stored object is in its life (see the module docstring for transitions)."""

    NEW = "new"
    PERSISTENT = "persistent"
    DELETED = "deleted"


class ObjectState:
    """The claystore state of one stored object."""

    __slots__ = ("backend_id", "context", "dataset", "lifecycle", "object_id", "owner")

    def __init__(  # noqa: PLR0917 - built in hot loops, positional on purpose
        self,
        object_id: UUID,
        context: ObjectContext,
        dataset: str,
        backend_id: UUID,
        lifecycle: Lifecycle = Lifecycle.PERSISTENT,
        owner: Transaction | None = None,
    ) -> None:
        self.object_id = object_id
        self.context = context
        self.dataset = dataset
        self.backend_id = backend_id
        self.lifecycle = lifecycle
        self.owner = owner

    def __repr__(self) -> str:
        return f"<ObjectState {self.object_id} {self.lifecycle.value}>"


def state_of(obj: Any) -> ObjectState | None:
    """The state of ``obj``, or None when it is transient."""
    state: ObjectState | None = obj.__dict__.get(STATE_ATTR)
    return state


def stored_state(obj: Any) -> ObjectState:
    """The state of a stored object whose client is open; raises ObjectNotRegisteredError
    (transient or deleted) or ClientClosedError."""
    state: ObjectState | None = obj.__dict__.get(STATE_ATTR)
    if state is None or state.lifecycle is Lifecycle.DELETED:
        raise ObjectNotRegisteredError(f"{type(obj).__name__} at {id(obj):#x}")
    state.context.check_open()
    return state
