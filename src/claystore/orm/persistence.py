"""Emitting writes: INSERT of new objects, UPDATE of changed fields, DELETE of objects.

Owns turning object changes into as few statements as possible, in three phases per call:
*collect* (check every value and build rows, before anything is sent), *emit* (one
executemany per table, and per changed-column set for updates; SQLAlchemy's insertmanyvalues
batches the rows) and *finalize* (object states and the identity map).

Statement counts grow with the number of tables touched, never with the number of objects:
storing 100,000 objects of 2 classes with a list of references is 4 INSERT statements plus the
registry's.

Called by :mod:`claystore.orm.transaction`.
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
from claystore.orm import mapping
from claystore.orm.fields import Field, FieldKind
from claystore.orm.identity import new_object_ids
from claystore.orm.mapping import ModelInfo, metadata, models
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState
from claystore.orm.system import dc_object

NEW = Lifecycle.NEW

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.orm.transaction import OwnedEntry, Transaction


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


def _target_id(owner: Any, field: Field, target: Any) -> UUID:
    state = target.__dict__.get(STATE_ATTR)
    if state is None:  # pragma: no cover - collect_transient stores every reachable object
        msg = f"{type(owner).__name__}.{field.name} refers to an object that was not stored"
        raise ObjectDoesNotExistError("<transient>", msg)
    object_id: UUID = state.object_id
    return object_id


def link_rows(owner_id: UUID, field: Field, owner: Any, value: Any) -> list[tuple[Any, ...]]:
    """The link-table rows for one container of references, in link-table column order."""
    if not value:
        return []
    items = value.values() if field.kind is FieldKind.REF_DICT else value
    try:
        ids = [v.__dict__[STATE_ATTR].object_id for v in items]
    except KeyError:  # pragma: no cover - collect_transient stores every reachable object
        ids = [_target_id(owner, field, v) for v in items]
    if field.kind is FieldKind.REF_DICT:
        return [(owner_id, k, t) for k, t in zip(value, ids, strict=True)]
    if field.kind is FieldKind.REF_SET:
        return [(owner_id, t) for t in set(ids)]
    return [(owner_id, i, t) for i, t in enumerate(ids)]


def _empty(field: Field) -> Any:
    return {FieldKind.REF_DICT: dict, FieldKind.REF_SET: set, FieldKind.REF_TUPLE: tuple}.get(
        field.kind, list
    )()


def stage_objects(tx: Transaction, objects: list[Any], *, backend_id: UUID | None = None) -> None:
    """Register transient objects as NEW objects of ``tx``: ids, states, identity map.

    Their rows are written by :func:`insert_objects` (at once, or at the next flush of a unit
    of work); until then they are listed in ``tx.staged``.
    """
    context = tx.context
    dataset = context.dataset
    backend = backend_id or context.default_backend_id
    ids = new_object_ids(len(objects))
    for obj, object_id in zip(objects, ids, strict=True):
        obj.__dict__[STATE_ATTR] = ObjectState(object_id, context, dataset, backend, NEW, tx)
    pairs = list(zip(ids, objects, strict=True))
    context.identity.add_many(pairs)
    tx.staged.update(pairs)
    tx.new.extend(objects)


def insert_objects(tx: Transaction, objects: list[Any]) -> None:
    """Write the rows of staged objects, all in one go.

    Every value is checked and every row built before the first statement is sent; then one
    bulk INSERT per table (the registry, each class table, each link table).
    """
    context = tx.context
    conn = tx.conn
    context.ensure_tables(conn)
    tables = _collect_inserts(objects)
    _emit_inserts(tx, tables)


_RowBuilder = Callable[[dict[str, Any], UUID], tuple[tuple[Any, ...], ...] | None]
_builders: dict[ModelInfo, _RowBuilder] = {}


def _ref_id(target: Any) -> UUID:
    object_id: UUID = target.__dict__[STATE_ATTR].object_id
    return object_id


def _row_builder(
    info: ModelInfo,
) -> _RowBuilder:
    """A function ``(instance dict, id) -> one row per table of the class`` generated for the
    class (SQLAlchemy builds its populators the same way); it returns None when a field is
    unset, and the caller then takes the slow path that applies defaults or reports it."""
    builder = _builders.get(info)
    if builder is not None:
        return builder
    lines = ["def build(d, oid):"]
    rows: list[str] = []
    checks: list[str] = []
    n = 0
    for table, _, fields in _insert_plan(info):
        items = ["oid", repr(info.tablename), "1"] if table is info.root.table else ["oid"]
        for field in fields:
            var = f"v{n}"
            n += 1
            if field.kind is FieldKind.REF:
                lines.append(f"    t = d.get({field.name!r})")
                lines.append(f"    d[{field.key!r}] = {var} = None if t is None else ref(t)")
            else:
                lines.append(f"    {var} = d.get({field.key!r}, M)")
                checks.append(f"{var} is M")
            items.append(var)
        rows.append(f"({', '.join(items)},)")
    if checks:
        lines.append(f"    if {' or '.join(checks)}:")
        lines.append("        return None")
    lines.append(f"    return ({', '.join(rows)},)")
    namespace: dict[str, Any] = {"M": _MISSING, "ref": _ref_id}
    exec("\n".join(lines), namespace)
    generated: _RowBuilder = namespace["build"]
    _builders[info] = generated
    return generated


def _slow_rows(obj: Any, info: ModelInfo, object_id: UUID) -> tuple[tuple[Any, ...], ...]:
    """Rows of an object with unset fields: defaults applied, or MissingFieldError."""
    d = obj.__dict__
    rows = []
    for table, _, fields in _insert_plan(info):
        row: list[Any] = [object_id, info.tablename, 1] if table is info.root.table else [object_id]
        for field in fields:
            if field.kind is FieldKind.REF:
                target = d.get(field.name)
                value = None if target is None else _target_id(obj, field, target)
                d[field.key] = value
            else:
                value = d.get(field.key, _MISSING)
                if value is _MISSING:
                    value = _column_value(obj, field)
            row.append(value)
        rows.append(tuple(row))
    return tuple(rows)


def _collect_inserts(
    objects: list[Any],
) -> dict[sa.Table, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    tables: dict[sa.Table, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {}
    registry: list[tuple[Any, ...]] = []
    tables[dc_object] = (("id", "class_name", "dataset", "backend_id"), registry)
    last_cls: type | None = None
    for obj in objects:
        cls = type(obj)
        if cls is not last_cls:  # objects come grouped by class more often than not
            last_cls = cls
            info: ModelInfo = cls._dc_info
            build = _row_builder(info)
            plan = _insert_plan(info)
            targets = []
            for table, columns, _ in plan:
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
        rows = build(d, object_id) or _slow_rows(obj, info, object_id)
        for append, row in zip(targets, rows, strict=True):
            append(row)
        for field, extend in links:
            value = d.get(field.name)
            if value is None:
                value = field.default_value() if field.has_default else _empty(field)
                d[field.name] = value
            extend(link_rows(object_id, field, obj, value))
    return tables


def _emit_inserts(
    tx: Transaction, tables: dict[sa.Table, tuple[tuple[str, ...], list[tuple[Any, ...]]]]
) -> None:
    support = tx.context.dialect
    conn = tx.conn
    columns, registry = tables.pop(dc_object)
    support.insert_rows(conn, dc_object, columns, registry)
    for table in sorted(tables, key=_table_order):
        columns, rows = tables[table]
        if rows:
            support.insert_rows(conn, table, columns, rows)


# -- update ----------------------------------------------------------------------------------


_Groups = dict[tuple[sa.Table, tuple[str, ...]], list[dict[str, Any]]]
_Links = dict[sa.Table, tuple[list[UUID], list[tuple[Any, ...]]]]


def update_objects(
    tx: Transaction, changes: list[tuple[OwnedEntry, set[str]]], *, check_versions: bool = False
) -> None:
    """Write changed fields: one UPDATE per (table, changed-column set), link tables rewritten
    per owner.  Every changed object's ``dc_version`` goes up by one.

    With ``check_versions``, objects loaded in this transaction are updated only if their
    ``dc_version`` is still the one loaded; otherwise :class:`VersionConflictError`.
    """
    groups, links = _collect_updates(changes, check_versions=check_versions)
    conn = tx.conn
    support = tx.context.dialect
    for (table, keys), params in sorted(groups.items(), key=lambda g: _table_order(g[0][0])):
        values = [k for k in keys if k.startswith("v_")]
        check = "w_version" in keys
        order = [*values, "w_id", "w_version"] if check else [*values, "w_id"]
        if len(order) > 1:  # itemgetter of several keys returns tuples (in C)
            pick = operator.itemgetter(*order)
            rows = [pick(p) for p in params]
        else:  # only a version bump of this table
            rows = [(p["w_id"],) for p in params]
        written = support.update_rows(
            conn, table, [k[2:] for k in values], rows, check_version=check
        )
        if written != len(params):
            _report_lost_rows(conn, params, changes)
    for table, (owners, rows) in links.items():
        conn.execute(sa.delete(table).where(table.c.owner_id.in_(owners)))
        if rows:
            tx.context.dialect.insert_rows(conn, table, [c.name for c in table.columns], rows)
    for entry, _ in changes:
        d = entry.obj.__dict__
        if entry.loaded_version is not None:
            entry.loaded_version += 1
            d["_dc_version"] = entry.loaded_version
        else:
            d.pop("_dc_version", None)


def _collect_updates(
    changes: list[tuple[OwnedEntry, set[str]]], *, check_versions: bool
) -> tuple[_Groups, _Links]:
    groups: _Groups = defaultdict(list)
    links: _Links = {}
    for entry, dirty in changes:
        obj = entry.obj
        info: ModelInfo = type(obj)._dc_info
        object_id = entry.state.object_id
        d = obj.__dict__
        root = info.root.table
        per_table: dict[sa.Table, dict[str, Any]] = {root: {}}
        for name in dirty:
            field = info.fields[name]
            if field.kind.is_link:
                owners, rows = links.setdefault(info.link_table(field), ([], []))
                owners.append(object_id)
                rows.extend(link_rows(object_id, field, obj, d.get(name)))
                continue
            if field.kind is FieldKind.REF:
                target = d.get(name)
                value = None if target is None else _target_id(obj, field, target)
            else:
                value = d.get(field.key)
            per_table.setdefault(info.table_of(field), {})[f"v_{field.column_name}"] = value
        for table, values in per_table.items():
            values["w_id"] = object_id
            if table is root and check_versions and entry.loaded_version is not None:
                values["w_version"] = entry.loaded_version
            groups[(table, tuple(sorted(values)))].append(values)
    return groups, links


def _report_lost_rows(
    conn: Connection, params: list[dict[str, Any]], changes: list[tuple[OwnedEntry, set[str]]]
) -> None:
    """Raise the error that explains why some rows of an UPDATE were not written."""
    ids = [p["w_id"] for p in params]
    by_id = {e.state.object_id: (e, fields) for e, fields in changes}
    root = type(by_id[ids[0]][0].obj)._dc_info.root.table
    found: dict[UUID, int] = dict(
        conn.execute(sa.select(root.c.id, root.c.dc_version).where(root.c.id.in_(ids))).all()
    )
    for p in params:
        object_id = p["w_id"]
        entry, fields = by_id[object_id]
        name = type(entry.obj).__name__
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


# -- delete ----------------------------------------------------------------------------------


def _may_point_to(field: Field, classes: set[type]) -> bool:
    try:
        targets = field.targets()
    except UnsupportedTypeError:
        return True
    return any(issubclass(cls, targets) for cls in classes)


def delete_objects(tx: Transaction, entries: list[OwnedEntry]) -> None:
    """Delete objects: references to them become NULL, link rows pointing at them go, then
    their rows (joined tables and their own link rows cascade) and registry entries
    (aliases cascade)."""
    context = tx.context
    all_models = models()
    context.ensure_tables(tx.conn)
    ids = [e.state.object_id for e in entries]
    classes = {type(e.obj) for e in entries}
    conn = tx.conn
    for info in all_models:
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
    for entry in entries:
        by_root[type(entry.obj)._dc_info.root.table].append(entry.state.object_id)
    for root, root_ids in by_root.items():
        conn.execute(sa.delete(root).where(root.c.id.in_(root_ids)))
    conn.execute(sa.delete(dc_object).where(dc_object.c.id.in_(ids)))
