"""``a_`` coroutine twins of blocking object-API methods.

Owns :func:`async_twin`: the coroutine form of a method runs the blocking method in a worker
thread (``asyncio.to_thread`` copies the context, so the active client goes along) and leaves
the event loop free meanwhile.

Used by :mod:`claystore.orm.model` and the other object-API modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def async_twin(method: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The ``a_`` twin of a blocking method."""

    async def twin(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(method, *args, **kwargs)

    twin.__name__ = f"a_{method.__name__}"
    twin.__qualname__ = f"a_{method.__qualname__}"
    twin.__doc__ = f"Coroutine form of :meth:`{method.__name__}`."
    return twin
