"""Moving 10,000 objects between backends: claystore's ``move`` vs the same copy by hand.

    python benchmarks/move_benchmark.py                      # PostgreSQL 5432 -> 5433, SQLite files
    python benchmarks/move_benchmark.py --quick              # 1,000 objects, PostgreSQL only
    python benchmarks/move_benchmark.py --engines postgresql --objects 10000 --repeat 3
    python benchmarks/move_benchmark.py --layout shared      # the source is the metadata database
    python benchmarks/move_benchmark.py --profile            # cProfile of one claystore move

The target of issue 13: moving 10,000 objects recursively between two PostgreSQL servers takes
at most 2x the time of copying the same rows with the raw driver.

Databases (made for the run, dropped after it): on PostgreSQL a metadata database and the
*source* backend database on the first server (``--postgres-url``, default the local server on
port 5432), the *target* backend database on the second one (``--postgres2-url``, default port
5433); with ``--layout shared`` the metadata database is itself the source backend.  On SQLite:
three files (metadata, source, target) in a temporary folder.

The graph: one ``MoveCompany`` whose ``staff: list[MoveEmployee]`` holds ``objects - 1``
employees, each with a name, a salary, ``tags: list[str]`` (a JSON column) and
``boss: MoveEmployee | None`` (the previous employee): 10,000 objects reachable from one root,
stored on the source with ``make_persistent(backend_id=source)``.  The rows that move: one
class-table row and one registry row (``dc_object``) per object, and the company's
``objects - 1`` link rows (``move_company_staff``).

Contenders, each moving every row of the graph from the source to the target and back (the
way back resets; only the way there is timed, from call to return), after one warm-up round:

- ``claystore``: ``company.move(target, recursive=True)``: finds the objects (graph walk),
  then the crash-safe move of :mod:`claystore.orm.moving` (journal, copy, lock and re-check,
  delete, promote);
- ``raw driver``: psycopg 3 (sqlite3 on SQLite) given the ids of the objects by table (no
  graph walk): per table ``SELECT ... WHERE id = ANY(%s)`` on the source, ``COPY ... FROM
  STDIN`` into the target (registry rows rewritten to name the target), target commit, then
  ``DELETE ... WHERE id = ANY(%s)`` on the source, commit: the same rows without journal,
  locking or re-check.  JSON values travel as text.  On PostgreSQL also ``raw driver, binary
  ids``: the same with the id lists as binary parameters (``ANY(%b)``), quicker than psycopg's
  text dumping of a list of UUIDs (the strictest baseline);
- ``SQLAlchemy Core``: the same with reflected tables: ``select().where(id.in_(ids))``,
  ``insert()`` with a list of rows (insertmanyvalues), ``delete().where(...)``.

Each contender's result is checked after every move (row counts on both sides).  Printed: the
median wall-clock seconds of ``--repeat`` runs, the median CPU seconds of this process (the
servers' work is not in it) and the ratio to the raw driver; then where claystore's time goes
(one more move, instrumented: wall and CPU seconds and statements per step, by database;
on SQLite the statements include claystore's ``BEGIN``).  Not a test: nothing here asserts
the target.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.string import TextLoader
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

import claystore
from claystore import Client, DataClayObject
from claystore.orm import moving

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # the benchmarks' shared helpers, next to this file

console = Console(width=140)

_FIRST = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_SECOND = "postgresql+psycopg://postgres@127.0.0.1:5433/postgres"


class MoveEmployee(DataClayObject):
    __tablename__ = "move_employee"

    name: str
    salary: float
    tags: list[str]
    boss: MoveEmployee | None = None


class MoveCompany(DataClayObject):
    __tablename__ = "move_company"

    name: str
    staff: list[MoveEmployee]


#: The rows of the graph, as a person writing the copy by hand lists them: table, the column
#: naming the object, its columns (checked against the database at setup).  Parents first.
TABLES: list[tuple[str, str, list[str]]] = [
    (
        "dc_object",
        "id",
        ["id", "class_name", "dataset", "backend_id", "original_id", "parent_id", "parent_version"],
    ),
    ("move_company", "id", ["id", "dc_class", "dc_version", "name"]),
    ("move_employee", "id", ["id", "dc_class", "dc_version", "name", "salary", "tags", "boss_id"]),
    ("move_company_staff", "owner_id", ["owner_id", "position", "target_id"]),
]
_BACKEND_COLUMN = 3  # dc_object.backend_id in TABLES' column list
_NO_BACKEND = uuid.UUID(int=0)


# -- the databases -------------------------------------------------------------------------------


@dataclass
class Setup:
    """The databases of one engine's run and what each contender needs."""

    engine_name: str
    metadata_url: str
    source_url: str
    target_url: str
    layout: str
    client: Client | None = None
    source: uuid.UUID = _NO_BACKEND
    target: uuid.UUID = _NO_BACKEND
    root: MoveCompany | None = None
    ids: list[Any] = field(default_factory=list)  # every object id, as the driver takes them
    version: str = ""

    @property
    def is_pg(self) -> bool:
        return self.engine_name == "postgresql"


