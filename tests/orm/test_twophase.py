"""A unit of work that writes objects to several backends: on PostgreSQL it commits on all of
them or on none (two-phase commit); where a database cannot take part (SQLite, a server with
``max_prepared_transactions = 0``) it is refused with CrossBackendTransactionError before
anything is written; a unit of work on one backend (aliases in the metadata database do not
count) commits as before, without two-phase commit.  Recovery ends prepared transactions left
without a record (presumed abort) and leaves a commit under way in a live process alone.

The crashes (a process killed between PREPARE and COMMIT PREPARED) are in
``test_twophase_crash.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from claystore import Client, DataClayObject, activemethod, errors
from claystore.dialects import dialect_for
from claystore.orm import twophase
from tests.conftest import _fresh_schema
from tests.orm.backend_helpers import (
    commit_rows,
    drop_prepared,
    ids_in,
    plain_engine,
    prepared_gids,
    values_in,
)
from tests.orm.test_connection_loss import own_database, restart_cluster  # noqa: F401 - fixture


class TpAccount(DataClayObject):
    """An account; ``transfer`` moves money to another account in one activemethod."""

    __tablename__ = "tp_account"
    name: str
    balance: int = 0

    def __init__(self, name: str, balance: int = 0) -> None:
        self.name = name
        self.balance = balance

    @activemethod
    def transfer(self, other: TpAccount, amount: int) -> None:
        """Take ``amount`` from this account and give it to ``other``."""
        self.balance -= amount
        other.balance += amount


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends during the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def _set_both(client: Client, first: TpAccount, second: TpAccount, balance: int) -> None:
    """Set both balances in one session."""
    with client.session():
        first.balance = balance
        second.balance = balance


def _count(seen: list[str], start: str) -> int:
    return sum(1 for s in seen if s.lstrip().upper().startswith(start))


class Store:
    """A client's store with backends ``a`` (local) and ``b`` (on ``server``), their URLs by
    id, and one account on each (``on_a``, ``on_b``, balance 1 and 2)."""

    def __init__(self, client: Client, db_url: str, new: Callable[..., str], server: str) -> None:
        self.client = client
        self.urls: dict[str, str] = {"default": db_url, "a": new("local"), "b": new(server)}
        self.a = client.add_backend(self.urls["a"], name="a")
        self.b = client.add_backend(self.urls["b"], name="b")
        self.meta = next(i for i, info in client.get_backends().items() if info.is_default)
        self.prefix = twophase.gid_prefix(self.meta)
        self.on_a = TpAccount("on a", 1)
        self.on_a.make_persistent(backend_id=self.a)
        self.on_b = TpAccount("on b", 2)
        self.on_b.make_persistent(backend_id=self.b)

    def balance(self, backend: str, account: TpAccount) -> list[Any]:
        """The balance of ``account`` as the database of ``backend`` holds it."""
        return values_in(self.urls[backend], "tp_account", "balance", account._dc_meta.id)

    def prepared(self) -> list[str]:
        """This store's prepared transactions on every server it uses."""
        return sorted({g for url in self.urls.values() for g in prepared_gids(url, self.prefix)})

    def clean(self) -> None:
        """Roll back what a failed test left prepared (else its schemas cannot be dropped)."""
        for url in self.urls.values():
            drop_prepared(url, self.prefix)


@pytest.fixture(params=["local", "second"])
def store(
    request: pytest.FixtureRequest,
    client: Client,
    db_url: str,
    backend_url_factory: Callable[..., str],
) -> Iterator[Store]:
    """A store whose backend ``b`` is on the main server or on the second one."""
    made = Store(client, db_url, backend_url_factory, request.param)
    try:
        yield made
    finally:
        made.clean()


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


# -- commits across backends ----------------------------------------------------------------------


def test_a_session_on_two_backends_commits_on_both_or_is_refused(store: Store) -> None:
    """PostgreSQL: changes and a new object on backends a and b commit on both (each
    participant prepared, then committed; no prepared transaction or record left).  SQLite:
    CrossBackendTransactionError naming both backends, before anything is written."""
    client, on_a, on_b = store.client, store.on_a, store.on_b
    made = TpAccount("made", 5)
    with statements() as seen:

        def work() -> None:
            with client.session():
                on_a.balance = 10
                on_b.balance = 20
                made.make_persistent(backend_id=store.b)

        if _is_sqlite(store.urls["default"]):
            with pytest.raises(errors.CrossBackendTransactionError) as refused:
                work()
            message = str(refused.value)
            assert "'a' (SQLite)" in message
            assert "'b' (SQLite)" in message
            assert "max_prepared_transactions > 0" in message
            assert "one unit of work per backend" in message
            assert refused.value.backends == ("'a' (SQLite)", "'b' (SQLite)")
            assert (store.balance("a", on_a), store.balance("b", on_b)) == ([1], [2])
            assert not made.is_registered
            assert ids_in(store.urls["b"], "tp_account") == [on_b._dc_meta.id]
            assert (on_a.balance, on_b.balance) == (1, 2)
            assert _count(seen, "PREPARE TRANSACTION") == 0
            return
        work()
    assert (store.balance("a", on_a), store.balance("b", on_b)) == ([10], [20])
    assert store.balance("b", made) == [5]
    assert _count(seen, "PREPARE TRANSACTION") == 2  # a and b; the metadata db wrote nothing
    assert _count(seen, "COMMIT PREPARED") == 2
    assert store.prepared() == []
    assert commit_rows(store.urls["default"]) == []


