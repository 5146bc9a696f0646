"""Driver errors become claystore errors: the one place where that happens.

Owns :func:`translate_error` (every driver or SQLAlchemy error, where claystore's operations
end) and :func:`translate_at_source`, which the engine's ``handle_error`` event (installed by
:func:`translate_at_source_of`, from :meth:`~claystore.dialects.base.Dialect.configure`) uses
to raise the errors about the database's state -- lock timeouts, deadlocks, read-only
databases, lost connections -- where they happen.  Messages name where the database is and
never show its password; the driver's error is kept as ``.orig``.

Called by :mod:`.base` (re-exported there) and through it by the ORM, the client and the
alembic environment.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from claystore import errors

__all__ = ["translate_at_source", "translate_at_source_of", "translate_error"]


def _scrub(text: str, url: URL | None) -> str:
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return text


def _where(url: URL | None) -> str:
    """Where the database is, for messages (never the password)."""
    if url is None:
        return ""
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    host = url.host or "localhost"
    return f"{url.get_backend_name()} at {host}:{url.port or 5432} (database {url.database!r})"


def _read_only_fix(url: URL | None) -> str:
    """How to make a read-only database writable, per engine."""
    if url is not None and url.get_backend_name() == "sqlite":
        return (
            "make the file and its directory writable by this user (SQLite writes its -wal "
            "and -shm files beside the database), or only read from it"
        )
    return (
        "connect to a server that accepts writes (the primary, not a standby, with "
        "default_transaction_read_only off), or only read from it"
    )


def _is_lock_error(sqlstate: str | None, lowered: str) -> bool:
    return sqlstate == "55P03" or "database is locked" in lowered or "lock timeout" in lowered


def _is_read_only_error(sqlstate: str | None, lowered: str) -> bool:
    return sqlstate == "25006" or "readonly database" in lowered


def _described(exc: BaseException, url: URL | None) -> tuple[Any, str, str, str | None]:
    """The driver's error, its first line (password hidden), where, and its SQLSTATE."""
    orig = getattr(exc, "orig", None) or exc
    text = _scrub(str(orig).strip().splitlines()[0] if str(orig).strip() else repr(orig), url)
    return orig, text, _where(url), getattr(orig, "sqlstate", None)


def translate_at_source(
    exc: BaseException, url: URL | None, *, lost: bool
) -> errors.ClaystoreError | None:
    """The claystore error of a driver error that is about the database's state rather than
    the statement -- a lock wait that timed out, a deadlock, a write to a read-only database,
    a connection lost under an open connection (``lost``) -- or None for any other error.

    These are raised where they happen, through the engine's ``handle_error`` event (see
    :meth:`Dialect.configure`); the others are translated where claystore's operations end
    (:func:`translate_error`), so that a caller may still catch a constraint's error.
    """
    orig, text, where, sqlstate = _described(exc, url)
    lowered = text.lower()
    if _is_lock_error(sqlstate, lowered):
        return errors.LockTimeoutError(f"{where}: lock not available in time: {text}", orig)
    if sqlstate == "40P01":
        return errors.LockTimeoutError(
            f"{where}: deadlock detected, transaction undone: {text}", orig
        )
    if _is_read_only_error(sqlstate, lowered):
        return errors.ReadOnlyDatabaseError(
            f"{where} is read-only ({text}); nothing was written: {_read_only_fix(url)}", orig
        )
    if lost:
        return errors.ConnectionLostError(
            f"lost the connection to {where} ({text}): the server restarted or ended the "
            "connection, and the operation did not complete; run it again (a new connection "
            "is opened)",
            orig,
        )
    return None


def translate_error(
    exc: BaseException, url: URL | None = None, *, lost: bool | None = None
) -> errors.ClaystoreError:
    """The claystore error for a driver/SQLAlchemy error; the original is kept as ``.orig``.

    ``lost``: the error ended an open connection (the server restarted or closed it); by
    default, whether SQLAlchemy invalidated the connection for it.  Messages name where the
    database is and never contain the password.
    """
    if isinstance(exc, errors.ClaystoreError):
        return exc
    if lost is None:
        lost = bool(getattr(exc, "connection_invalidated", False))
    found = translate_at_source(exc, url, lost=lost)
    if found is not None:
        return found
    orig, text, where, sqlstate = _described(exc, url)
    if isinstance(exc, sa.exc.IntegrityError):
        return errors.IntegrityError(f"{where}: write refused by a constraint: {text}", orig)
    is_connection_state = sqlstate is None or sqlstate.startswith(("08", "28", "3D", "57P"))
    is_server = url is not None and url.get_backend_name() != "sqlite"
    if (
        isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
        and is_connection_state
        and (is_server or "unable to open" in text.lower())
    ):
        hint = ""
        if not is_server:
            hint = " (check that its directory exists and that this user may write in it)"
        return errors.DatabaseConnectionError(f"cannot connect to {where}: {text}{hint}", orig)
    return errors.DatabaseError(f"{where}: {text}" if where else text, orig)


def translate_at_source_of(engine: Engine, url: URL) -> None:
    """Install :func:`translate_at_source` on ``engine`` (its ``handle_error`` event)."""

    @sa.event.listens_for(engine, "handle_error")
    def on_error(context: sa.engine.ExceptionContext) -> BaseException | None:
        if context.is_pre_ping:
            return None
        if isinstance(context.original_exception, errors.ClaystoreError):
            raise context.original_exception  # refused by a listener of ours: raised as is
        exc = context.sqlalchemy_exception or context.original_exception
        lost = bool(context.is_disconnect) and context.connection is not None
        translated = translate_at_source(exc, url, lost=lost)
        if translated is not None:
            raise translated
        return None
