"""Two-phase commit of a transaction that wrote objects to several backends, and the recovery
of the commits a crash left in doubt.

Owns :func:`check_participants` (may a transaction write objects to these backends at all?),
:func:`commit` (the protocol), the records of commits under way (``dc_commit``, in the
metadata database) and :func:`recover`.

A transaction (a unit of work, an activemethod, an autocommit operation) that writes object
rows to one backend commits as before: one ``COMMIT`` per connection, the metadata database
(aliases) last.  One that writes object rows to two or more commits so that every backend
holds all of it or none of it (PostgreSQL's ``PREPARE TRANSACTION`` / ``COMMIT PREPARED``,
through the dialect):

1. a record (state ``preparing``: the participants -- backend and gid of each -- and the
   owner process) is inserted and committed in the metadata database, on a connection of its
   own, *before* anything is prepared;
2. each participant is prepared (its changes and locks are kept by its server, even across a
   crash); the metadata database's connection takes part when it wrote something (aliases);
3. **the decision**: ``UPDATE dc_commit SET state = 'committing' WHERE id = ... AND state =
   'preparing'``, committed.  No row updated means a recovery took the owner for dead and
   claimed the record (state ``aborting``): the owner rolls back what it prepared and raises;
4. ``COMMIT PREPARED`` on each participant (outside any transaction block);
5. the record is deleted.

A failure before the decision rolls back every participant (``ROLLBACK PREPARED`` for those
prepared) and deletes the record.  A failure after it cannot undo the commit: what is left
prepared is committed by the next recovery (the caller is told in the log, not by an error:
the transaction *is* committed).

:func:`recover` (run by every client start, before moves are repaired -- a prepared
transaction holds its row locks -- and by ``client.repair_moves()`` / ``claystore backends
repair``) lists the prepared transactions of this store (gid prefix ``claystore_<store id>_``)
in every backend database, *then* reads the records, and ends each: a record ``committing``
-> ``COMMIT PREPARED`` (always: the decision is made, and finishing twice is harmless); a
record ``preparing`` whose owner is dead (:mod:`claystore.orm.liveness`) -> claimed
``aborting`` by a conditional update (so the owner, were it alive after all, cannot decide to
commit) -> ``ROLLBACK PREPARED``; no record -> ``ROLLBACK PREPARED`` (presumed abort: the
record is written before any prepare and deleted only after every participant ended, so a
prepared transaction listed before the read found no record was never decided); a record
``preparing`` whose owner is alive is left to it.  A record is deleted once each of its
participants is ended (or not prepared at all).  Listing before reading is what makes it safe
against a commit that starts meanwhile.

Called by :class:`claystore.orm.transaction.Transaction` (check and commit) and the client
(recovery).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.errors import (
    BackendDoesNotExistError,
    CrossBackendTransactionError,
    DatabaseConnectionError,
    DatabaseError,
)
from claystore.orm import backends, liveness
from claystore.orm.identity import new_object_id
from claystore.orm.system import dc_commit

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.orm.database import Database
    from claystore.orm.moveplan import Databases

__all__ = ["Resolved", "check_participants", "commit", "gid_prefix", "recover"]

log = logging.getLogger("claystore")

#: Called with each step's name as a commit passes it (tests kill the process there):
#: ``recorded``, ``prepared`` (every participant), ``decided``, ``committed`` (every
#: participant), ``done``.
step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def gid_prefix(store_id: UUID) -> str:
    """The start of the gid of every prepared transaction of the store whose metadata
    database (default backend) is ``store_id``: recovery never touches another store's."""
    return f"claystore_{store_id.hex}_"


# -- may a transaction write to these backends? -----------------------------------------------


def check_participants(databases: Databases, backend_ids: Sequence[UUID]) -> None:
    """Raise :class:`CrossBackendTransactionError` unless every one of ``backend_ids`` (two
    or more: the backends a transaction writes objects to) and the metadata database (which
    records the decision) can take part in a two-phase commit (asked once per database)."""
    metadata_id = databases.metadata_id
    wanted = [*backend_ids, *([] if metadata_id in backend_ids else [metadata_id])]
    unable = [b for b in wanted if not databases.database(b).can_prepare()]
    if unable:
        raise _refusal(databases, backend_ids, unable)


