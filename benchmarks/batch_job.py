"""The batch-job pattern's memory: stream a query over 1,000,000 objects in a session that
commits every 10,000, and watch the process's resident memory (RSS).

    python benchmarks/batch_job.py                        # 1,000,000 objects, both engines
    python benchmarks/batch_job.py --objects 100000 --engines sqlite

For each engine: the objects are stored first (not measured), then a new process (so that
what storing allocated is not in its memory) starts a client and runs the loop

    with client.session() as session:
        for n, employee in enumerate(BatchEmployee.dc_query(), 1):
            employee.salary += 1.0
            if n % 10_000 == 0:
                session.commit()

runs while the RSS is sampled every 10,000 objects (``/proc/self/statm``).  Printed: the RSS
when the loop starts, the highest sample, the growth, the time, and a check that every object
was changed once.  The issue's target: the growth stays under 50 MiB.  Not a test.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from claystore import Client, DataClayObject

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contenders


class BatchEmployee(DataClayObject):
    __tablename__ = "batch_employee"
    name: str
    salary: float

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """The resident memory of this process, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def store(client: Client, count: int) -> None:
    """``count`` employees, 50,000 per transaction."""
    for start in range(0, count, 50_000):
        with client.session() as session:
            session.add_all(
                [BatchEmployee(f"e{n}", 1000.0) for n in range(start, min(count, start + 50_000))]
            )


def batch_job(client: Client, every: int) -> tuple[int, int, int, float]:
    """Run the loop; returns (objects, RSS at start, highest RSS, seconds)."""
    gc.collect()
    start_rss = peak = rss()
    started = time.perf_counter()
    n = 0
    with client.session() as session:
        for n, employee in enumerate(BatchEmployee.dc_query(), 1):
            employee.salary += 1.0
            if n % every == 0:
                session.commit()
                peak = max(peak, rss())
    peak = max(peak, rss())
    return n, start_rss, peak, time.perf_counter() - started


def loop_in_child(url: str, every: int) -> tuple[int, int, int, float]:
    """:func:`batch_job` in a new process (``--loop``), its figures read from its output."""
    command = [sys.executable, __file__, "--loop", url, "--every", str(every)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    n, start_rss, peak, seconds = done.stdout.split()
    return int(n), int(start_rss), int(peak), float(seconds)


def run(url: str, engine: str, count: int, every: int) -> list[str]:
    """One engine's row of the table."""
    with Client(url) as client:
        store(client, count)
    n, start_rss, peak, seconds = loop_in_child(url, every)
    with Client(url):
        changed = BatchEmployee.dc_query().filter("salary", "=", 1001.0).count()
    if n != count or changed != count:
        msg = f"{engine}: the loop met {n:,} objects and changed {changed:,} of {count:,}"
        raise SystemExit(msg)
    mib = 1024 * 1024
    return [
        engine,
        f"{count:,}",
        f"{start_rss / mib:.1f} MiB",
        f"{peak / mib:.1f} MiB",
        f"{(peak - start_rss) / mib:+.1f} MiB",
        f"{seconds:.1f} s ({count / seconds:,.0f}/s)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=10_000, help="commit every N objects")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test"
        ),
    )
    parser.add_argument("--loop", metavar="URL", help="(internal) run the loop on URL")
    args = parser.parse_args()
    if args.loop:
        with Client(args.loop) as client:
            n, start_rss, peak, seconds = batch_job(client, args.every)
        print(n, start_rss, peak, seconds)
        return
    table = Table(title=f"batch job: stream, change, commit every {args.every:,}")
    for column in ("engine", "objects", "RSS at start", "highest RSS", "growth", "time"):
        table.add_column(column, justify="right")
    for engine in args.engines.split(","):
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{folder}/batch.db"
                table.add_row(*run(url, engine, args.objects, args.every))
        else:
            with contenders.scratch_postgres(args.postgres_url, "claystore_batch") as url:
                table.add_row(*run(url, engine, args.objects, args.every))
    Console().print(table)


if __name__ == "__main__":
    main()
