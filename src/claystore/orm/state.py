"""Per-object state: the lifecycle of a stored object, what its transaction tracks about it, and
the only functions that change a lifecycle.

Everything claystore keeps on a user object hangs off one attribute, ``_dc_state`` (an
:class:`ObjectState`).  A transient object (never stored, or deleted) has none.

The lifecycle and its legal transitions, each made by one function of this module (called by
:mod:`claystore.orm.transaction`, which decides *when*):

==========  =================================  ==========  =======================
from        event                              to          function
==========  =================================  ==========  =======================
transient   stored by an open transaction      NEW         :func:`stage_new`
(none)      loaded from a row                  PERSISTENT  :func:`loaded`
NEW         its transaction commits            PERSISTENT  :func:`mark_persistent`
NEW         its transaction rolls back         transient   :func:`make_transient`
PERSISTENT  deleted in an open transaction     DELETED     :func:`mark_deleted`
DELETED     its transaction commits            transient   :func:`make_transient`
DELETED     its transaction rolls back         PERSISTENT  :func:`undelete`
==========  =================================  ==========  =======================

While an open transaction *owns* an object (``owner``), the state also carries what that
transaction tracks about it: which fields' memory values are current (``fresh``), which were
assigned and not yet written (``dirty``), a comparable copy of each container as loaded
(``baseline``, to find in-place changes), the row version loaded (``loaded_version``), and how
the transaction holds the object (strongly, or weakly for objects a unit of work loaded and
nobody changed).  One state per object, whatever the transaction: loading an object allocates
nothing else.  The owning transaction resets the tracking when it lets go (:func:`release`).

The object's ``context`` is its *jar* (:class:`Jar`): what the field descriptors call to read
or write a stored field outside the owning transaction.  This module only knows the protocol.

Also owns what keeps containers live: :func:`adopt` (an assigned container is kept, not
copied) and :func:`check_containers` (a live container is checked again before it is written).

Also owns the *strand* of the caller (:func:`strand`, :func:`is_here`): who a transaction,
an ownership or a query loop belongs to.  It is the calling thread, except inside an async
session (:mod:`claystore.orm.asyncsession`), whose strand spans its task on the event loop and
the session's worker thread: both see the session's transaction and its objects.

Called by the descriptors (:mod:`claystore.orm.attributes`), the loaders, the transaction, the
reachability walk (:mod:`claystore.orm.graph`) and the flush (:mod:`claystore.orm.unitofwork`).
No I/O.
"""

from __future__ import annotations

import enum
import itertools
import json
import operator
import weakref
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from threading import get_ident
from typing import Any, Protocol
from uuid import UUID

from claystore.errors import FieldTypeError, ObjectNotRegisteredError
from claystore.orm.fields import Field, FieldKind

STATE_ATTR = "_dc_state"
NOTHING: frozenset[str] = frozenset()


class Strand:
    """An async session's strand: its task on the event loop and its worker thread act as one
    caller.  ``token`` stands where a thread id would (negative: never a thread's);
    ``loop_thread`` is the event loop's thread, where the session runs no statement (None: a
    query loop's strand outside sessions, which refuses nothing)."""

    __slots__ = ("loop_thread", "token")

    _tokens = itertools.count(-1, -1)

    def __init__(self, loop_thread: int | None) -> None:
        self.token = next(Strand._tokens)
        self.loop_thread = loop_thread

    def __repr__(self) -> str:
        return f"<Strand {self.token}>"


#: the strand of the calling context (None: the calling thread is its own strand)
_strand: ContextVar[Strand | None] = ContextVar("claystore_strand", default=None)


def strand() -> int:
    """Who is calling: the thread id, or the token of the async session's strand it runs in."""
    current = _strand.get()
    return get_ident() if current is None else current.token


def current_strand() -> Strand | None:
    """The async session strand of the calling context, if any."""
    return _strand.get()


def set_strand(value: Strand | None) -> Any:
    """Make ``value`` the strand of the calling context; returns a reset token."""
    return _strand.set(value)


def reset_var(token: Token[Any]) -> None:
    """Undo the ``set`` that gave ``token`` (of :func:`set_strand` and the like), or set the
    variable to None where the token belongs to another context (an async generator finalized
    elsewhere, a block left from another task)."""
    try:
        token.var.reset(token)
    except ValueError:
        token.var.set(None)


