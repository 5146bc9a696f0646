"""What the move crash and concurrency tests share: their model classes, a census of the rows
every backend database holds (read with plain SQLAlchemy, no client), and the launcher of the
child processes of :mod:`tests.orm.move_child`.

The model classes live here (not in the test files) because the child processes import them
too: a child must know the classes of the objects it moves.  Their table names are unique to
these tests (model classes are global).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore import Client, DataClayObject, activemethod
from claystore.orm.mapping import info_for_table
from claystore.orm.system import dc_move, dc_object

ROOT = Path(__file__).resolve().parents[2]
#: how long a child process may run before the test fails (a hang fails, it does not block)
CHILD_TIMEOUT = 120.0
#: the employees of the company the crash tests move, and the salary of the first one
STAFF = 20
SALARY = 1000.0
#: how many times the concurrency tests move an object while a child writes it
MOVES = 10

#: what :meth:`MoveCounter.hold` calls while it holds the counter (set by a test)
HOLD_HOOKS: list[Callable[[], None]] = []


class MoveStaff(DataClayObject):
    """One employee of a :class:`MoveCompany`."""

    __tablename__ = "move_crash_staff"
    name: str
    salary: float

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary


class MoveCompany(DataClayObject):
    """A company: its staff in a list (a link table) and its ceo (a reference column)."""

    __tablename__ = "move_crash_company"
    name: str
    staff: list[MoveStaff]
    ceo: MoveStaff | None = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.staff = []


class MoveCounter(DataClayObject):
    """A counter bumped by an activemethod, and a name written in autocommit."""

    __tablename__ = "move_crash_counter"
    counter: int = 0
    name: str = ""

    @activemethod
    def bump(self) -> int:
        """Add one (a locked read-modify-write)."""
        self.counter += 1
        return self.counter

    @activemethod
    def hold(self) -> int:
        """Add one, then call each of :data:`HOLD_HOOKS` (the row stays locked meanwhile)."""
        self.counter += 1
        for hook in HOLD_HOOKS:
            hook()
        return self.counter


# -- the store -----------------------------------------------------------------------------


@attrs.frozen
class Store:
    """A store of three databases: the metadata one (backend ``default``) and backends ``a``
    and ``b``, with their URLs and ids by name."""

    meta: str
    urls: dict[str, str]  # backend name -> URL, "default" included
    ids: dict[str, UUID]  # backend name -> id

    def name_of(self, backend_id: UUID) -> str:
        """The name of a backend."""
        return next(name for name, found in self.ids.items() if found == backend_id)


def make_store(meta: str, a: str, b: str) -> Store:
    """Register ``a`` and ``b`` as backends of the store whose metadata database is ``meta``."""
    with Client(meta) as client:
        ids = {"a": client.add_backend(a, "a"), "b": client.add_backend(b, "b")}
        default = next(i for i, info in client.get_backends().items() if info.is_default)
    return Store(meta, {"default": meta, "a": a, "b": b}, {"default": default, **ids})


@attrs.frozen
class Graph:
    """The ids of a company made by :func:`make_company`."""

    company: UUID
    staff: tuple[UUID, ...]

    @property
    def ids(self) -> list[UUID]:
        """Every id of the graph."""
        return [self.company, *self.staff]


def make_company(store: Store, backend: str) -> Graph:
    """A company with :data:`STAFF` employees (the first one its ceo) on ``backend``, with
    aliases ``acme`` (the company) and ``staff5`` (its sixth employee)."""
    with Client(store.meta):
        company = MoveCompany("acme")
        company.staff = [MoveStaff(f"e{i}", SALARY + i) for i in range(STAFF)]
        company.ceo = company.staff[0]
        company.make_persistent(alias="acme", backend_id=backend)
        company.staff[5].add_alias("staff5")
        return Graph(company._dc_meta.id, tuple(s._dc_meta.id for s in company.staff))


def check_company(store: Store, company: MoveCompany, backend: str) -> None:
    """Every field value and reference of the company of :func:`make_company`, read through
    the API, and every object of it on ``backend``."""
    where = store.ids[backend]
    assert company.name == "acme"
    assert company._dc_backend_id == where
    staff = company.staff
    assert [s.name for s in staff] == [f"e{i}" for i in range(STAFF)]
    assert [s.salary for s in staff] == [SALARY + i for i in range(STAFF)]
    assert company.ceo is staff[0]
    assert {s._dc_backend_id for s in staff} == {where}
    assert MoveStaff.get_by_alias("staff5") is staff[5]
    assert MoveCompany.get_by_alias("acme") is company


# -- the census: rows as the databases hold them ---------------------------------------------


@attrs.frozen
class Census:
    """The rows of the test classes' objects in every database of a store, by backend name:
    registry rows (id -> the backend they name), class-table ids, link-table owners, and the
    journal (the ``dc_move`` rows of the metadata database)."""

    registry: dict[str, dict[UUID, UUID]]
    rows: dict[str, dict[str, Tally[UUID]]]  # backend -> table -> id -> rows
    journal: list[dict[str, Any]]

    def homes(self, store: Store, object_id: UUID) -> list[str]:
        """The backends where ``object_id`` is home (its registry row names that backend)."""
        return [
            name
            for name, registry in self.registry.items()
            if registry.get(object_id) == store.ids[name]
        ]

    def pending(self, object_id: UUID) -> bool:
        """Whether a journal row in state ``switching`` holds ``object_id``."""
        return any(
            e["state"] == "switching" and str(object_id) in json.loads(e["object_ids"])
            for e in self.journal
        )


def _tables() -> list[tuple[sa.Table, str]]:
    """The tables of the test classes, with the column holding the object id."""
    found: list[tuple[sa.Table, str]] = []
    for cls in (MoveStaff, MoveCompany, MoveCounter):
        info = info_for_table(cls.__tablename__)
        assert info is not None
        found.append((info.table, "id"))
        found += [(link, "owner_id") for link in info.link_tables.values()]
    return found


def census(store: Store) -> Census:
    """Read every database of ``store`` directly (no client, so no repair runs)."""
    registry: dict[str, dict[UUID, UUID]] = {}
    rows: dict[str, dict[str, Tally[UUID]]] = {}
    journal: list[dict[str, Any]] = []
    for name, url in store.urls.items():
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                registry[name] = {
                    r.id: r.backend_id
                    for r in conn.execute(sa.select(dc_object.c.id, dc_object.c.backend_id))
                }
                rows[name] = {
                    table.name: Tally(conn.execute(sa.select(table.c[key])).scalars())
                    for table, key in _tables()
                }
                if name == "default":
                    journal = [dict(r) for r in conn.execute(sa.select(dc_move)).mappings()]
        finally:
            engine.dispose()
    return Census(registry, rows, journal)


def check_readable(store: Store, found: Census, ids: list[UUID]) -> None:
    """Before any repair: each object is home on exactly one backend, or on none while a move
    in state ``switching`` holds it (between the decision and the promotion)."""
    for object_id in ids:
        homes = found.homes(store, object_id)
        assert len(homes) == 1 or (not homes and found.pending(object_id)), (
            object_id,
            homes,
            found.journal,
        )


def check_settled(store: Store, found: Census, graph: Graph, backend: str) -> None:
    """After repair: no journal row; each object of ``graph`` has exactly one row in all the
    registries, home on ``backend``; its class and link rows are there and nowhere else; no
    row of any other object is left in the test tables (no shadow, no orphan)."""
    assert found.journal == []
    ids = set(graph.ids)
    for object_id in ids:
        rows = [name for name, registry in found.registry.items() if object_id in registry]
        assert rows == [backend], (object_id, rows)
        assert found.registry[backend][object_id] == store.ids[backend]
    for name in store.urls:
        expected = STAFF if name == backend else 0
        tables = found.rows[name]
        assert set(tables["move_crash_staff"]) == (set(graph.staff) if expected else set())
        assert set(tables["move_crash_company"]) == ({graph.company} if expected else set())
        assert all(count == 1 for count in tables["move_crash_staff"].values())
        assert tables["move_crash_company_staff"] == Tally(
            {graph.company: expected} if expected else {}
        )
        assert set(found.registry[name]) <= ids


# -- child processes -------------------------------------------------------------------------


def child_command(role: str, *args: str) -> list[str]:
    """The command line of a :mod:`tests.orm.move_child` process playing ``role``."""
    return [sys.executable, "-m", "tests.orm.move_child", role, *args]


def child_env() -> dict[str, str]:
    """The environment of a child: it imports this checkout's claystore and tests."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def run_child(role: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a child to its end (at most :data:`CHILD_TIMEOUT` seconds)."""
    return subprocess.run(
        child_command(role, *args),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=CHILD_TIMEOUT,
        check=False,
    )


def start_child(role: str, *args: str) -> subprocess.Popen[str]:
    """Start a child; the caller reads its output and waits for it."""
    return subprocess.Popen(
        child_command(role, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )


def wait_child(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for a child of :func:`start_child` (killed after :data:`CHILD_TIMEOUT` seconds);
    its return code, output and error output."""
    try:
        out, err = process.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the child hung; output {out!r}, errors {err[-3000:]!r}") from None
    return process.returncode, out, err
