"""dataClay fidelity: ``_dc_is_registered``, objects created inside activemethods, and
containers that keep their identity where they are live."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from claystore import Client, DataClayObject, activemethod, errors


class Member(DataClayObject):
    __tablename__ = "fid_member"

    name: str

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("a member needs a name")
        self.name = name


class Team(DataClayObject):
    __tablename__ = "fid_team"

    name: str
    staff: list[Member]
    tags: list[str]
    scores: list[float]
    labels: set[str]
    meta: dict
    nested: dict[str, list[int]]
    lead: Member | None = None
    size: int = 0
    pair: tuple[int, str] = (0, "")
    weights: dict[str, float] = {}  # noqa: RUF012 - a field default, copied per object

    def __init__(self, name: str) -> None:
        self.name = name
        self.staff = []
        self.tags = []
        self.scores = []
        self.labels = set()
        self.meta = {}
        self.nested = {}

    @activemethod
    def hire(self, name: str) -> Member:
        member = Member(name)
        self.staff.append(member)
        return member

    @activemethod
    def make_member(self, name: str) -> Member:
        return Member(name)  # not referenced by self

    @activemethod
    def make_pair(self, first: str, second: str) -> tuple[Member, Member]:
        return Member(first), Member(second)

    @activemethod
    def make_scratch(self, name: str) -> int:
        Member(name)  # neither referenced nor returned
        return 1

    @activemethod
    def echo(self, member: Member) -> Member:
        return member

    @activemethod
    def hire_then_fail(self, name: str) -> None:
        self.staff.append(Member(name))
        Member(name + " too")
        raise RuntimeError("hiring freeze")

    @activemethod
    def hire_with_failing_inner(self, name: str) -> Member:
        member = Member(name)
        self.lead = member
        with contextlib.suppress(RuntimeError):
            self.hire_then_fail("temp")
        return member

    @activemethod
    def hire_after_a_bad_construction(self, name: str) -> Member:
        with contextlib.suppress(ValueError):
            Member("")
        return self.hire(name)

    @activemethod
    def reassign_and_append(self, tag: str) -> None:
        tags = self.tags
        self.tags = tags
        tags.append(tag)

    @activemethod
    def assign_new_and_append(self, tag: str) -> bool:
        tags: list[str] = []
        self.tags = tags
        tags.append(tag)
        return self.tags is tags

    @activemethod
    def change_nested(self) -> None:
        self.meta["deep"]["n"] += 1
        self.nested["a"].append(3)

    @activemethod
    def append_raw(self, value: Any) -> None:
        self.tags.append(value)

    @activemethod
    def run(self, body: Callable[[Team], Any]) -> Any:
        return body(self)


class Sketch(DataClayObject):
    """A class whose objects need every field set: an incomplete one cannot be stored."""

    __tablename__ = "fid_sketch"

    title: str


class Studio(DataClayObject):
    __tablename__ = "fid_studio"

    name: str = ""

    @activemethod
    def draft(self) -> int:
        Sketch()  # created without its title
        return 1


def count(client: Client, table: str) -> int:
    with client.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def names(client: Client) -> list[str]:
    with client.engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT name FROM fid_member")).scalars())


def load_in_another_client(db_url: str, load: Callable[[], Any]) -> Any:
    """Run ``load`` with a new client of the same database, in a thread of its own."""
    found: list[Any] = []

    def work() -> None:
        with Client(db_url):
            found.append(load())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    return found[0]


# -- _dc_is_registered -------------------------------------------------------------------------


def test_dc_is_registered_reads_like_is_registered(client: Client) -> None:
    """dataClay's ``_dc_is_registered`` follows ``is_registered``: transient, stored, deleted."""
    member = Member("Ann")
    assert member._dc_is_registered is False
    member.make_persistent()
    assert member._dc_is_registered is True
    assert member._dc_is_registered == member.is_registered
    member.dc_delete()
    assert member._dc_is_registered is False


def test_dc_is_registered_is_read_only_and_not_a_field(client: Client) -> None:
    """Assigning ``_dc_is_registered`` is refused (AttributeError) and nothing is stored for it."""
    member = Member("Ann")
    with pytest.raises(AttributeError):
        member._dc_is_registered = True  # type: ignore[misc]
    assert "_dc_is_registered" not in Member._dc_info.fields
    member.make_persistent()
    with pytest.raises(AttributeError):
        member._dc_is_registered = False  # type: ignore[misc]
    assert member.is_registered


