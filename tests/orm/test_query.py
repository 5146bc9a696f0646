"""Model queries: ``Class.dc_query()`` and ``client.query(Query(Key("/Class")))`` as one SELECT.

Every test runs on SQLite and PostgreSQL.  The model classes here are this module's own
(tables ``q_...``).  Random comparisons with the naive path live in tests/test_differential.py.
"""

from __future__ import annotations

import datetime as dt
import enum
import gc
import os
import re
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from claystore import Client, DataClayObject, Indexed, activemethod, errors
from claystore.datastore import (
    DictDatastore,
    Key,
    ObjectDatastore,
    Query,
    ShardedDatastore,
)
from claystore.orm.context import active_context
from claystore.orm.modelquery import ModelQuery
from claystore.orm.transaction import current_transaction
from tests.statements import count_statements


class QStaff(DataClayObject):
    __tablename__ = "q_staff"

    name: str
    salary: Annotated[float, Indexed()]
    age: int | None = None
    boss: QStaff | None = None
    tags: list[str]
    reports: list[QStaff]

    def __init__(self, name: str, salary: float, age: int | None = None) -> None:
        self.name = name
        self.salary = salary
        self.age = age
        self.tags = []
        self.reports = []

    @activemethod
    def raise_and_rank(self, amount: float) -> list[str]:
        self.salary += amount
        return [s.name for s in QStaff.dc_query().order("-salary").limit(1)]


class QChief(QStaff):
    __tablename__ = "q_chief"

    bonus: float = 0.0


class QTrainee(QStaff):
    """A sibling subclass with a field of the same name as QChief's."""

    __tablename__ = "q_trainee"

    bonus: int = 0
    school: str = "none"


class QTeam(DataClayObject):
    __tablename__ = "q_team"

    members: list[QStaff]


class QShade(enum.Enum):
    LIGHT = 1
    DARK = 2


class QEvent(DataClayObject):
    __tablename__ = "q_event"

    at: dt.datetime
    day: dt.date
    shade: QShade
    price: Decimal
    code: uuid.UUID
    blob: bytes

    def __init__(self, n: int) -> None:
        self.at = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=n * 40)
        self.day = self.at.date()
        self.shade = QShade.DARK if n % 2 else QShade.LIGHT
        self.price = Decimal(n) / 4
        self.code = uuid.UUID(int=n)
        self.blob = bytes([n])


def names(objects: Any) -> list[str]:
    return [o.name for o in objects]


def staff(*rows: tuple[str, float, int | None]) -> list[QStaff]:
    """Store one QStaff per row, in one transaction."""
    team = QTeam()
    team.members = [QStaff(name, salary, age) for name, salary, age in rows]
    team.make_persistent()
    return team.members


def naive_keys(objects: list[Any], query: Query, fields: list[str]) -> list[str]:
    """The key sequence the naive path gives for ``query`` over ``objects``' fields."""
    store = DictDatastore()
    for obj in objects:
        record = {name: getattr(obj, name) for name in fields}
        store.put(Key(f"/{query.key.name}:{obj._dc_meta.id}"), record)
    return [str(key) for key, _ in store.query(query.copy()).items()]


# -- the query API ----------------------------------------------------------------------------


def test_filter_order_limit_returns_stored_objects(client: Client) -> None:
    """dc_query().filter().order().limit() yields the matching objects, the same Python ones."""
    people = staff(
        ("ann", 500.0, 30), ("bob", 1500.0, 40), ("cy", 3000.0, None), ("di", 2000.0, 25)
    )
    query = QStaff.dc_query().filter("salary", ">", 1000).order("-salary").limit(2)
    found = list(query)
    assert names(found) == ["cy", "di"]
    assert found[0] is people[2]
    assert list(query) == found  # iterating again runs the query again


