"""Backends: the databases objects live in (``dc_backend``).

Owns the backend registry.  The metadata database is always the first backend, created as the
default on first start; :func:`register` adds other databases, :func:`unregister` removes one
that holds no object.

A database knows what it is from its own ``dc_backend`` rows: the metadata database of a store
has the store's default row (``is_default``, ``url`` NULL); another backend has one row, itself
(``url`` NULL, ``is_default`` false, ``store_id`` the store's default backend id).  So the same
database is never registered twice, whatever spelling its URL has, nor in two stores.

Called by the client (start, ``add_backend``, ``get_backends``, ``remove_backend``), by the
router that opens backends (:mod:`claystore.orm.routing`) and by ``make_persistent``/``move``
to resolve a backend given by id or name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore.errors import (
    BackendAlreadyExistsError,
    BackendDoesNotExistError,
    BackendInUseError,
    ConfigurationError,
)
from claystore.orm.identity import new_object_id
from claystore.orm.system import dc_backend, dc_move, dc_object

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DEFAULT_BACKEND_NAME = "default"
#: The longest backend name (``dc_backend.name``).
MAX_NAME_LENGTH = 200


@attrs.frozen
class BackendInfo:
    """One backend: its id, name, where it is (password hidden) and whether it is the default
    (the metadata database)."""

    id: UUID
    name: str
    url: str
    is_default: bool


def shown_url(url: str) -> str:
    """``url`` with its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


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


