"""Models change, data stays: the schema check at start, ``schema="evolve"``, and the modes.

Each test defines release 1 of a model, stores objects with it, then forgets it and defines
release 2 (as a restarted program would) and starts a client on the same database.
"""

from __future__ import annotations

import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from claystore import Client
from claystore.errors import (
    ClaystoreError,
    ConfigurationError,
    IntegrityError,
    SchemaDriftError,
)
from claystore.orm.mapping import forget_models, metadata
from claystore.orm.schema import DifferenceKind

_defined: list[type] = []


@pytest.fixture(autouse=True)
def _forget_releases() -> Iterator[None]:
    yield
    forget_models(*[c for c in _defined if "_dc_info" in c.__dict__])
    _defined.clear()


def release(source: str, *, forget: tuple[type, ...] = ()) -> Any:
    """Define the model classes of ``source`` (after forgetting ``forget``); returns them as
    attributes of a namespace."""
    if forget:
        forget_models(*forget)
    module = types.ModuleType(f"release_{uuid.uuid4().hex[:8]}")
    sys.modules[module.__name__] = module  # annotations are resolved in the class's module
    namespace = module.__dict__
    header = (
        "from __future__ import annotations\n"
        "import enum\n"
        "from typing import Annotated\n"
        "from claystore import DataClayObject, Indexed\n"
    )
    exec(header + textwrap.dedent(source), namespace)
    classes = [v for v in namespace.values() if isinstance(v, type) and "_dc_info" in v.__dict__]
    _defined.extend(classes)
    return module


V1 = """
class EvoPerson(DataClayObject):
    name: str
    count: int
"""


def store_v1(db_url: str) -> tuple[Any, uuid.UUID]:
    v1 = release(V1)
    with Client(db_url):
        ann = v1.EvoPerson()
        ann.name, ann.count = "Ann", 3
        ann.make_persistent(alias="ann")
        return v1, ann._dc_meta.id


def kinds(error: SchemaDriftError) -> list[tuple[DifferenceKind, str | None]]:
    return [(d.kind, d.column) for d in error.differences]


def test_added_field_with_default_is_refused_then_evolved(db_url: str) -> None:
    """A new defaulted field stops the default start with a message naming the column, the
    type and the default; schema="evolve" adds it and old rows read the default."""
    v1, ann_id = store_v1(db_url)
    v2 = release(V1 + "    age: int = 7\n", forget=(v1.EvoPerson,))
    client = Client(db_url)
    with pytest.raises(SchemaDriftError) as caught:
        client.start()
    message = str(caught.value)
    assert "evo_person.age: missing column (model: int, default 7)" in message
    assert 'schema="evolve"' in message
    assert "claystore db revision --autogenerate" in message
    assert kinds(caught.value) == [(DifferenceKind.MISSING_COLUMN, "age")]
    assert not client.is_open
    with Client(db_url, schema="evolve"):
        ann = v2.EvoPerson.get_by_alias("ann")
        assert (ann._dc_meta.id, ann.name, ann.count, ann.age) == (ann_id, "Ann", 3, 7)
        bob = v2.EvoPerson()
        bob.name, bob.count, bob.age = "Bob", 1, 40
        bob.make_persistent()
    with Client(db_url, schema="check"):  # evolved: nothing differs any more
        assert sorted(p.age for p in v2.EvoPerson.dc_query()) == [7, 40]


def test_added_nullable_field_is_evolved_and_reads_none(db_url: str) -> None:
    """A new optional field is added by evolve; stored objects read None."""
    v1, _ = store_v1(db_url)
    v2 = release(V1 + "    nickname: str | None = None\n", forget=(v1.EvoPerson,))
    with Client(db_url, schema="evolve"):
        ann = v2.EvoPerson.get_by_alias("ann")
        assert ann.nickname is None
        ann.nickname = "annie"
        assert v2.EvoPerson.get_by_alias("ann").nickname == "annie"


def test_added_required_field_without_default_needs_a_migration(db_url: str) -> None:
    """A new NOT NULL field with no default cannot be filled for old rows: evolve refuses it
    too, saying a migration is needed, and changes nothing."""
    v1, _ = store_v1(db_url)
    v2 = release(V1 + "    age: int\n", forget=(v1.EvoPerson,))
    with pytest.raises(SchemaDriftError) as caught:
        Client(db_url, schema="evolve").start()
    assert "evo_person.age: missing column (model: int)  [needs a migration]" in str(caught.value)
    assert not caught.value.differences[0].can_evolve
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert "age" not in {c["name"] for c in sa.inspect(conn).get_columns("evo_person")}
    engine.dispose()
    del v2


