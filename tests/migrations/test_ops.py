"""claystore.migrations.ops in migration scripts: renamed classes and fields keep their
objects, ids, aliases and references; a removed class leaves nothing behind; both engines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from claystore import Client, DataClayObject
from claystore.dialects.names import fit_identifier
from claystore.errors import MigrationError
from claystore.migrations import ops
from claystore.orm.mapping import forget_models
from tests.migrations.conftest import Project, function_body, replace_functions

ZOO_1 = """
    from __future__ import annotations

    from typing import Annotated

    from claystore import DataClayObject, Indexed


    class Keeper(DataClayObject):
        name: Annotated[str, Indexed(unique=True)]


    class Animal(DataClayObject):
        name: Annotated[str, Indexed()]
        keeper: Keeper | None = None
        friends: list[Animal]


    class Lion(Animal):
        mane: str = "golden"


    class Cage(DataClayObject):
        label: str
        residents: list[Animal]


    class BigCage(Cage):
        size: int = 100
        extras: list[Animal]
"""

# release 2: Animal is Creature; its fields name, keeper, friends are label, carer, pals; the
# cages are gone
ZOO_2 = """
    from __future__ import annotations

    from typing import Annotated

    from claystore import DataClayObject, Indexed


    class Keeper(DataClayObject):
        name: Annotated[str, Indexed(unique=True)]


    class Creature(DataClayObject):
        label: Annotated[str, Indexed()]
        carer: Keeper | None = None
        pals: list[Creature]


    class Lion(Creature):
        mane: str = "golden"
"""

SEED = """
    import json
    from claystore import Client
    from zoo import Animal, BigCage, Cage, Keeper, Lion

    def make(cls, **values):
        obj = cls.__new__(cls)
        for name, value in values.items():
            setattr(obj, name, value)
        return obj

    with Client():
        kim = make(Keeper, name="Kim")
        leo = make(Lion, name="Leo", keeper=kim, friends=[])
        ann = make(Animal, name="Ann", keeper=None, friends=[leo])
        ann.make_persistent(alias="ann")
        leo.add_alias("leo")
        cage = make(Cage, label="c1", residents=[ann, leo])
        cage.make_persistent(alias="c1")
        big = make(BigCage, label="c2", residents=[], extras=[leo])
        big.make_persistent(alias="c2")
        json.dump({"leo": str(leo._dc_meta.id), "ann": str(ann._dc_meta.id)}, open("ids.json", "w"))
"""

RENAMES = """
    def upgrade() -> None:
        claystore_ops.rename_model("animal", "creature")
        claystore_ops.rename_field("creature", "name", "label")
        claystore_ops.rename_field("creature", "keeper", "carer")
        claystore_ops.rename_field("creature", "friends", "pals")


    def downgrade() -> None:
        claystore_ops.rename_field("creature", "pals", "friends")
        claystore_ops.rename_field("creature", "carer", "keeper")
        claystore_ops.rename_field("creature", "label", "name")
        claystore_ops.rename_model("creature", "animal")
"""

DROP_CAGES = """
    def upgrade() -> None:
        claystore_ops.drop_model("cage")
"""

READ_2 = """
    import json
    import uuid
    import sqlalchemy as sa
    from claystore import Client
    from zoo import Creature, Lion

    ids = json.load(open("ids.json"))
    with Client() as client:
        leo = Creature.get_by_id(uuid.UUID(ids["leo"]))
        assert isinstance(leo, Lion) and leo.label == "Leo" and leo.mane == "golden"
        assert leo.carer.name == "Kim"
        assert Lion.get_by_alias("leo") is leo
        ann = Creature.get_by_alias("ann")
        assert str(ann._dc_meta.id) == ids["ann"] and ann.pals == [leo] and ann.carer is None
        assert [c.label for c in Creature.dc_query().filter("label", "=", "Leo")] == ["Leo"]
        with client.engine.connect() as conn:
            classes = conn.execute(sa.text("SELECT class_name FROM dc_object")).scalars()
            aliases = conn.execute(sa.text("SELECT name FROM dc_alias")).scalars()
            keys = conn.execute(sa.text("SELECT dc_class FROM creature")).scalars()
            for found in (classes, aliases, keys):
                print(sorted(found))
        inspector = sa.inspect(client.engine)
        tables = set(inspector.get_table_names())
        tables_indexed = ("creature", "creature_pals")
        indexes = {i["name"] for t in tables_indexed for i in inspector.get_indexes(t)}
        print(sorted(t for t in tables if not t.startswith("dc_")))
        print(sorted(indexes))
