"""Django ORM, peewee and Pony ORM, as peers of benchmarks/peers.py (see peer_base.Peer).

Each maps company and employee (``company_id`` foreign key, indexed as each does by default;
``salary`` indexed) on tables of its own (``dj_``, ``pw_``, ``pony_``).  The libraries are
imported when a peer opens, so one that is missing is reported, not fatal.

- Django: standalone, ``settings.configure`` in this process with one database alias per
  engine (``sqlite``: ``init_command`` sets ``synchronous=NORMAL``, ``transaction_mode`` is
  ``IMMEDIATE`` as Django's docs advise for SQLite, so ``atomic()`` blocks take the write lock;
  ``postgresql``: Django's backend on psycopg 3), models in the app label ``peers`` created with
  the schema editor.  Autocommit outside ``atomic()``; W2 with ``.iterator()``; bulk row:
  ``bulk_create`` (primary keys come back through RETURNING on both engines).
- peewee: ``SqliteDatabase`` with the pragmas ``journal_mode=wal, synchronous=normal`` (and
  ``returning_clause`` so ``bulk_create`` sets ids), ``PostgresqlDatabase`` on psycopg 3
  (``prefer_psycopg3``); W4 ``db.atomic("IMMEDIATE")`` on SQLite, ``.for_update()`` on
  PostgreSQL; bulk row: ``bulk_create`` for companies and chunked ``insert_many`` for employees.
- Pony: a ``Database`` per run with its entities, ``db_session`` blocks, ``get_for_update``
  (Pony begins ``BEGIN IMMEDIATE`` on SQLite for it); Pony speaks psycopg2 on PostgreSQL.  It
  has no bulk insert API.
"""

# ruff: noqa: PLC0415 - each library is imported when its peer opens: a missing one is reported

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peer_base import Dataset, Peer, Tables, Target, Timer, Unavailable

# -- Django ----------------------------------------------------------------------------------------

_django: dict[str, Any] = {}  # the two model classes, defined once Django is set up


def django_models() -> tuple[Any, Any]:
    """Configure Django in this process (once) and define its two models."""
    if not _django:
        import django
        from django.conf import settings

        settings.configure(
            DATABASES={
                "default": {"ENGINE": "django.db.backends.dummy"},
                "sqlite": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": "",
                    "OPTIONS": {
                        "init_command": "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=60000",
                        "transaction_mode": "IMMEDIATE",
                    },
                },
                "postgresql": {"ENGINE": "django.db.backends.postgresql", "NAME": ""},
            },
            INSTALLED_APPS=[],
            DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        )
        django.setup()
        from django.db import models

        class DjCompany(models.Model):
            name = models.TextField()

            class Meta:
                app_label = "peers"
                db_table = "dj_company"

        class DjEmployee(models.Model):
            name = models.TextField()
            salary = models.FloatField(db_index=True)
            company = models.ForeignKey(
                DjCompany, on_delete=models.CASCADE, related_name="employees"
            )

            class Meta:
                app_label = "peers"
                db_table = "dj_employee"

        _django.update(company=DjCompany, employee=DjEmployee)
    return _django["company"], _django["employee"]