@pytest.mark.parametrize(
    ("annotation", "database_type"),
    [("float", "BIGINT"), ("str", "BIGINT")],
)
def test_a_changed_type_is_refused_on_every_engine(
    db_url: str, annotation: str, database_type: str
) -> None:
    """int -> float and int -> str are type differences (a BIGINT column would round 1.5 or
    refuse text): raised by default and by evolve, naming both types."""
    v1, _ = store_v1(db_url)
    release(V1.replace("count: int", f"count: {annotation}"), forget=(v1.EvoPerson,))
    for mode in ("create", "evolve"):
        with pytest.raises(SchemaDriftError) as caught:
            Client(db_url, schema=mode).start()
        expected = f"evo_person.count: column is {database_type}, model says {annotation}"
        assert expected in str(caught.value)
        assert kinds(caught.value) == [(DifferenceKind.COLUMN_TYPE, "count")]


def test_a_removed_field_is_refused(db_url: str) -> None:
    """A field gone from the class leaves a column the model does not have (a removed or
    renamed field): raised, evolve included, since dropping it would lose data."""
    v1, _ = store_v1(db_url)
    release("class EvoPerson(DataClayObject):\n    name: str\n", forget=(v1.EvoPerson,))
    with pytest.raises(SchemaDriftError) as caught:
        Client(db_url, schema="evolve").start()
    assert kinds(caught.value) == [(DifferenceKind.EXTRA_COLUMN, "count")]
    assert "evo_person.count: column (BIGINT NOT NULL) is not in the model" in str(caught.value)


def test_a_renamed_field_shows_as_one_missing_and_one_extra_column(db_url: str) -> None:
    """Renaming a field is a missing column and an extra one: a migration's job."""
    v1, _ = store_v1(db_url)
    release(V1.replace("count: int", "total: int"), forget=(v1.EvoPerson,))
    with pytest.raises(SchemaDriftError) as caught:
        Client(db_url).start()
    assert sorted(kinds(caught.value), key=str) == sorted(
        [(DifferenceKind.MISSING_COLUMN, "total"), (DifferenceKind.EXTRA_COLUMN, "count")],
        key=str,
    )


def _indexes(db_url: str, table: str) -> list[tuple[tuple[str, ...], bool]]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        found = sorted(
            (tuple(i["column_names"]), bool(i["unique"]))
            for i in sa.inspect(conn).get_indexes(table)
        )
    engine.dispose()
    return found


def test_an_added_index_is_evolved(db_url: str) -> None:
    """Indexed() on an existing field: a missing index, which evolve creates."""
    v1, _ = store_v1(db_url)
    release(V1.replace("count: int", "count: Annotated[int, Indexed()]"), forget=(v1.EvoPerson,))
    with pytest.raises(SchemaDriftError) as caught:
        Client(db_url).start()
    assert "evo_person: missing index on (count)" in str(caught.value)
    with Client(db_url, schema="evolve"):
        pass
    assert ((("count",), False)) in _indexes(db_url, "evo_person")


def test_an_added_unique_index_is_evolved_and_then_refuses_duplicates(db_url: str) -> None:
    """Indexed(unique=True) on a field whose values are distinct: evolve makes the unique
    index, and a duplicate is then refused with claystore's IntegrityError."""
    v1, _ = store_v1(db_url)
    v2 = release(
        V1.replace("count: int", "count: Annotated[int, Indexed(unique=True)]"),
        forget=(v1.EvoPerson,),
    )
    with Client(db_url, schema="evolve"):
        bob = v2.EvoPerson()
        bob.name, bob.count = "Bob", 3
        with pytest.raises(IntegrityError):
            bob.make_persistent()
    assert ((("count",), True)) in _indexes(db_url, "evo_person")


def test_a_unique_index_over_duplicates_names_them_and_changes_nothing(db_url: str) -> None:
    """Evolve cannot make a unique index over rows that repeat a value: it raises naming the
    duplicate values, and the other changes of the same start are not applied either."""
    v1, _ = store_v1(db_url)
    with Client(db_url):
        for name in ("Bob", "Cy"):
            other = v1.EvoPerson()
            other.name, other.count = name, 3
            other.make_persistent()
    release(
        V1.replace("count: int", "count: Annotated[int, Indexed(unique=True)]")
        + "    age: int | None = None\n",
        forget=(v1.EvoPerson,),
    )
    with pytest.raises(SchemaDriftError) as caught:
        Client(db_url, schema="evolve").start()
    assert "unique index on (count)" in str(caught.value)
    assert "3 (3 rows)" in str(caught.value)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("evo_person")}
    engine.dispose()
    assert "age" not in columns


