"""The SQLAlchemy Core and raw-driver contenders of benchmarks/bench.py.

Each function does, on its own tables (``core_*``, ``raw_*``), what claystore does in the
matching scenario: same rows, same number of round trips where the scenario fixes them.
Raw driver: sqlite3 ``executemany`` on SQLite; psycopg ``COPY`` for bulk loads and
``executemany`` otherwise on PostgreSQL.  Also the scratch PostgreSQL database every benchmark
program runs in (:func:`scratch_postgres`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url


@contextlib.contextmanager
def scratch_postgres(postgres_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database named ``<prefix>_<random>`` on the server of
    ``postgres_url``, dropped (connections and all) when the block ends."""
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


metadata = sa.MetaData()
core_company = sa.Table(
    "core_company",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("dc_class", sa.String(200)),
    sa.Column("dc_version", sa.BigInteger),
    sa.Column("name", sa.String),
)
core_employee = sa.Table(
    "core_employee",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("dc_class", sa.String(200)),
    sa.Column("dc_version", sa.BigInteger),
    sa.Column("name", sa.String),
    sa.Column("salary", sa.Double),
)
core_link = sa.Table(
    "core_company_employees",
    metadata,
    sa.Column("owner_id", sa.Uuid, sa.ForeignKey("core_company.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("target_id", sa.Uuid, index=True),
)
core_registry = sa.Table(  # claystore writes one registry row per object: so do the others
    "core_object",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("class_name", sa.String(200), nullable=False),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("backend_id", sa.Uuid, nullable=False),
)
core_counter = sa.Table(
    "core_counter",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("count", sa.BigInteger),
)
RAW_DDL = [
    "CREATE TABLE raw_company (id {uuid} PRIMARY KEY, dc_class VARCHAR(200),"
    " dc_version BIGINT, name VARCHAR)",
    "CREATE TABLE raw_employee (id {uuid} PRIMARY KEY, dc_class VARCHAR(200),"
    " dc_version BIGINT, name VARCHAR, salary DOUBLE PRECISION)",
    "CREATE TABLE raw_company_employees (owner_id {uuid} REFERENCES raw_company(id),"
    " position INTEGER, target_id {uuid}, PRIMARY KEY (owner_id, position))",
    "CREATE INDEX ix_raw_link_target ON raw_company_employees (target_id)",
    "CREATE TABLE raw_object (id {uuid} PRIMARY KEY, class_name VARCHAR(200) NOT NULL,"
    " dataset VARCHAR(200) NOT NULL, backend_id {uuid} NOT NULL)",
    "CREATE TABLE raw_counter (id INTEGER PRIMARY KEY, count BIGINT)",
]


def is_pg(engine: sa.engine.Engine) -> bool:
    return engine.dialect.name == "postgresql"


def create_tables(engine: sa.engine.Engine) -> None:
    metadata.create_all(engine)
    with engine.begin() as conn:
        for ddl in RAW_DDL:
            conn.exec_driver_sql(ddl.format(uuid="UUID" if is_pg(engine) else "CHAR(32)"))
        conn.execute(sa.insert(core_counter), {"id": 1, "count": 0})
        conn.exec_driver_sql("INSERT INTO raw_counter (id, count) VALUES (1, 0)")


def graph_rows(companies: int, per_company: int) -> dict[str, list[dict[str, Any]]]:
    """The rows claystore writes for the graph: companies, employees, link rows, and one
    registry row per object."""
    company_rows, employee_rows, link_rows, registry_rows = [], [], [], []
    backend = uuid.uuid4()
    for c in range(companies):
        company_id = uuid.uuid4()
        registry_rows.append(
            {"id": company_id, "class_name": "company", "dataset": "default", "backend_id": backend}
        )
        company_rows.append(
            {"id": company_id, "dc_class": "company", "dc_version": 1, "name": f"C{c}"}
        )
        for i in range(per_company):
            employee_id = uuid.uuid4()
            employee_rows.append(
                {
                    "id": employee_id,
                    "dc_class": "employee",
                    "dc_version": 1,
                    "name": f"E{c}-{i}",
                    "salary": float(i),
                }
            )
            link_rows.append({"owner_id": company_id, "position": i, "target_id": employee_id})
            registry_rows.append(
                {
                    "id": employee_id,
                    "class_name": "employee",
                    "dataset": "default",
                    "backend_id": backend,
                }
            )
    return {
        "registry": registry_rows,
        "company": company_rows,
        "employee": employee_rows,
        "link": link_rows,
    }


def core_insert(engine: sa.engine.Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(core_registry), rows["registry"])
        conn.execute(sa.insert(core_company), rows["company"])
        conn.execute(sa.insert(core_employee), rows["employee"])
        conn.execute(sa.insert(core_link), rows["link"])


def _driver(engine: sa.engine.Engine) -> Any:
    """A DBAPI connection of the benchmark's engine (same pragmas/settings as the others).

    On SQLite it runs in the driver's autocommit mode (claystore emits BEGIN itself), so each
    raw contender opens its transactions explicitly where the scenario has one.
    """
    return engine.raw_connection()


def raw_insert(engine: sa.engine.Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    raw = _driver(engine)
    try:
        cursor = raw.cursor()
        if is_pg(engine):
            for table, key in (
                ("raw_object", "registry"),
                ("raw_company", "company"),
                ("raw_employee", "employee"),
                ("raw_company_employees", "link"),
            ):
                columns = list(rows[key][0])
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows[key]:
                        copy.write_row(tuple(row.values()))
        else:
            cursor.execute("BEGIN")  # claystore's engine leaves transactions to the caller
            cursor.executemany(
                "INSERT INTO raw_object VALUES (?, ?, ?, ?)",
                [
                    (r["id"].hex, r["class_name"], r["dataset"], r["backend_id"].hex)
                    for r in rows["registry"]
                ],
            )
            cursor.executemany(
                "INSERT INTO raw_company VALUES (?, ?, ?, ?)",
                [(r["id"].hex, r["dc_class"], r["dc_version"], r["name"]) for r in rows["company"]],
            )
            cursor.executemany(
                "INSERT INTO raw_employee VALUES (?, ?, ?, ?, ?)",
                [
                    (r["id"].hex, r["dc_class"], r["dc_version"], r["name"], r["salary"])
                    for r in rows["employee"]
                ],
            )
            cursor.executemany(
                "INSERT INTO raw_company_employees VALUES (?, ?, ?)",
                [(r["owner_id"].hex, r["position"], r["target_id"].hex) for r in rows["link"]],
            )
        raw.commit()
    finally:
        raw.close()


def count(engine: sa.engine.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


def some_ids(engine: sa.engine.Engine, table: str, n: int) -> list[Any]:
    with engine.connect() as conn:
        ids = (
            conn.execute(sa.text(f"SELECT id FROM {table} ORDER BY id LIMIT :n"), {"n": n})
            .scalars()
            .all()
        )
    return [i if isinstance(i, uuid.UUID) else uuid.UUID(i) for i in ids]


def core_load(engine: sa.engine.Engine) -> int:
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=1000).execute(sa.select(core_employee))
        return sum(1 for row in result if row.name)


def raw_load(engine: sa.engine.Engine) -> int:
    raw = _driver(engine)
    try:
        cursor = raw.driver_connection.cursor(name="stream") if is_pg(engine) else raw.cursor()
        cursor.execute("SELECT id, dc_class, dc_version, name, salary FROM raw_employee")
        total = 0
        while rows := cursor.fetchmany(1000):
            total += sum(1 for row in rows if row[3])
        raw.rollback()
        return total
    finally:
        raw.close()


def core_lookups(engine: sa.engine.Engine, ids: list[Any]) -> None:
    statement = sa.select(core_employee).where(core_employee.c.id == sa.bindparam("id"))
    with engine.connect() as conn:
        for object_id in ids:
            conn.execute(statement, {"id": object_id}).one()
            conn.commit()


def raw_lookups(engine: sa.engine.Engine, ids: list[Any]) -> None:
    raw = _driver(engine)
    try:
        cursor = raw.cursor()
        sql = (
            "SELECT * FROM raw_employee WHERE id = %s"
            if is_pg(engine)
            else "SELECT * FROM raw_employee WHERE id = ?"
        )
        for object_id in ids:
            cursor.execute(sql, (object_id if is_pg(engine) else object_id.hex,))
            cursor.fetchone()
            raw.commit()
    finally:
        raw.close()


def core_read_write(engine: sa.engine.Engine, n: int) -> None:
    with engine.connect() as conn:
        target = conn.execute(sa.select(core_employee.c.id).limit(1)).scalar_one()
        conn.commit()
        for i in range(n):
            conn.execute(
                sa.update(core_employee).where(core_employee.c.id == target).values(salary=float(i))
            )
            conn.commit()
            conn.execute(
                sa.select(core_employee.c.salary).where(core_employee.c.id == target)
            ).scalar_one()
            conn.commit()


def raw_read_write(engine: sa.engine.Engine, n: int) -> None:
    raw = _driver(engine)
    pg = is_pg(engine)
    mark = "%s" if pg else "?"
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT id FROM raw_employee LIMIT 1")
        target = cursor.fetchone()[0]
        for i in range(n):
            cursor.execute(
                f"UPDATE raw_employee SET salary = {mark} WHERE id = {mark}", (float(i), target)
            )
            raw.commit()
            cursor.execute(f"SELECT salary FROM raw_employee WHERE id = {mark}", (target,))
            cursor.fetchone()
            raw.commit()
    finally:
        raw.close()


def core_increments(engine: sa.engine.Engine, n: int) -> None:
    for _ in range(n):
        with engine.begin() as conn:
            statement = sa.select(core_counter.c.count).where(core_counter.c.id == 1)
            if is_pg(engine):
                statement = statement.with_for_update()
            value = conn.execute(statement).scalar_one()
            conn.execute(
                sa.update(core_counter).where(core_counter.c.id == 1).values(count=value + 1)
            )


def raw_increments(engine: sa.engine.Engine, n: int) -> None:
    raw = _driver(engine)
    pg = is_pg(engine)
    try:
        cursor = raw.cursor()
        for _ in range(n):
            if pg:
                cursor.execute("SELECT count FROM raw_counter WHERE id = 1 FOR UPDATE")
            else:
                raw.driver_connection.isolation_level = None
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute("SELECT count FROM raw_counter WHERE id = 1")
            value = cursor.fetchone()[0]
            cursor.execute(
                "UPDATE raw_counter SET count = %s WHERE id = 1"
                if pg
                else "UPDATE raw_counter SET count = ? WHERE id = 1",
                (value + 1,),
            )
            if pg:
                raw.commit()
            else:
                cursor.execute("COMMIT")
    finally:
        raw.close()


def core_bulk_update(engine: sa.engine.Engine, n: int) -> None:
    with engine.begin() as conn:
        rows = conn.execute(sa.select(core_employee.c.id, core_employee.c.salary).limit(n)).all()
        conn.execute(
            sa.update(core_employee)
            .where(core_employee.c.id == sa.bindparam("b_id"))
            .values(salary=sa.bindparam("b_salary"), dc_version=core_employee.c.dc_version + 1),
            [{"b_id": r.id, "b_salary": r.salary + 1} for r in rows],
        )


def raw_bulk_update(engine: sa.engine.Engine, n: int) -> None:
    raw = _driver(engine)
    pg = is_pg(engine)
    mark = "%s" if pg else "?"
    try:
        cursor = raw.cursor()
        if not pg:
            cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(f"SELECT id, salary FROM raw_employee LIMIT {int(n)}")
        rows = cursor.fetchall()
        cursor.executemany(
            f"UPDATE raw_employee SET salary = {mark}, dc_version = dc_version + 1"
            f" WHERE id = {mark}",
            [(salary + 1, object_id) for object_id, salary in rows],
        )
        raw.commit()
    finally:
        raw.close()
