"""Storage sizes of a store (placeholder until written)."""

from __future__ import annotations

from typing import Any

from claystore.housekeeping.report import StorageSize
from claystore.orm.routing import Router


def calculate(router: Router, collection: Any = None) -> StorageSize:
    """The size of the store or of one class."""
    raise NotImplementedError
