"""Versions for parallel work: branch, change, consolidate — and retry on a conflict.

Run ``python examples/versions.py`` (it writes ``versions.db`` where you run it, removing it
first).  Set DC_URL to use another database, e.g.
``DC_URL=postgresql+psycopg://postgres@127.0.0.1/test python examples/versions.py``.

1. The dataClay user guide: a version, and a version of a version, consolidated.
2. The parallel-workers pattern: 4 threads share one ``Tally``; each worker repeatedly takes a
   version of it, adds its numbers there (on its own row, without blocking anyone), and
   consolidates.  When another worker consolidated first, ``consolidate_version()`` raises
   ``VersionConflictError`` and writes nothing: the worker drops its version and starts again
   from the new state.  No contribution is lost or counted twice.
3. A recursive version of a small graph, and what the registry table shows.
"""

from __future__ import annotations

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

from claystore import Client, DataClayObject
from claystore.errors import VersionConflictError

WORKERS = 4
NUMBERS_PER_WORKER = 10


class Employee(DataClayObject):
    name: str
    salary: float

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary


class Tally(DataClayObject):
    """What the workers compute together."""

    total: float = 0.0
    by_worker: dict[str, float]

    def __init__(self) -> None:
        self.by_worker = {}


class Team(DataClayObject):
    name: str
    lead: Employee | None = None
    members: list[Employee]

    def __init__(self, name: str, *members: Employee) -> None:
        self.name = name
        self.members = list(members)


def user_guide() -> None:
    employee = Employee("John", 1000.0)
    employee.make_persistent()
    employee_v1 = employee.new_version()  # a new row: same values, new id
    employee_v1.salary = 2000.0  # the original is untouched...
    assert employee.salary == 1000.0
    employee_v1.consolidate_version()  # ...until the version is consolidated (and retired)
    assert employee.salary == 2000.0
    assert not employee_v1.is_registered

    employee_v1 = employee.new_version()
    employee_v2 = employee_v1.new_version()  # versions of versions form a chain
    employee_v2.salary = 3000.0
    employee_v2.consolidate_version()  # every ancestor, up to the original
    assert (employee.salary, employee_v1.salary) == (3000.0, 3000.0)
    employee_v1.dc_delete()  # discard a version we no longer need
    print("user guide: John earns", employee.salary)


def contribute(tally: Tally, worker: str, numbers: list[float]) -> int:
    """Add ``numbers`` to the tally through versions; returns how many conflicts were retried."""
    conflicts = 0
    for number in numbers:
        while True:
            version = tally.new_version()  # private to this worker
            version.total = version.total + number
            by_worker = version.by_worker
            by_worker[worker] = by_worker.get(worker, 0.0) + number
            version.by_worker = by_worker
            try:
                version.consolidate_version()
                break
            except VersionConflictError:  # someone consolidated first: start again
                version.dc_delete()
                conflicts += 1
    return conflicts


def parallel_workers() -> None:
    tally = Tally()
    tally.make_persistent()
    work = {
        f"worker{w}": [float(w * 100 + i) for i in range(NUMBERS_PER_WORKER)]
        for w in range(WORKERS)
    }
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, contribute, tally, name, numbers)
            for name, numbers in work.items()
        ]
        conflicts = sum(f.result() for f in futures)
    expected = sum(sum(numbers) for numbers in work.values())
    assert tally.total == expected, (tally.total, expected)
    assert tally.by_worker == {name: sum(numbers) for name, numbers in work.items()}
    assert tally.get_versions() == []
    print(
        f"parallel workers: total {tally.total} (expected {expected}), "
        f"{conflicts} conflicts retried"
    )


def recursive_graph(client: Client) -> None:
    anna, bob = Employee("Anna", 5000.0), Employee("Bob", 4000.0)
    team = Team("Platform", anna, bob)
    team.lead = anna
    team.make_persistent()
    draft = team.new_version(recursive=True)  # versions the team, Anna and Bob
    assert draft.lead is draft.members[0] and draft.lead is not anna
    draft.lead.salary = 5500.0
    draft.members[1].name = "Robert"
    print(
        "versions while the draft is open: team",
        len(team.get_versions()),
        "anna",
        len(anna.get_versions()),
    )
    with client.engine.connect() as conn:  # the registry, in plain SQL
        rows = conn.execute(
            sa.text(
                "SELECT class_name, parent_id IS NOT NULL, count(*) FROM dc_object "
                "WHERE class_name IN ('team', 'employee') GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ).all()
    print("dc_object (class, is version, count):", [tuple(r) for r in rows])
    draft.consolidate_version()  # the team, Anna and Bob get the draft's values
    assert team.lead is anna and team.members == [anna, bob]
    print("after consolidation:", team.name, [(e.name, e.salary) for e in team.members])


def main() -> None:
    url = os.environ.get("DC_URL")
    if url is None:
        Path("versions.db").unlink(missing_ok=True)
        url = "sqlite:///versions.db"
    with Client(url, dataset="versions") as client:
        user_guide()
        parallel_workers()
        recursive_graph(client)


if __name__ == "__main__":
    main()