class DjangoPeer(Peer):
    """Managers and querysets on the engine's alias (``.using(db)``), ``transaction.atomic``."""

    key = "django"
    name = "Django ORM"
    tables = Tables("dj_company", "dj_employee", "dj_employee", "company_id")

    def open(self, target: Target) -> None:
        super().open(target)
        try:
            self.Company, self.Employee = django_models()
            from django.db import connections, transaction
        except ImportError as exc:
            raise Unavailable(f"Django is not installed ({exc})") from exc
        self.db, self.transaction = target.engine, transaction
        self.connection = connections[self.db]
        self.connection.close()  # the previous run's database
        if target.is_pg:
            pg = target.pg
            self.connection.settings_dict.update(
                NAME=pg["dbname"],
                USER=pg["user"],
                PASSWORD=pg["password"],
                HOST=pg["host"],
                PORT=str(pg["port"]),
            )
        else:
            self.connection.settings_dict["NAME"] = target.path
        with self.connection.schema_editor() as editor:
            editor.create_model(self.Company)
            editor.create_model(self.Employee)

    def close(self) -> None:
        self.connection.close()

    def persist(self, data: Dataset, timer: Timer) -> None:
        companies, employees = (
            self.Company.objects.using(self.db),
            self.Employee.objects.using(self.db),
        )
        with timer(), self.transaction.atomic(using=self.db):
            for name, emps in data.companies:
                company = companies.create(name=name)
                for n, s in emps:
                    employees.create(name=n, salary=s, company=company)

    def persist_bulk(self, data: Dataset, timer: Timer) -> None:
        Company, Employee = self.Company, self.Employee
        with timer(), self.transaction.atomic(using=self.db):
            companies = Company.objects.using(self.db).bulk_create(
                [Company(name=name) for name, _ in data.companies]
            )
            Employee.objects.using(self.db).bulk_create(
                [
                    Employee(name=n, salary=s, company=company)
                    for company, (_, emps) in zip(companies, data.companies, strict=True)
                    for n, s in emps
                ]
            )

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer():
            for employee in self.Employee.objects.using(self.db).iterator():
                count += 1
                total += employee.salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        employees = self.Employee.objects.using(self.db)
        total = 0.0
        with timer():
            for object_id in ids:
                total += employees.get(pk=object_id).salary
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        employees = self.Employee.objects.using(self.db)
        with timer():
            for object_id in ids:
                with self.transaction.atomic(using=self.db):
                    employee = employees.select_for_update().get(pk=object_id)
                    employee.salary += 1.0
                    employee.save()

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        employees = self.Employee.objects.using(self.db)
        count, total = 0, 0.0
        with timer():
            for x in thresholds:
                for employee in employees.filter(salary__gt=x).order_by("salary")[:10]:
                    count += 1
                    total += employee.salary
        return count, total

    def memory(self, probe: Callable[[list[Any]], None], limit: int) -> None:
        probe(list(self.Employee.objects.using(self.db).all()[:limit]))


# -- peewee ----------------------------------------------------------------------------------------

_peewee: dict[str, Any] = {}


def peewee_models() -> tuple[Any, Any, Any]:
    """The database proxy and the two models (defined once)."""
    if not _peewee:
        import peewee

        proxy = peewee.DatabaseProxy()

        class PwCompany(peewee.Model):
            name = peewee.TextField()

            class Meta:
                database = proxy
                table_name = "pw_company"

        class PwEmployee(peewee.Model):
            name = peewee.TextField()
            salary = peewee.DoubleField(index=True)
            company = peewee.ForeignKeyField(PwCompany, backref="employees")

            class Meta:
                database = proxy
                table_name = "pw_employee"

        _peewee.update(proxy=proxy, company=PwCompany, employee=PwEmployee)
    return _peewee["proxy"], _peewee["company"], _peewee["employee"]


class PeeweePeer(Peer):
    """``Model.create``, ``select()``, ``get_by_id``, ``db.atomic()``."""

    key = "peewee"
    name = "peewee"
    tables = Tables("pw_company", "pw_employee", "pw_employee", "company_id")

    def open(self, target: Target) -> None:
        super().open(target)
        try:
            import peewee

            proxy, self.Company, self.Employee = peewee_models()
        except ImportError as exc:
            raise Unavailable(f"peewee is not installed ({exc})") from exc
        if target.is_pg:
            pg = target.pg
            self.db = peewee.PostgresqlDatabase(
                pg["dbname"],
                user=pg["user"],
                password=pg["password"],
                host=pg["host"],
                port=pg["port"],
                prefer_psycopg3=True,
            )
        else:
            self.db = peewee.SqliteDatabase(
                target.path,
                pragmas={"journal_mode": "wal", "synchronous": "normal", "busy_timeout": 60000},
                returning_clause=True,
            )
        proxy.initialize(self.db)
        self.db.connect()
        self.db.create_tables([self.Company, self.Employee])

    def close(self) -> None:
        self.db.close()

    def persist(self, data: Dataset, timer: Timer) -> None:
        with timer(), self.db.atomic():
            for name, emps in data.companies:
                company = self.Company.create(name=name)
                for n, s in emps:
                    self.Employee.create(name=n, salary=s, company=company)

    def persist_bulk(self, data: Dataset, timer: Timer) -> None:
        from peewee import chunked

        with timer(), self.db.atomic():
            companies = [self.Company(name=name) for name, _ in data.companies]
            self.Company.bulk_create(companies)
            rows = [
                {"name": n, "salary": s, "company": company.id}
                for company, (_, emps) in zip(companies, data.companies, strict=True)
                for n, s in emps
            ]
            for batch in chunked(rows, 1000):
                self.Employee.insert_many(batch).execute()

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer():
            for employee in self.Employee.select().iterator():
                count += 1
                total += employee.salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        total = 0.0
        with timer():
            for object_id in ids:
                total += self.Employee.get_by_id(object_id).salary
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        Employee = self.Employee
        pg = self.target.is_pg
        with timer():
            for object_id in ids:
                with self.db.atomic() if pg else self.db.atomic("IMMEDIATE"):
                    query = Employee.select().where(Employee.id == object_id)
                    employee = (query.for_update() if pg else query).get()
                    employee.salary += 1.0
                    employee.save()

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        Employee = self.Employee
        count, total = 0, 0.0
        with timer():
            for x in thresholds:
                query = Employee.select().where(Employee.salary > x).order_by(Employee.salary)
                for employee in query.limit(10):
                    count += 1
                    total += employee.salary
        return count, total

    def memory(self, probe: Callable[[list[Any]], None], limit: int) -> None:
        probe(list(self.Employee.select().limit(limit)))


