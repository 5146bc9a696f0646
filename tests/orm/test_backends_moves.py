"""Backends (issue 13): ``move`` with dataClay's semantics.

Moving to the backend that holds the object writes nothing; ``recursive=True`` takes every
object reachable (cycles, self-references, a list of 50); ``remotes=True`` takes referents on
other backends too, ``remotes=False`` only those on the root's backend; ``make_persistent
(backend_id=...)`` on a stored object moves it alone, then adds the alias; ``a_move``; no move
inside a session or an activemethod.  After a move every object has exactly one row (class
table, link tables, registry) on its target and none on its source, keeps its values, and its
aliases, id and the references to it still resolve — checked in the databases' tables and from
a new client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from uuid import UUID

import pytest

from claystore import Client, DataClayObject, activemethod
from claystore.errors import SessionStateError
from tests.orm.backend_helpers import (
    OtherClient,
    assert_only_on,
    backend_urls,
    count_rows,
    ids_in,
    registry,
    values_in,
)
from tests.statements import StatementLog, count_statements


class BkmNode(DataClayObject):
    __tablename__ = "bkm_node"

    label: str
    value: int = 0
    tags: list[str]
    next: BkmNode | None = None
    children: list[BkmNode]

    def __init__(self, label: str, value: int = 0) -> None:
        self.label = label
        self.value = value
        self.tags = [label, "node"]
        self.children = []

    @activemethod
    def move_from_inside(self, backend: UUID) -> None:
        self.move(backend)


class BkmLeaf(BkmNode):
    __tablename__ = "bkm_leaf"

    colour: str = "green"
    peers: dict[str, BkmNode]
    marks: set[BkmNode]

    def __init__(self, label: str, colour: str = "green") -> None:
        super().__init__(label)
        self.colour = colour
        self.peers = {}
        self.marks = set()


LEAF_TABLES = ("bkm_node", "bkm_leaf", "bkm_node_children", "bkm_leaf_peers", "bkm_leaf_marks")


def _three(client: Client, new: Callable[..., str]) -> list[UUID]:
    """The metadata database, ``b1`` (local) and ``b2`` (on the second server)."""
    client.add_backend(new("local"), name="b1")
    client.add_backend(new("second"), name="b2")
    return list(client.get_backends())


def _id(obj: DataClayObject) -> UUID:
    return obj._dc_meta.id


def _stored(label: str, backend: UUID, value: int = 0) -> BkmNode:
    node = BkmNode(label, value)
    node.make_persistent(backend_id=backend)
    return node


def _write_statements(log: StatementLog) -> list[str]:
    return log.matching("INSERT", "UPDATE", "DELETE", "COPY")


def _counting(client: Client, stack: ExitStack) -> Iterator[StatementLog]:
    """Statement logs of every database the client has open."""
    for database in client.context.router.opened():
        yield stack.enter_context(count_statements(database.engine))


def test_moving_to_the_backend_holding_it_writes_nothing(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """move(), move(recursive=True) and make_persistent(backend_id=...) to the object's own
    backend: no statement writes anything anywhere, row versions unchanged."""
    _, b1, b2 = _three(client, backend_url_factory)
    root = _stored("root", b1)
    root.next = _stored("next", b1)
    root.children = [_stored("remote", b2)]
    urls = backend_urls(db_url)
    versions = values_in(urls[b1], "bkm_node", "dc_version", _id(root))
    with ExitStack() as stack:
        logs = list(_counting(client, stack))
        root.move(b1)
        root.move("b1", recursive=True, remotes=False)
        root.make_persistent(backend_id=b1)
        root.children[0].move(b2, recursive=True)
    assert len(logs) == 3
    assert [_write_statements(log) for log in logs] == [[], [], []]
    assert values_in(urls[b1], "bkm_node", "dc_version", _id(root)) == versions
    assert_only_on(urls, "bkm_node", [_id(root), _id(root.next)], b1)  # type: ignore[arg-type]


def test_recursive_move_takes_everything_reachable_including_cycles(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A two-node cycle, a self-reference and a list of 50 nodes that point back at the root
    all move, once each; nothing is left on the source."""
    default, _, b2 = _three(client, backend_url_factory)
    root = BkmNode("root")
    a, b, me = BkmNode("a", 1), BkmNode("b", 2), BkmNode("me", 3)
    a.next, b.next, me.next = b, a, me
    many = [BkmNode(f"n{i}", i) for i in range(50)]
    for node in many:
        node.next = root
    root.next = a
    root.children = [*many, me]
    root.make_persistent(alias="root")
    unreached = _stored("unreached", default)
    everything = [root, a, b, me, *many]
    ids = [_id(n) for n in everything]

    root.move(b2, recursive=True)

    urls = backend_urls(db_url)
    assert_only_on(urls, "bkm_node", ids, b2)
    assert_only_on(urls, "bkm_node", [_id(unreached)], default)
    assert ids_in(urls[b2], "bkm_node_children", "owner_id") == [_id(root)] * 51
    assert count_rows(urls[default], "bkm_node_children") == 0
    assert count_rows(db_url, "dc_move") == 0
    assert all(n._dc_backend_id == b2 for n in everything)
    with OtherClient(db_url) as other:
        seen = other.run(BkmNode.get_by_alias, "root")
        assert seen._dc_backend_id == b2
        assert [c.label for c in seen.children] == [*(f"n{i}" for i in range(50)), "me"]
        assert [c.value for c in seen.children[:50]] == list(range(50))
        assert seen.children[7].next is seen
        assert seen.next.next.next is seen.next
        assert seen.children[50].next is seen.children[50]
        assert seen.next.tags == ["a", "node"]


