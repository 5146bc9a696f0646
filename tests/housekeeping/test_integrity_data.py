"""Levels 3 (references) and 4 (data) of the integrity check, on a store corrupted with raw SQL.

Each test corrupts a healthy store (``build_store``) one problem at a time and asserts that the
check (``client.check_integrity``, every level up to the problem's) reports exactly that
problem (kind, object id, field) and that the levels below report nothing.  Tests of one level
alone (batches, memory) run it through :func:`run_levels`.
"""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import sqlalchemy as sa

from claystore import Client, DataClayObject
from claystore.housekeeping import data, references
from claystore.housekeeping.report import IntegrityReport, Problem, ProblemKind
from claystore.housekeeping.run import BATCH, CheckRun, registered_backends, resolve_collection
from claystore.orm import mapping

from .models import HkDepartment, HkManager, HkOffice, HkRole, HkStaff, build_store

LEVELS: dict[int, Callable[[CheckRun], None]] = {3: references.check, 4: data.check}


class HkIdCard(DataClayObject):
    """A class with the scalar types the models of models.py leave out."""

    __tablename__ = "hk_data_id_card"
    serial: uuid.UUID
    photo: bytes
    active: bool
    badges: set[str]
    holder: HkStaff | HkOffice | None = None

    def __init__(self) -> None:
        self.serial = uuid.uuid4()
        self.photo = b"\x89PNG"
        self.active = True
        self.badges = {"b", "a"}


# -- running the levels ---------------------------------------------------------------------


def run_levels(
    client: Client, levels: Iterable[int], *, batch: int = BATCH, collection: type | None = None
) -> IntegrityReport:
    """Run only ``levels`` (3 and/or 4) over the whole store (or ``collection`` and its
    subclasses), without stopping at the first problem, through a :class:`CheckRun` made as
    :func:`claystore.housekeeping.integrity.check` makes it."""
    router = client.context.router
    found = registered_backends(router)
    levels = list(levels)
    chosen = resolve_collection(collection)
    run = CheckRun(
        router=router,
        report=IntegrityReport(level=max(levels, default=0)),
        backends=found,
        classes=list(mapping.iter_subclass_infos(chosen)) if chosen else mapping.models(),
        collection=chosen,
        stop_on_error=False,
        batch=batch,
    )
    for level in levels:
        LEVELS[level](run)
    return run.report


def check_at(client: Client, level: int) -> IntegrityReport:
    """The report of ``client.check_integrity`` at ``level`` (every level up to it), finding
    every problem."""
    return client.check_integrity(level=level, stop_on_error=False)


def check_below(client: Client, level: int) -> IntegrityReport:
    """The report of the levels below ``level``."""
    return client.check_integrity(level=level - 1, stop_on_error=False)


def only(report: IntegrityReport) -> Problem:
    """The one problem ``report`` holds (fails, listing them, if it holds another number)."""
    assert len(report.problems) == 1, report.text()
    return report.problems[0]


def assert_reported(
    client: Client, level: int, kind: ProblemKind, object_id: uuid.UUID, field: str
) -> Problem:
    """Level ``level`` reports exactly one problem, of ``kind`` at ``object_id``'s ``field``,
    and the levels below report nothing."""
    problem = only(check_at(client, level))
    assert (problem.kind, problem.level, problem.object_id, problem.field) == (
        kind,
        level,
        object_id,
        field,
    ), problem
    below = check_below(client, level)
    assert below.ok, below.text()
    return problem


# -- corrupting with raw SQL ------------------------------------------------------------------


def corrupt(client: Client, sql: str | sa.Executable, **values: Any) -> None:
    """Run ``sql`` (text with ``:name`` binds; UUID values are bound as the engine stores
    them) on the metadata database with a plain SQLAlchemy engine, no claystore."""
    statement = sql
    if isinstance(sql, str):
        statement = sa.text(sql).bindparams(
            *(
                sa.bindparam(name, value, type_=sa.Uuid if isinstance(value, uuid.UUID) else None)
                for name, value in values.items()
            )
        )
    engine = sa.create_engine(client.context.router.metadata.engine.url)
    try:
        with engine.begin() as conn:
            conn.execute(statement)
    finally:
        engine.dispose()


def corrupt_document(
    client: Client, table: str, column: str, object_id: uuid.UUID, document: str
) -> None:
    """Store the JSON text ``document`` (as the engine stores JSON) in ``column`` of the row
    ``object_id`` of ``table``."""
    dialect = client.context.router.metadata.dialect
    plain = sa.table(table, sa.column("id", sa.Uuid), sa.column(column))
    value = dialect.json_from_text(sa.bindparam("doc", document, sa.Text))
    corrupt(client, sa.update(plain).where(plain.c.id == object_id).values({column: value}))


