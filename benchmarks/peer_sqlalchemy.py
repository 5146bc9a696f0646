"""SQLAlchemy ORM, SQLAlchemy Core and SQLModel, as peers of benchmarks/peers.py
(see peer_base.Peer).

Each maps company and employee (``company_id`` foreign key, indexed; ``salary`` indexed) on
tables of its own (``sa_``, ``sacore_``, ``sqlmodel_``), through an engine of its own.  On
SQLite the engine follows SQLAlchemy's documented recipe for real transactions (the driver's
own BEGIN handling off, SQLAlchemy emits ``BEGIN``, or ``BEGIN IMMEDIATE`` for W4) and sets
``synchronous=NORMAL``.  The ORM and SQLModel stream W2 with ``yield_per`` (the documented way
to read a large result); the ORM's bulk row is ``session.execute(insert(Employee), dicts)``.

(No ``from __future__ import annotations``: SQLModel reads its relationship annotations.)
"""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from peer_base import Dataset, Peer, Tables, Target, Timer
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlmodel import Field, Relationship, SQLModel
from sqlmodel import Session as SQLModelSession
from sqlmodel import select as sqlmodel_select


def make_engines(target: Target) -> tuple[sa.Engine, sa.Engine]:
    """The engine of one peer, and the same engine for W4's locked transactions (on SQLite
    they begin with ``BEGIN IMMEDIATE``)."""
    engine = sa.create_engine(target.url)
    if target.is_pg:
        return engine, engine

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (below)
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")
        dbapi_connection.execute("PRAGMA busy_timeout = 60000")

    @event.listens_for(engine, "begin")
    def begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine, engine.execution_options(immediate=True)


# -- SQLAlchemy ORM --------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class SaCompany(Base):
    __tablename__ = "sa_company"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    employees: Mapped[list["SaEmployee"]] = relationship(back_populates="company")


class SaEmployee(Base):
    __tablename__ = "sa_employee"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    salary: Mapped[float] = mapped_column(index=True)
    company_id: Mapped[int] = mapped_column(sa.ForeignKey("sa_company.id"), index=True)
    company: Mapped[SaCompany] = relationship(back_populates="employees")


class SqlAlchemyOrmPeer(Peer):
    """``Session``, ``relationship``, ``session.get``, ``select(...).where(...)``."""

    key = "sqlalchemy"
    name = "SQLAlchemy ORM"
    tables = Tables("sa_company", "sa_employee", "sa_employee", "company_id")

    def open(self, target: Target) -> None:
        super().open(target)
        self.engine, self.locking = make_engines(target)
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def persist(self, data: Dataset, timer: Timer) -> None:
        with timer(), Session(self.engine) as session, session.begin():
            session.add_all(
                [
                    SaCompany(name=name, employees=[SaEmployee(name=n, salary=s) for n, s in emps])
                    for name, emps in data.companies
                ]
            )

    def persist_bulk(self, data: Dataset, timer: Timer) -> None:
        with timer(), Session(self.engine) as session, session.begin():
            ids = session.scalars(
                sa.insert(SaCompany).returning(SaCompany.id, sort_by_parameter_order=True),
                [{"name": name} for name, _ in data.companies],
            ).all()
            session.execute(
                sa.insert(SaEmployee),
                [
                    {"name": n, "salary": s, "company_id": company_id}
                    for company_id, (_, emps) in zip(ids, data.companies, strict=True)
                    for n, s in emps
                ],
            )

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer(), Session(self.engine) as session:
            statement = sa.select(SaEmployee).execution_options(yield_per=1000)
            for employee in session.scalars(statement):
                count += 1
                total += employee.salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        total = 0.0
        with timer(), Session(self.engine) as session:
            for object_id in ids:
                employee = session.get(SaEmployee, object_id)
                assert employee is not None
                total += employee.salary
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        with timer():
            for object_id in ids:
                with Session(self.locking) as session, session.begin():
                    employee = session.get(SaEmployee, object_id, with_for_update=True)
                    assert employee is not None
                    employee.salary += 1.0

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer(), Session(self.engine) as session:
            for x in thresholds:
                statement = (
                    sa.select(SaEmployee)
                    .where(SaEmployee.salary > x)
                    .order_by(SaEmployee.salary)
                    .limit(10)
                )
                for employee in session.scalars(statement):
                    count += 1
                    total += employee.salary
        return count, total

    def memory(self, probe: Callable[[list[Any]], None], limit: int) -> None:
        with Session(self.engine) as session:
            employees = list(session.scalars(sa.select(SaEmployee).limit(limit)))
            probe(employees)


# -- SQLAlchemy Core -------------------------------------------------------------------------------

core = sa.MetaData()
core_company = sa.Table(
    "sacore_company",
    core,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
)
core_employee = sa.Table(
    "sacore_employee",
    core,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("salary", sa.Double, nullable=False, index=True),
    sa.Column("company_id", sa.ForeignKey("sacore_company.id"), nullable=False, index=True),
)


