"""``DataClayObject``: the base class of model classes, and the object API.

Owns what a model class is (defining a subclass maps it: fields, tables, SQLAlchemy mapper —
see :mod:`claystore.orm.mapping`) and dataClay's object API on it: ``make_persistent``,
aliases, ``dc_put``/``dc_clone``/``dc_update``, ``dc_delete``, ``get_by_id``, metadata
(``_dc_meta``, ``_dc_backend_id``), ``move`` between backends, each with an ``a_`` coroutine
twin.

The methods here decide *what* to do; reading and writing go through the object's context
(:mod:`claystore.orm.context`), inside one transaction per operation.  Also owns
:func:`persist`, the one path of ``make_persistent``, ``Session.add`` and ``Session.add_all``.

Called by users; re-exported by :mod:`claystore`.
"""

from __future__ import annotations

from copy import deepcopy
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from uuid import UUID

import attrs
import sqlalchemy as sa

from claystore.errors import DoesNotExistError, ObjectNotRegisteredError, SessionStateError
from claystore.orm import aliases, backends, moving
from claystore.orm.active import forget_created, note_created
from claystore.orm.asynctwin import async_twin, run_blocking
from claystore.orm.context import ObjectContext, active_context, context_of_state, stored
from claystore.orm.fields import Field, FieldKind
from claystore.orm.identity import object_id_of
from claystore.orm.mapping import ModelInfo, map_model_class
from claystore.orm.modelquery import QueryableObject
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState
from claystore.orm.system import dc_object
from claystore.orm.transaction import current_transaction
from claystore.orm.versions import VersionedObject

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

T = TypeVar("T", bound="DataClayObject")


