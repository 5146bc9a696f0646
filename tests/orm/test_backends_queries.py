"""Class queries in a store with several backends: every backend read, one merged order.

The differential property test over two backends is in ``tests/test_differential.py``; these
tests pin the parts it does not reach: results larger than a chunk (streamed from each backend),
subclasses, the open unit of work's own changes, ``count()``, backends another client added,
an unreachable backend, and a move under way (each object once).
"""

from __future__ import annotations

import contextvars
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from claystore import Client, DataClayObject
from claystore.datastore import Key, ObjectDatastore, Query
from claystore.errors import DatabaseConnectionError
from claystore.orm import moving, querymerge
from tests.models import Company, Employee, Manager
from tests.orm.backend_helpers import OtherClient, backend_urls, plain_engine

pytestmark = pytest.mark.usefixtures("db_url")


@pytest.fixture
def spread(
    db_url: str, backend_url_factory: Callable[..., str]
) -> Iterator[tuple[Client, list[UUID]]]:
    """A started client with three backends: the metadata database, another database of the
    same server, one on the second server."""
    with Client(db_url) as client:
        client.add_backend(backend_url_factory("local"), name="near")
        client.add_backend(backend_url_factory("second"), name="far")
        yield client, list(client.get_backends())


def _store(client: Client, backends: list[UUID], count: int, seed: int = 7) -> list[Employee]:
    """``count`` employees with distinct salaries and repeated names, spread at random (one
    unit of work per backend)."""
    rng = random.Random(seed)
    salaries = rng.sample(range(count * 10), count)
    placed: dict[UUID, list[Employee]] = {b: [] for b in backends}
    everyone = []
    for n, salary in enumerate(salaries):
        employee = Employee(f"e{n % 50:02d}", float(salary))
        placed[rng.choice(backends)].append(employee)
        everyone.append(employee)
    for backend, employees in placed.items():
        with client.session():
            for employee in employees:
                employee.make_persistent(backend_id=backend)
    return everyone


def _names(objects: Any) -> list[tuple[str, float]]:
    return [(e.name, e.salary) for e in objects]


def test_a_query_larger_than_a_chunk_streams_every_backend_in_one_order(
    spread: tuple[Client, list[UUID]],
) -> None:
    """2,500 employees over three backends: iterating, a page beyond the first chunk, a
    descending order with ties broken by id, and count() agree with Python's sort."""
    _client, backends = spread
    everyone = _store(_client, backends, 2500)
    by_salary = sorted(everyone, key=lambda e: e.salary)
    assert _names(Employee.dc_query().order("salary")) == _names(by_salary)
    page = Employee.dc_query().order("salary").offset(700).limit(1500)
    assert _names(page) == _names(by_salary[700:2200])
    ids = {e: e._dc_meta.id for e in everyone}
    by_name = sorted(everyone, key=lambda e: (e.name, ids[e]), reverse=False)
    by_name_desc = sorted(by_name, key=lambda e: e.name, reverse=True)  # stable: ids ascending
    query = Employee.dc_query().order("-name").limit(1200).offset(30)
    assert [e._dc_meta.id for e in query] == [ids[e] for e in by_name_desc[30:1230]]
    assert Employee.dc_query().count() == 2500
    assert Employee.dc_query().filter("salary", "<", 5000).offset(10).limit(3).count() == 3
    assert Employee.dc_query().offset(2499).count() == 1
    assert Employee.dc_query().offset(3000).count() == 0


def test_subclasses_on_other_backends_come_back_as_their_class(
    spread: tuple[Client, list[UUID]],
) -> None:
    """A Manager on the far backend is one of the employees, as a Manager, in order."""
    _client, backends = spread
    Employee("low", 1.0).make_persistent(backend_id=backends[0])
    boss = Manager("boss", 3.0)
    boss.bonus = 9.0
    boss.make_persistent(backend_id=backends[2])
    Employee("mid", 2.0).make_persistent(backend_id=backends[1])
    found = list(Employee.dc_query().order("-salary"))
    assert [type(e) for e in found] == [Manager, Employee, Employee]
    assert [e.name for e in found] == ["boss", "mid", "low"]
    assert found[0].bonus == 9.0
    assert [m.name for m in Manager.dc_query()] == ["boss"]


def test_a_unit_of_work_queries_its_own_flushed_changes_on_every_backend(
    spread: tuple[Client, list[UUID]], db_url: str
) -> None:
    """In a session, objects it stored on another backend and a salary it changed there are
    seen by its query (and count), before the commit; other readers see the committed state."""
    client, backends = spread
    far = Employee("far", 10.0)
    far.make_persistent(backend_id=backends[2])
    Employee("home", 20.0).make_persistent()
    with client.session():
        far.salary = 30.0
        Employee("new", 5.0).make_persistent(backend_id=backends[2])
        assert _names(Employee.dc_query().order("salary")) == [
            ("new", 5.0),
            ("home", 20.0),
            ("far", 30.0),
        ]
        assert Employee.dc_query().filter("salary", ">", 15).count() == 2
        assert _committed(db_url) == [("far", 10.0), ("home", 20.0)]
    assert _names(Employee.dc_query().order("salary")) == [
        ("new", 5.0),
        ("home", 20.0),
        ("far", 30.0),
    ]


