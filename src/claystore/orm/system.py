"""The system tables (``dc_*``): backends, the object registry, aliases.

Owns their definitions in :data:`system_metadata` (kept apart from the model classes'
:data:`claystore.orm.mapping.metadata`, so alembic autogenerate on user models never proposes
changes to claystore's own tables).

- ``dc_backend``: one row per backend (database).  The metadata database is the default one.
- ``dc_object``: one row per persistent object: class (its table name), dataset, the backend
  holding its row, and version lineage (original, parent, parent's row version at branch time).
- ``dc_alias``: aliases, unique per dataset.
- ``dc_schema``: the schema version of the system tables, one row per component (claystore's
  own row: ``component = 'claystore'``); read and upgraded by :mod:`claystore.migrations.system`.

Called by the persistence, loading and alias modules, and by :mod:`claystore.migrations.system`
at the client's start.  No I/O here.
"""

from __future__ import annotations

import sqlalchemy as sa

from claystore.dialects.indexes import partial_index
from claystore.dialects.types import AwareDateTime

system_metadata = sa.MetaData()

SYSTEM_TABLE_PREFIX = "dc_"

dc_backend = sa.Table(
    "dc_backend",
    system_metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("url", sa.String, nullable=True, comment="NULL: the metadata database itself"),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
)

dc_object = sa.Table(
    "dc_object",
    system_metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("class_name", sa.String(200), nullable=False, comment="table of the object's class"),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("backend_id", sa.Uuid, nullable=False),
    sa.Column("original_id", sa.Uuid, nullable=True, comment="set on versions: the original"),
    sa.Column("parent_id", sa.Uuid, nullable=True, comment="set on versions: the parent"),
    sa.Column("parent_version", sa.BigInteger, nullable=True, comment="parent's dc_version"),
    sa.Index("ix_dc_object_original_id", "original_id"),
    sa.Index("ix_dc_object_parent_id", "parent_id"),
    # the few version rows, which every class query leaves out (``id NOT IN (versions)``):
    # without it SQLite scans the whole registry for each query unless ANALYZE has run
    partial_index("ix_dc_object_versions", "id", where=sa.text("original_id IS NOT NULL")),
)

dc_alias = sa.Table(
    "dc_alias",
    system_metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(500), primary_key=True),
    sa.Column(
        "object_id",
        sa.Uuid,
        sa.ForeignKey("dc_object.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Index("ix_dc_alias_object_id", "object_id"),
)

dc_schema = sa.Table(
    "dc_schema",
    system_metadata,
    sa.Column("component", sa.String(50), primary_key=True, comment="'claystore': these tables"),
    sa.Column("version", sa.Integer, nullable=False, comment="the schema version of the tables"),
    sa.Column("upgraded_at", AwareDateTime, nullable=False, comment="when it was last written"),
)
