"""Aliases: names for objects, unique per dataset (``dc_alias``).

Owns adding, looking up, listing and deleting aliases, with dataClay's errors
(``AliasAlreadyExistError``: "Alias <dataset>/<name> already exists", ``AliasDoesNotExistError``),
and the one check of an alias's and of a dataset name's text (:func:`check_alias`,
:func:`check_dataset`: what every engine stores alike, refused before anything is written).

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


#: The longest alias and dataset name (``dc_alias.name``, ``dc_alias.dataset`` and
#: ``dc_object.dataset`` columns), in characters.
MAX_ALIAS_LENGTH = 500
MAX_DATASET_LENGTH = 200


def _check_name(value: Any, what: str, longest: int, fix: str) -> str:
    """Return ``value`` if it is a non-empty str that every engine stores, else raise."""
    if not isinstance(value, str) or not value:
        msg = f"{what} must be a non-empty str, not {value!r:.80}"
        raise ConfigurationError(msg)
    problem = ""
    if len(value) > longest:
        problem = f"is {len(value)} characters long (at most {longest})"
    elif "\x00" in value:
        problem = "contains a NUL character (\\x00)"
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            problem = f"contains a lone surrogate ({value[exc.start]!r}), which is not UTF-8"
    if problem:
        msg = f"{what} {value!r:.80} {problem}; {fix}"
        raise ConfigurationError(msg)
    return value


def check_alias(alias: Any) -> str:
    """Return ``alias`` if it is a usable alias (a non-empty str of at most 500 characters,
    with no NUL character and no lone surrogate), else raise :class:`ConfigurationError`."""
    fix = f"use a shorter alias of printable text (at most {MAX_ALIAS_LENGTH} characters)"
    return _check_name(alias, "an alias", MAX_ALIAS_LENGTH, fix)


def check_dataset(dataset: Any) -> str:
    """Return ``dataset`` if it is a usable dataset name (a non-empty str of at most 200
    characters, with no NUL character and no lone surrogate), else raise
    :class:`ConfigurationError`.  The one check of a dataset's text: the client's dataset is
    checked by every operation that stores it, before anything is written."""
    fix = (
        f"give Client(dataset=...) or DC_DATASET a shorter name of printable text "
        f"(at most {MAX_DATASET_LENGTH} characters)"
    )
    return _check_name(dataset, "a dataset name", MAX_DATASET_LENGTH, fix)


def check_free(conn: Connection, dataset: str, alias: str) -> None:
    """Raise :class:`AliasAlreadyExistError` if ``alias`` is taken in ``dataset``."""
    check_dataset(dataset)
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
    check_dataset(dataset)
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
    check_dataset(dataset)
    check_alias(alias)
    result = conn.execute(
        sa.delete(dc_alias).where(dc_alias.c.dataset == dataset, dc_alias.c.name == alias)
    )
    if result.rowcount == 0:
        raise AliasDoesNotExistError(alias, dataset)


def forget_object(conn: Connection, object_id: UUID) -> None:
    """Remove every alias of a deleted object (aliases live in the metadata database, apart
    from the object's row)."""
    conn.execute(sa.delete(dc_alias).where(dc_alias.c.object_id == object_id))