def own_row(conn: Connection) -> dict[str, Any] | None:
    """The row a non-metadata backend database keeps about itself, None on any other."""
    row = (
        conn.execute(
            sa.select(dc_backend).where(dc_backend.c.url.is_(None), ~dc_backend.c.is_default)
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def refuse_backend_as_store(conn: Connection, where: str) -> None:
    """Raise :class:`ConfigurationError` when the database is another store's backend (a
    client must connect to the store's metadata database)."""
    row = own_row(conn)
    if row is not None:
        msg = (
            f"the {where} is backend {row['name']!r} ({row['id']}) of a claystore store, not "
            "its metadata database: connect the client to the store's metadata database (the "
            "first one, where the backend was added)"
        )
        raise ConfigurationError(msg)


def list_backends(conn: Connection, metadata_url: str) -> dict[UUID, BackendInfo]:
    """Every backend by id, the default first, then in the order they were added (ids are
    time-ordered); passwords hidden."""
    rows = conn.execute(
        sa.select(dc_backend)
        .where(dc_backend.c.url.is_not(None) | dc_backend.c.is_default)
        .order_by(dc_backend.c.is_default.desc(), dc_backend.c.id)
    ).mappings()
    return {
        UUID(str(r["id"])): BackendInfo(
            UUID(str(r["id"])),
            r["name"],
            shown_url(r["url"]) if r["url"] else metadata_url,
            bool(r["is_default"]),
        )
        for r in rows
    }


def connect_urls(conn: Connection) -> dict[UUID, tuple[str, str]]:
    """The name and URL (password included) of every backend but the metadata database."""
    rows = conn.execute(
        sa.select(dc_backend.c.id, dc_backend.c.name, dc_backend.c.url).where(
            dc_backend.c.url.is_not(None)
        )
    )
    return {UUID(str(backend_id)): (name, url) for backend_id, name, url in rows}


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


def check_name(name: Any) -> str:
    """``name`` if it can name a backend; raises :class:`ConfigurationError`."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        msg = (
            f"a backend name is a non-empty str of at most {MAX_NAME_LENGTH} characters, "
            f"not {name!r}"
        )
        raise ConfigurationError(msg)
    if "\x00" in name:
        msg = f"a backend name cannot hold a NUL character: {name!r}"
        raise ConfigurationError(msg)
    return name


def check_target(target: Connection, url: str, store_id: UUID, registered: set[UUID]) -> UUID:
    """The id to register the database of ``target`` under (a new one, or the one an earlier
    add that stopped half-way wrote there); raises :class:`BackendAlreadyExistsError` for a
    database that is a metadata database, a backend of this store already (``registered``
    ids) or of another store.  Reads only."""
    shown = shown_url(url)
    if not sa.inspect(target).has_table(dc_backend.name):
        return new_object_id()
    default = find_default(target)
    if default is not None:
        msg = (
            f"{shown} is the metadata database of this store: it is the default backend already"
            if default == store_id
            else f"{shown} is the metadata database of another claystore store; "
            "a backend must be a database of its own"
        )
        raise BackendAlreadyExistsError(msg)
    row = own_row(target)
    if row is None:
        return new_object_id()
    backend_id = UUID(str(row["id"]))
    if backend_id in registered:
        msg = f"{shown} is registered already, as backend {row['name']!r} ({backend_id})"
        raise BackendAlreadyExistsError(msg)
    if row["store_id"] != store_id:
        msg = (
            f"{shown} is backend {row['name']!r} of another claystore store; a database "
            "belongs to one store"
        )
        raise BackendAlreadyExistsError(msg)
    return backend_id  # an earlier add stopped half-way: finish it


def check_free_name(names: set[str], name: str) -> None:
    """Raise :class:`BackendAlreadyExistsError` when a backend has this name."""
    if name in names:
        msg = f"a backend named {name!r} exists already; choose another name"
        raise BackendAlreadyExistsError(msg)


def register(meta: Connection, target: Connection, url: str, name: str, *, store_id: UUID) -> UUID:
    """Register the database of ``target`` as a backend of the store whose metadata database
    ``meta`` is (both connections in write transactions of the caller: it commits ``target``
    first).  Refuses, writing nothing, a name taken and a database that is already a backend
    or a metadata database (:func:`check_target`)."""
    rows = meta.execute(sa.select(dc_backend.c.id, dc_backend.c.name)).all()
    check_free_name({r.name for r in rows}, name)
    registered = {UUID(str(r.id)) for r in rows}
    backend_id = check_target(target, url, store_id, registered)
    target.execute(sa.delete(dc_backend).where(dc_backend.c.id == backend_id))
    target.execute(
        sa.insert(dc_backend),
        {"id": backend_id, "name": name, "url": None, "is_default": False, "store_id": store_id},
    )
    meta.execute(
        sa.insert(dc_backend),
        {"id": backend_id, "name": name, "url": url, "is_default": False},
    )
    return backend_id


def refuse_default(info: BackendInfo) -> None:
    """Raise :class:`BackendInUseError` for the metadata database (never removed)."""
    if info.is_default:
        msg = (
            f"backend {info.name!r} is the metadata database of the store (the default "
            "backend); it cannot be removed"
        )
        raise BackendInUseError(msg)


def check_removable(meta: Connection, target: Connection, info: BackendInfo) -> None:
    """Raise unless ``info``'s backend may be removed: no object on it, no move under way to
    or from it (see also :func:`refuse_default`)."""
    refuse_default(info)
    count = target.execute(sa.select(sa.func.count()).select_from(dc_object)).scalar_one()
    if count:
        msg = (
            f"backend {info.name!r} ({info.id}) holds {count} objects: move them to another "
            "backend first (obj.move(backend)), then remove it"
        )
        raise BackendInUseError(msg)
    moving = meta.execute(
        sa.select(dc_move.c.id).where(
            (dc_move.c.source_id == info.id) | (dc_move.c.target_id == info.id)
        )
    ).first()
    if moving is not None:
        msg = (
            f"a move to or from backend {info.name!r} is under way or was interrupted: "
            "run `claystore backends repair` (or start a client) first"
        )
        raise BackendInUseError(msg)


def unregister(meta: Connection, target: Connection | None, backend_id: UUID) -> None:
    """Remove a backend's rows (see :func:`check_removable` first)."""
    if target is not None:
        target.execute(sa.delete(dc_backend).where(dc_backend.c.id == backend_id))
    meta.execute(sa.delete(dc_backend).where(dc_backend.c.id == backend_id))
