"""``@activemethod``: a method that runs as one transaction on a stored object.

Owns the decorator, and the record of the model objects created while one runs.  On a
transient object the method is an ordinary call.  On a stored one it runs inside a transaction
that first locks the object's row and loads it fresh (PostgreSQL ``SELECT ... FOR UPDATE``;
SQLite ``BEGIN IMMEDIATE``); the body works on that loaded state, its writes (assignments and
in-place changes to containers of ``self`` and of other objects it assigns to) are committed
when it returns and rolled back if it raises.  Concurrent activemethods on one object — threads
or processes — therefore never lose an update.

As in dataClay, where an activemethod runs on the backend and every object it creates there is
persistent, the model objects the method creates (:func:`note_created`, called when a model
object is constructed) and the transient model objects it returns are stored when it returns,
in its transaction (with everything they reference); if it raises, none is.

Called inside an open transaction (another activemethod, a unit of work), it joins it under a
savepoint: its failure undoes only its own writes.

Used by model classes (:mod:`claystore.orm.model` reports each construction); calls the
object's context (:mod:`claystore.orm.context`) and its transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from threading import get_ident
from typing import Any, ParamSpec, TypeVar

from claystore.orm.context import context_of_state
from claystore.orm.state import STATE_ATTR
from claystore.orm.transaction import Transaction, current_transaction

P = ParamSpec("P")
R = TypeVar("R")

# the thread running an activemethod in this context and the model objects it constructed
# (None: none runs); a context copied into another thread keeps it, hence the thread
_created: ContextVar[tuple[int, list[Any]] | None] = ContextVar("claystore_created", default=None)


def _records() -> list[Any] | None:
    """Where this thread's running activemethod records the objects constructed, if any."""
    running = _created.get()
    if running is None or running[0] != get_ident():
        return None
    return running[1]


def note_created(obj: Any) -> None:
    """A model object is being constructed: the activemethod running in this thread stores
    it when it returns."""
    created = _records()
    if created is not None:
        created.append(obj)


def forget_created(obj: Any) -> None:
    """The construction of ``obj`` failed (its ``__init__`` raised): it is not stored."""
    created = _records()
    if created is not None:
        for position in range(len(created) - 1, -1, -1):
            if created[position] is obj:
                del created[position]
                break


def _is_model(value: Any) -> bool:
    return getattr(type(value), "_dc_is_model", False) is True


def _returned_objects(result: Any) -> list[Any]:
    """The model objects a method returned: the result itself, or the items of a returned
    list, tuple, set or frozenset, or the values of a returned dict."""
    if _is_model(result):
        return [result]
    if isinstance(result, dict):
        return [v for v in result.values() if _is_model(v)]
    if isinstance(result, list | tuple | set | frozenset):
        return [v for v in result if _is_model(v)]
    return []


def _run(tx: Transaction, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run the body in ``tx`` (which owns ``self``); then store, in ``tx``, what it created and
    the transient model objects it returned."""
    created: list[Any] = []
    token = _created.set((get_ident(), created))
    try:
        result = func(*args, **kwargs)
    finally:
        _created.reset(token)
    transient = [
        obj for obj in (*created, *_returned_objects(result)) if STATE_ATTR not in obj.__dict__
    ]
    if transient:  # on the backend of the object whose method made them, as dataClay does
        tx.persist(transient, backend_id=args[0].__dict__[STATE_ATTR].backend_id)
    return result


def activemethod(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a model method so that, on a stored object, it runs as one transaction.

    On a stored object: the object's row is locked and loaded fresh, the body works on that
    state (containers of ``self`` are live), and everything it writes is committed when it
    returns, or rolled back if it raises.  The model objects the body creates, and the
    transient model objects it returns (directly, or in a returned list, tuple, set or dict),
    are stored when it returns, in the same transaction, with everything they reference: the
    caller gets stored objects back (``is_registered`` is True, they have ids, another client
    can load them).  If the body raises, none of them is stored.  Inside an open transaction
    (another activemethod, a session) it runs under a savepoint of it.

    On a transient object it is an ordinary call, and nothing is stored.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        self = args[0]
        state = self.__dict__.get(STATE_ATTR)
        if state is None:
            return func(*args, **kwargs)
        context = context_of_state(state)
        outer = current_transaction(context)
        if outer is not None:
            with outer.savepoint():
                outer.own(self, state, lock=True)
                return _run(outer, func, *args, **kwargs)
        with context.transaction() as tx:
            tx.own(self, state, lock=True)
            return _run(tx, func, *args, **kwargs)

    wrapper._dc_activemethod = True  # type: ignore[attr-defined]  # model classes add `a_` twins
    return wrapper