def test_an_activemethod_on_objects_of_two_backends_commits_on_both_or_is_refused(
    store: Store,
) -> None:
    """An activemethod that changes its object (on a) and another (on b): both committed
    on PostgreSQL; refused on SQLite with nothing written and both objects as before."""
    on_a, on_b = store.on_a, store.on_b
    if _is_sqlite(store.urls["default"]):
        with pytest.raises(errors.CrossBackendTransactionError, match="'b' \\(SQLite\\)"):
            on_a.transfer(on_b, 1)
        assert (store.balance("a", on_a), store.balance("b", on_b)) == ([1], [2])
        assert (on_a.balance, on_b.balance) == (1, 2)
        return
    on_a.transfer(on_b, 1)
    assert (store.balance("a", on_a), store.balance("b", on_b)) == ([0], [3])
    assert (on_a.balance, on_b.balance) == (0, 3)
    assert store.prepared() == []


def test_units_of_work_on_one_backend_do_not_use_two_phase_commit(store: Store) -> None:
    """A session, an activemethod and an autocommit write on one backend, with aliases added
    in the metadata database (which do not make a unit of work cross-backend: they commit
    last), commit on both engines without a PREPARE or a commit record."""
    client, on_a, on_b = store.client, store.on_a, store.on_b
    with statements() as seen:
        with client.session():
            on_b.balance = 7
            TpAccount("new on b", 8).make_persistent(alias="newest", backend_id=store.b)
            on_b.add_alias("bee")
        on_a.transfer(on_a, 0)
        on_a.name = "renamed"
    assert _count(seen, "PREPARE TRANSACTION") == 0
    assert not any("dc_commit" in s for s in seen)
    assert TpAccount.get_by_alias("bee") is on_b
    assert TpAccount.get_by_alias("newest").balance == 8
    assert store.balance("b", on_b) == [7]
    assert values_in(store.urls["a"], "tp_account", "name", on_a._dc_meta.id) == ["renamed"]


# -- PostgreSQL: failures and recovery ---------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_participant_that_fails_to_prepare_rolls_back_every_backend(store: Store) -> None:
    """A deferred constraint trigger on b refuses the change at PREPARE, after a is
    prepared: a is rolled back too (ROLLBACK PREPARED), the error is raised, nothing is left
    prepared or recorded, and the objects are as before (in memory too)."""
    client, on_a, on_b = store.client, store.on_a, store.on_b
    with plain_engine(store.urls["b"]) as engine, engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION tp_refuse_13() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.balance = 13 THEN RAISE EXCEPTION 'balance 13 refused'; END IF; "
            "RETURN NULL; END $$"
        )
        conn.exec_driver_sql(
            "CREATE CONSTRAINT TRIGGER tp_refuse_13 AFTER UPDATE ON tp_account "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tp_refuse_13()"
        )
    refused = pytest.raises(errors.DatabaseError, match="balance 13 refused")
    with statements() as seen, refused:
        _set_both(client, on_a, on_b, 13)
    assert _count(seen, "PREPARE TRANSACTION") == 2
    assert _count(seen, "ROLLBACK PREPARED") == 1  # a's
    assert (store.balance("a", on_a), store.balance("b", on_b)) == ([1], [2])
    assert (on_a.balance, on_b.balance) == (1, 2)
    assert store.prepared() == []
    assert commit_rows(store.urls["default"]) == []
    _set_both(client, on_a, on_b, 14)  # the connections are usable again
    assert (store.balance("a", on_a), store.balance("b", on_b)) == ([14], [14])


