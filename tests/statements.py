"""Counting the SQL statements an engine executes (for no-N+1 and batching tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


def is_backend_list_read(statement: str) -> bool:
    """The router's read of the registered backends, which a class query repeats when the
    list it holds is older than ``querymerge.BACKENDS_MAX_AGE`` (a second): whether it falls
    inside a block depends on how long the test took to get there, so no count includes it."""
    return "FROM dc_backend" in statement and "dc_backend.url IS NOT NULL" in statement


class StatementLog:
    """The statements executed while it listened (executemany counts once), but for the
    time-dependent read of the backend list (:func:`is_backend_list_read`)."""

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
        if not is_backend_list_read(statement):
            log.statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", record)