def test_count_and_first(client: Client) -> None:
    """count() counts what iteration returns (limit and offset too); first() or None."""
    staff(("ann", 500.0, 30), ("bob", 1500.0, 40), ("cy", 3000.0, None))
    assert QStaff.dc_query().count() == 3
    assert QStaff.dc_query().filter("salary", ">=", 1500).count() == 2
    assert QStaff.dc_query().offset(1).limit(5).count() == 2
    assert QStaff.dc_query().order("+salary").first().name == "ann"
    assert QStaff.dc_query().filter("name", "=", "nobody").first() is None


def test_limit_and_offset_are_values_and_setters(client: Client) -> None:
    """query.limit(10) sets and chains; query.limit reads like the datastore's attribute."""
    query = QStaff.dc_query()
    assert query.limit == None  # noqa: E711 - the unset limit equals None
    assert query.offset == 0
    assert query.limit(10).offset(3) is query
    assert (query.limit, query.offset) == (10, 3)
    query.limit = None
    assert query.limit == None  # noqa: E711
    assert query.dict() == {"key": "/QStaff", "offset": 3}
    query.limit(2).filter("age", "<", 3).order("-name")
    again = ModelQuery.from_dict(query.dict())
    assert again == query
    assert again.model is QStaff
    with pytest.raises(errors.QueryError, match="non-negative int"):
        query.limit(-1)


def test_client_query_runs_a_plain_datastore_query(client: Client) -> None:
    """client.query(Query(Key('/QStaff'))...) gives the same objects, keyed /QStaff:<id>."""
    people = staff(("ann", 500.0, 30), ("bob", 1500.0, 40))
    cursor = client.query(Query(Key("/QStaff")).filter("age", ">", 35))
    [(key, obj)] = list(cursor.items())
    assert obj is people[1]
    assert key == Key(f"/QStaff:{obj._dc_meta.id}")
    with pytest.raises(errors.QueryError, match=r"no model class is named 'Nope' \(model classes:"):
        client.query(Query(Key("/Nope")))
    with pytest.raises(errors.QueryError, match="names one class"):
        client.query(Query(Key("/QStaff/x")))


def test_model_cursors_make_keys_for_every_keyed_use(client: Client) -> None:
    """Plain iteration gives objects; map_values, the naive apply_* operations and items()
    all see /QStaff:<id> keys (made on demand), in query order."""
    ann, bob, cy = staff(("ann", 1.0, 30), ("bob", 2.0, 40), ("cy", 3.0, 50))
    expected = [(f"/QStaff:{o._dc_meta.id}", o.name) for o in (ann, bob, cy)]
    assert list(QStaff.dc_query().order("name")) == [ann, bob, cy]
    cursor = QStaff.dc_query().order("name").cursor().map_values(lambda o: o.name)
    assert [(str(k), v) for k, v in cursor.items()] == expected
    second = Query(Key("/QStaff"), offset_key=Key(expected[0][0])).order("name")
    cursor = client.query(second)
    cursor.apply_filter()  # offset_key again, naively: compares the made keys
    assert [str(k) for k, _ in cursor.items()] == [k for k, _ in expected[1:]]


def test_unknown_and_unqueryable_fields_are_refused(client: Client) -> None:
    """Unknown fields list the valid ones; link-table and JSON fields are named and refused."""
    with pytest.raises(errors.QueryError, match=r"no field 'nope'.*age, boss, name, reports"):
        QStaff.dc_query().filter("nope", "=", 1).count()
    with pytest.raises(errors.QueryError, match=r"QStaff.reports .*link table"):
        list(QStaff.dc_query().filter("reports", "=", []))
    with pytest.raises(errors.QueryError, match=r"QStaff.tags .*JSON container"):
        list(QStaff.dc_query().order("tags"))
    with pytest.raises(errors.QueryError, match="custom object_getattr"):
        list(client.query(Query(Key("/QStaff"), object_getattr=getattr).order("name")))


