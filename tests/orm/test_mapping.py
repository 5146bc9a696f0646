"""Model classes become tables and real SQLAlchemy mapped classes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from claystore import Client, DataClayObject, Indexed, errors, metadata
from claystore.orm.fields import FieldKind
from claystore.orm.mapping import snake_case
from tests import models
from tests.orm import future_models


def columns(table_name: str) -> dict[str, Any]:
    return {c.name: c for c in metadata.tables[table_name].columns}


def test_annotated_fields_become_columns_with_system_columns() -> None:
    """A root class's table has id, dc_class, dc_version and one column per annotated field."""
    cols = columns("employee")
    assert list(cols) == ["id", "dc_class", "dc_version", "name", "salary"]
    assert cols["id"].primary_key
    assert isinstance(cols["salary"].type, sa.Double)
    assert not cols["name"].nullable


def test_type_map_covers_every_scalar() -> None:
    """Each Python scalar type maps to its column type; containers of scalars map to JSON."""
    cols = columns("every_type")
    assert isinstance(cols["b"].type, sa.Boolean)
    assert isinstance(cols["i"].type, sa.BigInteger)
    assert isinstance(cols["raw"].type, sa.LargeBinary)
    assert isinstance(cols["day"].type, sa.Date)
    assert isinstance(cols["at"].type, sa.Time)
    assert isinstance(cols["span"].type, sa.Interval)
    assert isinstance(cols["key"].type, sa.Uuid)
    assert isinstance(cols["color"].type, sa.Enum)
    assert cols["maybe"].nullable
    for name in ("tags", "scores", "pair", "stamps", "nested", "loose"):
        assert cols[name].type.impl.__class__ is sa.JSON, name
    assert "scratch" not in cols  # Annotated[..., LocalOnly]
    assert "kind" not in cols  # ClassVar


def test_json_is_jsonb_and_datetime_is_timestamptz_on_postgresql() -> None:
    """On PostgreSQL, JSON fields are JSONB and datetimes are timestamptz."""
    from sqlalchemy.dialects import postgresql

    table = metadata.tables["every_type"]
    ddl = str(sa.schema.CreateTable(table).compile(dialect=postgresql.dialect()))
    assert "tags JSONB" in ddl
    assert '"when" TIMESTAMP WITH TIME ZONE' in ddl


def test_text_is_code_point_ordered_and_nullable_indexes_put_nulls_first() -> None:
    """On PostgreSQL str columns are COLLATE "C" and indexes of nullable fields NULLS FIRST
    (the order queries use); SQLite gets a plain index (its NULLs sort first anyway)."""
    from sqlalchemy.dialects import postgresql, sqlite

    table = metadata.tables["every_type"]
    ddl = str(sa.schema.CreateTable(table).compile(dialect=postgresql.dialect()))
    assert 's VARCHAR COLLATE "C" NOT NULL' in ddl

    class NullableIndexed(DataClayObject):
        score: Annotated[float | None, Indexed()] = None

    (index,) = NullableIndexed.__table__.indexes
    pg_sql = str(sa.schema.CreateIndex(index).compile(dialect=postgresql.dialect()))
    assert "score ASC NULLS FIRST" in pg_sql
    lite_sql = str(sa.schema.CreateIndex(index).compile(dialect=sqlite.dialect()))
    assert "ON nullable_indexed (score)" in lite_sql
    assert "NULLS" not in lite_sql


class NullableTagged(DataClayObject):
    tag: Annotated[str | None, Indexed()] = None
    weight: Annotated[float | None, Indexed()] = None


def test_alembic_finds_nothing_to_change_in_indexes_of_nullable_fields(db_url: str) -> None:
    """A nullable Indexed() field has one index, whose definition each engine's dialect gives,
    so alembic autogenerate compares it with what the database has and proposes nothing (two
    same-named indexes, one per engine, made it propose dropping and re-adding one of them)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    names = sorted(index.name or "" for index in NullableTagged.__table__.indexes)
    assert names == ["ix_nullable_tagged_tag", "ix_nullable_tagged_weight"]
    with Client(db_url) as client, client.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        changes = [c for c in compare_metadata(context, metadata) if "nullable_tagged" in str(c)]
    assert changes == []


def test_indexed_field_gets_an_index() -> None:
    """Annotated[T, Indexed()] creates an index on the column."""
    indexed = {tuple(c.name for c in i.columns) for i in metadata.tables["every_type"].indexes}
    assert ("indexed_name",) in indexed


def test_references_are_id_columns_and_containers_are_link_tables() -> None:
    """A reference is <field>_id; list/set/dict of references get link tables."""
    assert "spouse_id" in columns("person")
    assert "favourite_id" in columns("person")
    assert list(columns("company_employees")) == ["owner_id", "position", "target_id"]
    assert list(columns("person_friends")) == ["owner_id", "target_id"]
    assert list(columns("person_pets")) == ["owner_id", "key", "target_id"]
    info = models.Person._dc_info
    assert info.fields["friends"].kind is FieldKind.REF_SET
    assert info.fields["pets"].kind is FieldKind.REF_DICT
    assert info.fields["favourite"].targets() == (models.Person, models.Pet)


def test_subclass_is_a_joined_table() -> None:
    """A subclass of a model class gets its own table joined on id to the parent's."""
    cols = columns("manager")
    assert list(cols) == ["id", "bonus"]
    fk = next(iter(cols["id"].foreign_keys))
    assert fk.column.table.name == "employee"
    assert models.Manager._dc_info.parent is models.Employee._dc_info