# -- Pony ------------------------------------------------------------------------------------------


def pony_entities(db: Any) -> tuple[Any, Any]:
    """The two entities, on a new ``Database``."""
    from pony.orm import Required, Set

    class PonyCompany(db.Entity):  # type: ignore[name-defined]
        _table_ = "pony_company"
        name = Required(str)
        employees = Set("PonyEmployee")

    class PonyEmployee(db.Entity):  # type: ignore[name-defined]
        _table_ = "pony_employee"
        name = Required(str)
        salary = Required(float, index=True)
        company = Required(PonyCompany, column="company_id")

    return PonyCompany, PonyEmployee


class PonyPeer(Peer):
    """Entities, ``db_session``, ``Entity[id]``, ``select(...)``, ``get_for_update``."""

    key = "pony"
    name = "Pony ORM"
    tables = Tables("pony_company", "pony_employee", "pony_employee", "company_id")

    def open(self, target: Target) -> None:
        super().open(target)
        try:
            from pony import orm
        except ImportError as exc:
            raise Unavailable(f"Pony is not installed ({exc})") from exc
        self.orm = orm
        self.db = orm.Database()
        self.Company, self.Employee = pony_entities(self.db)
        if target.is_pg:
            try:
                import psycopg2  # noqa: F401 - Pony's PostgreSQL provider needs it
            except ImportError as exc:
                msg = f"Pony speaks psycopg2 on PostgreSQL, which is not installed ({exc})"
                raise Unavailable(msg) from exc
            pg = target.pg
            self.db.bind(
                provider="postgres",
                user=pg["user"],
                password=pg["password"],
                host=pg["host"],
                port=pg["port"],
                database=pg["dbname"],
            )
        else:

            @self.db.on_connect(provider="sqlite")
            def pragmas(_db: Any, connection: Any) -> None:
                cursor = connection.cursor()
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA busy_timeout = 60000")

            self.db.bind(provider="sqlite", filename=target.path)
        self.db.generate_mapping(create_tables=True)

    def close(self) -> None:
        self.db.disconnect()

    def persist(self, data: Dataset, timer: Timer) -> None:
        Company, Employee = self.Company, self.Employee
        with timer(), self.orm.db_session:
            for name, emps in data.companies:
                company = Company(name=name)
                for n, s in emps:
                    Employee(name=n, salary=s, company=company)

    def iterate(self, timer: Timer) -> tuple[int, float]:
        count, total = 0, 0.0
        with timer(), self.orm.db_session:
            for employee in self.Employee.select():
                count += 1
                total += employee.salary
        return count, total

    def lookups(self, ids: list[Any], timer: Timer) -> float:
        total = 0.0
        with timer(), self.orm.db_session:
            for object_id in ids:
                total += self.Employee[object_id].salary
        return total

    def raise_salaries(self, ids: list[Any], timer: Timer) -> None:
        with timer():
            for object_id in ids:
                with self.orm.db_session:
                    employee = self.Employee.get_for_update(id=object_id)
                    employee.salary += 1.0

    def top10(self, thresholds: list[float], timer: Timer) -> tuple[int, float]:
        Employee = self.Employee
        count, total = 0, 0.0
        with timer(), self.orm.db_session:
            for x in thresholds:
                query = Employee.select(lambda e: e.salary > x)  # noqa: B023 - Pony binds x now
                query = query.order_by(Employee.salary)
                for employee in query.limit(10):
                    count += 1
                    total += employee.salary
        return count, total

    def memory(self, probe: Callable[[list[Any]], None], limit: int) -> None:
        with self.orm.db_session:
            probe(list(self.Employee.select()[:limit]))
