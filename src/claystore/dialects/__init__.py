"""What differs per database engine: one dialect class per engine behind a lazy registry.

:class:`Dialect` (:mod:`.base`) is the contract, :class:`~.sqlite.SQLiteDialect` and
:class:`~.postgresql.PostgreSQLDialect` fulfil it, :mod:`.registry` finds them, and
:mod:`.types` / :mod:`.indexes` build engine-independent table metadata from them.  Used by
the client, the ORM and the JSON-table datastore; imports nothing of them.
"""

from claystore.dialects.base import Dialect
from claystore.dialects.registry import (
    configured_url,
    dialect_class,
    dialect_classes,
    dialect_for,
    normalise_url,
)
from claystore.dialects.translate import translate_error

__all__ = [
    "Dialect",
    "configured_url",
    "dialect_class",
    "dialect_classes",
    "dialect_for",
    "normalise_url",
    "translate_error",
]
