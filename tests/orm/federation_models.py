"""Model classes of the federation tests (``tests/orm/test_federation.py``), importable by
``claystore backends federate --models tests.orm.federation_models``, and
:func:`drop_federation`, which the ``pg_url`` fixture runs after each test."""

from __future__ import annotations

from claystore import DataClayObject
from tests.orm.backend_helpers import plain_engine


class FedPerson(DataClayObject):
    name: str
    age: int
    friend: FedPerson | None = None

    def __init__(self, name: str, age: int) -> None:
        self.name = name
        self.age = age


class FedManager(FedPerson):
    level: int
    reports: list[FedPerson]

    def __init__(self, name: str, age: int, level: int, *reports: FedPerson) -> None:
        super().__init__(name, age)
        self.level = level
        self.reports = list(reports)


def drop_federation(url: str) -> None:
    """Drop what federations made in the database of ``url`` (the views' schema, the foreign
    tables' schemas, the servers and the extension), so that no test sees another's."""
    with plain_engine(url) as engine, engine.begin() as conn:
        schemas = conn.exec_driver_sql(
            "SELECT nspname FROM pg_namespace WHERE nspname = 'claystore_all' "
            "OR nspname LIKE 'claystore\\_fdw\\_%%'"
        ).scalars()
        for schema in list(schemas):
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        conn.exec_driver_sql("DROP EXTENSION IF EXISTS postgres_fdw CASCADE")
