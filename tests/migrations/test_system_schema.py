"""The system tables' schema version: new databases, 0.1.0 databases, newer databases, races.

A 0.1.0 database is built from the checked-in DDL of its system tables
(``tests/fixtures/system_schema_0_1_0.<engine>.sql``) and filled with the rows a 0.1.0 client
wrote, in plain SQL; the current client must then start on it and read its objects back.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

import claystore
from claystore import Client, errors
from claystore.dialects import dialect_for
from claystore.migrations import system
from claystore.migrations.system import SYSTEM_SCHEMA_VERSION, UPGRADE_STEPS, UpgradeStep
from claystore.orm.system import system_metadata
from tests.models import Employee
from tests.statements import count_statements

FIXTURES = Path(__file__).parent.parent / "fixtures"
VERSIONS_INDEX = "ix_dc_object_versions"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A plain SQLAlchemy engine on the test database (no claystore set-up)."""
    made = sa.create_engine(db_url)
    yield made
    made.dispose()


def statements_0_1_0(engine_name: str, *, with_versions_index: bool = True) -> list[str]:
    """The DDL statements of the 0.1.0 system tables on ``engine_name``."""
    text = (FIXTURES / f"system_schema_0_1_0.{engine_name}.sql").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("--")]
    statements = [s.strip() for s in "\n".join(lines).split(";\n") if s.strip()]
    statements = [s.removesuffix(";") for s in statements]
    if not with_versions_index:
        statements = [s for s in statements if VERSIONS_INDEX not in s]
    return statements


def create_0_1_0_tables(conn: Connection, *, with_versions_index: bool = True) -> None:
    """The system tables as claystore 0.1.0 made them."""
    for statement in statements_0_1_0(conn.dialect.name, with_versions_index=with_versions_index):
        conn.exec_driver_sql(statement)


def execute(conn: Connection, sql: str, **values: Any) -> None:
    """Plain SQL with ``values`` bound (UUIDs as each engine stores them)."""
    ids = [sa.bindparam(k, type_=sa.Uuid) for k, v in values.items() if isinstance(v, uuid.UUID)]
    conn.execute(sa.text(sql).bindparams(*ids), values)


def fill_like_0_1_0(conn: Connection) -> dict[str, uuid.UUID]:
    """The rows a 0.1.0 client writes for a default backend and two employees, one of them
    aliased ``ada``; returns their ids."""
    ids = {"backend": uuid.uuid4(), "ada": uuid.uuid4(), "bob": uuid.uuid4()}
    execute(
        conn,
        "INSERT INTO dc_backend (id, name, url, is_default) VALUES (:id, 'default', NULL, :yes)",
        id=ids["backend"],
        yes=True,
    )
    claystore.metadata.tables["employee"].create(conn)  # model tables: not the system's
    for name, salary in (("ada", 1000.0), ("bob", 900.0)):
        execute(
            conn,
            "INSERT INTO employee (id, dc_class, dc_version, name, salary)"
            " VALUES (:id, 'employee', 1, :name, :salary)",
            id=ids[name],
            name=name.title(),
            salary=salary,
        )
        execute(
            conn,
            "INSERT INTO dc_object (id, class_name, dataset, backend_id)"
            " VALUES (:id, 'employee', 'default', :backend)",
            id=ids[name],
            backend=ids["backend"],
        )
    execute(
        conn,
        "INSERT INTO dc_alias (dataset, name, object_id) VALUES ('default', 'ada', :id)",
        id=ids["ada"],
    )
    return ids


def version_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """The rows of dc_schema."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql("SELECT * FROM dc_schema")]


def system_schema(engine: Engine) -> dict[str, dict[str, Any]]:
    """What the database says of its system tables: columns, keys, indexes."""
    inspector = sa.inspect(engine)
    described = {}
    for name in sorted(n for n in inspector.get_table_names() if n.startswith("dc_")):
        columns = [{**c, "type": str(c["type"])} for c in inspector.get_columns(name)]
        indexes = [  # partial indexes' conditions are SQL clauses: compared as text
            {**i, "dialect_options": {k: str(v) for k, v in i.get("dialect_options", {}).items()}}
            for i in inspector.get_indexes(name)
        ]
        described[name] = {
            "columns": columns,
            "primary_key": inspector.get_pk_constraint(name),
            "foreign_keys": inspector.get_foreign_keys(name),
            "unique": inspector.get_unique_constraints(name),
            "indexes": sorted(indexes, key=lambda i: str(i["name"])),
        }
    return described


@pytest.mark.parametrize("with_versions_index", [True, False], ids=["index", "no-index"])
def test_a_0_1_0_database_is_upgraded_and_its_objects_read_back(
    engine: Engine, db_url: str, with_versions_index: bool
) -> None:
    """A client starting on a 0.1.0 database records version 2, adds a missing registry
    index, keeps the backend, and reads the stored objects by id and by alias."""
    with engine.begin() as conn:
        create_0_1_0_tables(conn, with_versions_index=with_versions_index)
        ids = fill_like_0_1_0(conn)
    with Client(db_url) as client:
        assert Employee.get_by_alias("ada").salary == 1000.0
        assert Employee.get_by_id(ids["bob"]).name == "Bob"
        assert Employee.get_by_id(str(ids["ada"])) is Employee.get_by_alias("ada")
        assert list(client.get_backends()) == [ids["backend"]]
        carol = Employee("Carol", 800.0)
        carol.make_persistent(alias="carol")
    with Client(db_url):
        assert Employee.get_by_alias("carol").name == "Carol"
    assert [row[:2] for row in version_rows(engine)] == [("claystore", SYSTEM_SCHEMA_VERSION)]
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("dc_object")}
    assert VERSIONS_INDEX in indexes


def test_an_upgraded_database_has_the_system_tables_of_a_new_one(
    engine: Engine, db_url: str
) -> None:
    """Upgrading the 0.1.0 tables gives the same columns, keys and indexes as creating the
    current ones on an empty database."""
    with engine.begin() as conn:
        create_0_1_0_tables(conn, with_versions_index=False)
    with Client(db_url):
        pass
    upgraded = system_schema(engine)
    with engine.begin() as conn:
        for table in reversed(system_metadata.sorted_tables):
            table.drop(conn)
    with Client(db_url):
        pass
    assert upgraded == system_schema(engine)
    assert set(upgraded) == set(system_metadata.tables)


def test_a_new_database_records_the_current_version(engine: Engine, db_url: str) -> None:
    """The first start on an empty database creates every system table and records
    claystore's version."""
    with Client(db_url):
        pass
    assert set(system_metadata.tables) <= set(sa.inspect(engine).get_table_names())
    rows = version_rows(engine)
    assert [row[:2] for row in rows] == [("claystore", SYSTEM_SCHEMA_VERSION)]
    assert rows[0][2] is not None


