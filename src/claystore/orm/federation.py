"""SQL reporting across backends: one view per model class over every backend's objects.

Owns :func:`federate` (behind ``client.federate()`` and ``claystore backends federate``) and
its result, :class:`FederationReport`.  In the metadata database (PostgreSQL), in one
transaction that replaces what an earlier federation of the store made:

- the extension ``postgres_fdw``;
- for each other PostgreSQL backend: a foreign server ``claystore_<backend id, hex>`` with a
  user mapping for the current role (host, port, database, user and password of the
  backend's URL), and a schema ``claystore_fdw_<backend id, hex>`` of foreign tables imported
  from the backend's schema: its registry (``dc_object``), class tables and link tables, with
  their columns as they are there;
- in schema :data:`VIEW_SCHEMA` (``claystore_all``), for each model class whose tables exist
  somewhere, a view named as its table: ``id``, every column field of the class (inherited ones
  too), ``dc_class`` (the object's concrete class's table), ``dc_dataset`` and ``dc_backend``
  (the backend's name); the rows are the metadata database's tables UNION ALL each backend's
  foreign tables.  Like a class query (``Employee.dc_query()``) it shows every object of the
  class and of its subclasses, and leaves out versions (working copies) and the copies of a
  move under way: a backend contributes the objects whose registry row there names it
  (at home there).  For each link table (a list of references) a view with its columns
  (``owner_id``, ``position`` or ``key``, ``target_id``) and ``dc_backend``, under the same
  rule for the owner.

A backend that lacks a class's tables holds no object of it and is left out of that view; one
whose table lacks a column of the class (its tables were not upgraded) makes the federation
fail, naming the backend, table and columns.  SQLite backends cannot be reached by
``postgres_fdw``: they are skipped (:attr:`FederationReport.skipped`).  The statements are the
metadata database's dialect's (:meth:`~claystore.dialects.base.Dialect.federation`, which
refuses on SQLite).

Called by :class:`claystore.client.Client`.  Uses the router (the backends' databases) and the
model registry (:mod:`claystore.orm.mapping`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.dialects.federation import Federation, ForeignSource
from claystore.errors import FederationError
from claystore.orm import backends, mapping
from claystore.orm.mapping import ModelInfo
from claystore.orm.routing import Router
from claystore.orm.system import dc_object

__all__ = [
    "VIEW_SCHEMA",
    "FederatedBackend",
    "FederationReport",
    "SkippedBackend",
    "federate",
    "foreign_schema_name",
    "server_name",
]

#: The schema of the views over every backend.
VIEW_SCHEMA = "claystore_all"
#: How the comments of the objects a federation makes begin (how the next one finds them).
MARKER = "claystore federation"


def server_name(backend_id: UUID) -> str:
    """The foreign server of a backend: ``claystore_<id hex>`` (stable across federations)."""
    return f"claystore_{backend_id.hex}"


def foreign_schema_name(backend_id: UUID) -> str:
    """The schema of a backend's foreign tables: ``claystore_fdw_<id hex>``."""
    return f"claystore_fdw_{backend_id.hex}"


@attrs.frozen
class FederatedBackend:
    """A backend whose objects the views show."""

    id: UUID
    name: str
    #: its foreign server; None for the metadata database (its tables are read directly)
    server: str | None
    #: the schema, in the metadata database, of its tables (foreign tables for the others)
    schema: str
    #: the tables of model classes (and its registry) found there
    tables: tuple[str, ...]


@attrs.frozen
class SkippedBackend:
    """A backend whose objects the views cannot show, and why."""

    id: UUID
    name: str
    reason: str


@attrs.frozen
class FederationReport:
    """What :func:`federate` set up in the metadata database."""

    #: the schema of the views (``claystore_all``)
    schema: str
    #: the backends the views read, the metadata database first
    backends: tuple[FederatedBackend, ...]
    #: the views made, by name (in :attr:`schema`): model classes' tables, then link tables
    views: tuple[str, ...]
    #: the backends left out (SQLite)
    skipped: tuple[SkippedBackend, ...]

    @property
    def servers(self) -> list[str]:
        """The foreign servers made, one per backend read through ``postgres_fdw``."""
        return [b.server for b in self.backends if b.server is not None]

    @property
    def foreign_tables(self) -> list[str]:
        """The foreign tables made, schema-qualified."""
        return [f"{b.schema}.{t}" for b in self.backends if b.server is not None for t in b.tables]


@attrs.frozen
class _Source:
    """One backend as the views read it: where its tables are, which columns they have."""

    id: UUID
    name: str
    schema: str
    columns: dict[str, set[str]]

    def has(self, tables: Iterable[str]) -> bool:
        return all(t in self.columns for t in tables)