def is_here(owner_id: int) -> bool:
    """Whether ``owner_id`` (a transaction's or a query loop's :func:`strand`) is the
    caller's."""
    if owner_id == get_ident():
        return True
    current = _strand.get()
    return current is not None and current.token == owner_id


class Lifecycle(enum.Enum):
    """Where a stored object is in its life (see the module docstring for transitions)."""

    NEW = "new"
    PERSISTENT = "persistent"
    DELETED = "deleted"


class Jar(Protocol):
    """What a stored object's field descriptors call on the client context it belongs to
    (implemented by :class:`claystore.orm.context.ObjectContext`)."""

    def read_field(self, obj: Any, state: ObjectState, field: Field) -> Any:
        """The value of a stored object's field."""

    def write_field(self, obj: Any, state: ObjectState, field: Field, value: Any) -> None:
        """Assign a stored object's field (the value is checked already)."""


class Holder(Protocol):
    """The open transaction that owns an object (implemented by
    :class:`claystore.orm.transaction.Transaction`)."""

    thread_id: int
    is_active: bool

    def write(self, obj: Any, state: ObjectState, field: Field, value: Any) -> None:
        """Record an assignment to a field of an object this transaction may own."""


def baseline_of(field: Field, value: Any) -> Any:
    """A comparable copy of a container value, to find in-place changes later: the JSON text
    of a JSON field's document (nothing in it is shared with the value, however deep, and an
    int that became a float or a reordered dict counts as a change); the identities of the
    objects in a container of references."""
    if value is None:
        return None
    kind = field.kind
    if kind is FieldKind.JSON:
        assert field.encode is not None
        return json.dumps(field.encode(value))
    if kind is FieldKind.REF_DICT:
        return {k: id(v) for k, v in value.items()}
    if kind is FieldKind.REF_SET:
        return frozenset(id(v) for v in value)
    return [id(v) for v in value]


def _container(obj: Any, field: Field) -> Any:
    """The in-memory value of a container field (JSON under its key, links under its name)."""
    return obj.__dict__.get(field.name if field.kind.is_link else field.key)


class Snapshot:
    """One running query loop outside transactions, in one thread: while it is open, the
    objects it yielded answer this thread's reads of their column fields from the rows it
    loaded (the reads belong to the query's snapshot; docs/queries.md, the read rule of query
    loops).  A transaction of the same thread owning an object ends that for the object
    (:meth:`ObjectState.take_by`)."""

    __slots__ = ("is_open", "thread_id")

    def __init__(self) -> None:
        self.is_open = True
        self.thread_id = strand()

    def serves(self) -> bool:
        """Whether reads in this thread are still served from the loop's rows."""
        return self.is_open and is_here(self.thread_id)

    def close(self) -> None:
        """The loop ended: its objects read committed state again."""
        self.is_open = False


#: where the query loops of the calling context leave their snapshots when they end, for the
#: caller to close later (None: they close at once); see :func:`end_snapshot`
_deferred: ContextVar[list[Snapshot] | None] = ContextVar("claystore_snapshots", default=None)


def end_snapshot(snapshot: Snapshot) -> None:
    """A query loop's generator ended: close its snapshot -- or, where the caller defers it
    (``async for`` hands objects out a batch after the generator ran), leave it for them."""
    held = _deferred.get()
    if held is None:
        snapshot.close()
    else:
        held.append(snapshot)


def defer_snapshots(held: list[Snapshot]) -> Any:
    """Query loops of the calling context leave their snapshots in ``held`` when they end (the
    caller closes them); returns a reset token."""
    return _deferred.set(held)