@contextlib.contextmanager
def databases(
    engine_name: str, layout: str, first: str, second: str, folder: str
) -> Iterator[tuple[str, str, str]]:
    """``(metadata, source, target)`` URLs of new databases, removed afterwards."""
    if engine_name == "sqlite":
        metadata = f"sqlite:///{folder}/metadata.db"
        source = metadata if layout == "shared" else f"sqlite:///{folder}/source.db"
        yield metadata, source, f"sqlite:///{folder}/target.db"
        return
    with contextlib.ExitStack() as stack:
        metadata = stack.enter_context(contenders.scratch_postgres(first, "claystore_mvmeta"))
        source = (
            metadata
            if layout == "shared"
            else stack.enter_context(contenders.scratch_postgres(first, "claystore_mvsrc"))
        )
        target = stack.enter_context(contenders.scratch_postgres(second, "claystore_mvtgt"))
        yield metadata, source, target


def build(setup: Setup, objects: int) -> None:
    """Start the client, register the backends, store the graph on the source."""
    client = setup.client = Client(setup.metadata_url)
    client.start()
    backends = client.get_backends()
    metadata_id = next(iter(backends))
    setup.source = (
        metadata_id if setup.layout == "shared" else client.add_backend(setup.source_url, "source")
    )
    setup.target = client.add_backend(setup.target_url, name="target")
    staff: list[MoveEmployee] = []
    boss = None
    for i in range(objects - 1):
        employee = MoveEmployee()
        employee.name = f"employee {i}"
        employee.salary = 30_000.0 + i
        employee.tags = ["staff", f"team-{i % 17}", f"floor-{i % 5}"]
        employee.boss = boss
        staff.append(employee)
        boss = employee
    company = MoveCompany()
    company.name = "ACME"
    company.staff = staff
    company.make_persistent(backend_id=setup.source)
    setup.root = company
    engine = sa.create_engine(setup.source_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT id FROM dc_object WHERE backend_id = :b AND class_name LIKE 'move_%'"
                ),
                {"b": setup.source if setup.is_pg else setup.source.hex},
            ).scalars()
            setup.ids = list(found)
            if setup.is_pg:
                conn.exec_driver_sql("ANALYZE")
                setup.version = conn.exec_driver_sql("SHOW server_version").scalar() or ""
            for table, _, columns in TABLES:
                actual = [c["name"] for c in sa.inspect(conn).get_columns(table)]
                assert actual == columns, (table, actual)
    finally:
        engine.dispose()
    assert len(setup.ids) == objects, (len(setup.ids), objects)