def _activemethod_twin(name: str) -> Any:
    """The ``a_`` twin of the activemethod ``name`` (looked up on the object: an override in
    a subclass is what runs)."""

    async def twin(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await run_blocking(getattr(self, name), *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a_{name}"
    twin.__doc__ = f"Coroutine form of the activemethod :meth:`{name}`."
    return twin


@attrs.frozen
class ObjectMetadata:
    """What the registry knows about a stored object (dataClay's ``_dc_meta``)."""

    id: UUID
    class_name: str
    dataset_name: str
    master_backend_id: UUID
    original_object_id: UUID | None
    parent_object_id: UUID | None
    versions_object_ids: tuple[UUID, ...]

    @property
    def is_version(self) -> bool:
        """True for an object made by ``new_version()``."""
        return self.original_object_id is not None


def _check_instance(cls: type, obj: Any, what: str) -> Any:
    if cls is not DataClayObject and not isinstance(obj, cls):
        msg = f"{what} names a {type(obj).__name__}, not a {cls.__name__}"
        raise DoesNotExistError(msg)
    return obj


class DataClayObject(VersionedObject, QueryableObject):
    """Base class of persistent model classes.

    Annotated fields are stored (``name: str`` -> a column); everything else stays local.
    Defining a subclass maps it to a table; see the README for the type map.
    """

    _dc_is_model: ClassVar[bool] = True
    _dc_info: ClassVar[ModelInfo]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dc_info = map_model_class(cls)
        # constructions (not loads) inside a running activemethod are stored when it returns
        sa.event.listen(cls, "init", _constructed)
        sa.event.listen(cls, "init_failure", _construction_failed)
        # each activemethod gets its `a_` twin (`await account.a_deposit(10)`), unless the
        # class defines one of that name itself
        for name, value in list(vars(cls).items()):
            if getattr(value, "_dc_activemethod", False) and f"a_{name}" not in vars(cls):
                setattr(cls, f"a_{name}", _activemethod_twin(name))

    def __repr__(self) -> str:
        state: ObjectState | None = self.__dict__.get(STATE_ATTR)
        if state is None:
            return f"<{type(self).__name__} (transient)>"
        return f"<{type(self).__name__} {state.object_id} ({state.lifecycle.value})>"

    # -- persistence ---------------------------------------------------------------------------

    def make_persistent(
        self, alias: str | None = None, backend_id: Any = None, recursive: bool = True
    ) -> None:
        """Store this object and, with ``recursive``, every transient object it references.

        One transaction: everything is stored, or (on any error) nothing.  ``backend_id``
        picks the backend of the object and of every new object it reaches (an id from
        ``client.get_backends()``, or a backend name; default: the client's backend).  On an
        object that is already stored it moves the object to ``backend_id`` (if given: see
        :meth:`move`, not recursive), then adds ``alias`` (if given).
        """
        persist(None, [self], alias=alias, backend_id=backend_id, recursive=recursive)

    @property
    def is_registered(self) -> bool:
        """True once the object is stored (and not deleted)."""
        state: ObjectState | None = self.__dict__.get(STATE_ATTR)
        return state is not None and state.lifecycle is not Lifecycle.DELETED

    @property
    def is_persistent(self) -> bool:
        """Same as :attr:`is_registered`."""
        return self.is_registered

    @property
    def _dc_is_registered(self) -> bool:
        """Same as :attr:`is_registered` (dataClay's attribute, which its code and tests read);
        read-only."""
        return self.is_registered

    def move(self, backend_id: Any, recursive: bool = False, remotes: bool = True) -> None:
        """Move the object to another backend (an id from ``client.get_backends()`` or a
        backend name).

        With ``recursive`` every object it reaches moves too; ``remotes=False`` then takes only
        those on the object's own backend (referents on other backends stay where they are).
        Moving to the backend that holds it does nothing; a transient object is stored there
        (``make_persistent(backend_id=...)``).  Crash-safe: every object is on exactly one
        backend at any time (see docs/backends.md).  Not inside a session or an activemethod
        (a move runs its own transactions); a version, or an object with versions, cannot move
        (:class:`~claystore.errors.MoveError`).
        """
        state: ObjectState | None = self.__dict__.get(STATE_ATTR)
        if state is None or state.lifecycle is Lifecycle.DELETED:
            self.make_persistent(backend_id=backend_id)
            return
        move_objects(context_of_state(state), state, backend_id, recursive, remotes)

    def dc_put(self, alias: str) -> None:
        """Store the object under ``alias`` (required), like ``make_persistent(alias)``."""
        self.make_persistent(aliases.check_alias(alias))

    def dc_delete(self) -> None:
        """Delete the object from the database.

        References to it read as None afterwards and it leaves every container of references.
        The Python object becomes transient again, keeping the values it holds in memory.
        """
        state, context = stored(self)
        with context.transaction() as tx:
            self._dc_before_delete(tx, state)
            tx.delete(self, state)

    # -- lookup --------------------------------------------------------------------------------

    @classmethod
    def get_by_alias(cls: type[T], alias: str, dataset: str | None = None) -> T:
        """The object named ``alias`` in ``dataset`` (default: the client's dataset)."""
        context = active_context()
        aliases.check_alias(alias)
        aliases.check_dataset(dataset or context.dataset)
        obj = context.read(
            lambda loader: loader.by_alias(dataset or context.dataset, alias, _info(cls))
        )
        return _check_instance(cls, obj, f"Alias {dataset or context.dataset}/{alias}")  # type: ignore[no-any-return]

    @classmethod
    def get_by_id(cls: type[T], object_id: UUID | str) -> T:
        """The object with this id; raises ObjectDoesNotExistError."""
        context = active_context()
        oid = object_id_of(object_id)
        obj = context.read(lambda loader: loader.object(oid, _info(cls)))
        return _check_instance(cls, obj, f"Object {oid}")  # type: ignore[no-any-return]

    # -- aliases -------------------------------------------------------------------------------

    def add_alias(self, alias: str) -> None:
        """Give the stored object one more alias; raises AliasAlreadyExistError."""
        state, context = stored(self)
        with context.transaction() as tx:
            aliases.add(tx.conn, state.dataset, alias, state.object_id)

    def get_aliases(self) -> set[str]:
        """Every alias of the stored object."""
        state, context = stored(self)
        with context.connection() as conn:
            return aliases.names_of(conn, state.object_id)

    @classmethod
    def delete_alias(cls, alias: str, dataset: str | None = None) -> None:
        """Remove an alias (the object stays); raises AliasDoesNotExistError."""
        context = active_context()
        with context.transaction() as tx:
            aliases.delete(tx.conn, dataset or context.dataset, alias)

    # -- get / put / update --------------------------------------------------------------------

    def _field_values(self) -> dict[str, Any]:
        """Current value of every field, for another object: stored state for a stored object,
        else local values (unset fields left out).  Containers are copies (an assigned
        container is the field's value: another object must not share it)."""
        state: ObjectState | None = self.__dict__.get(STATE_ATTR)
        info = type(self)._dc_info
        if state is None:
            values = {}
            for field in info.fields.values():
                try:
                    values[field.name] = _detached(field, getattr(self, field.name))
                except AttributeError:
                    continue
            return values
        context = context_of_state(state)
        tx = current_transaction(context)
        if tx is not None and state.object_id in tx.entries:
            return {f.name: _detached(f, getattr(self, f.name)) for f in info.fields.values()}
        with context.loading() as loader:
            return loader.values(self, state)

    def dc_clone(self: T, recursive: bool = False) -> T:
        """A transient copy of the stored object (references shared; with ``recursive``,
        referenced objects are cloned too)."""
        stored(self)
        clones: dict[int, Any] = {}
        pending: list[tuple[Any, Any]] = []

        def clone_of(obj: Any) -> Any:
            if id(obj) not in clones:
                copy = type(obj)._dc_info.mapper.class_manager.new_instance()
                clones[id(obj)] = copy
                pending.append((obj, copy))
            return clones[id(obj)]

        root = clone_of(self)
        while pending:
            source, copy = pending.pop()
            for name, value in source._field_values().items():
                field = type(source)._dc_info.fields[name]
                copied = value
                if recursive and value is not None and field.kind is FieldKind.REF:
                    copied = clone_of(value)
                elif recursive and field.kind.is_link:
                    if isinstance(value, dict):
                        copied = {k: clone_of(v) for k, v in value.items()}
                    else:
                        copied = type(value)(clone_of(v) for v in value)
                setattr(copy, name, copied)
        return root  # type: ignore[no-any-return]

    @classmethod
    def dc_clone_by_alias(cls: type[T], alias: str, recursive: bool = False) -> T:
        """A transient copy of the object named ``alias``."""
        return cls.get_by_alias(alias).dc_clone(recursive=recursive)

    def dc_update(self, from_object: DataClayObject) -> None:
        """Copy every field of ``from_object`` (same class) into this stored object, in one
        transaction."""
        _, context = stored(self)
        if not isinstance(from_object, type(self)):
            msg = f"dc_update needs a {type(self).__name__}, got {type(from_object).__name__}"
            raise TypeError(msg)
        values = from_object._field_values()
        with context.transaction():
            for name, value in values.items():
                setattr(self, name, value)

    @classmethod
    def dc_update_by_alias(cls, alias: str, from_object: DataClayObject) -> None:
        """Update the object named ``alias`` from ``from_object``."""
        cls.get_by_alias(alias).dc_update(from_object)

    # -- metadata ------------------------------------------------------------------------------

    @property
    def _dc_meta(self) -> ObjectMetadata:
        """Registry metadata of the stored object (read fresh, on its backend)."""
        state, context = stored(self)
        if current_transaction(context) is None:
            context.locate(state)  # another process may have moved it
        return context.read(lambda loader: _read_meta(loader.at(state).conn, state))

    @property
    def _dc_backend_id(self) -> UUID:
        """The backend holding the object's row."""
        return stored(self)[0].backend_id

    @property
    def _dc_is_loaded(self) -> bool:
        """True while the object is stored (kept for dataClay code that checks it)."""
        return self.is_registered

    def sync(self) -> None:
        """Re-read the object's registry metadata (backend, dataset): after another process
        moved it, ``_dc_backend_id`` names its new backend."""
        state = stored(self)[0]
        meta = self._dc_meta
        state.backend_id = meta.master_backend_id
        state.dataset = meta.dataset_name

    # -- coroutine twins -----------------------------------------------------------------------

    a_make_persistent = async_twin(make_persistent)
    a_dc_put = async_twin(dc_put)
    a_dc_delete = async_twin(dc_delete)
    a_add_alias = async_twin(add_alias)
    a_get_aliases = async_twin(get_aliases)
    a_dc_clone = async_twin(dc_clone)
    a_dc_update = async_twin(dc_update)
    a_sync = async_twin(sync)
    a_move = async_twin(move)

    @classmethod
    async def a_get_by_alias(cls: type[T], alias: str, dataset: str | None = None) -> T:
        """Coroutine form of :meth:`get_by_alias`."""
        return await run_blocking(cls.get_by_alias, alias, dataset)

    @classmethod
    async def a_get_by_id(cls: type[T], object_id: UUID | str) -> T:
        """Coroutine form of :meth:`get_by_id`."""
        return await run_blocking(cls.get_by_id, object_id)

    @classmethod
    async def a_delete_alias(cls, alias: str, dataset: str | None = None) -> None:
        """Coroutine form of :meth:`delete_alias`."""
        await run_blocking(cls.delete_alias, alias, dataset)

    @classmethod
    async def a_dc_clone_by_alias(cls: type[T], alias: str, recursive: bool = False) -> T:
        """Coroutine form of :meth:`dc_clone_by_alias`."""
        return await run_blocking(cls.dc_clone_by_alias, alias, recursive)

    @classmethod
    async def a_dc_update_by_alias(cls, alias: str, from_object: DataClayObject) -> None:
        """Coroutine form of :meth:`dc_update_by_alias`."""
        await run_blocking(cls.dc_update_by_alias, alias, from_object)


def _detached(field: Field, value: Any) -> Any:
    """A field value that shares no container with ``value`` (referenced objects are shared)."""
    if value is None:
        return None
    if field.kind is FieldKind.JSON:
        return deepcopy(value)
    if field.kind.is_link:
        return dict(value) if isinstance(value, dict) else type(value)(value)
    return value


def _constructed(obj: Any, args: Any, kwargs: Any) -> None:
    note_created(obj)


def _construction_failed(obj: Any, args: Any, kwargs: Any) -> None:
    forget_created(obj)


def _info(cls: type) -> ModelInfo | None:
    info: ModelInfo | None = cls.__dict__.get("_dc_info")
    return info


def _backends(context: ObjectContext, conn: Connection) -> dict[UUID, backends.BackendInfo]:
    return backends.list_backends(conn, context.dialect.describe())


def _target(context: ObjectContext, backend: Any) -> UUID:
    """The id of a backend given by id or name (read in the metadata database)."""
    return context.database.read(lambda conn: backends.resolve(_backends(context, conn), backend))


def move_objects(
    context: ObjectContext, state: ObjectState, backend: Any, recursive: bool, remotes: bool
) -> None:
    """Move a stored object (and, ``recursive``, what it reaches) to ``backend``: the objects
    of each source backend in one crash-safe move (:mod:`claystore.orm.moving`)."""
    if current_transaction(context) is not None:
        msg = (
            "move() runs its own transactions: call it outside a session and outside an "
            "activemethod (commit the session first)"
        )
        raise SessionStateError(msg)
    target = _target(context, backend)
    context.router.refresh()  # referents may be on backends another client added since
    context.locate(state)
    plan = moving.plan(
        context.router,
        state.object_id,
        state.backend_id,
        target,
        recursive=recursive,
        remotes=remotes,
    )
    for source, classes in plan.groups.items():
        for object_id in moving.run(context.router, source, target, classes):
            obj = context.identity.get(object_id)
            moved: ObjectState | None = obj.__dict__.get(STATE_ATTR) if obj is not None else None
            if moved is not None:
                moved.backend_id = target


def persist(
    context: ObjectContext | None,
    objects: list[Any],
    *,
    alias: str | None = None,
    backend_id: Any = None,
    recursive: bool = True,
) -> None:
    """Store ``objects`` (and, with ``recursive``, every transient object they reference) in
    one transaction of ``context`` (default: the active client's), giving the first one
    ``alias``; an object that is already stored only gets the alias.

    The one path of ``make_persistent``, ``Session.add`` and ``Session.add_all``: in a unit of
    work the objects and the alias are registered now and written at the next flush.
    """
    if alias is not None:
        aliases.check_alias(alias)
    first: ObjectState | None = objects[0].__dict__.get(STATE_ATTR) if objects else None
    if first is not None and first.lifecycle is not Lifecycle.DELETED and len(objects) == 1:
        owner = context_of_state(first)
        if backend_id is not None:
            target = _target(owner, backend_id)
            if target != first.backend_id or current_transaction(owner) is None:
                move_objects(owner, first, target, recursive=False, remotes=True)
        if alias is not None:
            with owner.transaction() as tx:
                aliases.add(tx.conn, first.dataset, alias, first.object_id)
        return
    context = context or active_context()
    aliases.check_dataset(context.dataset)  # before anything is written, on every engine
    with context.transaction() as tx:
        chosen: UUID | None = None
        if backend_id is not None:
            chosen = backends.resolve(_backends(context, tx.conn), backend_id)
        tx.persist(objects, recursive=recursive, backend_id=chosen, alias=alias)


def _read_meta(conn: Connection, state: ObjectState) -> ObjectMetadata:
    row = (
        conn.execute(sa.select(dc_object).where(dc_object.c.id == state.object_id))
        .mappings()
        .first()
    )
    if row is None:
        raise ObjectNotRegisteredError(state.object_id)
    versions = conn.execute(
        sa.select(dc_object.c.id).where(dc_object.c.parent_id == state.object_id)
    ).scalars()
    return ObjectMetadata(
        id=row["id"],
        class_name=row["class_name"],
        dataset_name=row["dataset"],
        master_backend_id=row["backend_id"],
        original_object_id=row["original_id"],
        parent_object_id=row["parent_id"],
        versions_object_ids=tuple(versions),
    )