@pytest.fixture
def store(client: Client) -> HkDepartment:
    """A healthy store: a department, its manager and six staff (see build_store)."""
    return build_store()


def a_member(dept: HkDepartment) -> HkStaff:
    """A staff member of ``dept`` that is not its manager."""
    return next(s for s in dept.staff if type(s) is HkStaff)


# -- healthy stores ---------------------------------------------------------------------------


def test_a_healthy_store_has_no_reference_or_data_problem(
    client: Client, store: HkDepartment
) -> None:
    """A store with versions, an alias, every field type and references between objects
    reports nothing at level 3 or 4."""
    card = HkIdCard()
    card.holder = a_member(store)
    card.make_persistent(alias="card")
    store.new_version()
    a_member(store).new_version()
    report = run_levels(client, [3, 4])
    assert report.ok, report.text()
    assert report.checked["HkStaff rows decoded"] == 8  # a manager, six staff, a version of one
    assert report.checked["HkDepartment.staff link rows"] == 14  # the department and its version


def test_references_across_backends_are_found(
    client: Client, store: HkDepartment, backend_url_factory: Callable[..., str]
) -> None:
    """Objects whose referents live on another backend (and the other way round) are healthy;
    a dangling reference is still found with two backends."""
    other = client.add_backend(backend_url_factory(), name="other")
    office = HkOffice("Paris")
    office.make_persistent(backend_id=other)
    member = a_member(store)
    member.office = office
    store.head.move(other)  # type: ignore[union-attr]
    report = run_levels(client, [3, 4])
    assert report.ok, report.text()
    corrupt(
        client,
        "UPDATE hk_staff SET office_id = :ref WHERE id = :id",
        ref=uuid.uuid4(),
        id=member._dc_id,
    )
    problem = only(run_levels(client, [3]))
    assert (problem.kind, problem.object_id, problem.field) == (
        ProblemKind.DANGLING_REFERENCE,
        member._dc_id,
        "office",
    )


def test_a_wrong_class_on_another_backend_is_reported(
    client: Client, store: HkDepartment, backend_url_factory: Callable[..., str]
) -> None:
    """A reference to an object of a class not allowed, held by another backend, is a wrong
    class reference naming the class found."""
    other = client.add_backend(backend_url_factory(), name="other")
    office = HkOffice("Paris")
    office.make_persistent(backend_id=other)
    member = a_member(store)
    corrupt(
        client,
        "UPDATE hk_staff SET boss_id = :ref WHERE id = :id",
        ref=office._dc_id,
        id=member._dc_id,
    )
    problem = assert_reported(client, 3, ProblemKind.WRONG_CLASS_REFERENCE, member._dc_id, "boss")
    assert "HkOffice" in problem.message
    assert "other" in problem.message


# -- level 3: references --------------------------------------------------------------------


def test_a_dangling_reference_column_is_reported(client: Client, store: HkDepartment) -> None:
    """A reference column naming no object is a dangling reference of its owner's field."""
    member = a_member(store)
    missing = uuid.uuid4()
    corrupt(
        client, "UPDATE hk_staff SET boss_id = :ref WHERE id = :id", ref=missing, id=member._dc_id
    )
    problem = assert_reported(client, 3, ProblemKind.DANGLING_REFERENCE, member._dc_id, "boss")
    assert str(missing) in problem.message
    assert problem.class_name == "HkStaff"


def test_a_dangling_link_row_is_reported(client: Client, store: HkDepartment) -> None:
    """A link-table row naming no object is a dangling reference of the owner's field."""
    missing = uuid.uuid4()
    corrupt(
        client,
        "INSERT INTO hk_department_staff (owner_id, position, target_id) VALUES (:id, 99, :ref)",
        id=store._dc_id,
        ref=missing,
    )
    problem = assert_reported(client, 3, ProblemKind.DANGLING_REFERENCE, store._dc_id, "staff")
    assert str(missing) in problem.message


def test_a_reference_to_an_object_of_a_wrong_class_is_reported(
    client: Client, store: HkDepartment
) -> None:
    """A reference column naming an object of a class the field does not allow is reported
    with the class found and the classes allowed."""
    member = a_member(store)
    office = member.office or next(s.office for s in store.staff if s.office is not None)
    corrupt(
        client,
        "UPDATE hk_staff SET boss_id = :ref WHERE id = :id",
        ref=office._dc_id,
        id=member._dc_id,
    )
    problem = assert_reported(client, 3, ProblemKind.WRONG_CLASS_REFERENCE, member._dc_id, "boss")
    assert "HkOffice" in problem.message
    assert "HkStaff" in problem.message


