"""Counting the SQL statements an engine executes (for no-N+1 and batching tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


class StatementLog:
    """The statements executed while it listened (executemany counts once)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def matching(self, prefix: str) -> list[str]:
        """Statements starting with ``prefix`` (case-insensitive)."""
        return [s for s in self.statements if s.lstrip().upper().startswith(prefix.upper())]


@contextmanager
def count_statements(engine: Engine) -> Iterator[StatementLog]:
    """Record every statement ``engine`` sends while the block runs."""
    log = StatementLog()

    def record(conn: Any, clauseelement: Any, multiparams: Any, params: Any, options: Any) -> None:
        log.statements.append(str(clauseelement))

    event.listen(engine, "before_execute", record)
    try:
        yield log
    finally:
        event.remove(engine, "before_execute", record)
