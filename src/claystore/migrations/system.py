"""The system tables' (``dc_*``) schema version: created on first start, upgraded on later starts.

Owns :data:`SYSTEM_SCHEMA_VERSION` (the version this release writes), the ordered
:data:`UPGRADE_STEPS` from each earlier version to the next, and :func:`upgrade_system_schema`,
which the client runs inside its start transaction when a read of ``dc_schema`` finds the
tables missing or at another version (schema lock held: an advisory lock on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so two clients starting at once upgrade a database once, and a
failed step leaves it as it was (DDL is transactional on both engines).

The versions:

1. the 0.1.0 release: ``dc_backend``, ``dc_object``, ``dc_alias``, and no version recorded
   (early 0.1.0 databases also lack the index ``ix_dc_object_versions``);
2. ``dc_schema`` records the version (one row per component; claystore's is ``'claystore'``);
3. backends: ``dc_alias`` loses its foreign key to ``dc_object`` (an alias may name an object
   on another backend), and ``dc_move`` journals moves between backends;
4. two-phase commit: ``dc_commit`` records the units of work committed on several backends.

A new version adds one step at the end of :data:`UPGRADE_STEPS` and raises
:data:`SYSTEM_SCHEMA_VERSION`.  A step is a snapshot: it creates what its version had, written
out in the step (never the current definitions of :mod:`claystore.orm.system`, which later
versions change), so that the steps after it still apply.  The ``component`` and ``version``
columns of ``dc_schema`` are kept by every release, so that any release reads any database's
version.  A test checks that an upgraded database has the same tables as a new one.

Called by :mod:`claystore.client`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, SetColumnComment

from claystore.dialects.base import Dialect
from claystore.dialects.indexes import partial_index
from claystore.dialects.types import AwareDateTime
from claystore.errors import SchemaMismatchError, SchemaVersionError
from claystore.orm.system import dc_alias, dc_backend, dc_object, dc_schema, system_metadata

__all__ = [
    "COMPONENT",
    "SYSTEM_SCHEMA_VERSION",
    "UPGRADE_STEPS",
    "UpgradeStep",
    "read_system_version",
    "upgrade_system_schema",
]

#: The schema version of the system tables this release writes.
SYSTEM_SCHEMA_VERSION: Final = 4
#: claystore's row in ``dc_schema``.
COMPONENT: Final = "claystore"
#: The tables of version 1 (0.1.0), which recorded no version.
FIRST_RELEASE_TABLES: Final = (dc_backend.name, dc_object.name, dc_alias.name)


@attrs.frozen
class UpgradeStep:
    """One step of the system tables' schema, from ``from_version`` to ``to_version``:
    ``apply(conn, dialect)`` changes the tables in the caller's transaction."""

    from_version: int
    to_version: int
    apply: Callable[[Connection, Dialect], None]


def add_schema_table(conn: Connection, dialect: Dialect) -> None:
    """1 -> 2: create ``dc_schema``, and ``ix_dc_object_versions`` if the database lacks it."""
    del dialect
    version_2 = sa.MetaData()
    sa.Table(
        "dc_schema",
        version_2,
        sa.Column(
            "component", sa.String(50), primary_key=True, comment="'claystore': these tables"
        ),
        sa.Column(
            "version", sa.Integer, nullable=False, comment="the schema version of the tables"
        ),
        sa.Column("upgraded_at", AwareDateTime, nullable=False, comment="when it was last written"),
    ).create(conn)
    where = sa.text("original_id IS NOT NULL")
    versions = partial_index("ix_dc_object_versions", "id", where=where)
    sa.Table(  # the registry's columns the index needs
        "dc_object",
        version_2,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("original_id", sa.Uuid, nullable=True),
        versions,
    )
    if versions.name not in {index["name"] for index in sa.inspect(conn).get_indexes("dc_object")}:
        conn.execute(CreateIndex(versions))


def add_backends(conn: Connection, dialect: Dialect) -> None:
    """2 -> 3: ``dc_alias`` without its foreign key to ``dc_object`` (an alias may name an
    object on another backend), and the move journal ``dc_move``."""
    dialect.drop_foreign_keys(conn, "dc_alias")
    uuid_type = sa.Uuid().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE dc_backend ADD COLUMN store_id {uuid_type}")
    if conn.dialect.supports_comments:
        store = sa.Column(
            "store_id", sa.Uuid, comment="on a backend's own row: its store's default"
        )
        sa.Table("dc_backend", sa.MetaData(), store)
        conn.execute(SetColumnComment(store))
    version_3 = sa.MetaData()
    sa.Table(
        "dc_move",
        version_3,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("source_id", sa.Uuid, nullable=False, comment="the backend the rows leave"),
        sa.Column("target_id", sa.Uuid, nullable=False, comment="the backend the rows go to"),
        sa.Column("state", sa.String(20), nullable=False, comment="copying, switching or undoing"),
        sa.Column("object_ids", sa.Text, nullable=False, comment="JSON list of the ids moved"),
        sa.Column("tables", sa.Text, nullable=False, comment="JSON [[table, key column], ...]"),
        sa.Column("owner", sa.String(300), nullable=False, comment="host:pid:start of the mover"),
        sa.Column("started_at", AwareDateTime, nullable=False),
        sa.Column("updated_at", AwareDateTime, nullable=False),
    ).create(conn)


