"""Identifiers that every supported engine accepts.

Owns the identifier limit of the strictest supported engine (PostgreSQL: 63 bytes), the
prefixes engines and claystore keep for themselves, and :func:`fit_identifier`, which shortens
a generated name deterministically (a readable prefix and a short hash of the whole name) so
that long class and field names always work and always give the same table, column and index
names.

Called by :mod:`claystore.orm.fields` and :mod:`claystore.orm.mapping` when a class is
defined, and by the SQL datastore for its table's name.  No I/O.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "MAX_IDENTIFIER_BYTES",
    "RESERVED_TABLE_PREFIXES",
    "fit_identifier",
    "fits",
    "reserved_prefix",
]

#: The longest identifier every supported engine keeps as written (PostgreSQL's NAMEDATALEN-1).
MAX_IDENTIFIER_BYTES = 63

#: Table-name prefixes an engine (``sqlite_``, ``pg_``) or claystore (``dc_``) reserves.
RESERVED_TABLE_PREFIXES = ("sqlite_", "pg_", "dc_")

_HASH_CHARS = 8


def reserved_prefix(table: str) -> str | None:
    """The reserved prefix (:data:`RESERVED_TABLE_PREFIXES`) ``table`` starts with, in any
    letter case, or None."""
    lowered = table.lower()
    return next((p for p in RESERVED_TABLE_PREFIXES if lowered.startswith(p)), None)


def fits(name: str) -> bool:
    """True when ``name`` is short enough for every engine."""
    return len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES


def fit_identifier(name: str) -> str:
    """``name`` itself when it fits, else its longest prefix that leaves room for ``_`` and
    8 hex digits of the name's SHA-1 (the same name always gives the same identifier)."""
    if fits(name):
        return name
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:_HASH_CHARS]
    room = MAX_IDENTIFIER_BYTES - _HASH_CHARS - 1
    prefix = name.encode("utf-8")[:room].decode("utf-8", errors="ignore").rstrip("_")
    return f"{prefix}_{digest}"
