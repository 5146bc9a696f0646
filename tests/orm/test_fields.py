"""Field values: checked on assignment, stored and read back exactly on both engines."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claystore import errors
from tests.models import Color, Company, Employee, Everything, Node, Person


def make_everything() -> Everything:
    e = Everything()
    e.s = "héllo ✓"
    e.i = -(2**63)
    e.f = 1.5e300
    e.b = True
    e.raw = b"\x00\xffbytes"
    e.when = dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    e.day = dt.date(1999, 12, 31)
    e.at = dt.time(7, 8, 9, 10)
    e.span = dt.timedelta(days=3, seconds=7, microseconds=11)
    e.money = Decimal("12345678901234567890.123456789")
    e.key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    e.color = Color.GREEN
    e.level = "high"
    e.tags = ["a", "b"]
    e.scores = {"x": 1.0, "y": 2.5}
    e.pair = (1, "one")
    e.stamps = {dt.date(2020, 1, 1), dt.date(2021, 1, 1)}
    e.nested = {"k": [1, 2, 3]}
    e.loose = {"any": [1, "two", None, {"three": 3.0}]}
    return e


FIELDS = [
    "s", "i", "f", "b", "raw", "when", "day", "at", "span", "money", "key", "color", "level",
    "maybe", "tags", "scores", "pair", "stamps", "nested", "loose", "indexed_name",
]  # fmt: skip


def test_every_type_round_trips(client: Any) -> None:
    """Every supported type reads back equal (and of the same type) after a store."""
    original = make_everything()
    expected = {name: getattr(original, name) for name in FIELDS}
    original.make_persistent("everything")
    for name, value in expected.items():
        stored = getattr(original, name)  # read from the database (autocommit)
        assert stored == value, name
        assert type(stored) is type(value), name
    assert original.when.tzinfo is not None
    assert original.when == expected["when"]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("salary", "a lot", "expected float, got str"),
        ("salary", True, "expected float, got bool"),
        ("name", None, "None is not allowed"),
        ("name", 42, "expected str, got int"),
    ],
)
def test_wrong_type_assignment_names_class_and_field(field: str, value: Any, fragment: str) -> None:
    """Assigning a wrong-typed value raises FieldTypeError (a TypeError) naming class.field."""
    employee = Employee("John", 1.0)
    with pytest.raises(errors.FieldTypeError) as info:
        setattr(employee, field, value)
    assert f"Employee.{field}" in str(info.value)
    assert fragment in str(info.value)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("i", 2**64, "does not fit in a 64-bit integer"),
        ("when", dt.datetime(2020, 1, 1), "naive datetime"),
        ("level", "medium", "is not one of"),
        ("tags", ["a", 1], "expected str, got int"),
        ("tags", ("a",), "expected a list"),
        ("scores", {"x": "high"}, "expected float"),
        ("pair", (1, 2), "expected str"),
        ("color", 1, "expected Color"),
        ("loose", {"x": object()}, "is not JSON"),
        ("f", float("nan"), "NaN is not stored alike"),
        ("money", Decimal("NaN"), "NaN is not stored alike"),
        ("s", "a\x00b", "NUL character"),
        ("tags", ["ok", "a\x00"], "NUL character"),
        ("loose", {"x": float("inf")}, "JSON cannot hold inf"),
        ("scores", {"x": float("-inf")}, "JSON cannot hold -inf"),
    ],
)
def test_type_checks_cover_scalars_and_containers(field: str, value: Any, fragment: str) -> None:
    """Scalars, literals and the items of containers are all checked."""
    with pytest.raises(errors.FieldTypeError, match=fragment):
        setattr(Everything(), field, value)


def test_numbers_widen_as_the_numeric_tower_allows() -> None:
    """An int is accepted for a float field (and stored as float)."""
    employee = Employee("John", 1000)
    assert employee.salary == 1000.0
    assert isinstance(employee.salary, float)


def test_reference_fields_check_the_target_class() -> None:
    """A reference field accepts its target classes (and None), nothing else."""
    company = Company("ABC")
    company.ceo = None
    with pytest.raises(errors.FieldTypeError, match=r"Company.ceo.*expected Employee, got Node"):
        company.ceo = Node(1)  # type: ignore[assignment]
    with pytest.raises(errors.FieldTypeError, match=r"Company.employees.*expected Employee"):
        company.employees = [Employee("a", 1.0), Node(2)]  # type: ignore[list-item]
    with pytest.raises(errors.FieldTypeError, match=r"Person.pets.*dict keys must be str"):
        Person("p", 1).pets = {1: Person("q", 2)}  # type: ignore[dict-item]


def test_wrong_type_on_stored_object_writes_nothing(client: Any) -> None:
    """A rejected assignment to a stored object leaves the row and the object unchanged."""
    employee = Employee("John", 1000.0)
    employee.make_persistent()
    with pytest.raises(errors.FieldTypeError):
        employee.salary = "oops"  # type: ignore[assignment]
    assert employee.salary == 1000.0
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT salary, dc_version FROM employee")).one() == (1000.0, 1)


def test_unset_field_is_an_attribute_error_on_transient_objects() -> None:
    """Reading a field never set (and without default) raises AttributeError naming it."""
    everything = Everything()
    with pytest.raises(AttributeError, match="no value for field 's'"):
        _ = everything.s
    assert everything.maybe is None  # class default
    assert everything.indexed_name == ""


def test_missing_required_field_fails_make_persistent_and_writes_nothing(client: Any) -> None:
    """make_persistent with an unset NOT NULL field raises MissingFieldError before writing."""
    company = Company("ABC", Employee("John", 1.0))
    broken = Employee.__new__(Employee)
    company.employees.append(broken)
    with pytest.raises(errors.MissingFieldError, match=r"Employee\.name has no value"):
        company.make_persistent()
    assert not company.is_registered
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM dc_object")).scalar() == 0


def test_local_only_and_unannotated_attributes_stay_local(client: Any) -> None:
    """LocalOnly fields and plain attributes are never stored."""
    everything = make_everything()
    everything.scratch = 99
    everything.note = "local"  # type: ignore[attr-defined]
    everything.make_persistent()
    assert everything.scratch == 99
    with client.engine.connect() as conn:
        columns = conn.execute(sa.text("SELECT * FROM every_type")).keys()
    assert "scratch" not in columns
    assert "note" not in columns


# Untyped JSON follows the database's number semantics: PostgreSQL's JSONB keeps numbers as
# decimals and prints integral values of 1e16 and more without an exponent, so they come back as
# int.  Typed fields (list[float], dict[str, float]) always come back as float.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15).map(
        lambda f: f + 0.0  # -0.0 is refused (PostgreSQL's JSON drops the sign of zero)
    ),
    st.text(max_size=20).filter(lambda s: "\x00" not in s),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8).filter(lambda s: "\x00" not in s), children, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tags=st.lists(st.text(max_size=10).filter(lambda s: "\x00" not in s), max_size=5),
    loose=st.dictionaries(
        st.text(max_size=8).filter(lambda s: "\x00" not in s), json_values, max_size=4
    ),
)
def test_json_fields_round_trip_any_document(
    client: Any, tags: list[str], loose: dict[str, Any]
) -> None:
    """Random JSON documents (unicode, nesting, None) read back equal."""
    everything = make_everything()
    everything.tags = tags
    everything.loose = loose
    everything.make_persistent()
    assert everything.tags == tags
    assert everything.loose == loose


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scores=st.dictionaries(
        st.text(max_size=8).filter(lambda s: "\x00" not in s),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f + 0.0),  # not -0.0
        max_size=5,
    )
)
def test_typed_float_containers_round_trip_every_float(
    client: Any, scores: dict[str, float]
) -> None:
    """dict[str, float] reads back the same floats, whatever their size."""
    everything = make_everything()
    everything.scores = scores
    everything.make_persistent()
    stored = everything.scores
    assert stored == scores
    assert all(type(v) is float for v in stored.values())
