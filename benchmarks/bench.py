"""claystore side by side with SQLAlchemy ORM, SQLAlchemy Core and the raw driver.

    python benchmarks/bench.py                      # 100,000 objects, SQLite and PostgreSQL
    python benchmarks/bench.py --quick              # 10,000 objects (under a minute)
    python benchmarks/bench.py --engines sqlite --objects 50000 --markdown out.md

PostgreSQL: a database is created for the run and dropped after it, through
``--postgres-url`` (default ``CLAYSTORE_TEST_POSTGRES_URL`` or the local server).

Scenarios (each contender does the same work on its own tables, in one process, one after the
other): persist a graph of companies x 100 employees (with the list of employees as link
rows; Core and the raw driver insert the same rows claystore writes, its registry rows
included, while the ORM maps the same classes without a registry); load every employee
(streamed, inside a unit of work for claystore and the ORM); primary-key lookups; autocommit
attribute reads and writes; an activemethod-style locked read-modify-write; committing a unit
of work with 10,000 changed objects.  For each, the table shows seconds, objects per second,
and the ratio to the fastest contender.  Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

import claystore
from claystore import Client, DataClayObject, activemethod

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contenders

# -- the models, once per contender --------------------------------------------------------------


class BenchEmployee(DataClayObject):
    __tablename__ = "cs_employee"
    name: str
    salary: float

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary


class BenchCompany(DataClayObject):
    __tablename__ = "cs_company"
    name: str
    employees: list[BenchEmployee]

    def __init__(self, name: str, employees: list[BenchEmployee]) -> None:
        self.name = name
        self.employees = employees


class BenchCounter(DataClayObject):
    __tablename__ = "cs_counter"
    count: int = 0

    @activemethod
    def increment(self) -> int:
        self.count += 1
        return self.count


class Base(DeclarativeBase):
    pass


orm_link = sa.Table(
    "orm_company_employees",
    Base.metadata,
    sa.Column("owner_id", sa.ForeignKey("orm_company.id"), primary_key=True),
    sa.Column("target_id", sa.ForeignKey("orm_employee.id"), primary_key=True),
)


class OrmEmployee(Base):
    __tablename__ = "orm_employee"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str]
    salary: Mapped[float]


class OrmCompany(Base):
    __tablename__ = "orm_company"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str]
    employees: Mapped[list[OrmEmployee]] = relationship(secondary=orm_link)


class OrmCounter(Base):
    __tablename__ = "orm_counter"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    count: Mapped[int] = mapped_column(default=0)


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    engine: str
    count: int
    seconds: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(result: Result, contender: str) -> Iterator[None]:
    gc.collect()
    start = time.perf_counter()
    yield
    result.seconds[contender] = time.perf_counter() - start


@dataclass
class Run:
    engine: str
    url: str
    objects: int
    ops: int
    results: list[Result] = field(default_factory=list)

    def scenario(self, name: str, count: int) -> Result:
        result = Result(name, self.engine, count)
        self.results.append(result)
        return result


def bench_persist(run: Run, client: Client, engine: sa.engine.Engine) -> None:
    per_company = 100
    companies = max(1, run.objects // per_company)
    result = run.scenario(
        f"persist {companies:,} companies x {per_company} employees", companies * (per_company + 1)
    )
    graph = [
        BenchCompany(f"C{c}", [BenchEmployee(f"E{c}-{i}", float(i)) for i in range(per_company)])
        for c in range(companies)
    ]
    with timed(result, "claystore"), client.session() as session:
        session.add_all(graph)
    del graph
    orm_graph = [
        OrmCompany(
            name=f"C{c}",
            employees=[OrmEmployee(name=f"E{c}-{i}", salary=float(i)) for i in range(per_company)],
        )
        for c in range(companies)
    ]
    with timed(result, "SQLAlchemy ORM"), Session(engine) as session:
        session.add_all(orm_graph)
        session.commit()
    del orm_graph
    rows = contenders.graph_rows(companies, per_company)
    with timed(result, "SQLAlchemy Core"):
        contenders.core_insert(engine, rows)
    with timed(result, "raw driver"):
        contenders.raw_insert(engine, rows)


def bench_load(run: Run, client: Client, engine: sa.engine.Engine) -> None:
    total = contenders.count(engine, "cs_employee")
    result = run.scenario("load every employee (streamed)", total)
    query = getattr(BenchEmployee, "dc_query", None)
    if query is not None:
        with timed(result, "claystore"), client.session():
            names = sum(1 for e in query() if e.name)
        assert names == total
    with timed(result, "SQLAlchemy ORM"), Session(engine) as session:
        statement = sa.select(OrmEmployee).execution_options(yield_per=1000)
        assert sum(1 for e in session.scalars(statement) if e.name) == total
    with timed(result, "SQLAlchemy Core"):
        assert contenders.core_load(engine) == total
    with timed(result, "raw driver"):
        assert contenders.raw_load(engine) == total


def bench_lookups(run: Run, client: Client, engine: sa.engine.Engine) -> None:
    n = run.ops
    ids = contenders.some_ids(engine, "cs_employee", n)
    result = run.scenario(f"{n:,} primary-key lookups (objects not in memory)", n)
    gc.collect()
    with timed(result, "claystore"):
        for object_id in ids:
            BenchEmployee.get_by_id(object_id)  # dropped at once: each call loads
    orm_ids = contenders.some_ids(engine, "orm_employee", n)
    with timed(result, "SQLAlchemy ORM"), Session(engine) as session:
        for object_id in orm_ids:
            session.get(OrmEmployee, object_id)
            session.expunge_all()
    core_ids = contenders.some_ids(engine, "core_employee", n)
    with timed(result, "SQLAlchemy Core"):
        contenders.core_lookups(engine, core_ids)
    raw_ids = contenders.some_ids(engine, "raw_employee", n)
    with timed(result, "raw driver"):
        contenders.raw_lookups(engine, raw_ids)


def bench_attributes(run: Run, client: Client, engine: sa.engine.Engine) -> None:
    n = max(100, run.ops // 5)
    employee = BenchEmployee.get_by_id(contenders.some_ids(engine, "cs_employee", 1)[0])
    result = run.scenario(f"{n:,} autocommit reads + {n:,} writes of one attribute", 2 * n)
    with timed(result, "claystore"):
        for i in range(n):
            employee.salary = float(i)
            assert employee.salary == float(i)
    with timed(result, "SQLAlchemy ORM"), Session(engine) as session:
        target = session.scalars(sa.select(OrmEmployee).limit(1)).one()
        for i in range(n):
            target.salary = float(i)
            session.commit()  # expires: the next read loads it again
            assert target.salary == float(i)
    with timed(result, "SQLAlchemy Core"):
        contenders.core_read_write(engine, n)
    with timed(result, "raw driver"):
        contenders.raw_read_write(engine, n)


def bench_active(run: Run, client: Client, engine: sa.engine.Engine) -> None:
    n = max(100, run.ops // 5)
    result = run.scenario(f"{n:,} activemethod calls (locked read-modify-write)", n)
    counter = BenchCounter()
    counter.make_persistent()
    with timed(result, "claystore"):
        for _ in range(n):
            counter.increment()
    assert counter.count == n
    with Session(engine) as session:
        orm_counter = OrmCounter()
        session.add(orm_counter)
        session.commit()
        counter_id = orm_counter.id
    with timed(result, "SQLAlchemy ORM"), Session(engine) as session:
        for _ in range(n):
            with session.begin():
                row = session.get(
                    OrmCounter, counter_id, with_for_update=True, populate_existing=True
                )
                assert row is not None
                row.count += 1
    with timed(result, "SQLAlchemy Core"):
        contenders.core_increments(engine, n)
    with timed(result, "raw driver"):
        contenders.raw_increments(engine, n)


def bench_dirty_commit(run: Run, client: Client, engine: sa.engine.Engine) -> None:
    n = min(10_000, contenders.count(engine, "cs_employee"))
    result = run.scenario(f"unit of work: load, change and commit {n:,} objects", n)
    query = getattr(BenchEmployee, "dc_query", None)
    if query is not None:
        with timed(result, "claystore"), client.session():
            for employee in query().limit(n):
                employee.salary = employee.salary + 1
    with timed(result, "SQLAlchemy ORM"), Session(engine) as session:
        for employee in session.scalars(sa.select(OrmEmployee).limit(n)):
            employee.salary = employee.salary + 1
        session.commit()
    with timed(result, "SQLAlchemy Core"):
        contenders.core_bulk_update(engine, n)
    with timed(result, "raw driver"):
        contenders.raw_bulk_update(engine, n)


SCENARIOS: list[Callable[[Run, Client, sa.engine.Engine], None]] = [
    bench_persist,
    bench_load,
    bench_lookups,
    bench_attributes,
    bench_active,
    bench_dirty_commit,
]


# -- databases -------------------------------------------------------------------------------------


@contextmanager
def database(engine_name: str, postgres_url: str) -> Iterator[str]:
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    with contenders.scratch_postgres(postgres_url, "claystore_bench") as url:
        yield url


def run_engine(engine_name: str, url: str, objects: int, ops: int, console: Console) -> Run:
    run = Run(engine_name, url, objects, ops)
    with Client(url) as client:
        engine = client.engine
        Base.metadata.create_all(engine)
        contenders.create_tables(engine)
        for scenario in SCENARIOS:
            console.print(f"[dim]{engine_name}: {scenario.__name__} ...[/dim]")
            scenario(run, client, engine)
    return run


def render(runs: list[Run], console: Console) -> str:
    order = ["claystore", "SQLAlchemy ORM", "SQLAlchemy Core", "raw driver"]
    lines = []
    for run in runs:
        table = Table(title=f"{run.engine}: {run.objects:,} objects")
        table.add_column("scenario")
        for contender in order:
            table.add_column(contender, justify="right")
        lines.append(f"### {run.engine} ({run.objects:,} objects)\n")
        lines.append("| scenario | " + " | ".join(order) + " |")
        lines.append("|---|" + "---:|" * len(order))
        for result in run.results:
            fastest = min(result.seconds.values())
            cells = []
            for contender in order:
                seconds = result.seconds.get(contender)
                if seconds is None:
                    cells.append("n/a")
                    continue
                rate = result.count / seconds if seconds else float("inf")
                cells.append(f"{seconds:.3f}s ({rate:,.0f}/s) x{seconds / fastest:.2f}")
            table.add_row(result.scenario, *cells)
            lines.append(f"| {result.scenario} | " + " | ".join(cells) + " |")
        lines.append("")
        console.print(table)
    return "\n".join(lines)


def versions() -> str:
    return (
        f"Python {platform.python_version()}, claystore {claystore.__version__}, "
        f"SQLAlchemy {sa.__version__}, psycopg {psycopg.__version__}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, {platform.machine()} "
        f"{os.cpu_count()} CPUs"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument(
        "--ops", type=int, default=10_000, help="lookups (reads/writes/calls use a fifth)"
    )
    parser.add_argument("--quick", action="store_true", help="10,000 objects, 2,000 lookups")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.objects, args.ops = 10_000, 2_000
    console = Console()
    runs = []
    for engine_name in args.engines.split(","):
        with database(engine_name, args.postgres_url) as url:
            runs.append(run_engine(engine_name, url, args.objects, args.ops, console))
    text = render(runs, console)
    console.print(versions())
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d")
        args.markdown.write_text(f"Run on {stamp}: {versions()}\n\n{text}\n")


if __name__ == "__main__":
    main()