def test_a_link_row_to_a_wrong_class_is_reported(client: Client, store: HkDepartment) -> None:
    """A link row naming an object of a class the field does not allow (a department in a
    manager's reports) is a wrong class reference."""
    head = store.head
    assert isinstance(head, HkManager)
    corrupt(
        client,
        "UPDATE hk_manager_reports SET target_id = :ref WHERE owner_id = :id AND position = 0",
        ref=store._dc_id,
        id=head._dc_id,
    )
    assert_reported(client, 3, ProblemKind.WRONG_CLASS_REFERENCE, head._dc_id, "reports")


def test_a_subclass_object_is_an_allowed_referent(client: Client, store: HkDepartment) -> None:
    """A reference to an object of a subclass of the declared class (a manager where HkStaff
    is declared) and to any member of a union is healthy."""
    card = HkIdCard()
    card.holder = store.head
    card.make_persistent()
    other = HkIdCard()
    other.holder = a_member(store).office or HkOffice("Nice")
    other.make_persistent()
    assert run_levels(client, [3]).ok


# -- level 4: data --------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_undecodable_json_is_reported(client: Client, store: HkDepartment) -> None:
    """JSON text that does not parse is an undecodable value (SQLite: PostgreSQL's JSONB
    cannot hold it)."""
    member = a_member(store)
    corrupt(client, "UPDATE hk_staff SET tags = 'not json' WHERE id = :id", id=member._dc_id)
    assert_reported(client, 4, ProblemKind.UNDECODABLE_VALUE, member._dc_id, "tags")


def test_a_json_list_where_a_dict_is_declared_is_reported(
    client: Client, store: HkDepartment
) -> None:
    """A JSON list in a ``dict[str, int]`` field is a wrong type."""
    member = a_member(store)
    corrupt_document(client, "hk_staff", "tags", member._dc_id, "[1, 2]")
    problem = assert_reported(client, 4, ProblemKind.WRONG_TYPE, member._dc_id, "tags")
    assert "dict[str, int]" in problem.message


@pytest.mark.parametrize(
    ("column", "document"),
    [
        ("scores", '["x", 1.5]'),  # a str in a list[float]
        ("scores", '"1.5"'),  # a str where a list is declared
        ("tags", '{"level": 1.5}'),  # a float in a dict[str, int]
        ("tags", '{"level": true}'),  # a bool is no int
    ],
)
def test_json_elements_of_a_wrong_type_are_reported(
    client: Client, store: HkDepartment, column: str, document: str
) -> None:
    """A JSON document whose elements are not of the declared type is a wrong type."""
    member = a_member(store)
    corrupt_document(client, "hk_staff", column, member._dc_id, document)
    assert_reported(client, 4, ProblemKind.WRONG_TYPE, member._dc_id, column)


def test_a_set_stored_in_another_order_is_healthy(client: Client, store: HkDepartment) -> None:
    """A ``set[str]`` document in another order than claystore writes is still a set of str;
    one holding a number, or a string (which would decode to a set of its letters), is a wrong
    type."""
    card = HkIdCard()
    card.make_persistent()
    corrupt_document(client, "hk_data_id_card", "badges", card._dc_id, '["b", "a"]')
    assert run_levels(client, [4]).ok
    corrupt_document(client, "hk_data_id_card", "badges", card._dc_id, '["a", 2]')
    assert_reported(client, 4, ProblemKind.WRONG_TYPE, card._dc_id, "badges")
    corrupt_document(client, "hk_data_id_card", "badges", card._dc_id, '"ab"')  # str, no set
    assert_reported(client, 4, ProblemKind.WRONG_TYPE, card._dc_id, "badges")


