"""Storage sizes of a store: the space its tables take on every backend, or one class's.

Owns :func:`calculate` (what :meth:`Client.calculate_storage_size
<claystore.client.Client.calculate_storage_size>` runs): which tables are the store's or a
class's, measured on each backend by the engine (:mod:`claystore.dialects.storage`), added up
into a :class:`~claystore.housekeeping.report.StorageSize` (``.bytes``, ``.human``,
``.backends``: backend name -> bytes, ``.tables``: backend name -> table name -> bytes).

What is counted
---------------
Every size is of a table *with its indexes* (and, on PostgreSQL, its TOAST table), as the
engine allocates them: whole pages, free space inside pages included.

- **The whole store**: on every backend (the metadata database and every added one), every
  table of claystore's there: the system tables (``dc_*``: registry, aliases, backends, moves,
  commits, schema version), the tables of every model class a loaded module defines (class
  tables and link tables), and the table of every class the registry names that no loaded
  module defines.
- **One class** (a model class, its name or its table's name): on every backend, its table,
  its subclasses' tables, its and their link tables, with their indexes, plus its share of
  the registry: the size of ``dc_object`` (with its indexes) times the class's registry rows
  (its objects, its subclasses' and their versions) over all the registry rows of that
  backend (``.tables[backend]["dc_object"]``).

What is not counted
-------------------
- Tables that are not claystore's (another application's, alembic's ``alembic_version``),
  and the link tables of classes no loaded module defines (their names are not known).
- For one class: the rows its subclasses' objects hold in its parent classes' tables (they
  count with the parent), its aliases (``dc_alias``) and the other system tables.
- PostgreSQL: the catalog, the write-ahead log, other schemas (tests and several stores may
  share a database, one schema each: only the connection's current schema is measured).
- SQLite: the free pages of the file (after deletes, until ``VACUUM``), and the ``-wal`` file
  as a file (its pages count as the tables they belong to).

SQLite without ``dbstat`` (a library built without ``SQLITE_ENABLE_DBSTAT_VTAB``): a table's
size is unknown there.  The whole store's size is then the database file
(``page_count`` x ``page_size``: every table in it, claystore's or not, SQLite's schema table
and the free pages: an upper bound), and ``.tables`` has no entry for that backend; the size of
one class is refused (:class:`~claystore.errors.ConfigurationError`), not estimated.

Called by the client; reads through the router, writes nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from claystore.dialects.storage import Storage
from claystore.housekeeping.report import StorageSize
from claystore.housekeeping.run import registered_backends, resolve_collection
from claystore.orm import mapping
from claystore.orm.database import Database
from claystore.orm.mapping import ModelInfo
from claystore.orm.routing import Router
from claystore.orm.system import SYSTEM_TABLE_PREFIX, dc_object

__all__ = ["REGISTRY_TABLE", "calculate", "class_tables"]

#: The key of a class's share of the registry in :attr:`StorageSize.tables`.
REGISTRY_TABLE = dc_object.name

#: What one backend measured: its bytes, and the bytes per table (None: only the whole
#: database is known).
Measured = tuple[int, dict[str, int] | None]


def calculate(router: Router, collection: Any = None) -> StorageSize:
    """The size of the whole store (``collection`` None) or of one class, on every backend
    (see the module docstring for what is counted).  Raises ConfigurationError for a
    ``collection`` that names no model class, and DatabaseConnectionError when a backend does
    not answer (a size is never silently partial)."""
    chosen = resolve_collection(collection)
    backends = registered_backends(router)
    per_backend: dict[str, int] = {}
    per_table: dict[str, dict[str, int]] = {}
    for backend_id, info in backends.items():
        size, tables = _measure(router.database(backend_id), chosen)
        per_backend[info.name] = size
        if tables is not None:
            per_table[info.name] = tables
    return StorageSize(bytes=sum(per_backend.values()), backends=per_backend, tables=per_table)


def class_tables(info: ModelInfo) -> set[str]:
    """The tables of a class: its own, its subclasses', and their link tables."""
    return {
        table.name
        for each in mapping.iter_subclass_infos(info)
        for table in (each.table, *each.link_tables.values())
    }


def _measure(database: Database, chosen: ModelInfo | None) -> Measured:
    """What one backend's database measures, in one short read."""

    def run(conn: Connection) -> Measured:
        storage = database.dialect.storage(conn)
        if chosen is None:
            return _measure_store(conn, storage)
        return _measure_class(conn, storage, chosen)

    return database.read(run)


def _measure_store(conn: Connection, storage: Storage) -> Measured:
    """Every claystore table of one backend; the whole file where tables cannot be measured."""
    if not storage.can_measure_tables:
        return storage.database_size(), None
    existing = set(storage.table_names())
    ours = {
        name
        for name in existing
        if name.startswith(SYSTEM_TABLE_PREFIX) or name in mapping.metadata.tables
    }
    unknown = existing - ours
    if unknown and dc_object.name in existing:  # tables of classes no loaded module defines
        named = sa.select(dc_object.c.class_name).where(dc_object.c.class_name.in_(sorted(unknown)))
        ours.update(conn.execute(named.distinct()).scalars())
    sizes = storage.table_sizes(ours)
    return sum(sizes.values()), dict(sorted(sizes.items()))


def _measure_class(conn: Connection, storage: Storage, chosen: ModelInfo) -> Measured:
    """A class's tables on one backend and its share of the registry there."""
    tables = class_tables(chosen)
    sizes = storage.table_sizes(tables | {REGISTRY_TABLE})
    registry = sizes.pop(REGISTRY_TABLE, None)
    if registry is not None:
        names = sorted(each.tablename for each in mapping.iter_subclass_infos(chosen))
        is_class = dc_object.c.class_name.in_(names)
        counts = sa.select(sa.func.count(sa.case((is_class, 1))), sa.func.count())
        class_rows, all_rows = conn.execute(counts.select_from(dc_object)).one()
        sizes[REGISTRY_TABLE] = registry * int(class_rows) // int(all_rows) if all_rows else 0
    return sum(sizes.values()), dict(sorted(sizes.items()))