def _committed(db_url: str) -> list[tuple[str, float]]:
    """Committed employee rows of every backend, read with plain SQL."""
    rows: list[tuple[str, float]] = []
    for url in backend_urls(db_url).values():
        with plain_engine(url) as engine, engine.connect() as conn:
            rows += [(r.name, r.salary) for r in conn.execute(sa.text(_EMPLOYEES))]
    return sorted(rows)


_EMPLOYEES = "SELECT name, salary FROM employee"


def test_a_backend_another_client_added_is_queried(
    spread: tuple[Client, list[UUID]],
    db_url: str,
    backend_url_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another client adds a backend and stores an employee there: this client's queries
    return it once their list of backends is older than BACKENDS_MAX_AGE (here: at once)."""
    Employee("here", 1.0).make_persistent()
    assert Employee.dc_query().count() == 1
    with OtherClient(db_url) as other:
        added = other.client.add_backend(backend_url_factory("second"), name="added")
        other.run(lambda: Employee("there", 2.0).make_persistent(backend_id=added))
    monkeypatch.setattr(querymerge, "BACKENDS_MAX_AGE", 0.0)
    assert _names(Employee.dc_query().order("salary")) == [("here", 1.0), ("there", 2.0)]
    assert Employee.dc_query().count() == 2


def test_an_unreachable_backend_fails_the_query_naming_it(
    db_url: str, engine_name: str, tmp_path: Path, backend_url_factory: Callable[..., str]
) -> None:
    """A query cannot answer without one of the backends: it raises DatabaseConnectionError
    naming it rather than return part of the objects."""
    with Client(db_url) as client:
        lost = client.add_backend(backend_url_factory("second"), name="lost")
        Employee("there", 1.0).make_persistent(backend_id=lost)
        Employee("here", 2.0).make_persistent()
    gone = (
        f"sqlite:///{tmp_path}/no/such/directory/backend.db"
        if engine_name == "sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:5499/nowhere"
    )
    with plain_engine(db_url) as engine, engine.begin() as conn:
        conn.execute(sa.text("UPDATE dc_backend SET url = :url WHERE name = 'lost'"), {"url": gone})
    with Client(db_url):
        with pytest.raises(DatabaseConnectionError, match="'lost'"):
            list(Employee.dc_query())
        with pytest.raises(DatabaseConnectionError, match="'lost'"):
            Employee.dc_query().count()


def test_objects_in_the_middle_of_a_move_come_back_once(
    spread: tuple[Client, list[UUID]],
) -> None:
    """Queries started while a move has copied its objects (not yet switched), and while it
    switches, wait for it and return every object exactly once."""
    client, backends = spread
    everyone = _store(client, backends[:1], 40)
    company = Company("moving", *everyone[:25])
    company.make_persistent()
    expected = sorted(e._dc_meta.id for e in everyone)
    seen: dict[str, list[UUID]] = {}
    readers: list[threading.Thread] = []
    context = contextvars.copy_context()

    def look(step: str) -> None:
        seen[step] = sorted(e._dc_meta.id for e in Employee.dc_query().limit(1000))

    def hook(name: str) -> None:
        if name in ("copied", "deleted"):  # a reader started now, while the move goes on
            reader = threading.Thread(target=context.copy().run, args=(look, name))
            readers.append(reader)
            reader.start()

    moving.step_hook = hook
    try:
        company.move(backends[2], recursive=True)
    finally:
        moving.step_hook = None
    for reader in readers:
        reader.join()
    assert set(seen) == {"copied", "deleted"}
    for step, ids in seen.items():
        assert ids == expected, step
    assert sorted(e._dc_meta.id for e in Employee.dc_query()) == expected
    assert everyone[0]._dc_backend_id == backends[2]


class XqItem(DataClayObject):
    """A class of this module's own (``Key("/XqItem")`` names one class only)."""

    name: str
    rank: float

    def __init__(self, name: str, rank: float) -> None:
        self.name = name
        self.rank = rank


def test_object_datastore_queries_every_backend(spread: tuple[Client, list[UUID]]) -> None:
    """ObjectDatastore's queries (and client.query) run through the same merge: keys of the
    objects on every backend, in order, the cursor's counts as on one database."""
    client, backends = spread
    for n, backend in enumerate(backends):
        XqItem(f"e{n}", float(10 - n)).make_persistent(backend_id=backend)
    store = ObjectDatastore(client)
    cursor = store.query(Query(Key("/XqItem"), limit=2, offset=1).order("rank"))
    assert [obj.name for obj in cursor] == ["e1", "e0"]
    assert (cursor.returned, cursor.skipped) == (2, 1)
    found = client.query(Query(Key("/XqItem")).order("-rank"))
    assert [(str(key).split(":")[0], obj.name) for key, obj in found.items()] == [
        ("/XqItem", "e0"),
        ("/XqItem", "e1"),
        ("/XqItem", "e2"),
    ]