def test_an_unknown_enum_name_is_reported(client: Client, store: HkDepartment) -> None:
    """An enum column holding a name the enum has no member of is an unknown enum name."""
    member = a_member(store)
    corrupt(client, "UPDATE hk_staff SET role = 'PILOT' WHERE id = :id", id=member._dc_id)
    problem = assert_reported(client, 4, ProblemKind.UNKNOWN_ENUM, member._dc_id, "role")
    assert "PILOT" in problem.message
    assert HkRole.__name__ in problem.message


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "text", ["garbage", "2024-02-30T00:00:00.000000+00:00", "2024-13-01T00:00:00+00:00"]
)
def test_an_invalid_datetime_is_reported(client: Client, store: HkDepartment, text: str) -> None:
    """Datetime text (SQLite) that does not read as a datetime -- not one, a day the month
    does not have, month 13 -- is an invalid datetime."""
    member = a_member(store)
    corrupt(client, "UPDATE hk_staff SET hired = :text WHERE id = :id", text=text, id=member._dc_id)
    assert_reported(client, 4, ProblemKind.INVALID_DATETIME, member._dc_id, "hired")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_nul_in_text_is_reported(client: Client, store: HkDepartment) -> None:
    """Text holding a NUL character (SQLite: PostgreSQL's text refuses it) is reported."""
    member = a_member(store)
    corrupt(
        client, "UPDATE hk_staff SET name = 'a' || char(0) || 'b' WHERE id = :id", id=member._dc_id
    )
    assert_reported(client, 4, ProblemKind.NUL_IN_TEXT, member._dc_id, "name")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("hk_staff", "salary", "'abc'"),  # text in a float column
        ("hk_data_id_card", "active", "7"),  # a bool that is neither 0 nor 1
        ("hk_data_id_card", "photo", "'text'"),  # text in a bytes column
        ("hk_data_id_card", "serial", "'not-a-uuid-but-32-characters-ok'"),
    ],
)
def test_a_value_of_another_storage_type_is_reported(
    client: Client, store: HkDepartment, table: str, column: str, value: str
) -> None:
    """A value SQLite's typeless column holds that is not of the field's storage type is a
    wrong type."""
    card = HkIdCard()
    card.make_persistent()
    target = card._dc_id if table == "hk_data_id_card" else a_member(store)._dc_id
    corrupt(client, f"UPDATE {table} SET {column} = {value} WHERE id = :id", id=target)
    assert_reported(client, 4, ProblemKind.WRONG_TYPE, target, column)


# -- what the levels skip, and how much they read -------------------------------------------


def test_a_missing_table_or_column_is_skipped(client: Client, store: HkDepartment) -> None:
    """A dropped link table or column (level 1's problem) does not stop levels 3 and 4."""
    corrupt(client, "DROP TABLE hk_manager_reports")
    corrupt(client, "ALTER TABLE hk_staff DROP COLUMN scores")
    member = a_member(store)
    corrupt(client, "UPDATE hk_staff SET role = 'PILOT' WHERE id = :id", id=member._dc_id)
    report = run_levels(client, [3, 4])
    assert [(p.kind, p.object_id) for p in report.problems] == [
        (ProblemKind.UNKNOWN_ENUM, member._dc_id)
    ]


def test_a_collection_is_checked_with_its_inherited_fields(
    client: Client, store: HkDepartment
) -> None:
    """Checking one class (a subclass) reads the fields it inherits, on its own objects only:
    a manager's bad enum and dangling boss are found, a plain staff member's are not."""
    head = store.head
    assert isinstance(head, HkManager)
    member = a_member(store)
    for row in (head, member):
        corrupt(
            client,
            "UPDATE hk_staff SET role = 'PILOT', boss_id = :ref WHERE id = :id",
            ref=uuid.uuid4(),
            id=row._dc_id,
        )
    report = run_levels(client, [3, 4], collection=HkManager)
    found = sorted((p.kind.label, p.object_id, p.field, p.class_name) for p in report.problems)
    assert found == [
        ("dangling reference", head._dc_id, "boss", "HkManager"),
        ("unknown enum name", head._dc_id, "role", "HkManager"),
    ]
    assert len(run_levels(client, [3, 4]).problems) == 4


def test_level_4_reads_in_bounded_memory(client: Client) -> None:
    """Level 4 over 24,000 objects in batches of 500 peaks far below what reading every
    row at once takes (measured in the same test)."""
    for start in range(0, 24_000, 8_000):
        with client.session() as session:
            session.add_all([HkStaff(f"s{n}", float(n)) for n in range(start, start + 8_000)])
    database = client.context.router.metadata
    table = HkStaff._dc_info.table
    tracemalloc.start()
    try:
        with database.reader() as conn:
            rows = conn.execute(sa.select(*(sa.type_coerce(c, sa.String) for c in table.c))).all()
        _, everything = tracemalloc.get_traced_memory()
        del rows
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        report = run_levels(client, [4], batch=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.text()
    assert report.checked["HkStaff rows decoded"] == 24_000
    assert peak - base < everything / 3, (peak - base, everything)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "document",
    ['{"a\\u0000b": 1}', '{"\\ud800": 1}'],
    ids=["escaped-nul-key", "lone-surrogate-key"],
)
def test_an_escaped_nul_or_lone_surrogate_in_json_is_reported(
    client: Client, store: HkDepartment, document: str
) -> None:
    """A JSON key holding an escaped NUL or a lone surrogate (SQLite: PostgreSQL's jsonb
    refuses both) is no ``dict[str, int]`` claystore could have written."""
    member = a_member(store)
    corrupt(
        client, "UPDATE hk_staff SET tags = :doc WHERE id = :id", doc=document, id=member._dc_id
    )
    problem = only(check_at(client, 4))
    assert (problem.kind, problem.object_id, problem.field) == (
        ProblemKind.WRONG_TYPE,
        member._dc_id,
        "tags",
    )
