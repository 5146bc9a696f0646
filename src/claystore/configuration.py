"""Where a client's data lives and how long it waits: URL and lock-timeout configuration.

Owns :func:`resolve_url` (a URL argument; else dataClay-style ``host``/``port``/... arguments,
which mean PostgreSQL; else the ``DC_*`` environment; else ``sqlite:///claystore.db``) and
:func:`check_lock_timeout` with its bounds.

Called by :class:`claystore.client.Client` and the ``claystore`` command (``--url``).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL

from claystore.dialects import dialect_class
from claystore.dialects.registry import configured_url, parse_url
from claystore.errors import ConfigurationError

__all__ = ["MAX_LOCK_TIMEOUT", "MIN_LOCK_TIMEOUT", "check_lock_timeout", "resolve_url"]

#: The bounds of ``lock_timeout`` in seconds: 1 ms (PostgreSQL reads 0 as "wait forever"), and
#: the longest wait both engines count in milliseconds (a signed 32-bit number).
MIN_LOCK_TIMEOUT = 0.001
MAX_LOCK_TIMEOUT = 2_147_483.0


def _postgres_url(
    host: str,
    port: Any,
    username: str | None,
    password: str | None,
    database: str | None,
) -> URL:
    """The PostgreSQL URL of dataClay-style arguments (the port defaults to 5432)."""
    return dialect_class("postgresql").server_url(host, port, username, password, database)


def resolve_url(
    url: str | URL | None,
    *,
    host: str | None,
    port: Any,
    username: str | None,
    password: str | None,
    database: str | None,
    environ: Mapping[str, str],
) -> URL:
    """The database URL from arguments, then environment, then the default."""
    if url is not None and (host is not None or port is not None):
        msg = "give either a URL or host/port arguments, not both"
        raise ConfigurationError(msg)
    if url is not None:
        if not isinstance(url, str | URL):
            msg = f"url must be a str or an sqlalchemy URL, not {type(url).__name__}"
            raise ConfigurationError(msg)
        return parse_url(url)
    if host is not None:
        return _postgres_url(host, port, username, password, database)
    return configured_url(
        environ, port=port, username=username, password=password, database=database
    )


def check_lock_timeout(value: object) -> float:
    """``value`` as seconds to wait for a lock; raises ConfigurationError unless it is a
    number from :data:`MIN_LOCK_TIMEOUT` to :data:`MAX_LOCK_TIMEOUT`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"lock_timeout must be a number of seconds (such as 30), not {value!r}"
        raise ConfigurationError(msg)
    seconds = float(value)
    if not MIN_LOCK_TIMEOUT <= seconds <= MAX_LOCK_TIMEOUT:  # NaN too
        msg = (
            f"lock_timeout must be from {MIN_LOCK_TIMEOUT:g} to {MAX_LOCK_TIMEOUT:.0f} seconds "
            f"(about 24 days), not {value!r}"
        )
        raise ConfigurationError(msg)
    return seconds
