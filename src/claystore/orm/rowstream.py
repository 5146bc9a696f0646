"""Row streaming: the rows of a SELECT on a transaction's connection, fetched in chunks.

Owns :class:`RowStream`, whose rows survive the end of the transaction (a session committing
every N objects while it iterates a query).  When the transaction ends,
:meth:`RowStream.detach` either

- frees the cursor and remembers the last row handed out, when the stream can *resume*: the
  next batch runs the rest of the query again, after that row in the query's order, in the
  transaction then open (the model query's keyset, :mod:`claystore.orm.modelquery`), so memory
  stays bounded however many rows are left; or
- reads the rows not fetched yet into memory (streams that cannot resume).

Created by :class:`claystore.orm.transaction.Transaction` (``stream``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

__all__ = ["Resume", "RowStream"]

#: How a stream goes on after its transaction ended: called with the stream, the last row it
#: handed out and how many rows it handed out in all; returns the result of the rest (run in
#: the transaction open now, which the callee makes detach the stream again when it ends) and
#: what the rows of that result are loaded with, or None when nothing is left.
Resume = Callable[["RowStream", Any, int], "tuple[CursorResult[Any], Any] | None"]


class RowStream:
    """The rows of one SELECT running on a transaction's connection, fetched in chunks.

    :meth:`detach` (called when the transaction ends) frees the cursor; iteration goes on
    after a commit or rollback, resumed (``resume``) or from memory.  ``loader`` is what the
    rows of the latest batch are loaded with (the transaction that read them).
    """

    __slots__ = (
        "__weakref__",
        "_count",
        "_error",
        "_last",
        "_rest",
        "_result",
        "_resume",
        "generation",
        "loader",
    )

    def __init__(
        self, result: CursorResult[Any], loader: Any = None, resume: Resume | None = None
    ) -> None:
        self._result: CursorResult[Any] | None = result
        self._rest: list[Any] | None = None
        self._error: BaseException | None = None
        self._resume = resume
        self._last: Any = None  # the last row handed out
        self._count = 0  # rows handed out
        self.loader = loader
        #: how many times the stream's transaction ended (rows fetched before are the ended
        #: transaction's: the caller hands the objects not yet used to the one open now)
        self.generation = 0

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
                if self._resume is None or self._last is None:
                    return
                resumed = self._resume(self, self._last, self._count)
                if resumed is None:
                    return
                self._result, self.loader = resumed
            rows = self._result.fetchmany(size)
            if not rows:
                return
            self._last = rows[-1]
            self._count += len(rows)
            yield rows

    def detach(self) -> None:
        """The connection is about to end its transaction: free the cursor, remembering where
        the stream was (it resumes), or read the remaining rows now."""
        self.generation += 1
        result, self._result = self._result, None
        if result is None or self._rest is not None:
            return
        if self._resume is not None:
            with contextlib.suppress(Exception):  # a broken connection: the resumed read says
                result.close()
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
        self._resume = None
        if result is not None:
            result.close()
