"""Model classes of the federation tests (``tests/orm/test_federation.py``), importable by
``claystore backends federate --models tests.orm.federation_models``."""

from __future__ import annotations

from claystore import DataClayObject


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