def test_dc_is_registered_in_a_session(client: Client) -> None:
    """An object added to a session is registered at once, and again transient on rollback."""
    member = Member("Ann")
    with pytest.raises(RuntimeError), client.session() as session:  # noqa: PT012 - whole block
        session.add(member)
        assert member._dc_is_registered
        raise RuntimeError("undo")
    assert not member._dc_is_registered


# -- objects created inside an activemethod ----------------------------------------------------


def test_an_object_created_and_returned_by_an_activemethod_is_persistent(
    db_url: str, client: Client
) -> None:
    """``hire`` creates a member, adds it to self and returns it: the caller gets a stored
    object that another client can load."""
    team = Team("core")
    team.make_persistent()
    member = team.hire("Ann")
    assert member.is_registered
    assert member._dc_is_registered
    member_id = member._dc_meta.id
    assert Member.get_by_id(member_id) is member
    assert team.staff == [member]
    loaded = load_in_another_client(
        db_url, lambda: (Member.get_by_id(member_id).name, Team.get_by_id(team._dc_meta.id))
    )
    assert loaded[0] == "Ann"


def test_a_returned_object_self_does_not_reference_is_persistent(
    db_url: str, client: Client
) -> None:
    """A new object the method only returns is stored as well."""
    team = Team("core")
    team.make_persistent()
    member = team.make_member("Bob")
    assert member.is_registered
    member_id = member._dc_meta.id
    assert load_in_another_client(db_url, lambda: Member.get_by_id(member_id).name) == "Bob"
    assert team.staff == []


def test_objects_returned_in_a_tuple_are_persistent(client: Client) -> None:
    """New objects returned inside a tuple (or list, set, dict) are stored."""
    team = Team("core")
    team.make_persistent()
    first, second = team.make_pair("Ann", "Bob")
    assert first.is_registered
    assert second.is_registered
    assert names(client) == ["Ann", "Bob"]


def test_an_object_created_but_neither_kept_nor_returned_is_stored(client: Client) -> None:
    """As in dataClay, where objects created on the backend are persistent: every object the
    method constructs is stored."""
    team = Team("core")
    team.make_persistent()
    assert team.make_scratch("Scratch") == 1
    assert names(client) == ["Scratch"]


def test_a_transient_argument_returned_is_persistent(client: Client) -> None:
    """A transient object the method returns is stored, though it was created by the caller."""
    team = Team("core")
    team.make_persistent()
    member = Member("Ann")
    assert team.echo(member) is member
    assert member.is_registered
    assert names(client) == ["Ann"]


def test_nothing_is_stored_when_the_activemethod_raises(client: Client) -> None:
    """A method that raises stores none of the objects it created, and self is unchanged."""
    team = Team("core")
    team.make_persistent()
    with pytest.raises(RuntimeError, match="hiring freeze"):
        team.hire_then_fail("Ann")
    assert names(client) == []
    assert team.staff == []
    assert count(client, "dc_object") == 1


def test_a_failing_inner_activemethod_stores_only_the_outer_objects(client: Client) -> None:
    """An inner activemethod runs under a savepoint: its objects go if it fails, the outer
    method's stay."""
    team = Team("core")
    team.make_persistent()
    lead = team.hire_with_failing_inner("Lead")
    assert lead.is_registered
    assert team.lead is lead
    assert names(client) == ["Lead"]
    assert team.staff == []


def test_an_object_whose_init_raised_is_not_stored(client: Client) -> None:
    """A construction that failed inside the method (and was caught) stores nothing."""
    team = Team("core")
    team.make_persistent()
    member = team.hire_after_a_bad_construction("Ann")
    assert member.is_registered
    assert names(client) == ["Ann"]


def test_an_incomplete_object_created_in_an_activemethod_fails_it(client: Client) -> None:
    """An object created without a value for a required field cannot be stored: the method
    raises MissingFieldError naming the field, and nothing is written."""
    studio = Studio()
    studio.make_persistent()
    with pytest.raises(errors.MissingFieldError, match=r"Sketch\.title"):
        studio.draft()
    assert count(client, "fid_sketch") == 0


def test_objects_created_in_an_activemethod_within_a_session_follow_the_session(
    client: Client,
) -> None:
    """Inside a session the method's new objects are stored with the session: committed with
    it, or gone if it rolls back."""
    team = Team("core")
    team.make_persistent()
    with client.session():
        member = team.make_member("Ann")
        assert member.is_registered
    assert names(client) == ["Ann"]
    with pytest.raises(RuntimeError), client.session():  # noqa: PT012 - whole block
        other = team.make_member("Bob")
        raise RuntimeError("undo")
    assert not other.is_registered
    assert names(client) == ["Ann"]


