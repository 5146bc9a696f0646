"""Versions as rows: new_version, consolidate_version (conflicts, races), lineage, delete rules."""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import threading
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from claystore import Client, DataClayObject, activemethod
from claystore.errors import (
    ObjectHasVersionsError,
    ObjectIsNotVersionError,
    ObjectNotRegisteredError,
    VersionConflictError,
)
from claystore.orm.system import dc_object
from claystore.orm.transaction import Transaction
from tests.statements import count_statements

# -- models (module level: the spawned race workers import them from here) -------------------------


class VerEmployee(DataClayObject):
    __tablename__ = "ver_employee"

    name: str
    salary: float

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary

    @activemethod
    def branch_and_raise(self, amount: float) -> VerEmployee:
        version = self.new_version()
        version.salary += amount
        version.consolidate_version()
        return version


class VerManager(VerEmployee):
    __tablename__ = "ver_manager"

    bonus: float = 0.0


class VerDepartment(DataClayObject):
    __tablename__ = "ver_department"

    name: str
    budget: float = 0.0
    tags: list[str]
    head: VerEmployee | None = None
    staff: list[VerEmployee]

    def __init__(self, name: str, *staff: VerEmployee) -> None:
        self.name = name
        self.tags = []
        self.staff = list(staff)


class VerNode(DataClayObject):
    __tablename__ = "ver_node"

    label: str
    next: VerNode | None = None
    peers: dict[str, VerNode]

    def __init__(self, label: str) -> None:
        self.label = label
        self.peers = {}


# -- helpers ---------------------------------------------------------------------------------------


def _rows(client: Any, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    statement = sa.text(sql).bindparams(
        *(sa.bindparam(k, type_=sa.Uuid) for k, v in params.items() if isinstance(v, UUID))
    )
    with client.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(statement, params)]


def _oid(obj: Any) -> UUID:
    object_id: UUID = obj._dc_meta.id
    return object_id


def _lineage(client: Any, obj: Any) -> tuple[Any, ...]:
    """(original_id, parent_id, parent_version) of ``obj`` in the registry."""
    c = dc_object.c
    statement = sa.select(c.original_id, c.parent_id, c.parent_version).where(c.id == _oid(obj))
    with client.engine.connect() as conn:
        return tuple(conn.execute(statement).one())


def _row_version(client: Any, table: str, obj: Any) -> int:
    (version,) = _rows(client, f"SELECT dc_version FROM {table} WHERE id = :id", id=_oid(obj))[0]
    return int(version)


# -- new_version -----------------------------------------------------------------------------------


