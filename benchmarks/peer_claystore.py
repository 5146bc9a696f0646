"""The raw driver and claystore, as peers of benchmarks/peers.py (see peer_base.Peer).

Raw driver: sqlite3 on SQLite, psycopg 3 on PostgreSQL, on a connection in autocommit mode
with explicit transactions (``BEGIN`` / ``BEGIN IMMEDIATE`` on SQLite, ``conn.transaction()``
on PostgreSQL).  W1 inserts each company with ``RETURNING id`` and then every employee with one
``executemany``; on PostgreSQL a second row, "raw driver COPY", sends the employees with
``COPY ... FROM STDIN`` instead.  claystore: the model classes of its README, a ``Client`` per
run, the natural code outside a session and the same inside ``client.session()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from peer_base import Dataset, Peer, PersistRow, Row, Tables, Target, Timer

from claystore import Client, DataClayObject, Indexed, activemethod

# -- the raw driver --------------------------------------------------------------------------------

RAW_TABLES = Tables("raw_company", "raw_employee", "raw_employee", "company_id")


class RawPeer(Peer):
    """Hand-written SQL on the DBAPI driver, building the tuples the driver returns."""

    key = "raw"
    name = "raw driver"
    tables = RAW_TABLES

    def open(self, target: Target) -> None:
        super().open(target)
        self.conn = target.connect()
        serial = "SERIAL PRIMARY KEY" if target.is_pg else "INTEGER PRIMARY KEY"
        for ddl in (
            f"CREATE TABLE raw_company (id {serial}, name TEXT NOT NULL)",
            f"CREATE TABLE raw_employee (id {serial}, name TEXT NOT NULL,"
            " salary DOUBLE PRECISION NOT NULL,"
            " company_id INTEGER NOT NULL REFERENCES raw_company (id))",
            "CREATE INDEX ix_raw_employee_salary ON raw_employee (salary)",
            "CREATE INDEX ix_raw_employee_company_id ON raw_employee (company_id)",
        ):
            self.conn.execute(ddl)

    def close(self) -> None:
        self.conn.close()

    def persist_rows(self) -> list[PersistRow]:
        rows: list[PersistRow] = [(self.name, self.persist, self.tables)]
        if self.target.is_pg:
            rows.insert(0, ("raw driver COPY", self.persist_copy, self.tables))
        return rows

    def _begin(self, immediate: bool = False) -> Any:
        """BEGIN (IMMEDIATE) on SQLite; psycopg's transaction block on PostgreSQL."""
        if self.target.is_pg:
            return self.conn.transaction()
        return _SQLiteTransaction(self.conn, immediate)

    def _insert_companies(self, cursor: Any, data: Dataset) -> list[Any]:
        """Each company's id, from one INSERT each (the employees need them)."""
        ids = []
        for name, _ in data.companies:
            if self.target.is_pg:
                cursor.execute("INSERT INTO raw_company (name) VALUES (%s) RETURNING id", (name,))
                ids.append(cursor.fetchone()[0])
            else:
                cursor.execute("INSERT INTO raw_company (name) VALUES (?)", (name,))
                ids.append(cursor.lastrowid)
        return ids

    def persist(self, data: Dataset, timer: Timer) -> None:
        m = self.target.mark
        with timer(), self._begin():
            cursor = self.conn.cursor()
            ids = self._insert_companies(cursor, data)
            rows = [
                (name, salary, company_id)
                for company_id, (_, employees) in zip(ids, data.companies, strict=True)
                for name, salary in employees
            ]
            cursor.executemany(
                f"INSERT INTO raw_employee (name, salary, company_id) VALUES ({m}, {m}, {m})", rows
            )

    def persist_copy(self, data: Dataset, timer: Timer) -> None:
        with timer(), self._begin():
            cursor = self.conn.cursor()
            ids = self._insert_companies(cursor, data)
            with cursor.copy("COPY raw_employee (name, salary, company_id) FROM STDIN") as copy:
                for company_id, (_, employees) in zip(ids, data.companies, strict=True):
                    for name, salary in employees:
                        copy.write_row((name, salary, company_id))

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer():
            cursor = self.conn.cursor()
            cursor.execute("SELECT id, name, salary FROM raw_employee")
            for _id, _name, salary in cursor:
                count += 1
                total += salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        sql = f"SELECT id, name, salary FROM raw_employee WHERE id = {self.target.mark}"
        total = 0.0
        with timer():
            cursor = self.conn.cursor()
            for object_id in ids:
                cursor.execute(sql, (object_id,))
                total += cursor.fetchone()[2]
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        m = self.target.mark
        lock = " FOR UPDATE" if self.target.is_pg else ""  # SQLite: BEGIN IMMEDIATE
        select = f"SELECT salary FROM raw_employee WHERE id = {m}{lock}"
        update = f"UPDATE raw_employee SET salary = {m} WHERE id = {m}"
        with timer():
            cursor = self.conn.cursor()
            for object_id in ids:
                with self._begin(immediate=True):
                    cursor.execute(select, (object_id,))
                    salary = cursor.fetchone()[0]
                    cursor.execute(update, (salary + 1.0, object_id))

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        sql = (
            "SELECT id, name, salary FROM raw_employee"
            f" WHERE salary > {self.target.mark} ORDER BY salary LIMIT 10"
        )
        count, total = 0, 0.0
        with timer():
            cursor = self.conn.cursor()
            for x in thresholds:
                cursor.execute(sql, (x,))
                for _id, _name, salary in cursor.fetchall():
                    count += 1
                    total += salary
        return count, total


