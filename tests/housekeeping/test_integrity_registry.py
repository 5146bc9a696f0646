"""Levels 1 (classes) and 2 (registry) of ``client.check_integrity``, on both engines.

Each test builds a healthy store (:func:`build_store`), damages it with raw SQL in one way
and asserts that the check reports exactly that kind of problem, where it is (class, table,
object id, field), at its level, and nothing at the level below.  Schema damage is done with
the client stopped; the check then runs on a client started with ``schema="skip"`` (a start
in the default mode refuses a drifted table).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from claystore import Client
from claystore.housekeeping.report import IntegrityReport, Problem, ProblemKind
from claystore.orm import twophase
from tests.housekeeping.models import HkDepartment, HkManager, HkOffice, HkStaff, build_store
from tests.orm.backend_helpers import plain_engine

K = ProblemKind
#: The owner of a journal row or commit record whose process is gone (no pid is that high).
DEAD_OWNER = "no-such-host-is-this:4194305:1"


def _execute(url: str, statement: Any, params: dict[str, Any] | None = None) -> None:
    """Run one statement on the database at ``url`` (a connection of its own, committed)."""
    with plain_engine(url) as engine, engine.begin() as conn:
        conn.execute(statement, params or {})


def _delete(url: str, table: str, object_id: UUID) -> None:
    """Delete the row ``object_id`` of ``table`` (raw SQL)."""
    plain = sa.table(table, sa.column("id", sa.Uuid))
    _execute(url, sa.delete(plain).where(plain.c.id == object_id))


def _check(client: Client, level: int, **options: Any) -> IntegrityReport:
    options.setdefault("stop_on_error", False)
    return client.check_integrity(level=level, **options)


def _only(report: IntegrityReport, kind: ProblemKind) -> Problem:
    """The one problem of ``report``, which must be of ``kind``."""
    assert report.kinds() == {kind}, report.text()
    assert len(report.problems) == 1, report.text()
    return report.problems[0]


def _level_2_only(client: Client, kind: ProblemKind) -> Problem:
    """The one problem a level 2 check finds (of ``kind``); level 1 finds nothing."""
    below = _check(client, 1)
    assert below.ok, below.text()
    return _only(_check(client, 2), kind)


def _id(obj: Any) -> UUID:
    object_id: UUID = obj._dc_meta.id
    return object_id


@pytest.fixture
def dept(client: Client) -> HkDepartment:
    """A healthy store in ``client``."""
    return build_store()


# -- a healthy store ----------------------------------------------------------------------------


def test_a_healthy_store_reports_nothing_at_levels_1_and_2(
    client: Client, dept: HkDepartment
) -> None:
    """A store with objects, a class hierarchy, link tables, a version and aliases has no
    problem at level 1 or 2, and the report says what was read."""
    staff = dept.staff[1]
    staff.new_version()
    HkOffice("Oslo").make_persistent(alias="oslo")
    for level in (1, 2):
        report = _check(client, level)
        assert report.ok, report.text()
        assert not report.stopped
    assert report.checked["tables"] > 0
    assert report.checked["registry rows"] >= 10
    assert report.checked["HkStaff rows"] >= 8  # staff and manager rows, and the version
    assert report.checked["aliases"] == 2
    assert report.checked["versions"] == 1


# -- level 2: registry rows and object rows -------------------------------------------------------


def test_a_registry_row_whose_object_row_is_gone_is_a_missing_object_row(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """Deleting a staff member's row from its table leaves its registry row: level 2 names the
    object, its class and the table without its row."""
    staff = dept.staff[1]
    _delete(db_url, "hk_staff", _id(staff))
    problem = _level_2_only(client, K.MISSING_OBJECT_ROW)
    assert (problem.object_id, problem.class_name, problem.table) == (
        _id(staff),
        "HkStaff",
        "hk_staff",
    )
    assert problem.backend == "default"
    assert "restore the row from a backup" in problem.message.lower()


def test_a_subclass_object_without_its_subclass_row_is_a_missing_object_row(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """A manager (joined-table inheritance: rows in hk_staff and hk_manager) whose hk_manager
    row is gone: level 2 names the subclass table."""
    head = dept.head
    assert isinstance(head, HkManager)
    _delete(db_url, "hk_manager", _id(head))
    problem = _level_2_only(client, K.MISSING_OBJECT_ROW)
    assert (problem.object_id, problem.class_name, problem.table) == (
        _id(head),
        "HkManager",
        "hk_manager",
    )


def test_an_object_row_without_a_registry_row_is_an_unregistered_row(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """A manager whose registry row is deleted has rows in hk_staff and hk_manager: level 2
    reports it once, as a HkManager."""
    assert dept.head is not None
    head = _id(dept.head)
    _delete(db_url, "dc_object", head)
    problem = _level_2_only(client, K.UNREGISTERED_ROW)
    assert (problem.object_id, problem.class_name) == (head, "HkManager")
    assert problem.table in {"hk_staff", "hk_manager"}


def test_an_alias_to_a_deleted_object_is_a_dangling_alias(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """An alias whose object's rows (registry and table) were deleted: level 2 names the alias
    and the missing id."""
    office = HkOffice("Paris")
    office.make_persistent(alias="paris")
    paris = _id(office)
    _delete(db_url, "hk_office", paris)
    _delete(db_url, "dc_object", paris)
    problem = _level_2_only(client, K.DANGLING_ALIAS)
    assert (problem.object_id, problem.field) == (paris, "paris")
    assert "'paris'" in problem.message


def test_a_version_whose_original_is_gone_is_a_broken_version(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """A version of an office whose original's rows were deleted: level 2 names the version
    and the lost original."""
    oslo = HkOffice("Oslo")
    oslo.make_persistent()
    version, original = _id(oslo.new_version()), _id(oslo)
    _delete(db_url, "hk_office", original)
    _delete(db_url, "dc_object", original)
    problem = _level_2_only(client, K.BROKEN_VERSION)
    assert (problem.object_id, problem.class_name, problem.field) == (
        version,
        "HkOffice",
        "original_id",
    )
    assert str(original) in problem.message


def test_an_alias_to_an_object_on_another_backend_is_fine(
    client: Client, dept: HkDepartment, backend_url_factory: Callable[..., str]
) -> None:
    """Ids are looked up across backends: an alias (metadata database) to an object on a
    second backend, and the objects there, are no problem."""
    other = client.add_backend(backend_url_factory(), name="second")
    HkOffice("Rome").make_persistent(alias="rome", backend_id=other)
    report = _check(client, 2)
    assert report.ok, report.text()


# -- level 2: backends, moves, commits ----------------------------------------------------------


def test_a_backend_that_does_not_answer_is_an_unreachable_backend(
    db_url: str, engine_name: str, tmp_path: Path, backend_url_factory: Callable[..., str]
) -> None:
    """A registered backend whose database is gone: level 2 names it once; its objects and
    the alias to one of them are not reported missing; level 1 skips it silently."""
    with Client(db_url) as client:
        build_store()
        lost = client.add_backend(backend_url_factory("second"), name="lost")
        HkOffice("Lost").make_persistent(alias="lost", backend_id=lost)
    gone = (
        f"sqlite:///{tmp_path}/no/such/directory/backend.db"
        if engine_name == "sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:5499/nowhere"
    )
    _execute(db_url, sa.text("UPDATE dc_backend SET url = :url WHERE name = 'lost'"), {"url": gone})
    with Client(db_url, schema="skip") as client:
        problem = _level_2_only(client, K.UNREACHABLE_BACKEND)
    assert problem.backend == "lost"
    assert str(lost) in problem.message


def _default_backend(client: Client) -> UUID:
    return next(iter(client.get_backends()))


def test_a_move_left_in_the_journal_is_a_pending_move(
    client: Client, db_url: str, dept: HkDepartment, backend_url_factory: Callable[..., str]
) -> None:
    """A journal row of a mover that is gone (and the shadow row it copied to the target):
    level 2 reports the move, naming what to run, and not the shadow as unregistered."""
    target_url = backend_url_factory()
    target = client.add_backend(target_url, name="target")
    HkOffice("Bern").make_persistent(backend_id=target)  # the target gets its tables
    office = HkOffice("Nice")
    office.make_persistent()
    moved = _id(office)
    shadow = sa.table(
        "hk_office",
        sa.column("id", sa.Uuid),
        *(sa.column(c) for c in ("dc_class", "dc_version", "city")),
    )
    shadow_row = {"id": moved, "dc_class": "hk_office", "city": "Nice"}
    _execute(target_url, sa.insert(shadow).values(dc_version=1, **shadow_row))
    now = dt.datetime.now(dt.UTC)
    move = sa.table(
        "dc_move",
        *(sa.column(c, sa.Uuid) for c in ("id", "source_id", "target_id")),
        *(sa.column(c) for c in ("state", "object_ids", "tables", "owner")),
        sa.column("started_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    _execute(
        db_url,
        sa.insert(move).values(
            id=uuid.uuid4(),
            source_id=_default_backend(client),
            target_id=target,
            state="copying",
            object_ids=json.dumps([str(moved)]),
            tables=json.dumps([["hk_office", "id"]]),
            owner=DEAD_OWNER,
            started_at=now,
            updated_at=now,
        ),
    )
    problem = _level_2_only(client, K.PENDING_MOVE)
    assert (problem.object_id, problem.class_name) == (moved, "HkOffice")
    assert "client.repair_moves()" in problem.message
    assert "claystore backends repair" in problem.message


def test_a_commit_record_left_behind_is_a_pending_commit(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """A two-phase commit record whose owner is gone: level 2 reports it, naming what to
    run."""
    now = dt.datetime.now(dt.UTC)
    commit = sa.table(
        "dc_commit",
        sa.column("id", sa.Uuid),
        *(sa.column(c) for c in ("state", "participants", "owner")),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    record = uuid.uuid4()
    _execute(
        db_url,
        sa.insert(commit).values(
            id=record,
            state="committing",
            participants="[]",
            owner=DEAD_OWNER,
            created_at=now,
            updated_at=now,
        ),
    )
    problem = _level_2_only(client, K.PENDING_COMMIT)
    assert str(record) in problem.message
    assert "client.repair_transactions()" in problem.message


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_transaction_left_prepared_without_a_record_is_a_pending_commit(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """A prepared transaction of this store (its gid prefix) with no commit record: level 2
    reports it by its gid."""
    gid = f"{twophase.gid_prefix(_default_backend(client))}{uuid.uuid4().hex}_0"
    with plain_engine(db_url) as engine:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("SELECT 1")
            conn.exec_driver_sql(f"PREPARE TRANSACTION '{gid}'")
            conn.commit()
        try:
            problem = _level_2_only(client, K.PENDING_COMMIT)
            assert gid in problem.message
        finally:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql(f"ROLLBACK PREPARED '{gid}'")


# -- level 1: classes ---------------------------------------------------------------------------


def test_a_registry_class_no_model_defines_is_an_unknown_class(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """Registry rows naming a table no model class has: level 1 names the table and the
    number of objects (no crash), and level 2 adds nothing."""
    registry = sa.table(
        "dc_object",
        *(sa.column(c, sa.Uuid) for c in ("id", "backend_id")),
        *(sa.column(c) for c in ("class_name", "dataset")),
    )
    for _ in range(2):
        _execute(
            db_url,
            sa.insert(registry).values(
                id=uuid.uuid4(),
                class_name="hk_gone_class",
                dataset="default",
                backend_id=_default_backend(client),
            ),
        )
    problem = _only(_check(client, 1), K.UNKNOWN_CLASS)
    assert (problem.table, problem.class_name) == ("hk_gone_class", "hk_gone_class")
    assert "2 objects" in problem.message
    assert _check(client, 2).kinds() == {K.UNKNOWN_CLASS}


@pytest.fixture
def damaged(db_url: str) -> Iterator[Callable[[str], Client]]:
    """``damage(sql)``: run ``sql`` on the store (client stopped), then return a client
    started on it with ``schema="skip"`` (closed after the test)."""
    with Client(db_url):
        build_store()
    clients: list[Client] = []

    def damage(sql: str) -> Client:
        _execute(db_url, sa.text(sql))
        started = Client(db_url, schema="skip")
        started.start()
        clients.append(started)
        return started

    yield damage
    for started in clients:
        started.stop()


@pytest.mark.parametrize(
    ("sql", "table", "class_name", "field"),
    [
        ("ALTER TABLE hk_staff DROP COLUMN salary", "hk_staff", "HkStaff", "salary"),
        ("DROP INDEX ix_hk_staff_name", "hk_staff", "HkStaff", "name"),
        ("DROP TABLE hk_department_staff", "hk_department_staff", "HkDepartment", "staff"),
        ("DROP TABLE hk_office", "hk_office", "HkOffice", None),
    ],
    ids=["missing-column", "missing-index", "missing-link-table", "missing-class-table"],
)
def test_a_table_that_differs_from_its_model_is_a_schema_problem(
    damaged: Callable[[str], Client], sql: str, table: str, class_name: str, field: str | None
) -> None:
    """A dropped column, index, link table or class table (whose objects the registry
    names): level 1 names the class, table and field; level 2 adds nothing (it skips what
    level 1 reports)."""
    client = damaged(sql)
    problem = _only(_check(client, 1), K.SCHEMA)
    assert (problem.table, problem.class_name, problem.field) == (table, class_name, field)
    assert table in problem.message
    assert _check(client, 2).kinds() == {K.SCHEMA}


# -- options: stop_on_error, collection, to_file ------------------------------------------------


def test_stop_on_error_stops_at_the_first_problem(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """Two damaged objects: ``stop_on_error=True`` reports one and says it stopped; without
    it both are reported."""
    for staff in dept.staff[1:3]:
        _delete(db_url, "hk_staff", _id(staff))
    stopped = _check(client, 2, stop_on_error=True)
    assert stopped.stopped
    assert len(stopped.problems) == 1
    assert "stopped at the first" in stopped.summary()
    full = _check(client, 2)
    assert not full.stopped
    assert {p.object_id for p in full.problems} == {_id(s) for s in dept.staff[1:3]}


def test_a_collection_check_reads_only_that_class(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """``collection=HkOffice`` (class or name) reports the office's problem, not a staff
    member's nor an unknown class, and counts only office rows."""
    assert dept.staff[1].office is not None
    office = _id(dept.staff[1].office)
    _delete(db_url, "hk_staff", _id(dept.staff[1]))
    _delete(db_url, "dc_object", office)
    for collection in (HkOffice, "HkOffice", "hk_office"):
        report = _check(client, 2, collection=collection)
        problem = _only(report, K.UNREGISTERED_ROW)
        assert (problem.object_id, problem.class_name) == (office, "HkOffice")
        assert report.collection == "HkOffice"
        assert "HkStaff rows" not in report.checked
    assert _check(client, 2).kinds() == {K.UNREGISTERED_ROW, K.MISSING_OBJECT_ROW}