def test_new_version_is_a_new_row_recording_its_parent(client: Any) -> None:
    """A version is a new object of the same class with the parent's values in its own row,
    and the registry records the parent and the parent's row version at branch time."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    employee.salary = 1100.0  # row version 2
    version = employee.new_version()
    assert type(version) is VerEmployee
    assert version is not employee
    assert (version.name, version.salary) == ("John", 1100.0)
    assert _oid(version) != _oid(employee)
    assert sorted(_rows(client, "SELECT name, salary, dc_version FROM ver_employee")) == [
        ("John", 1100.0, 1),
        ("John", 1100.0, 2),
    ]
    assert _lineage(client, version) == (_oid(employee), _oid(employee), 2)
    assert _lineage(client, employee) == (None, None, None)


def test_new_version_of_a_transient_object_raises_not_registered(client: Any) -> None:
    """new_version() needs a stored object (dataClay's ObjectNotRegisteredError)."""
    with pytest.raises(ObjectNotRegisteredError, match="is not registered!"):
        VerEmployee("John", 1000.0).new_version()


def test_a_version_and_its_parent_change_independently(client: Any) -> None:
    """Writes to a version do not reach its parent (and vice versa) before consolidation."""
    department = VerDepartment("R&D")
    department.tags = ["a"]
    department.make_persistent()
    version = department.new_version()
    version.tags = ["a", "b"]
    version.name = "Research"
    department.budget = 5.0
    assert (department.name, department.tags, department.budget) == ("R&D", ["a"], 5.0)
    assert (version.name, version.tags, version.budget) == ("Research", ["a", "b"], 0.0)


def test_versions_of_versions_form_a_chain_visible_in_dc_meta(client: Any) -> None:
    """_dc_meta exposes the lineage: original, parent, is_version, direct versions."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    v1 = employee.new_version()
    v2 = v1.new_version()
    meta, meta1, meta2 = employee._dc_meta, v1._dc_meta, v2._dc_meta
    assert not meta.is_version
    assert meta.versions_object_ids == (meta1.id,)
    assert meta1.is_version
    assert meta1.original_object_id == meta.id
    assert meta1.parent_object_id == meta.id
    assert meta1.versions_object_ids == (meta2.id,)
    assert meta2.is_version
    assert meta2.original_object_id == meta.id
    assert meta2.parent_object_id == meta1.id


def test_a_shallow_version_shares_the_referenced_objects(client: Any) -> None:
    """new_version() copies references: they point to the parent's referenced objects."""
    john, jane = VerEmployee("John", 1.0), VerEmployee("Jane", 2.0)
    department = VerDepartment("R&D", john, jane)
    department.head = john
    department.make_persistent()
    version = department.new_version()
    assert version.head is john
    assert version.staff == [john, jane]
    assert john.get_versions() == []
    assert _rows(client, "SELECT count(*) FROM ver_employee") == [(2,)]


def test_a_version_of_a_subclass_copies_every_table(client: Any) -> None:
    """A joined-table object is versioned as its own class, with the values of both tables."""
    boss = VerManager("Anna", 5000.0)
    boss.bonus = 100.0
    boss.make_persistent()
    version = boss.new_version()
    assert type(version) is VerManager
    version.bonus = 200.0
    version.salary = 6000.0
    version.consolidate_version()
    assert (boss.salary, boss.bonus) == (6000.0, 200.0)
    assert _rows(client, "SELECT count(*) FROM ver_manager") == [(1,)]


def test_a_version_belongs_to_its_parents_dataset(db_url: str) -> None:
    """A version is registered in the dataset of the object it was taken from."""
    with Client(db_url, dataset="a"):
        VerEmployee("John", 1.0).make_persistent("john")
    with Client(db_url, dataset="b"):
        version = VerEmployee.get_by_alias("john", dataset="a").new_version()
        assert version._dc_meta.dataset_name == "a"
        version.add_alias("john-v1")  # aliases go to the object's dataset
        assert VerEmployee.get_by_alias("john-v1", dataset="a") is version


# -- consolidate_version ---------------------------------------------------------------------------


def test_dataclay_user_guide_consolidate_a_version(client: Any) -> None:
    """The dataClay "Versioning" example, verbatim."""
    Employee = VerEmployee

    employee = Employee("John", 1000.0)
    employee.make_persistent()

    # Create a new version of the object
    employee_v1 = employee.new_version()

    # Modify the new version
    employee_v1.salary = 2000.0

    # Consolidate the new version
    employee_v1.consolidate_version()

    # The original object has been updated
    assert employee.salary == 2000.0


def test_dataclay_user_guide_versions_of_versions(client: Any) -> None:
    """The dataClay example of versions from versions, verbatim."""
    Employee = VerEmployee

    employee = Employee("John", 1000.0)
    employee.make_persistent()

    # Create a new version of the object
    employee_v1 = employee.new_version()

    # Create a second version from the first one
    employee_v2 = employee_v1.new_version()

    # Modify the second version
    employee_v2.salary = 2000.0

    # Consolidate the second version
    employee_v2.consolidate_version()

    # The original object and the first version had been updated
    assert employee.salary == 2000.0
    assert employee_v1.salary == 2000.0


def test_a_consolidated_version_is_deleted(client: Any) -> None:
    """Consolidation retires the version: its row and registry entry are deleted, the object
    becomes transient (keeping its values), the original's row version goes up by one."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    version = employee.new_version()
    version_id = _oid(version)
    version.salary = 2000.0
    version.consolidate_version()
    assert not version.is_registered
    assert version.salary == 2000.0
    assert _rows(client, "SELECT salary, dc_version FROM ver_employee") == [(2000.0, 2)]
    assert _rows(client, "SELECT count(*) FROM dc_object WHERE id = :id", id=version_id) == [(0,)]
    assert employee._dc_meta.versions_object_ids == ()


def test_consolidate_of_an_object_that_is_not_a_version_raises(client: Any) -> None:
    """consolidate_version() on an original raises dataClay's ObjectIsNotVersionError."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    with pytest.raises(ObjectIsNotVersionError, match=f"Object {_oid(employee)} is not a version!"):
        employee.consolidate_version()
    with pytest.raises(ObjectNotRegisteredError):
        VerEmployee("Jane", 1.0).consolidate_version()


def test_an_intermediate_version_consolidates_after_its_child_did(client: Any) -> None:
    """After v2 is consolidated into v1 and the original, v1 counts as taken anew: changing and
    consolidating it later is no conflict."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    v1 = employee.new_version()
    v2 = v1.new_version()
    v2.name = "Johnny"
    v2.consolidate_version()
    assert _lineage(client, v1)[2] == _row_version(client, "ver_employee", employee)
    v1.salary = 3000.0
    v1.consolidate_version()
    assert (employee.name, employee.salary) == ("Johnny", 3000.0)


def test_consolidate_maps_the_chain_back_level_by_level(client: Any) -> None:
    """A recursive version of a recursive version, consolidated, leaves each level pointing to
    its own level's objects."""
    john = VerEmployee("John", 1.0)
    department = VerDepartment("R&D", john)
    department.head = john
    department.make_persistent()
    d1 = department.new_version(recursive=True)
    john1 = d1.head
    d2 = d1.new_version(recursive=True)
    assert d2.head._dc_meta.parent_object_id == _oid(john1)
    d2.head.salary = 5.0
    d2.consolidate_version()
    assert d1.head is john1
    assert d1.staff == [john1]
    assert department.head is john
    assert department.staff == [john]
    assert (john.salary, john1.salary) == (5.0, 5.0)


def test_a_reference_to_an_ancestor_is_written_as_it_is(client: Any) -> None:
    """A version referencing one of its own ancestors is not a sub-version: the reference is
    consolidated unchanged and the ancestor stays a live version."""
    node = VerNode("a")
    node.make_persistent()
    v1 = node.new_version()
    v2 = v1.new_version()
    v2.next = v1
    v2.consolidate_version()
    assert node.next is v1
    assert v1.next is v1
    assert node.get_versions() == [v1]


def test_consolidating_a_shallow_version_costs_the_same_for_any_number_of_references(
    client: Any,
) -> None:
    """Consolidating a version holding 3 or 60 references sends the same number of statements
    (no query per referenced object)."""
    counts = []
    for size in (3, 60):
        department = VerDepartment("R&D", *(VerEmployee(f"e{i}", 1.0) for i in range(size)))
        department.make_persistent()
        version = department.new_version()
        version.budget = 1.0
        with count_statements(client.engine) as log:
            version.consolidate_version()
        counts.append(len(log))
        assert department.budget == 1.0
    assert counts[0] == counts[1]


# -- conflicts -------------------------------------------------------------------------------------


def test_a_changed_original_is_a_conflict_and_nothing_is_written(client: Any) -> None:
    """If the parent was written after the version was taken, consolidation raises
    VersionConflictError naming the object and the fields, and writes nothing."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    version = employee.new_version()
    employee.salary = 1500.0
    version.salary = 2000.0
    version.name = "Johnny"
    with pytest.raises(VersionConflictError) as caught:
        version.consolidate_version()
    message = str(caught.value)
    assert f"VerEmployee {_oid(employee)} was written after version {_oid(version)}" in message
    assert "fields that differ: name, salary" in message
    assert "force=True" in message
    assert (employee.name, employee.salary) == ("John", 1500.0)
    assert _row_version(client, "ver_employee", employee) == 2
    assert version.is_registered
    assert (version.name, version.salary) == ("Johnny", 2000.0)


def test_a_changed_ancestor_up_the_chain_is_a_conflict(client: Any) -> None:
    """The original written after v1 was taken blocks consolidating v2 (taken from v1), and
    neither v1 nor the original is written."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    v1 = employee.new_version()
    v2 = v1.new_version()
    employee.name = "Jack"
    v2.salary = 2000.0
    with pytest.raises(VersionConflictError, match=f"VerEmployee {_oid(employee)} was written"):
        v2.consolidate_version()
    assert (v1.name, v1.salary, employee.salary) == ("John", 1000.0, 1000.0)
    assert _row_version(client, "ver_employee", v1) == 1
    assert v2.is_registered


def test_force_overwrites_a_conflicting_ancestor(client: Any) -> None:
    """consolidate_version(force=True) writes the version's values despite the conflict."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    version = employee.new_version()
    employee.salary = 1500.0
    version.name = "Johnny"
    version.consolidate_version(force=True)
    assert (employee.name, employee.salary) == ("Johnny", 1000.0)
    assert not version.is_registered


def test_the_second_of_two_sibling_versions_conflicts(client: Any) -> None:
    """Two versions of one object: the first consolidation wins, the second conflicts."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    first, second = employee.new_version(), employee.new_version()
    first.salary, second.salary = 2000.0, 3000.0
    first.consolidate_version()
    with pytest.raises(VersionConflictError, match="fields that differ: salary"):
        second.consolidate_version()
    assert employee.salary == 2000.0
    assert employee.get_versions() == [second]


def test_a_conflict_reports_an_ancestor_written_back_to_its_old_values(client: Any) -> None:
    """Any write after the version was taken is a conflict, even when the values match again."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    version = employee.new_version()
    employee.salary = 1.0
    employee.salary = 1000.0
    with pytest.raises(VersionConflictError, match="no field differs now"):
        version.consolidate_version()


def test_a_failure_during_consolidation_writes_nothing(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consolidation is one transaction: if it fails after writing the ancestors, the ancestors,
    the registry and the version are as before."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    v1 = employee.new_version()
    v2 = v1.new_version()
    v2.salary = 2000.0
    before = _rows(client, "SELECT id, parent_version FROM dc_object ORDER BY id")

    def broken_delete(self: Transaction, obj: Any, state: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Transaction, "delete", broken_delete)
    with pytest.raises(RuntimeError, match="disk full"):
        v2.consolidate_version()
    monkeypatch.undo()
    assert _rows(client, "SELECT id, parent_version FROM dc_object ORDER BY id") == before
    assert _rows(client, "SELECT salary, dc_version FROM ver_employee ORDER BY id") == [
        (1000.0, 1),
        (1000.0, 1),
        (2000.0, 2),
    ]
    assert (employee.salary, v1.salary, v2.is_registered) == (1000.0, 1000.0, True)


# -- races -----------------------------------------------------------------------------------------


def test_two_threads_consolidating_sibling_versions_one_wins(client: Any) -> None:
    """Threads consolidating two versions of one object at once: one wins, one conflicts, and
    the original holds the winner's values."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    versions = [employee.new_version(), employee.new_version()]
    for i, version in enumerate(versions):
        version.name, version.salary = f"worker{i}", float(i)
    barrier = threading.Barrier(2)
    outcome: dict[int, str] = {}

    def work(i: int) -> None:
        barrier.wait(10)
        try:
            versions[i].consolidate_version()
            outcome[i] = "won"
        except VersionConflictError:
            outcome[i] = "conflict"

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(work, i)) for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcome.values()) == ["conflict", "won"]
    winner = next(i for i, result in outcome.items() if result == "won")
    assert (employee.name, employee.salary) == (f"worker{winner}", float(winner))


