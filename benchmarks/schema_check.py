"""How long the schema check at start takes: 50 model classes, their tables already there.

    python benchmarks/schema_check.py                 # SQLite and PostgreSQL
    python benchmarks/schema_check.py --classes 200 --engines sqlite

Each class has ten fields (scalars, an Indexed() field, a reference, a list of references: a
link table), so 50 classes are 100 tables.  The tables are created once; then, side by side in
one run: SQLAlchemy reflecting the same tables (``MetaData.reflect``: what any check must at
least read), claystore's comparison alone (``claystore.orm.schema.compare``), and a whole
``Client.start()`` on the existing tables (system tables, the check, the engine).  Median of 5;
the targets are under 100 ms on SQLite and under 300 ms on PostgreSQL.  Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from claystore import Client
from claystore.orm import mapping, schema

FIELDS = """
    name: str = ""
    code: Annotated[str, Indexed()] = ""
    count: int = 0
    amount: float = 0.0
    price: Decimal = Decimal(0)
    when: datetime | None = None
    tags: list[str] = []
    active: bool = True
    parent: {cls} | None = None
    children: list[{cls}] = []
"""


def define(classes: int) -> list[sa.Table]:
    """Define ``classes`` model classes; return their tables."""
    source = [
        "from __future__ import annotations",
        "from datetime import datetime",
        "from decimal import Decimal",
        "from typing import Annotated",
        "from claystore import DataClayObject, Indexed",
    ]
    for n in range(classes):
        name = f"SchemaBench{n}"
        source.append(f"class {name}(DataClayObject):" + FIELDS.format(cls=name))
    module = types.ModuleType("schema_bench_models")
    sys.modules[module.__name__] = module
    exec("\n".join(source), module.__dict__)
    return [t for t in mapping.metadata.sorted_tables if t.name.startswith("schema_bench")]


def median_ms(func: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@contextmanager
def database(engine_name: str, postgres_url: str) -> Iterator[str]:
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"claystore_schema_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run(engine_name: str, url: str, tables: list[sa.Table]) -> dict[str, float]:
    with Client(url):  # creates the tables
        pass
    engine = sa.create_engine(url)
    names = [t.name for t in tables]

    def reflect() -> None:
        with engine.connect() as conn:
            sa.MetaData().reflect(conn, only=names)

    def compare() -> None:
        with engine.connect() as conn:
            differences = schema.compare(conn, tables)
        assert differences == [], differences

    def start() -> None:
        Client(url).start().stop()

    result = {
        "SQLAlchemy reflect": median_ms(reflect),
        "claystore compare": median_ms(compare),
        "Client.start()": median_ms(start),
    }
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CLAYSTORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    tables = define(args.classes)
    console = Console()
    table = Table(title=f"schema check: {args.classes} classes, {len(tables)} tables (ms)")
    table.add_column("engine")
    for column in ("SQLAlchemy reflect", "claystore compare", "Client.start()", "compare/reflect"):
        table.add_column(column, justify="right")
    for engine_name in args.engines.split(","):
        with database(engine_name, args.postgres_url) as url:
            figures = run(engine_name, url, tables)
        ratio = figures["claystore compare"] / figures["SQLAlchemy reflect"]
        table.add_row(engine_name, *(f"{v:.1f}" for v in figures.values()), f"{ratio:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
