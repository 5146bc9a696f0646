"""ObjectDatastore: the datastore API (get/put/delete/contains/query) over stored objects."""

from __future__ import annotations

import pytest

from claystore import Client, DataClayObject, errors
from claystore.datastore import (
    DictDatastore,
    Key,
    ObjectDatastore,
    Query,
    TieredDatastore,
)
from tests.statements import count_statements


class QClerk(DataClayObject):
    __tablename__ = "q_clerk"

    name: str
    pay: float

    def __init__(self, name: str, pay: float) -> None:
        self.name = name
        self.pay = pay


class QHeadClerk(QClerk):
    __tablename__ = "q_head_clerk"

    floor: int = 1


class QDesk(DataClayObject):
    __tablename__ = "q_desk"

    number: int = 0


def key_of(obj: DataClayObject, cls: str = "QClerk") -> Key:
    return Key(f"/{cls}:{obj._dc_meta.id}")


def test_put_stores_the_object_under_the_alias(client: Client) -> None:
    """put(Key('/QClerk:ann'), obj) makes obj persistent with alias 'ann'; get returns it."""
    store = ObjectDatastore(client)
    ann = QClerk("ann", 10.0)
    store.put(Key("/QClerk:ann"), ann)
    assert ann.is_persistent
    assert ann.get_aliases() == {"ann"}
    assert QClerk.get_by_alias("ann") is ann
    assert store.get(Key("/QClerk:ann")) is ann
    assert store.get(key_of(ann)) is ann
    assert store.contains(Key("/QClerk:ann"))


def test_put_inside_a_session_is_part_of_its_unit_of_work(client: Client) -> None:
    """In a session, put registers the object and its alias (moved from another object) with
    the unit of work: visible to reads in it, written at commit, undone by a rollback."""
    store = ObjectDatastore(client)
    old = QClerk("old", 1.0)
    old.make_persistent("desk")
    with client.session():
        ann = QClerk("ann", 10.0)
        store.put(Key("/QClerk:desk"), ann)
        assert store.get(Key("/QClerk:desk")) is ann
        assert QClerk.get_by_alias("desk") is ann
    assert QClerk.get_by_alias("desk").name == "ann"
    assert old.get_aliases() == set()

    def put_then_fail() -> None:
        with client.session():
            store.put(Key("/QClerk:desk"), QClerk("bob", 2.0))
            raise RuntimeError("undo")

    with pytest.raises(RuntimeError, match="undo"):
        put_then_fail()
    assert QClerk.get_by_alias("desk") is ann
    assert [c.name for c in QClerk.dc_query().order("name")] == ["ann", "old"]


def test_get_of_missing_or_other_class_is_none(client: Client) -> None:
    """Unknown ids and aliases, and objects of another class, read as None."""
    store = ObjectDatastore(client)
    desk = QDesk()
    desk.make_persistent("d1")
    assert store.get(Key("/QClerk:nobody")) is None
    assert store.get(Key("/QClerk:01a20000-0000-7000-8000-000000000000")) is None
    assert store.get(Key("/QClerk:d1")) is None
    assert store.get(key_of(desk)) is None
    assert not store.contains(Key("/QClerk:d1"))
    assert store.get(Key("/QDesk:d1")) is desk


def test_subclass_objects_are_found_through_the_base_class(client: Client) -> None:
    """A QHeadClerk is in the QClerk collection, and comes back as a QHeadClerk."""
    store = ObjectDatastore(client)
    head = QHeadClerk("hal", 30.0)
    store.put(Key("/QClerk:hal"), head)
    assert store.get(Key("/QClerk:hal")) is head
    assert store.get(Key("/QHeadClerk:hal")) is head
    assert [type(o).__name__ for o in store.query(Query(Key("/QClerk")))] == ["QHeadClerk"]


def test_put_moves_an_alias_to_the_new_object(client: Client) -> None:
    """Putting another object under a taken alias moves the alias; the old object stays."""
    store = ObjectDatastore(client)
    old, new = QClerk("old", 1.0), QClerk("new", 2.0)
    store.put(Key("/QClerk:boss"), old)
    store.put(Key("/QClerk:boss"), new)
    store.put(Key("/QClerk:boss"), new)  # again: nothing changes
    assert store.get(Key("/QClerk:boss")) is new
    assert old.is_persistent
    assert old.get_aliases() == set()
    store.put(key_of(old), old)  # under its own id: nothing to name
    assert old.get_aliases() == set()


