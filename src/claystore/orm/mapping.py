"""Field records -> tables and SQLAlchemy mappers.

Owns :data:`metadata` (every model class's tables, for ``create_all`` and alembic
autogenerate), the registry of model classes by table name and by class name
(:func:`find_model`: the class a collection key such as ``/Employee`` names), and
:func:`map_model_class`, which turns a class's fields into:

- a table named ``snake_case(ClassName)`` (or ``__tablename__``) with ``id`` (UUID primary
  key), ``dc_class`` and ``dc_version`` on root classes, one column per scalar/JSON field and a
  ``<field>_id`` column per reference;
- for subclasses of a model class, a joined table (``id`` referencing the parent's);
- one link table ``<table>_<field>`` per container of references
  (``owner_id``, ``position`` or ``key``, ``target_id``);
- an imperative SQLAlchemy mapping (polymorphic on ``dc_class``, optimistic version counter
  ``dc_version``), so ``select(Employee).where(Employee.salary > 1000)`` works.

Reference columns carry no foreign key: a referenced object may live on another backend.
claystore keeps them consistent itself (a deleted target reads as None; its link rows go).

Called by :mod:`claystore.orm.model` when a class is defined.  No I/O.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.orm import Mapper, column_property, registry, synonym

from claystore.dialects.base import has_unstorable_chars
from claystore.dialects.indexes import nullable_column_index
from claystore.dialects.names import (
    MAX_IDENTIFIER_BYTES,
    fit_identifier,
    fits,
    reserved_prefix,
)
from claystore.errors import MappingError, QueryError
from claystore.orm import types as sqltypes
from claystore.orm.attributes import FieldAttribute
from claystore.orm.fields import Field, FieldKind, read_fields
from claystore.orm.system import SYSTEM_TABLE_PREFIX

__all__ = [
    "ModelInfo",
    "find_model",
    "forget_models",
    "info_for_table",
    "map_model_class",
    "metadata",
    "model_by_name",
    "models",
    "snake_case",
]

metadata = sa.MetaData()

_lock = threading.RLock()
_by_table: dict[str, ModelInfo] = {}
_by_name: dict[str, list[ModelInfo]] = {}
_generation = 0

#: Names a model class may not use for a field (claystore's own API and columns).
RESERVED_FIELD_NAMES = frozenset(
    {
        "id",
        "metadata",
        "make_persistent",
        "is_registered",
        "is_persistent",
        "get_by_alias",
        "get_by_id",
        "add_alias",
        "get_aliases",
        "delete_alias",
        "dc_put",
        "dc_clone",
        "dc_clone_by_alias",
        "dc_update",
        "dc_update_by_alias",
        "dc_delete",
        "move",
        "new_version",
        "consolidate_version",
        "sync",
    }
)

_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake_case(name: str) -> str:
    """``Employee`` -> ``employee``, ``HTTPServerLog`` -> ``http_server_log``."""
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).lower()


@attrs.define(eq=False, slots=False)
class ModelInfo:
    """Everything claystore knows about one model class: fields, tables, mapper."""

    cls: type
    tablename: str
    table: sa.Table
    parent: ModelInfo | None
    own_fields: list[Field]
    fields: dict[str, Field]
    link_tables: dict[str, sa.Table]
    mapper: Mapper[Any] | None = None
    #: the SQLAlchemy registry of this class's hierarchy (one per root class, so that a
    #: hierarchy can be forgotten on its own: :func:`forget_models`)
    mappers: registry | None = None

    @functools.cached_property
    def root(self) -> ModelInfo:
        """The root class of the inheritance hierarchy (holds ``dc_class``/``dc_version``)."""
        info = self
        while info.parent is not None:
            info = info.parent
        return info

    @functools.cached_property
    def hierarchy(self) -> list[ModelInfo]:
        """Root first, this class last."""
        chain: list[ModelInfo] = []
        info: ModelInfo | None = self
        while info is not None:
            chain.append(info)
            info = info.parent
        return chain[::-1]

    @functools.cached_property
    def column_fields(self) -> list[Field]:
        """Fields stored in columns (scalar, JSON, reference), parents' first."""
        return [f for f in self.fields.values() if not f.kind.is_link]

    @functools.cached_property
    def link_fields(self) -> list[Field]:
        """Fields stored in link tables, parents' first."""
        return [f for f in self.fields.values() if f.kind.is_link]

    @functools.cached_property
    def column_field_names(self) -> frozenset[str]:
        """Names of :attr:`column_fields`."""
        return frozenset(f.name for f in self.column_fields)

    @functools.cached_property
    def field_names(self) -> frozenset[str]:
        """Names of every field (columns and link tables)."""
        return frozenset(self.fields)

    @functools.cached_property
    def json_fields(self) -> list[Field]:
        """Fields stored as JSON documents, parents' first."""
        return [f for f in self.fields.values() if f.kind is FieldKind.JSON]

    @functools.cached_property
    def container_fields(self) -> list[Field]:
        """Fields holding a container (JSON documents and containers of references), checked
        again before they are written (they may change in place), parents' first."""
        return [f for f in self.fields.values() if f.kind is FieldKind.JSON or f.kind.is_link]

    @functools.cached_property
    def ref_fields(self) -> list[Field]:
        """Reference and container-of-reference fields, parents' first."""
        return [f for f in self.fields.values() if f.kind is FieldKind.REF or f.kind.is_link]

    @functools.cached_property
    def _tables_by_field(self) -> dict[str, sa.Table]:
        return {f.name: info.table for info in self.hierarchy for f in info.own_fields}

    def table_of(self, field: Field) -> sa.Table:
        """The table holding a column field (its declaring class's table)."""
        table = self._tables_by_field.get(field.name)
        if table is None:
            msg = f"{field.label} is not a field of {self.cls.__name__}"
            raise KeyError(msg)
        return table

    def link_table(self, field: Field) -> sa.Table:
        """The link table of a container-of-references field."""
        for info in self.hierarchy:
            if field.name in info.link_tables:
                return info.link_tables[field.name]
        msg = f"{field.label} has no link table in {self.cls.__name__}"
        raise KeyError(msg)

    def selectable(self) -> sa.FromClause:
        """The root-to-leaf join of this class's tables (one row per object)."""
        if self.mapper is not None:
            selectable: sa.FromClause = self.mapper.persist_selectable
            return selectable
        return self.table  # pragma: no cover - only before mapping completes

    def __repr__(self) -> str:
        return f"<ModelInfo {self.cls.__name__} table={self.tablename}>"