def test_an_activemethod_on_a_transient_object_stores_nothing() -> None:
    """On a transient object an activemethod is a plain call: what it creates stays transient."""
    team = Team("core")
    member = team.hire("Ann")
    assert not member.is_registered
    assert team.staff == [member]


def test_objects_other_threads_create_are_not_the_methods(
    client: Client,
) -> None:
    """Objects other threads create while an activemethod runs are not the method's, even in a
    thread started with a copy of its context."""
    team = Team("core")
    team.make_persistent()
    outside: list[Member] = []

    def build_elsewhere(_: Team) -> int:
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(lambda: outside.append(Member("Elsewhere")),)
        )
        thread.start()
        thread.join()
        return 1

    assert team.run(build_elsewhere) == 1
    assert not outside[0].is_registered
    assert names(client) == []


# -- containers keep their identity where they are live -----------------------------------------


def test_an_assigned_list_is_the_field_of_a_transient_object() -> None:
    """``t = []; obj.tags = t; t.append("x")``: the field is ``t`` itself."""
    team = Team("core")
    tags: list[str] = []
    team.tags = tags
    tags.append("x")
    assert team.tags == ["x"]
    assert team.tags is tags
    staff: list[Member] = []
    team.staff = staff
    member = Member("Ann")
    staff.append(member)
    assert team.staff is staff
    labels: set[str] = set()
    team.labels = labels
    labels.add("a")
    assert team.labels is labels
    meta: dict[str, Any] = {}
    team.meta = meta
    meta["k"] = [1]
    assert team.meta is meta


def test_what_a_transient_container_holds_when_stored_is_stored(client: Client) -> None:
    """Changes made through the assigned container before make_persistent are stored."""
    team = Team("core")
    tags: list[str] = []
    staff: list[Member] = []
    team.tags = tags
    team.staff = staff
    tags.append("x")
    staff.append(Member("Ann"))
    team.make_persistent()
    assert team.tags == ["x"]
    assert [m.name for m in team.staff] == ["Ann"]
    assert staff[0].is_registered


def test_an_assigned_container_is_converted_in_place() -> None:
    """What the annotation converts (an int in a ``list[float]``) is converted inside the
    assigned container, which stays the field."""
    team = Team("core")
    scores: list[Any] = [1, 2.5]
    team.scores = scores
    assert team.scores is scores
    assert [type(s) for s in scores] == [float, float]
    nested = {"a": [1]}
    inner = nested["a"]
    team.nested = nested
    assert team.nested is nested
    assert team.nested["a"] is inner


def test_every_kind_of_container_is_kept_or_converted_as_the_annotation_says() -> None:
    """Dicts keep their identity with values converted in place, an unchanged tuple is kept,
    a list given for a tuple becomes a tuple, a frozenset given for a set becomes a set."""
    team = Team("core")
    weights: dict[str, Any] = {"a": 1, "b": 2.5}
    team.weights = weights
    assert team.weights is weights
    assert [type(v) for v in weights.values()] == [float, float]
    pair = (1, "a")
    team.pair = pair
    assert team.pair is pair
    team.pair = [2, "b"]  # type: ignore[assignment]
    assert team.pair == (2, "b")
    assert type(team.pair) is tuple
    team.labels = frozenset({"x"})  # type: ignore[assignment]
    assert type(team.labels) is set
    assert team.labels == {"x"}


def test_a_refused_container_is_left_as_it_was() -> None:
    """An assignment refused by the check changes neither the field nor the container."""
    team = Team("core")
    team.scores = [1.0]
    bad: list[Any] = [1, "two"]
    with pytest.raises(errors.FieldTypeError, match=r"Team\.scores"):
        team.scores = bad
    assert bad == [1, "two"]
    assert team.scores == [1.0]


def test_an_activemethod_stores_changes_made_through_a_reassigned_container(
    client: Client,
) -> None:
    """In an activemethod ``t = self.tags; self.tags = t; t.append("x")`` stores "x"."""
    team = Team("core")
    team.make_persistent()
    team.reassign_and_append("x")
    assert team.tags == ["x"]
    assert team.assign_new_and_append("y") is True
    assert team.tags == ["y"]


def test_an_activemethod_finds_changes_deep_inside_containers(client: Client) -> None:
    """In-place changes nested inside a container (a dict in a dict, a list in a dict) are
    stored."""
    team = Team("core")
    team.meta = {"deep": {"n": 1}}
    team.nested = {"a": [1, 2]}
    team.make_persistent()
    team.change_nested()
    assert team.meta == {"deep": {"n": 2}}
    assert team.nested == {"a": [1, 2, 3]}