class ObjectState:
    """The claystore state of one stored object (see the module docstring)."""

    __slots__ = (
        "backend_id",
        "baseline",
        "context",
        "dataset",
        "dirty",
        "fresh",
        "held",
        "lifecycle",
        "loaded_version",
        "object_id",
        "owner",
        "ref",
        "snapshot",
    )

    def __init__(  # noqa: PLR0917 - built in hot loops, positional on purpose
        self,
        object_id: UUID,
        context: Jar,
        dataset: str,
        backend_id: UUID,
        lifecycle: Lifecycle = Lifecycle.PERSISTENT,
        owner: Holder | None = None,
    ) -> None:
        self.object_id = object_id
        self.context = context
        self.dataset = dataset
        self.backend_id = backend_id
        self.lifecycle = lifecycle
        self.owner = owner
        # tracked by the owner: shared frozen sets until they change (most loaded objects never
        # do, and two sets per object would double what the garbage collector walks)
        self.fresh: set[str] | frozenset[str] = NOTHING
        self.dirty: set[str] | frozenset[str] = NOTHING
        self.baseline: dict[str, Any] | None = None
        self.loaded_version: int | None = None
        self.held: Any = None  # the object, while its owner holds it strongly
        self.ref: weakref.ref[Any] | None = None  # or a weak reference to it
        # (loop, row, position of each field key): the running query loop whose row answers
        # its thread's reads outside transactions (the read rule of query loops)
        self.snapshot: tuple[Snapshot, Any, Mapping[str, int]] | None = None

    def __repr__(self) -> str:
        return f"<ObjectState {self.object_id} {self.lifecycle.value}>"

    # -- how the owner holds the object ----------------------------------------------------------

    @property
    def obj(self) -> Any:
        """The owned object (None once a weakly held, unchanged object was dropped)."""
        held = self.held
        if held is not None:
            return held
        ref = self.ref
        return ref() if ref is not None else None

    def take_by(self, owner: Holder) -> None:
        """``owner`` owns the object from now on: a query loop of its thread no longer answers
        reads of it (the thread sees its transaction's view, then committed state)."""
        self.owner = owner
        snapshot = self.snapshot
        if snapshot is not None and snapshot[0].thread_id == owner.thread_id:
            self.snapshot = None

    def hold(self) -> None:
        """Keep the object alive until its owner ends (it has, or may get, changes)."""
        if self.held is None and self.ref is not None:
            self.held = self.ref()

    # -- tracking ----------------------------------------------------------------------------

    def mark_fresh(self, names: Iterable[str]) -> None:
        """These fields' memory values are current in the owning transaction."""
        fresh = self.fresh
        if isinstance(fresh, frozenset):  # shared: copy on first change
            fresh = self.fresh = set(fresh)
        fresh.update(names)

    def mark_dirty(self, name: str) -> None:
        """The field ``name`` was assigned and is not written yet."""
        dirty = self.dirty
        if isinstance(dirty, frozenset):
            self.dirty = {name, *dirty}
        else:
            dirty.add(name)

    def clear_dirty(self) -> None:
        """No field is waiting to be written any more."""
        self.dirty = NOTHING

    def set_baseline(self, field: Field, value: Any) -> None:
        """Remember ``value`` (the container as loaded or written) to compare with later."""
        baseline = self.baseline
        if baseline is None:
            baseline = self.baseline = {}
        baseline[field.name] = baseline_of(field, value)

    def mark_loaded(self, obj: Any) -> None:
        """The object's column fields were just read from its row: they are current."""
        info = type(obj)._dc_info
        d = obj.__dict__
        self.loaded_version = d.get("_dc_version")
        if self.fresh:
            self.mark_fresh(info.column_field_names)
        else:
            self.fresh = info.column_field_names  # shared (frozen) until something is added
        dirty = self.dirty
        for field in info.json_fields:
            if field.name not in dirty:
                self.set_baseline(field, d.get(field.key))

    def track_all(self, obj: Any) -> None:
        """Every field of the object is current (it was just inserted)."""
        info = type(obj)._dc_info
        self.dirty = NOTHING
        if self.fresh:
            self.mark_fresh(info.field_names)
        else:
            self.fresh = info.field_names  # shared (frozen) until something is added
        for field in info.fields.values():
            if field.kind is FieldKind.JSON or field.kind.is_link:
                self.set_baseline(field, _container(obj, field))

    def changed_fields(self, obj: Any) -> set[str]:
        """Fields assigned, plus containers changed in place since their baseline (one that
        no longer encodes counts as changed: :func:`check_containers` says why)."""
        dirty = set(self.dirty)
        baseline = self.baseline
        if baseline:
            fields = type(obj)._dc_info.fields
            for name, before in baseline.items():
                if name not in dirty:
                    field = fields[name]
                    try:
                        changed = baseline_of(field, _container(obj, field)) != before
                    except Exception:  # whatever was put in, it is a change
                        changed = True
                    if changed:
                        dirty.add(name)
        return dirty

    def expire(self, obj: Any) -> None:
        """Forget what the owner loaded or changed in memory (it is reloaded on next use)."""
        d = obj.__dict__
        fields = type(obj)._dc_info.fields
        for name in self.fresh:
            field = fields.get(name)
            if field is None:
                continue
            d.pop(field.key, None)
            if field.kind is FieldKind.REF or field.kind.is_link:
                d.pop(field.name, None)
        self.fresh = NOTHING
        self.dirty = NOTHING
        self.baseline = None
        self.loaded_version = None


