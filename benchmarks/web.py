"""claystore's async web path against SQLAlchemy's asyncio ORM: the deposit endpoint of
examples/fastapi_app.py under concurrent clients, and the cost of one statement in an async
session.

    python benchmarks/web.py                                  # SQLite and PostgreSQL
    python benchmarks/web.py --engine sqlite --requests 1000  # quicker
    python benchmarks/web.py --engine postgresql --clients 50 --accounts 100
    python benchmarks/web.py --runs 2      # two runs per engine, each led by the other contender

The default run takes about 2 minutes on 2 cores; benchmarks/RESULTS.md ("Issue 17") has figures.

Contenders (both FastAPI apps, driven in-process by ``httpx.AsyncClient`` over
``httpx.ASGITransport``: no server, no sockets between client and app):

- **claystore**: ``create_app(client)`` of examples/fastapi_app.py, unchanged.  Each request
  runs in its own async session (``ASGISessionMiddleware``: a worker thread leased per session,
  the statements run there on the client's blocking engine); ``POST /accounts/{name}/deposits``
  looks the account up by its alias and calls its ``a_deposit`` activemethod (the row locked
  with ``SELECT ... FOR UPDATE`` on PostgreSQL, the transaction begun with ``BEGIN IMMEDIATE``
  on SQLite; a savepoint around the method), then commits before the response.
- **SQLAlchemy asyncio**: the same endpoint written as SQLAlchemy's asyncio documentation
  shows it: ``create_async_engine`` (``postgresql+psycopg://``: psycopg 3's AsyncConnection;
  ``sqlite+aiosqlite:///file``), ``async_sessionmaker(expire_on_commit=False)``, an
  ``AsyncSession`` dependency, a mapped ``SAAccount(id, name unique, balance)``; the handler
  selects the account by name ``with_for_update()``, adds the amount and commits.  On SQLite
  the connections get claystore's pragmas (WAL, ``busy_timeout`` of claystore's 60 s lock
  timeout, ``synchronous=NORMAL``, foreign keys) and every transaction begins with
  ``BEGIN IMMEDIATE`` (SQLAlchemy's documented event recipe for pysqlite/aiosqlite: the driver's
  own BEGIN switched off) -- without it concurrent deposits fail with "database is locked".

Both get the same connection pool: ``pool_size=32, max_overflow=0`` (the 32 connections
claystore's default of 8 + 24 overflow allows, kept open: with 50 clients an overflow pool
closes and reopens a few connections per hundred requests, for either contender;
``--pool-size``/``--max-overflow`` change both).  Both apps take the same JSON body
(``{"amount": n}``, validated by the example's pydantic model) and answer ``{name, balance}``.
A third app, the same endpoint without a database ("FastAPI alone"), shows what the framework
and the load driver cost by themselves.

Web rows: ``--clients`` asyncio tasks (default 50) send deposits in a loop until ``--requests``
(default 2,000) are done, after ``--warmup`` requests (default 200, not measured), on two
distributions: every deposit on ONE account (a hot row: the lock serialises them) and spread at
random over ``--accounts`` accounts (default 100).  Shown: requests per second, claystore's
over SQLAlchemy's, the median and 99th percentile latency of a request, the CPU time of this
process per request (client, app and every thread: the database server's is not in it) with
its part in the kernel, the context switches of this process per request, and the requests
that did not answer 200.  Afterwards every account's balance is read with plain
SQL and compared with the sum of the deposits answered 200 (warm-up included): "exact", or how
many accounts are off and by how much (a lost update), which makes the program exit with 1.

Statement rows (one session, one row, sequential, no contention; microseconds per call, the
median of 3 blocks of ``--statements`` calls after a warm-up):

- a hop with no statement: claystore ``await session.run(lambda: None)`` (to the session's
  worker thread and back); SQLAlchemy ``await session.run_sync(lambda s: None)`` (a greenlet);
- a Core primary-key SELECT: claystore ``await session.run(f)`` where ``f`` executes it on a
  connection of ``client.engine`` (blocking SQLAlchemy on the worker); SQLAlchemy
  ``await conn.execute(stmt)`` on the AsyncSession's connection;
- an ORM primary-key SELECT of one row: claystore ``await session.a_refresh(account)``;
  SQLAlchemy ``await session.refresh(account)`` and ``await session.execute(select(...))``;
- for reference, the same Core SELECT and ORM select blocking, on the event loop's thread.

Each engine runs in a new database: an SQLite file in WAL mode in a temporary directory; a
PostgreSQL database created on ``--postgres-url``'s server (default
``CLAYSTORE_TEST_POSTGRES_URL`` or the local server) and dropped at the end.  Before each
measured web row a checkpoint (not measured) writes out what earlier rows left in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException
from rich.console import Console
from rich.table import Table
from sqlalchemy import BigInteger, String, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import contenders
from fastapi_app import Account, Deposit, create_app

from claystore import Client

if importlib.util.find_spec("sniffio") is None:
    # httpx's ASGITransport imports sniffio for every request; without it installed each
    # import scans sys.path again (stat calls on the loop thread, ~100 µs a request): fail at once
    sys.modules["sniffio"] = None  # type: ignore[assignment]

CLAYSTORE = "claystore"
SQLALCHEMY = "SQLAlchemy asyncio"
FLOOR = "FastAPI alone, no database"
HOT = "hot"  # the one account of the hot-row distribution
LOCK_TIMEOUT = 60.0  # claystore's default lock timeout: the SQLite busy timeout of both


# -- the SQLAlchemy asyncio contender --------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class SAAccount(Base):
    __tablename__ = "sa_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)


def sa_url(target: Target) -> str:
    """The asyncio URL of the target database."""
    if target.is_pg:
        return make_url(target.url).set(drivername="postgresql+psycopg").render_as_string(False)
    return f"sqlite+aiosqlite:///{target.path}"


def sqlite_pragmas(dbapi_connection: Any) -> None:
    """What claystore's SQLite dialect sets on each connection (dialects/sqlite.py); the driver
    emits no BEGIN of its own."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def begin_immediate(engine: sa.Engine) -> None:
    """SQLAlchemy's recipe for SQLite transactions: the driver's BEGIN off, our own on."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        sqlite_pragmas(dbapi_connection)

    @event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def sa_engine(target: Target, pool: Pool) -> AsyncEngine:
    engine = create_async_engine(
        sa_url(target), pool_size=pool.size, max_overflow=pool.overflow, pool_timeout=60
    )
    if not target.is_pg:
        begin_immediate(engine.sync_engine)
    return engine


def create_sa_app(sessions: async_sessionmaker[AsyncSession]) -> FastAPI:
    """The deposit endpoint on SQLAlchemy's asyncio ORM."""
    app = FastAPI(title="SQLAlchemy asyncio bank")

    async def session_dependency() -> Any:
        async with sessions() as session:
            yield session

    session_of_request = Depends(session_dependency, scope="function")

    @app.post("/accounts/{name}/deposits")
    async def deposit(
        name: str, deposit: Deposit, session: AsyncSession = session_of_request
    ) -> dict[str, Any]:
        query = select(SAAccount).where(SAAccount.name == name).with_for_update()
        account = (await session.execute(query)).scalar_one_or_none()
        if account is None:
            raise HTTPException(404, f"no account named {name!r}")
        account.balance += deposit.amount
        await session.commit()
        return {"name": account.name, "balance": account.balance}

    return app


