"""What benchmarks/peers.py and its peers share: the data every library stores (:class:`Dataset`),
the database of one run (:class:`Target`), the timer (:class:`Timer`) and the base class each
peer fills in (:class:`Peer`).

peers.py builds the dataset, opens a target per engine and run, and calls the peers' workload
methods; the peers live in peer_claystore.py (claystore, the raw driver), peer_sqlalchemy.py
(SQLAlchemy ORM and Core, SQLModel) and peer_orms.py (Django, peewee, Pony).
"""

from __future__ import annotations

import gc
import random
import sqlite3
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

#: workload keys, in the order they run
WORKLOADS = ("persist", "iterate", "lookups", "raise_salaries", "top10")


class Unavailable(Exception):
    """A peer cannot run on this engine here (missing driver, unsupported feature)."""


# -- the data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """Plain values every library stores, and the choices its workloads make.

    Salaries are distinct integers times ten (exact float sums, and a +1 never makes two equal),
    so the checks compare sums exactly and a top-10 query has one right answer.
    """

    companies: list[tuple[str, list[tuple[str, float]]]]
    lookups: list[str]  # W3: employee names, looked up in this order
    raises: list[str]  # W4: employee names, each raised once by 1.0
    thresholds: list[float]  # W5: `salary > x ORDER BY salary LIMIT 10`, one query per x
    salary: dict[str, float] = field(repr=False)

    @classmethod
    def build(
        cls, companies: int, per_company: int, lookups: int, raises: int, queries: int
    ) -> Dataset:
        rng = random.Random(20261129)
        total = companies * per_company
        values = iter(rng.sample(range(10 * total), total))
        graph = [
            (f"C{c}", [(f"E{c}-{i}", 1000.0 + 10.0 * next(values)) for i in range(per_company)])
            for c in range(companies)
        ]
        salary = {name: value for _, employees in graph for name, value in employees}
        names = list(salary)
        tenth_highest = sorted(salary.values())[-10]
        return cls(
            companies=graph,
            lookups=rng.sample(names, min(lookups, total)),
            raises=rng.sample(names, min(raises, total)),
            thresholds=[float(rng.randrange(1000, int(tenth_highest))) for _ in range(queries)],
            salary=salary,
        )

    @property
    def employee_count(self) -> int:
        return len(self.salary)

    @property
    def salary_sum(self) -> float:
        return sum(self.salary.values())

    def lookup_sum(self) -> float:
        return sum(self.salary[name] for name in self.lookups)

    def top10_expected(self) -> tuple[int, float]:
        """Rows and salary sum the top-10 queries return once W4 raised its employees."""
        raised = set(self.raises)
        ordered = sorted(s + 1.0 if n in raised else s for n, s in self.salary.items())
        count, total = 0, 0.0
        for x in self.thresholds:
            start = bisect_right(ordered, x)
            top = ordered[start : start + 10]
            count += len(top)
            total += sum(top)
        return count, total


# -- the database of one run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One scratch database: an SQLite file in WAL mode (every connection sets
    ``synchronous=NORMAL``), or a PostgreSQL database created for the run."""

    engine: str  # "sqlite" | "postgresql"
    url: str  # SQLAlchemy URL: sqlite:///path or postgresql+psycopg://...

    @property
    def is_pg(self) -> bool:
        return self.engine == "postgresql"

    @property
    def path(self) -> str:
        return str(make_url(self.url).database)

    @property
    def pg(self) -> dict[str, Any]:
        """host, port, user, password, dbname of the PostgreSQL database."""
        url = make_url(self.url)
        return {
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "user": url.username or "postgres",
            "password": url.password or "",
            "dbname": url.database,
        }

    def connect(self) -> Any:
        """A DBAPI connection in autocommit mode (sqlite3 or psycopg 3)."""
        if self.is_pg:
            return psycopg.connect(**self.pg, autocommit=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 60000")
        return conn

    @property
    def mark(self) -> str:
        """The DBAPI parameter marker of the target's driver."""
        return "%s" if self.is_pg else "?"


# -- timing ----------------------------------------------------------------------------------------


class Timer:
    """``with timer():`` around the measured part of a workload: a full collection first, then
    ``time.perf_counter`` around the block.  Work before or after the block is not counted."""

    def __init__(self, collect: bool = True) -> None:
        self.seconds: float | None = None
        self.collect = collect  # False for a timer nested in a measured block

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self.collect:
            gc.collect()
        start = time.perf_counter()
        yield
        self.seconds = time.perf_counter() - start


# -- peers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tables:
    """Where a peer stores one copy of the data, for the checks: company and employee tables,
    and the table and column that link an employee to its company."""

    company: str
    employee: str
    link: str  # a link table, or the employee table itself
    link_column: str  # owner id in the link table, or the employee's company id


PersistRow = tuple[str, Callable[[Dataset, Timer], None], Tables]
Row = tuple[str, Callable[..., Any]]


class Peer:
    """One library.  Subclasses set ``key``, ``name`` and ``tables`` and implement the workload
    methods; each method does its setup, runs its measured part inside ``with timer():`` and
    returns what it read, for the checks.

    - ``persist(data, timer)``: W1, companies and their employees from plain values, one
      transaction; ``persist_bulk`` the same with the library's bulk API (if it has one).
    - ``iterate(timer) -> (count, salary sum)``: W2, every employee.
    - ``lookups(ids, timer) -> salary sum``: W3, one load by id per id, each salary read.
    - ``raise_salaries(ids, timer)``: W4, one transaction per id: locked read, +1.0, write.
    - ``top10(thresholds, timer) -> (rows, salary sum)``: W5, one index-served query per x.
    - ``memory(probe, limit)``: loads ``limit`` employees into a list, in the library's unit of
      work, and calls ``probe(list)`` while they are alive (optional).
    """

    key = ""
    name = ""
    tables: Tables
    bulk_tables: Tables | None = None  # where persist_bulk writes, if not ``tables``

    def open(self, target: Target) -> None:
        """Connect to the run's database and create the peer's tables (raise Unavailable)."""
        self.target = target

    def close(self) -> None:
        """Release connections."""

    def persist_rows(self) -> list[PersistRow]:
        """The W1 rows: the bulk one first (its rows are discarded after the check), then the
        natural one, whose data the other workloads read."""
        rows: list[PersistRow] = []
        if type(self).persist_bulk is not Peer.persist_bulk:
            rows.append((f"{self.name} bulk", self.persist_bulk, self.bulk_tables or self.tables))
        rows.append((self.name, self.persist, self.tables))
        return rows

    def discard(self, tables: Tables) -> None:
        """Delete the rows a bulk W1 row wrote into ``tables`` (not measured)."""
        if tables is not self.tables:
            return  # a copy of its own: left in place
        conn = self.target.connect()
        try:
            if self.target.is_pg:
                conn.execute(
                    f"TRUNCATE {tables.employee}, {tables.company} RESTART IDENTITY CASCADE"
                )
            else:
                conn.execute(f"DELETE FROM {tables.employee}")
                conn.execute(f"DELETE FROM {tables.company}")
        finally:
            conn.close()

    def rows(self, workload: str) -> list[Row]:
        """The measured rows of a workload other than W1: (label, method)."""
        return [(self.name, getattr(self, workload))]

    def persist(self, data: Dataset, timer: Timer) -> None:
        raise NotImplementedError

    def persist_bulk(self, data: Dataset, timer: Timer) -> None:
        raise NotImplementedError

    def iterate(self, timer: Timer) -> tuple[int, float]:
        raise NotImplementedError

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        raise NotImplementedError

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        raise NotImplementedError

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        raise NotImplementedError

    def memory(self, probe: Callable[[list[Any]], None], limit: int) -> None:
        raise NotImplementedError
