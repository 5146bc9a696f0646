"""Object rows: the row shape of every object SELECT, and how one class's objects are read
out of such rows.

Owns the leading columns every object SELECT produces -- ``(_dc_id, _dc_class, _dc_version,
_dc_dataset, _dc_backend_id, <column fields>...)`` (:func:`object_columns`) -- and the SELECTs
of one class's objects by id, by ids or by alias (:func:`object_select`); model queries select
the same leading columns (:mod:`claystore.orm.modelcompiler`).  :class:`RowReader` reads one
concrete class's object out of such rows, by position; :func:`backend_uuid` reads the
backend column; :func:`unknown_class` is the error for a row of a class this program does not
define.  Does no I/O.

Used by :mod:`claystore.orm.loading` (the one path from rows to objects) and by the model
query's compiler and runner.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from claystore.errors import MappingError
from claystore.orm.fields import Field, FieldKind
from claystore.orm.mapping import ModelInfo
from claystore.orm.state import STATE_ATTR, Jar, Snapshot, loaded
from claystore.orm.system import dc_alias, dc_object

__all__ = [
    "FIRST_FIELD",
    "RowReader",
    "backend_uuid",
    "object_columns",
    "object_select",
    "unknown_class",
]

#: Position of the first field column in an object row (after id, class, version, dataset,
#: backend).
FIRST_FIELD = 5


def object_columns(info: ModelInfo, *, registry: bool = True) -> list[Any]:
    """The leading columns of every object row (labelled ``_dc_id``, ``_dc_class``,
    ``_dc_version``, ``_dc_dataset``, ``_dc_backend_id``), then the class's column fields
    labelled by attribute key.  Without ``registry`` the dataset and backend are NULL (the
    registry is not joined)."""
    root = info.root.table
    if registry:
        dataset: Any = dc_object.c.dataset
        # read as stored (hex text on SQLite): backend_uuid converts each distinct value once
        backend: Any = sa.type_coerce(dc_object.c.backend_id, sa.String)
    else:
        dataset = backend = sa.null()
    columns: list[Any] = [
        root.c.id.label("_dc_id"),
        root.c.dc_class.label("_dc_class"),
        root.c.dc_version.label("_dc_version"),
        dataset.label("_dc_dataset"),
        backend.label("_dc_backend_id"),
    ]
    columns += [info.table_of(f).c[f.column_name].label(f.key) for f in info.column_fields]
    return columns


_selects: dict[tuple[ModelInfo, str, bool], sa.Select[Any]] = {}


def object_select(info: ModelInfo, by: str, *, registry: bool = True) -> sa.Select[Any]:
    """SELECT of objects of exactly ``info``'s class (subclass rows come back with their own
    ``_dc_class``), by ``id`` (one), ``ids`` (expanding) or ``alias`` (``dataset`` + ``alias``
    through ``dc_alias``).  Built once per class and shape."""
    cache_key = (info, by, registry)
    statement = _selects.get(cache_key)
    if statement is None:
        root = info.root.table
        source: sa.FromClause = info.selectable()
        if registry:
            source = source.join(dc_object, dc_object.c.id == root.c.id)
        if by == "alias":
            source = source.join(dc_alias, dc_alias.c.object_id == root.c.id)
            where = sa.and_(
                dc_alias.c.dataset == sa.bindparam("dataset"),
                dc_alias.c.name == sa.bindparam("alias"),
            )
        elif by == "ids":
            where = root.c.id.in_(sa.bindparam("ids", expanding=True))
        else:
            where = root.c.id == sa.bindparam("id")
        statement = sa.select(*object_columns(info, registry=registry))
        statement = statement.select_from(source).where(where)
        _selects[cache_key] = statement
    return statement


# -- reading rows ---------------------------------------------------------------------------------

_backend_ids: dict[Any, UUID] = {}


class _Datasets(dict[Any, Any]):
    """Dataset names as read, each kept once (rows bring a new string per row)."""

    def __missing__(self, name: Any) -> Any:
        if len(self) < 1_000:
            self[name] = name
        return name


_datasets = _Datasets()


def backend_uuid(raw: Any) -> UUID:
    """A backend id read without type processing (hex text on SQLite, a UUID on PostgreSQL):
    a handful of distinct values, so converted once each."""
    found = _backend_ids.get(raw)
    if found is None:
        found = raw if isinstance(raw, UUID) else UUID(str(raw))
        _backend_ids[raw] = found
    return found


class RowReader:
    """Reads the objects of one concrete class out of object rows, by column position.

    Built once per SELECT shape and class (:meth:`of` for the rows of :func:`object_select`),
    so the per-row work of :meth:`build` is a few dict stores.
    """

    __slots__ = ("class_key", "columns", "fields", "info", "new_instance", "position", "refs")

    _exact: dict[ModelInfo, RowReader] = {}  # noqa: RUF012 - a cache shared by the class

    def __init__(
        self,
        info: ModelInfo,
        positions: Mapping[str, int] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """``positions``: column label -> index in the row (default: the order of
        :func:`object_columns`); ``labels``: field key -> label where a field is not labelled
        by its key (a subclass's own fields in a query on its parent)."""
        assert info.mapper is not None
        self.info = info
        self.class_key = info.tablename
        self.new_instance = info.mapper.class_manager.new_instance
        fields = info.column_fields
        if positions is None:
            positions = {f.key: FIRST_FIELD + n for n, f in enumerate(fields)}
        relabel = labels or {}
        #: (field, position) for every column field, in class order
        self.fields = tuple((f, positions[relabel.get(f.key, f.key)]) for f in fields)
        self.columns = tuple((f.key, pos) for f, pos in self.fields)
        #: field key -> its position in the row
        self.position = dict(self.columns)
        self.refs = tuple((f.name, pos) for f, pos in self.fields if f.kind is FieldKind.REF)

    @classmethod
    def of(cls, info: ModelInfo) -> RowReader:
        """The reader of rows of :func:`object_select` for ``info``'s class."""
        reader = cls._exact.get(info)
        if reader is None:
            reader = cls._exact[info] = cls(info)
        return reader

    def build(self, context: Jar, row: Sequence[Any], snapshot: Snapshot | None = None) -> Any:
        """A new persistent object holding ``row`` (not registered anywhere yet); with
        ``snapshot``, the query loop whose row answers its reads while it runs."""
        obj = self.new_instance()
        d = obj.__dict__
        object_id = row[0]
        d["_dc_id"] = object_id
        class_key = row[1]  # the class's own string, not one more copy per object
        d["_dc_class"] = self.class_key if class_key == self.class_key else class_key
        d["_dc_version"] = row[2]
        for key, position in self.columns:
            d[key] = row[position]
        for name, position in self.refs:
            if row[position] is None:
                d[name] = None
        dataset = row[3]
        dataset = _datasets[dataset]  # a handful of names: one string each
        backend = backend_uuid(row[4])
        state = d[STATE_ATTR] = loaded(object_id, context, dataset, backend)
        if snapshot is not None:
            state.snapshot = (snapshot, row, self.position)
        return obj

    def refresh(self, obj: Any, row: Sequence[Any], skip: Collection[str] = ()) -> None:
        """Write ``row``'s values into an existing object, except the fields named in
        ``skip``; a cached referenced object that the row no longer points to is dropped."""
        d = obj.__dict__
        d["_dc_version"] = row[2]
        for field, position in self.fields:
            if field.name in skip:
                continue
            value = row[position]
            if field.kind is FieldKind.REF:
                cached = d.get(field.name)
                if cached is not None and (
                    value is None
                    or cached.__dict__.get(STATE_ATTR) is None
                    or cached._dc_state.object_id != value
                ):
                    d.pop(field.name, None)
                elif value is None:
                    d[field.name] = None
            d[field.key] = value

    def value(self, row: Sequence[Any], field: Field) -> Any:
        """The stored value of a column field in ``row``."""
        for candidate, position in self.fields:
            if candidate is field:
                return row[position]
        msg = f"{field.label} is not a column field of {self.info.cls.__name__}"
        raise KeyError(msg)


def unknown_class(object_id: Any, table: str) -> MappingError:
    """The error for a stored object whose class this program does not define."""
    return MappingError(
        f"object {object_id} is stored in table {table!r}, but no model class with that table "
        "is defined in this program; import its module (or, if the class was renamed, "
        f"migrate its objects: claystore.migrations.ops.rename_model({table!r}, NEW_TABLE), "
        "see docs/migrations.md)"
    )