def test_a_subclass_collection_checks_its_rows_in_the_root_table(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """``collection=HkManager``: a manager's row left in hk_staff without a registry row is
    found (the root table's rows of the class are read), a plain staff member's is not."""
    assert dept.head is not None
    head, staff = _id(dept.head), _id(dept.staff[1])
    _delete(db_url, "hk_manager", head)
    _delete(db_url, "dc_object", head)
    _delete(db_url, "dc_object", staff)
    problem = _only(_check(client, 2, collection=HkManager), K.UNREGISTERED_ROW)
    assert (problem.object_id, problem.table) == (head, "hk_staff")
    assert len(_check(client, 2, collection=HkStaff).problems) == 2


def test_to_file_writes_the_report(
    client: Client, db_url: str, dept: HkDepartment, tmp_path: Path, monkeypatch: Any
) -> None:
    """``to_file=True`` writes a dated text file in the current directory; a ``.json`` path
    gets the JSON form, with the problems."""
    _delete(db_url, "hk_staff", _id(dept.staff[1]))
    monkeypatch.chdir(tmp_path)
    report = _check(client, 2, to_file=True)
    assert report.path is not None
    assert report.path.name.startswith("claystore-check-")
    assert "missing object row" in (tmp_path / report.path).read_text(encoding="utf-8")
    target = tmp_path / "report.json"
    _check(client, 2, to_file=target)
    written = json.loads(target.read_text(encoding="utf-8"))
    assert [p["kind"] for p in written["problems"]] == ["missing object row"]
    assert written["problems"][0]["object_id"] == str(_id(dept.staff[1]))


def test_progress_is_told_after_each_window(client: Client, dept: HkDepartment) -> None:
    """A check with a small batch calls ``progress`` for each window of rows read."""
    seen: list[tuple[str, int, int | None]] = []
    report = client.check_integrity(
        level=2, stop_on_error=False, batch=2, progress=lambda *a: seen.append(a)
    )
    assert report.ok, report.text()
    staff = [done for task, done, _ in seen if task == "level 2: HkStaff rows"]
    assert staff == [2, 4, 6, 7]  # 6 staff and the manager: windows of 2
    assert ("level 1: classes", 1, 1) in seen


def test_classes_defined_after_start_are_checked_without_touching_their_tables(
    client: Client, db_url: str, dept: HkDepartment
) -> None:
    """A class defined after the client started, whose table another release left behind
    with a column missing, is reported at level 1, and levels 2-4 still run (no schema check
    of theirs raises); a class defined then whose table does not exist gets none from the
    check: a check creates nothing."""
    from claystore import DataClayObject
    from claystore.orm.mapping import forget_models

    old = sa.Table(
        "hk_late",
        sa.MetaData(),
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("title", sa.String),
    )
    with plain_engine(db_url) as engine, engine.begin() as conn:
        old.create(conn)

    class HkLate(DataClayObject):
        title: str
        size: int

    class HkLateUnstored(DataClayObject):
        title: str

    try:
        report = _check(client, 4)
        assert report.kinds() == {K.SCHEMA}, report.text()
        assert {p.table for p in report.problems} == {"hk_late"}
        assert "size" in {p.field for p in report.problems}
        with plain_engine(db_url) as engine, engine.connect() as conn:
            assert not sa.inspect(conn).has_table("hk_late_unstored")
    finally:
        forget_models(HkLate, HkLateUnstored)
