"""The child processes of the move crash and concurrency tests: ``python -m tests.orm.move_child
ROLE METADATA_URL ...`` (the launcher is :mod:`tests.orm.move_support`).

Roles:

- ``move URL OBJECT TARGET [--recursive] [--kill STEP | --pause STEP --dir DIR]``: move the
  object (an alias, or an id) to backend ``TARGET``.  With ``--kill`` it SIGKILLs itself when
  the move reaches ``STEP`` (:data:`claystore.orm.moving.step_hook`) and exits 3 if the step
  never came; with ``--pause`` it creates ``DIR/paused`` there and waits (at most
  :data:`PAUSE_LIMIT` seconds, else exits 4) for ``DIR/go``, then finishes.  Prints ``moved``.
- ``commit URL ID_A ID_B [--kill STEP | --pause STEP --dir DIR]``: in one session, add one to
  the counters ``ID_A`` and ``ID_B`` (on two backends: a two-phase commit), killed or paused at
  ``STEP`` of the commit (:data:`claystore.orm.twophase.step_hook`) as ``move`` is.  Prints
  ``committed``.
- ``bump|session|names URL ID N [--dir DIR] [--gate GATE] [--lock-timeout SECONDS]``: change
  the counter ``ID`` ``N`` times (its client with that lock timeout, default 60 s):
  activemethod calls ``counter.bump()``; ``with client.session(): counter.counter += 1``;
  autocommit writes ``counter.name = f"n{i}"``, each read back.  With ``--dir`` the writes
  keep pace with the parent's moves: write ``i`` waits until ``DIR/moves`` (the number of
  moves the parent began) reaches ``i * MOVES // N``; with ``--gate`` the first one waits for
  ``GATE/go`` to exist.  Prints ``ready`` once the object is
  loaded; an attempt that raised :class:`~claystore.errors.VersionConflictError`
  (:class:`~claystore.errors.ObjectMovedError` is one: nothing was written) runs again.  At
  the end it prints a JSON line: how many of each such error it met, the values ``bump``
  returned, and the writes of ``names`` that did not read back.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from claystore import Client, DataClayObject, errors
from claystore.orm import moving, twophase
from tests.orm.move_support import MOVES, MoveCounter

PAUSE_LIMIT = 60.0


def _kill_at(step: str) -> Callable[[str], None]:
    def hook(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _pause_at(step: str, directory: Path) -> Callable[[str], None]:
    def hook(name: str) -> None:
        if name != step:
            return
        (directory / "paused").touch()
        deadline = time.monotonic() + PAUSE_LIMIT
        while not (directory / "go").exists():
            if time.monotonic() > deadline:
                os._exit(4)
            time.sleep(0.01)

    return hook


def _find(name: str) -> DataClayObject:
    try:
        object_id = UUID(name)
    except ValueError:
        return DataClayObject.get_by_alias(name)
    return DataClayObject.get_by_id(object_id)


def move(args: argparse.Namespace) -> int:
    """The ``move`` role."""
    with Client(args.url):
        obj = _find(args.object)
        if args.kill:
            moving.step_hook = _kill_at(args.kill)
        elif args.pause:
            moving.step_hook = _pause_at(args.pause, Path(args.dir))
        obj.move(args.target, recursive=args.recursive)
    print("moved", flush=True)
    return 3 if args.kill else 0


def commit(args: argparse.Namespace) -> int:
    """The ``commit`` role."""
    with Client(args.url) as client:
        first = MoveCounter.get_by_id(UUID(args.object))
        second = MoveCounter.get_by_id(UUID(args.rest))
        if args.kill:
            twophase.step_hook = _kill_at(args.kill)
        elif args.pause:
            twophase.step_hook = _pause_at(args.pause, Path(args.dir))
        with client.session():
            first.counter += 1
            second.counter += 1
    print("committed", flush=True)
    return 3 if args.kill else 0


def _moves_begun(directory: Path) -> int:
    try:
        return int((directory / "moves").read_text() or 0)
    except (OSError, ValueError):
        return 0


def _write(client: Client, counter: MoveCounter, role: str, i: int, report: dict[str, Any]) -> None:
    if role == "bump":
        report["returned"].append(counter.bump())
    elif role == "session":
        with client.session():
            counter.counter += 1
    else:
        counter.name = f"n{i}"
        if counter.name != f"n{i}":
            report["unread"].append(i)


def loop(args: argparse.Namespace) -> int:
    """The ``bump``, ``session`` and ``names`` roles."""
    conflicts: Counter[str] = Counter()
    report: dict[str, Any] = {"conflicts": conflicts, "returned": [], "unread": []}
    directory = Path(args.dir) if args.dir else None
    with Client(args.url, lock_timeout=args.lock_timeout) as client:
        counter = MoveCounter.get_by_id(args.object)
        print("ready", flush=True)
        while args.gate and not (Path(args.gate) / "go").exists():
            time.sleep(0.01)
        for i in range(args.count):
            while directory is not None and _moves_begun(directory) < i * MOVES // args.count:
                time.sleep(0.001)
            while True:
                try:
                    _write(client, counter, args.role, i, report)
                    break
                except errors.VersionConflictError as conflict:
                    conflicts[type(conflict).__name__] += 1
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str]) -> int:
    """Play the role ``argv[0]`` (see the module docstring); the exit status."""
    parser = argparse.ArgumentParser(prog="move_child")
    parser.add_argument("role", choices=["move", "commit", "bump", "session", "names"])
    parser.add_argument("url")
    parser.add_argument("object")
    parser.add_argument("rest")
    parser.add_argument("--recursive", action="store_true")
    parser.add_argument("--kill")
    parser.add_argument("--pause")
    parser.add_argument("--dir")
    parser.add_argument("--gate")
    parser.add_argument("--lock-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.role == "move":
        args.target = args.rest
        return move(args)
    if args.role == "commit":
        return commit(args)
    args.count = int(args.rest)
    return loop(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