# -- containers --------------------------------------------------------------------------------


def adopt(assigned: Any, checked: Any) -> Any:
    """The value a field keeps for an assignment: the assigned container itself where its type
    is what the field holds, with what the check converted (an int in a ``list[float]``, a
    ``bytearray`` in a ``list[bytes]``) put back into it in place; else ``checked`` (the
    check's copy: a list given for a tuple, a frozenset for a set).  Nested containers are
    kept the same way; an immutable container (tuple, frozenset) is kept when nothing in it
    changed.
    """
    adopter = _ADOPTERS.get(type(checked))
    if adopter is None or type(assigned) is not type(checked):
        return checked
    return adopter(assigned, checked)


def _adopt_list(assigned: list[Any], checked: list[Any]) -> list[Any]:
    if all(map(operator.is_, assigned, checked)):  # nothing converted (the common case)
        return assigned
    items = [a if a is c else adopt(a, c) for a, c in zip(assigned, checked, strict=True)]
    if not all(map(operator.is_, items, assigned)):
        assigned[:] = items
    return assigned


def _adopt_dict(assigned: dict[Any, Any], checked: dict[Any, Any]) -> dict[Any, Any]:
    if len(assigned) != len(checked):  # two keys became one: take the check's
        pairs = list(checked.items())
    else:
        if all(map(operator.is_, assigned, checked)) and all(
            map(operator.is_, assigned.values(), checked.values())
        ):  # nothing converted (the common case)
            return assigned
        pairs = [
            (key, a if a is c else adopt(a, c))
            for (key, c), a in zip(checked.items(), assigned.values(), strict=True)
        ]
        if all(map(operator.is_, assigned, checked)) and all(
            map(operator.is_, (new for _, new in pairs), assigned.values())
        ):  # only nested containers were converted, in place
            return assigned
    assigned.clear()
    assigned.update(pairs)
    return assigned


def _adopt_set(assigned: set[Any], checked: set[Any]) -> set[Any]:
    if not _same_members(assigned, checked):
        assigned.clear()
        assigned.update(checked)
    return assigned


def _adopt_tuple(assigned: tuple[Any, ...], checked: tuple[Any, ...]) -> tuple[Any, ...]:
    if all(map(operator.is_, assigned, checked)):
        return assigned
    items = [a if a is c else adopt(a, c) for a, c in zip(assigned, checked, strict=True)]
    return assigned if all(map(operator.is_, items, assigned)) else tuple(items)


def _adopt_frozenset(assigned: frozenset[Any], checked: frozenset[Any]) -> frozenset[Any]:
    return assigned if _same_members(assigned, checked) else checked


def _same_members(assigned: Any, checked: Any) -> bool:
    """True when the check kept every member of a set as it was given."""
    given = {id(member) for member in assigned}
    return len(given) == len(checked) and all(id(member) in given for member in checked)


_ADOPTERS: dict[type, Callable[[Any, Any], Any]] = {
    list: _adopt_list,
    dict: _adopt_dict,
    set: _adopt_set,
    tuple: _adopt_tuple,
    frozenset: _adopt_frozenset,
}


