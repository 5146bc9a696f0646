"""The read rule of query loops outside sessions (docs/queries.md, "Reading what a query
returned"): while a query loop runs, the objects it yielded answer reads of their column
fields from the rows it loaded; once it ends, or once a transaction has owned the object,
reads return committed state again.

Checked on both engines with statement counts (the loop's reads cost no statement) and with a
writer in another thread committing while the loop runs.
"""

from __future__ import annotations

import contextvars
import threading

import pytest

from claystore import Client, DataClayObject, activemethod
from tests.statements import count_statements


class RrEmployee(DataClayObject):
    __tablename__ = "rr_employee"
    name: str
    salary: float
    tags: list[str]
    boss: RrEmployee | None = None

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary
        self.tags = ["staff"]

    @activemethod
    def give_raise(self, amount: float) -> None:
        self.salary += amount


def _loop_statements(client: Client) -> tuple[list[str], float]:
    """The statements of the natural loop, and the total it read."""
    RrEmployee.dc_query().count()  # the class's table is known and checked before counting
    with count_statements(client.engine) as log:
        total = 0.0
        for employee in RrEmployee.dc_query():
            total += employee.salary
            assert employee.name[0] in "ef"
    return log.statements, total


@pytest.mark.parametrize("count", [3, 1_200])
def test_a_query_loop_reads_cost_no_statement(client: Client, count: int) -> None:
    """`for e in Employee.dc_query(): total += e.salary` runs the query's statements only,
    whatever the number of results (it used to run one SELECT per attribute read)."""
    with client.session() as session:
        session.add_all([RrEmployee(f"e{n:04}", float(n)) for n in range(count)])
    statements, total = _loop_statements(client)
    assert total == sum(range(count))
    assert [s for s in statements if "SELECT" in s.upper()] == statements[-1:]


def test_statement_count_does_not_grow_with_results(client: Client) -> None:
    """The same loop over 5 and over 1,100 objects (three chunks) runs as many statements."""
    with client.session() as session:
        session.add_all([RrEmployee(f"e{n:04}", 1.0) for n in range(5)])
    small, _ = _loop_statements(client)
    with client.session() as session:
        session.add_all([RrEmployee(f"f{n:04}", 1.0) for n in range(1_100)])
    large, _ = _loop_statements(client)
    assert len(small) == len(large)


def _writer(client: Client, done: threading.Event, value: float) -> threading.Thread:
    """A thread of the same client that sets every salary to ``value`` in one committed
    transaction (the concurrent writer)."""

    def run() -> None:
        with client.session():
            for employee in RrEmployee.dc_query():
                employee.salary = value
        done.set()

    context = contextvars.copy_context()
    return threading.Thread(target=context.run, args=(run,))


@pytest.mark.parametrize("limit", [None, 10])
def test_reads_in_the_loop_belong_to_the_querys_snapshot(client: Client, limit: int | None) -> None:
    """A writer commits while the loop runs: reads in the loop return what the query read
    (its snapshot), also for the objects read before the write; once the loop has ended, the
    same objects read committed state (the writer's value)."""
    with client.session() as session:
        session.add_all([RrEmployee(f"e{n:04}", float(n)) for n in range(600)])
    query = RrEmployee.dc_query().order("name")
    if limit is not None:
        query = query.limit(limit)
    held: list[RrEmployee] = []
    seen: list[float] = []
    done = threading.Event()
    for position, employee in enumerate(query):
        if position == 1:
            writer = _writer(client, done, -1.0)
            writer.start()
            writer.join()
            assert done.is_set()
            assert held[0].salary == 0.0  # read before the write, read again after it
        seen.append(employee.salary)
        held.append(employee)
    assert seen == [float(n) for n in range(len(seen))]
    assert len(seen) == (limit or 600)
    assert {employee.salary for employee in held} == {-1.0}  # the loop ended: committed state


def _read_in_thread(employee: RrEmployee) -> float:
    """``employee.salary`` read by another thread of the client."""
    seen: list[float] = []
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(lambda: seen.append(employee.salary),))
    thread.start()
    thread.join()
    return seen[0]


def test_other_threads_read_committed_state(client: Client) -> None:
    """The rule is the loop's thread's: after a writer in another thread committed, a third
    thread reading an object the loop yielded reads committed state, the loop's thread the
    query's row."""
    with client.session() as session:
        session.add_all([RrEmployee(f"e{n:04}", 1.0) for n in range(3)])
    for employee in RrEmployee.dc_query():
        writer = _writer(client, threading.Event(), 7.0)
        writer.start()
        writer.join()
        assert _read_in_thread(employee) == 7.0
        assert employee.salary == 1.0
    assert employee.salary == 7.0


def test_writes_and_activemethods_in_the_loop_are_read_back(client: Client) -> None:
    """An assignment (its own transaction) or an activemethod on a yielded object ends the
    rule for that object: reads return committed state, the write included."""
    with client.session() as session:
        session.add_all([RrEmployee(f"e{n:04}", 10.0) for n in range(4)])
    with count_statements(client.engine):
        for position, employee in enumerate(RrEmployee.dc_query().order("name")):
            if position % 2:
                employee.salary = 11.0
            else:
                employee.give_raise(5.0)
            assert employee.salary == (11.0 if position % 2 else 15.0)
    assert sorted(e.salary for e in RrEmployee.dc_query()) == [11.0, 11.0, 15.0, 15.0]


