"""The system tables' (``dc_*``) schema: created on first start, upgraded on later starts.

Owns :func:`upgrade_system_schema`, which the client runs at every start inside its start
transaction (schema lock held).

Called by :mod:`claystore.client`.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex

from claystore.dialects.base import Dialect
from claystore.orm.system import system_metadata

__all__ = ["upgrade_system_schema"]


def upgrade_system_schema(conn: Connection, dialect: Dialect) -> None:
    """Create the system tables, or upgrade them to this release's schema (in the caller's
    transaction, schema lock held)."""
    del dialect
    system_metadata.create_all(conn, checkfirst=True)
    for table in system_metadata.sorted_tables:  # indexes added since a table was made
        for index in table.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))
