"""The alembic environment: autogenerate reads tables as claystore maps them (an unchanged model
autogenerates nothing on either engine), leaves claystore's own tables alone, and writes what
it proposes so that it runs on every engine."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate.api import AutogenContext
from alembic.migration import MigrationContext
from alembic.operations import ops

from claystore.client import resolve_url
from claystore.dialects.registry import configured_url
from claystore.dialects.types import AwareDateTime, CodePointString
from claystore.migrations import autogen
from claystore.orm.types import JSONValue
from tests.migrations.conftest import Project, function_body

#: Every kind of field claystore stores: each type, nullable and not, defaults, Indexed
#: (plain, unique, nullable), references, link tables of each container, a subclass.
EVERY_KIND = """
    from __future__ import annotations

    import datetime as dt
    import decimal
    import enum
    import uuid
    from typing import Annotated, Literal

    from claystore import DataClayObject, Indexed


    class Mood(enum.Enum):
        CALM = 1
        CHEERFUL = 2


    class Thing(DataClayObject):
        text: Annotated[str, Indexed(unique=True)]
        maybe_text: Annotated[str | None, Indexed()] = None
        count: Annotated[int, Indexed()]
        ratio: float
        exact: decimal.Decimal
        flag: bool
        data: bytes
        when: dt.datetime
        day: dt.date | None = None
        moment: dt.time | None = None
        span: dt.timedelta | None = None
        key: uuid.UUID
        mood: Mood = Mood.CALM
        size: Literal["S", "M", "L"] = "M"
        tags: list[str]
        scores: dict[str, float]
        pair: tuple[int, str] | None = None
        other: Thing | None = None
        either: Thing | Part | None = None
        parts: list[Part]
        part_set: set[Part]
        part_tuple: tuple[Part, ...]
        by_name: dict[str, Part]


    class Part(DataClayObject):
        name: str


    class BigThing(Thing):
        weight: float = 0.0
        children: list[Thing]
"""

MAKE_TABLES = """
    import sqlalchemy as sa
    from claystore import Client
    import every_kind

    with Client() as client:
        with client.engine.begin() as conn:
            {alter}
        tables = set(sa.inspect(client.engine).get_table_names())
    assert "thing" in tables and "big_thing_children" in tables, tables
    assert "alembic_version" not in tables, tables  # the client made them, not alembic
"""


def test_an_unchanged_model_autogenerates_an_empty_migration(project: Project) -> None:
    """Tables made by Client().start() for every kind of field: autogenerate proposes nothing
    (types compared as claystore maps them, dc_* tables left out) and check passes."""
    project.write("every_kind.py", EVERY_KIND)
    project.python(MAKE_TABLES.format(alter="pass"))
    project.claystore("db", "init", "migrations", "--models", "every_kind")
    project.claystore("db", "revision", "--autogenerate", "-m", "adopt")
    [adopt] = project.revisions()
    assert [type(s).__name__ for s in function_body(adopt, "upgrade")] == ["Pass"]
    assert [type(s).__name__ for s in function_body(adopt, "downgrade")] == ["Pass"]


def test_a_column_evolved_as_nullable_needs_no_migration(project: Project) -> None:
    """A field added with a default where the database holds the column as nullable (as
    schema="evolve" adds it on SQLite): claystore accepts it, so autogenerate proposes no
    NOT NULL change and check passes."""
    project.write("every_kind.py", EVERY_KIND)
    release_2 = "        weight: float = 0.0\n        rank: int = 1\n"
    project.write("release_2.py", EVERY_KIND.replace("        weight: float = 0.0\n", release_2))
    project.python(
        MAKE_TABLES.format(
            alter='conn.execute(sa.text("ALTER TABLE big_thing ADD COLUMN rank BIGINT"))',
        )
    )
    project.claystore("db", "init", "migrations", "--models", "release_2")
    project.claystore("db", "revision", "--autogenerate", "-m", "adopt")
    [adopt] = project.revisions()
    assert [type(s).__name__ for s in function_body(adopt, "upgrade")] == ["Pass"]


# -- in-process: the pieces ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"DC_URL": "postgresql://u:p@db/app"},
        {"DC_URL": "sqlite:///x.db", "DC_HOST": "ignored"},
        {"DC_HOST": "db", "DC_PORT": "6543", "DC_USERNAME": "u", "DC_PASSWORD": "p"},
        {"DC_HOST": "db", "DC_DATABASE": "sales"},
    ],
)
def test_the_environment_names_the_database_client_uses(environ: dict[str, str]) -> None:
    """Without --url or sqlalchemy.url, migrations use the database Client() would."""
    client_url = resolve_url(
        None, host=None, port=None, username=None, password=None, database=None, environ=environ
    )
    assert configured_url(environ) == client_url


def test_only_claystore_system_tables_are_left_out() -> None:
    """dc_* tables are claystore's own; every other table is compared."""
    assert not autogen.include_name("dc_object", "table", {})
    assert not autogen.include_name("dc_schema", "table", {})
    assert autogen.include_name("employee", "table", {})
    assert autogen.include_name("reports", "table", {})
    assert autogen.include_name("dc_something", "column", {})


