"""Backends (issue 13): the registry API and bad input.

``add_backend``/``get_backends``/``remove_backend`` and ``Client(backend=...)``: ids, order,
names, hidden passwords, what every client of the metadata database sees, and each refusal
(unknown backend, unreachable database, a database registered twice, a name taken, an
in-memory database, a backend in use, a backend used as a metadata database, moves refused)
with nothing half-written: checked through the API, a new client and the databases' tables
read directly.  Every test runs with SQLite files and with PostgreSQL schemas on two servers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from claystore import BackendInfo, Client, DataClayObject
from claystore.errors import (
    BackendAlreadyExistsError,
    BackendDoesNotExistError,
    BackendInUseError,
    ConfigurationError,
    DatabaseConnectionError,
    MoveError,
)
from tests.conftest import _fresh_schema
from tests.orm.backend_helpers import (
    OtherClient,
    assert_only_on,
    backend_rows,
    backend_urls,
    count_rows,
    hidden,
    ids_in,
    plain_engine,
    registry,
    with_password,
)


class BkItem(DataClayObject):
    __tablename__ = "bk_item"

    name: str
    n: int = 0

    def __init__(self, name: str, n: int = 0) -> None:
        self.name = name
        self.n = n


class BkBox(DataClayObject):
    __tablename__ = "bk_box"

    label: str
    item: BkItem | None = None
    items: list[BkItem]

    def __init__(self, label: str, item: BkItem | None = None) -> None:
        self.label = label
        self.item = item
        self.items = []


@pytest.fixture
def other_engine_url(
    engine_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """An empty database of the other engine (PostgreSQL for a SQLite ``db_url``)."""
    if engine_name == "postgresql":
        yield f"sqlite:///{tmp_path}/other_engine.db"
        return
    database = request.getfixturevalue("postgres_database")
    if database is None:
        pytest.skip("PostgreSQL is not reachable")
    with _fresh_schema(database) as url:
        yield url


def _default_id(client: Client) -> UUID:
    return next(iter(client.get_backends()))


def _unreachable(engine_name: str, tmp_path: Path) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path}/no/such/directory/backend.db"
    return "postgresql+psycopg://postgres:secret@127.0.0.1:5499/nowhere"


# -- add_backend / get_backends ------------------------------------------------------------------


def test_get_backends_lists_the_metadata_database_first_then_backends_in_order_added(
    client: Client, db_url: str, engine_name: str, backend_url_factory: Callable[..., str]
) -> None:
    """Ids, order, default names and URLs, as listed and as stored in both kinds of database."""
    urls = [backend_url_factory("local"), backend_url_factory("second"), backend_url_factory()]
    default = _default_id(client)
    ids = [client.add_backend(url) for url in urls]
    assert all(isinstance(i, UUID) for i in ids)
    assert len({default, *ids}) == 4

    backends = client.get_backends()
    assert list(backends) == [default, *ids]
    assert backends[default] == BackendInfo(default, "default", client.url, True)
    if engine_name == "sqlite":
        names = ["backend_1", "backend_2", "backend_3"]
    else:  # the database's name; two schemas of one database: numbered
        local, second = (make_url(u).database for u in urls[:2])
        names = [local, second, f"{local}-2"]
    for backend_id, url, name in zip(ids, urls, names, strict=True):
        assert backends[backend_id] == BackendInfo(backend_id, name, hidden(url), False)

    stored = {r["id"]: r for r in backend_rows(db_url)}
    assert stored[default] == {
        "id": default,
        "name": "default",
        "url": None,
        "is_default": True,
        "store_id": None,
    }
    for backend_id, url, name in zip(ids, urls, names, strict=True):
        assert stored[backend_id]["url"] == url
        assert stored[backend_id]["name"] == name
        # the backend database knows it is this store's backend
        assert backend_rows(url) == [
            {"id": backend_id, "name": name, "url": None, "is_default": False, "store_id": default}
        ]
    assert client.get_backends() == backends  # stable


def test_default_names_are_numbered_when_taken(
    client: Client, engine_name: str, tmp_path: Path, backend_url_factory: Callable[..., str]
) -> None:
    """Databases with the same name get ``name``, ``name-2``, ``name-3``; a given name is kept."""
    if engine_name == "sqlite":
        for folder in ("a", "b", "c"):
            (tmp_path / folder).mkdir()
        urls = [f"sqlite:///{tmp_path}/{folder}/shared.db" for folder in ("a", "b", "c")]
        base = "shared"
    else:
        urls = [backend_url_factory() for _ in range(3)]
        base = str(make_url(urls[0]).database)
    named = client.add_backend(backend_url_factory("second"), name="archive")
    ids = [client.add_backend(url) for url in urls]
    backends = client.get_backends()
    assert [backends[i].name for i in ids] == [base, f"{base}-2", f"{base}-3"]
    assert backends[named].name == "archive"


def test_urls_never_show_the_password(
    db_url: str,
    engine_name: str,
    backend_url_factory: Callable[..., str],
    other_engine_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A password in the metadata or a backend URL shows in no BackendInfo, repr, message or
    log (PostgreSQL trust authentication takes any password; a SQLite store gets a PostgreSQL
    backend), but is kept to connect: a new client opens the backend."""
    caplog.set_level(logging.DEBUG)
    if engine_name == "postgresql":
        meta_url, backend_url = with_password(db_url, "secret"), backend_url_factory("second")
    else:
        meta_url, backend_url = db_url, other_engine_url
    backend_url = with_password(backend_url, "secret")
    with Client(meta_url) as client:
        backend = client.add_backend(backend_url)
        item = BkItem("on the backend")
        item.make_persistent(alias="pw", backend_id=backend)
        item_id = item._dc_meta.id
        shown = client.get_backends()
        texts = [repr(shown), str(shown), repr(client), client.url, *map(str, shown.values())]
        with pytest.raises(BackendAlreadyExistsError) as again:
            client.add_backend(backend_url)
        texts.append(str(again.value))
        with pytest.raises(DatabaseConnectionError) as unreachable:
            client.add_backend("postgresql+psycopg://postgres:secret@127.0.0.1:5499/nowhere")
        texts.append(str(unreachable.value))
    assert shown[backend].url == hidden(backend_url)
    assert "***" in shown[backend].url
    texts.append(caplog.text)
    assert caplog.text  # the log was captured
    for text in texts:
        assert "secret" not in text
    with Client(meta_url) as fresh:
        assert BkItem.get_by_alias("pw").name == "on the backend"
        assert fresh.get_backends() == shown
    assert registry(backend_url)[item_id] == backend