def test_put_refuses_objects_of_another_class(client: Client) -> None:
    """A QDesk cannot be put under a QClerk key; nothing is stored."""
    store = ObjectDatastore(client)
    desk = QDesk()
    with pytest.raises(errors.DatastoreTypeError, match="names a QClerk; cannot put a QDesk"):
        store.put(Key("/QClerk:desk"), desk)
    assert not desk.is_persistent


def test_delete_deletes_the_object(client: Client) -> None:
    """delete(key) deletes the object the key names; deleting a missing key is no error."""
    store = ObjectDatastore(client)
    ann = QClerk("ann", 1.0)
    store.put(Key("/QClerk:ann"), ann)
    store.delete(Key("/QClerk:ann"))
    assert not ann.is_persistent
    assert store.get(Key("/QClerk:ann")) is None
    assert list(store.query(Query(Key("/QClerk")))) == []
    store.delete(Key("/QClerk:ann"))


def test_query_is_one_select_keyed_by_class_and_id(client: Client) -> None:
    """query runs one SELECT; results are keyed /QClerk:<id> in the query's order."""
    store = ObjectDatastore(client)
    clerks = [QClerk(n, p) for n, p in [("a", 3.0), ("b", 1.0), ("c", 2.0)]]
    with store.batch() as batch:
        for clerk in clerks:
            batch.put(Key(f"/QClerk:{clerk.name}"), clerk)
    with count_statements(client.engine) as log:
        pairs = list(store.query(Query(Key("/QClerk")).filter("pay", ">", 1).order("-pay")).items())
    assert len(log.matching("SELECT")) == 1
    assert [(k, o.name) for k, o in pairs] == [(key_of(clerks[0]), "a"), (key_of(clerks[2]), "c")]


def test_batch_is_one_transaction(client: Client) -> None:
    """A failing write in a batch undoes the batch's other writes."""
    store = ObjectDatastore(client)
    batch = store.batch()
    batch.put(Key("/QClerk:x"), QClerk("x", 1.0))
    batch.put(Key("/QClerk:y"), QDesk())
    with pytest.raises(errors.DatastoreTypeError):
        batch.commit()
    assert store.get(Key("/QClerk:x")) is None


def test_tiered_cache_in_front_of_objects(client: Client) -> None:
    """TieredDatastore([DictDatastore(), ObjectDatastore(client)]) caches reads and writes
    through to the objects; queries go to the objects."""
    cache = DictDatastore()
    tiers = TieredDatastore([cache, ObjectDatastore(client)])
    ann = QClerk("ann", 5.0)
    tiers.put(Key("/QClerk:ann"), ann)
    assert cache.get(Key("/QClerk:ann")) is ann
    bob = QClerk("bob", 6.0)
    bob.make_persistent("bob")
    assert cache.get(Key("/QClerk:bob")) is None
    assert tiers.get(Key("/QClerk:bob")) is bob
    assert cache.get(Key("/QClerk:bob")) is bob
    assert [o.name for o in tiers.query(Query(Key("/QClerk")).order("-pay"))] == ["bob", "ann"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (Key("/QClerk"), "name one object"),
        (Key("/QClerk/ann"), "name one object"),
        (Key("/QClerk:ann/more"), "name one object"),
        (Key("/Nobody:ann"), "no model class is named 'Nobody'"),
    ],
)
def test_bad_keys_are_refused(client: Client, key: Key, message: str) -> None:
    """Keys must be /<Class>:<id or alias> with a known class."""
    with pytest.raises(errors.InvalidKeyError, match=message):
        ObjectDatastore(client).get(key)


def test_needs_a_started_client(db_url: str) -> None:
    """A stopped client raises ClientNotStartedError; a non-client is refused; the datastore
    asks its client each time, so it works once the client is started."""
    stopped = Client(db_url)
    objects = ObjectDatastore(stopped)
    with pytest.raises(errors.ClientNotStartedError):
        objects.get(Key("/QClerk:a"))
    with pytest.raises(errors.DatastoreTypeError, match="needs a claystore Client"):
        ObjectDatastore(42).get(Key("/QClerk:a"))
    with stopped:
        assert objects.get(Key("/QClerk:a")) is None