def test_a_database_at_the_current_version_is_read_and_not_written(
    engine: Engine, db_url: str
) -> None:
    """On a database at this version the upgrade reads twice (the table, the version row)
    and writes nothing; starting again leaves the version row as it was."""
    with Client(db_url):
        pass
    before = version_rows(engine)
    dialect = dialect_for(make_url(db_url))
    with engine.connect() as conn, conn.begin(), count_statements(engine) as log:
        system.upgrade_system_schema(conn, dialect)
    assert len(log) == 2, log.statements
    assert log.matching("SELECT", "PRAGMA") == log.statements
    with Client(db_url):
        pass
    assert version_rows(engine) == before


def test_a_database_of_a_newer_release_refuses_to_start(engine: Engine, db_url: str) -> None:
    """A database whose dc_schema says version 999 raises SchemaVersionError naming both
    versions and the fix, and nothing is written."""
    with engine.begin() as conn:
        system_metadata.create_all(conn)
        execute(
            conn,
            "INSERT INTO dc_schema (component, version, upgraded_at)"
            " VALUES ('claystore', 999, CURRENT_TIMESTAMP)",
        )
    tables = set(sa.inspect(engine).get_table_names())
    before = version_rows(engine)
    with pytest.raises(errors.SchemaVersionError) as raised:
        Client(db_url).start()
    message = str(raised.value)
    assert "version 999" in message
    assert f"up to {SYSTEM_SCHEMA_VERSION}" in message
    assert "upgrade claystore to a release that knows system schema version 999" in message
    assert isinstance(raised.value, errors.SchemaMismatchError)
    assert set(sa.inspect(engine).get_table_names()) == tables
    assert version_rows(engine) == before
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM dc_backend").scalar() == 0


def test_a_failed_upgrade_leaves_the_0_1_0_database_as_it_was(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a step fails, the steps before it are rolled back with it (DDL is transactional)."""

    def fail(conn: Connection, dialect: object) -> None:
        raise RuntimeError("step 2 -> 3 failed")

    steps = (*UPGRADE_STEPS, UpgradeStep(2, 3, fail))
    monkeypatch.setattr(system, "UPGRADE_STEPS", steps)
    monkeypatch.setattr(system, "SYSTEM_SCHEMA_VERSION", 3)
    with engine.begin() as conn:
        create_0_1_0_tables(conn, with_versions_index=False)
    before = system_schema(engine)
    with pytest.raises(RuntimeError, match="2 -> 3"):
        Client(db_url).start()
    assert system_schema(engine) == before
    assert "dc_schema" not in sa.inspect(engine).get_table_names()


def test_a_database_with_part_of_the_system_tables_is_refused(engine: Engine, db_url: str) -> None:
    """Some 0.1.0 system tables without the others is a SchemaMismatchError naming them."""
    with engine.begin() as conn:
        for statement in statements_0_1_0(conn.dialect.name):
            if "dc_alias" not in statement:
                conn.exec_driver_sql(statement)
    with pytest.raises(errors.SchemaMismatchError, match="but not dc_alias"):
        Client(db_url).start()


def test_a_version_table_without_claystore_s_row_is_refused(engine: Engine, db_url: str) -> None:
    """dc_schema without the 'claystore' row (changed by hand) is a SchemaMismatchError."""
    with Client(db_url):
        pass
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM dc_schema")
    with pytest.raises(errors.SchemaMismatchError, match="no row for 'claystore'"):
        Client(db_url).start()


def test_clients_starting_at_once_on_a_new_database_both_start(engine: Engine, db_url: str) -> None:
    """Two clients starting together on an empty database both start; the tables are made
    and the version and default backend recorded once."""
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []
    clients = [Client(db_url), Client(db_url)]

    def start(client: Client) -> None:
        try:
            barrier.wait(timeout=30)
            client.start()
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for client in clients:
        client.stop()
    assert failures == []
    assert all(not thread.is_alive() for thread in threads)
    assert [row[:2] for row in version_rows(engine)] == [("claystore", SYSTEM_SCHEMA_VERSION)]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM dc_backend").scalar() == 1


def test_the_upgrade_steps_lead_from_0_1_0_to_the_current_version() -> None:
    """The steps start at version 1, each ends where the next begins, and the last ends at
    SYSTEM_SCHEMA_VERSION."""
    versions = [UPGRADE_STEPS[0].from_version] + [s.to_version for s in UPGRADE_STEPS]
    assert versions == list(range(1, SYSTEM_SCHEMA_VERSION + 1))
    assert all(s.from_version + 1 == s.to_version for s in UPGRADE_STEPS)
