"""How the checks read big tables and look ids up across backends, in bounded memory.

Owns :func:`windows` (a table read in consecutive windows of at most ``size`` keys, in key
order: each window is a range of keys that an anti-join or a lookup then reads in SQL, so no
statement returns more than the problems of one window) and :func:`found_on` (which of some
ids a backend's registry holds, asked in batches of one bind parameter each:
:meth:`~claystore.dialects.base.Dialect.among`).

Called by the level modules of the integrity check (:mod:`.registry`); reads through
:meth:`~claystore.orm.database.Database.inspecting` connections, never writes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from claystore.orm.database import Database
from claystore.orm.moveplan import batches
from claystore.orm.system import dc_object

__all__ = ["Window", "found_on", "windows"]


@attrs.frozen
class Window:
    """The keys ``after < key <= upto`` of a table (``after`` None: from the first; ``upto``
    None: to the last), of which ``rows`` rows were counted (at least: equal keys past the
    count belong to the window)."""

    after: Any
    upto: Any  # None: to the last key
    rows: int

    def bounds(self, column: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
        """The conditions that keep ``column`` (the key) in this window."""
        terms = [] if self.upto is None else [column <= self.upto]
        if self.after is not None:
            terms.append(column > self.after)
        return terms


def windows(
    conn: Connection,
    column: sa.ColumnElement[Any],
    where: Sequence[sa.ColumnElement[bool]],
    size: int,
) -> Iterator[Window]:
    """The rows of ``column``'s table that match ``where``, as consecutive windows of about
    ``size`` keys in key order (``column`` need not be unique).  One statement per window: the
    key ``size`` rows on (``OFFSET``: an index walk, no sort); the last window is counted."""
    after: Any = None
    while True:
        page = sa.select(column).where(*where)
        if after is not None:
            page = page.where(column > after)
        upto = conn.execute(page.order_by(column).limit(1).offset(size - 1)).scalar()
        if upto is not None:
            window = Window(after, upto, size)
        else:  # fewer than size rows left: the last window
            rest = conn.execute(
                sa.select(sa.func.count()).select_from(page.subquery())
            ).scalar_one()
            if not rest:
                return
            window = Window(after, None, int(rest))
        yield window
        if window.upto is None:
            return
        after = window.upto


def found_on(databases: Sequence[Database], ids: Collection[UUID]) -> set[UUID]:
    """Those of ``ids`` that the registry (``dc_object``) of one of ``databases`` holds."""
    found: set[UUID] = set()
    for database in databases:
        wanted = sorted(i for i in ids if i not in found)
        if not wanted:
            break
        dialect = database.dialect
        with database.inspecting() as conn:
            for batch in batches(dialect, wanted):
                statement = sa.select(dc_object.c.id).where(dialect.among(dc_object.c.id, batch))
                found.update(conn.execute(statement).scalars())
    return found
