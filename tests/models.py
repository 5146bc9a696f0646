"""Model classes shared by the tests (defined once: a table name can be mapped only once)."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from claystore import DataClayObject, Indexed, LocalOnly, activemethod


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

    @activemethod
    def raise_salary(self, amount: float) -> float:
        self.salary += amount
        return self.salary

    @activemethod
    def raise_then_fail(self, amount: float) -> None:
        self.salary += amount
        raise RuntimeError("payroll system down")


class Manager(Employee):
    bonus: float = 0.0
    reports: list[Employee]

    def __init__(self, name: str, salary: float, bonus: float = 0.0) -> None:
        super().__init__(name, salary)
        self.bonus = bonus
        self.reports = []


class Company(DataClayObject):
    name: str
    employees: list[Employee]
    ceo: Employee | None = None

    def __init__(self, name: str, *employees: Employee) -> None:
        self.name = name
        self.employees = list(employees)


class Person(DataClayObject):
    name: str
    age: int
    spouse: Person  # dataClay style: a reference may always hold None
    friends: set[Person]
    pets: dict[str, Pet]
    favourite: Person | Pet | None = None

    def __init__(self, name: str, age: int) -> None:
        self.name = name
        self.age = age
        self.spouse = None  # type: ignore[assignment]
        self.friends = set()
        self.pets = {}


class Pet(DataClayObject):
    name: str

    def __init__(self, name: str) -> None:
        self.name = name


class Node(DataClayObject):
    """A linked-list node (self reference)."""

    value: int
    next: Node | None = None

    def __init__(self, value: int) -> None:
        self.value = value


class Counter(DataClayObject):
    count: int = 0
    history: list[int]

    def __init__(self) -> None:
        self.history = []

    @activemethod
    def increment(self) -> int:
        self.count += 1
        return self.count

    @activemethod
    def append_history(self, value: int) -> None:
        self.history.append(value)

    @activemethod
    def increment_twice_inner_fails(self) -> None:
        self.count += 1
        with contextlib.suppress(RuntimeError):
            self.fail_after_increment()

    @activemethod
    def fail_after_increment(self) -> None:
        self.count += 100
        raise RuntimeError("inner failure")


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Everything(DataClayObject):
    """One field of every storable kind."""

    __tablename__ = "every_type"

    s: str
    i: int
    f: float
    b: bool
    raw: bytes
    when: dt.datetime
    day: dt.date
    at: dt.time
    span: dt.timedelta
    money: Decimal
    key: uuid.UUID
    color: Color
    level: Literal["low", "high"]
    maybe: int | None = None
    tags: list[str]
    scores: dict[str, float]
    pair: tuple[int, str]
    stamps: set[dt.date]
    nested: dict[str, list[int]]
    loose: dict
    indexed_name: Annotated[str, Indexed()] = ""
    scratch: Annotated[int, LocalOnly] = 0
    kind: ClassVar[str] = "everything"