def test_a_session_inside_the_loop_sees_its_own_view(client: Client) -> None:
    """A session opened inside the loop owns the object: its view, then committed state."""
    with client.session() as session:
        session.add(RrEmployee("solo", 1.0))
    for employee in RrEmployee.dc_query():
        with client.session():
            employee.salary = 2.0
            assert employee.salary == 2.0
        assert employee.salary == 2.0
    assert next(iter(RrEmployee.dc_query())).salary == 2.0


def test_containers_from_the_row_are_copies_and_references_are_read(client: Client) -> None:
    """A JSON field read in the loop is a copy (changing it stores nothing, as for every read
    outside transactions); references are not in the row and are read from the database."""
    with client.session() as session:
        boss = RrEmployee("boss", 100.0)
        worker = RrEmployee("worker", 1.0)
        worker.boss = boss
        session.add_all([boss, worker])
    for employee in RrEmployee.dc_query().filter("name", "=", "worker"):
        tags = employee.tags
        tags.append("changed")
        assert employee.tags == ["staff"]
        with count_statements(client.engine) as log:
            assert employee.boss is not None
            assert employee.boss.name == "boss"
        assert log.matching("SELECT")
    [worker] = RrEmployee.dc_query().filter("name", "=", "worker")
    assert worker.tags == ["staff"]


def test_an_object_already_in_memory_takes_the_loops_row(client: Client) -> None:
    """An object the program holds from before, yielded by a new loop, answers from that
    loop's row (not from whatever an earlier read left in memory)."""
    with client.session() as session:
        session.add(RrEmployee("held", 1.0))
    [held] = list(RrEmployee.dc_query())
    assert held.salary == 1.0
    with client.session():
        for other in RrEmployee.dc_query():
            other.salary = 3.0
    for employee in RrEmployee.dc_query():
        assert employee is held
        with count_statements(client.engine) as log:
            assert employee.salary == 3.0
        assert not log.statements
    assert held.salary == 3.0


# -- the batch-job pattern: a session committing every N objects while a query streams -------


class RrScore(DataClayObject):
    __tablename__ = "rr_score"
    name: str
    score: float | None = None
    rank: int | None = None

    def __init__(self, name: str, score: float | None, rank: int | None) -> None:
        self.name = name
        self.score = score
        self.rank = rank


def _scores(client: Client, count: int) -> None:
    """Objects with NULLs and many equal values in both sort fields (ties broken by id)."""
    with client.session() as session:
        session.add_all(
            [
                RrScore(
                    f"s{(n * 7919) % count:05}",
                    None if n % 5 == 0 else float(n % 11),
                    None if n % 3 == 0 else n % 4,
                )
                for n in range(count)
            ]
        )


@pytest.mark.parametrize(
    "orders",
    [(), ("score",), ("-score",), ("-rank", "score"), ("rank", "-score", "-name"), ("name",)],
)
@pytest.mark.parametrize("limit", [None, 700])
def test_committing_every_n_objects_meets_every_object_once_in_order(
    client: Client, orders: tuple[str, ...], limit: int | None
) -> None:
    """A loop that commits every 97 objects (the rest of the query runs again after each
    commit, after the last object in the query's order) gives the same objects in the same
    order as the loop that never commits, NULLs and ties included, the limit kept."""
    _scores(client, 1_300)
    query = RrScore.dc_query()
    for order in orders:
        query = query.order(order)
    if limit is not None:
        query = query.limit(limit)
    expected = [e.__dict__["_dc_id"] for e in query]
    got = []
    with client.session() as session:
        for n, score in enumerate(query, 1):
            got.append(score.__dict__["_dc_id"])
            if n % 97 == 0:
                session.commit()
    assert got == expected
    assert len(got) == (limit or 1_300)


def test_objects_after_a_commit_are_the_new_transactions(client: Client) -> None:
    """Objects the loop gets after a commit belong to the session's new transaction: reading
    them costs no statement, changing them is written at the next commit."""
    _scores(client, 1_200)
    with client.session() as session, count_statements(client.engine) as log:
        for n, score in enumerate(RrScore.dc_query().order("name"), 1):
            assert score.name.startswith("s")
            score.rank = -1
            if n % 100 == 0:
                session.commit()
    selects = log.matching("SELECT")
    assert len(selects) <= 13  # the query and one resumption per commit: not one per read
    assert RrScore.dc_query().filter("rank", "=", -1).count() == 1_200


def _peak_of_batch_job(client: Client, count: int) -> int:
    """Peak Python memory (tracemalloc) of streaming ``count`` objects in a session that
    commits every 500."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        with client.session() as session:
            for n, score in enumerate(RrScore.dc_query(), 1):
                score.rank = n
                if n % 500 == 0:
                    session.commit()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_batch_job_pattern_keeps_memory_bounded(client: Client) -> None:
    """Memory does not grow with the rows left at a commit: a loop over 12,000 objects peaks
    at about what one over 2,000 does (reading the rest into memory at the first commit took
    memory in proportion to the rest)."""
    _scores(client, 2_000)
    small = _peak_of_batch_job(client, 2_000)
    _scores(client, 10_000)
    large = _peak_of_batch_job(client, 12_000)
    assert large < small * 1.5, (small, large)
    assert RrScore.dc_query().filter("rank", "=", 12_000).count() == 1


def test_the_loop_goes_on_after_the_session_ended(client: Client) -> None:
    """A loop still running after its session's block ended gets the rest of the query."""
    _scores(client, 1_200)
    with client.session() as session:
        iterator = iter(RrScore.dc_query().order("name"))
        first = [next(iterator) for _ in range(600)]
        session.commit()
        first.append(next(iterator))
    rest = []
    while (score := next(iterator, None)) is not None:
        rest.append(score)
    names = [s.name for s in first + rest]
    assert names == sorted(names)
    assert len(names) == 1_200