def _consolidate_worker(
    db_url: str, version_ids: list[str], barrier: Any, results: Any, worker: int
) -> None:
    with Client(db_url):
        versions = [VerEmployee.get_by_id(i) for i in version_ids]
        for version_id, version in zip(version_ids, versions, strict=True):
            barrier.wait(60)
            try:
                version.consolidate_version()
                results.put((version_id, worker, "won"))
            except VersionConflictError:
                results.put((version_id, worker, "conflict"))


@pytest.mark.slow
def test_two_processes_consolidating_sibling_versions_never_mix(db_url: str, client: Any) -> None:
    """Two processes consolidating versions of one object at the same moment (three rounds):
    exactly one wins each round, the other gets the conflict, and the original holds all of
    the winner's values — never a mix."""
    originals = [VerEmployee(f"original{r}", 0.0) for r in range(3)]
    for original in originals:
        original.make_persistent()
    by_worker: list[list[str]] = [[], []]
    expected: dict[str, tuple[str, float]] = {}
    for r, original in enumerate(originals):
        for worker in range(2):
            version = original.new_version()
            version.name, version.salary = f"round{r}-worker{worker}", float(10 * r + worker)
            by_worker[worker].append(str(_oid(version)))
            expected[str(_oid(version))] = (version.name, version.salary)
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    workers = [
        spawn.Process(target=_consolidate_worker, args=(db_url, by_worker[w], barrier, results, w))
        for w in range(2)
    ]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(6)]
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    for r, original in enumerate(originals):
        mine = {by_worker[0][r], by_worker[1][r]}
        round_outcomes = sorted(o for vid, _, o in outcomes if vid in mine)
        assert round_outcomes == ["conflict", "won"]
        winner = next(vid for vid, _, o in outcomes if vid in mine and o == "won")
        assert (original.name, original.salary) == expected[winner]
        assert [str(_oid(v)) for v in original.get_versions()] == sorted(mine - {winner})


