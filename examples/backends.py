"""Backends: one store over several databases, and objects moved between them.

Run ``python examples/backends.py``: it makes three SQLite files in a temporary directory (the
metadata database and two more backends) and removes them at the end.  To run it on
PostgreSQL (or any databases), give three empty databases, the metadata database first:

    python examples/backends.py METADATA_URL BACKEND_URL BACKEND_URL

or ``DC_URL=METADATA_URL EXAMPLE_BACKEND_URLS="BACKEND_URL BACKEND_URL"``.  For instance:

    python examples/backends.py postgresql://postgres@127.0.0.1/meta \\
        postgresql://postgres@127.0.0.1/b1 postgresql://postgres@127.0.0.1:5433/b2

1. ``add_backend`` registers two more databases; ``get_backends`` lists the three.
2. ``make_persistent(backend_id=...)`` stores a team (and every new object it reaches) on one
   backend; its lead, stored elsewhere, is a reference across backends.
3. ``move``: one object, a graph with ``recursive=True`` (``remotes=False`` leaves the
   referents held by other backends where they are), a move that does nothing, and
   ``make_persistent(backend_id=..., alias=...)`` on a stored object.
4. A class query reads every backend and returns one ordered result (``count()`` too).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from claystore import Client, DataClayObject


class Person(DataClayObject):
    name: str

    def __init__(self, name: str) -> None:
        self.name = name


class Team(DataClayObject):
    name: str
    lead: Person | None = None
    members: list[Person]

    def __init__(self, name: str, *members: Person) -> None:
        self.name = name
        self.members = list(members)


def where(client: Client, *objects: DataClayObject) -> str:
    """Which backend holds each object, by name: ``ann@b1 bob@b1``."""
    names = {info.id: info.name for info in client.get_backends().values()}
    return " ".join(f"{o.name}@{names[o._dc_backend_id]}" for o in objects)


def show_backends(client: Client) -> None:
    for backend_id, info in client.get_backends().items():
        marker = " (default)" if info.is_default else ""
        print(f"  {info.name:8} {backend_id}  {info.url}{marker}")


def walk_through(metadata_url: str, backend_urls: list[str]) -> None:
    with Client(metadata_url) as client:
        # 1. two more backends: every client of this metadata database sees them
        b1 = client.add_backend(backend_urls[0], name="b1")
        client.add_backend(backend_urls[1], name="b2")
        print("backends:")
        show_backends(client)

        # 2. the lead on the default backend; the team and its new members on b1
        carol = Person("carol")
        carol.make_persistent(alias="carol")
        ann, bob = Person("ann"), Person("bob")
        team = Team("red", ann, bob)
        team.lead = carol  # a reference from b1 to the metadata database
        team.make_persistent(alias="red", backend_id=b1)
        print("stored:", where(client, team, ann, bob, carol))

    with Client(metadata_url) as client:  # a new client follows the references
        team = Team.get_by_alias("red")
        assert team.lead is not None
        print(f"team {team.name} on b1, led by {team.lead.name} (another backend)")

        # 3. moves
        team.move("b2", recursive=True, remotes=False)  # carol is held elsewhere: she stays
        print("recursive, remotes=False:", where(client, team, *team.members, team.lead))
        team.move("b1", recursive=True)  # remotes=True (the default): carol comes along
        print("recursive, remotes=True:", where(client, team, *team.members, team.lead))
        ann = team.members[0]
        ann.move("b2")  # one object: the team keeps its reference
        ann.move("b2")  # already there: nothing to do
        bob = team.members[1]
        bob.make_persistent(alias="bob", backend_id="default")  # a stored object: a move
        print("single moves:", where(client, team, *team.members, team.lead))

    with Client(metadata_url) as client:
        team = Team.get_by_alias("red")
        print("read back:", where(client, team, *team.members, team.lead))
        print("bob by alias:", where(client, Person.get_by_alias("bob")))

        # 4. a class query reads every backend, in one order
        everyone = Person.dc_query().order("-name")
        print("people, by name descending:", where(client, *everyone))
        print("people after the first:", Person.dc_query().offset(1).count())


def main(argv: list[str]) -> None:
    if argv:
        metadata_url, *backend_urls = argv
    elif os.environ.get("EXAMPLE_BACKEND_URLS"):
        metadata_url = os.environ["DC_URL"]
        backend_urls = os.environ["EXAMPLE_BACKEND_URLS"].split()
    else:
        with tempfile.TemporaryDirectory() as directory:
            files = [Path(directory) / f"{name}.db" for name in ("metadata", "b1", "b2")]
            walk_through(f"sqlite:///{files[0]}", [f"sqlite:///{f}" for f in files[1:]])
        return
    if len(backend_urls) != 2:
        sys.exit("give the metadata database's URL and two backend URLs (empty databases)")
    walk_through(metadata_url, backend_urls)


if __name__ == "__main__":
    main(sys.argv[1:])