def test_new_classes_subclasses_and_link_tables_are_created(db_url: str) -> None:
    """A new class, a new subclass and a new list-of-references field are new tables: the
    default start creates them, and old objects keep working with the new ones."""
    v1, ann_id = store_v1(db_url)
    v2 = release(
        V1
        + "    friends: list[EvoPerson] = []\n"
        + "class EvoStaff(EvoPerson):\n    badge: int = 0\n"
        + "class EvoTeam(DataClayObject):\n    members: list[EvoPerson] = []\n",
        forget=(v1.EvoPerson,),
    )
    with pytest.raises(SchemaDriftError):
        Client(db_url, schema="check").start()
    with Client(db_url):
        ann = v2.EvoPerson.get_by_alias("ann")
        assert ann.friends == []
        boss = v2.EvoStaff()
        boss.name, boss.count, boss.badge = "Boss", 1, 42
        ann.friends = [boss]
        team = v2.EvoTeam()
        team.members = [ann, boss]
        team.make_persistent(alias="team")
        assert [p.name for p in v2.EvoTeam.get_by_alias("team").members] == ["Ann", "Boss"]
        assert v2.EvoPerson.get_by_id(ann_id).friends[0].badge == 42


def test_check_mode_creates_nothing_and_reports_missing_tables(db_url: str) -> None:
    """schema="check" on an empty database raises (every table is missing) and creates no
    model table."""
    release(V1)
    with pytest.raises(SchemaDriftError) as caught:
        Client(db_url, schema="check").start()
    assert (DifferenceKind.MISSING_TABLE, None) in kinds(caught.value)
    assert "evo_person: missing table (model: class EvoPerson)" in str(caught.value)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert "evo_person" not in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_skip_mode_checks_nothing(db_url: str) -> None:
    """schema="skip" starts whatever the tables look like (migrations are run separately)."""
    v1, _ = store_v1(db_url)
    v2 = release(V1 + "    age: int = 7\n", forget=(v1.EvoPerson,))
    with Client(db_url, schema="skip"):
        assert v2.EvoPerson.dc_query().count() == 1


def test_a_bad_schema_mode_is_refused() -> None:
    """Only the four modes exist."""
    with pytest.raises(ConfigurationError, match="schema='auto' is not a schema mode"):
        Client("sqlite://", schema="auto")


def test_unknown_tables_of_classes_not_imported_are_left_alone(db_url: str) -> None:
    """A table whose class this program does not define is never flagged (a program may import
    only some of the models)."""
    v1, _ = store_v1(db_url)
    forget_models(v1.EvoPerson)
    with Client(db_url, schema="check"):
        pass


def test_a_class_defined_after_start_that_drifts_does_not_block_the_others(db_url: str) -> None:
    """A class defined while a client runs is checked on first use; its drift is raised, every
    other class keeps working, and writing objects of the drifting class is refused."""
    v1, _ = store_v1(db_url)
    forget_models(v1.EvoPerson)
    with Client(db_url) as client:
        v2 = release(V1.replace("count: int", "count: str"))
        with pytest.raises(SchemaDriftError):
            v2.EvoPerson.dc_query().count()
        with client.session():
            other = release("class EvoOther(DataClayObject):\n    n: int = 0\n").EvoOther()
            other.make_persistent()
        assert type(other).dc_query().count() == 1
        # its objects are never written: not new ones, not changes to stored ones
        bob = v2.EvoPerson()
        bob.name, bob.count = "Bob", "four"
        with pytest.raises(SchemaDriftError, match=r"evo_person\.count: column is BIGINT"):
            bob.make_persistent()
        with pytest.raises(SchemaDriftError), client.session():
            v2.EvoPerson.get_by_alias("ann").name = "Anne"
    with pytest.raises(SchemaDriftError):  # the next client: not until the model is fixed
        Client(db_url).start()


def test_evolve_widens_text_columns_where_the_engine_enforces_lengths(
    db_url: str, engine_name: str
) -> None:
    """An enum that gained a longer member name needs a wider column on PostgreSQL (evolve
    widens it); SQLite keeps any text in any VARCHAR, so nothing differs there."""
    enum_v1 = "class Mood(enum.Enum):\n    OK = 1\n"
    model = "class EvoMood(DataClayObject):\n    mood: Mood\n"
    v1 = release(enum_v1 + model)
    with Client(db_url):
        item = v1.EvoMood()
        item.mood = v1.Mood.OK
        item.make_persistent(alias="m")
    v2 = release(
        "class Mood(enum.Enum):\n    OK = 1\n    CHEERFUL = 2\n" + model, forget=(v1.EvoMood,)
    )
    if engine_name == "postgresql":
        with pytest.raises(SchemaDriftError, match=r"column is VARCHAR\(2\), model says Mood"):
            Client(db_url).start()
    with Client(db_url, schema="evolve"):
        item = v2.EvoMood.get_by_alias("m")
        item.mood = v2.Mood.CHEERFUL
        assert v2.EvoMood.get_by_alias("m").mood is v2.Mood.CHEERFUL