def test_forward_references_under_postponed_annotations() -> None:
    """String annotations, classes defined later and self references all resolve."""
    fields = future_models.Author._dc_info.fields
    assert fields["books"].targets() == (future_models.Book,)
    assert fields["best"].targets() == (future_models.Book,)
    assert fields["mentor"].targets() == (future_models.Author,)
    assert columns("book")["pages"].nullable


def test_tablename_override_and_snake_case() -> None:
    """__tablename__ wins; otherwise the table is the snake_case class name."""
    assert models.Everything._dc_info.tablename == "every_type"
    assert snake_case("HTTPServerLog") == "http_server_log"
    assert snake_case("Employee") == "employee"


def test_class_attributes_are_sql_expressions() -> None:
    """Class-level field attributes build SQL, as on any SQLAlchemy mapped class."""
    assert str(models.Employee.salary > 1000) == "employee.salary > :salary_1"


@pytest.mark.parametrize(
    ("annotation", "fragment"),
    [
        ("list[list[Employee]]", "references may sit only directly inside"),
        ("Session", "neither a supported scalar nor a DataClayObject"),
        ("int | str", "only `X | None` unions"),
        ("typing.Any", "Any/object has no column type"),
        ("dict[int, Employee]", "needs str keys"),
        ("list[Employee] | None", "cannot be None"),
    ],
)
def test_unsupported_annotation_fails_at_class_definition(annotation: str, fragment: str) -> None:
    """An annotation that cannot be stored raises UnsupportedTypeError naming class and field."""
    namespace: dict[str, Any] = {}
    source = (
        "import typing\n"
        "from sqlalchemy.orm import Session\n"
        "from claystore import DataClayObject\n"
        "from tests.models import Employee\n"
        f"class Broken(DataClayObject):\n    field: {annotation}\n"
    )
    with pytest.raises(errors.UnsupportedTypeError) as info:
        exec(compile(source, "<model>", "exec", dont_inherit=True), namespace)
    message = str(info.value)
    assert "Broken.field" in message
    assert fragment in message
    assert isinstance(info.value, TypeError)
    assert "broken" not in metadata.tables


def test_unresolvable_forward_reference_is_reported_when_resolved() -> None:
    """A name that never becomes a model class is an UnsupportedTypeError when first used."""

    class Orphanage(DataClayObject):
        child: NeverDefined | None  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(errors.UnsupportedTypeError, match=r"Orphanage.child.*NeverDefined"):
        Orphanage._dc_info.fields["child"].targets()


@pytest.mark.parametrize("name", ["id", "dc_thing", "make_persistent"])
def test_reserved_field_names_are_refused(name: str) -> None:
    """Fields may not take claystore's own names."""
    with pytest.raises(errors.MappingError, match="reserved"):
        type(f"Reserved_{name}", (DataClayObject,), {"__annotations__": {name: int}})


def test_table_names_cannot_be_taken_twice() -> None:
    """A second class with the same table name is refused with the fix in the message."""
    with pytest.raises(errors.MappingError, match=r"already used by tests.models.Employee"):
        type("Employee", (DataClayObject,), {"__annotations__": {"name": str}})


def test_defaults_must_fit_the_annotation() -> None:
    """A class-level default of the wrong type is refused at definition."""
    with pytest.raises(errors.UnsupportedTypeError, match="default does not fit"):
        type("BadDefault", (DataClayObject,), {"__annotations__": {"n": int}, "n": "seven"})


def test_plain_sqlalchemy_queries_work_on_model_classes(client: Any) -> None:
    """session.scalars(select(Employee).where(Employee.salary > 1000)) returns stored rows."""
    models.Employee("Low", 500.0).make_persistent()
    models.Employee("High", 5000.0).make_persistent()
    models.Manager("Boss", 9000.0, bonus=10.0).make_persistent()
    with Session(client.engine) as session:
        rows = session.scalars(
            sa.select(models.Employee)
            .where(models.Employee.salary > 1000)
            .order_by(models.Employee.salary)
        ).all()
        assert [(type(r).__name__, r.name, r.salary) for r in rows] == [
            ("Employee", "High", 5000.0),
            ("Manager", "Boss", 9000.0),
        ]
        assert rows[1].bonus == 10.0


def test_tables_are_readable_with_plain_sql(client: Any) -> None:
    """The stored rows are plain readable columns (SELECT name, salary FROM employee)."""
    models.Employee("John", 1000.0).make_persistent()
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    with client.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, salary FROM employee")).all()
    assert [tuple(r) for r in rows] == [("John", 1000.0)]
    assert when.tzinfo is not None
