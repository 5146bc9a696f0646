"""Whether the process that runs a piece of crash-safe work (a move, a two-phase commit) is
still at it.

Owns the owner string recorded in a journal row (``host:pid:process start time``), the check
that the owner of a row is alive, and the set of pieces of work under way in this process
(:func:`running`).  On the same host the owner is alive while its process runs (same pid and
same start time, so a reused pid does not count) -- in this process, while the work is
registered as running; on another host, while its row was updated less than
:data:`LEASE_SECONDS` ago.

Called by :mod:`claystore.orm.moving` (the move journal ``dc_move``) and
:mod:`claystore.orm.twophase` (the commit records ``dc_commit``), which decide from it whether
a repair may end the work.  No SQL here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
from collections.abc import Iterator
from uuid import UUID

__all__ = ["LEASE_SECONDS", "is_alive", "owner", "running"]

#: A process on another host is taken for dead when its row is older than this.
LEASE_SECONDS = 600.0
_running: set[UUID] = set()  # work under way in this process
_running_lock = threading.Lock()


def _process_start(pid: int) -> str:
    """The start time of a process (clock ticks since boot), "" when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner() -> str:
    """The owner string of this process, as recorded in a journal row: ``host:pid:start time``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


@contextlib.contextmanager
def running(work_id: UUID) -> Iterator[None]:
    """Mark the work ``work_id`` as under way in this process for the block."""
    with _running_lock:
        _running.add(work_id)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(work_id)


def is_alive(work_id: UUID, recorded_owner: str, updated_at: dt.datetime) -> bool:
    """Whether the process ``recorded_owner`` (see :func:`owner`) still runs the work
    ``work_id``, whose row was last updated at ``updated_at``."""
    host, _, rest = recorded_owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname():
        age = (dt.datetime.now(dt.UTC) - updated_at).total_seconds()
        return age < LEASE_SECONDS
    pid = int(pid_text)
    if pid == os.getpid():
        with _running_lock:
            return work_id in _running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _process_start(pid) == started
