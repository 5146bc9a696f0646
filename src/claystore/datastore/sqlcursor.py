"""The lazy result of a query answered by SQL: :class:`SQLCursor`.

Owns :class:`SQLCursor` -- returned by :meth:`SQLDatastore.query
<claystore.datastore.jsontable.SQLDatastore.query>` and by model queries
(:mod:`claystore.orm.modelquery`): it runs nothing before the first ``next()``, streams rows, keeps
the SELECT's text, and records what Python had to evaluate after SQL narrowed the rows
(:attr:`SQLCursor.evaluated_in_python`, logged at INFO on the logger
``claystore.datastore.sql``, the name it has always had) -- and :func:`finish_in_python`,
which evaluates the rest of a query naively over the narrowed rows.

Called by :mod:`claystore.datastore.jsontable` and :mod:`claystore.orm.modelquery`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator

from claystore.datastore.query import Cursor, Entry, Query
from claystore.datastore.sqlorder import limit_of

__all__ = ["SQLCursor", "finish_in_python"]

log = logging.getLogger("claystore.datastore.sql")


class SQLCursor(Cursor):
    """The lazy result of a query answered by SQL; iterate it once.

    Nothing runs before the first ``next()``; rows then stream from the database in chunks
    (a server-side cursor on PostgreSQL), so a result larger than memory can be iterated.
    ``statement`` is the SELECT's SQL text (values bound as parameters).
    ``evaluated_in_python`` lists what Python had to evaluate after SQL narrowed the rows, and
    why (empty when SQL did everything; filled in as iteration starts).  ``returned`` and
    ``skipped`` count as for every cursor.  :meth:`close` stops early and frees the connection.
    """

    def __init__(
        self,
        query: Query,
        run: Callable[[SQLCursor], Iterator[Entry]],
        statement: Callable[[], str],
        evaluated_in_python: list[str] | None = None,
    ) -> None:
        super().__init__(query, ())
        self._render = statement
        self._statement: str | None = None
        self.evaluated_in_python: list[str] = []
        for reason in evaluated_in_python or ():
            self.note_python(reason)
        # a generator (its body runs at the first next()) holding only a weak proxy of the
        # cursor: a cursor dropped half-way is freed at once, closing its connection
        self._entries = run(weakref.proxy(self))

    @property
    def statement(self) -> str:
        """The SELECT's SQL text (rendered when first read)."""
        if self._statement is None:
            self._statement = self._render()
        return self._statement

    def note_python(self, reason: str) -> None:
        """Record (and log) that Python evaluates part of the query, with the reason."""
        self.evaluated_in_python.append(reason)
        log.info("query %s is evaluated in Python: %s", self.query.dict(), reason)

    def close(self) -> None:
        """Stop the query and release its database connection."""
        entries = self._entries
        if isinstance(entries, Iterator) and hasattr(entries, "close"):
            entries.close()


def finish_in_python(
    cursor: SQLCursor, rows: Iterator[Entry], query: Query, done: int
) -> Iterator[Entry]:
    """Evaluate ``query`` naively over the narrowed ``rows`` (in key order) and yield its
    results after the first ``done`` (already yielded by SQL)."""
    rest = query.copy()
    rest.offset = query.offset + done
    limit = limit_of(query)
    rest.limit = None if limit is None else limit - done
    naive = rest.evaluate(rows)
    for entry in naive.items():
        cursor.skipped = query.offset if done else naive.skipped
        yield entry
    cursor.skipped = query.offset if done else naive.skipped