def _refusal(
    databases: Databases, backend_ids: Sequence[UUID], unable: list[UUID]
) -> CrossBackendTransactionError:
    infos = databases.metadata.read(lambda conn: backends.list_backends(conn, ""))
    order = {backend_id: n for n, backend_id in enumerate(infos)}  # as registered
    backend_ids = sorted(backend_ids, key=lambda b: order.get(b, len(order)))

    def named(backend_id: UUID) -> str:
        info = infos.get(backend_id)
        name = info.name if info is not None else str(backend_id)
        return f"{name!r} ({databases.database(backend_id).dialect.title})"

    written = ", ".join(named(b) for b in backend_ids)
    reasons = "; ".join(
        f"{named(b)}{' (the metadata database)' if b == databases.metadata_id else ''}: "
        f"{databases.database(b).dialect.prepare_refusal()}"
        for b in unable
    )
    msg = (
        f"this transaction would write objects to several backends ({written}), which takes "
        f"a two-phase commit, and not every database can take part in one ({reasons}); "
        "nothing of this write was sent. Use PostgreSQL backends (and metadata database) "
        "whose servers have max_prepared_transactions > 0, or split the work into one unit "
        "of work per backend, or move the objects to one backend (obj.move(backend))"
    )
    return CrossBackendTransactionError(msg, tuple(named(b) for b in backend_ids))


# -- the records -------------------------------------------------------------------------------


@attrs.frozen
class Record:
    """One ``dc_commit`` row."""

    id: UUID
    state: str
    participants: tuple[tuple[UUID, str], ...]  # (backend, gid)
    owner: str
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> Record:
        """The record of a ``dc_commit`` row."""
        pairs = tuple((UUID(b), gid) for b, gid in json.loads(row.participants))
        return cls(UUID(str(row.id)), row.state, pairs, row.owner, row.updated_at)

    @property
    def alive(self) -> bool:
        """Whether its owner still runs the commit."""
        return liveness.is_alive(self.id, self.owner, self.updated_at)


def records(databases: Databases) -> list[Record]:
    """The commits across backends under way or interrupted."""
    rows = databases.metadata.read(lambda conn: conn.execute(sa.select(dc_commit)).all())
    return [Record.of(r) for r in rows]


def _set_state(databases: Databases, commit_id: UUID, state: str, *, over: Sequence[str]) -> bool:
    """Set a record's state if it is one of ``over``; False when it is not (or is gone)."""
    with databases.metadata.writing() as conn:
        written = conn.execute(
            sa.update(dc_commit)
            .where(dc_commit.c.id == commit_id, dc_commit.c.state.in_(over))
            .values(state=state, updated_at=_now())
        ).rowcount
    return bool(written == 1)


def _forget(databases: Databases, commit_id: UUID) -> None:
    with databases.metadata.writing() as conn:
        conn.execute(sa.delete(dc_commit).where(dc_commit.c.id == commit_id))


# -- the protocol -------------------------------------------------------------------------------


def commit(
    databases: Databases, conns: Mapping[UUID, Connection], participants: Sequence[UUID]
) -> None:
    """Commit the transactions on ``conns`` of ``participants`` (backends) as one: all or
    none (the steps of the module docstring).  The connections are out of any transaction
    after it.  Raises the error of a participant that could not prepare (everything rolled
    back)."""
    commit_id = new_object_id()
    prefix = gid_prefix(databases.metadata_id)
    gids = {b: f"{prefix}{commit_id.hex}_{n}" for n, b in enumerate(participants)}
    with liveness.running(commit_id):
        with databases.metadata.writing() as conn:
            conn.execute(
                sa.insert(dc_commit),
                {
                    "id": commit_id,
                    "state": "preparing",
                    "participants": json.dumps([[str(b), gid] for b, gid in gids.items()]),
                    "owner": liveness.owner(),
                    "created_at": _now(),
                    "updated_at": _now(),
                },
            )
        _step("recorded")
        prepared: dict[UUID, str] = {}
        try:
            for backend_id in participants:
                database = databases.database(backend_id)
                try:
                    database.dialect.prepare(conns[backend_id], gids[backend_id])
                except sa.exc.SQLAlchemyError as exc:
                    raise database.translate(exc) from exc
                prepared[backend_id] = gids[backend_id]
            _step("prepared")
        except BaseException:
            _abort(databases, commit_id, conns, prepared)
            raise
        if not _decide(databases, commit_id):
            _abort(databases, commit_id, conns, prepared)
            msg = (
                "a repair took this process for dead while it committed a transaction across "
                "backends, and rolled it back: nothing was written; run the transaction again"
            )
            raise DatabaseError(msg)
        _step("decided")
        left = [
            b for b in participants if _end(databases, b, gids[b], conns[b], commit=True) is None
        ]
        _step("committed")
        if left:
            log.warning(
                "claystore committed transaction %s across backends, but could not finish it "
                "on backends %s: they show its changes once `claystore backends repair` (or "
                "the next client start) commits them",
                commit_id,
                ", ".join(str(b) for b in left),
            )
            return
        _forget(databases, commit_id)
        _step("done")


def _decide(databases: Databases, commit_id: UUID) -> bool:
    """Step 3: record the decision to commit; False when a recovery claimed the record.  When
    the update's outcome is unknown (the metadata database failed), read it again; when that
    fails too, raise: the commit is left in doubt, for a recovery to end."""
    try:
        return _set_state(databases, commit_id, "committing", over=("preparing",))
    except Exception as exc:
        try:
            state = next((r.state for r in records(databases) if r.id == commit_id), None)
        except Exception:
            msg = (
                f"the decision of transaction {commit_id} across backends could not be "
                f"recorded ({exc}); it is in doubt: `claystore backends repair` (or the next "
                "client start) commits or rolls it back everywhere"
            )
            raise DatabaseError(msg) from exc
        if state == "committing":
            return True
        raise


