"""make_persistent, automatic persistence, write-through and identity."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from claystore import errors
from tests.models import Company, Employee, Manager, Node, Person, Pet
from tests.statements import count_statements


def count(client: Any, table: str) -> int:
    with client.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_make_persistent_registers_referenced_objects(client: Any) -> None:
    """make_persistent stores the object and everything it references, recursively."""
    employee = Employee("John", 1000.0)
    company = Company("ABC", employee)
    company.make_persistent()
    assert company.is_registered
    assert employee.is_registered
    assert employee.is_persistent
    assert count(client, "employee") == 1
    assert count(client, "company_employees") == 1


def test_quickstart_flow_from_the_issue(client: Any) -> None:
    """The README example: write-through and identity through an alias."""
    employee = Employee("John", 1000.0)
    company = Company("ABC")
    company.employees = [employee]
    company.make_persistent("ABC")
    employee.salary = 2000.0
    assert Company.get_by_alias("ABC").employees[0] is employee
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name, salary FROM employee")).one() == ("John", 2000.0)


def test_non_recursive_make_persistent_refuses_transient_references(client: Any) -> None:
    """recursive=False with a reference to a transient object raises and stores nothing."""
    company = Company("ABC", Employee("John", 1.0))
    with pytest.raises(errors.ReferenceNotPersistentError, match=r"Company.employees"):
        company.make_persistent(recursive=False)
    assert not company.is_registered
    assert count(client, "company") == 0
    company.employees[0].make_persistent()
    company.make_persistent(recursive=False)
    assert company.employees[0].is_registered


def test_cycles_are_stored_once(client: Any) -> None:
    """Reference cycles (a couple married to each other) persist each object once."""
    alice, bob = Person("Alice", 30), Person("Bob", 31)
    alice.spouse, bob.spouse = bob, alice
    alice.friends = {bob}
    bob.friends = {alice}
    alice.make_persistent()
    assert bob.is_registered
    assert count(client, "person") == 2
    assert alice.spouse is bob
    assert bob.spouse.spouse is bob
    assert alice.friends == {bob}


def test_unions_dicts_and_subclasses_round_trip(client: Any) -> None:
    """Union references, dicts of references and subclass instances come back as themselves."""
    owner = Person("Owner", 40)
    rex, tom = Pet("Rex"), Pet("Tom")
    owner.pets = {"dog": rex, "cat": tom}
    owner.favourite = rex
    owner.make_persistent()
    assert owner.pets == {"cat": tom, "dog": rex}
    assert owner.favourite is rex
    owner.favourite = owner
    assert owner.favourite is owner
    boss = Manager("Boss", 10.0, bonus=2.0)
    boss.reports = [Employee("A", 1.0), Manager("B", 2.0)]
    company = Company("ABC", boss)
    company.make_persistent()
    assert [type(e).__name__ for e in company.employees[0].reports] == ["Employee", "Manager"]


def test_assigning_new_objects_to_stored_fields_registers_them(client: Any) -> None:
    """New objects assigned to a stored object's field (also inside containers) are stored."""
    company = Company("ABC")
    company.make_persistent()
    employee = Employee("John", 1000.0)
    company.employees = [employee]
    assert employee.is_registered
    assert employee in company.employees
    ceo = Employee("Ada", 5000.0)
    company.ceo = ceo
    assert ceo.is_registered
    owner = Person("Owner", 40)
    owner.make_persistent()
    pet = Pet("Rex")
    owner.pets = {"dog": pet}
    assert pet.is_registered


def test_in_place_changes_to_a_read_container_are_not_stored(client: Any) -> None:
    """As in dataClay: reading a container gives a copy; append() alone stores nothing."""
    company = Company("ABC")
    company.make_persistent()
    employee = Employee("John", 1000.0)
    company.employees.append(employee)
    assert not employee.is_registered
    assert employee not in company.employees
    employees = company.employees
    employees.append(employee)
    company.employees = employees
    assert employee.is_registered
    assert employee in company.employees


def test_writes_are_visible_to_other_clients_at_once(db_url: str, client: Any) -> None:
    """An assignment commits before returning: a second client reads it."""
    from claystore import Client

    employee = Employee("John", 1000.0)
    employee.make_persistent("john")
    other = Client(db_url)
    with other:
        theirs = Employee.get_by_alias("john")
        assert theirs is not employee
        employee.salary = 3000.0
        assert theirs.salary == 3000.0  # a read returns committed state
        theirs.name = "Johnny"
    other.stop()
    client.start()
    assert employee.name == "Johnny"


