"""Emitting writes: INSERT of new objects, UPDATE of changed fields, DELETE of objects.

Owns turning object changes into as few statements as possible, in three phases per call:
*collect* (check every value and build rows, before anything is sent), *emit* (one
executemany per table, and per changed-column set for updates, through the dialect's bulk
writers) and *finalize* (the row versions of what was written).

Statement counts grow with the number of tables touched, never with the number of objects:
storing 100,000 objects of 2 classes with a list of references is 4 INSERT statements plus the
registry's.

Everything here works on the connection and dialect it is handed; the tables it writes exist
already (the transaction ensures them before it flushes).  Called by
:mod:`claystore.orm.unitofwork` (inserts, updates) and :mod:`claystore.orm.transaction`
(deletes).
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa

from claystore.errors import (
    MissingFieldError,
    ObjectDoesNotExistError,
    UnsupportedTypeError,
    VersionConflictError,
)
from claystore.orm import aliases, mapping
from claystore.orm.fields import Field, FieldKind
from claystore.orm.mapping import ModelInfo, metadata, models
from claystore.orm.state import STATE_ATTR, ObjectState
from claystore.orm.system import dc_object

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.dialects.base import Dialect

#: An object with changes: the object, its state, and the names of the fields that changed.
Change = tuple[Any, ObjectState, set[str]]

_order_cache: tuple[int, dict[sa.Table, int]] = (-1, {})


def _table_order(table: sa.Table) -> int:
    """Position of ``table`` in dependency order (parents before joined and link tables)."""
    global _order_cache  # noqa: PLW0603 - recomputed only when a class is mapped
    generation, order = _order_cache
    if generation != mapping.generation():
        order = {t: i for i, t in enumerate(metadata.sorted_tables)}
        _order_cache = (mapping.generation(), order)
    return order[table]


# -- insert ----------------------------------------------------------------------------------

_MISSING: Any = object()

# per class: [(table, column names, fields whose values follow the system columns)]
_insert_plans: dict[ModelInfo, list[tuple[sa.Table, tuple[str, ...], list[Field]]]] = {}


def _insert_plan(info: ModelInfo) -> list[tuple[sa.Table, tuple[str, ...], list[Field]]]:
    plan = _insert_plans.get(info)
    if plan is None:
        plan = []
        for level in info.hierarchy:
            fields = [f for f in level.own_fields if not f.kind.is_link]
            system = ("id", "dc_class", "dc_version") if level.parent is None else ("id",)
            plan.append((level.table, system + tuple(f.column_name for f in fields), fields))
        _insert_plans[info] = plan
    return plan


def _column_value(obj: Any, field: Field) -> Any:
    """The value to store for an unset field: its default, None if nullable, else an error."""
    d = obj.__dict__
    if field.has_default:
        value = field.default_value()
        d[field.key] = value
        return value
    if field.nullable:
        d[field.key] = None
        return None
    msg = (
        f"{field.label} has no value and {field.owner_name} gives no default: set it before "
        f"make_persistent, give the class a default, or annotate it `{field.annotation} | None`"
    )
    raise MissingFieldError(msg)


def _ref_id(target: Any) -> UUID:
    """The id of a referenced object (stored by now: the flush stored every reachable one)."""
    try:
        object_id: UUID = target.__dict__[STATE_ATTR].object_id
    except KeyError:  # pragma: no cover - collect_transient stores every reachable object
        msg = f"a {type(target).__name__} is referenced but was not stored"
        raise ObjectDoesNotExistError("<transient>", msg) from None
    return object_id


def link_rows(owner_id: UUID, field: Field, value: Any) -> list[tuple[Any, ...]]:
    """The link-table rows for one container of references, in link-table column order."""
    if not value:
        return []
    items = value.values() if field.kind is FieldKind.REF_DICT else value
    try:
        ids = [v.__dict__[STATE_ATTR].object_id for v in items]
    except KeyError:  # pragma: no cover - names the object that was not stored
        ids = [_ref_id(v) for v in items]
    if field.kind is FieldKind.REF_DICT:
        return [(owner_id, k, t) for k, t in zip(value, ids, strict=True)]
    if field.kind is FieldKind.REF_SET:
        return [(owner_id, t) for t in set(ids)]
    return [(owner_id, i, t) for i, t in enumerate(ids)]


def _empty(field: Field) -> Any:
    return {FieldKind.REF_DICT: dict, FieldKind.REF_SET: set, FieldKind.REF_TUPLE: tuple}.get(
        field.kind, list
    )()


def insert_objects(conn: Connection, dialect: Dialect, objects: list[Any]) -> None:
    """Write the rows of staged (NEW) objects, all in one go.

    Every value is checked and every row built before the first statement is sent; then one
    bulk INSERT per table (the registry, each class table, each link table).
    """
    tables = _collect_inserts(objects)
    columns, registry = tables.pop(dc_object)
    dialect.insert_rows(conn, dc_object, columns, registry)
    for table in sorted(tables, key=_table_order):
        columns, rows = tables[table]
        if rows:
            dialect.insert_rows(conn, table, columns, rows)


_RowBuilder = Callable[[Any, UUID], tuple[tuple[Any, ...], ...]]
_builders: dict[ModelInfo, _RowBuilder] = {}


def _row_builder(info: ModelInfo) -> _RowBuilder:
    """A function ``(object, id) -> one row per table of the class``, generated for the class
    (SQLAlchemy builds its populators the same way): plain dict reads for set fields; an unset
    field gets its default, None, or a :class:`MissingFieldError`."""
    builder = _builders.get(info)
    if builder is not None:
        return builder
    lines = ["def build(obj, oid):", "    d = obj.__dict__"]
    namespace: dict[str, Any] = {"M": _MISSING, "ref": _ref_id, "fill": _column_value}
    rows: list[str] = []
    n = 0
    for table, _, fields in _insert_plan(info):
        items = ["oid", repr(info.tablename), "1"] if table is info.root.table else ["oid"]
        for field in fields:
            var = f"v{n}"
            namespace[f"f{n}"] = field
            if field.kind is FieldKind.REF:
                lines.append(f"    t = d.get({field.name!r})")
                lines.append(f"    d[{field.key!r}] = {var} = None if t is None else ref(t)")
            else:
                lines.append(f"    {var} = d.get({field.key!r}, M)")
                lines.append(f"    if {var} is M:")
                lines.append(f"        {var} = fill(obj, f{n})")
            items.append(var)
            n += 1
        rows.append(f"({', '.join(items)},)")
    lines.append(f"    return ({', '.join(rows)},)")
    exec("\n".join(lines), namespace)
    generated: _RowBuilder = namespace["build"]
    _builders[info] = generated
    return generated


_Tables = dict[sa.Table, tuple[tuple[str, ...], list[tuple[Any, ...]]]]


def _collect_inserts(objects: list[Any]) -> _Tables:
    tables: _Tables = {}
    registry: list[tuple[Any, ...]] = []
    tables[dc_object] = (("id", "class_name", "dataset", "backend_id"), registry)
    last_cls: type | None = None
    for obj in objects:
        cls = type(obj)
        if cls is not last_cls:  # objects come grouped by class more often than not
            last_cls = cls
            info: ModelInfo = cls._dc_info
            build = _row_builder(info)
            targets = []
            for table, columns, _ in _insert_plan(info):
                entry = tables.get(table)
                if entry is None:
                    entry = tables[table] = (columns, [])
                targets.append(entry[1].append)
            links = []
            for field in info.link_fields:
                link = info.link_table(field)
                entry = tables.get(link)
                if entry is None:
                    entry = tables[link] = (tuple(c.name for c in link.columns), [])
                links.append((field, entry[1].extend))
            tablename = info.tablename
        d = obj.__dict__
        state: ObjectState = d[STATE_ATTR]
        object_id = state.object_id
        d["_dc_id"] = object_id
        d["_dc_class"] = tablename
        d["_dc_version"] = 1
        registry.append((object_id, tablename, state.dataset, state.backend_id))
        for append, row in zip(targets, build(obj, object_id), strict=True):
            append(row)
        for field, extend in links:
            value = d.get(field.name)
            if value is None:
                value = field.default_value() if field.has_default else _empty(field)
                d[field.name] = value
            extend(link_rows(object_id, field, value))
    for dataset in {row[2] for row in registry}:  # before any INSERT: refused alike everywhere
        aliases.check_dataset(dataset)
    return tables


# -- update ----------------------------------------------------------------------------------


_Groups = dict[tuple[sa.Table, tuple[str, ...]], list[dict[str, Any]]]
_Links = dict[sa.Table, tuple[list[UUID], list[tuple[Any, ...]]]]


def update_objects(
    conn: Connection, dialect: Dialect, changes: list[Change], *, check_versions: bool
) -> None:
    """Write changed fields: one UPDATE per (table, changed-column set), link tables rewritten
    per owner.  Every changed object's ``dc_version`` goes up by one.

    With ``check_versions``, objects loaded in this transaction are updated only if their
    ``dc_version`` is still the one loaded; otherwise :class:`VersionConflictError`.
    """
    groups, links = _collect_updates(changes, check_versions=check_versions)
    for (table, keys), params in sorted(groups.items(), key=lambda g: _table_order(g[0][0])):
        values = [k for k in keys if k.startswith("v_")]
        check = "w_version" in keys
        order = [*values, "w_id", "w_version"] if check else [*values, "w_id"]
        if len(order) > 1:  # itemgetter of several keys returns tuples (in C)
            pick = operator.itemgetter(*order)
            rows = [pick(p) for p in params]
        else:  # only a version bump of this table
            rows = [(p["w_id"],) for p in params]
        written = dialect.update_rows(
            conn, table, [k[2:] for k in values], rows, check_version=check
        )
        if written != len(params):
            _report_lost_rows(conn, params, changes)
    for table, (owners, rows) in links.items():
        conn.execute(sa.delete(table).where(table.c.owner_id.in_(owners)))
        if rows:
            dialect.insert_rows(conn, table, [c.name for c in table.columns], rows)
    for obj, state, _ in changes:  # finalize: the row versions now stored
        d = obj.__dict__
        if state.loaded_version is not None:
            state.loaded_version += 1
            d["_dc_version"] = state.loaded_version
        else:
            d.pop("_dc_version", None)


def _collect_updates(changes: list[Change], *, check_versions: bool) -> tuple[_Groups, _Links]:
    groups: _Groups = defaultdict(list)
    links: _Links = {}
    for obj, state, dirty in changes:
        info: ModelInfo = type(obj)._dc_info
        object_id = state.object_id
        d = obj.__dict__
        root = info.root.table
        per_table: dict[sa.Table, dict[str, Any]] = {root: {}}
        for name in dirty:
            field = info.fields[name]
            if field.kind.is_link:
                owners, rows = links.setdefault(info.link_table(field), ([], []))
                owners.append(object_id)
                rows.extend(link_rows(object_id, field, d.get(name)))
                continue
            if field.kind is FieldKind.REF:
                target = d.get(name)
                value = None if target is None else _ref_id(target)
            else:
                value = d.get(field.key)
            per_table.setdefault(info.table_of(field), {})[f"v_{field.column_name}"] = value
        for table, values in per_table.items():
            values["w_id"] = object_id
            if table is root and check_versions and state.loaded_version is not None:
                values["w_version"] = state.loaded_version
            groups[(table, tuple(sorted(values)))].append(values)
    return groups, links


def _report_lost_rows(
    conn: Connection, params: list[dict[str, Any]], changes: list[Change]
) -> None:
    """Raise the error that explains why some rows of an UPDATE were not written."""
    ids = [p["w_id"] for p in params]
    by_id = {state.object_id: (obj, fields) for obj, state, fields in changes}
    root = type(by_id[ids[0]][0])._dc_info.root.table
    found: dict[UUID, int] = dict(
        conn.execute(sa.select(root.c.id, root.c.dc_version).where(root.c.id.in_(ids))).all()
    )
    for p in params:
        object_id = p["w_id"]
        obj, fields = by_id[object_id]
        name = type(obj).__name__
        if object_id not in found:
            raise ObjectDoesNotExistError(object_id, f"the {name} was deleted by someone else")
        if "w_version" in p and found[object_id] != p["w_version"]:
            msg = (
                f"{name} {object_id} was changed by someone else since this unit of work "
                f"loaded it (version {p['w_version']} -> {found[object_id]}); not writing "
                f"{', '.join(sorted(fields))}: reload it and apply the change again"
            )
            raise VersionConflictError(msg)
    msg = "an UPDATE wrote fewer rows than expected"  # pragma: no cover
    raise ObjectDoesNotExistError(ids[0], msg)  # pragma: no cover


def strangers(
    conn: Connection, dialect: Dialect, backend_id: UUID, objects: list[Any]
) -> list[UUID]:
    """The ids of ``objects`` that are not at home on the backend of ``conn`` (moved away, or
    copies a move is making there).  The rows of the others stay locked to the end of the
    transaction — their class rows, then their registry rows, the order every writer and a
    move lock them in — so no move takes them meanwhile."""
    by_root: dict[sa.Table, list[UUID]] = defaultdict(list)
    for obj in objects:
        by_root[type(obj)._dc_info.root.table].append(obj.__dict__[STATE_ATTR].object_id)
    ids = [i for group in by_root.values() for i in group]
    home: set[UUID] = set()
    for root, root_ids in by_root.items():
        for start in range(0, len(root_ids), 500):
            statement = sa.select(root.c.id).where(root.c.id.in_(root_ids[start : start + 500]))
            conn.execute(dialect.lock_rows(statement, root)).all()
    for start in range(0, len(ids), 500):
        statement = sa.select(dc_object.c.id, dc_object.c.backend_id).where(
            dc_object.c.id.in_(ids[start : start + 500])
        )
        rows = conn.execute(dialect.lock_rows(statement, dc_object))
        home.update(object_id for object_id, backend in rows if backend == backend_id)
    return [i for i in ids if i not in home]


# -- delete ----------------------------------------------------------------------------------


def _may_point_to(field: Field, classes: set[type]) -> bool:
    try:
        targets = field.targets()
    except UnsupportedTypeError:
        return True
    return any(issubclass(cls, targets) for cls in classes)


def delete_objects(conn: Connection, objects: list[Any]) -> None:
    """Delete stored objects: references to them become NULL, link rows pointing at them go,
    then their rows (joined tables and their own link rows cascade) and registry entries,
    all on ``conn``: the backend holding them (their aliases, in the metadata database, are
    removed by the caller)."""
    ids = [obj.__dict__[STATE_ATTR].object_id for obj in objects]
    classes = {type(obj) for obj in objects}
    for info in models():
        for field in info.own_fields:
            if not _may_point_to(field, classes):
                continue
            if field.kind is FieldKind.REF:
                column = info.table.c[field.column_name]
                conn.execute(sa.update(info.table).where(column.in_(ids)).values({column: None}))
            elif field.kind.is_link:
                link = info.link_tables[field.name]
                conn.execute(sa.delete(link).where(link.c.target_id.in_(ids)))
    by_root: dict[sa.Table, list[UUID]] = defaultdict(list)
    for obj, object_id in zip(objects, ids, strict=True):
        by_root[type(obj)._dc_info.root.table].append(object_id)
    for root, root_ids in by_root.items():
        conn.execute(sa.delete(root).where(root.c.id.in_(root_ids)))
    conn.execute(sa.delete(dc_object).where(dc_object.c.id.in_(ids)))
