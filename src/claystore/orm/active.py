"""``@activemethod``: a method that runs as one transaction on a stored object.

Owns the decorator.  On a transient object the method is an ordinary call.  On a stored one it
runs inside a transaction that first locks the object's row and loads it fresh (PostgreSQL
``SELECT ... FOR UPDATE``; SQLite ``BEGIN IMMEDIATE``); the body works on that loaded state, its
writes (assignments and in-place changes to containers of ``self`` and of other objects it
assigns to) are committed when it returns and rolled back if it raises.  Concurrent
activemethods on one object — threads or processes — therefore never lose an update.

Called inside an open transaction (another activemethod, a unit of work), it joins it under a
savepoint: its failure undoes only its own writes.

Used by model classes; calls the object's context (:mod:`claystore.orm.context`) and its
transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from claystore.orm.context import context_of_state
from claystore.orm.state import STATE_ATTR
from claystore.orm.transaction import current_transaction

P = ParamSpec("P")
R = TypeVar("R")


def activemethod(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a model method so that, on a stored object, it runs as one transaction."""

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
                return func(*args, **kwargs)
        with context.transaction() as tx:
            tx.own(self, state, lock=True)
            return func(*args, **kwargs)

    return wrapper