def models() -> list[ModelInfo]:
    """All mapped model classes, in definition order."""
    with _lock:
        return list(_by_table.values())


def info_for_table(tablename: str) -> ModelInfo | None:
    """The model class whose table is ``tablename`` (the class key stored in ``dc_class``)."""
    return _by_table.get(tablename)


def model_by_name(name: str) -> type | None:
    """The model class with this ``__name__``, if exactly one is defined."""
    infos = _by_name.get(name, [])
    return infos[0].cls if len(infos) == 1 else None


def find_model(name: str) -> ModelInfo:
    """The model class whose ``__name__`` is ``name``; raises :class:`QueryError`."""
    cls = model_by_name(name)
    if cls is not None:
        info: ModelInfo = cls._dc_info  # type: ignore[attr-defined]
        return info
    same = [i.cls for i in models() if i.cls.__name__ == name]
    if same:
        where = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in same)
        msg = f"several model classes are named {name!r} ({where}); use {name}.dc_query()"
    else:
        known = ", ".join(sorted({i.cls.__name__ for i in models()})) or "none yet"
        msg = f"no model class is named {name!r} (model classes: {known})"
    raise QueryError(msg)


def iter_subclass_infos(info: ModelInfo) -> Iterator[ModelInfo]:
    """``info`` and every mapped subclass of it."""
    for candidate in models():
        if issubclass(candidate.cls, info.cls):
            yield candidate