def test_a_field_that_became_optional(db_url: str, engine_name: str) -> None:
    """str -> str | None: a NOT NULL column would refuse None; evolve drops NOT NULL where the
    engine alters columns in place, elsewhere a migration is needed."""
    v1, _ = store_v1(db_url)
    v2 = release(V1.replace("name: str", "name: str | None = None"), forget=(v1.EvoPerson,))
    if engine_name == "sqlite":
        with pytest.raises(SchemaDriftError, match="needs a migration"):
            Client(db_url, schema="evolve").start()
        return
    with Client(db_url, schema="evolve"):
        ann = v2.EvoPerson.get_by_alias("ann")
        ann.name = None
        assert v2.EvoPerson.get_by_alias("ann").name is None


def test_every_difference_is_a_claystore_error_with_structured_values(db_url: str) -> None:
    """err.differences holds every difference, each with its table, column, kind and whether
    evolve can apply it; the error is a ClaystoreError, never a driver error."""
    v1, _ = store_v1(db_url)
    release(V1.replace("count: int", "count: float") + "    age: int = 0\n", forget=(v1.EvoPerson,))
    with pytest.raises(ClaystoreError) as caught:
        Client(db_url).start()
    assert isinstance(caught.value, SchemaDriftError)
    found = {(d.table, d.column, d.kind, d.can_evolve) for d in caught.value.differences}
    assert found == {
        ("evo_person", "count", DifferenceKind.COLUMN_TYPE, False),
        ("evo_person", "age", DifferenceKind.MISSING_COLUMN, True),
    }


def test_a_database_made_with_unique_constraints_matches_unique_indexes(db_url: str) -> None:
    """Databases made by claystore 0.1.0 hold a UNIQUE constraint where claystore now makes a
    unique index: both satisfy Indexed(unique=True)."""
    v1 = release("class EvoCode(DataClayObject):\n    code: Annotated[str, Indexed(unique=True)]\n")
    table = metadata.tables["evo_code"]
    old = sa.MetaData()
    sa.Table(
        "evo_code",
        old,
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in table.c
        ),
        sa.UniqueConstraint("code"),
    )
    engine = sa.create_engine(db_url)
    old.create_all(engine)
    engine.dispose()
    with Client(db_url):  # evo_code exists: compared, not created
        item = v1.EvoCode()
        item.code = "A"
        item.make_persistent()


# -- names -------------------------------------------------------------------------------------

LONG_CLASS = "Evo" + "VeryLongName" * 6  # 75 characters
LONG_FIELD = "a_field_with_a_name_much_longer_than_any_engine_keeps_in_one_identifier"  # 72


def test_long_class_and_field_names_work_on_every_engine(db_url: str) -> None:
    """A 75-character class name and 72-character field names (a scalar, an indexed one, a
    reference and a list of references) get shortened, deterministic names that fit 63 bytes,
    and store, load and query on both engines."""
    models = release(
        f"class {LONG_CLASS}(DataClayObject):\n"
        f"    {LONG_FIELD}: int = 0\n"
        f"    {LONG_FIELD}_2: Annotated[str, Indexed()] = ''\n"
        f"    {LONG_FIELD}_3: {LONG_CLASS} | None = None\n"
        f"    {LONG_FIELD}_4: list[{LONG_CLASS}] = []\n"
    )
    cls = getattr(models, LONG_CLASS)
    info = cls._dc_info
    names = [info.tablename, *info.table.c.keys(), *(i.name for i in info.table.indexes)]
    names += [t.name for t in info.link_tables.values()]
    assert all(len(n.encode()) <= 63 for n in names), names
    assert info.tablename.startswith("evo_very_long_name_very_long_name")
    with Client(db_url):
        first = cls()
        setattr(first, LONG_FIELD, 1)
        setattr(first, f"{LONG_FIELD}_2", "x")
        second = cls()
        setattr(second, f"{LONG_FIELD}_3", first)
        setattr(second, f"{LONG_FIELD}_4", [first])
        second.make_persistent(alias="long")
        again = cls.get_by_alias("long")
        assert getattr(getattr(again, f"{LONG_FIELD}_3"), LONG_FIELD) == 1
        assert getattr(again, f"{LONG_FIELD}_4")[0] is getattr(again, f"{LONG_FIELD}_3")
        assert cls.dc_query().count() == 2
    with Client(db_url, schema="check"):  # the shortened names are what the database holds
        pass


