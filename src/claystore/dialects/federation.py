"""SQL reporting across backends, as PostgreSQL SQL: ``postgres_fdw`` servers, foreign tables
and the views over them.

Owns :class:`ForeignSource` (how the metadata database's server reaches one backend database:
the foreign server's options, the user mapping's, and the schema its tables are in, made by
that backend's dialect: :meth:`Dialect.foreign_source
<claystore.dialects.base.Dialect.foreign_source>`), :class:`Federation` (the statements of a
federation, run on a connection to the metadata database: the extension, the objects a
federation made — found again by their comments —, foreign servers with their user mappings,
``IMPORT FOREIGN SCHEMA``, the columns of a schema's tables, views) and
:func:`refusal`, the error of an engine that cannot hold a federation.

Every statement names what it creates in full (schema-qualified, quoted); the driver errors
of the statements a user can fix (privileges, a server the metadata database's server cannot
reach, objects of the user's that depend on the views) become
:class:`~claystore.errors.FederationError` naming what failed and what to do.

Made by :class:`~claystore.dialects.postgresql.PostgreSQLDialect`; the base dialect refuses.
Called by :mod:`claystore.orm.federation`.  Knows nothing of the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from claystore.errors import FederationError

__all__ = ["Federation", "ForeignSource", "foreign_source_of", "refusal"]

#: The foreign-data wrapper a federation uses (an extension of PostgreSQL's contrib).
WRAPPER = "postgres_fdw"
#: libpq connection options of a backend URL's query that a foreign server takes as its own.
_SERVER_QUERY_OPTIONS = ("sslmode", "sslrootcert", "sslcrl", "connect_timeout")


def refusal(title: str, where: str) -> FederationError:
    """The error of a federation asked of an engine that cannot hold one."""
    msg = (
        f"SQL reporting across backends needs a PostgreSQL metadata database (postgres_fdw); "
        f"this store's is a {title} database ({where}): move the store to PostgreSQL, or "
        "query each backend on its own"
    )
    return FederationError(msg)


@attrs.frozen(hash=False)
class ForeignSource:
    """How the metadata database's server reaches one backend database."""

    #: options of the foreign server (``host``, ``port``, ``dbname``, ``sslmode`` ...)
    server_options: Mapping[str, str]
    #: options of the user mapping (``user``, ``password``)
    user_options: Mapping[str, str]
    #: the schema holding the backend's tables, on its server
    schema: str

    def describe(self) -> str:
        """Where the backend is, for messages (no password)."""
        options = self.server_options
        where = f"{options.get('host', 'localhost')}:{options.get('port', '5432')}"
        return f"database {options.get('dbname', '?')!r} at {where}, schema {self.schema!r}"


def foreign_source_of(url: URL, conn: Connection) -> ForeignSource:
    """The :class:`ForeignSource` of the PostgreSQL database of ``url``, whose tables are in
    the current schema of ``conn`` (a connection to it, as claystore opens it)."""
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    if schema is None:
        msg = (
            f"database {url.database!r} at {url.host}:{url.port}: its search_path names no "
            "schema that exists, so claystore cannot tell where its tables are"
        )
        raise FederationError(msg)
    server: dict[str, str] = {}
    host = url.host or url.query.get("host")
    if host:
        server["host"] = str(host)
    if url.port:
        server["port"] = str(url.port)
    if url.database:
        server["dbname"] = url.database
    for name in _SERVER_QUERY_OPTIONS:
        value = url.query.get(name)
        if isinstance(value, str):
            server[name] = value
    user: dict[str, str] = {}
    if url.username:
        user["user"] = url.username
    if url.password:
        user["password"] = str(url.password)
    return ForeignSource(server, user, str(schema))


def _literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _options(options: Mapping[str, str]) -> str:
    """``OPTIONS (name 'value', ...)``, or nothing."""
    if not options:
        return ""
    items = ", ".join(f"{name} {_literal(value)}" for name, value in options.items())
    return f" OPTIONS ({items})"


def _said(exc: sa.exc.DBAPIError) -> str:
    """The server's message, on one line."""
    return " ".join(str(exc.orig).split())