def create_floor_app() -> FastAPI:
    """The same endpoint without a database: what FastAPI and the load driver cost alone."""
    app = FastAPI(title="no database")

    @app.post("/accounts/{name}/deposits")
    async def deposit(name: str, deposit: Deposit) -> dict[str, Any]:
        return {"name": name, "balance": deposit.amount}

    return app


# -- the databases -------------------------------------------------------------------------------


@dataclass
class Target:
    engine: str
    url: str  # claystore's (and the blocking SQLAlchemy engines')
    path: str = ""  # the SQLite file

    @property
    def is_pg(self) -> bool:
        return self.engine == "postgresql"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on a connection of its own (the balances check, checkpoints)."""
        if self.is_pg:
            u = make_url(self.url)
            with psycopg.connect(
                host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
            ) as conn:
                conn.autocommit = True
                cursor = conn.execute(sql)
                return list(cursor.fetchall()) if cursor.description else []
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def settle(self) -> None:
        """Write what earlier rows left in the log (not measured)."""
        self.query("CHECKPOINT" if self.is_pg else "PRAGMA wal_checkpoint(TRUNCATE)")


@dataclass
class Pool:
    size: int
    overflow: int

    def __str__(self) -> str:
        return f"pool_size={self.size}, max_overflow={self.overflow}"


@contextmanager
def scratch(engine: str, postgres_url: str) -> Iterator[Target]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="claystore_web_") as folder:
            path = f"{folder}/web.db"
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.close()
            yield Target("sqlite", f"sqlite:///{path}", path)
        return
    with contenders.scratch_postgres(postgres_url, "claystore_web") as url:
        yield Target("postgresql", url)


# -- the load --------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one row sent and got."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of this process (client, app and the threads of both)
    system_seconds: float = 0.0  # the part of it spent in the kernel
    switches: int = 0  # context switches of this process's threads
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    paid: dict[str, int] = field(default_factory=dict)  # amounts answered 200, by account

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def plan(count: int, names: list[str], rng: random.Random) -> list[tuple[str, int]]:
    """``count`` deposits (account, amount), the accounts drawn at random from ``names``."""
    return [(rng.choice(names), rng.randint(1, 9)) for _ in range(count)]


async def drive(app: Any, deposits: list[tuple[str, int]], clients: int, load: Load) -> None:
    """Send ``deposits`` from ``clients`` tasks, each taking the next one until none is left."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    pending = iter(deposits)
    async with httpx.AsyncClient(transport=transport, base_url="http://bank", timeout=None) as http:

        async def client_task() -> None:
            for name, amount in pending:
                started = time.perf_counter()
                try:
                    reply = await http.post(f"/accounts/{name}/deposits", json={"amount": amount})
                    status, text = reply.status_code, reply.text
                except Exception as exc:  # an error of the app reaching the client: counted
                    status, text = 0, f"{type(exc).__name__}: {exc}"
                load.latencies.append(time.perf_counter() - started)
                if status == 200:
                    load.paid[name] = load.paid.get(name, 0) + amount
                else:
                    load.errors += 1
                    load.first_error = load.first_error or f"{status} {text[:200]}"

        started, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*(client_task() for _ in range(clients)))
        load.seconds = time.perf_counter() - started
        end = resource.getrusage(resource.RUSAGE_SELF)
        load.system_seconds = end.ru_stime - usage.ru_stime
        load.cpu_seconds = end.ru_utime - usage.ru_utime + load.system_seconds
        load.switches = end.ru_nvcsw - usage.ru_nvcsw + end.ru_nivcsw - usage.ru_nivcsw


