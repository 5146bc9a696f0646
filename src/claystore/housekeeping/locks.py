"""The locks on a store's tables that may outlive their owners, listed and cleared.

Owns :func:`list_locks` and :func:`clear_locks` (what :meth:`Client.list_locks
<claystore.client.Client.list_locks>` and :meth:`Client.clear_locks
<claystore.client.Client.clear_locks>` run): on every backend of the store, the holders of
locks on claystore's tables -- the system tables (``dc_*``) and the model classes' tables and
link tables, or only those of one collection (its class, its subclasses' and their link
tables) -- as :class:`~claystore.housekeeping.report.LockHolder` values.

What a holder is and how it is ended is the engine's (``dialect.locks(conn)``,
:mod:`claystore.dialects.locks`): a PostgreSQL session, terminated when its transaction is
older than ``older_than`` seconds; a SQLite process, never ended (it is an application), and
what a dead SQLite writer left behind (``is_stale``), recovered whatever its age (nothing
holds it).  The caller's own sessions (``is_own``: the connection asking, and every open
connection of the client's engines) are listed and never ended.

A backend that does not answer is skipped with a warning (the integrity check reports it).

Called by :class:`claystore.housekeeping.api.Housekeeping`.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from claystore.dialects.base import Dialect
from claystore.dialects.locks import HeldLock, Locks
from claystore.errors import ConfigurationError, DatabaseConnectionError
from claystore.housekeeping.report import LockHolder
from claystore.housekeeping.run import registered_backends, resolve_collection
from claystore.orm import mapping
from claystore.orm.routing import Router
from claystore.orm.system import system_metadata

__all__ = ["clear_locks", "list_locks", "store_tables"]

log = logging.getLogger(__name__)

#: ``end(locks, holder) -> (ended, note)``, or None to end nothing.
_End = Callable[[Locks, HeldLock], tuple[bool, "str | None"]]


def store_tables(collection: Any = None) -> list[str]:
    """The names of the claystore tables a ``collection`` argument covers: a class's table,
    its subclasses' and their link tables; None: every system table and every model class's
    tables.  Raises ConfigurationError for an unknown collection."""
    chosen = resolve_collection(collection)
    infos = mapping.models() if chosen is None else list(mapping.iter_subclass_infos(chosen))
    names = [] if chosen is not None else sorted(system_metadata.tables)
    for info in infos:
        names.append(info.tablename)
        names.extend(table.name for table in info.link_tables.values())
    return list(dict.fromkeys(names))


def list_locks(router: Router, collection: Any = None) -> list[LockHolder]:
    """Every holder of locks on the store's tables (or one collection's), on every backend;
    ends nothing."""
    return _visit(router, collection, end=None)


def clear_locks(router: Router, collection: Any = None, *, older_than: float) -> list[LockHolder]:
    """End the holders of locks on the store's tables (or one collection's) that are not
    the caller's own: PostgreSQL sessions whose transaction is older than ``older_than``
    seconds, and stale SQLite writers.  Returns every holder found, ``cleared`` on those
    ended (``note`` says what was done, or why not)."""
    wait = _checked_older_than(older_than)

    def end(locks: Locks, holder: HeldLock) -> tuple[bool, str | None]:
        if holder.is_own:
            return False, "one of the caller's own sessions: never ended"
        if not holder.is_stale and (holder.age is None or holder.age < wait):
            return False, f"younger than {wait:g} s" if holder.age is not None else None
        return locks.clear(holder)

    return _visit(router, collection, end=end)


def _checked_older_than(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"older_than must be a number of seconds (such as 60), not {value!r}"
        raise ConfigurationError(msg)
    if value < 0:
        msg = f"older_than must be 0 or more seconds, not {value!r}"
        raise ConfigurationError(msg)
    return float(value)


def _visit(router: Router, collection: Any, *, end: _End | None) -> list[LockHolder]:
    """The holders on every backend that answers, each ended by ``end`` when given."""
    tables = store_tables(collection)
    found: list[LockHolder] = []
    for backend_id, info in registered_backends(router).items():
        name = info.name
        try:
            database = router.database(backend_id)
            own = _own_sessions(router)
            read = functools.partial(
                _holders_of, dialect=database.dialect, backend=name, tables=tables, own=own, end=end
            )
            found.extend(database.read(read))
        except DatabaseConnectionError as exc:
            log.warning("claystore could not read the locks of backend %r: %s", name, exc)
    return found


def _own_sessions(router: Router) -> frozenset[int]:
    """The server session ids of every open connection of the client's engines."""
    own: set[int] = set()
    for database in router.opened():
        own.update(database.dialect.session_ids())
    return frozenset(own)


def _holders_of(
    conn: Connection,
    *,
    dialect: Dialect,
    backend: str,
    tables: list[str],
    own: frozenset[int],
    end: _End | None,
) -> list[LockHolder]:
    """The holders on one backend (``conn``), each ended by ``end`` when given."""
    locks = dialect.locks(conn)
    holders = []
    for held in locks.holders(tables, own):
        cleared, note = (False, held.note) if end is None else end(locks, held)
        holders.append(
            LockHolder(
                backend=backend,
                pid=held.pid,
                tables=held.tables,
                age=held.age,
                state=held.state,
                application_name=held.application_name,
                query=held.query,
                is_own=held.is_own,
                is_stale=held.is_stale,
                can_end=held.can_end or held.is_stale,
                cleared=cleared,
                note=note or held.note,
            )
        )
    return holders