def check_containers(obj: Any, fields: Iterable[Field]) -> None:
    """Check again, before they are written, the values of container fields (JSON and
    references), which may have changed in place since they were assigned (an assigned
    container stays live: :func:`adopt`); what the check converts is put back in place.

    Raises :class:`FieldTypeError` naming the field when one holds something it cannot store.
    """
    d = obj.__dict__
    for field in fields:
        key = field.name if field.kind.is_link else field.key
        value = d.get(key)
        if value is None:
            continue
        try:
            checked = field.check(value)
        except FieldTypeError as exc:
            msg = (
                f"{exc} (checked again before writing: the container was changed in place "
                "after it was assigned or loaded); nothing was written"
            )
            raise FieldTypeError(msg) from None
        if checked is not value:
            d[key] = adopt(value, checked)


# -- letting go -------------------------------------------------------------------------------


def release(states: Iterable[ObjectState | None], owner: Holder | None) -> None:
    """``owner`` lets go of these states (those it still owns): no owner, nothing tracked;
    memory values stay, no longer current.  One loop for all of them, since a transaction lets
    go of every object it touched when it ends."""
    for state in states:
        if state is not None and state.owner is owner:
            state.owner = None
            state.held = None
            state.ref = None
            state.fresh = NOTHING
            state.dirty = NOTHING
            state.baseline = None
            state.loaded_version = None


def release_objects(objects: Iterable[Any], owner: Holder) -> None:
    """:func:`release` for the states of objects ``owner`` stored: they were never loaded, so
    only the owner is let go (their tracking, if any, is released with the owned states)."""
    for obj in objects:
        state = obj.__dict__.get(STATE_ATTR)
        if state is not None and state.owner is owner:
            state.owner = None


# -- reading a state ---------------------------------------------------------------------------


def stored_state(obj: Any) -> ObjectState:
    """The state of a stored object (its client may be stopped: callers check that).

    Raises :class:`ObjectNotRegisteredError` when the object is transient or deleted.
    """
    state: ObjectState | None = obj.__dict__.get(STATE_ATTR)
    if state is None or state.lifecycle is Lifecycle.DELETED:
        raise ObjectNotRegisteredError(f"{type(obj).__name__} at {id(obj):#x}")
    return state


# -- the transitions -----------------------------------------------------------------------------


def stage_new(
    objects: list[Any],
    ids: list[UUID],
    *,
    context: Jar,
    dataset: str,
    backend_id: UUID,
    owner: Holder,
) -> None:
    """Transient -> NEW: give each object its id and a state owned by ``owner``."""
    new = Lifecycle.NEW
    for obj, object_id in zip(objects, ids, strict=True):
        obj.__dict__[STATE_ATTR] = ObjectState(object_id, context, dataset, backend_id, new, owner)


def loaded(object_id: UUID, context: Jar, dataset: str, backend_id: UUID) -> ObjectState:
    """Loaded -> PERSISTENT: the state of an object just built from its row."""
    return ObjectState(object_id, context, dataset, backend_id, Lifecycle.PERSISTENT)


def mark_persistent(objects: Iterable[Any]) -> None:
    """NEW -> PERSISTENT: the transaction that stored these objects committed."""
    new, persistent = Lifecycle.NEW, Lifecycle.PERSISTENT
    for obj in objects:
        state = obj.__dict__.get(STATE_ATTR)
        if state is not None and state.lifecycle is new:
            state.lifecycle = persistent


def mark_deleted(state: ObjectState) -> None:
    """PERSISTENT -> DELETED: the object's rows were deleted in its owner's transaction."""
    state.lifecycle = Lifecycle.DELETED
    state.clear_dirty()


def undelete(state: ObjectState) -> None:
    """DELETED -> PERSISTENT: the deleting transaction (or savepoint) rolled back."""
    if state.lifecycle is Lifecycle.DELETED:
        state.lifecycle = Lifecycle.PERSISTENT


def make_transient(obj: Any) -> ObjectState | None:
    """NEW or DELETED -> transient: the object keeps its field values, not its ids or state.
    Returns the state it had (None if it had none)."""
    d = obj.__dict__
    state: ObjectState | None = d.pop(STATE_ATTR, None)
    if state is None:
        return None
    for key in ("_dc_id", "_dc_class", "_dc_version"):
        d.pop(key, None)
    for field in type(obj)._dc_info.fields.values():
        if field.kind is FieldKind.REF:
            d.pop(field.key, None)
    return state