# -- get_versions and delete -----------------------------------------------------------------------


def test_get_versions_lists_live_versions_oldest_first(client: Any) -> None:
    """get_versions() lists every live version below the object (versions of versions too),
    and no longer lists consolidated or deleted ones."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    v1, v2 = employee.new_version(), employee.new_version()
    v3 = v1.new_version()
    assert employee.get_versions() == [v1, v2, v3]
    assert v1.get_versions() == [v3]
    v2.dc_delete()
    v3.consolidate_version()
    assert employee.get_versions() == [v1]


def test_deleting_a_version_discards_it(client: Any) -> None:
    """dc_delete() of a version removes it; its parent is untouched."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    version = employee.new_version()
    version.salary = 5.0
    version.dc_delete()
    assert not version.is_registered
    assert employee.salary == 1000.0
    assert employee.get_versions() == []
    assert _rows(client, "SELECT count(*) FROM ver_employee") == [(1,)]


def test_deleting_an_object_with_live_versions_is_refused(client: Any) -> None:
    """dc_delete() of an object that has live versions raises, naming them, and deletes
    nothing; once they are gone the delete works."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    v1 = employee.new_version()
    v2 = v1.new_version()
    with pytest.raises(ObjectHasVersionsError) as caught:
        employee.dc_delete()
    assert f"VerEmployee {_oid(employee)} cannot be deleted" in str(caught.value)
    assert str(_oid(v1)) in str(caught.value)
    assert "consolidate_version()" in str(caught.value)
    with pytest.raises(ObjectHasVersionsError, match=str(_oid(v2))):
        v1.dc_delete()
    assert employee.is_registered
    assert v1.is_registered
    v2.dc_delete()
    v1.consolidate_version()
    employee.dc_delete()
    assert _rows(client, "SELECT count(*) FROM dc_object") == [(0,)]


def test_consolidating_a_version_with_live_versions_is_refused(client: Any) -> None:
    """A version that has versions of its own cannot be consolidated (and so retired) first."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    v1 = employee.new_version()
    v2 = v1.new_version()
    v1.salary = 5.0
    with pytest.raises(ObjectHasVersionsError, match=f"cannot be consolidated.*{_oid(v2)}"):
        v1.consolidate_version()
    assert employee.salary == 1000.0


