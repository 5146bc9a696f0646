"""Moving objects between backends, crash-safe, and the repair of moves a crash interrupted.

Owns the move of a set of objects from one backend (the *source*) to another (the *target*),
its journal (``dc_move``, in the metadata database) and :func:`repair`.  Which objects move
(``recursive``, ``remotes``) is decided by :func:`plan`, which walks references in committed
state, from table rows (no object is built).

A row on a backend is *home* when its registry row there (``dc_object.backend_id``) names that
backend; readers see home rows only.  A move:

1. writes a journal row (state ``copying``) and commits it;
2. copies the objects' rows (registry, class tables, link tables) to the target, where the
   registry rows still name the source: *shadows*, which no reader sees; commits;
3. locks the rows on the source (``SELECT ... FOR UPDATE``; SQLite: the write lock), reads
   their row versions, copies again any row written since step 2, drops the shadows of objects
   deleted meanwhile (target commit), then sets the journal to ``switching``;
4. deletes the rows on the source and commits: **the decision**.  Writers that waited for the
   lock find the object gone and follow it (:class:`~claystore.orm.routing.ReadRoute`);
5. makes the target's registry rows name the target (home); commits;
6. deletes the journal row.

A repair never races a mover it takes for dead (a mover on another host whose journal row is
older than :data:`LEASE_SECONDS`): it marks a ``copying`` move ``undoing`` before it touches
anything, and the mover records ``switching`` only over ``copying`` (else it stops before its
decision); it reads the source of a ``switching`` move under the source's write lock.

After a crash, :func:`repair` (run by every client start and ``claystore backends repair``)
ends each move whose mover is gone: in state ``copying`` (or ``undoing``: a repair that
stopped), or ``switching`` with any of its objects still home on the source (step 4 did not
commit), it drops the shadows (undo); in ``switching`` with none left on the source, it does
step 5 (finish).  So each object is home on exactly one backend once repaired, and in the
short time between steps 4 and 5 (or after a crash there) a reader that does not find an
object waits for the move (:func:`settle`), or repairs it if its mover is gone.  Nothing is
lost: the source rows go only after the target holds their latest version, under the lock
that keeps writers out.

Ids go to a database in batches of the dialect's ``among_limit`` (one bind parameter per
batch: :meth:`~claystore.dialects.base.Dialect.among`), so a move sends the same statements for
10,000 objects as for 10; rows go between two databases of one engine as they are stored
(:meth:`~claystore.dialects.base.Dialect.copy_between`: ``COPY`` from server to server on
PostgreSQL), between engines through Python values.

Called by the object API (``move``), the client (repair at start) and the routing of reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.errors import (
    DatabaseConnectionError,
    LockTimeoutError,
    MoveError,
    ObjectMovedError,
)
from claystore.orm import liveness
from claystore.orm.identity import new_object_id
from claystore.orm.moveplan import Databases, MovePlan, batches, model_of, plan, registry_rows
from claystore.orm.system import dc_move, dc_object

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.dialects.base import Dialect
    from claystore.orm.database import Database
    from claystore.orm.mapping import ModelInfo

__all__ = ["Databases", "MovePlan", "plan", "repair", "run", "settle"]  # plan: re-exported

#: A mover on another host is taken for dead when its journal row is older than this.
LEASE_SECONDS = liveness.LEASE_SECONDS
#: Called with each step's name as a move passes it (tests kill the process there).
step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


# -- the journal ---------------------------------------------------------------------------------


@attrs.frozen
class Entry:
    """One journal row."""

    id: UUID
    source: UUID
    target: UUID
    state: str
    object_ids: tuple[UUID, ...]
    tables: tuple[tuple[str, str], ...]
    owner: str
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> Entry:
        """The entry of a ``dc_move`` row."""
        return cls(
            UUID(str(row.id)),
            UUID(str(row.source_id)),
            UUID(str(row.target_id)),
            row.state,
            tuple(UUID(i) for i in json.loads(row.object_ids)),
            tuple((t, k) for t, k in json.loads(row.tables)),
            row.owner,
            row.updated_at,
        )

    @property
    def alive(self) -> bool:
        """Whether its mover still runs."""
        return liveness.is_alive(self.id, self.owner, self.updated_at)


def journal(databases: Databases) -> list[Entry]:
    """The moves under way or interrupted."""
    rows = databases.metadata.read(lambda conn: conn.execute(sa.select(dc_move)).all())
    return [Entry.of(r) for r in rows]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _switching(conn: Connection, move_id: UUID, ids: Sequence[UUID]) -> None:
    """Record the final ids and the state ``switching`` — only if the move is still
    ``copying``: a repair that took its mover for dead and undid it (state ``undoing``, or the
    row gone) makes the mover stop here, before it deletes anything."""
    written = conn.execute(
        sa.update(dc_move)
        .where(dc_move.c.id == move_id, dc_move.c.state == "copying")
        .values(state="switching", object_ids=json.dumps([str(i) for i in ids]), updated_at=_now())
    ).rowcount
    if written != 1:
        msg = (
            "this move was undone by a repair (another client took its process for dead, "
            "after more than a lease without progress); nothing moved: run it again"
        )
        raise MoveError(msg)


def _claim_undo(databases: Databases, move_id: UUID) -> bool:
    """Mark a move ``copying`` as being undone (so its mover, if alive after all, stops before
    its decision); False when it reached ``switching`` meanwhile."""
    with databases.metadata.writing() as conn:
        written = conn.execute(
            sa.update(dc_move)
            .where(dc_move.c.id == move_id, dc_move.c.state.in_(("copying", "undoing")))
            .values(state="undoing", updated_at=_now())
        ).rowcount
    return bool(written == 1)


# -- one move ------------------------------------------------------------------------------------


def _tables(infos: Iterable[ModelInfo]) -> list[tuple[sa.Table, str]]:
    """The tables holding the objects of these classes, in insert order, with the column that
    holds the object id."""
    tables: dict[sa.Table, str] = {}
    for info in infos:
        for model in info.hierarchy:
            tables.setdefault(model.table, "id")
        for model in info.hierarchy:
            for link in model.link_tables.values():
                tables.setdefault(link, "owner_id")
    return list(tables.items())


def _copy(  # noqa: PLR0917 - two connections and their databases
    source: Connection,
    source_db: Database,
    target: Connection,
    target_db: Database,
    tables: list[tuple[sa.Table, str]],
    ids: list[UUID],
) -> None:
    """Copy the rows of ``ids`` (registry first) from ``source`` to ``target``."""
    dialect = source_db.dialect
    same_engine = dialect.name == target_db.dialect.name
    for table, key in [(dc_object, "id"), *tables]:
        columns = [c.name for c in table.columns]
        for chunk in batches(dialect, ids):
            if same_engine and dialect.copy_between(source, target, table, key, chunk):
                continue
            rows = source.execute(sa.select(table).where(dialect.among(table.c[key], chunk))).all()
            if rows:
                target_db.dialect.insert_rows(target, table, columns, [tuple(r) for r in rows])


def _delete(
    conn: Connection, dialect: Dialect, tables: Sequence[tuple[Any, str]], ids: Sequence[UUID]
) -> None:
    """Delete the rows of ``ids`` from ``tables`` (dependent tables first), then the registry."""
    for name, key in reversed(tables):
        table = sa.table(name, sa.column(key, sa.Uuid))
        for batch in batches(dialect, ids):
            conn.execute(sa.delete(table).where(dialect.among(table.c[key], batch)))
    for batch in batches(dialect, ids):
        conn.execute(sa.delete(dc_object).where(dialect.among(dc_object.c.id, batch)))


def _versions(
    conn: Connection, database: Database, roots: dict[sa.Table, list[UUID]], *, lock: bool
) -> dict[UUID, int]:
    """The row version of each object (its root table's ``dc_version``), locked with ``lock``."""
    found: dict[UUID, int] = {}
    dialect = database.dialect
    for root, ids in roots.items():
        for batch in batches(dialect, ids):
            statement = sa.select(root.c.id, root.c.dc_version).where(
                dialect.among(root.c.id, batch)
            )
            if lock:
                statement = database.dialect.lock_rows(statement, root)
            found.update((r[0], r[1]) for r in conn.execute(statement).all())
    return found


def run(
    databases: Databases, source_id: UUID, target_id: UUID, classes: dict[str, list[UUID]]
) -> list[UUID]:
    """Move the objects ``classes`` (class table -> ids) from one backend to another (the
    steps of the module docstring); returns the ids moved (those deleted meanwhile left out)."""
    source_db = databases.database(source_id)
    target_db = databases.database(target_id)
    infos = {model_of(name, ids[0]): ids for name, ids in classes.items()}
    tables = _tables(infos)
    roots: dict[sa.Table, list[UUID]] = defaultdict(list)
    for info, ids in infos.items():
        roots[info.root.table].extend(ids)
    ids = [i for class_ids in infos.values() for i in class_ids]
    for database in (source_db, target_db):
        database.ensure_tables()
    move_id = new_object_id()
    with liveness.running(move_id):
        return _run(databases, move_id, source_db, target_db, tables, roots, ids)


def _run(  # noqa: PLR0917 - the state of one move, passed along
    databases: Databases,
    move_id: UUID,
    source_db: Database,
    target_db: Database,
    tables: list[tuple[sa.Table, str]],
    roots: dict[sa.Table, list[UUID]],
    ids: list[UUID],
) -> list[UUID]:
    """The steps of one move, registered as running in this process."""
    source_id, target_id = source_db.backend_id, target_db.backend_id
    assert source_id is not None
    assert target_id is not None
    metadata = databases.metadata
    try:
        with metadata.writing() as conn:
            conn.execute(
                sa.insert(dc_move),
                {
                    "id": move_id,
                    "source_id": source_id,
                    "target_id": target_id,
                    "state": "copying",
                    "object_ids": json.dumps([str(i) for i in ids]),
                    "tables": json.dumps([[t.name, k] for t, k in tables]),
                    "owner": liveness.owner(),
                    "started_at": _now(),
                    "updated_at": _now(),
                },
            )
        _step("journaled")
        with source_db.reader() as source, target_db.writing() as target:
            copied = _versions(source, source_db, roots, lock=False)
            _copy(source, source_db, target, target_db, tables, ids)
        _step("copied")
        moved = _switch(databases, move_id, source_db, target_db, tables, roots, copied)
        _step("deleted")
        with target_db.writing() as target:
            _promote(target, target_db.dialect, moved, source_id, target_id)
        _step("promoted")
        with metadata.writing() as conn:
            conn.execute(sa.delete(dc_move).where(dc_move.c.id == move_id))
        _step("done")
        return moved
    except BaseException:
        with contextlib.suppress(Exception):  # what the next start would do, done now
            for entry in journal(databases):
                if entry.id == move_id:
                    _repair_entry(databases, entry)
        raise


def _switch(  # noqa: PLR0917 - the state of one move, passed along
    databases: Databases,
    move_id: UUID,
    source_db: Database,
    target_db: Database,
    tables: list[tuple[sa.Table, str]],
    roots: dict[sa.Table, list[UUID]],
    copied: dict[UUID, int],
) -> list[UUID]:
    """Steps 3 and 4: under the source's lock, bring the target's copies up to date, record
    the final set of ids (state ``switching``), delete the source rows and commit."""
    source_id = source_db.backend_id
    assert source_id is not None
    with source_db.writing() as source:
        ids = [i for group in roots.values() for i in group]
        # the class rows first, then the registry: the order writers lock them in
        current = _versions(source, source_db, roots, lock=True)
        home = {r.id for r in _registry_locked(source, source_db, ids, source_id)}
        moved = [i for i in ids if i in home and i in current]
        kept = set(moved)
        gone = [i for i in ids if i not in kept]
        stale = [i for i in moved if current[i] != copied.get(i)]
        if gone or stale:
            with target_db.writing() as target:
                _delete(
                    target, target_db.dialect, [(t.name, k) for t, k in tables], [*gone, *stale]
                )
                if stale:
                    _copy(source, source_db, target, target_db, tables, stale)
        if source_db is databases.metadata:  # one transaction: decided with the delete
            _switching(source, move_id, moved)
        else:
            with databases.metadata.writing() as conn:
                _switching(conn, move_id, moved)
        _step("switching")
        _delete(source, source_db.dialect, [(t.name, k) for t, k in tables], moved)
    return moved


def _registry_locked(
    conn: Connection, database: Database, ids: list[UUID], backend_id: UUID
) -> list[Any]:
    rows: list[Any] = []
    c = dc_object.c
    dialect = database.dialect
    for batch in batches(dialect, ids):
        statement = sa.select(c.id, c.backend_id).where(dialect.among(c.id, batch))
        statement = dialect.lock_rows(statement, dc_object)
        rows += [r for r in conn.execute(statement).all() if r.backend_id == backend_id]
    return rows


def _promote(
    conn: Connection, dialect: Dialect, ids: Sequence[UUID], source_id: UUID, target_id: UUID
) -> None:
    """Step 5: the target's copies become home."""
    c = dc_object.c
    for batch in batches(dialect, ids):
        conn.execute(
            sa.update(dc_object)
            .where(dialect.among(c.id, batch), c.backend_id == source_id)
            .values(backend_id=target_id)
        )


# -- repair --------------------------------------------------------------------------------------


def _repair_entry(databases: Databases, entry: Entry) -> str:
    """End one interrupted move (see the module docstring); returns what was done.

    A move still ``copying`` is first marked ``undoing`` (its mover, were it alive after all,
    then stops before deleting anything); in ``switching``, the source is read under its write
    lock, so a mover in the middle of its decision is waited for.
    """
    source_db = databases.database(entry.source)
    target_db = databases.database(entry.target)
    ids = list(entry.object_ids)
    undo = entry.state != "switching"
    if undo and not _claim_undo(databases, entry.id):
        refreshed = [e for e in journal(databases) if e.id == entry.id]
        if not refreshed:
            return "ended"  # its mover ended it meanwhile
        return _repair_entry(databases, refreshed[0])
    if not undo:
        with source_db.writing() as source:
            undo = bool(_registry_locked(source, source_db, ids, entry.source))
    dialect = target_db.dialect
    with target_db.writing() as target:
        if undo:
            shadows = [r.id for r in registry_rows(target, dialect, ids, entry.source)]
            _delete(target, dialect, entry.tables, shadows)
        else:
            _promote(target, dialect, ids, entry.source, entry.target)
    with databases.metadata.writing() as conn:
        conn.execute(sa.delete(dc_move).where(dc_move.c.id == entry.id))
    return "undone" if undo else "finished"


@attrs.frozen
class Repaired:
    """A move :func:`repair` ended: its id, backends, number of objects and what it did
    (``"undone"``: the objects stay on the source; ``"finished"``: they are on the target)."""

    move_id: UUID
    source: UUID
    target: UUID
    objects: int
    outcome: str


def repair(databases: Databases) -> list[Repaired]:
    """End every move whose mover is gone (moves under way are left to their process)."""
    done = []
    for entry in journal(databases):
        if entry.alive:
            continue
        try:
            outcome = _repair_entry(databases, entry)
        except DatabaseConnectionError:  # left for a repair once both backends are reachable
            continue
        done.append(Repaired(entry.id, entry.source, entry.target, len(entry.object_ids), outcome))
    return done


def settle(
    databases: Databases,
    object_ids: Iterable[UUID],
    timeout: float = 60.0,
    busy: Collection[UUID] = (),
) -> bool:
    """Wait for the moves of these objects under way now to end (not for later ones),
    repairing those whose mover is gone; True when there was such a move (the caller looks
    for the objects again).

    ``busy``: the backends the caller's transaction holds locks on.  A move from or to one of
    them may be waiting for those locks, so instead of waiting (until both time out) it
    raises :class:`ObjectMovedError`: the transaction rolls back and runs again.
    """
    wanted = set(object_ids)
    entries = [e for e in journal(databases) if wanted.intersection(e.object_ids)]
    if not entries:
        return False
    for entry in entries:
        if entry.alive and {entry.source, entry.target}.intersection(busy):
            msg = (
                f"objects {sorted(str(i) for i in wanted)[:3]} are being moved by another "
                "process, which may wait for this transaction: nothing was written; run the "
                "transaction again"
            )
            raise ObjectMovedError(msg)
    pending = {e.id for e in entries}
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        entries = [e for e in journal(databases) if e.id in pending]
        if not entries:
            return True
        for entry in entries:
            if not entry.alive:
                _repair_entry(databases, entry)
        if time.monotonic() > deadline:
            msg = (
                f"objects {sorted(str(i) for i in wanted)[:3]} are being moved by another "
                f"process for more than {timeout:g}s; try again later"
            )
            raise LockTimeoutError(msg)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
