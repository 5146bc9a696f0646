"""``claystore backends federate``, run as a user runs it: what it prints, and the views read
back with ``psql``; its mistakes are one line on stderr and exit 1."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from claystore import Client
from tests.orm.federation_models import FedManager, FedPerson
from tests.test_cli_backends import claystore, one_line_error

MODELS = "tests.orm.federation_models"


def psql(url: str, sql: str) -> list[str]:
    """The rows of ``sql`` as ``psql -At`` prints them (fields separated by ``|``)."""
    parsed = make_url(url)
    command = [
        shutil.which("psql") or "psql",
        "-h",
        parsed.host or "127.0.0.1",
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        "-d",
        parsed.database or "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-Atc",
        sql,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.splitlines()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_federate_prints_what_it_set_up_and_psql_reads_every_backend(
    pg_url: str, backend_url_factory: Callable[..., str], tmp_path: object
) -> None:
    """federate prints one row per backend (how the metadata database reads it, how many
    tables; the SQLite one skipped, with the reason) and the views it made; psql then reads
    the objects of every backend from claystore_all.<class>.  Run again, it prints the same."""
    with Client(pg_url) as client:
        client.add_backend(backend_url_factory("second"), name="second")
        client.add_backend(f"sqlite:///{tmp_path}/file.db", name="file")
        FedPerson("ann", 30).make_persistent()
        FedManager("bob", 40, 2).make_persistent(backend_id="second")
        second = next(i for i, b in client.get_backends().items() if b.name == "second")

    out = claystore("backends", "federate", "--models", MODELS, "--url", pg_url).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["backend", "read", "through", "tables"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line.strip()}
    # the in-process command sees every model class the test run defined: count them too
    assert rows["default"][:2] == ["(metadata", "database)"]
    assert rows["second"] == [f"claystore_{second.hex}", rows["default"][2]]
    assert rows["file"][:2] == ["skipped:", "a"]
    assert "postgres_fdw reaches PostgreSQL databases only" in out
    count, _, views = lines[-1].partition(" views in schema claystore_all: ")
    assert {"fed_person", "fed_manager", "fed_manager_reports"} <= set(views.split(", "))
    assert int(count) == len(views.split(", "))
    again = claystore("backends", "federate", "--models", MODELS, "--url", pg_url).stdout
    assert again == out

    assert psql(
        pg_url, "SELECT name, age, dc_class, dc_backend FROM claystore_all.fed_person ORDER BY 1"
    ) == ["ann|30|fed_person|default", "bob|40|fed_manager|second"]


def test_federate_mistakes_are_one_line_errors(db_url: str, engine_name: str) -> None:
    """A model module that does not import, and a SQLite store, are one line on stderr and
    exit 1."""
    bad = claystore("backends", "federate", "--models", "no_such_models", "--url", db_url, expect=1)
    one_line_error(bad, "cannot import model module 'no_such_models'", "ModuleNotFoundError")
    if engine_name == "sqlite":
        refused = claystore("backends", "federate", "--models", MODELS, "--url", db_url, expect=1)
        one_line_error(refused, "needs a PostgreSQL metadata database")