@pytest.mark.parametrize(("engine", "enforces_length"), [("sqlite", False), ("postgresql", True)])
def test_types_compare_as_claystore_maps_them(engine: str, enforces_length: bool) -> None:
    """A text column longer than the model needs matches; a shorter one differs where the
    engine enforces lengths; another type differs everywhere."""
    context = MigrationContext.configure(dialect_name=engine)
    enum_column = sa.Enum("CALM", "CHEERFUL", native_enum=False, length=8)
    assert not autogen.compare_type(context, None, None, sa.String(20), enum_column)
    assert autogen.compare_type(context, None, None, sa.String(5), enum_column) is enforces_length
    assert autogen.compare_type(context, None, None, sa.String(20), sa.BigInteger())
    assert not autogen.compare_type(context, None, None, sa.BigInteger(), sa.BigInteger())


def _autogen_context() -> AutogenContext:
    conn = sa.create_engine("sqlite://").connect()
    context = MigrationContext.configure(conn, opts={"alembic_module_prefix": "op."})
    return AutogenContext(context, opts={"alembic_module_prefix": "op."})


def test_claystore_types_are_written_engine_independently() -> None:
    """claystore's column types are written as claystore_types.X; a JSON field's type (with
    its codec) as a plain JSON document; SQLAlchemy's own types as alembic writes them."""
    context = _autogen_context()
    assert autogen.render_item("type", CodePointString(), context) == (
        "claystore_types.CodePointString()"
    )
    assert autogen.render_item("type", AwareDateTime(), context) == (
        "claystore_types.AwareDateTime(timezone=True)"
    )
    json_value = JSONValue(lambda v: v, lambda v: v)
    assert autogen.render_item("type", json_value, context) == "claystore_types.JSONDocument()"
    assert autogen.render_item("type", sa.BigInteger(), context) is False
    assert autogen.render_item("column", sa.Column("x", sa.Integer), context) is False


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        7,
        -1.5,
        float("inf"),
        "it's",
        b"\x00\xff",
        decimal.Decimal("2.50"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=dt.UTC),
        dt.date(2024, 5, 6),
        dt.time(7, 8),
        dt.timedelta(days=1, seconds=2),
        ["a", 1, [2.5, None]],
        {"a": [1, 2], "b": {"c": True}},
        (1, "x"),
    ],
)
def test_defaults_are_written_as_python_that_gives_them_back(value: object) -> None:
    """A field's default is written into the script as Python source that evaluates to it."""
    literal = autogen._python_literal(value)
    assert literal is not None
    text, imports = literal
    namespace: dict[str, object] = {}
    for line in imports:
        exec(line, namespace)  # the script's imports
    assert eval(text, namespace) == value


def test_defaults_that_cannot_be_written_are_refused() -> None:
    """A value without Python source (an arbitrary object) has no literal; the column is
    then left to alembic's add_column."""
    assert autogen._python_literal(object()) is None
    assert autogen._python_literal([object()]) is None


