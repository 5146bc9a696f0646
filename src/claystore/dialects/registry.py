"""The lazy registry of engines: which dialect class serves which URL scheme.

Owns the list of supported engines (``sqlite`` -> :mod:`.sqlite`, ``postgresql`` ->
:mod:`.postgresql`, each imported when first needed), :func:`dialect_for` (a URL -> its
dialect), :func:`dialect_class` (an SQLAlchemy dialect name -> the class),
:func:`dialect_classes` (every engine: for table metadata that serves them all),
:func:`normalise_url`, and :func:`configured_url`: the database a program configured through
the ``DC_*`` environment variables (what ``Client()`` and ``claystore db`` connect to when
given no URL).

Called by the client, the JSON-table datastore, :mod:`claystore.migrations` (the alembic
environment), and :mod:`.types` / :mod:`.indexes`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from claystore import errors
from claystore.dialects.base import Dialect

#: SQLAlchemy dialect name (the URL scheme) -> "module:class" of its claystore dialect.
_ENGINES: Final = {
    "sqlite": "claystore.dialects.sqlite:SQLiteDialect",
    "postgresql": "claystore.dialects.postgresql:PostgreSQLDialect",
}
_loaded: dict[str, type[Dialect]] = {}


def _load(name: str) -> type[Dialect]:
    cls = _loaded.get(name)
    if cls is None:
        module_name, _, class_name = _ENGINES[name].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        _loaded[name] = cls
    return cls


def dialect_for(url: URL) -> Dialect:
    """The dialect of ``url``'s database; raises ConfigurationError if the engine is not
    supported."""
    backend = url.get_backend_name()
    if backend not in _ENGINES:
        supported = ", ".join(sorted(_ENGINES))
        safe = url.render_as_string(hide_password=True)
        msg = f"claystore supports {supported} databases, not {backend!r} ({safe})"
        raise errors.ConfigurationError(msg)
    return _load(backend)(url)


def dialect_class(name: str) -> type[Dialect]:
    """The dialect class of the engine SQLAlchemy calls ``name`` (``dialect.name``).

    An engine claystore does not support gets the generic :class:`Dialect`, so that table
    metadata still compiles for it (``str(statement)``, alembic's offline SQL).
    """
    return _load(name) if name in _ENGINES else Dialect


def dialect_classes() -> tuple[type[Dialect], ...]:
    """The dialect class of every supported engine."""
    return tuple(_load(name) for name in _ENGINES)


def normalise_url(url: URL) -> URL:
    """``url`` pinned to the driver claystore uses for its engine (``postgresql://`` means
    psycopg 3); other URLs unchanged.  Raises ConfigurationError for a port outside 1-65535."""
    check_port(url.port)
    for cls in dialect_classes():
        url = cls.normalise_url(url)
    return url


def check_port(port: int | None) -> None:
    """Raise ConfigurationError unless ``port`` is None or a TCP port number (1-65535)."""
    if port is not None and not 1 <= port <= MAX_PORT:
        msg = f"port must be a number from 1 to {MAX_PORT}, not {port!r}"
        raise errors.ConfigurationError(msg)


def parse_url(url: str | URL, what: str = "url") -> URL:
    """``url`` (text or a URL) as a normalised URL; raises ConfigurationError naming ``what``
    when it is not a database URL or its port is not a number (the message never shows the
    password)."""
    try:
        return normalise_url(make_url(url))
    except sa.exc.ArgumentError as exc:
        msg = f"{what} is not a database URL: {exc}; write it as dialect://user@host:port/database"
        raise errors.ConfigurationError(msg) from None
    except ValueError as exc:  # make_url: a port that is not a number
        if isinstance(exc, errors.ClaystoreError):
            raise
        port = str(exc).rpartition(": ")[2]
        msg = f"the port in {what} must be a number from 1 to {MAX_PORT}, not {port}"
        raise errors.ConfigurationError(msg) from None


#: The largest TCP port number.
MAX_PORT: Final = 65535

#: The database of a program that configures none: a SQLite file in the current directory.
DEFAULT_URL: Final = "sqlite:///claystore.db"


def configured_url(
    environ: Mapping[str, str],
    *,
    port: Any = None,
    username: str | None = None,
    password: str | None = None,
    database: str | None = None,
) -> URL:
    """The database the ``DC_*`` environment names: ``DC_URL``; else ``DC_HOST`` with
    ``DC_PORT``, ``DC_USERNAME``, ``DC_PASSWORD`` and ``DC_DATABASE`` (PostgreSQL; the
    keyword arguments, when given, win over these four); else :data:`DEFAULT_URL`.  Raises
    ConfigurationError when ``DC_URL`` is not a URL."""
    if environ.get("DC_URL"):
        return parse_url(environ["DC_URL"], "DC_URL")
    if environ.get("DC_HOST"):
        return _load("postgresql").server_url(
            environ["DC_HOST"],
            port if port is not None else environ.get("DC_PORT"),
            username or environ.get("DC_USERNAME"),
            password or environ.get("DC_PASSWORD"),
            database or environ.get("DC_DATABASE"),
        )
    return make_url(DEFAULT_URL)
