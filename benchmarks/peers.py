"""claystore and its peers (SQLAlchemy ORM and Core, SQLModel, Django ORM, peewee, Pony ORM)
against the raw driver: five workloads, each library used as its documentation shows.

    pip install -e ".[bench]"                         # the peers
    python benchmarks/peers.py                        # SQLite and PostgreSQL, 3 runs each
    python benchmarks/peers.py --quick                # small sizes, 1 run (under a minute)
    python benchmarks/peers.py --engines sqlite --only claystore,raw --markdown out.md

Workloads (sizes are the defaults; every library on tables of its own in the same database):

- W1 persist 1,000 companies x 100 employees from plain values in one transaction (rows
  "X bulk": the library's bulk API, into the same tables, emptied afterwards; claystore's bulk
  row writes tables of its own).  Raw driver: one INSERT ... RETURNING per company and one
  executemany for the employees; on PostgreSQL "raw driver COPY" sends them with COPY.
- W2 iterate every employee, summing ``salary``.
- W3 5,000 lookups by id of objects not in memory (random ids chosen before timing, a new
  session / identity map), each reading ``salary``.
- W4 2,000 read-modify-write transactions (+1.0 on salary), each its own transaction with the
  row locked: ``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite (claystore:
  an ``@activemethod`` on an employee loaded before timing).
- W5 1,000 index-served top-10 queries (``salary > x ORDER BY salary LIMIT 10``, x random),
  reading every returned salary.

claystore rows without "session" run outside any session (autocommit, where each attribute
read is a committed read); "claystore session" rows run the same code inside one
``client.session()``.  How each library is used is described in peer_claystore.py (claystore,
raw driver), peer_sqlalchemy.py (SQLAlchemy ORM and Core, SQLModel) and peer_orms.py (Django,
peewee, Pony).  After every workload a check compares what each library stored or read with
the expected counts and sums (and so with every other library); a failed check aborts.

Each run uses a new database: an SQLite file in WAL mode, every connection with
``synchronous=NORMAL``; a PostgreSQL database created on ``--postgres-url``'s server (default
``CLAYSTORE_TEST_POSTGRES_URL`` or the local server, default configuration) and dropped after
the run, with ``ANALYZE`` after W1 (as autovacuum would soon do).  Before each measured row a
checkpoint (not measured) writes out what earlier rows left in the log, and each run starts
with another library, so no row pays for another's writes.  The table shows the median seconds
over the runs and the ratio to the raw driver of the same run (median and min-max).  W2 also
measures, in the first run, the memory per loaded object (tracemalloc, 20,000 employees kept
in a list inside the library's unit of work).  The default run took 16 minutes on a busy
2-CPU machine (SQLite 5, PostgreSQL 11; ``--runs 1``: a third of that).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contenders
from peer_base import WORKLOADS, Dataset, Peer, Tables, Target, Timer, Unavailable

#: --only key, module, class; in the order the rows are shown
PEERS = [
    ("raw", "peer_claystore", "RawPeer"),
    ("claystore", "peer_claystore", "ClaystorePeer"),
    ("sqlalchemy", "peer_sqlalchemy", "SqlAlchemyOrmPeer"),
    ("core", "peer_sqlalchemy", "SqlAlchemyCorePeer"),
    ("sqlmodel", "peer_sqlalchemy", "SQLModelPeer"),
    ("django", "peer_orms", "DjangoPeer"),
    ("peewee", "peer_orms", "PeeweePeer"),
    ("pony", "peer_orms", "PonyPeer"),
]
RAW = "raw driver"
MEMORY_OBJECTS = 20_000  # employees loaded for the memory table (tracemalloc is slow)


class CheckFailed(Exception):
    """A library stored or read something else than expected: the run stops."""


# -- results ---------------------------------------------------------------------------------------


@dataclass
class EngineResults:
    engine: str
    titles: dict[str, str]
    seconds: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)
    target: Target = field(init=False)  # the database of the current run

    def record(self, workload: str, label: str, run: int, seconds: float) -> None:
        self.seconds.setdefault(workload, {}).setdefault(label, {})[run] = seconds

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def titles(data: Dataset) -> dict[str, str]:
    per_company = len(data.companies[0][1]) if data.companies else 0
    return {
        "persist": f"W1 persist {len(data.companies):,} companies x {per_company} employees",
        "iterate": f"W2 iterate {data.employee_count:,} employees, sum salary",
        "lookups": f"W3 {len(data.lookups):,} lookups by id (not in memory)",
        "raise_salaries": f"W4 {len(data.raises):,} locked read-modify-write transactions",
        "top10": f"W5 {len(data.thresholds):,} top-10 queries on the salary index",
    }


# -- the database of one run -----------------------------------------------------------------------


@contextmanager
def scratch(engine: str, postgres_url: str) -> Iterator[Target]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="claystore_peers_") as folder:
            path = f"{folder}/peers.db"
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.close()
            yield Target("sqlite", f"sqlite:///{path}")
        return
    with contenders.scratch_postgres(postgres_url, "claystore_peers") as url:
        yield Target("postgresql", url)


def settle(target: Target) -> None:
    """Write what earlier rows left in the log to the tables (not measured), so no row pays
    for another's checkpoint: ``CHECKPOINT`` on PostgreSQL, ``wal_checkpoint(TRUNCATE)`` on
    SQLite."""
    conn = target.connect()
    try:
        conn.execute("CHECKPOINT" if target.is_pg else "PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def analyze(target: Target) -> None:
    """``ANALYZE`` after W1 on PostgreSQL: the statistics autovacuum gathers soon after a bulk
    load, made deterministic (otherwise whether a table has them by W5 depends on timing)."""
    conn = target.connect()
    try:
        conn.execute("ANALYZE")
    finally:
        conn.close()


def query_one(target: Target, sql: str) -> tuple[Any, ...]:
    conn = target.connect()
    try:
        return tuple(conn.execute(sql).fetchone())
    finally:
        conn.close()


def stored(target: Target, t: Tables) -> tuple[int, int, int, int, float]:
    """Companies, employees, employees linked to a company, companies with employees, and the
    salary sum, as stored in ``t``."""
    row = query_one(
        target,
        f"SELECT (SELECT count(*) FROM {t.company}), (SELECT count(*) FROM {t.employee}),"
        f" (SELECT count(*) FROM {t.link} WHERE {t.link_column} IS NOT NULL),"
        f" (SELECT count(DISTINCT {t.link_column}) FROM {t.link}),"
        f" (SELECT coalesce(sum(salary), 0) FROM {t.employee})",
    )
    return int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4])


def ids_of(target: Target, t: Tables, names: list[str]) -> list[Any]:
    """The ids a library gave the employees of these names (chosen before timing)."""
    conn = target.connect()
    try:
        by_name = dict(conn.execute(f"SELECT name, id FROM {t.employee}").fetchall())
    finally:
        conn.close()
    return [by_name[name] for name in names]


def check(engine: str, label: str, what: str, got: Any, expected: Any) -> None:
    if got != expected:
        msg = f"{engine}: {label} {what}: got {got!r}, expected {expected!r}"
        raise CheckFailed(msg)


# -- one run ---------------------------------------------------------------------------------------


def describe(exc: Exception) -> str:
    """The exception's type and the first line of its message."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def open_peers(target: Target, peers: list[Peer], results: EngineResults) -> list[Peer]:
    active = []
    for peer in peers:
        try:
            peer.open(target)
        except Unavailable as exc:
            results.note(f"{peer.name} does not run on {target.engine}: {exc}")
        except Exception as exc:  # a library that cannot start is reported, not fatal
            results.note(f"{peer.name} cannot start on {target.engine}: {describe(exc)}")
        else:
            active.append(peer)
    return active