def _model_parent(cls: type) -> ModelInfo | None:
    parents = [b for b in cls.__bases__ if getattr(b, "_dc_info", None) is not None]
    if len(parents) > 1:
        names = ", ".join(b.__name__ for b in parents)
        msg = f"{cls.__name__} inherits from several model classes ({names}); pick one"
        raise MappingError(msg)
    if not parents:
        return None
    info: ModelInfo = parents[0]._dc_info  # type: ignore[attr-defined]
    return info


def _table_name(cls: type) -> str:
    """The class's table: ``__tablename__`` as given (refused when it does not fit every
    engine), else ``snake_case(ClassName)`` shortened to fit."""
    given = cls.__dict__.get("__tablename__")
    if given is None:
        return fit_identifier(snake_case(cls.__name__))
    if not isinstance(given, str):
        msg = (
            f"{cls.__name__}: __tablename__ must be a str, not {type(given).__name__} "
            f'{given!r:.60}; write __tablename__ = "{snake_case(cls.__name__)}", or leave '
            "it out for that name"
        )
        raise MappingError(msg)
    if not given.strip() or has_unstorable_chars(given):
        msg = (
            f"{cls.__name__}: __tablename__ {given!r:.80} is not a table name every engine "
            "takes (it is blank, or holds a NUL or a lone surrogate); choose another name"
        )
        raise MappingError(msg)
    if not fits(given):
        msg = (
            f"{cls.__name__}: __tablename__ {given!r} is {len(given.encode())} bytes long; "
            f"table names must fit {MAX_IDENTIFIER_BYTES} bytes (PostgreSQL's limit): "
            "choose a shorter name"
        )
        raise MappingError(msg)
    return str(given)


def _check_names(cls: type, tablename: str, fields: list[Field], parent: ModelInfo | None) -> None:
    reserved = reserved_prefix(tablename)
    if reserved is not None:
        owner = "claystore's" if reserved == SYSTEM_TABLE_PREFIX else "the database engine's"
        msg = (
            f"{cls.__name__}: table names starting with {reserved!r} are {owner} "
            f"(table {tablename!r}); set __tablename__ to another name"
        )
        raise MappingError(msg)
    taken = _taken_table(tablename)
    if taken is not None:
        msg = (
            f"{cls.__name__}: table {tablename!r} is already used by {taken} (table names "
            f"must differ in more than letter case); give {cls.__name__} a distinct "
            "__tablename__"
        )
        raise MappingError(msg)
    inherited = dict(parent.fields) if parent else {}
    columns: set[str] = {f.column_name for f in inherited.values() if not f.kind.is_link}
    for field in fields:
        name = field.name
        if name in RESERVED_FIELD_NAMES or name.startswith(("dc_", "_dc_", "_sa_")):
            msg = f"{cls.__name__}.{name}: the name is reserved by claystore; rename the field"
            raise MappingError(msg)
        if name in inherited:
            msg = f"{cls.__name__}.{name}: redeclares a field of {parent.cls.__name__}"  # type: ignore[union-attr]
            raise MappingError(msg)
        if not field.kind.is_link:
            if field.column_name in columns:
                msg = f"{cls.__name__}.{name}: column {field.column_name!r} is used twice"
                raise MappingError(msg)
            columns.add(field.column_name)


def _taken_table(name: str) -> str | None:
    """Who already has table ``name`` (compared without letter case), or None."""
    folded = name.lower()
    for existing in metadata.tables.values():
        if existing.name.lower() == folded:
            info = _by_table.get(existing.name)
            if info is not None:
                return f"{info.cls.__module__}.{info.cls.__qualname__}"
            owner = existing.info.get("claystore_owner")
            return f"the link table of {owner}" if owner else f"table {existing.name!r}"
    return None


