"""Helpers of the backend tests (``tests/orm/test_backends*.py``).

Owns what those tests need besides claystore itself: reading a backend database's tables with
plain SQLAlchemy (to prove where an object's rows are: its class table row and its registry row
``dc_object.backend_id``), checking that an object is home on exactly one backend, and
:class:`OtherClient`, a second client of the same metadata database started in a context of its
own, so that the test's client stays the active one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from claystore import Client

T = TypeVar("T")


@contextmanager
def plain_engine(url: str) -> Iterator[Engine]:
    """A plain SQLAlchemy engine on ``url`` (no claystore), disposed of at the end."""
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def has_table(url: str, table: str) -> bool:
    """Whether the database at ``url`` has ``table``."""
    with plain_engine(url) as engine:
        return sa.inspect(engine).has_table(table)


def ids_in(url: str, table: str, column: str = "id") -> list[UUID]:
    """The values of the UUID ``column`` of every row of ``table`` (empty if no such table)."""
    if not has_table(url, table):
        return []
    plain = sa.table(table, sa.column(column, sa.Uuid))
    with plain_engine(url) as engine, engine.connect() as conn:
        return list(conn.execute(sa.select(plain.c[column])).scalars())


def values_in(url: str, table: str, column: str, object_id: UUID) -> list[Any]:
    """The values of ``column`` in the rows of ``table`` whose id is ``object_id`` (one on the
    object's backend, none elsewhere)."""
    if not has_table(url, table):
        return []
    plain = sa.table(table, sa.column("id", sa.Uuid), sa.column(column))
    with plain_engine(url) as engine, engine.connect() as conn:
        statement = sa.select(plain.c[column]).where(plain.c.id == object_id)
        return list(conn.execute(statement).scalars())


def registry(url: str) -> dict[UUID, UUID]:
    """``dc_object`` of the database at ``url``: object id -> the backend id its row names."""
    plain = sa.table("dc_object", sa.column("id", sa.Uuid), sa.column("backend_id", sa.Uuid))
    with plain_engine(url) as engine, engine.connect() as conn:
        return {r.id: r.backend_id for r in conn.execute(sa.select(plain))}


def backend_rows(url: str) -> list[dict[str, Any]]:
    """``dc_backend`` of the database at ``url`` (empty when it has no such table)."""
    if not has_table(url, "dc_backend"):
        return []
    plain = sa.table(
        "dc_backend",
        sa.column("id", sa.Uuid),
        sa.column("name", sa.String),
        sa.column("url", sa.String),
        sa.column("is_default", sa.Boolean),
        sa.column("store_id", sa.Uuid),
    )
    with plain_engine(url) as engine, engine.connect() as conn:
        rows = conn.execute(sa.select(plain).order_by(plain.c.id)).mappings()
        return [dict(r) for r in rows]


def backend_urls(metadata_url: str) -> dict[UUID, str]:
    """Every backend of the store at ``metadata_url`` -> its URL (password included), as the
    metadata database stores them."""
    return {r["id"]: r["url"] or metadata_url for r in backend_rows(metadata_url)}


def count_rows(url: str, table: str) -> int:
    """The number of rows of ``table`` (0 when it does not exist)."""
    if not has_table(url, table):
        return 0
    with plain_engine(url) as engine, engine.connect() as conn:
        return int(conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def assert_only_on(
    urls: Mapping[UUID, str], table: str, object_ids: Iterable[UUID], backend: UUID
) -> None:
    """Each of ``object_ids`` has one row in ``table`` and one registry row naming ``backend``
    on that backend, and no row of either kind on any other backend."""
    rows = {b: (ids_in(url, table), registry(url)) for b, url in urls.items()}
    for object_id in object_ids:
        expected = {b: (1, backend) if b == backend else (0, None) for b in urls}
        found = {b: (ids.count(object_id), reg.get(object_id)) for b, (ids, reg) in rows.items()}
        assert found == expected, f"object {object_id} in {table}"


def hidden(url: str) -> str:
    """``url`` as claystore shows it (password hidden)."""
    return make_url(url).render_as_string(hide_password=True)


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` set (PostgreSQL: trust authentication accepts any)."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


class OtherClient:
    """Another client of a metadata database, started in a context of its own: call
    :meth:`run` for what needs the active client (``get_by_id``, ``make_persistent``); the
    objects it returns stay bound to this client.  A context manager (stops the client)."""

    def __init__(self, url: str, **options: Any) -> None:
        self._context = contextvars.Context()
        self.client = Client(url, **options)
        self._context.run(self.client.start)

    def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` with this client active."""
        return self._context.run(func, *args, **kwargs)

    def stop(self) -> None:
        """Stop the client."""
        self._context.run(self.client.stop)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- two-phase commit ------------------------------------------------------------------------


def prepared_gids(url: str, prefix: str = "claystore_") -> list[str]:
    """The prepared transactions whose gid starts with ``prefix`` in the database of ``url``
    (whatever the schema; empty for SQLite)."""
    if make_url(url).get_backend_name() == "sqlite":
        return []
    statement = sa.text(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
        "AND starts_with(gid, :p) ORDER BY 1"
    )
    with plain_engine(url) as engine, engine.connect() as conn:
        return list(conn.execute(statement, {"p": prefix}).scalars())


def drop_prepared(url: str, prefix: str) -> None:
    """Roll back the prepared transactions of the database of ``url`` whose gid starts with
    ``prefix`` (a test's clean-up: they would keep its schema from being dropped)."""
    if make_url(url).get_backend_name() == "sqlite":
        return
    listing = sa.text(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
        "AND starts_with(gid, :p)"
    )
    with plain_engine(url) as engine, engine.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        for gid in auto.execute(listing, {"p": prefix}).scalars().all():
            auto.exec_driver_sql(f"ROLLBACK PREPARED '{gid}'")


def commit_rows(url: str) -> list[dict[str, Any]]:
    """The rows of ``dc_commit`` (the records of commits across backends) at ``url``."""
    plain = sa.table("dc_commit", sa.column("id", sa.Uuid), sa.column("state", sa.String))
    with plain_engine(url) as engine, engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(plain)).mappings()]