def federate(router: Router, classes: Iterable[ModelInfo] | None = None) -> FederationReport:
    """Set up (or set up again) the views of :data:`VIEW_SCHEMA` over every backend of the
    store of ``router``, for ``classes`` (default: every model class defined); see the module
    docstring.  All or nothing: raises :class:`FederationError` (SQLite metadata database, no
    ``postgres_fdw``, a backend unreachable from the metadata database's server, a backend
    whose tables lag behind the classes) with nothing changed."""
    infos = list(mapping.models() if classes is None else classes)
    metadata = router.metadata
    router.refresh()
    names = {
        backend_id: info.name
        for backend_id, info in metadata.read(lambda c: backends.list_backends(c, "")).items()
    }
    conn = metadata.open_write()
    try:
        statements = metadata.dialect.federation(conn)  # refuses an engine without federation
        remotes, skipped = _remote_sources(router, names)
        metadata.dialect.lock_schema(conn)  # one federation (or DDL) at a time
        report = _replace(statements, router.metadata_id, names, remotes, skipped, infos)
        conn.commit()
    except sa.exc.SQLAlchemyError as exc:
        conn.rollback()
        raise metadata.translate(exc) from None
    except BaseException:
        conn.rollback()
        raise
    finally:
        metadata.close_write(conn)
    return report


def _remote_sources(
    router: Router, names: dict[UUID, str]
) -> tuple[list[tuple[UUID, ForeignSource]], list[SkippedBackend]]:
    """How the metadata database's server reaches each other backend, and the backends it
    cannot reach (their engine has no foreign source)."""
    remotes: list[tuple[UUID, ForeignSource]] = []
    skipped: list[SkippedBackend] = []
    for backend_id in router.known()[1:]:
        database = router.database(backend_id)
        source = database.read(database.dialect.foreign_source)
        if source is None:
            reason = (
                f"a {database.dialect.title} database: postgres_fdw reaches PostgreSQL "
                "databases only, so its objects are not in the views"
            )
            skipped.append(SkippedBackend(backend_id, names[backend_id], reason))
        else:
            remotes.append((backend_id, source))
    return remotes, skipped


def _replace(  # noqa: PLR0917 - a private step of federate(), called once
    statements: Federation,
    store_id: UUID,
    names: dict[UUID, str],
    remotes: list[tuple[UUID, ForeignSource]],
    skipped: list[SkippedBackend],
    infos: list[ModelInfo],
) -> FederationReport:
    """Drop what the last federation made, make it again (in the caller's transaction)."""
    statements.ensure_extension()
    owned = f"{MARKER} of store {store_id}: "
    statements.drop_views(VIEW_SCHEMA, statements.owned_views(VIEW_SCHEMA, MARKER))
    for server in statements.owned_servers(owned):
        statements.drop_server(server)
    for schema in statements.owned_schemas(owned):
        statements.drop_schema(schema)
    statements.ensure_schema(
        VIEW_SCHEMA,
        f"{MARKER}: the objects of every backend of store {store_id}, one view per model "
        "class (remade by claystore backends federate)",
    )
    wanted = {dc_object.name}
    for info in infos:
        wanted.add(info.tablename)
        wanted.update(table.name for table in info.link_tables.values())
    local_schema = statements.current_schema()
    sources = [_Source(store_id, names[store_id], local_schema, statements.columns(local_schema))]
    federated: list[tuple[str | None, str]] = [(None, local_schema)]
    for backend_id, source in remotes:
        name = names[backend_id]
        server, schema = server_name(backend_id), foreign_schema_name(backend_id)
        comment = f"{owned}backend {name!r} ({backend_id})"
        statements.create_server(server, source, comment)
        statements.ensure_schema(schema, comment)
        statements.import_tables(server, source, schema, wanted, f"backend {name!r}")
        sources.append(_Source(backend_id, name, schema, statements.columns(schema)))
        federated.append((server, schema))
    sources = [attrs.evolve(s, columns=_only(s.columns, wanted)) for s in sources]
    _refuse_missing_columns(sources, infos)
    views = _create_views(statements, sources, infos)
    return FederationReport(
        VIEW_SCHEMA,
        tuple(
            FederatedBackend(s.id, s.name, server, schema, tuple(sorted(s.columns)))
            for s, (server, schema) in zip(sources, federated, strict=True)
        ),
        tuple(views),
        tuple(skipped),
    )


def _only(columns: dict[str, set[str]], tables: set[str]) -> dict[str, set[str]]:
    return {table: found for table, found in columns.items() if table in tables}