"""

READ_1 = """
    import json
    import uuid
    from claystore import Client
    from zoo import Animal, Cage, Lion

    ids = json.load(open("ids.json"))
    with Client():
        leo = Animal.get_by_id(uuid.UUID(ids["leo"]))
        assert isinstance(leo, Lion) and leo.name == "Leo" and leo.keeper.name == "Kim"
        assert Animal.get_by_alias("ann").friends == [leo]
        assert list(Cage.dc_query()) == []
        print("ok")
"""


def test_renames_and_a_removal_in_migration_scripts(project: Project) -> None:
    """rename_model and rename_field (a column with an index, a reference, a list of
    references) keep every object, id, alias and reference; drop_model in place of
    autogenerate's drops removes a class hierarchy with its objects; check then passes; the
    downgrade renames everything back."""
    project.write("zoo.py", ZOO_1)
    project.python(SEED)
    project.claystore("db", "init", "migrations", "--models", "zoo")
    project.claystore("db", "revision", "-m", "rename animals")
    [renames] = project.revisions()
    replace_functions(renames, RENAMES)
    project.claystore("db", "upgrade")

    project.write("zoo.py", ZOO_2)
    project.claystore("db", "revision", "--autogenerate", "-m", "remove cages")
    renames, removal = project.revisions()
    calls = [
        node
        for node in ast.walk(ast.Module(function_body(removal, "upgrade"), []))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]
    dropped = {ast.literal_eval(c.args[0]) for c in calls if c.func.attr == "drop_table"}  # type: ignore[attr-defined]
    assert dropped == {"cage", "big_cage", "cage_residents", "big_cage_extras"}
    allowed = {"drop_table", "drop_index", "batch_alter_table", "f"}  # op.f(): a name as given
    assert {c.func.attr for c in calls} <= allowed  # type: ignore[attr-defined]
    replace_functions(removal, DROP_CAGES)
    project.claystore("db", "upgrade")

    classes, aliases, keys, tables, indexes = project.python(READ_2).splitlines()
    assert classes == "['creature', 'keeper', 'lion']"
    assert aliases == "['ann', 'leo']"
    assert keys == "['creature', 'lion']"
    assert tables == "['alembic_version', 'creature', 'creature_pals', 'keeper', 'lion']"
    assert indexes == (
        "['ix_creature_carer_id', 'ix_creature_label', 'ix_creature_pals_target_id']"
    )
    project.claystore("db", "check")

    project.claystore("db", "downgrade", "base")
    project.write("zoo.py", ZOO_1)
    assert project.python(READ_1).strip() == "ok"


# -- in-process: the operations on their own ----------------------------------------------------


@contextmanager
def migration(url: str) -> Iterator[sa.Connection]:
    """An alembic migration context on ``url``: ``ops`` run inside it, committed at the end."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            yield conn
    finally:
        engine.dispose()


def _rows(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.text(sql)).scalars())
    finally:
        engine.dispose()


