"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

``db_url`` is parametrised over the two engines.  SQLite: a new database file per test.
PostgreSQL: one database per test run (created here, dropped at the end), one schema per test
(dropped after it), so no test sees another's tables or rows.

PostgreSQL is found at ``CLAYSTORE_TEST_POSTGRES_URL`` (default: the local server, user
postgres).  When it cannot be reached its tests are skipped — unless
``CLAYSTORE_REQUIRE_POSTGRES=1`` (set by CI), which turns that into a failure.

Tests spread over several backends take ``backend_url_factory``: more empty databases of the
same engine as ``db_url`` (SQLite: more files; PostgreSQL: more schemas, on the main server or on
a second one at ``CLAYSTORE_TEST_POSTGRES2_URL``, default the local cluster on port 5433 that
``.ci/postgres-setup.sh`` creates).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore import Client

ADMIN_URL = os.environ.get(
    "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ADMIN2_URL = os.environ.get(
    "CLAYSTORE_TEST_POSTGRES2_URL", "postgresql+psycopg://postgres@127.0.0.1:5433/postgres"
)
REQUIRE_POSTGRES = os.environ.get("CLAYSTORE_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test run (None when the server is unreachable)."""
    yield from _fresh_database(ADMIN_URL, "CLAYSTORE_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A URL of an empty database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    database = request.getfixturevalue("postgres_database")
    if database is None:
        pytest.skip("PostgreSQL is not reachable (set CLAYSTORE_REQUIRE_POSTGRES=1 to fail)")
    with _fresh_schema(database) as url:
        yield url


@pytest.fixture
def client(db_url: str) -> Iterator[Client]:
    """A started client on an empty database of each engine."""
    with Client(db_url) as started:
        yield started


@pytest.fixture
def engine_name(db_url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return make_url(db_url).get_backend_name()


@pytest.fixture(scope="session")
def postgres2_database() -> Iterator[str | None]:
    """A fresh database on the second PostgreSQL server (None when it is unreachable)."""
    yield from _fresh_database(
        ADMIN2_URL, "second server, CLAYSTORE_TEST_POSTGRES2_URL; run .ci/postgres-setup.sh"
    )


@pytest.fixture
def backend_url_factory(
    db_url: str, request: pytest.FixtureRequest, tmp_path: object
) -> Iterator[Callable[..., str]]:
    """``new(server="local")``: the URL of another empty database of ``db_url``'s engine.

    SQLite: a new file beside ``db_url``'s (for either server).  PostgreSQL: a new schema in
    ``db_url``'s database (``server="local"``) or in a database on the second server
    (``server="second"``; skips the test when that server is unreachable).  All dropped after
    the test.
    """
    is_sqlite = make_url(db_url).get_backend_name() == "sqlite"
    local = None if is_sqlite else request.getfixturevalue("postgres_database")
    second = None if is_sqlite else request.getfixturevalue("postgres2_database")
    count = 0
    with ExitStack() as stack:

        def new(server: str = "local") -> str:
            nonlocal count
            if server not in ("local", "second"):
                msg = f"backend server {server!r}: use 'local' or 'second'"
                raise ValueError(msg)
            count += 1
            if is_sqlite:
                return f"sqlite:///{tmp_path}/backend_{count}.db"
            database = local if server == "local" else second
            if database is None:
                pytest.skip(
                    "the second PostgreSQL server is not reachable (run .ci/postgres-setup.sh; "
                    "set CLAYSTORE_REQUIRE_POSTGRES=1 to fail)"
                )
            return stack.enter_context(_fresh_schema(database))

        yield new


@pytest.fixture
def three_backends(backend_url_factory: Callable[..., str]) -> list[str]:
    """Two more empty databases beside ``db_url``: ``[local, second]`` (see backend_url_factory)."""
    return [backend_url_factory("local"), backend_url_factory("second")]


def _fresh_database(admin_url: str, server: str) -> Iterator[str | None]:
    """Create a database on the server at ``admin_url``, yield its URL, drop it at the end.

    Yields None when the server is unreachable (fails instead under CLAYSTORE_REQUIRE_POSTGRES=1).
    """
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"claystore_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if REQUIRE_POSTGRES:
            pytest.fail(
                f"PostgreSQL ({server}) is required (CLAYSTORE_REQUIRE_POSTGRES=1) but "
                f"unreachable: {exc}"
            )
        yield None
        return
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def _fresh_schema(database: str) -> Iterator[str]:
    """A new schema in ``database``: yields a URL whose search_path is it, drops it after."""
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
def pg_url(db_url: str, engine_name: str) -> Iterator[str]:
    """``db_url`` for tests of federation (marked to run on PostgreSQL only); whatever a
    federation made in it is dropped after."""
    from tests.orm.federation_models import drop_federation

    assert engine_name == "postgresql", "mark the test: parametrize db_url ['postgresql']"
    yield db_url
    drop_federation(db_url)
