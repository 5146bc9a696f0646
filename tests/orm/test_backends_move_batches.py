"""Backends (issue 13): a move handles its objects in batches, and settles under the lock what
changed after the copy.

A move sends the same statements for 600 objects as for 20 (ids go as one parameter per
batch; rows are copied table by table, on PostgreSQL by ``COPY`` from server to server); an
object written between the copy and the switch reaches the target with its last values, and one
deleted meanwhile is on no backend — checked in the databases' tables and from a new client
(the link rows naming the deleted object do reach the target: a known bug, marked).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import attrs
import pytest
import sqlalchemy as sa

from claystore import Client, DataClayObject
from claystore.orm import moving
from tests.orm.backend_helpers import assert_only_on, backend_urls, ids_in, registry


class MbNode(DataClayObject):
    __tablename__ = "mb_node"

    label: str
    tags: list[str]
    previous: MbNode | None = None
    kids: list[MbNode]

    def __init__(self, label: str) -> None:
        self.label = label
        self.tags = [label, "node"]
        self.kids = []


class MbLeaf(MbNode):
    __tablename__ = "mb_leaf"

    colour: str = "green"


def _graph(size: int) -> tuple[MbNode, list[MbNode]]:
    """A root whose ``kids`` are ``size - 1`` nodes (every third a leaf), each referring to
    the one before it."""
    kids: list[MbNode] = []
    for i in range(size - 1):
        kid = MbLeaf(f"leaf {i}") if i % 3 == 0 else MbNode(f"node {i}")
        kid.previous = kids[-1] if kids else None
        kids.append(kid)
    root = MbNode("root")
    root.kids = kids
    return root, kids


def _id(obj: DataClayObject) -> UUID:
    return obj._dc_meta.id


@contextmanager
def _hook(step: str, action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` when a move passes ``step`` (once)."""
    done = False

    def hook(name: str) -> None:
        nonlocal done
        if name == step and not done:
            done = True
            action()

    moving.step_hook = hook
    try:
        yield
    finally:
        moving.step_hook = None
    assert done, f"no move passed {step!r}"


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Every statement any engine sends while the block runs."""
    log: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        log.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)


@attrs.frozen
class Interleaved:
    """What a recursive move saw when another writer acted between its copy and its switch."""

    urls: dict[UUID, str]
    target: UUID
    root: UUID
    others: list[UUID]
    leaves: list[UUID]
    changed: UUID
    gone: UUID


@pytest.fixture
def interleaved(db_url: str, backend_url_factory: Callable[..., str]) -> Interleaved:
    """A root and 28 kids moved recursively; once the rows are copied, another write changes
    one kid (``changed``) and deletes the last one (``gone``, named only by ``root.kids``)."""
    with Client(db_url) as client:
        source = client.add_backend(backend_url_factory("local"), name="source")
        target = client.add_backend(backend_url_factory("second"), name="target")
        root, kids = _graph(29)
        root.make_persistent(backend_id=source)
        changed, gone = kids[4], kids[-1]
        assert isinstance(gone, MbLeaf)
        result = Interleaved(
            backend_urls(db_url),
            target,
            _id(root),
            [_id(root), *(_id(k) for k in kids[:-1])],
            [_id(k) for k in kids[:-1] if isinstance(k, MbLeaf)],
            _id(changed),
            _id(gone),
        )

        def meanwhile() -> None:
            changed.label = "changed after the copy"
            changed.tags = ["late"]
            gone.dc_delete()

        with _hook("copied", meanwhile):
            root.move(target, recursive=True)
    return result


def test_a_write_after_the_copy_reaches_the_target(db_url: str, interleaved: Interleaved) -> None:
    """The object changed after the copy is copied again under the lock: the target has its
    last values; every other object moved too."""
    moved = interleaved
    assert_only_on(moved.urls, "mb_node", moved.others, moved.target)
    assert_only_on(moved.urls, "mb_leaf", moved.leaves, moved.target)
    with Client(db_url):
        seen = MbNode.get_by_id(moved.changed)
        assert (seen.label, seen.tags) == ("changed after the copy", ["late"])
        assert seen._dc_backend_id == moved.target
        labels = [k.label for k in MbNode.get_by_id(moved.root).kids]
        assert labels[3:6] == ["leaf 3", "changed after the copy", "node 5"]
        assert "leaf 27" not in labels


def test_an_object_deleted_after_the_copy_is_on_no_backend(interleaved: Interleaved) -> None:
    """The object deleted after the copy has no registry row and no class row anywhere: its
    copy on the target is dropped under the lock."""
    for url in interleaved.urls.values():
        assert interleaved.gone not in registry(url)
        assert interleaved.gone not in ids_in(url, "mb_node")
        assert interleaved.gone not in ids_in(url, "mb_leaf")


@pytest.mark.xfail(
    strict=True,
    reason=(
        "bug: dc_delete removes the link rows naming the deleted object (persistence."
        "delete_objects) without bumping their owner's dc_version; the move's re-check under "
        "the lock compares row versions only, so the owner's link rows copied before the "
        "delete reach the target, naming an object that no longer exists"
    ),
)
def test_links_to_an_object_deleted_after_the_copy_do_not_reach_the_target(
    interleaved: Interleaved,
) -> None:
    """No link row on any backend names the object deleted after the copy."""
    for url in interleaved.urls.values():
        assert interleaved.gone not in ids_in(url, "mb_node_kids", "target_id")


@pytest.mark.parametrize("sizes", [(20, 600)])
def test_a_move_sends_as_many_statements_for_many_objects_as_for_few(
    db_url: str, backend_url_factory: Callable[..., str], sizes: tuple[int, int]
) -> None:
    """Moving 600 objects (more than one IN list of 500 used to take) sends the same statements
    as moving 20, there and back."""
    with Client(db_url) as client:
        source = client.add_backend(backend_url_factory("local"), name="source")
        target = client.add_backend(backend_url_factory("second"), name="target")
        counts = []
        for size in sizes:
            root, kids = _graph(size)
            root.make_persistent(backend_id=source)
            with _statements() as log:
                root.move(target, recursive=True)
            counts.append(len(log))
            assert all(k._dc_backend_id == target for k in kids)
            root.move(source, recursive=True)
            assert all(k._dc_backend_id == source for k in kids)
        few, many = counts
        assert many == few, counts
        assert many < 60, counts
    urls = backend_urls(db_url)
    assert len(ids_in(urls[target], "mb_node")) == 0
    assert len(ids_in(urls[source], "mb_node")) == sum(sizes)
