"""Storage sizes (issue 15, part 2): ``client.calculate_storage_size``.

The whole store and one class, on SQLite files (``dbstat``, and the page-count fallback forced)
and PostgreSQL schemas (``pg_total_relation_size``): sizes are positive, grow with the data,
a class is part of the store and includes its subclasses' and link tables and its share of the
registry, sizes are split per backend, only claystore's tables count, and bad input is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from claystore import Client, DataClayObject
from claystore.dialects.storage import SQLiteStorage
from claystore.errors import ConfigurationError
from claystore.housekeeping.report import StorageSize, human_size
from tests.housekeeping.models import HkDepartment, HkManager, HkStaff, build_store
from tests.orm.backend_helpers import OtherClient


class HsItem(DataClayObject):
    __tablename__ = "hs_item"

    name: str
    payload: str

    def __init__(self, name: str) -> None:
        self.name = name
        self.payload = name * 20


class HsBin(DataClayObject):
    __tablename__ = "hs_bin"

    items: list[HsItem]

    def __init__(self) -> None:
        self.items = []


def store_items(client: Client, count: int, backend: object = None) -> list[HsItem]:
    """``count`` new items stored in one unit of work (on ``backend``, default: the
    client's)."""
    items = [HsItem(f"item{n}") for n in range(count)]
    with client.session():
        for item in items:
            item.make_persistent(backend_id=backend)
    return items


def raw(client: Client, *statements: str) -> None:
    """Run SQL statements on the client's metadata database in one transaction."""
    with client.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def registry_rows(client: Client, *tables: str) -> tuple[int, int]:
    """Registry rows of the classes ``tables`` and all registry rows, in the metadata db."""
    names = ", ".join(f"'{t}'" for t in tables)
    with client.engine.connect() as conn:
        ours = conn.exec_driver_sql(f"SELECT count(*) FROM dc_object WHERE class_name IN ({names})")
        every = conn.exec_driver_sql("SELECT count(*) FROM dc_object")
        return int(ours.scalar_one()), int(every.scalar_one())


@pytest.fixture
def no_dbstat(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite measured as if its library had no ``dbstat`` table (the page-count path)."""
    monkeypatch.setattr(SQLiteStorage, "has_dbstat", False)


def test_human_size_uses_powers_of_1024_with_one_decimal() -> None:
    """Bytes below 1 KiB are whole; above, one decimal and the largest fitting binary unit."""
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1024) == "1.0 KiB"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(int(12.3 * 1024 * 1024)) == "12.3 MiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"
    assert human_size(3 * 1024**6) == "3072.0 PiB"
    assert StorageSize(bytes=2048).human == "2.0 KiB"
    assert str(StorageSize(bytes=0)) == "0 B"


def test_store_size_counts_every_claystore_table(client: Client) -> None:
    """The whole store is every dc_* table and every model and link table, with their
    indexes, added up per backend and in total."""
    build_store()
    size = client.calculate_storage_size()
    assert size.bytes > 0
    assert size.backends == {"default": size.bytes}
    tables = size.tables["default"]
    assert sum(tables.values()) == size.bytes
    expected = {"dc_object", "dc_alias", "dc_backend", "dc_schema", "hk_staff", "hk_manager"}
    expected |= {"hk_department", "hk_department_staff", "hk_manager_reports", "hk_office"}
    assert expected <= set(tables)
    assert all(value > 0 for value in tables.values())
    assert size.to_dict()["human"] == size.human


def test_store_size_leaves_out_tables_that_are_not_claystore_s(client: Client) -> None:
    """A table another application keeps in the same database is not counted; the table of a
    class the registry names but no module defines is."""
    build_store()
    raw(
        client,
        "CREATE TABLE other_app (id INTEGER PRIMARY KEY, note TEXT)",
        "INSERT INTO other_app VALUES (1, 'x')",
        "CREATE TABLE hs_ghost (id VARCHAR(40) PRIMARY KEY)",
        "INSERT INTO dc_object (id, class_name, dataset, backend_id) "
        "SELECT '0193a0a0000070008000000000000001', 'hs_ghost', dataset, backend_id "
        "FROM dc_object WHERE class_name = 'hk_department'",
    )
    tables = client.calculate_storage_size().tables["default"]
    assert "other_app" not in tables
    assert tables["hs_ghost"] > 0


def test_store_size_grows_when_objects_are_stored(client: Client) -> None:
    """Storing 2,000 more objects makes the store, and their class, bigger."""
    store_items(client, 10)
    before = client.calculate_storage_size()
    before_class = client.calculate_storage_size(HsItem)
    store_items(client, 2_000)
    after = client.calculate_storage_size()
    assert after.bytes > before.bytes
    assert after.tables["default"]["hs_item"] > before.tables["default"]["hs_item"]
    assert after.tables["default"]["dc_object"] > before.tables["default"]["dc_object"]
    assert client.calculate_storage_size(HsItem).bytes > before_class.bytes


def test_class_size_is_its_tables_and_a_share_of_the_registry(client: Client) -> None:
    """One class is its table, its subclasses' tables, their link tables and its share of
    dc_object: more than nothing, less than the store."""
    build_store()
    store_items(client, 200)
    whole = client.calculate_storage_size()
    staff = client.calculate_storage_size(HkStaff)
    assert 0 < staff.bytes < whole.bytes
    tables = staff.tables["default"]
    assert set(tables) == {"hk_staff", "hk_manager", "hk_manager_reports", "dc_object"}
    for table in ("hk_staff", "hk_manager", "hk_manager_reports"):
        assert tables[table] == whole.tables["default"][table]
    ours, every = registry_rows(client, "hk_staff", "hk_manager")
    assert ours == 7
    assert tables["dc_object"] == whole.tables["default"]["dc_object"] * ours // every
    assert sum(tables.values()) == staff.bytes == staff.backends["default"]


def test_class_size_includes_its_subclasses_but_not_its_parent(client: Client) -> None:
    """A class with a subclass counts the subclass's tables; the subclass alone does not count
    its parent's table, so it is smaller."""
    build_store()
    staff = client.calculate_storage_size(HkStaff)
    manager = client.calculate_storage_size(HkManager)
    assert set(manager.tables["default"]) == {"hk_manager", "hk_manager_reports", "dc_object"}
    assert manager.tables["default"]["hk_manager"] == staff.tables["default"]["hk_manager"]
    assert 0 < manager.bytes < staff.bytes


def test_class_is_named_by_class_name_or_table_name(client: Client) -> None:
    """A collection may be given as the class, its name or its table's name."""
    build_store()
    by_class = client.calculate_storage_size(HkDepartment)
    assert client.calculate_storage_size("HkDepartment") == by_class
    assert client.calculate_storage_size("hk_department") == by_class
    assert "hk_department_staff" in by_class.tables["default"]


def test_unknown_collection_is_refused(client: Client) -> None:
    """A name that is no model class nor table raises ConfigurationError naming it."""
    build_store()
    with pytest.raises(ConfigurationError, match="NoSuchClass"):
        client.calculate_storage_size("NoSuchClass")
    with pytest.raises(ConfigurationError, match="42"):
        client.calculate_storage_size(42)


def test_sizes_are_split_per_backend(
    client: Client, backend_url_factory: Callable[..., str]
) -> None:
    """With two backends, each has its size (its tables), the total is their sum, and the
    objects stored on the second one make its class tables bigger there."""
    client.add_backend(backend_url_factory(), name="second")
    store_items(client, 5)
    before = client.calculate_storage_size()
    store_items(client, 2_000, backend="second")
    size = client.calculate_storage_size()
    assert set(size.backends) == {"default", "second"}
    assert size.bytes == size.backends["default"] + size.backends["second"]
    assert size.backends["second"] > before.backends["second"]
    assert size.tables["second"]["hs_item"] > size.tables["default"]["hs_item"]
    assert size.tables["default"]["dc_alias"] > 0  # the metadata database's own tables
    items = client.calculate_storage_size(HsItem)
    assert set(items.backends) == {"default", "second"}
    assert items.backends["second"] > items.backends["default"] > 0
    assert items.bytes < size.bytes


def test_stores_sharing_a_server_are_measured_apart(
    client: Client, backend_url_factory: Callable[..., str]
) -> None:
    """Another store in the same server (PostgreSQL: another schema of the same database)
    does not count in this one's size."""
    build_store()
    before = client.calculate_storage_size()
    with OtherClient(backend_url_factory()) as other:
        other.run(store_items, other.client, 2_000)
        assert other.client.calculate_storage_size().bytes > before.bytes
    assert client.calculate_storage_size() == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("no_dbstat")
def test_sqlite_without_dbstat_measures_the_whole_file(client: Client) -> None:
    """Without dbstat the store's size on SQLite is its database file (page_count x
    page_size), with no per-table sizes, and it still grows with the data."""
    build_store()
    size = client.calculate_storage_size()
    with client.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    assert size.bytes == size.backends["default"] == pages * page_size
    assert size.tables == {}
    store_items(client, 2_000)
    assert client.calculate_storage_size().bytes > size.bytes


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_file_size_bounds_the_tables_measured(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback's whole file is at least what dbstat finds in claystore's tables."""
    build_store()
    store_items(client, 500)
    measured = client.calculate_storage_size()
    monkeypatch.setattr(SQLiteStorage, "has_dbstat", False)
    assert client.calculate_storage_size().bytes >= measured.bytes > 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("no_dbstat")
def test_sqlite_without_dbstat_refuses_the_size_of_one_class(client: Client) -> None:
    """Without dbstat one class's size is refused with a ConfigurationError saying why, not
    guessed."""
    build_store()
    with pytest.raises(ConfigurationError, match="dbstat"):
        client.calculate_storage_size(HkStaff)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_dbstat_is_found_once(client: Client) -> None:
    """The SQLite library's dbstat table is looked for once and remembered."""
    build_store()
    client.calculate_storage_size()
    assert SQLiteStorage.has_dbstat is True
    with client.engine.connect() as conn:
        assert SQLiteStorage(conn).can_measure_tables


def test_size_of_an_empty_class_is_its_empty_tables(client: Client) -> None:
    """A class with no object stored still has its (empty) tables and indexes measured, and
    no share of the registry."""
    build_store()
    size = client.calculate_storage_size(HsBin)
    assert size.tables["default"]["dc_object"] == 0
    assert "hs_bin_items" in size.tables["default"]
    assert size.bytes == sum(size.tables["default"].values())