def test_filter_on_a_reference_by_object(client: Client) -> None:
    """filter('boss', '=', ceo) finds the objects referring to ceo; != includes no boss."""
    ceo, ann, _ = staff(("ceo", 9.0, None), ("ann", 1.0, None), ("bob", 2.0, None))
    ann.boss = ceo
    assert names(QStaff.dc_query().filter("boss", "=", ceo)) == ["ann"]
    assert names(QStaff.dc_query().filter("boss", "=", ceo._dc_meta.id)) == ["ann"]
    assert names(QStaff.dc_query().filter("boss", "!=", ceo).order("name")) == ["bob", "ceo"]
    assert names(QStaff.dc_query().filter("boss", "=", None).order("name")) == ["bob", "ceo"]
    with pytest.raises(errors.QueryError, match="not stored"):
        list(QStaff.dc_query().filter("boss", "=", QStaff("new", 1.0)))
    with pytest.raises(errors.QueryError, match="reference"):
        list(QStaff.dc_query().filter("boss", "<", ceo))
    with pytest.raises(errors.QueryError, match="no order"):
        list(QStaff.dc_query().order("boss"))


def test_subclass_instances_come_back_as_their_class(client: Client) -> None:
    """A query on the base class returns subclass objects as themselves, loaded from the
    same SELECT (siblings' same-named fields kept apart)."""
    chief, trainee = QChief("chief", 9.0), QTrainee("tim", 1.0)
    chief.bonus, trainee.bonus, trainee.school = 2.5, 7, "MIT"
    team = QTeam()
    team.members = [chief, trainee, QStaff("plain", 5.0)]
    team.make_persistent()
    del chief, trainee, team
    with count_statements(client.engine) as log:
        found = list(QStaff.dc_query().order("-salary"))
    assert len(log.matching("SELECT")) == 1
    assert [type(o).__name__ for o in found] == ["QChief", "QStaff", "QTrainee"]
    bonus_key = QChief._dc_info.fields["bonus"].key
    assert vars(found[0])[bonus_key] == 2.5
    assert vars(found[2])[bonus_key] == 7
    assert vars(found[2])[QTrainee._dc_info.fields["school"].key] == "MIT"
    assert names(QChief.dc_query()) == ["chief"]


def test_one_select_without_subclasses(client: Client) -> None:
    """A query on a class without subclasses is one SELECT joined with the registry only."""
    QTeam().make_persistent()
    with count_statements(client.engine) as log:
        assert len(list(QTeam.dc_query())) == 1
    [select] = log.matching("SELECT")
    assert "JOIN dc_object" in select
    assert "LEFT OUTER JOIN" not in select


def test_compiled_sql_binds_values(client: Client) -> None:
    """One statement with WHERE, ORDER BY, LIMIT and OFFSET; values are parameters, so a
    value that looks like SQL is data."""
    evil = "'; DROP TABLE q_staff; --"
    staff((evil, 1.0, 1), ("x", 2.0, 2))
    query = QStaff.dc_query().filter("name", "=", evil).order("-salary").limit(5).offset(0)
    query.offset = 1
    compiled = query.statement().compile(dialect=client.engine.dialect)
    sql = str(compiled)
    for part in ("WHERE", "ORDER BY", "LIMIT", "OFFSET", "JOIN dc_object"):
        assert part in sql
    assert ";" not in sql
    assert evil not in sql
    assert evil in compiled.params.values()
    query.offset = 0
    with count_statements(client.engine) as log:
        found = list(query)
    assert len(log.matching("SELECT")) == 1
    assert names(found) == [evil]
    assert QStaff.dc_query().count() == 2


