"""The system tables (``dc_*``): backends, the object registry, aliases.

Owns their definitions in :data:`system_metadata` (kept apart from the model classes'
:data:`claystore.orm.mapping.metadata`, so alembic autogenerate on user models never proposes
changes to claystore's own tables).

- ``dc_backend``: one row per backend (database).  The metadata database is the default one.
- ``dc_object``: one row per persistent object: class (its table name), dataset, the backend
  holding its row, and version lineage (original, parent, parent's row version at branch time).
- ``dc_alias``: aliases, unique per dataset (in the metadata database only: an alias may name
  an object on any backend, so it has no foreign key to ``dc_object``).
- ``dc_move``: the journal of moves between backends (metadata database only): one row per
  move under way, removed when it is done; what the next start finishes or undoes after a
  crash (:mod:`claystore.orm.moving`).
- ``dc_commit``: the records of two-phase commits across backends (metadata database only):
  one row per unit of work being committed on several backends, with its state
  (``preparing``, ``committing`` -- the decision -- or ``aborting``), its participants
  (backend and gid of each prepared transaction) and its owner process; removed when every
  participant has ended; what the next start resolves in-doubt transactions by
  (:mod:`claystore.orm.twophase`).

Every backend database has these tables; ``dc_object`` of a backend holds the registry rows
of the objects whose rows it holds, next to those rows.  ``dc_backend`` of the metadata
database lists every backend; that of another backend holds one row: itself (``url`` NULL,
``is_default`` false), which marks the database as a backend of some store.
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
    sa.Column(
        "store_id", sa.Uuid, nullable=True, comment="on a backend's own row: its store's default"
    ),
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
    sa.Column("object_id", sa.Uuid, nullable=False),
    sa.Index("ix_dc_alias_object_id", "object_id"),
)

dc_move = sa.Table(
    "dc_move",
    system_metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("source_id", sa.Uuid, nullable=False, comment="the backend the rows leave"),
    sa.Column("target_id", sa.Uuid, nullable=False, comment="the backend the rows go to"),
    sa.Column("state", sa.String(20), nullable=False, comment="copying, switching or undoing"),
    sa.Column("object_ids", sa.Text, nullable=False, comment="JSON list of the ids moved"),
    sa.Column("tables", sa.Text, nullable=False, comment="JSON [[table, key column], ...]"),
    sa.Column("owner", sa.String(300), nullable=False, comment="host:pid:start of the mover"),
    sa.Column("started_at", AwareDateTime, nullable=False),
    sa.Column("updated_at", AwareDateTime, nullable=False),
)

dc_commit = sa.Table(
    "dc_commit",
    system_metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("state", sa.String(20), nullable=False, comment="preparing, committing or aborting"),
    sa.Column("participants", sa.Text, nullable=False, comment="JSON [[backend id, gid], ...]"),
    sa.Column("owner", sa.String(300), nullable=False, comment="host:pid:start of the committer"),
    sa.Column("created_at", AwareDateTime, nullable=False),
    sa.Column("updated_at", AwareDateTime, nullable=False),
)

dc_schema = sa.Table(
    "dc_schema",
    system_metadata,
    sa.Column("component", sa.String(50), primary_key=True, comment="'claystore': these tables"),
    sa.Column("version", sa.Integer, nullable=False, comment="the schema version of the tables"),
    sa.Column("upgraded_at", AwareDateTime, nullable=False, comment="when it was last written"),
)
