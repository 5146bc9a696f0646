"""SQL reporting across backends (issue 14, part 3): ``client.federate()``.

The metadata database (a PostgreSQL schema) gets ``postgres_fdw`` foreign tables of a backend
on the same server and of one on the second server, and one view per model class in
``claystore_all``; the views are read back with plain SQL (no claystore) and must hold every
object of the class, wherever it lives, and nothing else: no copy of a move under way, no
version, no object of another class.  Re-running is idempotent and picks up new backends and
new fields; what cannot work is a clear error that changes nothing.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore import Client
from claystore.errors import FederationError
from claystore.orm.federation import VIEW_SCHEMA, foreign_schema_name, server_name
from claystore.orm.mapping import forget_models
from tests.orm.backend_helpers import plain_engine
from tests.orm.federation_models import FedManager, FedPerson, drop_federation


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` run with a plain engine on the database of ``url``."""
    with plain_engine(url) as engine, engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def names_by_backend(url: str, view: str) -> set[tuple[str, str]]:
    """(name, dc_backend) of every row of ``claystore_all.<view>``."""
    return {(r[0], r[1]) for r in rows(url, f"SELECT name, dc_backend FROM {VIEW_SCHEMA}.{view}")}


def federation_objects(url: str) -> dict[str, list[str]]:
    """The foreign servers, foreign tables and claystore_all views in the database of
    ``url``."""
    return {
        "servers": [
            r[0] for r in rows(url, "SELECT srvname FROM pg_foreign_server ORDER BY srvname")
        ],
        "foreign tables": [
            f"{r[0]}.{r[1]}"
            for r in rows(
                url,
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind = 'f' ORDER BY 1, 2",
            )
        ],
        "views": [
            r[0]
            for r in rows(
                url,
                "SELECT viewname FROM pg_views WHERE schemaname = 'claystore_all' ORDER BY 1",
            )
        ],
    }


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_views_show_every_object_of_a_class_on_every_backend(
    pg_url: str, backend_url_factory: Callable[..., str], tmp_path: Any
) -> None:
    """After federate, a plain SELECT on claystore_all.<class> returns every object of the
    class (subclass objects included, with the columns they inherit) from the metadata
    database, a backend on the same server and one on another server, each with its backend's
    name; not the versions, not the copy a move under way leaves on its target, not objects
    of other classes.  The subclass's view adds its own columns, the link table's view its
    rows; a SQLite backend is skipped and said so."""
    local_url, second_url = backend_url_factory("local"), backend_url_factory("second")
    with Client(pg_url) as client:
        local = client.add_backend(local_url, name="local")
        second = client.add_backend(second_url, name="second")
        client.add_backend(f"sqlite:///{tmp_path}/file.db", name="file")
        ann = FedPerson("ann", 30)
        ann.make_persistent()
        ann.new_version()  # a working copy: not in the views, as not in class queries
        FedManager("bob", 40, 2, FedPerson("cid", 20), FedPerson("dot", 21)).make_persistent(
            backend_id="local"
        )
        FedManager("eve", 50, 3).make_persistent(backend_id="second")
        FedPerson("fay", 60).make_persistent(backend_id="second")
        FedPerson("gus", 70).make_persistent(backend_id="file")
        report = client.federate()
        default = client.context.router.metadata_id
        ann_id = ann._dc_meta.id

    # a move of ann to `second` under way: her rows copied there, the registry naming default
    with plain_engine(second_url) as engine, engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO fed_person (id, dc_class, dc_version, name, age) "
                "VALUES (:id, 'fed_person', 1, 'ann', 30)"
            ),
            {"id": ann_id},
        )
        conn.execute(
            sa.text(
                "INSERT INTO dc_object (id, class_name, dataset, backend_id) "
                "VALUES (:id, 'fed_person', 'default', :backend)"
            ),
            {"id": ann_id, "backend": default},
        )

    assert names_by_backend(pg_url, "fed_person") == {
        ("ann", "default"),
        ("bob", "local"),
        ("cid", "local"),
        ("dot", "local"),
        ("eve", "second"),
        ("fay", "second"),
    }
    managers = rows(
        pg_url,
        "SELECT name, age, level, dc_class, dc_dataset, dc_backend FROM claystore_all.fed_manager "
        "ORDER BY name",
    )
    assert managers == [
        ("bob", 40, 2, "fed_manager", "default", "local"),
        ("eve", 50, 3, "fed_manager", "default", "second"),
    ]
    classes = rows(pg_url, "SELECT name, dc_class FROM claystore_all.fed_person ORDER BY name")
    assert dict(classes)["bob"] == "fed_manager"
    assert dict(classes)["ann"] == "fed_person"
    reports = rows(
        pg_url,
        "SELECT m.name, p.name, r.position, r.dc_backend FROM claystore_all.fed_manager m "
        "JOIN claystore_all.fed_manager_reports r ON r.owner_id = m.id "
        "JOIN claystore_all.fed_person p ON p.id = r.target_id ORDER BY r.position",
    )
    assert reports == [("bob", "cid", 0, "local"), ("bob", "dot", 1, "local")]

    assert [b.name for b in report.backends] == ["default", "local", "second"]
    assert report.servers == [server_name(local), server_name(second)]
    assert f"{foreign_schema_name(second)}.fed_person" in report.foreign_tables
    assert {"fed_person", "fed_manager", "fed_manager_reports"} <= set(report.views)
    [skipped] = report.skipped
    assert skipped.name == "file"
    assert "postgres_fdw reaches PostgreSQL databases only" in skipped.reason
    made = federation_objects(pg_url)
    assert made["servers"] == sorted(report.servers)
    assert sorted(report.foreign_tables) == made["foreign tables"]
    assert sorted(report.views) == made["views"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_federate_again_changes_nothing_then_follows_the_backends(
    pg_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Federating again gives the same objects and the same views (no error, nothing left
    over); after a backend is added its objects appear, and after one is removed its server
    and foreign tables are gone.  ``a_federate`` is the coroutine twin."""
    with Client(pg_url) as client:
        client.add_backend(backend_url_factory("second"), name="second")
        FedPerson("ann", 30).make_persistent()
        FedPerson("bob", 40).make_persistent(backend_id="second")
        first = client.federate()
        before = federation_objects(pg_url)
        again = asyncio.run(client.a_federate())
        assert again == first
        assert federation_objects(pg_url) == before
        assert names_by_backend(pg_url, "fed_person") == {("ann", "default"), ("bob", "second")}

        third = client.add_backend(backend_url_factory("local"), name="third")
        cid = FedPerson("cid", 50)
        cid.make_persistent(backend_id="third")
        assert names_by_backend(pg_url, "fed_person") == {("ann", "default"), ("bob", "second")}
        grown = client.federate()
        assert names_by_backend(pg_url, "fed_person") == {
            ("ann", "default"),
            ("bob", "second"),
            ("cid", "third"),
        }
        assert server_name(third) in grown.servers

        cid.move("default")
        client.remove_backend("third")
        shrunk = client.federate()
    assert shrunk.servers == first.servers
    assert federation_objects(pg_url) == before
    assert names_by_backend(pg_url, "fed_person") == {
        ("ann", "default"),
        ("bob", "second"),
        ("cid", "default"),
    }


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_view_of_yours_over_the_views_is_named_and_kept(pg_url: str) -> None:
    """A view of the user's that uses a claystore_all view is never dropped with it: federate
    raises FederationError naming it, and the view stays as it was."""
    with Client(pg_url) as client:
        FedPerson("ann", 30).make_persistent()
        client.federate()
        with plain_engine(pg_url) as engine, engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE VIEW people_count AS SELECT count(*) FROM claystore_all.fed_person"
            )
        with pytest.raises(FederationError) as caught:
            client.federate()
    message = str(caught.value)
    assert "view claystore_all.fed_person is remade by every federation" in message
    assert "people_count" in message
    assert rows(pg_url, "SELECT * FROM people_count") == [(1,)]


_defined: list[type] = []


@pytest.fixture
def release() -> Iterator[Callable[..., Any]]:
    """``release(source, forget=())``: define the model classes of ``source`` (after
    forgetting ``forget``), as a restarted program with a new release of its models would;
    they are forgotten after the test."""

    def define(source: str, *, forget: tuple[type, ...] = ()) -> Any:
        if forget:
            forget_models(*forget)
        module = types.ModuleType(f"fed_release_{uuid.uuid4().hex[:8]}")
        sys.modules[module.__name__] = module  # annotations resolve in the class's module
        header = "from __future__ import annotations\nfrom claystore import DataClayObject\n"
        exec(header + textwrap.dedent(source), module.__dict__)
        classes = [
            v for v in module.__dict__.values() if isinstance(v, type) and "_dc_info" in v.__dict__
        ]
        _defined.extend(classes)
        return module

    yield define
    forget_models(*[c for c in _defined if "_dc_info" in c.__dict__])
    _defined.clear()


V1 = """
class FedItem(DataClayObject):
    name: str
"""
V2 = """
class FedItem(DataClayObject):
    name: str
    color: str | None = None
"""


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_new_field_shows_as_a_new_column_after_federating_again(
    pg_url: str, backend_url_factory: Callable[..., str], release: Callable[..., Any]
) -> None:
    """A field added to a model (its tables evolved on every backend) is a column of the
    class's view once federate runs again: NULL for the objects stored before, the value for
    those stored since, on every backend."""
    second_url = backend_url_factory("second")
    v1 = release(V1)
    with Client(pg_url) as client:
        client.add_backend(second_url, name="second")
        item = v1.FedItem()
        item.name = "old"
        item.make_persistent(backend_id="second")
        client.federate()
    columns = "SELECT * FROM claystore_all.fed_item"
    with plain_engine(pg_url) as engine, engine.connect() as conn:
        assert list(conn.exec_driver_sql(columns).keys()) == [
            "id",
            "name",
            "dc_class",
            "dc_dataset",
            "dc_backend",
        ]

    v2 = release(V2, forget=(v1.FedItem,))
    with Client(pg_url, schema="evolve") as client:
        item = v2.FedItem()
        item.name, item.color = "new", "red"
        item.make_persistent(backend_id="second")
        client.federate()
    assert sorted(rows(pg_url, "SELECT name, color, dc_backend FROM claystore_all.fed_item")) == [
        ("new", "red", "second"),
        ("old", None, "second"),
    ]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_backend_whose_tables_lag_is_named_and_nothing_changes(
    pg_url: str, backend_url_factory: Callable[..., str], release: Callable[..., Any]
) -> None:
    """When a backend's table lacks a column of its class (the models changed, the tables
    were not upgraded), federate raises FederationError naming the backend, the table, the
    column and the fix, and leaves the previous federation as it was."""
    v1 = release(V1)
    with Client(pg_url) as client:
        client.add_backend(backend_url_factory("second"), name="second")
        client.federate()
    before = federation_objects(pg_url)
    v2 = release(V2, forget=(v1.FedItem,))
    with Client(pg_url, schema="skip") as client, pytest.raises(FederationError) as caught:
        client.federate()
    message = str(caught.value)
    assert "backend 'second': table fed_item has no column color" in message
    assert "backend 'default': table fed_item has no column color" in message
    assert "claystore db upgrade" in message
    assert federation_objects(pg_url) == before
    del v2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sqlite_metadata_database_is_refused(db_url: str, engine_name: str) -> None:
    """Federation needs PostgreSQL: on a SQLite store federate raises FederationError
    saying so."""
    refused = pytest.raises(FederationError, match="needs a PostgreSQL metadata database")
    with Client(db_url) as client, refused:
        client.federate()


@pytest.fixture
def plain_role(pg_url: str) -> Iterator[str]:
    """The URL of a schema owned by a new role that is not a superuser (dropped after)."""
    role = f"fed_{uuid.uuid4().hex[:10]}"
    schema = f"s_{role}"
    drop_federation(pg_url)  # no postgres_fdw in the database
    with plain_engine(pg_url) as engine, engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    url = (
        make_url(pg_url)
        .set(username=role)
        .update_query_dict({"options": f"-csearch_path={schema}"})
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with plain_engine(pg_url) as engine, engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            conn.exec_driver_sql(f"DROP OWNED BY {role}")  # its privilege on postgres_fdw
            conn.exec_driver_sql(f"DROP ROLE {role}")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_plain_role_is_told_what_to_run_and_what_its_backends_need(
    pg_url: str, plain_role: str, backend_url_factory: Callable[..., str]
) -> None:
    """A role that may not create postgres_fdw gets FederationError naming the statement a
    superuser must run, and the database; once it may use postgres_fdw, the grant it lacks to
    create schemas; then a backend its foreign server cannot log in to (postgres_fdw wants a
    password from a role that is not a superuser) is named with the server's reason; nothing
    is left behind any time."""
    with Client(plain_role) as client:
        client.add_backend(backend_url_factory("second"), name="second")
        with pytest.raises(FederationError) as caught:
            client.federate()
        message = str(caught.value)
        assert "`CREATE EXTENSION postgres_fdw;`" in message
        assert repr(make_url(plain_role).database) in message

        role = make_url(plain_role).username
        with plain_engine(pg_url) as engine, engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION postgres_fdw")
            conn.exec_driver_sql(f"GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {role}")
        with pytest.raises(FederationError) as caught:
            client.federate()
        database = make_url(pg_url).database
        assert str(caught.value).startswith("schema claystore_all cannot be created")
        assert f'`GRANT CREATE ON DATABASE "{database}" TO <role>;`' in str(caught.value)

        with plain_engine(pg_url) as engine, engine.begin() as conn:
            conn.exec_driver_sql(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
        with pytest.raises(FederationError) as caught:
            client.federate()
    message = str(caught.value)
    assert message.startswith("backend 'second' (database ")
    assert "cannot be read from the metadata database's server through postgres_fdw" in message
    assert "password is required" in message
    assert federation_objects(pg_url) == {"servers": [], "foreign tables": [], "views": []}