def test_drop_model_of_a_subclass_leaves_nothing_behind(db_url: str) -> None:
    """Dropping a subclass removes its objects' rows in the ancestors' tables, their link
    rows in other objects' lists, their aliases and registry rows; the rest stays."""

    class OpsItem(DataClayObject):
        name: str

    class OpsGadget(OpsItem):
        power: int = 1
        parts: list[OpsItem]

    class OpsShelf(DataClayObject):
        items: list[OpsItem]

    try:
        with Client(db_url):
            plain, gadget = OpsItem(), OpsGadget()
            plain.name, gadget.name, gadget.parts = "plain", "gadget", [plain]
            shelf = OpsShelf()
            shelf.items = [plain, gadget]
            shelf.make_persistent(alias="shelf")
            gadget.add_alias("gadget")
        with migration(db_url):
            ops.drop_model("ops_gadget")
    finally:
        forget_models(OpsItem, OpsShelf)
    assert _rows(db_url, "SELECT name FROM ops_item") == ["plain"]
    assert len(_rows(db_url, "SELECT target_id FROM ops_shelf_items")) == 1
    assert _rows(db_url, "SELECT name FROM dc_alias") == ["shelf"]
    assert _rows(db_url, "SELECT class_name FROM dc_object") == ["ops_item", "ops_shelf"]
    tables = set(sa.inspect(sa.create_engine(db_url)).get_table_names())
    assert not tables & {"ops_gadget", "ops_gadget_parts"}


def test_operations_name_what_is_missing(db_url: str) -> None:
    """A table or field that does not exist, or a name already taken, is a MigrationError
    naming it and the fix; nothing is changed."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE pet (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
        conn.execute(sa.text("CREATE TABLE toy (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with (
        pytest.raises(MigrationError, match=r"no table 'animal'.*snake_case of the class name"),
        migration(db_url),
    ):
        ops.rename_model("animal", "creature")
    with pytest.raises(MigrationError, match="table 'toy' exists already"), migration(db_url):
        ops.rename_model("pet", "toy")
    with (
        pytest.raises(MigrationError, match=r"no column 'nick'.*'nick_id'.*'pet_nick'"),
        migration(db_url),
    ):
        ops.rename_field("pet", "nick", "nickname")
    with pytest.raises(MigrationError, match="has a column 'name' already"), migration(db_url):
        ops.rename_field("pet", "name", "name")
    with pytest.raises(MigrationError, match="claystore's system tables"), migration(db_url):
        ops.drop_model("dc_alias")
    assert _rows(db_url, "SELECT name FROM pet") == []


def test_a_shortened_link_table_is_renamed_when_its_field_is_named(db_url: str) -> None:
    """A link table whose name was shortened to fit 63 bytes cannot be traced to its field:
    rename_model asks for link_fields, and with them renames it to the new class's name."""
    field = "companions_of_very_long_standing_and_great_renown_and_more"
    old_link, new_link = fit_identifier(f"thing_{field}"), fit_identifier(f"gadget_{field}")
    assert old_link != f"thing_{field}"  # shortened
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE thing (id INTEGER PRIMARY KEY, dc_class VARCHAR(200))"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {old_link} (owner_id INTEGER REFERENCES thing (id), "
                "target_id INTEGER)"
            )
        )
        conn.execute(sa.text("INSERT INTO thing VALUES (1, 'thing')"))
    engine.dispose()
    with pytest.raises(MigrationError, match="pass link_fields"), migration(db_url):
        ops.rename_model("thing", "gadget")
    with migration(db_url):
        ops.rename_model("thing", "gadget", link_fields=[field])
    tables = set(sa.inspect(sa.create_engine(db_url)).get_table_names())
    assert {"gadget", new_link} <= tables
    assert not tables & {"thing", old_link}
    assert _rows(db_url, "SELECT dc_class FROM gadget") == ["gadget"]


def test_a_column_of_a_claystore_type_renames_in_batch_mode(db_url: str) -> None:
    """alembic's batch rename with ``existing_type`` of a claystore column type works (it asked
    the type for a constraint name, which reached SQLAlchemy's String and failed)."""
    from claystore.dialects import types as claystore_types

    with migration(db_url) as conn:
        conn.exec_driver_sql("CREATE TABLE renamed_types (id INTEGER PRIMARY KEY, a VARCHAR)")
        with Operations(MigrationContext.configure(conn)).batch_alter_table("renamed_types") as b:
            b.alter_column(
                "a", new_column_name="b", existing_type=claystore_types.CodePointString()
            )
        assert [c["name"] for c in sa.inspect(conn).get_columns("renamed_types")] == ["id", "b"]