def test_limited_queries_join_the_registry_to_the_page_only(client: Client) -> None:
    """With a limit, filter/order/limit run on the class's own tables in a subquery, and the
    registry and subclass tables are joined to that page of ids only."""
    sql = str(QStaff.dc_query().filter("age", ">", 3).order("name").limit(10).statement())
    head, rest = sql.split("FROM (", 1)
    page, outer = rest.split(") AS page", 1)
    assert "dc_object" in head  # the registry's columns are selected ...
    assert "LIMIT" in page
    assert "JOIN dc_object" not in page  # only the (uncorrelated) list of version ids
    assert "q_chief" not in page
    assert "JOIN dc_object" in outer
    assert "LEFT OUTER JOIN q_chief" in outer
    assert re.search(r'ORDER BY page\.o0 (COLLATE "C" )?ASC, page\.id', outer)


# -- semantics: the datastore's total order ---------------------------------------------------


def test_null_is_lowest_in_filters_and_orders(client: Client) -> None:
    """NULL is None: it passes age < 30, comes first ascending and last descending."""
    staff(("ann", 1.0, 30), ("bob", 2.0, None), ("cy", 3.0, 20), ("di", 4.0, None))
    assert names(QStaff.dc_query().filter("age", "<", 30)) == ["bob", "cy", "di"]
    assert names(QStaff.dc_query().filter("age", ">=", None).order("+age")) == [
        "bob",
        "di",
        "cy",
        "ann",
    ]
    assert names(QStaff.dc_query().order("-age")) == ["ann", "cy", "bob", "di"]
    assert names(QStaff.dc_query().filter("age", "=", None)) == ["bob", "di"]


def test_values_of_other_ranks_compare_by_rank(client: Client) -> None:
    """age < 'x' holds for every row; True is below every number; None only equals NULL."""
    people = staff(("ann", 1.0, 30), ("bob", 2.0, None))
    fields = ["name", "salary", "age"]
    for op in ("<", "<=", "=", "!=", ">=", ">"):
        for value in ("x", True, False, None, 30, 30.0, 29.5, 2**70, float("inf"), float("nan")):
            for field in ("age", "salary", "name"):
                query = Query(Key("/QStaff")).filter(field, op, value)
                expected = naive_keys(people, query, fields)
                assert [str(k) for k, _ in client.query(query).items()] == expected


def test_ties_are_broken_by_id(client: Client) -> None:
    """Equal values come back in id order, which is key order, in both directions."""
    people = staff(*[(f"p{n}", 1.0, 1) for n in range(6)])
    by_key = sorted(people, key=lambda p: f"/QStaff:{p._dc_meta.id}")
    assert list(QStaff.dc_query().order("-salary")) == by_key
    assert list(QStaff.dc_query().order("+age").order("-salary")) == by_key


def test_strings_order_by_code_point(client: Client) -> None:
    """Mixed case and unicode names order by code point on both engines."""
    words = ["a", "B", "é", "z", "😀", "ß", "A", "", "aa", "Z"]
    staff(*[(w, 1.0, None) for w in words])
    assert names(QStaff.dc_query().order("name")) == sorted(words)
    assert names(QStaff.dc_query().filter("name", ">", "Z").order("-name")) == sorted(
        (w for w in words if w > "Z"), reverse=True
    )


def test_ints_and_floats_compare_exactly(client: Client) -> None:
    """Int columns against floats and float columns against big ints compare exactly."""
    people = staff(("a", float(2**53), 2), ("b", 2.0**60, 3), ("c", 0.5, -(2**62)))
    fields = ["name", "salary", "age"]
    for value in (2.5, 2.0, -2.5, 2**53 + 1, 2**60 + 1, 2**60, -(2**63) - 1, 1e300):
        for op in ("<", "<=", "=", "!=", ">=", ">"):
            for field in ("age", "salary"):
                query = Query(Key("/QStaff")).filter(field, op, value)
                expected = naive_keys(people, query, fields)
                assert [str(k) for k, _ in client.query(query).items()] == expected