def add_commit_records(conn: Connection, dialect: Dialect) -> None:
    """3 -> 4: ``dc_commit``, the records of two-phase commits across backends."""
    del dialect
    version_4 = sa.MetaData()
    sa.Table(
        "dc_commit",
        version_4,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "state", sa.String(20), nullable=False, comment="preparing, committing or aborting"
        ),
        sa.Column("participants", sa.Text, nullable=False, comment="JSON [[backend id, gid], ...]"),
        sa.Column(
            "owner", sa.String(300), nullable=False, comment="host:pid:start of the committer"
        ),
        sa.Column("created_at", AwareDateTime, nullable=False),
        sa.Column("updated_at", AwareDateTime, nullable=False),
    ).create(conn)


#: Every step, in order: each one's ``to_version`` is the next one's ``from_version``, and the
#: last one's is :data:`SYSTEM_SCHEMA_VERSION`.
UPGRADE_STEPS: Final[tuple[UpgradeStep, ...]] = (
    UpgradeStep(1, 2, add_schema_table),
    UpgradeStep(2, 3, add_backends),
    UpgradeStep(3, 4, add_commit_records),
)


def read_system_version(conn: Connection) -> int | None:
    """The schema version ``dc_schema`` records for claystore, None when it has no such row
    (the table must exist)."""
    found = conn.execute(
        sa.select(dc_schema.c.version).where(dc_schema.c.component == COMPONENT)
    ).scalar()
    return None if found is None else int(found)


def upgrade_system_schema(conn: Connection, dialect: Dialect) -> None:
    """Create the system tables on a new database, or upgrade them to
    :data:`SYSTEM_SCHEMA_VERSION` (in the caller's transaction, schema lock held).

    On a database already at this version, two reads and nothing written.  Raises
    :class:`~claystore.errors.SchemaVersionError`, writing nothing, for a database written by
    a newer claystore.
    """
    inspector = sa.inspect(conn)
    if inspector.has_table(dc_schema.name):
        version = read_system_version(conn)
        if version is None:
            msg = (
                f"the {dc_schema.name} table of the {dialect.describe()} has no row for"
                f" {COMPONENT!r}, so the version of claystore's system tables is unknown: it was"
                " changed outside claystore; restore the database from a backup"
            )
            raise SchemaMismatchError(msg)
        if version == SYSTEM_SCHEMA_VERSION:
            return
        if version > SYSTEM_SCHEMA_VERSION:
            msg = (
                f"the system tables of the {dialect.describe()} are at schema version {version},"
                f" written by a newer claystore; this release knows versions up to"
                f" {SYSTEM_SCHEMA_VERSION}: upgrade claystore to a release that knows system"
                f" schema version {version}"
            )
            raise SchemaVersionError(msg)
        run_upgrade_steps(conn, dialect, version)
        record_version(conn, is_new=False)
        return
    present = set(FIRST_RELEASE_TABLES).intersection(inspector.get_table_names())
    if not present:  # a new database
        system_metadata.create_all(conn, checkfirst=False)
    elif present == set(FIRST_RELEASE_TABLES):  # 0.1.0
        run_upgrade_steps(conn, dialect, 1)
    else:
        missing = ", ".join(sorted(set(FIRST_RELEASE_TABLES) - present))
        msg = (
            f"the {dialect.describe()} has some of claystore's system tables"
            f" ({', '.join(sorted(present))}) but not {missing}: they were changed outside"
            " claystore; restore the database from a backup, or start on an empty database"
        )
        raise SchemaMismatchError(msg)
    record_version(conn, is_new=True)


def run_upgrade_steps(conn: Connection, dialect: Dialect, version: int) -> None:
    """Apply, in order, the steps from ``version`` to :data:`SYSTEM_SCHEMA_VERSION`."""
    for step in UPGRADE_STEPS:
        if step.from_version >= version:
            step.apply(conn, dialect)


def record_version(conn: Connection, *, is_new: bool) -> None:
    """Write :data:`SYSTEM_SCHEMA_VERSION` into claystore's ``dc_schema`` row (``is_new``: the
    row does not exist yet)."""
    values = {"version": SYSTEM_SCHEMA_VERSION, "upgraded_at": dt.datetime.now(dt.UTC)}
    if is_new:
        conn.execute(sa.insert(dc_schema).values(component=COMPONENT, **values))
    else:
        conn.execute(
            sa.update(dc_schema).where(dc_schema.c.component == COMPONENT).values(**values)
        )
