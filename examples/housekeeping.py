"""Housekeeping: check a store's integrity, measure it, look at its classes and locks.

Run ``python examples/housekeeping.py`` (it writes ``housekeeping.db`` where you run it,
removing it first).  Set DC_URL to use another database, e.g.
``DC_URL=postgresql+psycopg://postgres@127.0.0.1/test python examples/housekeeping.py``.

1. A small shop is stored; ``check_integrity(level=4)`` finds nothing.
2. Someone edits rows by hand (plain SQL, as a report tool or a careless fix would): an order's
   lines become a JSON list, a status gets a name the enum does not have, a customer's row is
   deleted while an order still points at it.  The check names each problem, its level, the
   object and the field, and writes a report file.
3. Sizes, classes, counts and the aliases; lock holders (none here).

The same from the command line: ``claystore check --level 4 --no-stop --models housekeeping``
(see docs/operations.md).
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

import sqlalchemy as sa

from claystore import Client, DataClayObject


class Status(enum.Enum):
    OPEN = "open"
    SHIPPED = "shipped"


class Customer(DataClayObject):
    name: str

    def __init__(self, name: str) -> None:
        self.name = name


class Order(DataClayObject):
    number: int
    status: Status
    lines: dict[str, int]  # product -> quantity
    customer: Customer | None = None

    def __init__(self, number: int, customer: Customer) -> None:
        self.number = number
        self.status = Status.OPEN
        self.lines = {"tea": 2}
        self.customer = customer


def shop() -> list[Order]:
    """Three customers, six orders; the first order is aliased."""
    customers = [Customer(name) for name in ("Ada", "Grace", "Linus")]
    orders = [Order(n, customers[n % 3]) for n in range(6)]
    for order in orders:
        order.make_persistent()
    orders[0].make_persistent(alias="first-order")
    return orders


def hand_edits(client: Client, orders: list[Order]) -> None:
    """What a careless manual fix does, in plain SQL (no claystore in between)."""
    order_table = Order._dc_info.table
    customer_table = Customer._dc_info.table
    victim = orders[2].customer
    assert victim is not None
    with client.engine.begin() as conn:
        conn.execute(
            sa.update(order_table)
            .where(order_table.c.id == orders[1]._dc_meta.id)
            .values(lines=sa.literal_column("'[\"tea\", 2]'"))  # a list where a dict belongs
        )
        conn.execute(
            sa.update(order_table)
            .where(order_table.c.id == orders[3]._dc_meta.id)
            .values(status=sa.literal_column("'LOST'"))  # no such Status member
        )
        conn.execute(sa.delete(customer_table).where(customer_table.c.id == victim._dc_meta.id))


def main() -> None:
    url = os.environ.get("DC_URL")
    if url is None:
        Path("housekeeping.db").unlink(missing_ok=True)
        url = "sqlite:///housekeeping.db"
    with Client(url) as client:
        orders = shop()
        report = client.check_integrity(level=4, stop_on_error=False)
        print(report.summary())

        hand_edits(client, orders)
        report = client.check_integrity(
            level=4, stop_on_error=False, to_file="housekeeping-check.txt"
        )
        print(report.summary())
        for problem in report.problems:
            where = f"{problem.class_name}.{problem.field}" if problem.field else problem.class_name
            print(f"  level {problem.level} {problem.kind.label}: {where}")
        print(f"report written to {report.path}")

        size = client.calculate_storage_size()
        orders_size = client.calculate_storage_size(Order)
        print(f"the store takes {size.human}; orders alone {orders_size.human}")
        for entry in client.stats():
            print(f"  {entry.name}: {entry.objects} objects, {entry.aliases} aliases")
        print("classes:", sorted(cls.__name__ for cls in client))
        print("aliases:", [(a.name, a.class_name) for a in client.list_aliases()])
        print("system schema version", client.meta_version)
        others = [holder for holder in client.list_locks() if not holder.is_own]
        print("locks held by others:", len(others))


if __name__ == "__main__":
    main()