def test_recursive_move_with_remotes_takes_referents_on_other_backends(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """remotes=True (the default): the root's referents on every backend move, and theirs;
    one already on the target stays."""
    default, b1, b2 = _three(client, backend_url_factory)
    root, local = _stored("root", b1), _stored("local", b1)
    remote, behind = _stored("remote", default), _stored("behind", b1)
    there = _stored("there", b2)
    remote.next = behind  # reached through the remote one
    root.next = remote
    root.children = [local, there]

    root.move(b2, recursive=True)

    urls = backend_urls(db_url)
    assert_only_on(urls, "bkm_node", [_id(n) for n in (root, local, remote, behind, there)], b2)
    assert [n._dc_backend_id for n in (root, local, remote, behind)] == [b2] * 4


def test_recursive_move_without_remotes_takes_only_the_roots_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """remotes=False: referents on the root's backend move; those on other backends stay, and
    the walk does not go through them."""
    default, b1, b2 = _three(client, backend_url_factory)
    root, local, deeper = _stored("root", b1), _stored("local", b1), _stored("deeper", b1)
    remote, behind = _stored("remote", default), _stored("behind", b1)
    local.next = deeper
    remote.next = behind
    root.next = remote
    root.children = [local]

    root.move("b2", recursive=True, remotes=False)

    urls = backend_urls(db_url)
    assert_only_on(urls, "bkm_node", [_id(n) for n in (root, local, deeper)], b2)
    assert_only_on(urls, "bkm_node", [_id(remote)], default)
    assert_only_on(urls, "bkm_node", [_id(behind)], b1)
    with OtherClient(db_url) as other:
        seen = other.run(BkmNode.get_by_id, _id(root))
        assert (seen.next.label, seen.next._dc_backend_id) == ("remote", default)
        assert seen.children[0].next.label == "deeper"


def test_make_persistent_on_a_stored_object_moves_it_alone_then_adds_the_alias(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Not recursive: the referent stays; the alias names the moved object."""
    default, _, b2 = _three(client, backend_url_factory)
    node = BkmNode("mover", 5)
    node.next = BkmNode("stays")
    node.make_persistent(alias="first")
    node.make_persistent(alias="second", backend_id=b2)
    urls = backend_urls(db_url)
    assert node.next is not None
    assert_only_on(urls, "bkm_node", [_id(node)], b2)
    assert_only_on(urls, "bkm_node", [_id(node.next)], default)
    assert node.get_aliases() == {"first", "second"}
    with OtherClient(db_url) as other:
        by_alias = other.run(BkmNode.get_by_alias, "second")
        assert other.run(BkmNode.get_by_alias, "first") is by_alias
        assert (by_alias.value, by_alias._dc_backend_id) == (5, b2)
        assert by_alias.next.label == "stays"


def test_a_move_runs_as_a_coroutine(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """a_move (asyncio.run) moves like move."""
    _, b1, b2 = _three(client, backend_url_factory)
    root = _stored("async", b1)
    root.next = _stored("reached", b1)
    asyncio.run(root.a_move(b2, recursive=True))
    assert root.next is not None
    assert_only_on(backend_urls(db_url), "bkm_node", [_id(root), _id(root.next)], b2)
    assert root._dc_backend_id == b2


def test_no_move_inside_a_session_or_an_activemethod(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """SessionStateError, nothing moved (the session's other changes still commit)."""
    default, _, b2 = _three(client, backend_url_factory)
    node = BkmNode("kept")
    node.make_persistent()
    with client.session():
        node.value = 7
        with pytest.raises(SessionStateError, match="session"):
            node.move(b2)
        with pytest.raises(SessionStateError, match="session"):
            node.make_persistent(backend_id=b2)
    with pytest.raises(SessionStateError):
        node.move_from_inside(b2)
    urls = backend_urls(db_url)
    assert_only_on(urls, "bkm_node", [_id(node)], default)
    assert values_in(db_url, "bkm_node", "value", _id(node)) == [7]


def test_after_a_move_everything_resolves_and_only_the_target_holds_rows(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Aliases, get_by_id, references from objects on other backends and the values (JSON and
    links included) are intact; the source keeps no row of any kind."""
    default, b1, b2 = _three(client, backend_url_factory)
    node = BkmNode("traveller", 42)
    node.tags = ["x", "y"]
    node.children = [_stored("child", default)]
    node.make_persistent(alias="traveller", backend_id=b1)
    node.add_alias("again")
    holder = _stored("holder", default)
    holder.next = node
    holder.children = [node]

    node.move(b2)

    urls = backend_urls(db_url)
    node_id = _id(node)
    assert_only_on(urls, "bkm_node", [node_id], b2)
    for backend, url in urls.items():
        owners = ids_in(url, "bkm_node_children", "owner_id")
        assert owners.count(node_id) == (1 if backend == b2 else 0)
    assert registry(urls[b1]) == {}
    assert count_rows(urls[b1], "bkm_node") == 0
    assert count_rows(urls[b1], "bkm_node_children") == 0
    assert count_rows(db_url, "dc_move") == 0
    assert count_rows(db_url, "dc_alias") == 2
    with OtherClient(db_url) as other:
        for look in (
            lambda: BkmNode.get_by_alias("traveller"),
            lambda: BkmNode.get_by_alias("again"),
            lambda: BkmNode.get_by_id(node_id),
            lambda: BkmNode.get_by_id(str(node_id)),
            lambda: BkmNode.get_by_id(_id(holder)).next,
            lambda: BkmNode.get_by_id(_id(holder)).children[0],
        ):
            seen = other.run(look)
            assert (seen.label, seen.value, seen.tags) == ("traveller", 42, ["x", "y"])
            assert seen._dc_backend_id == b2
            assert [c.label for c in seen.children] == ["child"]
        assert other.run(BkmNode.get_by_alias, "traveller").get_aliases() == {"traveller", "again"}


def test_a_move_takes_every_table_of_a_subclass_and_its_link_tables(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A subclass's rows (its parent's table too) and its list, dict and set links move."""
    default, b1, _ = _three(client, backend_url_factory)
    leaf = BkmLeaf("leaf", "red")
    leaf.children = [BkmNode("c")]
    leaf.peers = {"p": BkmNode("p"), "q": BkmLeaf("q")}
    leaf.marks = {BkmNode("m")}
    leaf.make_persistent(alias="leaf")
    reached = [leaf.children[0], *leaf.peers.values(), *leaf.marks]

    leaf.move(b1, recursive=True)

    urls = backend_urls(db_url)
    assert_only_on(urls, "bkm_node", [_id(n) for n in (leaf, *reached)], b1)
    assert_only_on(urls, "bkm_leaf", [_id(leaf), _id(leaf.peers["q"])], b1)
    for table in LEAF_TABLES:
        assert count_rows(urls[default], table) == 0, table
    assert ids_in(urls[b1], "bkm_leaf_peers", "owner_id") == [_id(leaf)] * 2
    with OtherClient(db_url) as other:
        seen = other.run(BkmLeaf.get_by_alias, "leaf")
        assert (seen.colour, seen.label, seen.tags) == ("red", "leaf", ["leaf", "node"])
        assert {k: type(v).__name__ for k, v in seen.peers.items()} == {
            "p": "BkmNode",
            "q": "BkmLeaf",
        }
        assert [m.label for m in seen.marks] == ["m"]
        assert seen.children[0].label == "c"


def test_a_recursive_move_reaches_a_backend_added_by_another_client(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """remotes=True: a referent on a backend this client has not used yet moves too."""
    _, b1, _ = _three(client, backend_url_factory)
    with OtherClient(db_url) as other:
        late = other.client.add_backend(backend_url_factory("second"), name="late")

        def build() -> UUID:
            far = BkmNode("far")
            far.make_persistent(backend_id=late)
            root = BkmNode("root")
            root.next = far
            root.make_persistent(alias="root")
            return _id(far)

        far_id = other.run(build)
    root = BkmNode.get_by_alias("root")
    root.move(b1, recursive=True)
    assert_only_on(backend_urls(db_url), "bkm_node", [_id(root), far_id], b1)


def test_a_moved_object_is_deleted_and_versioned_on_its_new_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """After a move, versions are made on the target and dc_delete removes the target's
    rows and the references to it."""
    _, b1, _ = _three(client, backend_url_factory)
    node = BkmNode("moved", 1)
    node.make_persistent(alias="moved")
    holder = _stored("holder", b1)
    holder.next = node
    node.move(b1)
    version = node.new_version()
    assert version._dc_backend_id == b1
    version.value = 2
    version.consolidate_version()
    assert values_in(backend_urls(db_url)[b1], "bkm_node", "value", _id(node)) == [2]
    node_id = _id(node)
    node.dc_delete()
    for url in backend_urls(db_url).values():
        assert node_id not in ids_in(url, "bkm_node")
        assert node_id not in registry(url)
    assert count_rows(db_url, "dc_alias") == 0
    assert holder.next is None
    assert_only_on(backend_urls(db_url), "bkm_node", [_id(holder)], b1)
