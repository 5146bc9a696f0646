"""Top-10 queries over 4 backends of 250,000 objects each vs one database of 1,000,000.

    python benchmarks/cross_backend_query.py                  # PostgreSQL and SQLite files
    python benchmarks/cross_backend_query.py --quick          # 4 x 25,000 vs 100,000
    python benchmarks/cross_backend_query.py --engines postgresql --rows 1000000 --repeat 50

What it answers (issue 14): what a class query costs when a store spreads its objects over
several backends -- one SELECT per backend, merged in the query's order (see
``src/claystore/orm/querymerge.py``) -- against the same query on one database holding them all.

Data: the employees of ``query_benchmark.py`` (indexed ``salary``, ``name``, ``age``,
unindexed ``dept``), ``rows`` in all, written with the driver (``COPY`` on PostgreSQL) in the
form claystore writes them, then ``ANALYZE``:

- ``1 database``: all ``rows`` in one store's database;
- ``4 backends``: another store whose metadata database and three more backends hold
  ``rows / 4`` each. PostgreSQL: two databases on the first server (``--postgres-url``), two
  on the second (``--postgres2-url``, default port 5433); SQLite: four files.

Scenarios, each ``limit 10``: ``indexed`` (``filter("salary", ">", X).order("-salary")``, the
index serves it on every backend), ``scan`` (``filter("dept", "=", 7).order("+name")``: a scan
and a top-10 sort on every backend) and ``count`` (``filter("dept", "=", 7).count()``).

Contenders: ``claystore, 1 database``; ``claystore, 4 backends``; ``SQL, 1 database`` (the
hand-written query on the raw driver, as in ``query_benchmark.py``: the baseline, ratio 1.0);
``SQL, 4 databases`` (the same query run by hand on each of the four raw connections one after
the other, results merged with ``heapq.merge``: what a program doing it itself would pay).
Printed: the median of ``--repeat`` runs in milliseconds and the ratio to ``SQL, 1 database``.
Not a test: nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

import claystore
from claystore import Client
from claystore.orm.identity import new_object_id
from claystore.orm.system import dc_object

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # the benchmarks' shared helpers, next to this file
from query_benchmark import BenchEmployee, copy_rows, records

CHUNK = 20_000


def load(client: Client, backend: uuid.UUID, url: str, rows: Iterator[dict[str, Any]]) -> int:
    """Write ``rows`` as employees at home on ``backend`` (database at ``url``)."""
    engine = sa.create_engine(url)
    table = BenchEmployee._dc_info.table
    is_pg = engine.dialect.name == "postgresql"
    count = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        people = [
            {"id": new_object_id(), "dc_class": "bench_employee", "dc_version": 1, **r}
            for r in batch
        ]
        registry = [
            {
                "id": p["id"],
                "class_name": "bench_employee",
                "dataset": client.dataset,
                "backend_id": backend,
            }
            for p in people
        ]
        with engine.begin() as conn:
            if is_pg:
                copy_rows(conn, table.name, list(people[0]), [tuple(p.values()) for p in people])
                copy_rows(
                    conn, "dc_object", list(registry[0]), [tuple(r.values()) for r in registry]
                )
            else:
                conn.execute(table.insert(), people)
                conn.execute(dc_object.insert(), registry)
        batch.clear()

    for record in rows:
        batch.append(record)
        count += 1
        if len(batch) >= CHUNK:
            flush()
    if batch:
        flush()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    return count


def split(rows: int, parts: int) -> list[Iterator[dict[str, Any]]]:
    """The same records as one database holds, dealt out in ``parts`` runs."""
    source = records(rows)
    size = rows // parts
    return [
        (next(source) for _ in range(size if n < parts - 1 else rows - size * (parts - 1)))
        for n in range(parts)
    ]


SCENARIOS: dict[str, Callable[[], Any]] = {
    "indexed": lambda: list(
        BenchEmployee.dc_query().filter("salary", ">", 99_000.0).order("-salary").limit(10)
    ),
    "scan": lambda: list(BenchEmployee.dc_query().filter("dept", "=", 7).order("+name").limit(10)),
    "count": lambda: BenchEmployee.dc_query().filter("dept", "=", 7).count(),
}


def hand_written(is_pg: bool) -> dict[str, tuple[str, tuple[Any, ...], Callable[[Any], Any]]]:
    """The scenarios' SQL as a person writes it, and the merge key of its rows."""
    mark = "%s" if is_pg else "?"
    collate = ' COLLATE "C"' if is_pg else ""
    columns = "id, name, salary, age, dept"
    return {
        "indexed": (
            f"SELECT {columns} FROM bench_employee WHERE salary > {mark} "
            "ORDER BY salary DESC, id LIMIT 10",
            (99_000.0,),
            lambda row: (-row[2], row[0]),
        ),
        "scan": (
            f"SELECT {columns} FROM bench_employee WHERE dept = {mark} "
            f"ORDER BY name{collate}, id LIMIT 10",
            (7,),
            lambda row: (row[1], row[0]),
        ),
        "count": (f"SELECT count(*) FROM bench_employee WHERE dept = {mark}", (7,), None),  # type: ignore[dict-item]
    }


