"""Aliases: names for objects, unique per dataset (``dc_alias``).

Owns adding, looking up, listing and deleting aliases, with dataClay's errors
(``AliasAlreadyExistError``: "Alias <dataset>/<name> already exists", ``AliasDoesNotExistError``).

Called by the object API in :mod:`claystore.orm.model`, inside a transaction or on a reader
connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa

from claystore.errors import AliasAlreadyExistError, AliasDoesNotExistError, ConfigurationError
from claystore.orm.system import dc_alias

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def check_alias(alias: Any) -> str:
    """Return ``alias`` if it is a usable alias (a non-empty str), else raise."""
    if not isinstance(alias, str) or not alias:
        msg = f"an alias must be a non-empty str, not {alias!r}"
        raise ConfigurationError(msg)
    return alias


def check_free(conn: Connection, dataset: str, alias: str) -> None:
    """Raise :class:`AliasAlreadyExistError` if ``alias`` is taken in ``dataset``."""
    check_alias(alias)
    taken = conn.execute(
        sa.select(dc_alias.c.object_id).where(
            dc_alias.c.dataset == dataset, dc_alias.c.name == alias
        )
    ).first()
    if taken is not None:
        raise AliasAlreadyExistError(alias, dataset)


def add(conn: Connection, dataset: str, alias: str, object_id: UUID) -> None:
    """Give the object ``alias`` in ``dataset``; raises :class:`AliasAlreadyExistError`."""
    check_free(conn, dataset, alias)
    try:
        conn.execute(
            sa.insert(dc_alias), {"dataset": dataset, "name": alias, "object_id": object_id}
        )
    except sa.exc.IntegrityError as exc:  # taken meanwhile by a concurrent transaction
        raise AliasAlreadyExistError(alias, dataset) from exc


def lookup(conn: Connection, dataset: str, alias: str) -> UUID:
    """The id of the object named ``alias`` in ``dataset``; raises AliasDoesNotExistError."""
    check_alias(alias)
    object_id = conn.execute(
        sa.select(dc_alias.c.object_id).where(
            dc_alias.c.dataset == dataset, dc_alias.c.name == alias
        )
    ).scalar()
    if object_id is None:
        raise AliasDoesNotExistError(alias, dataset)
    return UUID(str(object_id))


def names_of(conn: Connection, object_id: UUID) -> set[str]:
    """Every alias of the object (in its dataset)."""
    rows = conn.execute(sa.select(dc_alias.c.name).where(dc_alias.c.object_id == object_id))
    return set(rows.scalars())


def delete(conn: Connection, dataset: str, alias: str) -> None:
    """Remove ``alias`` from ``dataset``; raises :class:`AliasDoesNotExistError`."""
    check_alias(alias)
    result = conn.execute(
        sa.delete(dc_alias).where(dc_alias.c.dataset == dataset, dc_alias.c.name == alias)
    )
    if result.rowcount == 0:
        raise AliasDoesNotExistError(alias, dataset)