def measure(
    results: EngineResults,
    workload: str,
    label: str,
    run: int,
    call: Callable[[Timer], Any],
) -> tuple[bool, Any]:
    """Run one row; record its seconds.  An exception other than a failed check is reported in
    the notes and the peer leaves this run (its later rows would read wrong data)."""
    settle(results.target)
    timer = Timer()
    try:
        value = call(timer)
    except CheckFailed:
        raise
    except Exception as exc:  # a library error is reported, not fatal
        results.note(f"{label} failed in {workload} on {results.engine}: {describe(exc)}")
        return False, None
    assert timer.seconds is not None, f"{label} {workload}: no `with timer():` block"
    results.record(workload, label, run, timer.seconds)
    return True, value


def run_once(
    target: Target,
    run: int,
    peers: list[Peer],
    data: Dataset,
    results: EngineResults,
    console: Console,
    with_memory: bool,
) -> None:
    engine = target.engine
    results.target = target
    turn = run % len(peers) if peers else 0  # each run starts with another peer
    active = open_peers(target, peers[turn:] + peers[:turn], results)
    try:
        for workload in WORKLOADS:
            console.print(f"[dim]{engine} run {run + 1}: {results.titles[workload]} ...[/dim]")
            for peer in list(active):
                ok = run_workload(target, run, peer, workload, data, results)
                if not ok:
                    active.remove(peer)
                    peer.close()
            if workload == "persist" and target.is_pg:
                analyze(target)
            if workload == "iterate" and with_memory:
                for peer in active:
                    if type(peer).memory is not Peer.memory:
                        results.memory[peer.name] = bytes_per_object(peer)
    finally:
        for peer in active:
            peer.close()