def test_a_session_keeps_an_assigned_container_and_flushes_its_changes(client: Client) -> None:
    """In a session the assigned container is the field; later changes to it are written,
    also after an explicit flush."""
    team = Team("core")
    team.make_persistent()
    with client.session() as session:
        tags = team.tags
        team.tags = tags
        tags.append("x")
        assert team.tags is tags
        fresh: list[str] = []
        team.tags = fresh
        fresh.append("y")
        session.flush()
        fresh.append("z")
        assert team.tags is fresh
    assert team.tags == ["y", "z"]


def test_autocommit_reads_of_a_stored_object_are_copies(client: Client) -> None:
    """Outside a transaction a read returns a copy: changing it stores nothing (as in
    dataClay); assigning it stores it."""
    team = Team("core")
    team.make_persistent()
    tags = team.tags
    assert team.tags is not tags
    tags.append("x")
    assert team.tags == []
    team.tags = tags
    assert team.tags == ["x"]
    tags.append("later")  # the assignment committed: later changes are not tracked
    assert team.tags == ["x"]


def test_a_bad_value_put_into_a_live_container_is_refused_at_write(client: Client) -> None:
    """A live container is checked again before it is written: a wrong element raises
    FieldTypeError naming the field, and nothing is written."""
    team = Team("core")
    team.make_persistent()
    with pytest.raises(errors.FieldTypeError, match=r"Team\.tags .*changed in place"):
        team.append_raw(5)
    assert team.tags == []
    with pytest.raises(errors.FieldTypeError, match=r"Team\.staff .*changed in place"):
        team.run(lambda me: me.staff.append("not a member"))
    assert team.staff == []
    with client.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT tags FROM fid_team")).scalar_one() in ([], "[]")


def test_a_bad_value_put_into_a_transient_container_is_refused_at_store(client: Client) -> None:
    """A transient object's container changed in place is checked when it is stored."""
    team = Team("core")
    tags: list[Any] = []
    team.tags = tags
    tags.append(5)
    with pytest.raises(errors.FieldTypeError, match=r"Team\.tags"):
        team.make_persistent()
    assert not team.is_registered
    assert count(client, "fid_team") == 0
    staff: list[Any] = []
    team.tags = []
    team.staff = staff
    staff.append("not a member")
    with pytest.raises(errors.FieldTypeError, match=r"Team\.staff"):
        team.make_persistent()
    assert count(client, "fid_team") == 0


def test_an_element_converted_at_write_is_converted_in_place(client: Client) -> None:
    """An int appended to a live ``list[float]`` is stored, and kept in memory, as a float."""
    team = Team("core")
    team.make_persistent()

    def append_int(me: Team) -> list[float]:
        scores = me.scores
        scores.append(3)
        return scores

    scores = team.run(append_int)
    assert scores == [3.0]
    assert type(scores[0]) is float
    assert team.scores == [3.0]


def test_clone_and_update_share_no_container_with_their_source(client: Client) -> None:
    """dc_clone and dc_update copy containers (an assignment keeps them, a copy must not share
    them): changing the copy's containers leaves the source's alone."""
    team = Team("core")
    team.tags = ["a"]
    team.meta = {"deep": {"n": 1}}
    team.make_persistent()
    with client.session():
        assert team.tags == ["a"]  # the session holds team: its fields are in memory
        clone = team.dc_clone()
        clone.tags.append("b")
        clone.meta["deep"]["n"] = 2
        assert team.tags == ["a"]
        assert team.meta == {"deep": {"n": 1}}
    assert team.tags == ["a"]
    source = Team("source")
    source.tags = ["s"]
    source.staff = [Member("Ann")]
    with client.session():
        team.dc_update(source)
        source.tags.append("later")
        source.staff.append(Member("Bob"))
        assert team.tags == ["s"]
    assert team.tags == ["s"]
    assert [m.name for m in team.staff] == ["Ann"]


def test_threads_see_their_own_live_container(client: Client) -> None:
    """A container kept live in one thread's activemethod is not what another thread reads."""
    team = Team("core")
    team.make_persistent()
    seen: list[list[str]] = []
    inside, release = threading.Event(), threading.Event()

    def body(me: Team) -> None:
        tags = me.tags
        me.tags = tags
        tags.append("x")
        inside.set()
        release.wait(10)

    def reader() -> None:
        inside.wait(10)
        seen.append(team.tags)
        release.set()

    thread = threading.Thread(target=contextvars.copy_context().run, args=(reader,))
    thread.start()
    team.run(body)
    thread.join()
    assert seen == [[]]
    assert team.tags == ["x"]
