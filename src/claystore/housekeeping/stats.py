"""The classes a store holds objects of, how many of each, and its system schema version.

Owns :func:`class_stats` (what :meth:`Client.stats <claystore.client.Client.stats>` and ``for
cls in client`` run) and :func:`meta_version` (``client.meta_version``).

The counts come from the registry (``dc_object``), which every backend keeps for the objects
whose rows it holds: one grouped query per backend gives, per class (its table name), the
objects (rows without ``original_id``) and the versions (rows with it).  Aliases live in the
metadata database only (``dc_alias``) and may name objects on any backend: those whose object
is in the metadata database's registry are counted by one grouped join there; the others are
read in pages of object ids (with how many aliases each has) and looked up on the other
backends, so memory stays bounded whatever their number.  An alias to no object is not counted
(the integrity check reports it).

A class name the registry holds that no loaded module defines is listed with ``cls`` None and
its table name as its name.

Called by the client; reads through the router, writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from claystore.errors import SchemaVersionError
from claystore.housekeeping.report import ClassStats
from claystore.housekeeping.run import registered_backends
from claystore.migrations.system import COMPONENT, read_system_version
from claystore.orm import backends as backend_registry
from claystore.orm import mapping
from claystore.orm.routing import Router
from claystore.orm.system import dc_alias, dc_object

__all__ = ["ALIAS_PAGE", "class_stats", "meta_version", "stored_classes"]

#: Object ids read per page when counting the aliases of objects on other backends.
ALIAS_PAGE = 5_000


@attrs.define
class _Counts:
    """What the registries hold of one class (its table name)."""

    objects: int = 0
    versions: int = 0
    aliases: int = 0
    backends: dict[str, int] = attrs.field(factory=dict)


def class_stats(router: Router, *, alias_page: int = ALIAS_PAGE) -> list[ClassStats]:
    """Every class the store holds objects (or versions) of, over every backend, sorted by
    class name (see the module docstring).  Raises DatabaseConnectionError when a backend does
    not answer."""
    backends = registered_backends(router)
    counts = _registry_totals(router, backends)
    others = [backend_id for backend_id in backends if backend_id != router.metadata_id]
    for table, aliases in _alias_counts(router, others, alias_page):
        counts.setdefault(table, _Counts()).aliases += aliases
    found = [_class_stats(table, entry) for table, entry in counts.items()]
    return sorted(found, key=lambda entry: (entry.name, entry.table))


def stored_classes(router: Router) -> list[type]:
    """The model classes the store holds objects (or versions) of, sorted by name: the
    registries' counts alone (no alias is counted)."""
    counts = _registry_totals(router, registered_backends(router))
    found = [_class_stats(table, entry) for table, entry in counts.items()]
    return [e.cls for e in sorted(found, key=lambda e: (e.name, e.table)) if e.cls is not None]


def _registry_totals(
    router: Router, backends: dict[UUID, backend_registry.BackendInfo]
) -> dict[str, _Counts]:
    """Objects and versions per class (its table) over every backend's registry."""
    counts: dict[str, _Counts] = {}
    for backend_id, info in backends.items():
        rows = router.database(backend_id).read(_registry_counts)
        for table, objects, versions in rows:
            entry = counts.setdefault(table, _Counts())
            entry.objects += objects
            entry.versions += versions
            entry.backends[info.name] = entry.backends.get(info.name, 0) + objects
    return counts


def meta_version(router: Router) -> str:
    """The schema version of claystore's system tables in the metadata database (``dc_schema``),
    as text (``"4"``)."""
    version = router.metadata.read(read_system_version)
    if version is None:
        msg = (
            f"the dc_schema table of the {router.metadata.dialect.describe()} has no row for "
            f"{COMPONENT!r}: it was changed outside claystore; restore it from a backup"
        )
        raise SchemaVersionError(msg)
    return str(version)


def _class_stats(table: str, entry: _Counts) -> ClassStats:
    info = mapping.info_for_table(table)
    return ClassStats(
        name=table if info is None else info.cls.__name__,
        table=table,
        cls=None if info is None else info.cls,
        objects=entry.objects,
        versions=entry.versions,
        aliases=entry.aliases,
        backends=dict(sorted(entry.backends.items())),
    )


def _registry_counts(conn: Connection) -> list[tuple[str, int, int]]:
    """Per class (table name) on one backend: its objects and its versions."""
    statement = sa.select(
        dc_object.c.class_name,
        sa.func.count(sa.case((dc_object.c.original_id.is_(None), 1))),
        sa.func.count(dc_object.c.original_id),
    ).group_by(dc_object.c.class_name)
    return [
        (str(name), int(objects), int(versions))
        for name, objects, versions in conn.execute(statement)
    ]


def _alias_counts(router: Router, others: list[UUID], page: int) -> Iterator[tuple[str, int]]:
    """``(class table name, aliases)`` pairs (a class may come several times): the aliases of
    objects in the metadata database's registry, then those of objects on ``others``."""
    here = sa.exists().where(dc_object.c.id == dc_alias.c.object_id)
    joined = (
        sa.select(dc_object.c.class_name, sa.func.count())
        .select_from(dc_alias.join(dc_object, dc_object.c.id == dc_alias.c.object_id))
        .group_by(dc_object.c.class_name)
    )
    for table, aliases in router.metadata.read(_rows(joined)):
        yield str(table), int(aliases)
    if not others:
        return
    after: UUID | None = None
    while True:
        elsewhere = (
            sa.select(dc_alias.c.object_id, sa.func.count())
            .where(~here)
            .group_by(dc_alias.c.object_id)
            .order_by(dc_alias.c.object_id)
            .limit(page)
        )
        if after is not None:
            elsewhere = elsewhere.where(dc_alias.c.object_id > after)
        wanted = {
            UUID(str(object_id)): int(aliases)
            for object_id, aliases in router.metadata.read(_rows(elsewhere))
        }
        if not wanted:
            return
        after = max(wanted)
        yield from _classes_of(router, others, wanted)
        if len(wanted) < page:
            return


def _classes_of(
    router: Router, others: list[UUID], wanted: dict[UUID, int]
) -> Iterator[tuple[str, int]]:
    """``(class table name, aliases)`` of the objects ``wanted`` (id -> its aliases) that the
    registries of the backends ``others`` hold."""
    left = dict(wanted)
    for backend_id in others:
        if not left:
            return
        database = router.database(backend_id)
        limit = database.dialect.among_limit
        ids = sorted(left)
        for start in range(0, len(ids), limit):
            part = ids[start : start + limit]
            statement = sa.select(dc_object.c.id, dc_object.c.class_name).where(
                database.dialect.among(dc_object.c.id, part)
            )
            for object_id, table in database.read(_rows(statement)):
                aliases = left.pop(UUID(str(object_id)), 0)
                if aliases:
                    yield str(table), aliases


def _rows(statement: sa.Select[Any]) -> Callable[[Connection], list[tuple[Any, ...]]]:
    """A read of every row of ``statement``."""

    def read(conn: Connection) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.execute(statement)]

    return read
