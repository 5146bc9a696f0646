"""The dataClay Advanced Usage "Move Object" examples (../shared/seeds/), as written.

Three backends (``backend_ids = list(client.get_backends())``: the metadata database, one more
database on the same server, one on the second server), SQLite files and PostgreSQL: move one
object, move recursively with remotes and without, ``make_persistent(backend_id=...)`` on a
registered object, ``a_move`` and the asynchronous calls of the same guide.  The class and field
names are the guide's; each example's placement is also checked in the databases' tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import UUID

from claystore import Client, DataClayObject
from tests.orm.backend_helpers import assert_only_on, backend_urls


class Employee(DataClayObject):
    __tablename__ = "seed_move_employee"

    name: str
    salary: float

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary


class Company(DataClayObject):
    __tablename__ = "seed_move_company"

    name: str
    ceo: Employee

    def __init__(self, name: str, ceo: Employee) -> None:
        self.name = name
        self.ceo = ceo


def _three_backends(client: Client, new: Callable[..., str]) -> None:
    client.add_backend(new("local"))
    client.add_backend(new("second"))


def _placed(db_url: str, table: str, obj: DataClayObject, backend: UUID) -> None:
    assert_only_on(backend_urls(db_url), table, [obj._dc_meta.id], backend)


def test_move_object(client: Client, db_url: str, backend_url_factory: Callable[..., str]) -> None:
    """Move the object to the first backend id."""
    _three_backends(client, backend_url_factory)
    # Get a list of available backend ids
    backend_ids = list(client.get_backends())
    employee = Employee("John", 1000.0)
    employee.make_persistent(backend_id=backend_ids[2])

    # Move the object to the first backend id
    employee.move(backend_ids[0])

    assert employee._dc_backend_id == backend_ids[0]
    assert employee._dc_meta.master_backend_id == backend_ids[0]
    assert (employee.name, employee.salary) == ("John", 1000.0)
    _placed(db_url, "seed_move_employee", employee, backend_ids[0])


def test_move_recursive_from_the_same_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Employee and company registered in the same backend: a recursive move takes both."""
    _three_backends(client, backend_url_factory)
    backend_ids = list(client.get_backends())

    employee = Employee("John", 1000.0)
    company = Company("ABC", employee)

    # Register employee and company in the same backend
    company.make_persistent(backend_id=backend_ids[0])

    # Move company to another backend
    company.move(backend_ids[1], recursive=True)

    # employee has also moved to the same backend as company
    employee.name  # forcing update of the backend_id  # noqa: B018
    assert employee._dc_backend_id == backend_ids[1]
    _placed(db_url, "seed_move_employee", employee, backend_ids[1])
    _placed(db_url, "seed_move_company", company, backend_ids[1])


def test_move_recursive_with_remotes(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """recursive=True moves every reachable object, those of other backends too."""
    _three_backends(client, backend_url_factory)
    backend_ids = list(client.get_backends())

    employee = Employee("John", 1000.0)
    employee.make_persistent(backend_id=backend_ids[0])
    company = Company("ABC", employee)
    company.make_persistent(backend_id=backend_ids[1])

    company.move(backend_ids[2], recursive=True)

    # employee has also moved
    employee.name  # forcing update of the backend_id  # noqa: B018
    assert employee._dc_meta.master_backend_id == backend_ids[2]
    _placed(db_url, "seed_move_employee", employee, backend_ids[2])
    _placed(db_url, "seed_move_company", company, backend_ids[2])


def test_move_recursive_without_remotes(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """remotes=False moves only the referents local to the same backend."""
    _three_backends(client, backend_url_factory)
    backend_ids = list(client.get_backends())

    employee = Employee("John", 1000.0)
    employee.make_persistent(backend_id=backend_ids[0])
    company = Company("ABC", employee)
    company.make_persistent(backend_id=backend_ids[1])

    company.move(backend_ids[2], recursive=True, remotes=False)

    # employee is still in backend 0
    employee.name  # forcing update of the backend_id  # noqa: B018
    assert employee._dc_meta.master_backend_id == backend_ids[0]
    assert company._dc_meta.master_backend_id == backend_ids[2]
    _placed(db_url, "seed_move_employee", employee, backend_ids[0])
    _placed(db_url, "seed_move_company", company, backend_ids[2])
    assert company.ceo is employee


def test_make_persistent_of_a_registered_object_moves_it_and_adds_the_alias(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """make_persistent() of an already registered object: move(recursive=False), then
    add_alias()."""
    _three_backends(client, backend_url_factory)
    backend_ids = list(client.get_backends())

    employee = Employee("John", 1000.0)
    company = Company("ABC", employee)
    company.make_persistent(backend_id=backend_ids[1])

    company.make_persistent("abc", backend_id=backend_ids[2])

    assert company._dc_meta.master_backend_id == backend_ids[2]
    assert employee._dc_meta.master_backend_id == backend_ids[1]  # not recursive
    assert Company.get_by_alias("abc") is company
    assert company.get_aliases() == {"abc"}
    _placed(db_url, "seed_move_company", company, backend_ids[2])
    _placed(db_url, "seed_move_employee", employee, backend_ids[1])


def test_a_move_and_the_asynchronous_calls(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """The guide's asynchronous forms: a_get_backends, a_make_persistent with gather, a_move."""
    _three_backends(client, backend_url_factory)

    async def main() -> list[UUID]:
        backend_ids = list(await client.a_get_backends())
        employee_1 = Employee("John", 1000.0)
        employee_2 = Employee("Jane", 2000.0)
        # Use gather to execute multiple make_persistent concurrently
        await asyncio.gather(
            employee_1.a_make_persistent(backend_id=backend_ids[1]),
            employee_2.a_make_persistent(backend_id=backend_ids[2]),
        )
        company = Company("ABC", employee_1)
        await company.a_make_persistent(backend_id=backend_ids[0])
        await company.a_move(backend_ids[2], recursive=True)
        await employee_2.a_move(backend_ids[0])
        assert employee_1._dc_meta.master_backend_id == backend_ids[2]
        _placed(db_url, "seed_move_company", company, backend_ids[2])
        _placed(db_url, "seed_move_employee", employee_1, backend_ids[2])
        _placed(db_url, "seed_move_employee", employee_2, backend_ids[0])
        return backend_ids

    backend_ids = asyncio.run(main())
    assert backend_ids == list(client.get_backends())
