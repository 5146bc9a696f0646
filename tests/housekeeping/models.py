"""Model classes of the housekeeping tests, and a small healthy store built from them.

The classes cover what the integrity check reads: a class hierarchy (``HkStaff`` ->
``HkManager``), reference columns (``boss``, ``office``: one class or a union), link tables
(``HkDepartment.staff``, ``HkManager.reports``), JSON containers (``tags``, ``scores``), an enum,
a datetime, an indexed text field.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

from claystore import DataClayObject, Indexed


class HkRole(enum.Enum):
    ENGINEER = "engineer"
    SALES = "sales"


class HkOffice(DataClayObject):
    city: str

    def __init__(self, city: str) -> None:
        self.city = city


class HkStaff(DataClayObject):
    name: Annotated[str, Indexed()]
    salary: float
    role: HkRole
    hired: dt.datetime
    tags: dict[str, int]
    scores: list[float]
    boss: HkStaff | None = None
    office: HkOffice | None = None

    def __init__(self, name: str, salary: float, role: HkRole = HkRole.ENGINEER) -> None:
        self.name = name
        self.salary = salary
        self.role = role
        self.hired = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        self.tags = {"level": 1}
        self.scores = [1.5, 2.5]


class HkManager(HkStaff):
    bonus: float = 0.0
    reports: list[HkStaff]

    def __init__(self, name: str, salary: float) -> None:
        super().__init__(name, salary)
        self.reports = []


class HkDepartment(DataClayObject):
    title: str
    staff: list[HkStaff]
    head: HkManager | None = None

    def __init__(self, title: str) -> None:
        self.title = title
        self.staff = []


def build_store(size: int = 6) -> HkDepartment:
    """A healthy store: a department with a manager and ``size`` staff (every other one in an
    office, reporting to the manager), made persistent with an alias ``"dept"``."""
    office = HkOffice("Lyon")
    head = HkManager("Ada", 5000.0)
    dept = HkDepartment("R&D")
    dept.head = head
    dept.staff.append(head)
    for n in range(size):
        member = HkStaff(f"staff{n}", 1000.0 + n, HkRole.SALES if n % 2 else HkRole.ENGINEER)
        member.boss = head
        member.office = office if n % 2 == 0 else None
        head.reports.append(member)
        dept.staff.append(member)
    dept.make_persistent(alias="dept")
    return dept
