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

from collections import defaultdict
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa

from claystore.errors import MissingFieldError, ObjectDoesNotExistError, UnsupportedTypeError
from claystore.orm import mapping
from claystore.orm.fields import Field, FieldKind
from claystore.orm.identity import new_object_id
from claystore.orm.mapping import ModelInfo, metadata, models
from claystore.orm.state import STATE_ATTR, Lifecycle, ObjectState
from claystore.orm.system import dc_object

if TYPE_CHECKING:
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


def _column_value(obj: Any, field: Field) -> Any:
    d = obj.__dict__
    if field.key in d:
        return d[field.key]
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


def link_rows(owner_id: UUID, field: Field, owner: Any, value: Any) -> list[dict[str, Any]]:
    """The link-table rows for one container of references."""
    if not value:
        return []
    if field.kind is FieldKind.REF_DICT:
        return [
            {"owner_id": owner_id, "key": k, "target_id": _target_id(owner, field, v)}
            for k, v in value.items()
        ]
    if field.kind is FieldKind.REF_SET:
        ids = {_target_id(owner, field, v) for v in value}
        return [{"owner_id": owner_id, "target_id": t} for t in ids]
    return [
        {"owner_id": owner_id, "position": i, "target_id": _target_id(owner, field, v)}
        for i, v in enumerate(value)
    ]


def insert_objects(tx: Transaction, objects: list[Any], *, backend_id: UUID | None = None) -> None:
    """Store transient objects (all of them, in one go), as NEW objects of ``tx``."""
    context = tx.context
    infos: dict[type, ModelInfo] = {}
    for obj in objects:
        cls = type(obj)
        if cls not in infos:
            infos[cls] = cls._dc_info
    context.ensure_tables(tx.conn)
    # collect: check every value before anything is sent
    columns: list[list[tuple[Field, Any]]] = []
    for obj in objects:
        info = infos[type(obj)]
        values = []
        for field in info.column_fields:
            if field.kind is not FieldKind.REF:
                values.append((field, _column_value(obj, field)))
        columns.append(values)
    dataset = context.dataset
    backend = backend_id or context.default_backend_id
    states: list[tuple[Any, ObjectState]] = []
    for obj in objects:
        state = ObjectState(new_object_id(), context, dataset, backend, Lifecycle.NEW)
        obj.__dict__[STATE_ATTR] = state
        states.append((obj, state))
    try:
        _emit_inserts(tx, infos, states, columns)
    except BaseException:
        for obj, _ in states:
            obj.__dict__.pop(STATE_ATTR, None)
        raise
    # finalize
    context.identity.add_many([(state.object_id, obj) for obj, state in states])
    for obj, state in states:
        tx.adopt_new(obj, state)


def _emit_inserts(
    tx: Transaction,
    infos: dict[type, ModelInfo],
    states: list[tuple[Any, ObjectState]],
    columns: list[list[tuple[Field, Any]]],
) -> None:
    registry_rows: list[dict[str, Any]] = []
    table_rows: dict[sa.Table, list[dict[str, Any]]] = defaultdict(list)
    for (obj, state), values in zip(states, columns, strict=True):
        info = infos[type(obj)]
        object_id = state.object_id
        d = obj.__dict__
        d["_dc_id"] = object_id
        d["_dc_class"] = info.tablename
        d["_dc_version"] = 1
        registry_rows.append(
            {
                "id": object_id,
                "class_name": info.tablename,
                "dataset": state.dataset,
                "backend_id": state.backend_id,
            }
        )
        rows: dict[sa.Table, dict[str, Any]] = {}
        for level in info.hierarchy:
            rows[level.table] = {"id": object_id}
        rows[info.root.table].update(dc_class=info.tablename, dc_version=1)
        for field, value in values:
            rows[info.table_of(field)][field.column_name] = value
        for field in info.column_fields:
            if field.kind is FieldKind.REF:
                target = d.get(field.name)
                target_id = None if target is None else _target_id(obj, field, target)
                d[field.key] = target_id
                rows[info.table_of(field)][field.column_name] = target_id
        for table, row in rows.items():
            table_rows[table].append(row)
        for field in info.link_fields:
            value = d.get(field.name)
            if value is None:
                value = field.default_value() if field.has_default else _empty(field)
                d[field.name] = value
            table_rows[info.link_table(field)].extend(link_rows(object_id, field, obj, value))
    conn = tx.conn
    conn.execute(sa.insert(dc_object), registry_rows)
    for table in sorted(table_rows, key=_table_order):
        rows_for_table = table_rows[table]
        if rows_for_table:
            conn.execute(sa.insert(table), rows_for_table)


def _empty(field: Field) -> Any:
    return {FieldKind.REF_DICT: dict, FieldKind.REF_SET: set, FieldKind.REF_TUPLE: tuple}.get(
        field.kind, list
    )()


# -- update ----------------------------------------------------------------------------------


def update_objects(tx: Transaction, changes: list[tuple[OwnedEntry, set[str]]]) -> None:
    """Write changed fields: one UPDATE per (table, changed-column set), link tables rewritten
    per owner.  Every changed object's ``dc_version`` goes up by one."""
    groups: dict[tuple[sa.Table, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    link_owners: dict[sa.Table, list[UUID]] = defaultdict(list)
    link_inserts: dict[sa.Table, list[dict[str, Any]]] = defaultdict(list)
    for entry, dirty in changes:
        obj = entry.obj
        info: ModelInfo = type(obj)._dc_info
        object_id = entry.state.object_id
        d = obj.__dict__
        per_table: dict[sa.Table, dict[str, Any]] = {info.root.table: {}}
        for name in dirty:
            field = info.fields[name]
            if field.kind.is_link:
                table = info.link_table(field)
                link_owners[table].append(object_id)
                link_inserts[table].extend(link_rows(object_id, field, obj, d.get(name)))
                continue
            if field.kind is FieldKind.REF:
                target = d.get(name)
                value = None if target is None else _target_id(obj, field, target)
            else:
                value = d.get(field.key)
            per_table.setdefault(info.table_of(field), {})[f"v_{field.column_name}"] = value
        for table, values in per_table.items():
            values["w_id"] = object_id
            groups[(table, tuple(sorted(values)))].append(values)
    conn = tx.conn
    for (table, keys), params in sorted(groups.items(), key=lambda g: _table_order(g[0][0])):
        assignments: dict[Any, Any] = {
            table.c[key[2:]]: sa.bindparam(key) for key in keys if key.startswith("v_")
        }
        if "dc_version" in table.c:
            assignments[table.c.dc_version] = table.c.dc_version + 1
        statement = sa.update(table).where(table.c.id == sa.bindparam("w_id")).values(assignments)
        result = conn.execute(statement, params)
        if result.rowcount >= 0 and result.rowcount != len(params) and len(params) == 1:
            raise ObjectDoesNotExistError(params[0]["w_id"], "it was deleted by someone else")
    for table, owners in link_owners.items():
        conn.execute(sa.delete(table).where(table.c.owner_id.in_(owners)))
        rows = link_inserts[table]
        if rows:
            conn.execute(sa.insert(table), rows)


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