@dataclass
class WebRow:
    contender: str
    distribution: str
    load: Load
    balances: str


async def web_row(
    target: Target,
    contender: str,
    distribution: str,
    app: Any,
    names: list[str],
    table: str,
    args: argparse.Namespace,
    rng: random.Random,
) -> WebRow:
    """Warm up, settle the log, measure; then check the balances against what was paid."""
    if not table:  # the floor: no database
        warmup, load = Load(), Load()
        await drive(app, plan(args.warmup, names, rng), args.clients, warmup)
        await drive(app, plan(args.requests, names, rng), args.clients, load)
        return WebRow(contender, distribution, load, "")
    before = dict(target.query(f"SELECT name, balance FROM {table}"))
    warmup = Load()
    await drive(app, plan(args.warmup, names, rng), args.clients, warmup)
    target.settle()
    load = Load()
    await drive(app, plan(args.requests, names, rng), args.clients, load)
    after = dict(target.query(f"SELECT name, balance FROM {table}"))
    lost = {
        name: gap
        for name in names
        if (gap := before[name] + warmup.paid.get(name, 0) + load.paid.get(name, 0) - after[name])
    }
    load.errors += warmup.errors
    load.first_error = load.first_error or warmup.first_error
    balances = "exact" if not lost else f"{len(lost)} off by {sum(lost.values())}"
    return WebRow(contender, distribution, load, balances)


