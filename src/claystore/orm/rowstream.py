"""Row streaming: the rows of a SELECT on a transaction's connection, fetched in chunks.

Owns :class:`RowStream`, whose rows survive the end of the transaction (a session committing
every N objects while it iterates a query): :meth:`RowStream.detach`, called when the
transaction ends, reads the rows not fetched yet into memory and frees the cursor.

Created by :class:`claystore.orm.transaction.Transaction` (``stream``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

__all__ = ["RowStream"]


class RowStream:
    """The rows of one SELECT running on a transaction's connection, fetched in chunks.

    :meth:`detach` (called when the transaction ends) reads the rows not fetched yet into
    memory and closes the cursor, so iteration goes on after a commit or rollback.
    """

    __slots__ = ("__weakref__", "_error", "_rest", "_result")

    def __init__(self, result: CursorResult[Any]) -> None:
        self._result: CursorResult[Any] | None = result
        self._rest: list[Any] | None = None
        self._error: BaseException | None = None

    def batches(self, size: int) -> Iterator[Sequence[Any]]:
        """The rows, ``size`` at a time."""
        while True:
            if self._rest is not None:
                if self._error is not None:
                    raise self._error
                rest, self._rest = self._rest, []
                for start in range(0, len(rest), size):
                    yield rest[start : start + size]
                return
            if self._result is None:
                return
            rows = self._result.fetchmany(size)
            if not rows:
                return
            yield rows

    def detach(self) -> None:
        """Read the remaining rows now (the connection is about to end its transaction)."""
        result, self._result = self._result, None
        if result is None or self._rest is not None:
            return
        try:
            self._rest = list(result.fetchall())  # reading to the end closes the cursor
        except Exception as exc:  # kept: raised to the code iterating, not at the commit
            self._rest, self._error = [], exc
            with contextlib.suppress(Exception):  # a broken connection: its error is kept above
                result.close()

    def close(self) -> None:
        """Stop: free the cursor (rows not read are dropped)."""
        result, self._result = self._result, None
        self._rest = []
        if result is not None:
            result.close()
