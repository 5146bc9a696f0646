"""Level N of the integrity check (placeholder until written)."""

from __future__ import annotations

from claystore.housekeeping.run import CheckRun


def check(run: CheckRun) -> None:
    """Level N."""
    raise NotImplementedError
