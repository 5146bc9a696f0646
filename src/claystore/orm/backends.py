"""Backends: the databases objects live in (``dc_backend``).

Owns the backend registry.  The metadata database is always the first backend, created as the
default on first start; further backends (other databases) come with multi-backend support.

Called by the client (start, ``get_backends``) and by ``make_persistent`` to check a
``backend_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.errors import BackendDoesNotExistError
from claystore.orm.identity import new_object_id
from claystore.orm.system import dc_backend

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DEFAULT_BACKEND_NAME = "default"


@attrs.frozen
class BackendInfo:
    """One backend: its id, name, where it is (password hidden) and whether it is the default
    (the metadata database)."""

    id: UUID
    name: str
    url: str
    is_default: bool


def find_default(conn: Connection) -> UUID | None:
    """The default backend's id, None before the first start of a database (a read)."""
    found = conn.execute(sa.select(dc_backend.c.id).where(dc_backend.c.is_default)).scalar()
    return None if found is None else UUID(str(found))


def ensure_default(conn: Connection) -> UUID:
    """The default backend's id, registering it on the first start of a database."""
    found = find_default(conn)
    if found is not None:
        return found
    backend_id = new_object_id()
    conn.execute(
        sa.insert(dc_backend),
        {"id": backend_id, "name": DEFAULT_BACKEND_NAME, "url": None, "is_default": True},
    )
    return backend_id


def list_backends(conn: Connection, metadata_url: str) -> dict[UUID, BackendInfo]:
    """Every backend by id, the default first."""
    rows = conn.execute(
        sa.select(dc_backend).order_by(dc_backend.c.is_default.desc(), dc_backend.c.name)
    ).mappings()
    return {
        r["id"]: BackendInfo(r["id"], r["name"], r["url"] or metadata_url, bool(r["is_default"]))
        for r in rows
    }


def resolve(backends: dict[UUID, BackendInfo], backend: Any) -> UUID:
    """The id of a backend given by id (UUID or str) or name; raises BackendDoesNotExistError."""
    if backend is None:
        return next(b.id for b in backends.values() if b.is_default)
    if isinstance(backend, BackendInfo):
        backend = backend.id
    for info in backends.values():
        if backend in (info.id, str(info.id), info.name):
            return info.id
    raise BackendDoesNotExistError(backend)
