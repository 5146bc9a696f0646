"""client.session(): the explicit unit of work."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from claystore import Client, errors
from tests.models import Company, Counter, Employee, Node
from tests.statements import count_statements


def scalar(client: Client, sql: str) -> Any:
    with client.engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_reads_are_served_from_loaded_state(client: Client) -> None:
    """Inside a session an object is loaded once (by the alias lookup's own row, also when
    the object was in memory already); further reads send no SQL."""
    employee = Employee("John", 1000.0)
    employee.make_persistent("john")
    with client.session(), count_statements(client.engine) as log:
        loaded = Employee.get_by_alias("john")
        assert loaded is employee
        first = len(log)
        for _ in range(10):
            assert loaded.salary == 1000.0
            assert loaded.name == "John"
        assert len(log) == first  # the lookup's row is the load


def test_changes_are_written_at_commit_in_batches(client: Client) -> None:
    """D dirty objects of one class cost one UPDATE per changed-column set, at commit."""
    employees = [Employee(f"E{i}", float(i)) for i in range(50)]
    Company("ABC", *employees).make_persistent()
    with count_statements(client.engine) as log:
        with client.session():
            for employee in employees:
                employee.salary = employee.salary + 1
            for employee in employees[:10]:
                employee.name = employee.name.lower()
            assert not log.matching("UPDATE")  # nothing written before commit
        updates = log.matching("UPDATE")
    assert len(updates) == 2  # {salary} and {name, salary}
    assert scalar(client, "SELECT sum(salary) FROM employee") == sum(range(50)) + 50
    assert scalar(client, "SELECT count(*) FROM employee WHERE substr(name, 1, 1) = 'e'") == 10


def test_in_place_container_changes_are_tracked(client: Client) -> None:
    """company.employees.append(e) and list-field appends inside a session are stored."""
    company = Company("ABC")
    company.make_persistent("ABC")
    counter = Counter()
    counter.make_persistent("counter")
    newcomer = Employee("New", 1.0)
    with client.session():
        Company.get_by_alias("ABC").employees.append(newcomer)
        Counter.get_by_alias("counter").history.extend([1, 2, 3])
    assert newcomer.is_registered
    assert company.employees == [newcomer]
    assert counter.history == [1, 2, 3]


def test_new_objects_are_inserted_together(client: Client) -> None:
    """make_persistent of many objects inside a session is one bulk INSERT per table."""

    def inserts(count: int) -> int:
        with count_statements(client.engine) as log, client.session():
            for i in range(count):
                Company(f"C{i}", Employee(f"E{i}", 1.0)).make_persistent()
        return len(log.inserts)

    assert inserts(2) == inserts(500) == 4
    assert scalar(client, "SELECT count(*) FROM company") == 502


def test_queries_see_pending_changes(client: Client) -> None:
    """Pending objects and aliases are flushed before a lookup (autoflush)."""
    with client.session():
        employee = Employee("John", 1.0)
        employee.make_persistent("john")
        assert Employee.get_by_alias("john") is employee
        assert employee.get_aliases() == {"john"}


def test_taken_alias_fails_at_the_call(client: Client) -> None:
    """An alias already taken is reported by make_persistent itself, inside a session too."""
    Employee("John", 1.0).make_persistent("john")
    with pytest.raises(errors.AliasAlreadyExistError), client.session():
        Employee("Jane", 1.0).make_persistent("john")


def test_rollback_leaves_the_database_untouched_and_expires_objects(client: Client) -> None:
    """An exception rolls everything back; changed objects reload, new ones are transient."""
    employee = Employee("John", 1000.0)
    employee.make_persistent()
    newcomer = Employee("New", 1.0)
    with pytest.raises(RuntimeError, match="boom"), client.session():  # noqa: PT012 - block
        employee.salary = 5000.0
        newcomer.make_persistent()
        Company("ABC", newcomer).make_persistent()
        raise RuntimeError("boom")
    assert not newcomer.is_registered
    assert newcomer.name == "New"
    assert employee.salary == 1000.0  # not the unwritten 5000.0
    assert scalar(client, "SELECT count(*) FROM employee") == 1
    assert scalar(client, "SELECT count(*) FROM company") == 0


def test_nested_session_is_a_savepoint(client: Client) -> None:
    """A failing inner session undoes only its own changes."""
    employee = Employee("John", 1000.0)
    employee.make_persistent()
    with client.session():
        employee.salary = 2000.0
        with pytest.raises(RuntimeError), client.session():  # noqa: PT012 - whole block
            employee.name = "Johnny"
            Employee("Ghost", 1.0).make_persistent("ghost")
            raise RuntimeError("inner")
        assert employee.salary == 2000.0
        assert employee.name == "John"
    assert scalar(client, "SELECT name || ':' || CAST(salary AS INTEGER) FROM employee") == (
        "John:2000"
    )
    with pytest.raises(errors.AliasDoesNotExistError):
        Employee.get_by_alias("ghost")


def test_commit_rollback_and_flush_by_hand(client: Client) -> None:
    """session.commit(), rollback() and flush() for callers that manage the transaction."""
    employee = Employee("John", 1.0)
    employee.make_persistent()
    with client.session() as session:
        employee.salary = 2.0
        session.flush()
        assert scalar(client, "SELECT count(*) FROM employee") == 1
        session.commit()
        assert scalar(client, "SELECT salary FROM employee") == 2.0
        employee.salary = 3.0
        session.rollback()
        assert employee.salary == 2.0
        employee.salary = 4.0
    assert scalar(client, "SELECT salary FROM employee") == 4.0


def test_concurrent_change_is_a_version_conflict(engine_name: str, client: Client) -> None:
    """A row changed by someone else after the session loaded it is not overwritten."""
    if engine_name == "sqlite":
        pytest.skip("a SQLite session holds the write lock: no one else can commit meanwhile")
    employee = Employee("John", 1.0)
    employee.make_persistent("john")
    conflict = pytest.raises(errors.VersionConflictError, match=r"Employee .* changed by someone")
    with conflict, client.session():
        assert employee.salary == 1.0  # loaded in the session
        with client.engine.begin() as conn:  # another writer commits meanwhile
            conn.execute(sa.text("UPDATE employee SET name = 'Other', dc_version = 2"))
        employee.salary = 2.0
    assert scalar(client, "SELECT name || ':' || CAST(salary AS INTEGER) FROM employee") == (
        "Other:1"
    )


def test_activemethods_join_the_session(client: Client) -> None:
    """An activemethod called inside a session commits with the session, not at return."""
    counter = Counter()
    counter.make_persistent()
    with pytest.raises(RuntimeError), client.session():  # noqa: PT012 - whole block
        counter.increment()
        counter.increment()
        assert counter.count == 2
        raise RuntimeError("undo")
    assert counter.count == 0


def test_other_threads_read_committed_state_and_wait_to_write(client: Client) -> None:
    """An object held by one thread's session: others read committed values, writes wait."""
    employee = Employee("John", 1.0)
    employee.make_persistent()
    seen: list[float] = []
    written = threading.Event()

    def other() -> None:
        seen.append(employee.salary)
        employee.salary = 3.0  # waits for the session to end
        written.set()

    import contextvars

    with client.session():
        employee.salary = 2.0
        thread = threading.Thread(target=contextvars.copy_context().run, args=(other,))
        thread.start()
        time.sleep(0.3)
        assert seen == [1.0]
        assert not written.is_set()
    thread.join(10)
    assert written.is_set()
    assert employee.salary == 3.0