def run_workload(
    target: Target, run: int, peer: Peer, workload: str, data: Dataset, results: EngineResults
) -> bool:
    """Run every row of ``peer`` for ``workload`` and check it; False if one failed."""
    engine = target.engine
    if workload == "persist":
        rows = peer.persist_rows()
        for index, (label, persist, tables) in enumerate(rows):
            ok, _ = measure(results, workload, label, run, lambda t, p=persist: p(data, t))
            if not ok:
                return False
            expected = (
                len(data.companies),
                data.employee_count,
                data.employee_count,
                len(data.companies),
                data.salary_sum,
            )
            check(
                engine,
                label,
                "stored (companies, employees, linked, owners, salary sum)",
                stored(target, tables),
                expected,
            )
            if index < len(rows) - 1:
                peer.discard(tables)
        return True
    if workload == "iterate":
        for label, iterate in peer.rows(workload):
            ok, got = measure(results, workload, label, run, iterate)
            if not ok:
                return False
            check(
                engine,
                label,
                "read (count, salary sum)",
                got,
                (data.employee_count, data.salary_sum),
            )
        return True
    if workload == "lookups":
        ids = ids_of(target, peer.tables, data.lookups)
        for label, lookups in peer.rows(workload):
            ok, got = measure(results, workload, label, run, lambda t, f=lookups: f(ids, t))
            if not ok:
                return False
            check(engine, label, "salary sum of the looked-up employees", got, data.lookup_sum())
        return True
    if workload == "raise_salaries":
        ids = ids_of(target, peer.tables, data.raises)
        rows = peer.rows(workload)
        assert len(rows) == 1, "W5's expected result counts one raise per employee"
        label, raise_salaries = rows[0]
        ok, _ = measure(results, workload, label, run, lambda t: raise_salaries(ids, t))
        if not ok:
            return False
        _, employees, _, _, total = stored(target, peer.tables)
        check(
            engine,
            label,
            "(employees, salary sum) after the raises",
            (employees, total),
            (data.employee_count, data.salary_sum + len(data.raises)),
        )
        return True
    for label, top10 in peer.rows(workload):
        ok, got = measure(results, workload, label, run, lambda t, f=top10: f(data.thresholds, t))
        if not ok:
            return False
        check(engine, label, "top-10 (rows, salary sum)", got, data.top10_expected())
    return True


def bytes_per_object(peer: Peer) -> float:
    """Traced bytes held per employee while the peer keeps MEMORY_OBJECTS employees (or all)
    in a list."""
    seen: dict[str, float] = {}

    def probe(objects: list[Any]) -> None:
        gc.collect()
        seen["bytes"] = tracemalloc.get_traced_memory()[0] - base
        seen["count"] = len(objects)

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        peer.memory(probe, MEMORY_OBJECTS)
    finally:
        tracemalloc.stop()
    return seen["bytes"] / max(1, seen["count"])


# -- output ----------------------------------------------------------------------------------------


def summary(results: EngineResults, workload: str, label: str) -> tuple[str, str, str]:
    """Median seconds, median ratio to the raw driver, min-max ratio."""
    runs = results.seconds[workload][label]
    seconds = f"{statistics.median(runs.values()):.3f}"
    raw = results.seconds[workload].get(RAW, {})
    ratios = [runs[r] / raw[r] for r in runs if raw.get(r)]
    if not ratios:
        return seconds, "-", "-"
    return seconds, f"{statistics.median(ratios):.2f}", f"{min(ratios):.2f}-{max(ratios):.2f}"


def order(names: list[str], label: str) -> tuple[int, str]:
    """Rows in the order of the peers' names, whatever order the runs took."""
    for index, name in enumerate(names):
        if label == name or label.startswith(name + " "):
            return index, label
    return len(names), label


