"""Compiled model queries are kept (orm/plancache.py): a query run again reuses its plan, and
a plan is never reused for a query that differs in any way that changes its SQL."""

from __future__ import annotations

import pytest

from claystore import Client, DataClayObject
from claystore.datastore import Key, Query
from claystore.orm.plancache import model_plan
from tests.statements import count_statements


class PcItem(DataClayObject):
    __tablename__ = "pc_item"
    name: str
    size: float
    count: int = 0

    def __init__(self, name: str, size: float, count: int = 0) -> None:
        self.name = name
        self.size = size
        self.count = count


def _plan(client: Client, query: Query) -> object:
    return model_plan(PcItem._dc_info, query, client.context.dialect)  # type: ignore[attr-defined]


def test_the_same_query_reuses_its_plan(client: Client) -> None:
    """Two equal queries get one plan; each difference (value, its type, operator, order,
    limit, offset) gets its own."""
    base = PcItem.dc_query().filter("size", ">", 1.5).order("-size").limit(10)
    assert _plan(client, base) is _plan(
        client, PcItem.dc_query().filter("size", ">", 1.5).order("-size").limit(10)
    )
    variants = [
        PcItem.dc_query().filter("size", ">", 2.5).order("-size").limit(10),
        PcItem.dc_query().filter("size", ">", 1).order("-size").limit(10),
        PcItem.dc_query().filter("size", ">=", 1.5).order("-size").limit(10),
        PcItem.dc_query().filter("size", ">", 1.5).order("size").limit(10),
        PcItem.dc_query().filter("size", ">", 1.5).order("-size").limit(11),
        PcItem.dc_query().filter("size", ">", 1.5).order("-size").limit(10).offset(1),
        PcItem.dc_query().filter("count", "=", True),
        PcItem.dc_query().filter("count", "=", 1),
    ]
    plans = [_plan(client, base)] + [_plan(client, q) for q in variants]
    assert len({id(p) for p in plans}) == len(plans)


def test_a_kept_plan_gives_each_querys_own_results(client: Client) -> None:
    """Runs of kept plans return what the data holds now, for each query's values."""
    with client.session() as session:
        session.add_all([PcItem(f"i{n}", float(n), n % 3) for n in range(20)])
    for threshold in (5.0, 15.0, 5.0):
        found = [i.size for i in PcItem.dc_query().filter("size", ">", threshold).order("size")]
        assert found == [float(n) for n in range(int(threshold) + 1, 20)]
    PcItem("late", 100.0).make_persistent()
    top = PcItem.dc_query().filter("size", ">", 15.0).order("-size").limit(2)
    assert [i.name for i in top] == ["late", "i19"]


def test_a_run_again_sends_the_query_alone(client: Client) -> None:
    """A kept plan's bounded query is one SELECT on the driver's cursor, seen by the engine's
    statement listeners like any statement."""
    with client.session() as session:
        session.add_all([PcItem(f"i{n}", float(n)) for n in range(5)])
    query = PcItem.dc_query().filter("size", ">", 1.0).limit(3)
    assert len(list(query)) == 3
    with count_statements(client.engine) as log:
        assert len(list(PcItem.dc_query().filter("size", ">", 1.0).limit(3))) == 3
    assert len(log.matching("SELECT")) == 1


def test_queries_read_their_own_way_are_not_kept(client: Client) -> None:
    """A query with a custom object_getattr is refused every time, also after an equal plain
    query was kept."""
    from claystore import errors

    list(client.query(Query(Key("/PcItem")).order("name")))
    with pytest.raises(errors.QueryError, match="custom object_getattr"):
        list(client.query(Query(Key("/PcItem"), object_getattr=getattr).order("name")))


def test_kept_plans_and_statements_are_bounded(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program running a query with ever new values keeps at most MAX_PLANS plans and
    MAX_COMPILED statements and compiled shapes, the oldest dropped first."""
    from claystore.dialects import cursor
    from claystore.orm import plancache

    monkeypatch.setattr(plancache, "MAX_PLANS", 5)
    monkeypatch.setattr(cursor, "MAX_COMPILED", 7)
    PcItem("one", 1.0).make_persistent()
    for n in range(30):
        assert len(list(PcItem.dc_query().filter("size", "<", float(n + 2)).limit(5))) == 1
        assert len(plancache._plans) <= 5
        assert len(cursor._statements) <= 7
        assert len(cursor._shapes) <= 7
    oldest = PcItem.dc_query().filter("size", "<", 2.0).limit(5)
    assert all(plan is not _plan(client, oldest) for plan in list(plancache._plans.values())[:-1])
    assert [i.name for i in oldest] == ["one"]  # dropped long ago: compiled again


def test_queries_of_one_shape_each_run_with_their_own_values(client: Client) -> None:
    """Bounded queries that differ in their values only share one compiled statement on the
    driver's cursor, each sent with its own values (limit, filters, offset)."""
    with client.session() as session:
        session.add_all([PcItem(f"i{n:02}", float(n), n % 4) for n in range(40)])
    for threshold, limit, offset in [(1.0, 3, 0), (30.0, 3, 0), (12.5, 2, 1), (1.0, 3, 2)]:
        query = (
            PcItem.dc_query()
            .filter("size", ">", threshold)
            .filter("count", "<", 3)
            .order("size")
            .limit(limit)
            .offset(offset)
        )
        expected = [n for n in range(40) if n > threshold and n % 4 < 3][offset : offset + limit]
        assert [int(i.size) for i in query] == expected, (threshold, limit, offset)
