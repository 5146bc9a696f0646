"""Backends (issue 13): routing — every operation goes to the object's backend.

``make_persistent(backend_id=...)``, ``Client(backend=...)``, references across backends
(single, list, set, dict), reads, writes, activemethods, ``dc_delete``, ``dc_update``,
``dc_clone``, versions, aliases, sessions over two backends, ``_dc_meta``/``_dc_backend_id``,
``sync()`` after another client or process moved the object, and a stale client that follows
an object moved under it.  Placement is proved by reading the backend databases' tables
directly (the row is on backend b, its ``dc_object`` row names b, no other backend has either)
and by a new client of the same metadata database.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from uuid import UUID

import pytest

from claystore import Client, DataClayObject, activemethod
from claystore.errors import (
    AliasDoesNotExistError,
    CrossBackendTransactionError,
    ObjectDoesNotExistError,
    ObjectMovedError,
)
from tests.orm.backend_helpers import (
    OtherClient,
    assert_only_on,
    backend_urls,
    ids_in,
    registry,
    values_in,
)


class BkrPart(DataClayObject):
    __tablename__ = "bkr_part"

    name: str
    weight: float = 0.0

    def __init__(self, name: str, weight: float = 0.0) -> None:
        self.name = name
        self.weight = weight

    @activemethod
    def add_weight(self, amount: float) -> float:
        self.weight += amount
        return self.weight

    @activemethod
    def split(self, name: str) -> BkrPart:
        """A new part holding half the weight (an object made inside an activemethod)."""
        half = self.weight / 2
        self.weight = half
        return BkrPart(name, half)


class BkrAssembly(DataClayObject):
    __tablename__ = "bkr_assembly"

    name: str
    main: BkrPart | None = None
    parts: list[BkrPart]
    spares: set[BkrPart]
    by_role: dict[str, BkrPart]

    def __init__(self, name: str, main: BkrPart | None = None) -> None:
        self.name = name
        self.main = main
        self.parts = []
        self.spares = set()
        self.by_role = {}


LINKS = ("bkr_assembly_parts", "bkr_assembly_spares", "bkr_assembly_by_role")


def _ids(client: Client) -> list[UUID]:
    return list(client.get_backends())


def _three(client: Client, new: Callable[..., str]) -> list[UUID]:
    """The metadata database, a local backend ``b1`` and one on the second server ``b2``."""
    client.add_backend(new("local"), name="b1")
    client.add_backend(new("second"), name="b2")
    return _ids(client)


def _id(obj: DataClayObject) -> UUID:
    return obj._dc_meta.id


def test_make_persistent_puts_the_object_and_every_new_object_it_reaches_on_the_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """References, lists, sets and dicts of new objects follow the root; an object stored
    before stays where it is."""
    default, _, b2 = _three(client, backend_url_factory)
    kept = BkrPart("stored before", 1.0)
    kept.make_persistent()
    assembly = BkrAssembly("a", BkrPart("main", 2.0))
    assembly.parts = [BkrPart("p0"), BkrPart("p1"), kept]
    assembly.spares = {BkrPart("spare")}
    assembly.by_role = {"pump": BkrPart("pump")}
    assembly.make_persistent(alias="assembly", backend_id=b2)

    new_parts = [assembly.main, *assembly.parts[:2], *assembly.spares, *assembly.by_role.values()]
    assert all(p is not None and p._dc_backend_id == b2 for p in new_parts)
    urls = backend_urls(db_url)
    assert_only_on(urls, "bkr_assembly", [_id(assembly)], b2)
    assert_only_on(urls, "bkr_part", [_id(p) for p in new_parts if p is not None], b2)
    assert_only_on(urls, "bkr_part", [_id(kept)], default)
    for link in LINKS:  # the link rows live with their owner
        for backend, url in urls.items():
            owners = ids_in(url, link, "owner_id")
            assert set(owners) == ({_id(assembly)} if backend == b2 else set()), link

    with OtherClient(db_url) as other:
        seen = other.run(BkrAssembly.get_by_alias, "assembly")
        assert seen._dc_backend_id == b2
        assert seen.main.name == "main"
        assert [p.name for p in seen.parts] == ["p0", "p1", "stored before"]
        assert seen.parts[2]._dc_backend_id == default
        assert {p.name for p in seen.spares} == {"spare"}
        assert seen.by_role["pump"].name == "pump"


def test_references_across_backends_load_and_write_through(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A root on b1 whose reference, list, set and dict hold objects on the three backends:
    a new client loads each, and writes through them land on each one's backend."""
    default, b1, b2 = _three(client, backend_url_factory)
    on = {}
    for backend, name in ((default, "d"), (b1, "one"), (b2, "two")):
        on[name] = BkrPart(name, 1.0)
        on[name].make_persistent(backend_id=backend)
    assembly = BkrAssembly("root", on["two"])
    assembly.parts = [on["d"], on["two"], on["one"]]
    assembly.spares = {on["d"], on["two"]}
    assembly.by_role = {"x": on["two"], "y": on["d"]}
    assembly.make_persistent(alias="root", backend_id=b1)
    assert_only_on(backend_urls(db_url), "bkr_assembly", [_id(assembly)], b1)

    with OtherClient(db_url) as other:
        seen = other.run(BkrAssembly.get_by_alias, "root")
        assert (seen.main.name, seen.main._dc_backend_id) == ("two", b2)
        assert [(p.name, p._dc_backend_id) for p in seen.parts] == [
            ("d", default),
            ("two", b2),
            ("one", b1),
        ]
        assert {(p.name, p._dc_backend_id) for p in seen.spares} == {("d", default), ("two", b2)}
        assert {k: p.name for k, p in seen.by_role.items()} == {"x": "two", "y": "d"}
        assert seen.parts[1] is seen.main is seen.by_role["x"]
        seen.main.weight = 5.0
        seen.parts[0].add_weight(2.0)
        seen.parts = [*seen.parts, seen.parts[2]]  # containers are stored when assigned
    urls = backend_urls(db_url)
    assert values_in(urls[b2], "bkr_part", "weight", _id(on["two"])) == [5.0]
    assert values_in(urls[default], "bkr_part", "weight", _id(on["d"])) == [3.0]
    assert ids_in(urls[b1], "bkr_assembly_parts", "target_id").count(_id(on["one"])) == 2
    assert on["two"].weight == 5.0
    assert [p.name for p in assembly.parts] == ["d", "two", "one", "one"]