def _end(
    databases: Databases, backend_id: UUID, gid: str, conn: Connection | None, *, commit: bool
) -> bool | None:
    """COMMIT (or ROLLBACK) PREPARED ``gid`` on a backend -- on ``conn`` if given, else (or if
    that fails) on a new connection: True when this ended it, False when there was no such
    prepared transaction (ended already), None when the backend cannot be reached."""
    try:
        database = databases.database(backend_id)
    except (BackendDoesNotExistError, DatabaseConnectionError) as exc:
        log.warning("claystore could not end prepared transaction %s: %s", gid, exc)
        return None
    dialect = database.dialect
    end = dialect.commit_prepared if commit else dialect.rollback_prepared
    if conn is not None:
        with contextlib.suppress(Exception):  # tried again on a new connection below
            return end(conn, gid)
    try:
        return database.read(lambda fresh: end(fresh, gid))
    except (DatabaseError, sa.exc.SQLAlchemyError) as exc:
        log.warning("claystore could not end prepared transaction %s: %s", gid, exc)
        return None


def _abort(
    databases: Databases,
    commit_id: UUID,
    conns: Mapping[UUID, Connection],
    prepared: Mapping[UUID, str],
) -> None:
    """Before the decision: roll back what a commit prepared, then delete its record (kept,
    state ``aborting``, when a participant cannot be reached: a recovery ends it).  Only the
    owner decides to commit, and it did not, so this is safe even when the record cannot be
    claimed first."""
    with contextlib.suppress(Exception):
        _set_state(databases, commit_id, "aborting", over=("preparing", "aborting"))
    ended = [_end(databases, b, gid, conns.get(b), commit=False) for b, gid in prepared.items()]
    if all(e is not None for e in ended):
        with contextlib.suppress(Exception):  # else a recovery deletes it
            _forget(databases, commit_id)


# -- recovery -------------------------------------------------------------------------------------


@attrs.frozen
class Resolved:
    """A prepared transaction :func:`recover` ended: the commit it belonged to (None when it
    had no record: presumed abort), its backend and gid, and ``outcome`` (``"committed"`` or
    ``"rolled back"``)."""

    commit_id: UUID | None
    backend: UUID
    gid: str
    outcome: str


def _gids(database: Database, prefix: str) -> list[str]:
    """The prepared transactions of one backend's database whose gid starts with ``prefix``."""
    dialect = database.dialect
    if not dialect.has_two_phase_commit:
        return []
    return database.read(lambda conn: dialect.prepared_gids(conn, prefix))


def _prepared(databases: Databases, prefix: str) -> dict[str, UUID]:
    """The prepared transactions of this store: gid -> the backend whose database holds it
    (two backends that are schemas of one database list the same ones)."""
    found: dict[str, UUID] = {}
    for backend_id in databases.known():
        try:
            gids = _gids(databases.database(backend_id), prefix)
        except (DatabaseConnectionError, BackendDoesNotExistError):
            continue  # left for a recovery once it is reachable
        for gid in gids:
            found.setdefault(gid, backend_id)
    return found


def recover(databases: Databases) -> list[Resolved]:
    """End every prepared transaction of this store whose commit is not under way in a live
    process, and delete the records of ended commits (see the module docstring); returns what
    was ended."""
    found = _prepared(databases, gid_prefix(databases.metadata_id))
    known = records(databases)  # read after the listing: see the module docstring
    recorded = {gid for record in known for _, gid in record.participants}
    done = [
        Resolved(None, backend_id, gid, "rolled back")
        for gid, backend_id in found.items()
        if gid not in recorded and _end(databases, backend_id, gid, None, commit=False)
    ]
    for record in known:
        done += _resolve(databases, record)
    return done


def _resolve(databases: Databases, record: Record) -> list[Resolved]:
    """End the participants of one record, and delete it once they all are."""
    if record.state == "preparing":
        if record.alive:
            return []
        if not _set_state(databases, record.id, "aborting", over=("preparing", "aborting")):
            fresh = [r for r in records(databases) if r.id == record.id]
            return _resolve(databases, fresh[0]) if fresh else []
        record = attrs.evolve(record, state="aborting")
    commit_it = record.state == "committing"
    outcome = "committed" if commit_it else "rolled back"
    done: list[Resolved] = []
    ended = True
    for backend_id, gid in record.participants:
        result = _end(databases, backend_id, gid, None, commit=commit_it)
        if result is None:
            ended = False
        elif result:
            done.append(Resolved(record.id, backend_id, gid, outcome))
    if ended:
        _forget(databases, record.id)
    return done