# -- recursive versions ----------------------------------------------------------------------------


def _small_graph() -> tuple[VerDepartment, VerEmployee, VerEmployee]:
    john, jane = VerEmployee("John", 1.0), VerEmployee("Jane", 2.0)
    department = VerDepartment("R&D", john, jane)
    department.head = john
    department.tags = ["x"]
    department.make_persistent()
    return department, john, jane


def test_a_recursive_version_versions_the_objects_it_reaches(client: Any) -> None:
    """new_version(recursive=True) versions every referenced object once (shared references
    stay shared) and points the version to those versions."""
    department, john, jane = _small_graph()
    version = department.new_version(recursive=True)
    head = version.head
    assert head is not john
    assert head._dc_meta.parent_object_id == _oid(john)
    assert head._dc_meta.original_object_id == _oid(john)
    assert version.staff[0] is head
    assert version.staff[1] is not jane
    assert version.staff[1]._dc_meta.parent_object_id == _oid(jane)
    assert john.get_versions() == [head]
    assert jane.get_versions() == [version.staff[1]]
    assert department.head is john
    assert department.staff == [john, jane]
    assert _rows(client, "SELECT count(*) FROM ver_employee") == [(4,)]


def test_consolidating_a_recursive_version_maps_references_back(client: Any) -> None:
    """Consolidation writes every sub-version into its original, maps references to versions
    back to the originals, keeps new plain objects, and retires all the versions."""
    department, john, jane = _small_graph()
    version = department.new_version(recursive=True)
    version.head.salary = 10.0
    version.staff[1].name = "Janet"
    newcomer = VerEmployee("Nick", 3.0)
    version.staff = [*version.staff, newcomer]
    version.budget = 99.0
    version.tags = ["x", "y"]
    version.consolidate_version()
    assert (department.budget, department.tags) == (99.0, ["x", "y"])
    assert department.head is john
    assert department.staff == [john, jane, newcomer]
    assert (john.salary, jane.name) == (10.0, "Janet")
    assert not version.is_registered
    assert _rows(client, "SELECT count(*) FROM dc_object WHERE parent_id IS NOT NULL") == [(0,)]
    assert _rows(client, "SELECT count(*) FROM ver_employee") == [(3,)]


