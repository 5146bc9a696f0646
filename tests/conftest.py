"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

``db_url`` is parametrised over the two engines.  SQLite: a new database file per test.
PostgreSQL: one database per test run (created here, dropped at the end), one schema per test
(dropped after it), so no test sees another's tables or rows.

PostgreSQL is found at ``CLAYSTORE_TEST_POSTGRES_URL`` (default: the local server, user
postgres).  When it cannot be reached its tests are skipped — unless
``CLAYSTORE_REQUIRE_POSTGRES=1`` (set by CI), which turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore import Client

ADMIN_URL = os.environ.get(
    "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("CLAYSTORE_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test run (None when the server is unreachable)."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"claystore_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if REQUIRE_POSTGRES:
            pytest.fail(
                f"PostgreSQL is required (CLAYSTORE_REQUIRE_POSTGRES=1) but unreachable: {exc}"
            )
        yield None
        return
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A URL of an empty database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    database = request.getfixturevalue("postgres_database")
    if database is None:
        pytest.skip("PostgreSQL is not reachable (set CLAYSTORE_REQUIRE_POSTGRES=1 to fail)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture
def client(db_url: str) -> Iterator[Client]:
    """A started client on an empty database of each engine."""
    with Client(db_url) as started:
        yield started


@pytest.fixture
def engine_name(db_url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return make_url(db_url).get_backend_name()