def _prepare_by_hand(url: str, gid: str, object_id: UUID) -> None:
    """A prepared transaction on ``url`` that sets an account's balance to 99."""
    with plain_engine(url) as engine, engine.connect() as conn:
        conn.execute(
            sa.text("UPDATE tp_account SET balance = 99 WHERE id = :id"), {"id": object_id}
        )
        conn.exec_driver_sql(f"PREPARE TRANSACTION '{gid}'")
        conn.commit()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_prepared_transaction_without_record_is_rolled_back(store: Store) -> None:
    """Presumed abort: a prepared transaction of this store that no record names was never
    decided, so repair_transactions() rolls it back (and reports it); one of another store
    (another gid prefix) is left alone."""
    on_a = store.on_a
    ours = f"{store.prefix}{uuid4().hex}_0"
    theirs = f"{twophase.gid_prefix(uuid4())}{uuid4().hex}_0"
    _prepare_by_hand(store.urls["a"], ours, on_a._dc_meta.id)
    with plain_engine(store.urls["b"]) as engine, engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        conn.exec_driver_sql(f"PREPARE TRANSACTION '{theirs}'")
        conn.commit()
    try:
        assert store.prepared() == [ours]
        [resolved] = store.client.repair_transactions()
        assert (resolved.commit_id, resolved.gid, resolved.outcome) == (None, ours, "rolled back")
        assert resolved.backend in (store.a, store.meta)  # schemas of one database: either
        assert store.prepared() == []
        assert store.balance("a", on_a) == [1]
        assert prepared_gids(store.urls["b"], theirs) == [theirs]
    finally:
        drop_prepared(store.urls["b"], theirs)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_recovery_leaves_a_commit_under_way_in_a_live_process_alone(store: Store) -> None:
    """A recovery that runs while the commit's owner (this process) is between its PREPAREs
    and its decision ends nothing; the commit then completes on both backends."""
    client, on_a, on_b = store.client, store.on_a, store.on_b
    seen: list[tuple[list[twophase.Resolved], list[str], list[str]]] = []

    def recover_now(step: str) -> None:
        if step == "prepared":
            states = [r["state"] for r in commit_rows(store.urls["default"])]
            seen.append((client.repair_transactions(), store.prepared(), states))

    twophase.step_hook = recover_now
    try:
        with client.session():
            on_a.balance = 30
            on_b.balance = 40
    finally:
        twophase.step_hook = None
    [(resolved, prepared, states)] = seen
    assert resolved == []
    assert len(prepared) == 2
    assert states == ["preparing"]
    assert (store.balance("a", on_a), store.balance("b", on_b)) == ([30], [40])
    assert store.prepared() == []
    assert commit_rows(store.urls["default"]) == []


# -- databases that cannot take part -------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_sqlite_backend_in_a_postgresql_store_is_refused(store: Store, tmp_path: Any) -> None:
    """A unit of work writing to a PostgreSQL backend and a SQLite one is refused before
    anything is written, naming the SQLite backend and why it cannot take part."""
    lite_url = f"sqlite:///{tmp_path}/lite.db"
    lite = store.client.add_backend(lite_url, name="lite")
    on_lite = TpAccount("on lite", 3)
    on_lite.make_persistent(backend_id=lite)
    with pytest.raises(errors.CrossBackendTransactionError) as refused:
        _set_both(store.client, store.on_a, on_lite, 50)
    assert "'lite' (SQLite): SQLite has no two-phase commit" in str(refused.value)
    assert store.balance("a", store.on_a) == [1]
    assert values_in(lite_url, "tp_account", "balance", on_lite._dc_meta.id) == [3]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_server_without_prepared_transactions_is_refused(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """A backend on a server with ``max_prepared_transactions = 0`` (a throwaway cluster,
    as ``pg_createcluster`` makes it) cannot take part: the dialect says so, and a unit of
    work writing to it and another backend is refused before anything is written, naming the
    backend and the setting to change."""
    admin_url, _ = request.getfixturevalue("restart_cluster")
    with own_database(admin_url) as off_url, Client(db_url) as client:
        with plain_engine(off_url) as engine, engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW max_prepared_transactions").scalar() == "0"
            assert not dialect_for(engine.url).can_prepare(conn)
        with plain_engine(db_url) as engine, engine.connect() as conn:
            assert dialect_for(engine.url).can_prepare(conn)
        off = client.add_backend(off_url, name="off")
        here = TpAccount("here", 1)
        here.make_persistent()
        there = TpAccount("there", 2)
        there.make_persistent(backend_id=off)
        with pytest.raises(errors.CrossBackendTransactionError) as refused:
            _set_both(client, here, there, 10)
        message = str(refused.value)
        assert "'off' (PostgreSQL)" in message
        assert "max_prepared_transactions = 0" in message
        assert values_in(db_url, "tp_account", "balance", here._dc_meta.id) == [1]
        assert values_in(off_url, "tp_account", "balance", there._dc_meta.id) == [2]


def test_schemas_of_one_database_share_its_prepared_transactions(
    postgres_database: str | None,
) -> None:
    """The dialect lists the prepared transactions of its database whatever the schema (two
    backends that are schemas of one database list the same ones), and ends each once: a
    second end finds none (False, not an error)."""
    if postgres_database is None:
        pytest.skip("PostgreSQL is not reachable")
    with _fresh_schema(postgres_database) as one, _fresh_schema(postgres_database) as other:
        dialect = dialect_for(sa.engine.make_url(one))
        prefix = f"claystore_{uuid4().hex}_"
        gid = f"{prefix}{uuid4().hex}_0"
        with plain_engine(one) as engine, engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            dialect.prepare(conn, gid)
        try:
            with plain_engine(other) as engine, engine.connect() as conn:
                auto = conn.execution_options(isolation_level="AUTOCOMMIT")
                assert dialect.prepared_gids(auto, prefix) == [gid]
                assert dialect.rollback_prepared(auto, gid)
                assert not dialect.rollback_prepared(auto, gid)
                assert not dialect.commit_prepared(auto, gid)
                assert dialect.prepared_gids(auto, prefix) == []
        finally:
            drop_prepared(one, prefix)
