"""Aliases, get/put/update, metadata and the async twins of the object API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from claystore import DataClayObject, errors
from tests.models import Company, Employee, Person


def test_aliases_follow_dataclay(client: Any) -> None:
    """add_alias / get_aliases / delete_alias behave as in the dataClay user guide."""
    employee = Employee("John", 1000.0)
    employee.make_persistent("CEO")
    employee.add_alias("CFO")
    aliases = employee.get_aliases()
    assert "CFO" in aliases
    assert "CEO" in aliases
    Employee.delete_alias("CEO")
    assert employee.get_aliases() == {"CFO"}
    assert Employee.get_by_alias("CFO") is employee


def test_alias_errors_keep_dataclay_names_and_messages(client: Any) -> None:
    """Taken and missing aliases raise dataClay's errors with its messages."""
    Employee("John", 1.0).make_persistent("CEO")
    with pytest.raises(errors.AliasAlreadyExistError, match=r"^Alias default/CEO already exists$"):
        Employee("Jane", 2.0).make_persistent("CEO")
    with pytest.raises(
        errors.AliasDoesNotExistError, match=r"^Alias default/nobody does not exist$"
    ):
        Employee.get_by_alias("nobody")
    with pytest.raises(errors.AliasDoesNotExistError):
        Employee.delete_alias("nobody")
    with pytest.raises(KeyError):  # the built-in a caller would catch
        Employee.get_by_alias("nobody")


def test_aliases_are_unique_per_dataset(db_url: str, client: Any) -> None:
    """The same alias may name different objects in different datasets."""
    from claystore import Client

    john = Employee("John", 1.0)
    john.make_persistent("CEO")
    with Client(db_url, dataset="sales"):
        jane = Employee("Jane", 2.0)
        jane.make_persistent("CEO")
        assert Employee.get_by_alias("CEO") is jane
        assert Employee.get_by_alias("CEO", dataset="default").name == "John"
        assert jane._dc_meta.dataset_name == "sales"


def test_get_by_alias_checks_the_class(client: Any) -> None:
    """Company.get_by_alias of an Employee's alias is refused; the base class accepts any."""
    Employee("John", 1.0).make_persistent("john")
    with pytest.raises(errors.DoesNotExistError, match="names a Employee, not a Company"):
        Company.get_by_alias("john")
    assert DataClayObject.get_by_alias("john").name == "John"


def test_bad_aliases_are_refused(client: Any) -> None:
    """An alias must be a non-empty string."""
    with pytest.raises(errors.ConfigurationError, match="non-empty str"):
        Employee("John", 1.0).make_persistent("")
    with pytest.raises(errors.ConfigurationError):
        Employee("John", 1.0).dc_put(None)  # type: ignore[arg-type]


def test_dc_put_clone_and_update_follow_the_user_guide(client: Any) -> None:
    """dc_put, dc_clone, dc_clone_by_alias, dc_update and dc_update_by_alias."""
    employee = Employee("John", 1000.0)
    employee.dc_put("CEO")
    new_employee = employee.dc_clone()
    assert new_employee.name == employee.name
    assert new_employee is not employee
    assert not new_employee.is_registered
    clone = Employee.dc_clone_by_alias("CEO")
    assert (clone.name, clone.salary) == ("John", 1000.0)
    employee.dc_update(Employee("Marc", 7000.0))
    assert employee.name == "Marc"
    Employee.dc_update_by_alias("CEO", Employee("Anna", 8000.0))
    assert (employee.name, employee.salary) == ("Anna", 8000.0)


def test_recursive_clone_copies_the_graph(client: Any) -> None:
    """dc_clone(recursive=True) clones referenced objects too, keeping cycles."""
    alice, bob = Person("Alice", 30), Person("Bob", 31)
    alice.spouse, bob.spouse = bob, alice
    alice.make_persistent()
    shallow = alice.dc_clone()
    assert shallow.spouse is bob
    deep = alice.dc_clone(recursive=True)
    assert deep.spouse is not bob
    assert deep.spouse.name == "Bob"
    assert deep.spouse.spouse is deep
    deep.make_persistent()
    assert deep.spouse.is_registered


def test_operations_on_transient_objects_raise_not_registered(client: Any) -> None:
    """Operations that need a stored object raise ObjectNotRegisteredError."""
    employee = Employee("John", 1.0)
    for operation in (employee.get_aliases, employee.dc_delete, employee.dc_clone):
        with pytest.raises(errors.ObjectNotRegisteredError, match="is not registered!"):
            operation()
    with pytest.raises(errors.ObjectNotRegisteredError):
        _ = employee._dc_meta


def test_metadata_describes_the_object(client: Any) -> None:
    """_dc_meta and _dc_backend_id report id, class, dataset and backend."""
    employee = Employee("John", 1.0)
    employee.make_persistent()
    meta = employee._dc_meta
    backends = list(client.get_backends())
    assert meta.class_name == "employee"
    assert meta.dataset_name == "default"
    assert meta.master_backend_id == backends[0] == employee._dc_backend_id
    assert meta.original_object_id is None
    assert meta.versions_object_ids == ()
    assert not meta.is_version
    employee.sync()
    assert employee._dc_backend_id == backends[0]


def test_make_persistent_takes_a_backend_id(client: Any) -> None:
    """make_persistent(backend_id=...) accepts a listed backend and refuses others."""
    backend_ids = list(client.get_backends())
    employee = Employee("John", 1000.0)
    employee.make_persistent(backend_id=backend_ids[0])
    assert employee._dc_backend_id == backend_ids[0]
    with pytest.raises(errors.BackendDoesNotExistError, match="Backend nowhere does not exist"):
        Employee("Jane", 1.0).make_persistent(backend_id="nowhere")


def test_get_by_id_finds_the_object(client: Any) -> None:
    """get_by_id loads by id (UUID or str); unknown ids raise ObjectDoesNotExistError."""
    employee = Employee("John", 1.0)
    employee.make_persistent()
    object_id = employee._dc_meta.id
    assert Employee.get_by_id(str(object_id)) is employee
    with pytest.raises(errors.ObjectDoesNotExistError):
        Employee.get_by_id("00000000-0000-0000-0000-000000000000")


def test_async_twins(client: Any) -> None:
    """Every I/O method has an a_ coroutine twin (the dataClay async example runs)."""

    async def main() -> None:
        backends = await client.a_get_backends()
        assert len(backends) == 1
        employee_1 = Employee("John", 1000.0)
        employee_2 = Employee("Jane", 2000.0)
        await asyncio.gather(employee_1.a_make_persistent("j1"), employee_2.a_make_persistent())
        assert employee_1.is_registered
        assert employee_2.is_registered
        assert await Employee.a_get_by_alias("j1") is employee_1
        await employee_1.a_add_alias("j2")
        assert await employee_1.a_get_aliases() == {"j1", "j2"}
        await Employee.a_delete_alias("j2")
        clone = await employee_1.a_dc_clone()
        assert clone.name == "John"
        await employee_1.a_dc_update(Employee("Marc", 1.0))
        assert employee_1.name == "Marc"
        await employee_2.a_dc_delete()
        assert not employee_2.is_registered

    asyncio.run(main())