def _column_for(field: Field) -> sa.Column[Any]:
    if field.kind is FieldKind.REF:
        return sa.Column(field.column_name, sa.Uuid, nullable=True)
    if field.kind is FieldKind.JSON:
        assert field.encode is not None
        assert field.decode is not None
        type_: Any = sqltypes.JSONValue(field.encode, field.decode)
    else:
        type_ = sqltypes.sql_type_for(field.python_type)
    return sa.Column(field.column_name, type_, nullable=field.nullable)


def index_name(table: str, column: str, *, unique: bool = False) -> str:
    """The name claystore gives the index of ``column`` (``ix_<table>_<column>``, ``uq_...``
    when unique), shortened to fit every engine."""
    return fit_identifier(f"{'uq' if unique else 'ix'}_{table}_{column}")


def _indexes(table: sa.Table, fields: list[Field]) -> None:
    """The indexes of a model table, named by :func:`index_name`: one per reference column
    and per ``Indexed`` field (a unique index for ``Indexed(unique=True)``).

    claystore orders None first ascending and last descending (its total order); each engine's
    dialect says how the index of a nullable column serves that order (``NULLS FIRST`` on
    PostgreSQL).
    """
    for field in fields:
        if field.kind.is_link:
            continue
        column = table.c[field.column_name]
        if field.kind is FieldKind.REF:
            sa.Index(index_name(table.name, column.name), column)
        elif field.indexed is not None and field.indexed.unique:
            sa.Index(index_name(table.name, column.name, unique=True), column, unique=True)
        elif field.indexed is not None and field.nullable:
            nullable_column_index(index_name(table.name, column.name), column)
        elif field.indexed is not None:
            sa.Index(index_name(table.name, column.name), column)


def _link_table(tablename: str, owner: sa.Table, field: Field) -> sa.Table:
    name = fit_identifier(f"{tablename}_{field.name}")
    taken = _taken_table(name)
    if taken is not None:
        msg = (
            f"{field.label}: its link table {name!r} collides with {taken}; rename the field "
            "or the class"
        )
        raise MappingError(msg)
    columns: list[Any] = [
        sa.Column(
            "owner_id", sa.Uuid, sa.ForeignKey(owner.c.id, ondelete="CASCADE"), primary_key=True
        )
    ]
    if field.kind in (FieldKind.REF_LIST, FieldKind.REF_TUPLE):
        columns.append(sa.Column("position", sa.Integer, primary_key=True))
        columns.append(sa.Column("target_id", sa.Uuid, nullable=False))
    elif field.kind is FieldKind.REF_DICT:
        columns.append(sa.Column("key", sqltypes.sql_type_for(str), primary_key=True))
        columns.append(sa.Column("target_id", sa.Uuid, nullable=False))
    else:
        columns.append(sa.Column("target_id", sa.Uuid, primary_key=True))
    table = sa.Table(
        name,
        metadata,
        *columns,
        comment=f"{field.label} ({field.annotation})",
        info={"claystore_owner": field.label},
    )
    sa.Index(index_name(name, "target_id"), table.c.target_id)
    return table


def map_model_class(cls: type) -> ModelInfo:
    """Read ``cls``'s annotations, build its tables and map it.  Raises on bad models."""
    with _lock:
        parent = _model_parent(cls)
        fields = read_fields(cls, model_by_name)
        tablename = _table_name(cls)
        _check_names(cls, tablename, fields, parent)
        columns: list[Any]
        if parent is None:
            columns = [
                sa.Column("id", sa.Uuid, primary_key=True),
                sa.Column("dc_class", sa.String(200), nullable=False),
                sa.Column("dc_version", sa.BigInteger, nullable=False, default=1),
            ]
        else:
            columns = [
                sa.Column(
                    "id",
                    sa.Uuid,
                    sa.ForeignKey(parent.table.c.id, ondelete="CASCADE"),
                    primary_key=True,
                )
            ]
        columns.extend(_column_for(f) for f in fields if not f.kind.is_link)
        table = sa.Table(tablename, metadata, *columns, comment=f"claystore model {cls.__name__}")
        _indexes(table, fields)
        try:
            links = {f.name: _link_table(tablename, table, f) for f in fields if f.kind.is_link}
        except MappingError:
            metadata.remove(table)
            raise
        all_fields = dict(parent.fields) if parent else {}
        all_fields.update((f.name, f) for f in fields)
        info = ModelInfo(cls, tablename, table, parent, fields, all_fields, links)
        _map(info)
        _by_table[tablename] = info
        _by_name.setdefault(cls.__name__, []).append(info)
        global _generation  # noqa: PLW0603 - a counter of mapped classes, read by contexts
        _generation += 1
        return info