class _SQLiteTransaction:
    """``BEGIN [IMMEDIATE]`` ... ``COMMIT`` (``ROLLBACK`` on error) on an sqlite3 connection in
    autocommit mode."""

    def __init__(self, conn: Any, immediate: bool) -> None:
        self.conn, self.immediate = conn, immediate

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE" if self.immediate else "BEGIN")

    def __exit__(self, kind: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if kind else "COMMIT")


# -- claystore -------------------------------------------------------------------------------------


class Employee(DataClayObject):
    __tablename__ = "cs_employee"
    name: str
    salary: Annotated[float, Indexed()]

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary

    @activemethod
    def raise_salary(self, amount: float) -> None:
        self.salary += amount


class Company(DataClayObject):
    __tablename__ = "cs_company"
    name: str
    employees: list[Employee]

    def __init__(self, name: str, employees: list[Employee]) -> None:
        self.name = name
        self.employees = employees


class BulkEmployee(DataClayObject):  # the same two classes for the bulk row, on tables of their own
    __tablename__ = "cs_bulk_employee"
    name: str
    salary: Annotated[float, Indexed()]

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary


class BulkCompany(DataClayObject):
    __tablename__ = "cs_bulk_company"
    name: str
    employees: list[BulkEmployee]

    def __init__(self, name: str, employees: list[BulkEmployee]) -> None:
        self.name = name
        self.employees = employees


class ClaystorePeer(Peer):
    """claystore as its README shows it: ``make_persistent`` in a session (bulk row:
    ``session.add_all``), class queries, ``get_by_id``, an activemethod for the locked
    read-modify-write.  Rows named "claystore" run outside any session (autocommit: each
    attribute read is a committed read); "claystore session" rows run the same code inside
    ``with client.session():``."""

    key = "claystore"
    name = "claystore"
    tables = Tables("cs_company", "cs_employee", "cs_company_employees", "owner_id")
    bulk_tables = Tables(
        "cs_bulk_company", "cs_bulk_employee", "cs_bulk_company_employees", "owner_id"
    )

    def open(self, target: Target) -> None:
        super().open(target)
        self.client = Client(target.url)
        self.client.start()

    def close(self) -> None:
        self.client.stop()

    def rows(self, workload: str) -> list[Row]:
        rows: list[Row] = [(self.name, getattr(self, workload))]
        if workload in ("iterate", "lookups", "top10"):
            rows.append((f"{self.name} session", self._in_session(getattr(self, workload))))
        return rows

    def _in_session(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """``method`` run inside one ``client.session()``, measured with it."""

        def run(*args: Any) -> Any:
            timer: Timer = args[-1]
            outer = Timer()
            with outer(), self.client.session():
                result = method(*args[:-1], Timer(collect=False))
            timer.seconds = outer.seconds
            return result

        return run

    def persist(self, data: Dataset, timer: Timer) -> None:
        with timer(), self.client.session():
            for name, employees in data.companies:
                Company(name, [Employee(n, s) for n, s in employees]).make_persistent()

    def persist_bulk(self, data: Dataset, timer: Timer) -> None:
        with timer(), self.client.session() as session:
            session.add_all(
                [
                    BulkCompany(name, [BulkEmployee(n, s) for n, s in employees])
                    for name, employees in data.companies
                ]
            )

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer():
            for employee in Employee.dc_query():
                count += 1
                total += employee.salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        total = 0.0
        with timer():
            for object_id in ids:
                total += Employee.get_by_id(object_id).salary
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        employees = [Employee.get_by_id(object_id) for object_id in ids]  # loaded, not measured
        with timer():
            for employee in employees:
                employee.raise_salary(1.0)

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer():
            for x in thresholds:
                query = Employee.dc_query().filter("salary", ">", x).order("salary")
                for employee in query.limit(10):
                    count += 1
                    total += employee.salary
        return count, total

    def memory(self, probe: Callable[[list[Any]], None], limit: int) -> None:
        with self.client.session():
            employees = list(Employee.dc_query().limit(limit))
            for employee in employees:
                _ = employee.salary
            probe(employees)
