"""Ownership: which open transaction of one client holds each of its objects.

Owns :class:`Ownership` (``state.owner``): exclusive between the transactions of one client —
a transaction that needs an object another thread's open transaction holds waits for it, up to
the lock timeout, then raises :class:`~claystore.errors.LockTimeoutError`.

Created by :mod:`claystore.orm.context` (one per client); used by
:mod:`claystore.orm.transaction`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from claystore.errors import LockTimeoutError
from claystore.orm.state import Holder, ObjectState, release, release_objects

__all__ = ["Ownership"]


class Ownership:
    """Which open transaction of one client holds each of its objects (``state.owner``).

    Exclusive: a transaction that needs an object another open transaction holds waits until
    it is let go, up to ``lock_timeout`` seconds, then raises :class:`LockTimeoutError`.
    """

    def __init__(self, lock_timeout: float) -> None:
        self.lock_timeout = lock_timeout
        self._condition = threading.Condition()

    @staticmethod
    def _take(state: ObjectState, tx: Holder) -> None:
        if state.owner is not tx:
            if state.owner is not None:  # an owner that ended and has not let go yet
                release([state], state.owner)
            state.take_by(tx)

    def acquire(self, state: ObjectState, tx: Holder) -> None:
        """Make ``tx`` the owner of ``state``, waiting while another open transaction is."""
        cond = self._condition
        with cond:
            deadline = time.monotonic() + self.lock_timeout
            while state.owner is not None and state.owner is not tx and state.owner.is_active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = (
                        f"object {state.object_id} is held by another transaction of this client "
                        f"(thread {state.owner.thread_id}) for more than {self.lock_timeout:g}s"
                    )
                    raise LockTimeoutError(msg)
                cond.wait(remaining)
            self._take(state, tx)

    def try_acquire(self, state: ObjectState, tx: Holder) -> bool:
        """Make ``tx`` the owner of ``state`` unless another open transaction is (never
        waits)."""
        with self._condition:
            owner = state.owner
            if owner is not None and owner is not tx and owner.is_active:
                return False
            self._take(state, tx)
        return True

    def release(
        self, states: Iterable[ObjectState], tx: Holder, objects: Iterable[Any] = ()
    ) -> None:
        """``tx`` lets go of these states and of the states of ``objects`` (those it still
        owns); waiting transactions wake."""
        with self._condition:
            release(states, tx)
            release_objects(objects, tx)
            self._condition.notify_all()