def test_a_recursive_version_of_a_cycle_stays_a_cycle(client: Any) -> None:
    """Cycles (a <-> b, a dict entry pointing to itself) are versioned and mapped back as
    cycles."""
    a, b = VerNode("a"), VerNode("b")
    a.next, b.next = b, a
    a.peers = {"self": a}
    a.make_persistent()
    version = a.new_version(recursive=True)
    assert version.next.next is version
    assert version.peers["self"] is version
    version.next.label = "b2"
    version.consolidate_version()
    assert a.next is b
    assert b.next is a
    assert a.peers == {"self": a}
    assert b.label == "b2"


def test_a_conflict_in_a_sub_version_blocks_the_whole_consolidation(client: Any) -> None:
    """An original of a sub-version written after branching is a conflict naming it; nothing
    of the group is written."""
    department, john, _ = _small_graph()
    version = department.new_version(recursive=True)
    john.salary = 7.0
    version.budget = 50.0
    with pytest.raises(VersionConflictError) as caught:
        version.consolidate_version()
    assert f"VerEmployee {_oid(john)} was written" in str(caught.value)
    assert "fields that differ: salary" in str(caught.value)
    assert department.budget == 0.0
    assert version.is_registered


def test_deleting_a_recursive_version_discards_its_sub_versions(client: Any) -> None:
    """dc_delete() of a recursive version discards the versions it made of referenced objects."""
    department, john, jane = _small_graph()
    version = department.new_version(recursive=True)
    version.dc_delete()
    assert john.get_versions() == []
    assert jane.get_versions() == []
    assert _rows(client, "SELECT count(*) FROM dc_object WHERE parent_id IS NOT NULL") == [(0,)]
    john.dc_delete()  # no version left to refuse it