def generation() -> int:
    """Grows by one each time a model class is mapped (contexts compare it to create tables)."""
    return _generation


def forget_models(*classes: type) -> None:
    """Forget model classes: each class's whole hierarchy (its root class and every subclass)
    is unmapped and its tables leave :data:`metadata`, so that classes with the same tables
    can be defined again (a new release of a model in a test, a re-run notebook cell).

    The database is not touched.  Objects of forgotten classes can no longer be stored or
    loaded; stop the clients that hold them first.
    """
    global _generation  # noqa: PLW0603 - a counter of mapped classes, read by contexts
    with _lock:
        roots = {id(info.root): info.root for info in map(_info_of, classes)}
        for root in roots.values():
            doomed = [i for i in _by_table.values() if i.root is root]
            for info in doomed:
                for table in (info.table, *info.link_tables.values()):
                    if table.name in metadata.tables:
                        metadata.remove(table)
                del _by_table[info.tablename]
                named = _by_name.get(info.cls.__name__, [])
                if info in named:
                    named.remove(info)
                if not named:
                    _by_name.pop(info.cls.__name__, None)
            if root.mappers is not None:
                root.mappers.dispose()
            for info in doomed:
                for field in info.own_fields:
                    if field.name in info.cls.__dict__:
                        delattr(info.cls, field.name)
                if "_dc_info" in info.cls.__dict__:
                    delattr(info.cls, "_dc_info")
        _generation += 1


def _info_of(cls: type) -> ModelInfo:
    info = cls.__dict__.get("_dc_info")
    if not isinstance(info, ModelInfo) or _by_table.get(info.tablename) is not info:
        msg = f"{getattr(cls, '__name__', cls)!r} is not a mapped model class"
        raise MappingError(msg)
    return info


def _map(info: ModelInfo) -> None:
    cls, table, parent = info.cls, info.table, info.parent
    properties: dict[str, Any] = {}
    for field in info.own_fields:
        if field.kind.is_link:
            continue
        properties[field.key] = table.c[field.column_name]
        properties[field.name] = synonym(field.key, descriptor=FieldAttribute(field))
    options: dict[str, Any] = {"polymorphic_identity": info.tablename}
    if parent is None:
        properties["_dc_id"] = table.c.id
        properties["_dc_class"] = table.c.dc_class
        properties["_dc_version"] = table.c.dc_version
        options["polymorphic_on"] = table.c.dc_class
        options["version_id_col"] = table.c.dc_version
    else:
        properties["_dc_id"] = column_property(table.c.id, parent.root.table.c.id)
        options["inherits"] = parent.cls
    info.mappers = parent.root.mappers if parent is not None else registry(metadata=metadata)
    assert info.mappers is not None
    try:
        info.mapper = info.mappers.map_imperatively(cls, table, properties=properties, **options)
    except sa.exc.SQLAlchemyError as exc:
        for link in info.link_tables.values():
            metadata.remove(link)
        metadata.remove(table)
        msg = f"{cls.__name__} cannot be mapped: {exc}"
        raise MappingError(msg) from exc
    for field in info.own_fields:
        if field.kind.is_link:
            setattr(cls, field.name, FieldAttribute(field))
