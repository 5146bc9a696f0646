"""The classes a store holds and how many objects of each (placeholder until written)."""

from __future__ import annotations

from claystore.housekeeping.report import ClassStats
from claystore.orm.routing import Router


def class_stats(router: Router) -> list[ClassStats]:
    """Every stored class and its counts."""
    raise NotImplementedError


def meta_version(router: Router) -> str:
    """The system schema version of the metadata database."""
    raise NotImplementedError
