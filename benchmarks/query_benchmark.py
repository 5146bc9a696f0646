"""Filter + order + limit on 1,000,000 rows: claystore vs hand-written SQL vs DictDatastore.

    python benchmarks/query_benchmark.py                   # 1,000,000 rows, SQLite and PostgreSQL
    python benchmarks/query_benchmark.py --quick           # 20,000 rows, fewer repeats
    python benchmarks/query_benchmark.py --rows 200000 --engines sqlite --no-naive

PostgreSQL: a database is created for the run and dropped after it, through
``--postgres-url`` (default ``CLAYSTORE_TEST_POSTGRES_URL`` or the local server).

Data: ``rows`` employees (a model class with an indexed ``salary``, ``name``, ``age`` and an
unindexed ``dept``), and the same records as JSON documents in an ``SQLDatastore``, loaded
with the driver (``COPY`` on PostgreSQL) in the form claystore itself writes; then ``ANALYZE``.

Scenarios, each a filter + order + limit 10:

- ``model, indexed``: ``Employee.dc_query().filter("salary", ">", X).order("-salary")`` --
  the index on salary serves it;
- ``model, scan``: ``.filter("dept", "=", 7).order("+name")`` -- no index: a scan and a
  top-10 sort of the matches;
- ``json, scan``: the SQLDatastore query ``filter("dept", "=", 7).order("-salary")``.

Contenders: ``claystore`` (objects hydrated through the identity map; JSON values decoded),
``SQL`` (the same query written by hand -- same WHERE, same ORDER BY including the id/key
tie-breaker and code-point collation -- run on the raw driver connection, rows fetched as
tuples, JSON decoded) and ``naive`` (DictDatastore over the same records in memory).  The
table shows the median of repeated runs in milliseconds and the ratio to hand-written SQL.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import string
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa

import claystore
from claystore import Client, DataClayObject, Indexed
from claystore.datastore import DictDatastore, Key, Query, SQLDatastore
from claystore.datastore.jsontable import encode_value
from claystore.orm.identity import new_object_id
from claystore.orm.system import dc_object

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # the benchmarks' shared helpers, next to this file

CHUNK = 20_000


class BenchEmployee(DataClayObject):
    __tablename__ = "bench_employee"

    name: str
    salary: Annotated[float, Indexed()]
    age: int
    dept: int


def records(rows: int) -> Iterator[dict[str, Any]]:
    """The same pseudo-random records on every run."""
    rng = random.Random(42)
    letters = string.ascii_letters
    for _ in range(rows):
        yield {
            "name": "".join(rng.choice(letters) for _ in range(8)),
            "salary": rng.randrange(1_000_000) / 10,
            "age": rng.randrange(18, 70),
            "dept": rng.randrange(100),
        }


# -- loading -----------------------------------------------------------------------------------


def load(client: Client, docs: SQLDatastore, rows: int) -> tuple[list[uuid.UUID], list[str]]:
    """Write the employees (with their registry rows) and the JSON documents."""
    engine = client.engine
    is_pg = engine.dialect.name == "postgresql"
    backend = next(iter(client.get_backends()))
    table = BenchEmployee._dc_info.table
    ids: list[uuid.UUID] = []
    keys: list[str] = []
    batch: list[tuple[uuid.UUID, dict[str, Any]]] = []

    def flush() -> None:
        people = [{"id": i, "dc_class": "bench_employee", "dc_version": 1, **r} for i, r in batch]
        registry = [
            {
                "id": i,
                "class_name": "bench_employee",
                "dataset": client.dataset,
                "backend_id": backend,
            }
            for i, _ in batch
        ]
        documents = [
            (f"/BenchEmployee:{i}", "/BenchEmployee", encode_value(r, exact_numbers=is_pg))
            for i, r in batch
        ]
        with engine.begin() as conn:
            if is_pg:
                copy_rows(conn, table.name, list(people[0]), [tuple(p.values()) for p in people])
                copy_rows(
                    conn, "dc_object", list(registry[0]), [tuple(r.values()) for r in registry]
                )
                copy_rows(conn, docs.table.name, ["key", "path", "value"], documents)
            else:
                conn.execute(table.insert(), people)
                conn.execute(dc_object.insert(), registry)
                conn.execute(
                    docs.table.insert(),
                    [{"key": k, "path": p, "value": v} for k, p, v in documents],
                )
        batch.clear()

    for record in records(rows):
        object_id = new_object_id()
        ids.append(object_id)
        keys.append(f"/BenchEmployee:{object_id}")
        batch.append((object_id, record))
        if len(batch) >= CHUNK:
            flush()
    if batch:
        flush()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return ids, keys


def copy_rows(conn: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL COPY through psycopg (the fastest way to load rows)."""
    cursor = conn.connection.driver_connection.cursor()
    names = ", ".join(columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# -- contenders --------------------------------------------------------------------------------


def hand_written(engine: sa.Engine) -> dict[str, tuple[str, tuple[Any, ...], bool]]:
    """The scenarios' SQL as a person writes it: (text, parameters, decode JSON values)."""
    if engine.dialect.name == "postgresql":
        return {
            "model, indexed": (
                "SELECT id, name, salary, age, dept FROM bench_employee WHERE salary > %s "
                "ORDER BY salary DESC, id LIMIT 10",
                (99_000.0,),
                False,
            ),
            "model, scan": (
                "SELECT id, name, salary, age, dept FROM bench_employee WHERE dept = %s "
                'ORDER BY name COLLATE "C", id LIMIT 10',
                (7,),
                False,
            ),
            "json, scan": (
                "SELECT key, value FROM bench_docs WHERE path = %s "
                "AND value -> 'dept' = '7'::jsonb ORDER BY value -> 'salary' DESC, key LIMIT 10",
                ("/BenchEmployee",),
                False,  # psycopg decodes jsonb
            ),
        }
    return {
        "model, indexed": (
            "SELECT id, name, salary, age, dept FROM bench_employee WHERE salary > ? "
            "ORDER BY salary DESC, id LIMIT 10",
            (99_000.0,),
            False,
        ),
        "model, scan": (
            "SELECT id, name, salary, age, dept FROM bench_employee WHERE dept = ? "
            "ORDER BY name, id LIMIT 10",
            (7,),
            False,
        ),
        "json, scan": (
            "SELECT key, value FROM bench_docs WHERE path = ? "
            "AND json_extract(value, '$.dept') = 7 "
            "ORDER BY json_extract(value, '$.salary') DESC, key LIMIT 10",
            ("/BenchEmployee",),
            True,
        ),
    }


def claystore_queries(docs: SQLDatastore) -> dict[str, Callable[[], list[Any]]]:
    return {
        "model, indexed": lambda: list(
            BenchEmployee.dc_query().filter("salary", ">", 99_000.0).order("-salary").limit(10)
        ),
        "model, scan": lambda: list(
            BenchEmployee.dc_query().filter("dept", "=", 7).order("+name").limit(10)
        ),
        "json, scan": lambda: list(
            docs.query(
                Query(Key("/BenchEmployee"), limit=10).filter("dept", "=", 7).order("-salary")
            )
        ),
    }


def naive_queries(naive: DictDatastore) -> dict[str, Callable[[], list[Any]]]:
    collection = Key("/BenchEmployee")
    return {
        "model, indexed": lambda: list(
            naive.query(
                Query(collection, limit=10).filter("salary", ">", 99_000.0).order("-salary")
            )
        ),
        "model, scan": lambda: list(
            naive.query(Query(collection, limit=10).filter("dept", "=", 7).order("+name"))
        ),
        "json, scan": lambda: list(
            naive.query(Query(collection, limit=10).filter("dept", "=", 7).order("-salary"))
        ),
    }


@contextlib.contextmanager
def sql_query(
    engine: sa.Engine, text: str, params: tuple[Any, ...], decode: bool
) -> Iterator[Callable[[], list[Any]]]:
    """The hand-written query on a raw driver connection in autocommit mode (one round trip,
    like claystore's reads of a bounded result); the connection is restored and closed after."""
    raw = engine.raw_connection()
    driver: Any = raw.driver_connection
    is_pg = engine.dialect.name == "postgresql"
    if is_pg:
        driver.autocommit = True

    def run() -> list[Any]:
        cursor = raw.cursor()
        cursor.execute(text, params)
        rows = cursor.fetchall()
        cursor.close()
        return [(row[0], json.loads(row[1])) for row in rows] if decode else rows

    try:
        yield run
    finally:
        if is_pg:
            driver.autocommit = False
        raw.close()


def median_ms(function: Callable[[], list[Any]], repeat: int) -> tuple[float, int]:
    """Median wall time of ``repeat`` runs (after one warm-up), and the rows returned."""
    count = len(function())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, count


# -- running -----------------------------------------------------------------------------------


@contextlib.contextmanager
def database(engine_name: str, postgres_url: str, folder: str) -> Iterator[str]:
    """A fresh database for one engine, removed afterwards."""
    if engine_name == "sqlite":
        yield f"sqlite:///{folder}/query_benchmark.db"
        return
    with contenders.scratch_postgres(postgres_url, "claystore_qbench") as url:
        yield url


def bench_engine(
    url: str, rows: int, repeat: int, with_naive: bool
) -> list[tuple[str, str, float, int]]:
    results: list[tuple[str, str, float, int]] = []
    with Client(url) as client:
        docs = SQLDatastore(client, table="bench_docs")
        started = time.perf_counter()
        _ids, keys = load(client, docs, rows)
        print(f"  loaded {rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        ours = claystore_queries(docs)
        for scenario, (text, params, decode) in hand_written(client.engine).items():
            with sql_query(client.engine, text, params, decode) as run:
                sql_ms, sql_rows = median_ms(run, repeat)
            our_ms, our_rows = median_ms(ours[scenario], repeat)
            assert our_rows == sql_rows, (scenario, our_rows, sql_rows)
            results += [(scenario, "SQL (driver)", sql_ms, sql_rows)]
            results += [(scenario, "claystore", our_ms, our_rows)]
        if with_naive:
            naive = DictDatastore()
            for key, record in zip(keys, records(rows), strict=True):
                naive.put(Key(key), record)
            for scenario, function in naive_queries(naive).items():
                ms, count = median_ms(function, max(1, repeat // 10))
                results.append((scenario, "naive (DictDatastore)", ms, count))
        docs.close()
    return results


def table(engine_name: str, results: list[tuple[str, str, float, int]]) -> str:
    sql = {s: ms for s, who, ms, _ in results if who == "SQL (driver)"}
    lines = [
        f"### {engine_name}",
        "",
        "| scenario | contender | median ms | x hand-written SQL |",
        "|---|---|---:|---:|",
    ]
    for scenario, who, ms, _ in sorted(results, key=lambda r: (r[0], r[2])):
        lines.append(f"| {scenario} | {who} | {ms:,.2f} | {ms / sql[scenario]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, fewer repeats")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per query")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--no-naive", action="store_true", help="skip DictDatastore")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args(argv)
    rows, repeat = (20_000, 10) if args.quick else (args.rows, args.repeat)
    print(f"# Query benchmark: {rows:,} rows, median of {repeat} runs")
    print()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; claystore {claystore.__version__}, "
        f"Python {platform.python_version()}, SQLAlchemy {sa.__version__}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, {platform.machine()} "
        f"({os.cpu_count()} CPUs)"
    )
    import tempfile  # noqa: PLC0415 - only the runner needs it

    with tempfile.TemporaryDirectory() as folder:
        for engine_name in args.engines.split(","):
            print(f"{engine_name}...", file=sys.stderr)
            with database(engine_name, args.postgres_url, folder) as url:
                version = ""
                if engine_name == "postgresql":
                    probe = sa.create_engine(url)
                    with probe.connect() as conn:
                        version = (
                            f" (server {conn.exec_driver_sql('SHOW server_version').scalar()})"
                        )
                    probe.dispose()
                results = bench_engine(url, rows, repeat, not args.no_naive)
            print()
            print(table(engine_name + version, results))


if __name__ == "__main__":
    main()