@contextlib.contextmanager
def raw_connections(urls: list[str]) -> Iterator[list[Any]]:
    """Raw driver connections (autocommit on PostgreSQL) to each database."""
    engines = [sa.create_engine(u) for u in urls]
    raws = [e.raw_connection() for e in engines]
    for engine, raw in zip(engines, raws, strict=True):
        if engine.dialect.name == "postgresql":
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
    try:
        yield raws
    finally:
        for raw in raws:
            raw.close()
        for engine in engines:
            engine.dispose()


def sql_run(raws: list[Any], text: str, params: tuple[Any, ...], key: Any) -> Callable[[], Any]:
    def run() -> Any:
        results = []
        for raw in raws:
            cursor = raw.cursor()
            cursor.execute(text, params)
            results.append(cursor.fetchall())
            cursor.close()
        if key is None:
            return sum(r[0][0] for r in results)
        if len(results) == 1:
            return results[0]
        return list(heapq.merge(*results, key=key))[:10]

    return run


def median_ms(function: Callable[[], Any], repeat: int) -> float:
    function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@contextlib.contextmanager
def databases(engine: str, args: argparse.Namespace, folder: str) -> Iterator[list[str]]:
    """Five fresh databases: the single one, then the four backends' (metadata first)."""
    if engine == "sqlite":
        yield [f"sqlite:///{folder}/{name}.db" for name in ("one", "b0", "b1", "b2", "b3")]
        return
    with contextlib.ExitStack() as stack:
        urls = [
            stack.enter_context(contenders.scratch_postgres(server, f"claystore_xq{n}"))
            for n, server in enumerate(
                [
                    args.postgres_url,
                    args.postgres_url,
                    args.postgres_url,
                    args.postgres2_url,
                    args.postgres2_url,
                ]
            )
        ]
        yield urls


def bench_engine(engine: str, args: argparse.Namespace) -> list[tuple[str, str, float, Any]]:
    results: list[tuple[str, str, float, Any]] = []
    with tempfile.TemporaryDirectory() as folder, databases(engine, args, folder) as urls:
        one, spread = urls[0], urls[1:]
        started = time.perf_counter()
        with Client(one) as client:
            load(client, next(iter(client.get_backends())), one, records(args.rows))
        with Client(spread[0]) as client:
            ids = [next(iter(client.get_backends()))]
            ids += [client.add_backend(u, name=f"b{n}") for n, u in enumerate(spread[1:], 1)]
            for backend, url, part in zip(ids, spread, split(args.rows, 4), strict=True):
                load(client, backend, url, part)
        print(
            f"  {engine}: loaded 2 x {args.rows:,} rows in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        answers: dict[tuple[str, str], Any] = {}
        for label, url in (("1 database", one), ("4 backends", spread[0])):
            with Client(url):
                for scenario, function in SCENARIOS.items():
                    ms = median_ms(function, args.repeat)
                    value = function()
                    answers[(scenario, label)] = (
                        value if isinstance(value, int) else [e.salary for e in value]
                    )
                    results.append(
                        (scenario, f"claystore, {label}", ms, answers[(scenario, label)])
                    )
        is_pg = engine == "postgresql"
        for label, group in (("1 database", [one]), ("4 databases", spread)):
            with raw_connections(group) as raws:
                for scenario, (text, params, key) in hand_written(is_pg).items():
                    run = sql_run(raws, text, params, key)
                    ms = median_ms(run, args.repeat)
                    value = run()
                    shown = value if isinstance(value, int) else [r[2] for r in value]
                    results.append((scenario, f"SQL, {label}", ms, shown))
        for scenario in SCENARIOS:
            same = {repr(v) for s, _, _, v in results if s == scenario}
            assert len(same) == 1, f"{scenario}: the contenders disagree"
    return results


def table(engine: str, rows: int, results: list[tuple[str, str, float, Any]]) -> str:
    base = {s: ms for s, who, ms, _ in results if who == "SQL, 1 database"}
    lines = [
        f"### {engine} ({rows:,} employees: one database, or 4 backends of {rows // 4:,})",
        "",
        "| scenario | contender | median ms | x SQL, 1 database |",
        "|---|---|---:|---:|",
    ]
    order = [
        "SQL, 1 database",
        "SQL, 4 databases",
        "claystore, 1 database",
        "claystore, 4 backends",
    ]
    for scenario in SCENARIOS:
        for who in order:
            [ms] = [m for s, w, m, _ in results if s == scenario and w == who]
            lines.append(f"| {scenario} | {who} | {ms:.2f} | {ms / base[scenario]:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 10 repeats")
    parser.add_argument("--engines", default="postgresql,sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--postgres2-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES2_URL", "postgresql+psycopg://postgres@127.0.0.1:5433/postgres"
        ),
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 100_000, 10
    print(
        f"claystore {claystore.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )
    for engine in args.engines.split(","):
        print()
        print(table(engine, args.rows, bench_engine(engine, args)))


if __name__ == "__main__":
    main()