class Federation:
    """The statements of a federation on ``conn``, a connection to the metadata database in
    a transaction of the caller's (PostgreSQL's DDL is transactional: all or nothing)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._quote = conn.dialect.identifier_preparer.quote_identifier

    def _run(self, statement: str, *, escaped: bool = False) -> None:
        """Run ``statement``; its ``%`` are doubled for the driver's placeholders unless
        ``escaped`` (text SQLAlchemy compiled has them doubled already)."""
        self.conn.exec_driver_sql(statement if escaped else statement.replace("%", "%%"))

    def qualified(self, schema: str, name: str) -> str:
        """``"schema"."name"``."""
        return f"{self._quote(schema)}.{self._quote(name)}"

    def database(self) -> str:
        """The metadata database's name (for messages)."""
        return str(self.conn.exec_driver_sql("SELECT current_database()").scalar_one())

    def _guarded(self, statement: str, failed: str, *, escaped: bool = False) -> None:
        """Run ``statement`` in a savepoint; a driver error becomes :class:`FederationError`
        saying ``failed`` (``{error}`` in it: the server's message)."""
        try:
            with self.conn.begin_nested():
                self._run(statement, escaped=escaped)
        except sa.exc.DBAPIError as exc:
            raise FederationError(failed.format(error=_said(exc)), exc.orig) from None

    def ensure_extension(self) -> None:
        """``CREATE EXTENSION IF NOT EXISTS postgres_fdw``; raises :class:`FederationError`
        naming the statement to run when this role may not create it."""
        database = self.database().replace("{", "{{").replace("}", "}}")
        failed = (
            f"the extension {WRAPPER} cannot be created in database {database!r} ({{error}}): "
            f"have a superuser run `CREATE EXTENSION {WRAPPER};` there (and `GRANT USAGE ON "
            f"FOREIGN DATA WRAPPER {WRAPPER} TO <role>;` for the role that federates), then "
            "federate again"
        )
        self._guarded(f"CREATE EXTENSION IF NOT EXISTS {WRAPPER}", failed)

    def current_schema(self) -> str:
        """The schema of the metadata database's tables (its first on the search path)."""
        return str(self.conn.exec_driver_sql("SELECT current_schema()").scalar_one())

    def owned_servers(self, marker: str) -> list[str]:
        """The foreign servers whose comment starts with ``marker``."""
        statement = sa.text(
            "SELECT srvname FROM pg_catalog.pg_foreign_server "
            "WHERE starts_with(obj_description(oid, 'pg_foreign_server'), :marker) "
            "ORDER BY srvname"
        )
        return list(self.conn.execute(statement, {"marker": marker}).scalars())

    def owned_schemas(self, marker: str) -> list[str]:
        """The schemas whose comment starts with ``marker``."""
        statement = sa.text(
            "SELECT nspname FROM pg_catalog.pg_namespace "
            "WHERE starts_with(obj_description(oid, 'pg_namespace'), :marker) ORDER BY nspname"
        )
        return list(self.conn.execute(statement, {"marker": marker}).scalars())

    def owned_views(self, schema: str, marker: str) -> list[str]:
        """The views of ``schema`` whose comment starts with ``marker``."""
        statement = sa.text(
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind = 'v' "
            "AND starts_with(obj_description(c.oid, 'pg_class'), :marker) ORDER BY c.relname"
        )
        return list(self.conn.execute(statement, {"schema": schema, "marker": marker}).scalars())

    def drop_views(self, schema: str, names: Iterable[str]) -> None:
        """Drop views a federation made; raises :class:`FederationError` naming the objects
        of the user's that depend on one (never dropped with it)."""
        for name in names:
            shown = f"{schema}.{name}".replace("{", "{{").replace("}", "}}")
            failed = (
                f"view {shown} is remade by every federation, but other objects depend on it "
                "({error}): drop them, federate, then create them again"
            )
            self._guarded(f"DROP VIEW IF EXISTS {self.qualified(schema, name)}", failed)

    def drop_server(self, name: str) -> None:
        """Drop a foreign server with its user mappings and foreign tables."""
        self._run(f"DROP SERVER IF EXISTS {self._quote(name)} CASCADE")

    def drop_schema(self, name: str) -> None:
        """Drop a schema of foreign tables with everything in it."""
        self._run(f"DROP SCHEMA IF EXISTS {self._quote(name)} CASCADE")

    def ensure_schema(self, name: str, comment: str) -> None:
        """Create ``name`` unless it exists (a schema a user granted on keeps its grants and
        default privileges), and comment it."""
        database = self.database().replace("{", "{{").replace("}", "}}")
        failed = (
            f"schema {name} cannot be created in database {database!r} ({{error}}): the role "
            f"that federates needs `GRANT CREATE ON DATABASE {self._quote(database)} TO <role>;`"
        )
        self._guarded(f"CREATE SCHEMA IF NOT EXISTS {self._quote(name)}", failed)
        self._run(f"COMMENT ON SCHEMA {self._quote(name)} IS {_literal(comment)}")

    def create_server(self, name: str, source: ForeignSource, comment: str) -> None:
        """A foreign server reaching ``source`` and the current role's user mapping on it
        (on PostgreSQL 14 and later ``async_capable``: a query can scan the servers at once)."""
        server = self._quote(name)
        server_options = dict(source.server_options)
        if self.conn.dialect.server_version_info >= (14,):  # type: ignore[operator]
            # the backends of one query can be scanned at once, not one after the other
            server_options["async_capable"] = "true"
        options = _options(server_options)
        self._run(f"CREATE SERVER {server} FOREIGN DATA WRAPPER {WRAPPER}{options}")
        self._run(f"COMMENT ON SERVER {server} IS {_literal(comment)}")
        self._run(
            f"CREATE USER MAPPING FOR CURRENT_USER SERVER {server}{_options(source.user_options)}"
        )

    def import_tables(
        self, server: str, source: ForeignSource, into: str, tables: Iterable[str], label: str
    ) -> None:
        """Foreign tables in schema ``into`` for those of ``tables`` that exist in the
        source's schema (with their columns as they are there); raises
        :class:`FederationError` naming ``label`` when the source cannot be reached."""
        wanted = ", ".join(self._quote(t) for t in sorted(set(tables)))
        statement = (
            f"IMPORT FOREIGN SCHEMA {self._quote(source.schema)} LIMIT TO ({wanted}) "
            f"FROM SERVER {self._quote(server)} INTO {self._quote(into)}"
        )
        where = f"{label} ({source.describe()})".replace("{", "{{").replace("}", "}}")
        failed = (
            f"{where} cannot be read from the metadata database's server through {WRAPPER} "
            "({error}): the host of its URL must be reachable from that server, and its user "
            "must be able to log in there (a role that is not a superuser needs a password in "
            "the URL)"
        )
        self._guarded(statement, failed)

    def columns(self, schema: str) -> dict[str, set[str]]:
        """The column names of every table, foreign table and view of ``schema``."""
        statement = sa.text(
            "SELECT c.relname, a.attname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'f', 'v') "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        )
        found: dict[str, set[str]] = {}
        for table, column in self.conn.execute(statement, {"schema": schema}):
            found.setdefault(table, set()).add(column)
        return found

    def create_view(self, schema: str, name: str, select: Any, comment: str, label: str) -> None:
        """``CREATE VIEW schema.name AS <select>`` (an SQLAlchemy SELECT, its values written
        as literals); raises :class:`FederationError` naming ``label`` when the server refuses
        it (columns of one name whose types differ between backends)."""
        compiled = select.compile(dialect=self.conn.dialect, compile_kwargs={"literal_binds": True})
        view = self.qualified(schema, name)
        shown = f"{schema}.{name} of {label}".replace("{", "{{").replace("}", "}}")
        failed = (
            f"the view {shown} cannot be created ({{error}}): are the backends' tables at the "
            "same version? (`claystore db upgrade`)"
        )
        create = f"CREATE VIEW {view} AS ".replace("%", "%%")
        self._guarded(f"{create}{compiled}", failed, escaped=True)
        self._run(f"COMMENT ON VIEW {view} IS {_literal(comment)}")