class SqlAlchemyCorePeer(Peer):
    """``insert`` with lists of dicts (executemany), ``select`` returning ``Row`` objects."""

    key = "core"
    name = "SQLAlchemy Core"
    tables = Tables("sacore_company", "sacore_employee", "sacore_employee", "company_id")

    def open(self, target: Target) -> None:
        super().open(target)
        self.engine, self.locking = make_engines(target)
        core.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def persist(self, data: Dataset, timer: Timer) -> None:
        with timer(), self.engine.begin() as conn:
            ids = conn.scalars(
                sa.insert(core_company).returning(core_company.c.id, sort_by_parameter_order=True),
                [{"name": name} for name, _ in data.companies],
            ).all()
            conn.execute(
                sa.insert(core_employee),
                [
                    {"name": n, "salary": s, "company_id": company_id}
                    for company_id, (_, emps) in zip(ids, data.companies, strict=True)
                    for n, s in emps
                ],
            )

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer(), self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(sa.select(core_employee))
            for row in result:
                count += 1
                total += row.salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        statement = sa.select(core_employee).where(core_employee.c.id == sa.bindparam("id"))
        total = 0.0
        with timer(), self.engine.connect() as conn:
            for object_id in ids:
                total += conn.execute(statement, {"id": object_id}).one().salary
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        e = core_employee
        with timer():
            for object_id in ids:
                with self.locking.begin() as conn:
                    salary = conn.execute(
                        sa.select(e.c.salary).where(e.c.id == object_id).with_for_update()
                    ).scalar_one()
                    conn.execute(sa.update(e).where(e.c.id == object_id).values(salary=salary + 1))

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        e = core_employee
        statement = (
            sa.select(e).where(e.c.salary > sa.bindparam("x")).order_by(e.c.salary).limit(10)
        )
        count, total = 0, 0.0
        with timer(), self.engine.connect() as conn:
            for x in thresholds:
                for row in conn.execute(statement, {"x": x}):
                    count += 1
                    total += row.salary
        return count, total


# -- SQLModel --------------------------------------------------------------------------------------


class SQLModelCompany(SQLModel, table=True):
    __tablename__ = "sqlmodel_company"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    employees: list["SQLModelEmployee"] = Relationship(back_populates="company")


class SQLModelEmployee(SQLModel, table=True):
    __tablename__ = "sqlmodel_employee"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    salary: float = Field(index=True)
    company_id: int | None = Field(default=None, foreign_key="sqlmodel_company.id", index=True)
    company: SQLModelCompany | None = Relationship(back_populates="employees")


class SQLModelPeer(Peer):
    """As SQLModel's tutorial writes it: ``Relationship``, ``session.exec(select(...))``,
    ``session.get``, ``session.add`` + ``commit``."""

    key = "sqlmodel"
    name = "SQLModel"
    tables = Tables("sqlmodel_company", "sqlmodel_employee", "sqlmodel_employee", "company_id")

    def open(self, target: Target) -> None:
        super().open(target)
        self.engine, self.locking = make_engines(target)
        SQLModel.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def persist(self, data: Dataset, timer: Timer) -> None:
        with timer(), SQLModelSession(self.engine) as session:
            for name, emps in data.companies:
                employees = [SQLModelEmployee(name=n, salary=s) for n, s in emps]
                session.add(SQLModelCompany(name=name, employees=employees))
            session.commit()

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer(), SQLModelSession(self.engine) as session:
            statement = sqlmodel_select(SQLModelEmployee).execution_options(yield_per=1000)
            for employee in session.exec(statement):
                count += 1
                total += employee.salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        total = 0.0
        with timer(), SQLModelSession(self.engine) as session:
            for object_id in ids:
                employee = session.get(SQLModelEmployee, object_id)
                assert employee is not None
                total += employee.salary
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        with timer():
            for object_id in ids:
                with SQLModelSession(self.locking) as session:
                    employee = session.get(SQLModelEmployee, object_id, with_for_update=True)
                    assert employee is not None
                    employee.salary += 1.0
                    session.add(employee)
                    session.commit()

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        e = SQLModelEmployee
        count, total = 0, 0.0
        with timer(), SQLModelSession(self.engine) as session:
            for x in thresholds:
                statement = sqlmodel_select(e).where(e.salary > x).order_by(e.salary).limit(10)  # type: ignore[arg-type]
                for employee in session.exec(statement):
                    count += 1
                    total += employee.salary
        return count, total

    def memory(self, probe: Callable[[list[Any]], None], limit: int) -> None:
        with SQLModelSession(self.engine) as session:
            employees = list(session.exec(sqlmodel_select(SQLModelEmployee).limit(limit)))
            probe(employees)