def test_identity_map_returns_the_same_object(client: Any) -> None:
    """Within a client, one stored object is one Python object while it is alive."""
    employee = Employee("John", 1000.0)
    employee.make_persistent("CEO")
    assert Employee.get_by_alias("CEO") is employee
    assert Employee.get_by_id(employee._dc_meta.id) is employee


def test_identity_map_is_weak(client: Any) -> None:
    """Objects nobody holds are forgotten, then loaded again on demand."""
    import gc

    Employee("John", 1000.0).make_persistent("gone")
    gc.collect()
    context = client._context
    assert len(context.identity) == 0
    assert Employee.get_by_alias("gone").name == "John"


def test_make_persistent_on_a_stored_object_adds_the_alias(client: Any) -> None:
    """Calling make_persistent again with an alias only adds the alias."""
    employee = Employee("John", 1000.0)
    employee.make_persistent()
    employee.make_persistent("CFO")
    assert employee.get_aliases() == {"CFO"}
    assert count(client, "employee") == 1


def test_failed_make_persistent_stores_nothing(client: Any) -> None:
    """If the alias is taken, none of the graph is stored and objects stay transient."""
    Employee("First", 1.0).make_persistent("taken")
    company = Company("ABC", Employee("John", 1.0), Employee("Jane", 2.0))
    with pytest.raises(errors.AliasAlreadyExistError):
        company.make_persistent("taken")
    assert not company.is_registered
    assert not any(e.is_registered for e in company.employees)
    assert count(client, "employee") == 1
    assert count(client, "company") == 0
    company.make_persistent("ABC")  # the objects are usable again
    assert count(client, "employee") == 3


def test_statement_count_does_not_grow_with_the_graph(client: Any) -> None:
    """Storing N objects of K classes issues the same number of statements for any N."""

    def store(n: int) -> int:
        company = Company("ABC", *[Employee(f"E{i}", float(i)) for i in range(n)])
        company.ceo = company.employees[0]
        with count_statements(client.engine) as log:
            company.make_persistent()
        return len(log.inserts)

    small, large = store(3), store(300)
    assert small == large == 4  # dc_object, company, employee, company_employees


def test_linked_list_of_100000_nodes_persists_iteratively(client: Any) -> None:
    """A 100,000-node linked list persists in one call, without RecursionError."""
    head = node = Node(0)
    for i in range(1, 100_000):
        node.next = Node(i)
        node = node.next
    started = time.perf_counter()
    with count_statements(client.engine) as log:
        head.make_persistent()
    elapsed = time.perf_counter() - started
    print(f"\n100,000-node persist: {elapsed:.2f}s, {len(log)} statements")
    assert count(client, "node") == 100_000
    assert len(log.inserts) == 2
    assert head.next.next.value == 2


def test_a_reference_to_a_deleted_object_reads_as_none(client: Any) -> None:
    """dc_delete nulls references to the object and removes it from containers."""
    john, jane = Employee("John", 1.0), Employee("Jane", 2.0)
    company = Company("ABC", john, jane)
    company.ceo = john
    company.make_persistent()
    john.dc_delete()
    assert not john.is_registered
    assert company.ceo is None
    assert company.employees == [jane]
    assert count(client, "company_employees") == 1
    assert count(client, "dc_object") == 2
    assert john.name == "John"  # the Python object keeps its values, now transient


def test_deleting_an_owner_removes_its_link_rows(client: Any) -> None:
    """dc_delete of a company leaves no link rows behind, and employees survive."""
    company = Company("ABC", Employee("John", 1.0))
    company.make_persistent("ABC")
    company.dc_delete()
    assert count(client, "company_employees") == 0
    assert count(client, "employee") == 1
    with pytest.raises(errors.AliasDoesNotExistError):
        Company.get_by_alias("ABC")


def test_deleting_a_subclass_object_removes_all_its_rows(client: Any) -> None:
    """Joined-table rows of a deleted subclass object all go."""
    boss = Manager("Boss", 1.0)
    boss.reports = [Employee("A", 1.0)]
    boss.make_persistent()
    boss.dc_delete()
    assert count(client, "manager") == 0
    assert count(client, "manager_reports") == 0
    assert count(client, "employee") == 1


def test_reading_a_deleted_object_raises(client: Any) -> None:
    """Another handle's read of an object deleted elsewhere raises ObjectDoesNotExistError."""
    employee = Employee("John", 1.0)
    employee.make_persistent()
    object_id = employee._dc_meta.id
    with client.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM employee"))
    with pytest.raises(errors.ObjectDoesNotExistError, match=str(object_id)):
        _ = employee.salary
    with pytest.raises(errors.ObjectDoesNotExistError):
        employee.salary = 5.0
