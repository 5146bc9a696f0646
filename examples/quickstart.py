"""claystore quickstart: the dataClay user guide, step by step, on SQLite.

Run it with ``python examples/quickstart.py`` (it writes ``quickstart.db`` next to where you run
it, and removes it first).  Set DC_URL to run the same program against PostgreSQL, e.g.
``DC_URL=postgresql+psycopg://postgres@127.0.0.1/test python examples/quickstart.py``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from claystore import Client, DataClayObject, activemethod


# -- Defining classes: annotated fields are stored, the rest stays local ----------------------
class Employee(DataClayObject):
    name: str
    salary: float

    def __init__(self, name: str, salary: float) -> None:
        self.name = name
        self.salary = salary

    @activemethod
    def get_payroll(self, hours_worked: float) -> float:
        overtime = 0.0
        if hours_worked > 40:
            overtime = hours_worked - 40
        return self.salary + (overtime * (self.salary / 40))


class Company(DataClayObject):
    name: str
    employees: list[Employee]

    def __init__(self, name: str, *employees: Employee) -> None:
        self.name = name
        self.employees = list(employees)


def main() -> None:
    url = os.environ.get("DC_URL")
    if url is None:
        Path("quickstart.db").unlink(missing_ok=True)
        url = "sqlite:///quickstart.db"
    # -- Connect client ---------------------------------------------------------------------
    with Client(url, dataset="quickstart") as client:
        print(f"connected: {client!r}")

        # -- Make persistent: attributes read and write through to the database ---------------
        employee = Employee("John", 1000.0)
        employee.make_persistent()
        print("payroll for 50 hours:", employee.get_payroll(50))  # one transaction
        employee.salary = 2000.0  # committed at once
        print("salary now:", employee.name, employee.salary)

        # -- Assign backend ----------------------------------------------------------------
        backend_ids = list(client.get_backends())
        employee = Employee("Jane", 1500.0)
        employee.make_persistent(backend_id=backend_ids[0])
        print("backends:", backend_ids, "-> Jane lives in", employee._dc_backend_id)

        # -- Recursive persistence: referenced objects are stored too -----------------------
        employee = Employee("John", 1000.0)
        company = Company("ABC", employee)
        company.make_persistent()
        assert employee.is_registered

        # -- Automatic persistence: objects assigned to stored fields are stored -------------
        company = Company("ABC")
        company.make_persistent()
        employee = Employee("John", 1000.0)
        company.employees = [employee]
        assert employee.is_registered
        assert employee in company.employees
        # ...but changing a container you read changes only your copy:
        other = Employee("Jack", 900.0)
        company.employees.append(other)
        assert not other.is_registered
        employees = company.employees
        employees.append(other)
        company.employees = employees  # assign it back to store it
        assert other.is_registered

        # -- Alias --------------------------------------------------------------------------
        employee = Employee("John", 1000.0)
        employee.make_persistent("CEO")
        assert Employee.get_by_alias("CEO") is employee
        employee.add_alias("CFO")
        print("aliases:", sorted(employee.get_aliases()))
        Employee.delete_alias("CEO")

        # -- Get, put & update ----------------------------------------------------------------
        employee = Employee("John", 1000.0)
        employee.dc_put("Boss")
        new_employee = employee.dc_clone()
        assert new_employee.name == employee.name and new_employee is not employee
        new_employee = Employee.dc_clone_by_alias("Boss")
        employee.dc_update(Employee("Marc", 7000.0))
        assert employee.name == "Marc"
        Employee.dc_update_by_alias("Boss", Employee("Anna", 8000.0))
        print("Boss is now:", employee.name, employee.salary)

    # -- The tables are plain SQL ----------------------------------------------------------------
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            rows = db.execute("SELECT name, salary FROM employee ORDER BY name").fetchall()
        print("SELECT name, salary FROM employee:", rows)


if __name__ == "__main__":
    main()
