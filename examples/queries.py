"""Queries as native SQL: model queries, SQLDatastore and ObjectDatastore.

Run it with ``python examples/queries.py`` (it writes ``queries.db`` where you run it, and
removes it first; set ``DC_URL`` to use an empty PostgreSQL database instead).  It stores a
small company, then asks it questions the datastore way: ``Employee.dc_query()``,
``client.query(Query(Key("/Employee")))``, a table of JSON documents (``SQLDatastore``) and a
cache in front of stored objects (``ObjectDatastore`` in a ``TieredDatastore``).  Every query
runs as one SELECT; ``cursor.statement`` shows it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from claystore import Client, DataClayObject, Indexed
from claystore.datastore import (
    DictDatastore,
    Key,
    ObjectDatastore,
    Query,
    SQLDatastore,
    TieredDatastore,
)


class Employee(DataClayObject):
    name: str
    salary: Annotated[float, Indexed()]  # indexed: filter + order + limit read the index
    age: int | None = None
    boss: Employee | None = None

    def __init__(
        self, name: str, salary: float, age: int | None = None, boss: Employee | None = None
    ) -> None:
        self.name = name
        self.salary = salary
        self.age = age
        self.boss = boss


class Manager(Employee):
    bonus: float = 0.0


def model_queries(client: Client) -> None:
    """Filter, order, limit, count and first on a model class; references by object."""
    ceo = Manager("Ada", 9000.0, 52)
    ceo.make_persistent("CEO")
    for name, salary, age in [("Bob", 1500.0, 31), ("Cy", 800.0, None), ("Di", 2500.0, 28)]:
        Employee(name, salary, age, boss=ceo).make_persistent()

    top = Employee.dc_query().filter("salary", ">", 1000).order("-salary").limit(2)
    print("top earners:", [(e.name, type(e).__name__) for e in top])
    print("how many earn over 1000:", Employee.dc_query().filter("salary", ">", 1000).count())
    print("youngest first (no age = first):", [e.name for e in Employee.dc_query().order("age")])
    print("reports of the CEO:", [e.name for e in Employee.dc_query().filter("boss", "=", ceo)])
    cursor = client.query(Query(Key("/Employee"), limit=1).order("-age"))
    print("oldest, via client.query:", [e.name for e in cursor])
    print("its SQL:", cursor.statement.replace("\n", " ")[:90], "...")


def json_documents(client: Client) -> None:
    """Any JSON value under a key; queries on its fields run as SQL."""
    people = SQLDatastore(client, table="people")
    for name, age in [("ann", 31), ("bob", 17), ("cy", 45), ("dee", None)]:
        people.put(Key("/Person").child(name), {"name": name, "age": age})
    adults = people.query(Query(Key("/Person")).filter("age", ">=", 18).order("-age"))
    print("adults:", [p["name"] for p in adults])
    print("evaluated in Python:", adults.evaluated_in_python or "nothing")


def cached_objects(client: Client) -> None:
    """A dict cache in front of the stored objects, through the datastore API."""
    cache = DictDatastore()
    staff = TieredDatastore([cache, ObjectDatastore(client)])
    ceo = staff.get(Key("/Employee:CEO"))
    print("CEO through the cache:", ceo.name, "| cached now:", cache.contains(Key("/Employee:CEO")))
    staff.put(Key("/Employee:intern"), Employee("Flo", 300.0))
    print("intern by alias:", Employee.get_by_alias("intern").name)


def main() -> None:
    url = os.environ.get("DC_URL")
    if not url:
        Path("queries.db").unlink(missing_ok=True)
        url = "sqlite:///queries.db"
    with Client(url) as client:
        model_queries(client)
        json_documents(client)
        cached_objects(client)


if __name__ == "__main__":
    main()