def test_offset_key_pages_through_results(client: Client) -> None:
    """offset_key continues after the last key of a page (keyset pagination)."""
    staff(*[(f"p{n}", float(n), n) for n in range(5)])
    page = Query(Key("/QStaff"), limit=2)
    first = list(client.query(page).items())
    page.offset_key = first[-1][0]
    second = list(client.query(page).items())
    everything = [k for k, _ in client.query(Query(Key("/QStaff"))).items()]
    assert [k for k, _ in first + second] == everything[:4]
    page.offset_key = Key("/QStaff:not-an-id")
    with pytest.raises(errors.QueryError, match="offset_key"):
        list(client.query(page))
    page.offset_key = Key("/A")
    assert len(list(client.query(page))) == 2
    page.offset_key = Key("/Z")
    assert list(client.query(page)) == []


def test_cursor_counts_returned_and_skipped(client: Client) -> None:
    """returned/skipped match the naive cursor, also past the end."""
    staff(*[(f"p{n}", float(n), n) for n in range(4)])
    for offset, limit, returned, skipped in [(1, 2, 2, 1), (3, 5, 1, 3), (6, None, 0, 4)]:
        cursor = client.query(Query(Key("/QStaff"), limit=limit, offset=offset))
        list(cursor)
        assert (cursor.returned, cursor.skipped) == (returned, skipped)


def test_other_column_types_compare_in_their_own_order(client: Client, engine_name: str) -> None:
    """Datetimes, dates, UUIDs and bytes compare naturally with values of their own type;
    Enum fields take = and !=; mixing types is refused; Decimal needs PostgreSQL."""
    for n in range(5):
        QEvent(n).make_persistent()
    cut = dt.datetime(2020, 3, 1, tzinfo=dt.UTC)
    assert len(list(QEvent.dc_query().filter("at", ">", cut))) == 3
    assert [e.day.month for e in QEvent.dc_query().order("-day").limit(2)] == [6, 4]
    assert len(list(QEvent.dc_query().filter("code", "<=", uuid.UUID(int=1)))) == 2
    assert len(list(QEvent.dc_query().filter("blob", ">", b"\x02"))) == 2
    assert len(list(QEvent.dc_query().filter("shade", "=", QShade.DARK))) == 2
    with pytest.raises(errors.QueryError, match="= or !="):
        list(QEvent.dc_query().filter("shade", "<", QShade.DARK))
    with pytest.raises(errors.QueryError, match="compare it with date values"):
        list(QEvent.dc_query().filter("day", ">", cut))
    with pytest.raises(errors.QueryError, match="compare it with float values"):
        list(QStaff.dc_query().filter("salary", ">", Decimal(1)))
    if engine_name == "postgresql":
        assert len(list(QEvent.dc_query().filter("price", ">=", Decimal("0.5")))) == 3
    else:
        with pytest.raises(errors.QueryError, match="Decimal"):
            list(QEvent.dc_query().filter("price", ">=", Decimal("0.5")))


# -- transactions, identity, streaming --------------------------------------------------------


def test_queries_see_pending_changes_of_the_open_transaction(client: Client) -> None:
    """Inside an activemethod the query sees the method's own unflushed write."""
    ann, bob = staff(("ann", 1.0, None), ("bob", 2.0, None))
    assert ann.raise_and_rank(5.0) == ["ann"]
    with active_context().transaction():
        bob.salary = 100.0
        assert QStaff.dc_query().order("-salary").first() is bob


def test_queries_in_a_session_see_its_deferred_writes(client: Client) -> None:
    """Inside client.session(), new objects and changes not yet written are flushed before
    the query runs, and the objects it returns are the session's."""
    (ann,) = staff(("ann", 1.0, 30))
    with client.session() as session:
        session.add_all([QStaff("new", 50.0, 20)])
        ann.salary = 70.0
        found = list(QStaff.dc_query().filter("salary", ">", 10).order("-salary"))
        assert names(found) == ["ann", "new"]
        assert found[0] is ann
        found[1].age = 21
    assert names(QStaff.dc_query().filter("age", "=", 21)) == ["new"]


