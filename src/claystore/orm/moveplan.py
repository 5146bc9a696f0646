"""Which objects a move takes: the graph walk of ``move(recursive=..., remotes=...)``.

Owns :func:`plan`: from the root, in committed state and from table rows (no object is built),
the objects reachable through references and link tables, found at home on their backends
(the root's first), grouped by source backend and class; and the refusals (a version, an
object with versions).  Also owns :class:`Databases`, what moves need of the client's router,
and the batching of id lists (:func:`batches`).

Called by :mod:`claystore.orm.moving` (which runs the moves) and the object API.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.errors import MoveError
from claystore.orm.fields import FieldKind
from claystore.orm.mapping import ModelInfo, info_for_table
from claystore.orm.system import dc_object

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.dialects.base import Dialect
    from claystore.orm.database import Database

__all__ = ["Databases", "MovePlan", "batches", "model_of", "plan", "registry_rows"]


class Databases(Protocol):
    """What a move needs of the client's router (:class:`claystore.orm.routing.Router`)."""

    metadata: Database
    metadata_id: UUID

    def database(self, backend_id: UUID) -> Database:
        """The database of a backend."""

    def known(self) -> list[UUID]:
        """Every backend, the metadata database first."""


def batches(dialect: Dialect, ids: Sequence[UUID]) -> Iterator[Sequence[UUID]]:
    """``ids`` in parts small enough for one :meth:`~claystore.dialects.base.Dialect.among`."""
    size = dialect.among_limit
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# -- which objects move ----------------------------------------------------------------------


@attrs.define
class MovePlan:
    """The objects a move takes: source backend -> class table -> ids."""

    target: UUID
    groups: dict[UUID, dict[str, list[UUID]]] = attrs.field(factory=dict)

    @property
    def object_ids(self) -> list[UUID]:
        """Every id moved."""
        return [i for classes in self.groups.values() for ids in classes.values() for i in ids]


def registry_rows(
    conn: Connection, dialect: Dialect, ids: Sequence[UUID], backend_id: UUID
) -> list[Any]:
    """The home registry rows of ``ids`` on one backend."""
    rows: list[Any] = []
    c = dc_object.c
    for batch in batches(dialect, ids):
        statement = sa.select(c.id, c.class_name, c.original_id, c.backend_id).where(
            dialect.among(c.id, batch)
        )
        rows += [r for r in conn.execute(statement).all() if r.backend_id == backend_id]
    return rows


def model_of(class_name: str, object_id: UUID) -> ModelInfo:
    """The model class of a class table; raises :class:`MoveError` for one this program does
    not define."""
    info = info_for_table(class_name)
    if info is None:
        msg = (
            f"object {object_id} is stored in table {class_name!r}, but no model class with that "
            "table is defined in this program: import its module before moving it"
        )
        raise MoveError(msg)
    return info


def _referents(conn: Connection, dialect: Dialect, info: ModelInfo, ids: list[UUID]) -> set[UUID]:
    """The ids the objects ``ids`` of ``info``'s class refer to, in committed state."""
    found: set[UUID] = set()
    refs = [f for f in info.column_fields if f.kind is FieldKind.REF]
    for chunk in batches(dialect, ids):
        for field in refs:
            table = info.table_of(field)
            column = table.c[field.column_name]
            statement = sa.select(column).where(
                dialect.among(table.c.id, chunk), column.is_not(None)
            )
            found.update(conn.execute(statement).scalars().all())
        for field in info.link_fields:
            link = info.link_table(field)
            statement = sa.select(link.c.target_id).where(dialect.among(link.c.owner_id, chunk))
            found.update(conn.execute(statement).scalars().all())
    return found


def plan(
    databases: Databases,
    root_id: UUID,
    root_backend: UUID,
    target: UUID,
    *,
    recursive: bool,
    remotes: bool,
) -> MovePlan:
    """The objects ``move`` takes (see :meth:`DataClayObject.move`): the root, and with
    ``recursive`` every object it reaches (with ``remotes=False`` only those on the root's
    backend); objects on ``target`` already stay.  Raises :class:`MoveError` for a version or
    an object that has versions."""
    result = MovePlan(target)
    seen: set[UUID] = set()
    others = [b for b in databases.known() if b != root_backend] if remotes else []
    frontier = _locate(databases, [root_backend], [root_id])
    while frontier:
        next_ids: set[UUID] = set()
        for backend_id, rows in frontier.items():
            by_class: dict[str, list[UUID]] = defaultdict(list)
            for row in rows:
                seen.add(row.id)
                if row.original_id is not None:
                    msg = (
                        f"object {row.id} is a version (of {row.original_id}): versions "
                        "stay with their original; consolidate it instead of moving it"
                    )
                    raise MoveError(msg)
                by_class[row.class_name].append(row.id)
            database = databases.database(backend_id)
            dialect = database.dialect
            with database.reader() as conn:
                _refuse_versioned(conn, dialect, [r.id for r in rows])
                for class_name, class_ids in by_class.items():
                    if backend_id != target:
                        group = result.groups.setdefault(backend_id, {})
                        group.setdefault(class_name, []).extend(class_ids)
                    if recursive:
                        info = model_of(class_name, class_ids[0])
                        next_ids.update(_referents(conn, dialect, info, class_ids))
        next_ids -= seen
        frontier = _locate(databases, [root_backend, *others], list(next_ids))
    return result


def _refuse_versioned(conn: Connection, dialect: Dialect, ids: list[UUID]) -> None:
    for batch in batches(dialect, ids):
        statement = sa.select(dc_object.c.original_id).where(
            dialect.among(dc_object.c.original_id, batch)
        )
        found = conn.execute(statement.limit(1)).scalar()
        if found is not None:
            msg = (
                f"object {found} has versions (new_version): consolidate or delete them "
                "before moving it"
            )
            raise MoveError(msg)


def _locate(databases: Databases, backends: list[UUID], ids: list[UUID]) -> dict[UUID, list[Any]]:
    """The home registry rows of ``ids``, by backend, looked for on ``backends`` in order (the
    root's first: most referents live beside it, and then one query finds them all)."""
    where: dict[UUID, list[Any]] = {}
    missing = ids
    for backend_id in backends:
        if not missing:
            break
        database = databases.database(backend_id)
        with database.reader() as conn:
            rows = registry_rows(conn, database.dialect, missing, backend_id)
        if rows:
            where[backend_id] = rows
            here = {r.id for r in rows}
            missing = [i for i in missing if i not in here]
    return where
