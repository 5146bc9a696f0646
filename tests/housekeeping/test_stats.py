"""Class statistics (issue 15, part 4): ``client.stats()``, ``for cls in client`` and
``client.meta_version``.

Counts of objects, versions and aliases per class and per backend, read from the registries of
every backend (aliases in the metadata database may name objects on any backend), classes the
registry names that no module defines, and the system schema version; on SQLite files and
PostgreSQL schemas.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from claystore import Client, DataClayObject
from claystore.housekeeping import stats
from claystore.housekeeping.report import ClassStats
from claystore.migrations.system import SYSTEM_SCHEMA_VERSION
from tests.housekeeping.models import HkDepartment, HkManager, HkOffice, HkStaff, build_store


class HtNote(DataClayObject):
    __tablename__ = "ht_note"

    text: str

    def __init__(self, text: str) -> None:
        self.text = text


def by_name(found: list[ClassStats]) -> dict[str, ClassStats]:
    """The stats by class name."""
    return {entry.name: entry for entry in found}


def raw(client: Client, *statements: str) -> None:
    """Run SQL statements on the client's metadata database in one transaction."""
    with client.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_stats_count_objects_versions_and_aliases_per_class(client: Client) -> None:
    """Each stored class has its objects (without versions), versions and aliases counted;
    a subclass has its own line."""
    dept = build_store()
    member = dept.staff[1]
    member.add_alias("first")
    member.add_alias("first-again")
    member.new_version()
    member.new_version()
    dept.head.new_version()
    found = by_name(client.stats())
    assert list(found) == ["HkDepartment", "HkManager", "HkOffice", "HkStaff"]
    staff = found["HkStaff"]
    assert (staff.objects, staff.versions, staff.aliases) == (6, 2, 2)
    assert staff.cls is HkStaff
    assert staff.table == "hk_staff"
    assert staff.backends == {"default": 6}
    manager = found["HkManager"]
    assert (manager.objects, manager.versions, manager.aliases) == (1, 1, 0)
    department = found["HkDepartment"]
    assert (department.objects, department.versions, department.aliases) == (1, 0, 1)
    assert found["HkOffice"].to_dict() == {
        "class": "HkOffice",
        "table": "hk_office",
        "known": True,
        "objects": 1,
        "versions": 0,
        "aliases": 0,
        "backends": {"default": 1},
    }


def test_deleted_objects_are_not_counted(client: Client) -> None:
    """An object deleted is gone from the counts, and so is its alias."""
    notes = [HtNote(f"n{n}") for n in range(3)]
    for note in notes:
        note.make_persistent()
    notes[0].add_alias("doomed")
    notes[0].dc_delete()
    (entry,) = client.stats()
    assert (entry.name, entry.objects, entry.aliases) == ("HtNote", 2, 0)


def test_stats_count_per_backend_and_aliases_of_objects_elsewhere(
    client: Client, backend_url_factory: Callable[..., str]
) -> None:
    """Objects are counted on the backend that holds them, and an alias (kept in the metadata
    database) of an object on another backend counts for that object's class."""
    client.add_backend(backend_url_factory(), name="second")
    here = [HtNote(f"here{n}") for n in range(2)]
    there = [HtNote(f"there{n}") for n in range(5)]
    for note in here:
        note.make_persistent()
    for note in there:
        note.make_persistent(backend_id="second")
    here[0].add_alias("local")
    for n, note in enumerate(there[:3]):
        note.add_alias(f"remote{n}")
    there[0].add_alias("remote-again")
    there[1].new_version()
    (entry,) = client.stats()
    assert entry.backends == {"default": 2, "second": 5}
    assert (entry.objects, entry.versions, entry.aliases) == (7, 1, 5)


def test_aliases_elsewhere_are_read_in_pages(
    client: Client, backend_url_factory: Callable[..., str]
) -> None:
    """The aliases of objects on other backends are counted alike whatever the page size."""
    client.add_backend(backend_url_factory(), name="second")
    notes = [HtNote(f"n{n}") for n in range(7)]
    with client.session():
        for n, note in enumerate(notes):
            note.make_persistent(alias=f"note{n}", backend_id="second")
    build_store()
    router = client.context.router
    for page in (1, 2, 3, 7, 100):
        found = by_name(stats.class_stats(router, alias_page=page))
        assert found["HtNote"].aliases == 7
        assert found["HkDepartment"].aliases == 1


def test_unknown_class_in_the_registry_is_listed_without_class(client: Client) -> None:
    """A registry row of a class no module defines is listed by its table name with cls None,
    and iterating the client leaves it out."""
    build_store()
    raw(
        client,
        "INSERT INTO dc_object (id, class_name, dataset, backend_id) "
        "SELECT '0193a0a0000070008000000000000001', 'ht_vanished', dataset, backend_id "
        "FROM dc_object WHERE class_name = 'hk_department'",
    )
    found = by_name(client.stats())
    ghost = found["ht_vanished"]
    assert ghost.cls is None
    assert (ghost.table, ghost.objects, ghost.backends) == ("ht_vanished", 1, {"default": 1})
    assert ghost.to_dict()["known"] is False
    assert list(client) == [HkDepartment, HkManager, HkOffice, HkStaff]


def test_iterating_the_client_gives_the_stored_classes(client: Client) -> None:
    """``for cls in client`` yields the classes the store holds objects of, by name; none for
    an empty store."""
    assert list(client) == []
    assert client.stats() == []
    HtNote("x").make_persistent()
    assert list(client) == [HtNote]
    build_store()
    assert list(client) == [HkDepartment, HkManager, HkOffice, HkStaff, HtNote]


def test_meta_version_is_the_system_schema_version(client: Client) -> None:
    """``client.meta_version`` is the system tables' schema version, as text."""
    assert client.meta_version == str(SYSTEM_SCHEMA_VERSION)


def test_meta_version_follows_the_recorded_version(client: Client) -> None:
    """The version is read from the metadata database (dc_schema), not this release's
    constant."""
    raw(client, "UPDATE dc_schema SET version = 3 WHERE component = 'claystore'")
    assert client.meta_version == "3"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_stats_of_a_store_on_two_servers(
    client: Client, backend_url_factory: Callable[..., str]
) -> None:
    """A backend on another PostgreSQL server has its objects and its aliases counted."""
    client.add_backend(backend_url_factory("second"), name="far")
    note = HtNote("far away")
    note.make_persistent(alias="far", backend_id="far")
    (entry,) = client.stats()
    assert (entry.objects, entry.aliases, entry.backends) == (1, 1, {"far": 1})