def test_names_are_shortened_the_same_way_every_time() -> None:
    """A long generated name always gives the same identifier: a readable prefix and a hash."""
    from claystore.dialects.names import fit_identifier

    name = "x" * 80
    assert fit_identifier(name) == fit_identifier(name)
    assert fit_identifier(name) != fit_identifier(name + "y")
    assert len(fit_identifier(name)) == 63
    assert fit_identifier("employee") == "employee"
    assert len(fit_identifier("é" * 40).encode()) <= 63


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            f"class EvoBad(DataClayObject):\n    __tablename__ = '{'t' * 70}'\n    n: int = 0\n",
            "is 70 bytes long; table names must fit 63 bytes",
        ),
        (
            "class EvoBad(DataClayObject):\n    __tablename__ = 'pg_things'\n    n: int = 0\n",
            "table names starting with 'pg_' are the database engine's",
        ),
        (
            "class EvoBad(DataClayObject):\n    __tablename__ = 'sqlite_x'\n    n: int = 0\n",
            "table names starting with 'sqlite_'",
        ),
        (
            "class EvoBad(DataClayObject):\n    __tablename__ = 'DC_Things'\n    n: int = 0\n",
            "starting with 'dc_' are claystore's",
        ),
        (
            "class EvoBad(DataClayObject):\n    __tablename__ = 'EVO_PERSON'\n    n: int = 0\n",
            "table 'EVO_PERSON' is already used by",
        ),
    ],
)
def test_a_bad_class_is_refused_and_poisons_nothing(db_url: str, source: str, message: str) -> None:
    """A class whose table cannot be made on every engine is refused when it is defined, with
    a MappingError naming the class, the name and the rule; every other class and the next
    client keep working."""
    from claystore.errors import MappingError

    v1 = release(V1)
    with pytest.raises(MappingError, match="EvoBad") as caught:
        release(source)
    assert message in str(caught.value)
    with Client(db_url):
        ann = v1.EvoPerson()
        ann.name, ann.count = "Ann", 1
        ann.make_persistent(alias="ann")
    with Client(db_url, schema="check"):
        assert v1.EvoPerson.get_by_alias("ann").count == 1
    assert not any(
        t.lower() == "evobad" or t.startswith(("pg_", "sqlite_")) for t in metadata.tables
    )


def test_clients_evolving_at_once_apply_the_change_once(db_url: str) -> None:
    """Two clients starting with schema="evolve" at the same moment: the schema lock makes
    one apply the change and the other find nothing left to do; both start."""
    import threading

    v1, _ = store_v1(db_url)
    v2 = release(V1 + "    age: int = 7\n", forget=(v1.EvoPerson,))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            Client(db_url, schema="evolve").start().stop()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Client(db_url, schema="check"):
        assert v2.EvoPerson.get_by_alias("ann").age == 7


def test_a_renamed_class_without_a_migration_names_the_operation(db_url: str) -> None:
    """A class renamed with no migration: its new table is created, and its old objects, still
    filed under the old table, raise a MappingError that names rename_model."""
    from claystore.errors import MappingError

    v1, ann_id = store_v1(db_url)
    v2 = release(V1.replace("EvoPerson", "EvoHuman"), forget=(v1.EvoPerson,))
    with Client(db_url):
        with pytest.raises(MappingError, match=r"rename_model\('evo_person', NEW_TABLE\)"):
            v2.EvoHuman.get_by_alias("ann")
        with pytest.raises(MappingError, match="stored in table 'evo_person'"):
            v2.EvoHuman.get_by_id(ann_id)
        assert v2.EvoHuman.dc_query().count() == 0


def test_a_new_class_defined_with_a_drifting_one_gets_its_table(db_url: str) -> None:
    """Two classes defined together after start, one new and one that drifts: the check that
    finds the drift creates nothing (it is undone), and the new class gets its table at its
    next use."""
    v1, _ = store_v1(db_url)
    forget_models(v1.EvoPerson)
    with Client(db_url):
        v2 = release(
            V1.replace("count: int", "count: str")
            + "class EvoFresh(DataClayObject):\n    n: int = 0\n"
        )
        with pytest.raises(SchemaDriftError):
            v2.EvoFresh.dc_query().count()
        fresh = v2.EvoFresh()
        fresh.make_persistent()
        assert v2.EvoFresh.dc_query().count() == 1