def test_reads_writes_and_activemethods_go_to_the_objects_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Every change of an object on b2 is in b2's row, and in no other backend."""
    default, _, b2 = _three(client, backend_url_factory)
    part = BkrPart("gear", 4.0)
    part.make_persistent(alias="gear", backend_id="b2")
    part.weight = 10.0
    assert part.add_weight(2.0) == 12.0
    urls = backend_urls(db_url)
    assert values_in(urls[b2], "bkr_part", "weight", _id(part)) == [12.0]
    assert_only_on(urls, "bkr_part", [_id(part)], b2)
    meta = part._dc_meta
    assert (meta.master_backend_id, meta.class_name) == (b2, "bkr_part")
    assert meta.dataset_name == "default"
    assert part._dc_backend_id == b2
    with OtherClient(db_url) as other:
        seen = other.run(BkrPart.get_by_id, _id(part))
        assert (seen.name, seen.weight, seen._dc_backend_id) == ("gear", 12.0, b2)
        assert seen.add_weight(1.0) == 13.0
    assert part.weight == 13.0
    assert values_in(urls[default], "bkr_part", "weight", _id(part)) == []


def test_an_object_made_in_an_activemethod_is_stored(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """The part an activemethod of an object on b2 returns is stored, once, and reads back."""
    _, _, b2 = _three(client, backend_url_factory)
    part = BkrPart("whole", 8.0)
    part.make_persistent(backend_id=b2)
    half = part.split("half")
    assert half.is_registered
    assert (half.name, half.weight, part.weight) == ("half", 4.0, 4.0)
    urls = backend_urls(db_url)
    homes = [b for b, url in urls.items() if _id(half) in ids_in(url, "bkr_part")]
    assert homes == [half._dc_backend_id]
    assert registry(urls[homes[0]])[_id(half)] == homes[0]


def test_new_objects_reached_by_a_write_go_to_the_writers_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A transient part assigned to an assembly on b2 is stored on b2."""
    _, _, b2 = _three(client, backend_url_factory)
    assembly = BkrAssembly("holder")
    assembly.make_persistent(backend_id=b2)
    assembly.main = BkrPart("assigned")
    assembly.parts = [BkrPart("listed")]
    assert assembly.main is not None
    urls = backend_urls(db_url)
    assert_only_on(urls, "bkr_part", [_id(assembly.main), _id(assembly.parts[0])], b2)


def test_an_object_made_in_an_activemethod_goes_to_the_objects_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """The part an activemethod of a part on b2 makes is stored on b2."""
    _, _, b2 = _three(client, backend_url_factory)
    part = BkrPart("whole", 8.0)
    part.make_persistent(backend_id=b2)
    half = part.split("half")
    assert_only_on(backend_urls(db_url), "bkr_part", [_id(half)], b2)


def test_delete_update_and_clone_on_a_non_default_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """dc_update writes b2's row, dc_clone copies it (stored where asked), dc_delete removes
    its rows there, its alias, and the references to it on other backends."""
    default, b1, b2 = _three(client, backend_url_factory)
    part = BkrPart("old", 1.0)
    part.make_persistent(alias="doomed", backend_id=b2)
    part.dc_update(BkrPart("new", 9.0))
    urls = backend_urls(db_url)
    assert values_in(urls[b2], "bkr_part", "name", _id(part)) == ["new"]
    assert values_in(urls[b2], "bkr_part", "weight", _id(part)) == [9.0]

    clone = part.dc_clone()
    assert not clone.is_registered
    assert (clone.name, clone.weight) == ("new", 9.0)
    clone.make_persistent(backend_id=b1)
    assert_only_on(urls, "bkr_part", [_id(clone)], b1)
    other_clone = BkrPart.dc_clone_by_alias("doomed")
    other_clone.make_persistent()
    assert_only_on(urls, "bkr_part", [_id(other_clone)], default)

    holder = BkrAssembly("holder", part)
    holder.parts = [part, clone]
    holder.make_persistent(backend_id=b1)
    part_id = _id(part)
    part.dc_delete()
    for url in urls.values():
        assert part_id not in ids_in(url, "bkr_part")
        assert part_id not in registry(url)
    assert not part.is_registered
    assert holder.main is None
    assert [p.name for p in holder.parts] == ["new"]
    with OtherClient(db_url) as other:
        with pytest.raises(AliasDoesNotExistError):
            other.run(BkrPart.get_by_alias, "doomed")
        with pytest.raises(ObjectDoesNotExistError):
            other.run(BkrPart.get_by_id, part_id)
        seen = other.run(BkrAssembly.get_by_id, _id(holder))
        assert seen.main is None
        assert [p.name for p in seen.parts] == ["new"]
    assert_only_on(urls, "bkr_part", [_id(clone)], b1)


def _read_holder(holder_id: object) -> tuple[object, object, object]:
    found = BkrAssembly.get_by_id(holder_id)  # type: ignore[arg-type]
    return found.main, found.parts, found.by_role


def test_references_on_other_backends_to_a_deleted_object_read_as_gone(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """dc_delete clears references to the object on its own backend only (a delete writes one
    backend); a holder on another backend reads the reference as None and leaves the object
    out of its containers, from this client and from a new one."""
    _, b1, b2 = _three(client, backend_url_factory)
    part = BkrPart("gone")
    part.make_persistent(backend_id=b2)
    holder = BkrAssembly("holder", part)
    holder.parts = [part]
    holder.by_role = {"r": part}
    holder.make_persistent(backend_id=b1)
    part_id = _id(part)
    part.dc_delete()
    url = backend_urls(db_url)[b1]
    kept = values_in(url, "bkr_assembly", "main_id", _id(holder))
    assert [str(k).replace("-", "") for k in kept] == [part_id.hex]  # kept there
    assert holder.main is None
    assert holder.parts == []
    assert holder.by_role == {}
    with OtherClient(db_url) as other:
        seen = other.run(_read_holder, _id(holder))
    assert seen == (None, [], {})


def test_versions_of_an_object_on_a_backend_stay_with_it(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """new_version on b2 makes the version on b2; consolidate_version writes b2's row."""
    default, _, b2 = _three(client, backend_url_factory)
    part = BkrPart("base", 1.0)
    part.make_persistent(alias="versioned", backend_id=b2)
    version = part.new_version()
    assert version._dc_backend_id == b2
    assert version._dc_meta.original_object_id == _id(part)
    assert part._dc_meta.versions_object_ids == (_id(version),)
    urls = backend_urls(db_url)
    assert_only_on(urls, "bkr_part", [_id(part), _id(version)], b2)
    version.weight = 7.0
    assert part.weight == 1.0
    version.consolidate_version()
    assert part.weight == 7.0
    assert values_in(urls[b2], "bkr_part", "weight", _id(part)) == [7.0]
    assert values_in(urls[default], "bkr_part", "weight", _id(part)) == []
    with OtherClient(db_url) as other:
        assert other.run(BkrPart.get_by_alias, "versioned").weight == 7.0


def test_client_backend_option_picks_the_backend_of_new_objects(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Client(url, backend=name or id): make_persistent and sessions store new objects there;
    backend_id= still overrides it."""
    with Client(db_url) as setup:
        default, b1, b2 = _three(setup, backend_url_factory)
    with Client(db_url, backend="b1"):
        by_name = BkrPart("by name")
        by_name.make_persistent()
        by_name_id = _id(by_name)
        override = BkrPart("override")
        override.make_persistent(backend_id="default")
        override_id = _id(override)
    with Client(db_url, backend=b2) as chosen:
        assembly = BkrAssembly("in session", BkrPart("reached"))
        with chosen.session() as session:
            session.add(assembly, alias="session-made")
        assembly_id, reached_id = _id(assembly), _id(assembly.main)  # type: ignore[arg-type]
    urls = backend_urls(db_url)
    assert_only_on(urls, "bkr_part", [by_name_id], b1)
    assert_only_on(urls, "bkr_part", [override_id], default)
    assert_only_on(urls, "bkr_assembly", [assembly_id], b2)
    assert_only_on(urls, "bkr_part", [reached_id], b2)
    with Client(db_url):  # the default of a plain client is still the metadata database
        plain = BkrPart("plain")
        plain.make_persistent()
        assert plain._dc_backend_id == default
        assert BkrAssembly.get_by_alias("session-made").main.name == "reached"


def test_a_session_writes_objects_on_two_backends(
    client: Client, db_url: str, backend_url_factory: Callable[..., str], engine_name: str
) -> None:
    """Changes and new objects on b1 and b2 in one session are all written at commit (a
    two-phase commit on PostgreSQL); a session that raises writes nothing on either.  On
    SQLite the session is refused before anything is written (CrossBackendTransactionError)."""
    _, b1, b2 = _three(client, backend_url_factory)
    one, two = BkrPart("one", 1.0), BkrPart("two", 2.0)
    one.make_persistent(backend_id=b1)
    two.make_persistent(backend_id=b2)
    urls = backend_urls(db_url)

    def both() -> BkrPart:
        with client.session():
            one.weight = 10.0
            two.weight = 20.0
            made = BkrPart("made in session", 3.0)
            made.make_persistent(backend_id="b2")
            two.add_weight(1.0)
        return made

    if engine_name == "sqlite":
        with pytest.raises(CrossBackendTransactionError, match="'b1' \\(SQLite\\)"):
            both()
        assert values_in(urls[b1], "bkr_part", "weight", _id(one)) == [1.0]
        assert values_in(urls[b2], "bkr_part", "weight", _id(two)) == [2.0]
        assert sorted(len(ids_in(url, "bkr_part")) for url in urls.values()) == [0, 1, 1]
        return
    made = both()
    assert values_in(urls[b1], "bkr_part", "weight", _id(one)) == [10.0]
    assert values_in(urls[b2], "bkr_part", "weight", _id(two)) == [21.0]
    assert_only_on(urls, "bkr_part", [_id(made)], b2)

    def abandoned() -> None:
        with client.session():
            one.weight = 99.0
            two.weight = 99.0
            BkrPart("never", 0.0).make_persistent(backend_id=b1)
            raise RuntimeError("abandon")

    with pytest.raises(RuntimeError, match="abandon"):
        abandoned()
    assert values_in(urls[b1], "bkr_part", "weight", _id(one)) == [10.0]
    assert values_in(urls[b2], "bkr_part", "weight", _id(two)) == [21.0]
    assert (one.weight, two.weight) == (10.0, 21.0)
    assert sorted(len(ids_in(url, "bkr_part")) for url in urls.values()) == [0, 1, 2]


# -- objects moved by another client -------------------------------------------------------------


def test_sync_after_another_client_moved_the_object(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A handle whose object another client moved still reads and runs activemethods (on the
    new backend); sync() and _dc_meta name the new backend; writes then land there only."""
    default, b1, b2 = _three(client, backend_url_factory)
    part = BkrPart("wanderer", 1.0)
    part.make_persistent(alias="wanderer", backend_id=b1)
    with OtherClient(db_url) as other:
        other.run(lambda: BkrPart.get_by_alias("wanderer").move(b2))
    assert part._dc_meta.master_backend_id == b2
    assert part.name == "wanderer"  # the stale handle still reads
    assert part.add_weight(1.0) == 2.0
    part.sync()
    assert part._dc_backend_id == b2
    part.weight = 3.0
    urls = backend_urls(db_url)
    assert values_in(urls[b2], "bkr_part", "weight", _id(part)) == [3.0]
    assert_only_on(urls, "bkr_part", [_id(part)], b2)

    with OtherClient(db_url) as other:  # moved back while this handle says b2
        other.run(lambda: BkrPart.get_by_alias("wanderer").move("default"))
    part.sync()
    assert part._dc_backend_id == default
    part.weight = 4.0
    assert part.weight == 4.0
    assert_only_on(urls, "bkr_part", [_id(part)], default)
    assert values_in(urls[default], "bkr_part", "weight", _id(part)) == [4.0]


def test_a_stale_handle_writes_where_the_object_moved(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """An assignment on a handle whose object another client moved lands on the new backend."""
    _, b1, b2 = _three(client, backend_url_factory)
    part = BkrPart("stale", 1.0)
    part.make_persistent(alias="stale", backend_id=b1)
    with OtherClient(db_url) as other:
        other.run(lambda: BkrPart.get_by_alias("stale").move(b2))
    part.weight = 2.0
    urls = backend_urls(db_url)
    assert values_in(urls[b2], "bkr_part", "weight", _id(part)) == [2.0]
    assert_only_on(urls, "bkr_part", [_id(part)], b2)


def test_a_stale_handle_follows_an_object_moved_in_a_session(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A session writing a handle whose object another client moved writes it on its new
    backend (or raises a retryable error), never on the old one."""
    _, b1, b2 = _three(client, backend_url_factory)
    part = BkrPart("in session", 1.0)
    part.make_persistent(alias="s", backend_id=b1)
    holder = BkrAssembly("holder", part)
    holder.make_persistent(backend_id=b1)
    with OtherClient(db_url) as other:
        other.run(lambda: BkrPart.get_by_alias("s").move(b2))

    def write() -> None:
        with client.session():
            part.weight = 6.0
            assert holder.main is part

    with pytest.raises(ObjectMovedError, match="run the transaction again"):
        write()
    assert part._dc_backend_id == b2  # the handle follows: run the session again
    with client.session():
        part.weight = 6.0
    urls = backend_urls(db_url)
    assert values_in(urls[b2], "bkr_part", "weight", _id(part)) == [6.0]
    assert_only_on(urls, "bkr_part", [_id(part)], b2)


def _move_in_a_process(db_url: str, alias: str, target: str) -> None:
    with Client(db_url):
        BkrPart.get_by_alias(alias).move(target)


def test_sync_after_another_process_moved_the_object(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A process moves the object; this one's sync() names the new backend, and its writes
    land there."""
    _, b1, b2 = _three(client, backend_url_factory)
    part = BkrPart("far", 1.0)
    part.make_persistent(alias="far", backend_id=b1)
    spawn = multiprocessing.get_context("spawn")
    worker = spawn.Process(target=_move_in_a_process, args=(db_url, "far", "b2"))
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    part.sync()
    assert part._dc_backend_id == b2
    part.weight = 2.5
    urls = backend_urls(db_url)
    assert values_in(urls[b2], "bkr_part", "weight", _id(part)) == [2.5]
    assert_only_on(urls, "bkr_part", [_id(part)], b2)