def render(all_results: list[EngineResults], names: list[str], runs: int, console: Console) -> str:
    header = ["workload", "library", "seconds (median)", "x raw (median)", "x raw (min-max)"]
    lines = []
    for results in all_results:
        title = f"{results.engine}: {runs} run{'s' if runs != 1 else ''}"
        table = Table(title=title)
        for name in header:
            table.add_column(name, justify="left" if name in ("workload", "library") else "right")
        lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|"]
        for workload in WORKLOADS:
            rows = results.seconds.get(workload, {})
            for index, label in enumerate(sorted(rows, key=lambda label: order(names, label))):
                cells = summary(results, workload, label)
                name = results.titles[workload] if index == 0 else ""
                table.add_row(name, label, *cells)
                lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
            if rows:
                table.add_section()
        console.print(table)
        lines.append("")
        for note in results.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
            lines.append(f"- note: {note}")
        if results.notes:
            lines.append("")
    memory_labels = list(dict.fromkeys(k for r in all_results for k in r.memory))
    if memory_labels:
        table = Table(title="W2: memory per loaded object (bytes, tracemalloc, first run)")
        table.add_column("library")
        lines += ["### W2: memory per loaded object (bytes, tracemalloc, first run)", ""]
        lines.append("| library | " + " | ".join(r.engine for r in all_results) + " |")
        lines.append("|---|" + "---:|" * len(all_results))
        for results in all_results:
            table.add_column(results.engine, justify="right")
        for label in memory_labels:
            cells = [f"{r.memory[label]:,.0f}" if label in r.memory else "-" for r in all_results]
            table.add_row(label, *cells)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        console.print(table)
        lines.append("")
    return "\n".join(lines)


def versions(engines: list[str], postgres_url: str) -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "missing"

    parts = [f"Python {platform.python_version()}"]
    for dist in (
        "claystore",
        "SQLAlchemy",
        "sqlmodel",
        "Django",
        "peewee",
        "pony",
        "psycopg",
        "psycopg2-binary",
    ):
        parts.append(f"{dist} {version(dist)}")
    parts.append(f"SQLite {sqlite3.sqlite_version}")
    if "postgresql" in engines:
        with scratch("postgresql", postgres_url) as target:
            parts.append("PostgreSQL " + str(query_one(target, "SHOW server_version")[0]))
    parts.append(f"{platform.machine()}, {os.cpu_count()} CPUs")
    return ", ".join(parts)


# -- main ------------------------------------------------------------------------------------------


def load_peers(only: list[str] | None) -> tuple[list[Peer], list[str]]:
    peers, notes = [], []
    for key, module_name, class_name in PEERS:
        if only is not None and key not in only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            notes.append(f"{key}: cannot import {module_name} ({exc}); pip install -e '.[bench]'")
            continue
        peers.append(getattr(module, class_name)())
    return peers, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--per-company", type=int, default=100, help="employees per company")
    parser.add_argument("--lookups", type=int, default=5000, help="W3 lookups")
    parser.add_argument("--updates", type=int, default=2000, help="W4 transactions")
    parser.add_argument("--queries", type=int, default=1000, help="W5 queries")
    parser.add_argument("--runs", type=int, help="runs per engine (default 3; 1 with --quick)")
    parser.add_argument(
        "--quick", action="store_true", help="50 x 100 employees, 500 / 200 / 200 operations"
    )
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--only", help="comma-separated: " + ",".join(key for key, _, _ in PEERS))
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc table")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.companies, args.lookups, args.updates, args.queries = 50, 500, 200, 200
    runs = args.runs or (1 if args.quick else 3)
    engines = args.engines.split(",")
    only = args.only.split(",") if args.only else None
    unknown = [e for e in engines if e not in ("sqlite", "postgresql")] + [
        k for k in only or [] if k not in {key for key, _, _ in PEERS}
    ]
    if unknown:
        parser.error(f"unknown engine or library: {', '.join(unknown)}")

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped: wide enough for one line per row
    data = Dataset.build(args.companies, args.per_company, args.lookups, args.updates, args.queries)
    peers, import_notes = load_peers(only)
    all_results = []
    started = time.perf_counter()
    try:
        for engine in engines:
            results = EngineResults(engine, titles(data))
            for note in import_notes:
                results.note(note)
            for run in range(runs):
                with scratch(engine, args.postgres_url) as target:
                    with_memory = run == 0 and not args.no_memory
                    run_once(target, run, peers, data, results, console, with_memory)
            all_results.append(results)
    except CheckFailed as exc:
        console.print(f"[bold red]CHECK FAILED, run aborted:[/bold red] {exc}")
        return 1
    text = render(all_results, [peer.name for peer in peers], runs, console)
    about = versions(engines, args.postgres_url)
    console.print(about)
    console.print(f"[dim]{time.perf_counter() - started:.0f} s in all[/dim]")
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        args.markdown.write_text(f"Run on {stamp}: {about}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
