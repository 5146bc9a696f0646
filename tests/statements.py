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

    def matching(self, *prefixes: str) -> list[str]:
        """Statements starting with one of ``prefixes`` (case-insensitive)."""
        wanted = tuple(p.upper() for p in prefixes)
        return [s for s in self.statements if s.lstrip().upper().startswith(wanted)]

    @property
    def inserts(self) -> list[str]:
        """INSERT statements (bulk COPY on PostgreSQL included)."""
        return self.matching("INSERT", "COPY")


@contextmanager
def count_statements(engine: Engine) -> Iterator[StatementLog]:
    """Record every statement ``engine`` sends while the block runs."""
    log = StatementLog()

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        log.statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", record)
