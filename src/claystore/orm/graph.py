"""Reachability: which transient objects a make_persistent (or a write) must store.

Owns :func:`collect_transient`: an iterative walk from some roots along annotated reference
fields and containers of references, collecting every transient model object reachable
without passing through a stored one.  Cycle-safe and iterative (a 1,000,000-node linked list
walks without recursion).  The containers of every object it walks are checked again on the
way (:func:`~claystore.orm.state.check_containers`: they may have changed in place since they
were assigned), so nothing unchecked is stored.

Called by :mod:`claystore.orm.persistence`.  No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from claystore.errors import ReferenceNotPersistentError
from claystore.orm.fields import FieldKind
from claystore.orm.state import STATE_ATTR, check_containers


def referenced_objects(obj: Any) -> Iterator[tuple[str, Any]]:
    """(field name, object) for every model object ``obj`` references locally, in field order.

    Reads the instance dict directly: it never loads anything.
    """
    d = obj.__dict__
    for field in type(obj)._dc_info.ref_fields:
        kind = field.kind
        if kind is FieldKind.REF:
            target = d.get(field.name)
            if target is not None:
                yield field.name, target
        elif kind.is_link:
            value = d.get(field.name)
            if value:
                items = value.values() if kind is FieldKind.REF_DICT else value
                for target in items:
                    yield field.name, target


def _check(obj: Any) -> None:
    """Check the containers of an object about to be stored (they may have changed in place)."""
    containers = type(obj)._dc_info.container_fields
    if containers:
        check_containers(obj, containers)


def collect_transient(
    roots: Iterable[Any], *, recursive: bool = True, traverse_roots: bool = False
) -> list[Any]:
    """Every transient object reachable from ``roots`` (the transient roots included), roots
    first, each once.

    With ``recursive=False`` only the roots are collected, and a reference from a root to
    another transient object raises :class:`ReferenceNotPersistentError`.  With
    ``traverse_roots`` the references of stored roots are followed too (for objects registered
    but not written yet); only transient objects are returned.
    """
    found: list[Any] = []
    seen: set[int] = set()
    stack: list[Any] = []
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        if STATE_ATTR not in root.__dict__:
            found.append(root)
            stack.append(root)
        elif traverse_roots:
            stack.append(root)
        else:
            continue
        _check(root)
    if not recursive:
        for obj in found:
            for name, target in referenced_objects(obj):
                if STATE_ATTR not in target.__dict__ and id(target) not in seen:
                    msg = (
                        f"{type(obj).__name__}.{name} refers to a {type(target).__name__} that "
                        "is not persistent; make it persistent first or use recursive=True"
                    )
                    raise ReferenceNotPersistentError(msg)
        return found
    while stack:
        obj = stack.pop()
        for _, target in referenced_objects(obj):
            if id(target) not in seen and STATE_ATTR not in target.__dict__:
                seen.add(id(target))
                found.append(target)
                stack.append(target)
                _check(target)
    return found