def test_every_client_of_the_metadata_database_sees_the_same_backends(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A client started before a backend was added finds it when it loads an object there,
    and its writes land there."""
    first = client.add_backend(backend_url_factory("local"), name="first")
    with OtherClient(db_url) as other:
        assert other.client.get_backends() == client.get_backends()
        later = client.add_backend(backend_url_factory("second"), name="later")
        assert other.client.get_backends() == client.get_backends()
        item = BkItem("late", 1)
        item.make_persistent(alias="late", backend_id="later")
        seen = other.run(BkItem.get_by_id, item._dc_meta.id)
        assert (seen.name, seen.n, seen._dc_backend_id) == ("late", 1, later)
        assert other.run(BkItem.get_by_alias, "late") is seen
        seen.n = 2
        assert item.n == 2
        made = BkItem("other's")
        other.run(made.make_persistent, backend_id=first)
        assert made._dc_backend_id == first
        made_id = made._dc_meta.id
    urls = backend_urls(db_url)
    assert_only_on(urls, "bk_item", [item._dc_meta.id], later)
    assert_only_on(urls, "bk_item", [made_id], first)
    with Client(db_url) as fresh:
        assert list(fresh.get_backends()) == [_default_id(client), first, later]
        assert BkItem.get_by_alias("late").n == 2


# -- unknown backends ------------------------------------------------------------------------------


@pytest.mark.parametrize("unknown", ["no-such-backend", uuid.UUID(int=12345)])
def test_unknown_backend_is_refused_naming_it_everywhere(
    client: Client, db_url: str, backend_url_factory: Callable[..., str], unknown: object
) -> None:
    """make_persistent, move, Client(backend=...) and remove_backend name the unknown backend
    and write nothing."""
    backend = client.add_backend(backend_url_factory("second"))
    before = client.get_backends()
    item = BkItem("kept")
    with pytest.raises(BackendDoesNotExistError, match=str(unknown)):
        item.make_persistent(backend_id=unknown)
    assert not item.is_registered
    assert registry(db_url) == {}
    item.make_persistent(backend_id=backend)
    with pytest.raises(BackendDoesNotExistError, match=str(unknown)):
        item.move(unknown)
    with pytest.raises(BackendDoesNotExistError, match=str(unknown)):
        client.remove_backend(unknown)
    late = Client(db_url, backend=unknown)
    with pytest.raises(BackendDoesNotExistError, match=str(unknown)):
        late.start()
    assert late.is_closed
    assert client.get_backends() == before
    assert_only_on(backend_urls(db_url), "bk_item", [item._dc_meta.id], backend)
    assert item.name == "kept"  # the test's client is still the active one


# -- unreachable, duplicate, metadata, name taken, in memory -------------------------------------


def test_unreachable_database_is_refused_and_nothing_registered(
    client: Client, db_url: str, engine_name: str, tmp_path: Path
) -> None:
    """A PostgreSQL port nobody listens on, or a SQLite file in a missing directory."""
    before = client.get_backends()
    url = _unreachable(engine_name, tmp_path)
    with pytest.raises(DatabaseConnectionError):
        client.add_backend(url)
    assert client.get_backends() == before
    assert len(backend_rows(db_url)) == 1
    assert not (tmp_path / "no").exists()
    with Client(db_url) as fresh:
        assert fresh.get_backends() == before


def test_a_registered_backend_that_cannot_be_reached_does_not_stop_the_start(
    db_url: str,
    engine_name: str,
    tmp_path: Path,
    backend_url_factory: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A backend whose database is gone: the start logs a warning naming it (no password),
    objects elsewhere work, and those on it raise DatabaseConnectionError naming it; the
    store is untouched."""
    with Client(db_url) as client:
        backend = client.add_backend(backend_url_factory("second"), name="lost")
        BkItem("there").make_persistent(alias="there", backend_id=backend)
        BkItem("here").make_persistent(alias="here")
    gone = _unreachable(engine_name, tmp_path)
    with plain_engine(db_url) as engine, engine.begin() as conn:
        conn.execute(sa.text("UPDATE dc_backend SET url = :url WHERE name = 'lost'"), {"url": gone})
    rows = backend_rows(db_url)
    with caplog.at_level(logging.WARNING, logger="claystore"), Client(db_url) as client:
        assert "'lost'" in caplog.text
        assert str(backend) in caplog.text
        assert backend in client.get_backends()
        assert BkItem.get_by_alias("here").name == "here"
        with pytest.raises(DatabaseConnectionError, match="'lost'") as refused:
            BkItem.get_by_alias("there")
        assert "secret" not in str(refused.value)
    assert backend_rows(db_url) == rows


def _same_database_spellings(engine_name: str, url: str, tmp_path: Path) -> list[str]:
    """Other URLs of the database at ``url``."""
    parsed = make_url(url)
    if engine_name == "sqlite":
        path = Path(str(parsed.database))
        return [
            f"sqlite:///{os.path.relpath(path, Path.cwd())}",
            f"sqlite:///{path.parent}/./{path.name}",
            f"sqlite:///{path.parent}/../{path.parent.name}/{path.name}",
        ]
    return [
        parsed.set(host="localhost").render_as_string(hide_password=False),
        with_password(url, "another"),
    ]


def test_the_same_database_twice_is_refused_under_any_spelling(
    client: Client,
    db_url: str,
    engine_name: str,
    tmp_path: Path,
    backend_url_factory: Callable[..., str],
) -> None:
    """Same URL, localhost vs 127.0.0.1, relative vs absolute path: BackendAlreadyExistsError
    naming the backend, nothing written in either database."""
    url = backend_url_factory("local")
    backend = client.add_backend(url, name="only")
    before = client.get_backends()
    for spelling in [url, *_same_database_spellings(engine_name, url, tmp_path)]:
        with pytest.raises(BackendAlreadyExistsError, match="only"):
            client.add_backend(spelling)
        with pytest.raises(BackendAlreadyExistsError, match="only"):
            client.add_backend(spelling, name="fresh-name")
    assert client.get_backends() == before
    assert len(backend_rows(db_url)) == 2
    assert [r["id"] for r in backend_rows(url)] == [backend]


def test_the_metadata_database_cannot_be_added_as_a_backend(
    db_url: str, engine_name: str, tmp_path: Path
) -> None:
    """Under its own URL or another spelling: it is the default backend already."""
    with Client(db_url, lock_timeout=2) as client:
        before = client.get_backends()
        rows = backend_rows(db_url)
        for spelling in [db_url, *_same_database_spellings(engine_name, db_url, tmp_path)]:
            with pytest.raises(BackendAlreadyExistsError, match="metadata database"):
                client.add_backend(spelling, name="itself")
        assert client.get_backends() == before
        assert backend_rows(db_url) == rows


def test_a_name_taken_is_refused_and_the_target_gets_no_row(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Another backend's name, or ``default`` (the metadata database's)."""
    client.add_backend(backend_url_factory("local"), name="taken")
    before = client.get_backends()
    target = backend_url_factory("second")
    for name in ("taken", "default"):
        with pytest.raises(BackendAlreadyExistsError, match=name):
            client.add_backend(target, name=name)
    assert client.get_backends() == before
    assert backend_rows(target) == []
    assert count_rows(target, "dc_object") == 0
    added = client.add_backend(target, name="free")  # the refusals left nothing in the way
    assert client.get_backends()[added].name == "free"


def test_a_database_of_another_store_is_refused(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """Another store's metadata database, or a backend of another store: a database belongs
    to one store.  Nothing is written in either store."""
    other_meta, others_backend = backend_url_factory("local"), backend_url_factory("second")
    with Client(other_meta) as other_store:
        other_store.add_backend(others_backend, name="theirs")
        BkItem("theirs").make_persistent(backend_id="theirs")
    before = client.get_backends()
    with pytest.raises(BackendAlreadyExistsError, match="another claystore store"):
        client.add_backend(other_meta)
    with pytest.raises(BackendAlreadyExistsError, match="another claystore store"):
        client.add_backend(others_backend)
    assert client.get_backends() == before
    assert len(backend_rows(other_meta)) == 2
    assert len(backend_rows(others_backend)) == 1
    assert list(registry(others_backend).values()) == [backend_rows(others_backend)[0]["id"]]


def test_a_store_mixes_engines(db_url: str, other_engine_url: str) -> None:
    """A SQLite store with a PostgreSQL backend, and the other way round (added through
    a_add_backend): objects and references across them, read by a new client."""
    with Client(db_url) as client:
        backend = asyncio.run(client.a_add_backend(other_engine_url, name="other-engine"))
        box = BkBox("here", BkItem("there"))
        box.make_persistent(alias="mixed")
        assert box.item is not None
        box.item.move("other-engine")
        box.move("other-engine")
        box.item.move("default")
        ids = (box._dc_meta.id, box.item._dc_meta.id)
        default = _default_id(client)
    urls = backend_urls(db_url)
    assert_only_on(urls, "bk_box", [ids[0]], backend)
    assert_only_on(urls, "bk_item", [ids[1]], default)
    with Client(db_url):
        seen = BkBox.get_by_alias("mixed")
        assert seen.item.name == "there"
        assert seen._dc_backend_id == backend


@pytest.mark.parametrize("memory", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(client: Client, db_url: str, memory: str) -> None:
    """An in-memory database lives in one process: ConfigurationError."""
    before = client.get_backends()
    with pytest.raises(ConfigurationError, match="memory"):
        client.add_backend(memory)
    assert client.get_backends() == before
    assert len(backend_rows(db_url)) == 1


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "nul\x00name"])
def test_a_bad_name_is_refused(
    client: Client, backend_url_factory: Callable[..., str], name: str
) -> None:
    """Empty, blank, too long or with a NUL: ConfigurationError, the target untouched."""
    target = backend_url_factory()
    before = client.get_backends()
    with pytest.raises(ConfigurationError):
        client.add_backend(target, name=name)
    assert client.get_backends() == before
    assert backend_rows(target) == []


def test_a_backend_database_is_not_a_metadata_database(
    client: Client, backend_url_factory: Callable[..., str]
) -> None:
    """Client(url of a backend).start() says it is a backend and writes nothing there."""
    url = backend_url_factory("second")
    client.add_backend(url, name="b-one")
    BkItem("there").make_persistent(backend_id="b-one")
    rows, objects = backend_rows(url), registry(url)
    wrong = Client(url)
    with pytest.raises(ConfigurationError, match="backend 'b-one'") as refused:
        wrong.start()
    assert "metadata database" in str(refused.value)
    assert wrong.is_closed
    assert (backend_rows(url), registry(url)) == (rows, objects)


# -- remove_backend ------------------------------------------------------------------------------


def test_remove_backend_is_refused_while_it_holds_objects_and_for_the_default(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """BackendInUseError, nothing removed; once its objects moved away it goes, and can be
    added again (under a new id)."""
    url = backend_url_factory("second")
    backend = client.add_backend(url, name="busy")
    item = BkItem("resident", 3)
    item.make_persistent(alias="resident", backend_id=backend)
    before = client.get_backends()
    for name in (backend, "busy", str(backend)):
        with pytest.raises(BackendInUseError, match="busy"):
            client.remove_backend(name)
    for name in (_default_id(client), "default"):
        with pytest.raises(BackendInUseError, match="default"):
            client.remove_backend(name)
    assert client.get_backends() == before
    assert backend_rows(url)[0]["id"] == backend
    assert_only_on(backend_urls(db_url), "bk_item", [item._dc_meta.id], backend)

    item.move(_default_id(client))
    client.remove_backend("busy")
    assert list(client.get_backends()) == [_default_id(client)]
    assert backend_rows(url) == []
    assert ids_in(url, "bk_item") == []
    assert BkItem.get_by_alias("resident").n == 3
    with pytest.raises(BackendDoesNotExistError, match="busy"):
        BkItem("late").make_persistent(backend_id="busy")
    with OtherClient(db_url) as other:
        assert list(other.client.get_backends()) == [_default_id(client)]

    again = client.add_backend(url, name="busy")
    assert again != backend
    assert list(client.get_backends()) == [_default_id(client), again]
    assert backend_rows(url)[0]["id"] == again
    BkItem("back").make_persistent(alias="back", backend_id="busy")
    assert BkItem.get_by_alias("back")._dc_backend_id == again


def test_remove_an_empty_backend(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """An empty backend is removed at once (also through its coroutine form); a client that
    had it open forgets it."""
    url = backend_url_factory("local")
    backend = client.add_backend(url)
    with OtherClient(db_url) as other:
        assert backend in other.client.get_backends()
        asyncio.run(client.a_remove_backend(backend))
        assert backend not in other.client.get_backends()
        with pytest.raises(BackendDoesNotExistError):
            other.run(BkItem("x").make_persistent, backend_id=backend)
    assert list(client.get_backends()) == [_default_id(client)]
    assert backend_rows(url) == []


# -- moves refused -------------------------------------------------------------------------------


def test_moving_a_version_or_an_object_with_versions_is_refused(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """MoveError; original and version stay where they were."""
    backend = client.add_backend(backend_url_factory("second"))
    item = BkItem("original", 1)
    item.make_persistent()
    version = item.new_version()
    with pytest.raises(MoveError, match="version"):
        version.move(backend)
    with pytest.raises(MoveError, match="versions"):
        item.move(backend)
    with pytest.raises(MoveError, match="versions"):
        item.make_persistent(backend_id=backend)
    default = _default_id(client)
    assert_only_on(
        backend_urls(db_url), "bk_item", [item._dc_meta.id, version._dc_meta.id], default
    )
    version.n = 5
    version.consolidate_version()
    item.move(backend)  # no versions left: it moves
    assert_only_on(backend_urls(db_url), "bk_item", [item._dc_meta.id], backend)
    assert item.n == 5


def test_moving_a_version_referenced_by_a_moved_graph_is_refused(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A recursive move that reaches an object with versions refuses before moving anything."""
    backend = client.add_backend(backend_url_factory())
    box = BkBox("box", BkItem("inside"))
    box.make_persistent()
    assert box.item is not None
    box.item.new_version()
    with pytest.raises(MoveError, match="versions"):
        box.move(backend, recursive=True)
    assert_only_on(backend_urls(db_url), "bk_box", [box._dc_meta.id], _default_id(client))


def test_moving_a_transient_object_stores_it_on_the_target(
    client: Client, db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """move() of a transient object is make_persistent(backend_id=...): with what it reaches."""
    backend = client.add_backend(backend_url_factory("second"), name="target")
    box = BkBox("new", BkItem("reached"))
    box.move("target")
    assert box.is_registered
    assert box._dc_backend_id == backend
    assert box.item is not None
    assert box.item._dc_backend_id == backend
    urls = backend_urls(db_url)
    assert_only_on(urls, "bk_box", [box._dc_meta.id], backend)
    assert_only_on(urls, "bk_item", [box.item._dc_meta.id], backend)
    with OtherClient(db_url) as other:
        seen = other.run(BkBox.get_by_id, box._dc_meta.id)
        assert seen.label == "new"
        assert seen.item.name == "reached"