def test_a_session_belongs_to_its_thread(client: Client) -> None:
    """Using a session object from another thread is a clear error."""
    errors_seen: list[BaseException] = []
    with client.session() as session:

        def use() -> None:
            try:
                session.flush()
            except BaseException as exc:
                errors_seen.append(exc)

        thread = threading.Thread(target=use)
        thread.start()
        thread.join()
    assert isinstance(errors_seen[0], errors.SessionStateError)
    with pytest.raises(errors.SessionStateError, match="closed"):
        session.flush()


def test_identity_holds_inside_a_session(client: Client) -> None:
    """In one thread, an object the program holds is the object the session returns."""
    employee = Employee("John", 1.0)
    employee.make_persistent("john")
    with client.session():
        assert Employee.get_by_alias("john") is employee


def test_a_large_graph_commits_in_constant_statements(client: Client) -> None:
    """add_all of a 20,000-node list inside a session: statements do not grow with it."""
    head = node = Node(0)
    for i in range(1, 20_000):
        node.next = Node(i)
        node = node.next
    with count_statements(client.engine) as log, client.session() as session:
        session.add_all([head])
    assert len(log.inserts) == 2
    assert scalar(client, "SELECT count(*) FROM node") == 20_000


def test_a_session_holds_unchanged_objects_weakly(client: Client) -> None:
    """Objects a session loaded and nobody changed are dropped with the program's last
    reference (memory stays bounded); changed ones are kept and written at commit."""
    import gc

    ids = []
    for i in range(300):
        employee = Employee(f"E{i}", 1.0)
        employee.make_persistent()
        ids.append(employee._dc_meta.id)
    del employee
    company = Company("ABC")
    company.make_persistent("ABC")
    del company
    gc.collect()
    with client.session() as session:
        for object_id in ids:
            assert Employee.get_by_id(object_id).name.startswith("E")  # read, then dropped
        gc.collect()
        tx = session._current()
        assert len(tx.entries) < 10
        Employee.get_by_id(ids[0]).salary = 99.0  # changed, then dropped at once
        Company.get_by_alias("ABC").employees.append(Employee("New", 1.0))  # idem
        gc.collect()
    assert scalar(client, "SELECT count(*) FROM employee WHERE salary = 99.0") == 1
    assert len(Company.get_by_alias("ABC").employees) == 1


def test_unassigned_default_of_a_new_object_reads_in_a_session(client: Client) -> None:
    """A field a new object never assigned reads its default after ``session.add`` (it raised
    KeyError), and changes made from it are written at commit."""
    with client.session() as session:
        counter = Counter()
        session.add(counter)
        assert counter.count == 0
        counter.count += 1
    reloaded = Counter.get_by_id(counter._dc_meta.id)
    assert reloaded.count == 1


def test_a_default_never_assigned_reads_after_another_field(client: Client) -> None:
    """A new object's field left at its class default reads as the default in the session,
    also after another field of the object was read (it raised KeyError)."""
    with client.session():
        counter = Counter()
        counter.make_persistent("c")
        assert counter.history == []
        assert counter.count == 0
    assert Counter.get_by_alias("c").count == 0


def test_new_objects_a_query_returns_are_read_from_memory(client: Client) -> None:
    """An object the session created, flushed by a query that returns it, is read from
    memory afterwards (it cost one SELECT per object)."""
    with client.session():
        ann = Employee("Ann", 1.0)
        ann.make_persistent()
        assert list(Employee.dc_query()) == [ann]
        with count_statements(client.engine) as log:
            assert (ann.name, ann.salary) == ("Ann", 1.0)
        assert len(log) == 0