def _class_columns(info: ModelInfo) -> list[str]:
    """The columns a class's own table must have (system columns, then its fields')."""
    system = ["id", "dc_class"] if info.parent is None else ["id"]
    return system + [f.column_name for f in info.own_fields if not f.kind.is_link]


def _link_tables(infos: list[ModelInfo]) -> list[tuple[ModelInfo, sa.Table]]:
    return [(info, table) for info in infos for table in info.link_tables.values()]


def _refuse_missing_columns(sources: list[_Source], infos: list[ModelInfo]) -> None:
    """Raise :class:`FederationError` naming every table that lacks columns of its class on a
    backend that has it (rather than show NULL where a value is stored)."""
    required = {info.tablename: _class_columns(info) for info in infos}
    required.update(
        {table.name: [c.name for c in table.columns] for _, table in _link_tables(infos)}
    )
    required[dc_object.name] = ["id", "dataset", "backend_id", "original_id"]
    lacking = [
        f"backend {source.name!r}: table {table} has no column {', '.join(missing)}"
        for source in sources
        for table, found in sorted(source.columns.items())
        if (missing := [c for c in required.get(table, []) if c not in found])
    ]
    if lacking:
        msg = (
            f"the tables of some backends lag behind the model classes ({'; '.join(lacking)}):"
            " upgrade them (`claystore db upgrade`, or start a client with schema='evolve'), "
            "then federate again"
        )
        raise FederationError(msg)


def _registry(source: _Source) -> Any:
    return sa.table(
        dc_object.name,
        *(sa.column(c) for c in ("id", "dataset", "backend_id", "original_id")),
        schema=source.schema,
    )


def _at_home(registry: Any, source: _Source) -> list[sa.ColumnElement[bool]]:
    """The registry rows of objects at home on ``source`` that are not versions."""
    return [
        registry.c.backend_id == sa.cast(sa.literal(str(source.id)), sa.Uuid),
        registry.c.original_id.is_(None),
    ]


def _backend_name(source: _Source) -> sa.ColumnElement[Any]:
    return sa.cast(sa.literal(source.name), sa.Text).label("dc_backend")


def _class_branch(info: ModelInfo, source: _Source) -> sa.Select[Any]:
    """The objects of ``info``'s class (and subclasses) at home on ``source``."""
    tables = {
        h.tablename: sa.table(
            h.tablename, *(sa.column(c) for c in _class_columns(h)), schema=source.schema
        )
        for h in info.hierarchy
    }
    root = tables[info.root.tablename]
    joined: Any = root
    for h in info.hierarchy[1:]:
        joined = joined.join(tables[h.tablename], tables[h.tablename].c.id == root.c.id)
    registry = _registry(source)
    joined = joined.join(registry, registry.c.id == root.c.id)
    fields = [tables[info.table_of(f).name].c[f.column_name] for f in info.column_fields]
    columns = [
        root.c.id,
        *fields,
        root.c.dc_class,
        registry.c.dataset.label("dc_dataset"),
        _backend_name(source),
    ]
    return sa.select(*columns).select_from(joined).where(*_at_home(registry, source))


def _link_branch(table: sa.Table, source: _Source) -> sa.Select[Any]:
    """The rows of a link table whose owner is at home on ``source``."""
    link = sa.table(table.name, *(sa.column(c.name) for c in table.columns), schema=source.schema)
    registry = _registry(source)
    joined = link.join(registry, registry.c.id == link.c.owner_id)
    columns = [*(link.c[c.name] for c in table.columns), _backend_name(source)]
    return sa.select(*columns).select_from(joined).where(*_at_home(registry, source))


def _create_views(
    statements: Federation, sources: list[_Source], infos: list[ModelInfo]
) -> list[str]:
    """One view per class and per link table that some backend has; their names."""
    made: list[str] = []
    for info in infos:
        tables = [h.tablename for h in info.hierarchy]
        branches = [_class_branch(info, s) for s in sources if s.has([*tables, dc_object.name])]
        if branches:
            label = f"model class {info.cls.__qualname__}"
            comment = (
                f"{MARKER}: the objects of {info.cls.__module__}.{info.cls.__qualname__} (and "
                "its subclasses) on every backend, versions left out"
            )
            statements.create_view(
                VIEW_SCHEMA, info.tablename, sa.union_all(*branches), comment, label
            )
            made.append(info.tablename)
    for info, table in _link_tables(infos):
        branches = [_link_branch(table, s) for s in sources if s.has([table.name, dc_object.name])]
        if branches:
            label = f"the link table of {info.cls.__qualname__}"
            comment = f"{MARKER}: {table.comment or table.name}, on every backend"
            statements.create_view(VIEW_SCHEMA, table.name, sa.union_all(*branches), comment, label)
            made.append(table.name)
    return made
