"""The multi-backend test fixtures: ``backend_url_factory`` and ``three_backends`` (conftest).

Each URL they give is an empty database of ``db_url``'s engine that no other one sees into; on
PostgreSQL the ``second`` one lives on the other server, and both servers allow prepared
(two-phase) transactions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN2_URL


def _table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _create_table(url: str, name: str) -> None:
    engine = sa.create_engine(url)
    try:
        table = sa.Table(name, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert().values(id=1))
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar_one()
    finally:
        engine.dispose()


def test_backends_are_distinct_empty_databases_of_the_same_engine(
    db_url: str, backend_url_factory: Callable[..., str], three_backends: list[str]
) -> None:
    """Every URL is new, empty, of db_url's engine, and a table made in one is seen there only."""
    urls = [db_url, *three_backends, backend_url_factory(), backend_url_factory("second")]
    assert len(set(urls)) == len(urls)
    engine = make_url(db_url).get_backend_name()
    assert {make_url(url).get_backend_name() for url in urls} == {engine}
    for url in urls:
        assert _table_names(url) == set()

    for index, url in enumerate(urls):
        _create_table(url, f"probe_{index}")

    for index, url in enumerate(urls):
        assert _table_names(url) == {f"probe_{index}"}
        assert _scalar(url, f"SELECT count(*) FROM probe_{index}") == 1


def test_unknown_server_is_refused(backend_url_factory: Callable[..., str]) -> None:
    """Only the ``local`` and ``second`` servers exist."""
    with pytest.raises(ValueError, match="'third'"):
        backend_url_factory("third")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_second_postgresql_server_is_another_server_with_prepared_transactions(
    db_url: str, engine_name: str, three_backends: list[str]
) -> None:
    """On PostgreSQL ``second`` connects to the other server (port 5433 by default), and both
    servers allow prepared transactions (max_prepared_transactions > 0)."""
    local, second = three_backends
    main_port = _scalar(db_url, "SELECT inet_server_port()")
    assert _scalar(local, "SELECT inet_server_port()") == main_port
    second_port = _scalar(second, "SELECT inet_server_port()")
    assert second_port == make_url(ADMIN2_URL).port == make_url(second).port
    assert second_port != main_port
    for url in (db_url, second):
        assert int(str(_scalar(url, "SHOW max_prepared_transactions"))) > 0