def test_nullability_and_comment_proposals_are_dropped() -> None:
    """alter_column(nullable=False) on a nullable column and table comment changes are not
    claystore differences; a type change stays, and the downgrade mirrors the upgrade."""
    upgrade = ops.UpgradeOps(
        [
            ops.ModifyTableOps(
                "thing",
                [
                    ops.AlterColumnOp(
                        "thing", "rank", modify_nullable=False, existing_nullable=True
                    ),
                    ops.AlterColumnOp(
                        "thing", "size", modify_type=sa.BigInteger(), existing_type=sa.Integer()
                    ),
                    ops.CreateTableCommentOp("thing", "claystore model Thing"),
                ],
            ),
            ops.CreateTableCommentOp("part", "claystore model Part"),
        ]
    )
    script = ops.MigrationScript("r1", upgrade, ops.DowngradeOps([]))
    autogen.process_revision_directives(None, None, [script])  # type: ignore[arg-type]
    [modify] = script.upgrade_ops.ops
    assert isinstance(modify, ops.ModifyTableOps)
    [alter] = modify.ops
    assert isinstance(alter, ops.AlterColumnOp)
    assert alter.column_name == "size"
    [reverse] = script.downgrade_ops.ops[0].ops  # type: ignore[attr-defined]
    assert reverse.modify_type.__class__ is sa.Integer


def test_dropped_tables_come_in_an_order_the_foreign_keys_allow() -> None:
    """Tables are dropped before the tables they reference (with their indexes), and the
    downgrade creates them the other way round, whatever order alembic proposed."""
    metadata = sa.MetaData()
    cage = sa.Table("cage", metadata, sa.Column("id", sa.Integer, primary_key=True))
    big = sa.Table(
        "big_cage", metadata, sa.Column("id", sa.ForeignKey("cage.id"), primary_key=True)
    )
    extras = sa.Table("big_cage_extras", metadata, sa.Column("owner_id", sa.ForeignKey(big.c.id)))
    upgrade = ops.UpgradeOps(
        [
            ops.DropTableOp.from_table(cage),
            ops.ModifyTableOps("big_cage_extras", [ops.DropIndexOp("ix_x", "big_cage_extras")]),
            ops.DropTableOp.from_table(big),
            ops.AddColumnOp("other", sa.Column("x", sa.Integer)),
            ops.DropTableOp.from_table(extras),
        ]
    )
    script = ops.MigrationScript("r1", upgrade, ops.DowngradeOps([]))
    autogen.process_revision_directives(None, None, [script])  # type: ignore[arg-type]
    steps = [(type(op).__name__, op.table_name) for op in script.upgrade_ops.ops]  # type: ignore[attr-defined]
    assert steps == [
        ("ModifyTableOps", "big_cage_extras"),
        ("DropTableOp", "big_cage_extras"),
        ("DropTableOp", "big_cage"),
        ("DropTableOp", "cage"),
        ("AddColumnOp", "other"),
    ]
    created = [
        op.table_name for op in script.downgrade_ops.ops if isinstance(op, ops.CreateTableOp)
    ]  # type: ignore[attr-defined]
    assert created == ["cage", "big_cage", "big_cage_extras"]


def test_differences_read_as_lines() -> None:
    """check's differences are one readable line each."""
    table = sa.Table("thing", sa.MetaData(), sa.Column("rank", sa.BigInteger, nullable=False))
    index = sa.Index("ix_thing_rank", table.c.rank)
    assert autogen.describe_difference(("add_table", table)) == "missing table: thing"
    assert autogen.describe_difference(("remove_index", index)) == (
        "index not in the models: ix_thing_rank on thing"
    )
    assert autogen.describe_difference(("add_column", None, "thing", table.c.rank)) == (
        "missing column: thing.rank (BigInteger() NOT NULL)"
    )
    modify = [("modify_nullable", None, "thing", "rank", {}, False, True)]
    assert autogen.describe_difference(modify) == (
        "column nullability: thing.rank should be nullable"
    )
