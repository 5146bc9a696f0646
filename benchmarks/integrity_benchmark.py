"""Throughput and memory of the integrity check (issue 15) on a store of N objects.

    python benchmarks/integrity_benchmark.py                        # 1,000,000 objects, SQLite
    python benchmarks/integrity_benchmark.py --objects 100000
    python benchmarks/integrity_benchmark.py --objects 200000 --postgres
    python benchmarks/integrity_benchmark.py --postgres-url postgresql+psycopg://... --no-sqlite

What it answers: how many objects per second each level of ``check_integrity`` reads, and how
much memory it takes while doing so (the target: level 4 at 100,000 objects per second or more
on SQLite, in memory that does not grow with the store).

Data, made through claystore (``session.add_all`` of chunks of 10,000 objects): people (a
str, a float, an enum, an aware datetime, a ``dict[str, int]`` and a ``list[float]`` that vary
per object, a reference to a boss and one to an office), one office per 1,000 people and one
team per 100 people holding them in a link table (``list[IbPerson]``).  ``--objects`` counts
them all.

Each level runs on its own (its module's ``check`` over a run made as ``check_integrity``
makes it), timed without tracemalloc, then once more under tracemalloc for its peak of Python
memory; then ``check_integrity(level=4)`` as a whole, when every level is written.  Printed:
seconds, objects per second (objects in the store / seconds) and the tracemalloc peak.
Not a test: nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import enum
import os
import platform
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated

import sqlalchemy as sa

import claystore
from claystore import Client, DataClayObject, Indexed
from claystore.housekeeping import classes, data, references, registry
from claystore.housekeeping.report import IntegrityReport
from claystore.housekeeping.run import CheckRun
from claystore.orm import backends as backend_registry
from claystore.orm import mapping

CHUNK = 10_000
TEAM = 100  # people per team
OFFICE = 1_000  # people per office
LEVELS: dict[int, Callable[[CheckRun], None]] = {
    1: classes.check,
    2: registry.check,
    3: references.check,
    4: data.check,
}


class IbRole(enum.Enum):
    ENGINEER = "engineer"
    SALES = "sales"
    SUPPORT = "support"


class IbOffice(DataClayObject):
    city: str

    def __init__(self, city: str) -> None:
        self.city = city


class IbPerson(DataClayObject):
    name: Annotated[str, Indexed()]
    salary: float
    role: IbRole
    hired: dt.datetime
    tags: dict[str, int]
    scores: list[float]
    boss: IbPerson | None = None
    office: IbOffice | None = None

    def __init__(self, n: int, boss: IbPerson | None, office: IbOffice) -> None:
        self.name = f"person {n}"
        self.salary = 1000.0 + n % 5000
        self.role = list(IbRole)[n % 3]
        self.hired = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
        self.tags = {"level": n % 7, f"k{n % 11}": n}
        self.scores = [n / 3, n % 100 + 0.5]
        self.boss = boss
        self.office = office


class IbTeam(DataClayObject):
    title: str
    members: list[IbPerson]

    def __init__(self, title: str) -> None:
        self.title = title
        self.members = []


def chunks(objects: int) -> Iterator[list[DataClayObject]]:
    """The store's ``objects`` objects, about ``CHUNK`` at a time (whole teams per chunk)."""
    office = IbOffice("city 0")
    team = IbTeam("team 0")
    batch: list[DataClayObject] = [office, team]
    made = 2
    n = 0
    boss: IbPerson | None = None
    while made < objects:
        if n and n % TEAM == 0:
            if len(batch) >= CHUNK:
                yield batch
                batch = []
            team, boss = IbTeam(f"team {n // TEAM}"), None
            batch.append(team)
            made += 1
            if n % OFFICE == 0:
                office = IbOffice(f"city {n // OFFICE}")
                batch.append(office)
                made += 1
            continue_ = made >= objects
            if continue_:
                break
        person = IbPerson(n, boss, office)
        boss = boss or person
        team.members.append(person)
        batch.append(person)
        made += 1
        n += 1
    yield batch


def build(client: Client, objects: int) -> float:
    """Store ``objects`` objects; the seconds it took."""
    started = time.perf_counter()
    for batch in chunks(objects):
        with client.session() as session:
            session.add_all(batch)
    return time.perf_counter() - started


def make_run(client: Client, batch: int) -> CheckRun:
    """A run of the whole store, made as ``check_integrity`` makes it."""
    router = client.context.router
    router.refresh()
    url = router.metadata.dialect.url.render_as_string(hide_password=False)
    backends = router.metadata.read(lambda conn: backend_registry.list_backends(conn, url))
    return CheckRun(
        router=router,
        report=IntegrityReport(level=4),
        backends=backends,
        classes=mapping.models(),
        collection=None,
        stop_on_error=False,
        batch=batch,
    )


def measure(label: str, objects: int, work: Callable[[], IntegrityReport]) -> None:
    """Run ``work`` timed, then under tracemalloc; print the figures."""
    try:
        started = time.perf_counter()
        report = work()
        seconds = time.perf_counter() - started
    except NotImplementedError:
        print(f"  {label:<28} not written yet")
        return
    tracemalloc.start()
    try:
        work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    problems = f"{len(report.problems)} problems" if report.problems else "healthy"
    print(
        f"  {label:<28} {seconds:8.2f} s {objects / seconds:12,.0f} objects/s "
        f"  peak {peak / 2**20:7.1f} MiB  ({problems})"
    )


def level_work(client: Client, level: int, batch: int) -> Callable[[], IntegrityReport]:
    def work() -> IntegrityReport:
        run = make_run(client, batch)
        LEVELS[level](run)
        return run.report

    return work


def bench(url: str, objects: int, batch: int) -> None:
    """Build the store at ``url`` and measure every level on it."""
    with Client(url) as client:
        seconds = build(client, objects)
        print(f"{url.split('://', maxsplit=1)[0]}: {objects:,} objects built in {seconds:.1f} s")
        for level in LEVELS:
            measure(
                f"level {level} ({LEVELS[level].__module__.rsplit('.', 1)[1]})",
                objects,
                level_work(client, level, batch),
            )
        measure(
            "check_integrity(level=4)",
            objects,
            lambda: client.check_integrity(level=4, stop_on_error=False, batch=batch),
        )


@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh database on the server at ``server`` (dropped at the end)."""
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"claystore_integrity_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per batch of the check")
    parser.add_argument("--postgres", action="store_true", help="also on the local PostgreSQL")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="a server database to create the benchmark's database from",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    args = parser.parse_args(argv)
    print(
        f"claystore {claystore.__version__}, Python {platform.python_version()}, "
        f"SQLAlchemy {sa.__version__}, {platform.machine()} ({os.cpu_count()} cores)"
    )
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            bench(f"sqlite:///{folder}/integrity.db", args.objects, args.batch)
    if args.postgres:
        with postgres_database(args.postgres_url) as url:
            bench(url, args.objects, args.batch)


if __name__ == "__main__":
    sys.exit(main())