def test_outside_transactions_results_stream(client: Client, engine_name: str) -> None:
    """Outside a transaction rows are fetched in chunks (PostgreSQL: a server-side cursor)
    and a query dropped half-way gives its connection back."""
    staff(*[(f"p{n}", float(n), n) for n in range(20)])
    seen: list[Any] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "q_staff" in statement:
            seen.append((type(cursor).__name__, args[-2].execution_options.get("yield_per")))

    engine = client.engine
    event.listen(engine, "before_cursor_execute", record)
    cursor = QStaff.dc_query().order("salary").cursor()
    first = next(cursor)
    event.remove(engine, "before_cursor_execute", record)
    assert first.name == "p0"
    assert seen[0][1] == 1000
    if engine_name == "postgresql":
        assert seen[0][0] == "ServerCursor"
    before = engine.pool.checkedout()
    del cursor
    assert engine.pool.checkedout() == before - 1


def test_in_a_session_results_stream_and_stay_weakly_held(client: Client) -> None:
    """Inside client.session() rows come in chunks on the session's connection (PostgreSQL: a
    server-side cursor in its transaction); objects nobody keeps are dropped as iteration goes
    on, while the session still writes what was changed, and lazy reads of references run on
    the same connection meanwhile."""
    chief = QStaff("chief", -1.0, 60)
    members = staff(*[(f"p{n:04}", float(n), n) for n in range(2500)])
    for member in members[:3]:
        member.boss = chief
    del members
    gc.collect()
    seen: list[Any] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM q_staff" in statement and "ORDER BY" in statement:
            seen.append(args[-2].execution_options.get("yield_per"))

    engine = client.engine
    event.listen(engine, "before_cursor_execute", record)
    alive: list[int] = []
    bosses: list[str] = []
    try:
        with client.session():
            tx = current_transaction(active_context())
            assert tx is not None
            for n, member in enumerate(QStaff.dc_query().filter("salary", ">=", 0).order("name")):
                if member.boss is not None:
                    bosses.append(member.boss.name)
                if n % 2 == 0:
                    member.age = -1 - n  # changed: kept until the commit
                if n % 500 == 499:
                    alive.append(sum(1 for e in tx.entries.values() if e.obj is not None))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen == [1000]
    assert bosses == ["chief"] * 3
    assert max(alive) < 1250 + 1000 + 10  # the changed half, plus at most a chunk or so
    assert QStaff.dc_query().filter("age", "<", 0).count() == 1250


def test_a_session_can_commit_every_n_objects_while_a_query_streams(client: Client) -> None:
    """The batch-job pattern: iterate a large query in a session, commit every 500 changes;
    the query goes on over every row (the rest read into memory at the first commit), each
    change is written, and a rollback half-way drops only the changes after the last commit."""
    staff(*[(f"p{n:04}", float(n), n) for n in range(2200)])
    done = 0
    with client.session() as session:
        for member in QStaff.dc_query().order("name"):
            member.age = -1
            done += 1
            if done % 500 == 0:
                session.commit()
    assert done == 2200
    assert QStaff.dc_query().filter("age", "=", -1).count() == 2200
    done = 0
    with client.session() as session:
        for member in QStaff.dc_query().order("name"):
            member.age = -2
            done += 1
            if done == 1500:
                session.commit()
            elif done == 1800:
                session.rollback()
    assert done == 2200
    assert QStaff.dc_query().filter("age", "=", -2).count() == 1500 + 400


def test_nested_streaming_queries_share_the_session_connection(client: Client) -> None:
    """A query iterated inside the loop of another, in one session, streams on the same
    connection (two server-side cursors on PostgreSQL) and both see every row."""
    staff(*[(f"p{n:04}", float(n), n % 3) for n in range(3300)])  # 1,100 per age: 2 chunks
    pairs = 0
    with client.session():
        for outer in QStaff.dc_query().filter("age", "=", 0).order("name"):
            if outer.salary < 30:
                pairs += sum(1 for _ in QStaff.dc_query().filter("age", "=", 1))
    assert pairs == 10 * 1100