async def web_rows(
    target: Target, client: Client, args: argparse.Namespace, pool: Pool, run: int
) -> list[WebRow]:
    spread = [f"acct{i:04d}" for i in range(args.accounts)]
    names = [HOT, *spread]
    claystore_app = create_app(client)
    # the accounts are opened through the example's own endpoint
    transport = httpx.ASGITransport(app=claystore_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bank") as http:
        for name in names:
            (await http.post("/accounts", json={"name": name})).raise_for_status()

    engine = sa_engine(target, pool)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        session.add_all(SAAccount(name=name, balance=0) for name in names)
    sa_app = create_sa_app(sessions)

    apps = [(CLAYSTORE, claystore_app, "account"), (SQLALCHEMY, sa_app, "sa_account")]
    if run % 2:
        apps.reverse()  # each run starts with the other contender
    rng = random.Random(run)
    rows = [await web_row(target, FLOOR, "-", create_floor_app(), names, "", args, rng)]
    try:
        for distribution, choices in (
            ("one hot row", [HOT]),
            (f"{args.accounts} accounts", spread),
        ):
            for contender, app, table in apps:
                rows.append(
                    await web_row(target, contender, distribution, app, choices, table, args, rng)
                )
    finally:
        await engine.dispose()
    return rows


# -- statements in one session ---------------------------------------------------------------------


async def per_call(calls: int, call: Callable[[], Awaitable[Any]]) -> float:
    """Microseconds per ``await call()``: the median of 3 blocks of ``calls`` after a warm-up."""
    for _ in range(min(calls, 200)):
        await call()
    blocks = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        blocks.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(blocks)


def per_blocking_call(calls: int, call: Callable[[], Any]) -> float:
    """The same for a blocking call."""
    for _ in range(min(calls, 200)):
        call()
    blocks = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        blocks.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(blocks)


def nothing(*_: Any) -> None:
    return None


@dataclass
class MicroRow:
    operation: str
    claystore: float | None
    sqlalchemy: float | None
    note: str = ""


async def micro_rows(target: Target, client: Client, pool: Pool, calls: int) -> list[MicroRow]:
    table = Account.__table__
    async with client.a_session() as session:
        account = await Account.a_get_by_alias(HOT)
        hop = await per_call(calls, lambda: session.run(nothing))
        refresh = await per_call(calls, lambda: session.a_refresh(account))
        conn = await session.run(client.engine.connect)
        try:
            by_name = select(table.c.id).where(table.c.name == HOT)
            key = await session.run(lambda: conn.execute(by_name).scalar_one())
            core_stmt = select(table.c.id, table.c.name, table.c.balance).where(table.c.id == key)
            core = await per_call(calls, lambda: session.run(lambda: conn.execute(core_stmt).one()))
        finally:
            await session.run(conn.close)

    engine = sa_engine(target, pool)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as s:
            sa_account = (
                await s.execute(select(SAAccount).where(SAAccount.name == HOT))
            ).scalar_one()
            by_id = select(SAAccount).where(SAAccount.id == sa_account.id)
            sa_hop = await per_call(calls, lambda: s.run_sync(nothing))
            sa_refresh = await per_call(calls, lambda: s.refresh(sa_account))

            async def orm_select() -> None:
                (await s.execute(by_id)).scalar_one()

            sa_select = await per_call(calls, orm_select)
            aconn = await s.connection()
            sa_table = SAAccount.__table__
            sa_core_stmt = select(sa_table.c.id, sa_table.c.name, sa_table.c.balance).where(
                sa_table.c.id == sa_account.id
            )

            async def core_select() -> None:
                (await aconn.execute(sa_core_stmt)).one()

            sa_core = await per_call(calls, core_select)
            await s.rollback()
    finally:
        await engine.dispose()

    # blocking references, on the loop's thread (nothing else runs now)
    blocking = client.engine.connect()
    try:
        sync_core = per_blocking_call(calls, lambda: blocking.execute(core_stmt).one())
    finally:
        blocking.close()
    sync_engine = sa.create_engine(target.url)
    if not target.is_pg:
        begin_immediate(sync_engine)
    try:
        with Session(sync_engine) as s:
            sid = s.execute(select(SAAccount.id).where(SAAccount.name == HOT)).scalar_one()
            sync_by_id = select(SAAccount).where(SAAccount.id == sid)
            sync_orm = per_blocking_call(calls, lambda: s.execute(sync_by_id).scalar_one())
    finally:
        sync_engine.dispose()

    return [
        MicroRow(
            "hop, no statement", hop, sa_hop, "await session.run(f) / await session.run_sync(f)"
        ),
        MicroRow(
            "Core primary-key SELECT",
            core,
            sa_core,
            "session.run(f): conn.execute on client.engine / await conn.execute",
        ),
        MicroRow("refresh one object (1 SELECT)", refresh, sa_refresh, "a_refresh / refresh"),
        MicroRow("ORM select by primary key", None, sa_select, "await session.execute(select())"),
        MicroRow("blocking Core SELECT, no async", sync_core, None, "client.engine conn.execute"),
        MicroRow("blocking ORM select, no async", None, sync_orm, "Session(engine).execute"),
    ]


# -- one engine ------------------------------------------------------------------------------------


@dataclass
class EngineResults:
    engine: str
    web: list[list[WebRow]] = field(default_factory=list)  # per run
    micro: list[MicroRow] = field(default_factory=list)  # the first run's


async def run_engine(
    target: Target, client: Client, args: argparse.Namespace, pool: Pool, run: int
) -> tuple[list[WebRow], list[MicroRow]]:
    rows = await web_rows(target, client, args, pool, run)
    micro = await micro_rows(target, client, pool, args.statements) if args.statements else []
    return rows, micro


def measure_engine(
    engine: str, args: argparse.Namespace, pool: Pool, console: Console
) -> EngineResults:
    results = EngineResults(engine)
    for run in range(args.runs):
        console.print(f"[dim]{engine} run {run + 1} of {args.runs} ...[/dim]")
        with scratch(engine, args.postgres_url) as target:
            options = {"pool_size": pool.size, "max_overflow": pool.overflow, "pool_timeout": 60}
            with Client(target.url, engine_options=options) as client:
                rows, micro = asyncio.run(run_engine(target, client, args, pool, run))
        results.web.append(rows)
        if not results.micro:
            results.micro = micro
    return results


# -- report ----------------------------------------------------------------------------------------


def web_table(results: EngineResults, run: int, args: argparse.Namespace) -> Table:
    rows = results.web[run]
    table = Table(
        title=(
            f"{results.engine}, run {run + 1}: {args.requests:,} deposits from {args.clients}"
            f" concurrent clients"
        )
    )
    columns = ("distribution", "contender", "req/s", "claystore / SA", "p50 ms", "p99 ms")
    for column in (*columns, "CPU µs/req (kernel)", "switches/req"):
        table.add_column(
            column, justify="left" if column in ("distribution", "contender") else "right"
        )
    table.add_column("errors", justify="right")
    table.add_column("balances")
    rates = {(row.distribution, row.contender): row.load.rate for row in rows}
    order = {CLAYSTORE: 0, SQLALCHEMY: 1, FLOOR: 2}
    for row in sorted(
        rows,
        key=lambda r: (
            order[r.contender] == 2,
            r.distribution != "one hot row",
            order[r.contender],
        ),
    ):
        other = rates.get((row.distribution, SQLALCHEMY))
        ratio = f"x{row.load.rate / other:.2f}" if row.contender == CLAYSTORE and other else ""
        count, kernel = max(1, len(row.load.latencies)), row.load.system_seconds
        table.add_row(
            row.distribution,
            row.contender,
            f"{row.load.rate:,.0f}",
            ratio,
            f"{row.load.percentile(0.50) * 1e3:.1f}",
            f"{row.load.percentile(0.99) * 1e3:.1f}",
            f"{row.load.cpu_seconds / count * 1e6:,.0f} ({kernel / count * 1e6:,.0f})",
            f"{row.load.switches / count:,.1f}",
            str(row.load.errors),
            row.balances,
        )
    return table


def micro_table(results: EngineResults, calls: int) -> Table:
    table = Table(title=f"{results.engine}: one call in one session, µs (median of 3 x {calls:,})")
    table.add_column("operation")
    table.add_column(CLAYSTORE, justify="right")
    table.add_column(SQLALCHEMY, justify="right")
    table.add_column("claystore / SA", justify="right")
    table.add_column("how")
    for row in results.micro:
        ratio = (
            f"x{row.claystore / row.sqlalchemy:.2f}"
            if row.claystore is not None and row.sqlalchemy
            else ""
        )
        table.add_row(
            row.operation,
            "" if row.claystore is None else f"{row.claystore:,.1f}",
            "" if row.sqlalchemy is None else f"{row.sqlalchemy:,.1f}",
            ratio,
            row.note,
        )
    return table


def versions() -> str:
    names = ("sqlalchemy", "fastapi", "httpx", "psycopg", "aiosqlite")
    found = ", ".join(f"{name} {metadata.version(name)}" for name in names)
    return (
        f"Python {platform.python_version()}, {found}, SQLite {sqlite3.sqlite_version},"
        f" {os.cpu_count()} CPUs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=2000, help="measured deposits per row")
    parser.add_argument("--warmup", type=int, default=200, help="deposits before each row")
    parser.add_argument("--clients", type=int, default=50, help="concurrent client tasks")
    parser.add_argument("--accounts", type=int, default=100, help="accounts of the spread rows")
    parser.add_argument("--statements", type=int, default=2000, help="calls per statement block")
    parser.add_argument("--runs", type=int, default=1, help="runs per engine, each a new database")
    parser.add_argument("--pool-size", type=int, default=32, help="of both contenders")
    parser.add_argument("--max-overflow", type=int, default=0, help="of both contenders")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    pool = Pool(args.pool_size, args.max_overflow)
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(versions())
    console.print(
        f"both contenders: {pool}; {args.clients} client tasks, {args.warmup} warm-up"
        f" deposits before each row"
    )
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    exact = True
    for engine in engines:
        started = time.perf_counter()
        results = measure_engine(engine, args, pool, console)
        for run in range(args.runs):
            console.print(web_table(results, run, args))
            for row in results.web[run]:
                exact = exact and row.balances in ("exact", "")
                if row.load.first_error:
                    where = f"{row.contender}, {row.distribution}"
                    console.print(f"  {where}: first error: {row.load.first_error}")
        if results.micro:
            console.print(micro_table(results, args.statements))
        console.print(f"[dim]{engine}: {time.perf_counter() - started:.0f} s[/dim]")
    if not exact:
        console.print("[bold red]a balance does not add up: an update was lost[/bold red]")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
