"""Crashes and concurrency lose nothing: processes, and a writer killed with SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from claystore import Client
from tests.models import Counter


def _increment(db_url: str, times: int) -> None:
    with Client(db_url):
        counter = Counter.get_by_alias("shared")
        for _ in range(times):
            counter.increment()


@pytest.mark.slow
def test_four_processes_times_250_increments_end_exact(db_url: str, client: Client) -> None:
    """4 processes x 250 activemethod increments of one object end at exactly 1000."""
    counter = Counter()
    counter.make_persistent("shared")
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_increment, args=(db_url, 250)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
        assert worker.exitcode == 0
    assert counter.count == 1000


WRITER = textwrap.dedent(
    """
    import sys
    from sqlalchemy import event
    from claystore import Client
    from tests.models import Node

    with Client(sys.argv[1]) as client:
        def announce(conn, cursor, statement, parameters, context, many):
            if "node" in statement and statement.startswith(("INSERT", "COPY")):
                print("writing", flush=True)  # the registry rows are already sent

        event.listen(client.engine, "before_cursor_execute", announce)
        head = node = Node(0)
        for i in range(1, 100_000):
            node.next = Node(i)
            node = node.next
        head.make_persistent("head")
        print("done", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.5])
def test_writer_killed_mid_make_persistent_leaves_all_or_nothing(
    db_url: str, tmp_path: Path, delay: float
) -> None:
    """SIGKILL while a 100,000-object make_persistent is writing: afterwards all of it, or
    none, and the next client starts and writes normally."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = Path(__file__).resolve().parents[2]  # the writer imports this checkout's claystore
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    writer = subprocess.Popen(
        [sys.executable, str(script), db_url], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "writing"
    time.sleep(delay)
    writer.send_signal(signal.SIGKILL)
    writer.wait(30)
    with Client(db_url) as client, client.engine.connect() as conn:  # starts cleanly
        nodes = conn.execute(sa.text("SELECT count(*) FROM node")).scalar_one()
        registered = conn.execute(sa.text("SELECT count(*) FROM dc_object")).scalar_one()
        aliases = conn.execute(sa.text("SELECT count(*) FROM dc_alias")).scalar_one()
    assert (nodes, registered, aliases) in {(0, 0, 0), (100_000, 100_000, 1)}
    with Client(db_url) as client:  # and a new write goes through
        Counter().make_persistent("after-crash")
        assert Counter.get_by_alias("after-crash").count == 0
