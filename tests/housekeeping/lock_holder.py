"""The second process of the lock tests: ``python -m tests.housekeeping.lock_holder URL TABLE
[--spill] [--rollback-journal]``.

It opens a raw connection (no claystore: a hung client of any kind), begins a write
transaction (SQLite: ``BEGIN IMMEDIATE``), adds 100 to the ``counter`` column of every row of
``TABLE``, prints ``locked`` and sleeps until it is killed.  PostgreSQL connections are named
:data:`APPLICATION_NAME`.

``--spill`` (SQLite): also writes 2 MB into the ``note`` column with a page cache of two pages,
so that the uncommitted pages spill into the ``-wal`` file (or the database file, in rollback
mode) before the process is killed.  ``--rollback-journal`` (SQLite): the database is put in
rollback-journal mode (``DELETE``) first.
"""

from __future__ import annotations

import argparse
import sqlite3
import time

import sqlalchemy as sa
from sqlalchemy.engine import make_url

APPLICATION_NAME = "claystore-test-lock-holder"
SPILL = "x" * 2_000_000


def main() -> None:
    """Hold the lock (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("table")
    parser.add_argument("--spill", action="store_true")
    parser.add_argument("--rollback-journal", action="store_true")
    args = parser.parse_args()
    url = make_url(args.url)
    update = f'UPDATE "{args.table}" SET counter = counter + 100'
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), isolation_level=None)
        if args.rollback_journal:
            conn.execute("PRAGMA journal_mode = DELETE")
        if args.spill:
            conn.execute("PRAGMA cache_size = 2")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(update)
        if args.spill:
            conn.execute(f'UPDATE "{args.table}" SET note = ?', (SPILL,))
    else:
        engine = sa.create_engine(url, connect_args={"application_name": APPLICATION_NAME})
        held = engine.connect()
        held.begin()
        held.exec_driver_sql(update)
    print("locked", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
