"""Locks held on a store's tables (placeholder until written)."""

from __future__ import annotations

from typing import Any

from claystore.housekeeping.report import LockHolder
from claystore.orm.routing import Router


def list_locks(router: Router, collection: Any = None) -> list[LockHolder]:
    """Every holder of locks on the store's tables."""
    raise NotImplementedError


def clear_locks(router: Router, collection: Any = None, *, older_than: float) -> list[LockHolder]:
    """End stale locks."""
    raise NotImplementedError
