"""The aliases of a store, each with the object it names: class, backend, or none (dangling).

Owns :func:`list_aliases`: every row of ``dc_alias`` (the metadata database), optionally of one
dataset, joined with the registry row of the object it names on whichever backend holds it
(looked up a batch of ids at a time on each backend): its class (the model class's name, else
the table's) and backend.  An alias whose object is on no backend that answers comes back with
``class_name`` None.

Called by :class:`~claystore.housekeeping.api.Housekeeping` (``client.list_aliases``) and the
``claystore aliases`` command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from claystore.errors import DatabaseConnectionError
from claystore.housekeeping.report import AliasInfo
from claystore.housekeeping.run import registered_backends
from claystore.orm import mapping
from claystore.orm.aliases import check_dataset
from claystore.orm.routing import Router
from claystore.orm.system import dc_alias, dc_object

__all__ = ["list_aliases"]

#: Object ids looked up per statement.
BATCH = 1_000


def _rows(statement: sa.Select[Any]) -> Callable[[Connection], Sequence[Any]]:
    def run(conn: Connection) -> Sequence[Any]:
        return conn.execute(statement).all()

    return run


def list_aliases(router: Router, dataset: str | None = None) -> list[AliasInfo]:
    """Every alias (of ``dataset``, else of every dataset), sorted by dataset and name."""
    statement = sa.select(dc_alias.c.dataset, dc_alias.c.name, dc_alias.c.object_id)
    if dataset is not None:
        statement = statement.where(dc_alias.c.dataset == check_dataset(dataset))
    statement = statement.order_by(dc_alias.c.dataset, dc_alias.c.name)
    rows = router.metadata.read(lambda conn: conn.execute(statement).all())
    names = {backend_id: info.name for backend_id, info in registered_backends(router).items()}
    wanted = {UUID(str(row.object_id)) for row in rows}
    found: dict[UUID, tuple[str, str]] = {}  # object id -> (class table, backend name)
    for backend_id in names:
        missing = sorted(wanted - found.keys())
        if not missing:
            break
        try:
            database = router.database(backend_id)
        except DatabaseConnectionError:
            continue
        among = database.dialect.among
        for start in range(0, len(missing), BATCH):
            chunk = missing[start : start + BATCH]
            query = sa.select(dc_object.c.id, dc_object.c.class_name).where(
                among(dc_object.c.id, chunk), dc_object.c.backend_id == backend_id
            )
            try:
                hits = database.read(_rows(query))
            except DatabaseConnectionError:
                break
            for hit in hits:
                object_id, class_name = hit[0], hit[1]
                found[UUID(str(object_id))] = (class_name, names.get(backend_id, str(backend_id)))
    aliases = []
    for row in rows:
        object_id = UUID(str(row.object_id))
        table, backend = found.get(object_id, (None, None))
        info = None if table is None else mapping.info_for_table(table)
        aliases.append(
            AliasInfo(
                dataset=row.dataset,
                name=row.name,
                object_id=object_id,
                class_name=table if info is None else info.cls.__name__,
                table=table,
                backend=backend,
            )
        )
    return aliases