def counts(url: str, backend: uuid.UUID, is_pg: bool) -> tuple[int, ...]:
    """Home registry rows and graph rows in each table of one database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            home = conn.execute(
                sa.text(
                    "SELECT count(*) FROM dc_object WHERE backend_id = :b "
                    "AND class_name LIKE 'move_%'"
                ),
                {"b": backend if is_pg else backend.hex},
            ).scalar_one()
            rows = [
                conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table, _, _ in TABLES[1:]
            ]
    finally:
        engine.dispose()
    return (home, *rows)


def check(setup: Setup, where: str, objects: int) -> None:
    """Every object is home on ``where`` (``"source"``/``"target"``) and nowhere else."""
    full = (objects, 1, objects - 1, objects - 1)
    source = counts(setup.source_url, setup.source, setup.is_pg)
    target = counts(setup.target_url, setup.target, setup.is_pg)
    empty = (0, 0, 0, 0)
    expected = (full, empty) if where == "source" else (empty, full)
    assert (source, target) == expected, (where, source, target)


# -- the contenders ------------------------------------------------------------------------------

Mover = Callable[[Setup, bool], None]  # (setup, forward: source -> target, else back)
BINARY = "raw driver, binary ids"


def claystore_move(setup: Setup, forward: bool) -> None:
    assert setup.root is not None
    setup.root.move(setup.target if forward else setup.source, recursive=True)


def _pg_connect(url: str) -> psycopg.Connection[Any]:
    u = make_url(url)
    return psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
    )


class RawMover:
    """The copy written with the driver: psycopg 3 (sqlite3 on SQLite), connections opened
    once (claystore's pools are open too).  ``binary``: the id lists go as binary parameters
    (``%b``; psycopg's default ``%s`` dumps a list of UUIDs as text, item by item)."""

    def __init__(self, setup: Setup, *, binary: bool = False) -> None:
        self.setup = setup
        self.marker = "%b" if binary else "%s"
        if setup.is_pg:
            self.source: Any = _pg_connect(setup.source_url)
            self.target: Any = _pg_connect(setup.target_url)
            for conn in (self.source, self.target):
                conn.adapters.register_loader("jsonb", TextLoader)  # JSON stays text
        else:
            self.source = sqlite3.connect(make_url(setup.source_url).database, isolation_level=None)
            self.target = sqlite3.connect(make_url(setup.target_url).database, isolation_level=None)

    def close(self) -> None:
        self.source.close()
        self.target.close()

    def __call__(self, setup: Setup, forward: bool) -> None:
        source, target = (self.source, self.target) if forward else (self.target, self.source)
        backend = setup.target if forward else setup.source
        if setup.is_pg:
            self._move_pg(source, target, backend, setup.ids, self.marker)
        else:
            self._move_sqlite(source, target, backend.hex, json.dumps(setup.ids))

    @staticmethod
    def _move_pg(
        source: psycopg.Connection[Any],
        target: psycopg.Connection[Any],
        backend: uuid.UUID,
        ids: list[uuid.UUID],
        marker: str,
    ) -> None:
        with source.transaction():
            with target.transaction(), target.cursor() as cursor:
                for table, key, columns in TABLES:
                    names = ", ".join(columns)
                    rows = source.execute(
                        f"SELECT {names} FROM {table} WHERE {key} = ANY({marker})", (ids,)
                    ).fetchall()
                    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                        if table == "dc_object":
                            rows = [
                                (*r[:_BACKEND_COLUMN], backend, *r[_BACKEND_COLUMN + 1 :])
                                for r in rows
                            ]
                        for row in rows:
                            copy.write_row(row)
            for table, key, _ in reversed(TABLES):
                source.execute(f"DELETE FROM {table} WHERE {key} = ANY({marker})", (ids,))

    @staticmethod
    def _move_sqlite(
        source: sqlite3.Connection, target: sqlite3.Connection, backend: str, ids: str
    ) -> None:
        wanted = "IN (SELECT value FROM json_each(?))"
        source.execute("BEGIN IMMEDIATE")
        try:
            target.execute("BEGIN IMMEDIATE")
            try:
                for table, key, columns in TABLES:
                    names = ", ".join(columns)
                    rows = source.execute(
                        f"SELECT {names} FROM {table} WHERE {key} {wanted}", (ids,)
                    ).fetchall()
                    if table == "dc_object":
                        rows = [
                            (*r[:_BACKEND_COLUMN], backend, *r[_BACKEND_COLUMN + 1 :]) for r in rows
                        ]
                    marks = ", ".join("?" * len(columns))
                    target.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
                target.execute("COMMIT")
            except BaseException:
                target.execute("ROLLBACK")
                raise
            for table, key, _ in reversed(TABLES):
                source.execute(f"DELETE FROM {table} WHERE {key} {wanted}", (ids,))
            source.execute("COMMIT")
        except BaseException:
            source.execute("ROLLBACK")
            raise


class CoreMover:
    """The copy written with SQLAlchemy Core on reflected tables."""

    def __init__(self, setup: Setup) -> None:
        self.source = sa.create_engine(setup.source_url)
        self.target = sa.create_engine(setup.target_url)
        metadata = sa.MetaData()
        metadata.reflect(self.source, only=[t for t, _, _ in TABLES])
        self.tables = [(metadata.tables[t], key) for t, key, _ in TABLES]

    def close(self) -> None:
        self.source.dispose()
        self.target.dispose()

    def __call__(self, setup: Setup, forward: bool) -> None:
        source, target = (self.source, self.target) if forward else (self.target, self.source)
        backend: Any = setup.target if forward else setup.source
        backend = backend if setup.is_pg else backend.hex
        chunks = [setup.ids[i : i + 10_000] for i in range(0, len(setup.ids), 10_000)]
        with source.begin() as src:
            with target.begin() as dst:
                for table, key in self.tables:
                    for chunk in chunks:
                        rows = [
                            dict(r)
                            for r in src.execute(
                                sa.select(table).where(table.c[key].in_(chunk))
                            ).mappings()
                        ]
                        if table.name == "dc_object":
                            for row in rows:
                                row["backend_id"] = backend
                        if rows:
                            dst.execute(sa.insert(table), rows)
            for table, key in reversed(self.tables):
                for chunk in chunks:
                    src.execute(sa.delete(table).where(table.c[key].in_(chunk)))


# -- timing --------------------------------------------------------------------------------------


def timed(mover: Mover, setup: Setup, objects: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (of this process) of one move there (checked), then the move
    back (untimed, checked)."""
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    mover(setup, True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    check(setup, "target", objects)
    mover(setup, False)
    check(setup, "source", objects)
    return seconds, cpu


def bench(setup: Setup, objects: int, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Each contender's timings: one warm-up round, then ``repeat`` rounds in turn."""
    raw, core = RawMover(setup), CoreMover(setup)
    movers: dict[str, Mover] = {
        "claystore": claystore_move,
        "raw driver": raw,
        "SQLAlchemy Core": core,
    }
    binary = RawMover(setup, binary=True) if setup.is_pg else None
    if binary is not None:
        movers[BINARY] = binary
    try:
        for mover in movers.values():  # warm-up: the target's tables, pools, caches
            timed(mover, setup, objects)
        results: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for run in range(repeat):
            for name, mover in movers.items():
                results[name].append(timed(mover, setup, objects))
                wall, cpu = results[name][-1]
                console.print(
                    f"  run {run + 1}: {name} {wall:.3f} s (cpu {cpu:.3f} s)", style="dim"
                )
        return results
    finally:
        raw.close()
        core.close()
        if binary is not None:
            binary.close()


# -- where claystore's time goes -----------------------------------------------------------------

#: The steps of one move, each ending where :mod:`claystore.orm.moving` calls ``step_hook`` (or
#: where ``plan`` returns): (name, what it does).
STEPS = [
    ("plan", "plan(): graph walk (registry, versions check, references, locate)"),
    ("journaled", "run(): tables ensured, journal row written (copying)"),
    ("copied", "copy rows to the target as shadows (+ row versions read)"),
    ("switching", "lock source rows, re-read versions, re-copy stale, journal switching"),
    ("deleted", "delete source rows, commit (the decision)"),
    ("promoted", "promote the target's registry rows"),
    ("done", "delete the journal row"),
    ("return", "after run(): in-memory states updated"),
]


def instrumented(setup: Setup, objects: int, profile: bool) -> tuple[list[Any], str]:
    """One claystore move there and back with a clock and a statement counter at each step;
    the rows of the breakdown table, and a cProfile report when ``profile``."""
    names = {
        make_url(setup.metadata_url).database: "metadata",
        make_url(setup.source_url).database: "source",
        make_url(setup.target_url).database: "target",
    }
    if setup.layout == "shared":
        names[make_url(setup.metadata_url).database] = "metadata=source"
    statements: Counter[str] = Counter()

    def count(conn: Any, *_: Any) -> None:
        statements[names.get(conn.engine.url.database, "other")] += 1

    marks: list[tuple[str, float, float, Counter[str]]] = []

    def mark(step: str) -> None:
        marks.append((step, time.perf_counter(), time.process_time(), Counter(statements)))

    real_plan = moving.plan

    def plan(*args: Any, **kwargs: Any) -> moving.MovePlan:
        found = real_plan(*args, **kwargs)
        mark("plan")
        return found

    sa.event.listen(sa.Engine, "before_cursor_execute", count)
    moving.step_hook = mark
    moving.plan = plan  # type: ignore[assignment] - model.move_objects calls moving.plan
    profiler = cProfile.Profile() if profile else None
    try:
        gc.collect()
        mark("start")
        if profiler:
            profiler.enable()
        claystore_move(setup, True)
        if profiler:
            profiler.disable()
        mark("return")
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", count)
        moving.step_hook = None
        moving.plan = real_plan  # type: ignore[assignment]
    check(setup, "target", objects)
    claystore_move(setup, False)
    check(setup, "source", objects)
    rows = []
    _, previous_time, previous_cpu, previous_count = marks[0]
    for step, what in STEPS:
        at = next((m for m in marks if m[0] == step), None)
        if at is None:
            continue
        _, when, cpu, seen = at
        spent = seen - previous_count
        rows.append((step, what, when - previous_time, cpu - previous_cpu, dict(spent)))
        previous_time, previous_cpu, previous_count = when, cpu, seen
    report = io.StringIO()
    if profiler:
        pstats.Stats(profiler, stream=report).sort_stats("cumulative").print_stats(30)
    return rows, report.getvalue()


# -- output --------------------------------------------------------------------------------------


def summary(title: str, results: dict[str, list[tuple[float, float]]]) -> tuple[Table, list[str]]:
    """The median table (rich) and the same as markdown lines."""
    medians = {name: statistics.median(wall for wall, _ in runs) for name, runs in results.items()}
    headers = ["contender", "median s", "runs (s)", "median cpu s", "x raw driver"]
    if BINARY in results:
        headers.append("x raw, binary ids")
    table = Table(title=title)
    for column in headers:
        table.add_column(column, justify="left" if column == "contender" else "right")
    lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
    for name in ("raw driver", BINARY, "SQLAlchemy Core", "claystore"):
        if name not in results:
            continue
        runs = results[name]
        cpu = statistics.median(cpu for _, cpu in runs)
        cells = [
            name,
            f"{medians[name]:.3f}",
            " ".join(f"{wall:.3f}" for wall, _ in runs),
            f"{cpu:.3f}",
            f"{medians[name] / medians['raw driver']:.2f}",
        ]
        if BINARY in results:
            cells.append(f"{medians[name] / medians[BINARY]:.2f}")
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    return table, lines


def breakdown(title: str, rows: list[Any]) -> tuple[Table, list[str]]:
    table = Table(title=title)
    for column in ("step", "what", "seconds", "cpu s", "statements"):
        table.add_column(column, justify="left" if column in ("step", "what") else "right")
    lines = ["| step | what | seconds | cpu s | statements |", "|---|---|---:|---:|---|"]
    total = total_cpu = 0.0
    for step, what, seconds, cpu, spent in rows:
        total += seconds
        total_cpu += cpu
        text = ", ".join(f"{k} {v}" for k, v in sorted(spent.items())) or "0"
        table.add_row(step, what, f"{seconds:.3f}", f"{cpu:.3f}", text)
        lines.append(f"| {step} | {what} | {seconds:.3f} | {cpu:.3f} | {text} |")
    table.add_row("total", "", f"{total:.3f}", f"{total_cpu:.3f}", "")
    lines.append(f"| total | | {total:.3f} | {total_cpu:.3f} | |")
    return table, lines


def run_engine(args: argparse.Namespace, engine_name: str, folder: str) -> list[str]:
    """Build, time and break down one engine's run; its markdown."""
    with databases(engine_name, args.layout, args.postgres_url, args.postgres2_url, folder) as urls:
        setup = Setup(engine_name, *urls, layout=args.layout)
        try:
            started = time.perf_counter()
            build(setup, args.objects)
            console.print(
                f"{engine_name}: stored {args.objects:,} objects on the source in "
                f"{time.perf_counter() - started:.1f} s",
                style="dim",
            )
            results = bench(setup, args.objects, args.repeat)
            rows, report = instrumented(setup, args.objects, args.profile)
        finally:
            if setup.client is not None:
                setup.client.stop()
    where = (
        f"PostgreSQL {setup.version}: source 5432, target 5433"
        if setup.is_pg
        else "SQLite files: source, target"
    )
    layout = "metadata db = source" if args.layout == "shared" else "metadata db apart"
    title = f"{where} ({args.objects:,} objects, {layout}, median of {args.repeat})"
    table, lines = summary(title, results)
    console.print(table)
    steps, step_lines = breakdown(f"claystore's move, step by step ({engine_name})", rows)
    console.print(steps)
    if report:
        print(report)
    return [
        f"#### {title}",
        "",
        *lines,
        "",
        "claystore, one more move, by step:",
        "",
        *step_lines,
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender")
    parser.add_argument("--quick", action="store_true", help="1,000 objects, PostgreSQL only")
    parser.add_argument("--engines", default="postgresql,sqlite")
    parser.add_argument("--layout", choices=("apart", "shared"), default="apart")
    parser.add_argument("--profile", action="store_true", help="cProfile one claystore move")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("CLAYSTORE_TEST_POSTGRES_URL", _FIRST)
    )
    parser.add_argument(
        "--postgres2-url", default=os.environ.get("CLAYSTORE_TEST_POSTGRES2_URL", _SECOND)
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.objects, args.engines = 1_000, "postgresql"
    header = (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; claystore {claystore.__version__}, "
        f"Python {platform.python_version()}, SQLAlchemy {sa.__version__}, psycopg "
        f"{psycopg.__version__}, SQLite {sqlite3.sqlite_version}, {platform.machine()} "
        f"({os.cpu_count()} CPUs)"
    )
    console.print(header)
    markdown = [header, ""]
    with tempfile.TemporaryDirectory() as folder:
        for engine_name in args.engines.split(","):
            markdown += run_engine(args, engine_name, folder)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write("\n".join(markdown))


if __name__ == "__main__":
    main()