def test_two_versions_of_one_object_in_one_group_are_refused(client: Any) -> None:
    """A version that references two versions of one object cannot be consolidated (the object
    would be written twice)."""
    john = VerEmployee("John", 1.0)
    department = VerDepartment("R&D", john)
    department.make_persistent()
    version = department.new_version()
    version.staff = [john.new_version(), john.new_version()]
    with pytest.raises(VersionConflictError, match="share the lineage of"):
        version.consolidate_version()
    assert department.staff == [john]


# -- sessions, activemethods, async ----------------------------------------------------------------


def test_versions_join_a_session(client: Any) -> None:
    """Inside a unit of work, branching, changing and consolidating commit with it."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    with client.session():
        version = employee.new_version()
        version.salary = 2000.0
        version.consolidate_version()
        assert employee.salary == 2000.0
    assert employee.salary == 2000.0
    assert employee.get_versions() == []


def test_a_unit_of_work_that_fails_undoes_the_consolidation(client: Any) -> None:
    """A consolidation inside a unit of work that later raises is rolled back with it."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    version = employee.new_version()

    def consolidate_then_fail() -> None:
        with client.session():
            version.salary = 2000.0
            version.consolidate_version()
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        consolidate_then_fail()
    assert employee.salary == 1000.0
    assert employee.get_versions() == [version]
    assert version.salary == 1000.0


def test_a_conflict_inside_a_unit_of_work_leaves_the_rest_of_it(client: Any) -> None:
    """A conflicting consolidation in a unit of work raises; the unit of work's other writes
    still commit."""
    employee, other = VerEmployee("John", 1000.0), VerEmployee("Jane", 1.0)
    employee.make_persistent()
    other.make_persistent()
    version = employee.new_version()
    employee.salary = 1500.0
    with client.session():
        other.salary = 2.0
        with pytest.raises(VersionConflictError):
            version.consolidate_version()
    assert (other.salary, employee.salary, version.is_registered) == (2.0, 1500.0, True)


def test_a_failed_consolidation_inside_a_unit_of_work_leaves_nothing(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consolidation that fails inside a unit of work is undone on its own (a savepoint): the
    unit of work goes on and commits its other writes, none of the consolidation's."""
    employee, other = VerEmployee("John", 1000.0), VerEmployee("Jane", 1.0)
    employee.make_persistent()
    other.make_persistent()
    version = employee.new_version()
    version.salary = 2000.0

    def broken_delete(self: Transaction, obj: Any, state: Any) -> None:
        raise RuntimeError("disk full")

    with client.session():
        other.salary = 2.0
        monkeypatch.setattr(Transaction, "delete", broken_delete)
        with pytest.raises(RuntimeError, match="disk full"):
            version.consolidate_version()
        monkeypatch.undo()
    assert (other.salary, employee.salary) == (2.0, 1000.0)
    assert _row_version(client, "ver_employee", employee) == 1
    assert employee.get_versions() == [version]


def test_versions_inside_an_activemethod(client: Any) -> None:
    """An activemethod can branch and consolidate its own object in its transaction."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()
    version = employee.branch_and_raise(500.0)
    assert employee.salary == 1500.0
    assert not version.is_registered


def test_async_twins(client: Any) -> None:
    """a_new_version, a_get_versions and a_consolidate_version are coroutine forms."""
    employee = VerEmployee("John", 1000.0)
    employee.make_persistent()

    async def run() -> None:
        version = await employee.a_new_version()
        assert await employee.a_get_versions() == [version]
        version.salary = 2000.0
        await version.a_consolidate_version()

    asyncio.run(run())
    assert employee.salary == 2000.0
