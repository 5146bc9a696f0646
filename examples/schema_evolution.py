"""Changing a model class: the schema check at start, and ``schema="evolve"``.

Run it with ``python examples/schema_evolution.py`` (it writes ``evolution.db`` where you run
it, and removes it first; set DC_URL to use PostgreSQL).  Release 1 of a program stores
employees; release 2 adds two fields.  Here both releases live in one file (release 2 forgets
release 1's class first); in real life release 2 is simply the next version of your code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from claystore import Client, DataClayObject, Indexed
from claystore.errors import SchemaDriftError
from claystore.orm.mapping import forget_models


def release_1(url: str) -> type:
    class Employee(DataClayObject):
        name: str
        salary: float

    with Client(url):
        for name, salary in [("Ann", 4000.0), ("Bob", 3500.0)]:
            employee = Employee()
            employee.name, employee.salary = name, salary
            employee.make_persistent(alias=name.lower())
    return Employee


def release_2(url: str) -> None:
    class Employee(DataClayObject):
        name: str
        salary: float
        team: str = "staff"  # new, with a default: old rows get it
        badge: Annotated[int | None, Indexed(unique=True)] = None  # new, optional, unique

    try:  # the default mode stops before reading or writing anything
        Client(url).start()
    except SchemaDriftError as err:
        print("release 2, default start:")
        print(err)
        print("differences:", [(d.where, d.kind.name, d.can_evolve) for d in err.differences])

    with Client(url, schema="evolve"):  # applies the changes that cannot lose data
        ann = Employee.get_by_alias("ann")
        print(f"after evolve: {ann.name} team={ann.team} badge={ann.badge}")
        ann.badge = 1
        print("badges:", sorted((e.name, e.badge) for e in Employee.dc_query()))


def main() -> None:
    url = os.environ.get("DC_URL", "sqlite:///evolution.db")
    Path("evolution.db").unlink(missing_ok=True)
    old = release_1(url)
    forget_models(old)  # release 2 is the next version of the program
    release_2(url)


if __name__ == "__main__":
    main()
