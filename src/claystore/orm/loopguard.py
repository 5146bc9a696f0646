"""Keeping an async session's statements off the event loop's thread.

Owns :func:`off_the_loop` (refuse, on the loop's thread, what needs the database) and
:func:`guard_connection` (refuse every statement on one connection from that thread): an
async session (:mod:`claystore.orm.asyncsession`) runs its work on its worker thread; a
statement its task would run on the loop -- a blocking call, a field not loaded yet -- would
stall every other coroutine, and wait for locks other sessions of the same loop hold.

Used by :mod:`claystore.orm.transaction` for the connections of an async session's
transaction.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from claystore.errors import SessionStateError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["guard_connection", "off_the_loop"]


def off_the_loop(loop_thread: int) -> None:
    """Raise if called on the event loop's thread: an async session's statements run on its
    worker thread (the loop would wait for the database, and for locks other sessions of the
    same loop hold)."""
    if threading.get_ident() == loop_thread:
        msg = (
            "an async session runs no statement on the event loop's thread, and this needs the "
            "database: await the `a_` form of the call (`await obj.a_method()`, "
            "`await Model.a_get_by_alias(...)`), `await session.a_load(obj, 'field')` for a "
            "field not loaded yet, or `await session.run(function)` for blocking code"
        )
        raise SessionStateError(msg)


def guard_connection(conn: Connection, loop_thread: int) -> None:
    """Refuse statements on ``conn`` (an async session's) from the event loop's thread."""

    def before_cursor_execute(*_args: Any) -> None:
        off_the_loop(loop_thread)

    sa.event.listen(conn, "before_cursor_execute", before_cursor_execute)