def test_indexed_filter_order_limit_uses_the_index(client: Client, engine_name: str) -> None:
    """EXPLAIN shows the Indexed() salary column's index serving filter + order + limit."""
    team = QTeam()
    team.members = [QStaff(f"p{n}", float(n % 997), n) for n in range(3000)]
    team.make_persistent()
    query = QStaff.dc_query().filter("salary", ">", 500.0).order("-salary").limit(10)
    dialect = client.engine.dialect
    sql = str(query.statement().compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    with client.engine.connect() as conn:
        if engine_name == "postgresql":
            conn.exec_driver_sql("ANALYZE q_staff")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))
            assert "Index Scan Backward using ix_q_staff_salary on q_staff" in plan
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
            plan = "\n".join(row[-1] for row in rows)
            assert "SEARCH q_staff USING INDEX ix_q_staff_salary (salary>?)" in plan
            registry = [line for line in plan.splitlines() if "dc_object" in line]
            assert registry  # versions are left out through an index, never a registry scan
            assert all("USING" in line and "INDEX" in line for line in registry), registry
    assert [s.salary for s in query] == [996.0] * 3 + [995.0] * 3 + [994.0] * 3 + [993.0]


def test_dc_query_needs_a_started_client(db_url: str) -> None:
    """Iterating a query with no client started raises ClientNotStartedError."""
    query = QStaff.dc_query().filter("salary", ">", 1)
    with pytest.raises(errors.ClientNotStartedError):
        list(query)
    with Client(db_url):
        assert list(query) == []


def test_statement_of_a_query_with_subclasses_left_joins_them(client: Client) -> None:
    """The base class's SELECT LEFT OUTER JOINs each subclass table once."""
    sql = str(QStaff.dc_query().statement())
    assert sql.count("LEFT OUTER JOIN q_chief") == 1
    assert sql.count("LEFT OUTER JOIN q_trainee") == 1
    assert isinstance(QStaff.dc_query().statement(), sa.Select)


def test_user_guide_examples_run(db_url: str, tmp_path: Path) -> None:
    """Every example in docs/queries.md prints what the guide shows, on each engine (in its
    own process: the guide defines its own Employee class)."""
    guide = Path(__file__).resolve().parents[2] / "docs" / "queries.md"
    env = {**os.environ, "DC_URL": db_url}
    command = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE"]
    result = subprocess.run(
        [*command, str(guide)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_queries_work_where_plain_queries_do(client: Client) -> None:
    """A model query without a limit works in code written for plain queries (a sharded
    merge adds offset and limit, the naive cursor cuts by limit)."""
    staff(("b", 2.0, 1), ("a", 1.0, 2), ("c", 3.0, 3))
    query = QStaff.dc_query().order("-salary").offset(1)
    assert query.offset + query.limit == None  # noqa: E711 - still no limit
    merged = ShardedDatastore([ObjectDatastore(client)]).query(query)
    assert names(merged) == ["b", "a"]
    assert [v["n"] for v in DictDatastore().query(QStaff.dc_query())] == []


def test_versions_are_not_query_results(client: Client) -> None:
    """Working copies made by new_version() are left out of class queries and counts."""
    original = QStaff("Ann", 1000.0, age=30)
    original.make_persistent()
    version = original.new_version()
    version.age = 31
    assert [s.name for s in QStaff.dc_query()] == ["Ann"]
    assert QStaff.dc_query().filter("age", ">", 0).count() == 1
    assert QStaff.dc_query().limit(5).first() is original
    version.consolidate_version()
    assert [s.age for s in QStaff.dc_query()] == [31]
