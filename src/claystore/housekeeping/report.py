"""The values housekeeping returns: integrity problems and reports, sizes, locks, class stats.

Owns :class:`ProblemKind` (every kind of problem :func:`~claystore.housekeeping.integrity.check`
can find, with the level that finds it), :class:`Problem`, :class:`IntegrityReport` (with its
JSON form and its report file), :class:`StorageSize` (``.bytes``, ``.human``),
:class:`LockHolder` and :class:`ClassStats`.  Plain values (attrs), no I/O but the report file.

Called by the checks, sizes, locks and stats of :mod:`claystore.housekeeping`, by the client
that returns them and by the ``claystore`` command that prints them.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs

__all__ = [
    "AliasInfo",
    "ClassStats",
    "IntegrityReport",
    "LockHolder",
    "Problem",
    "ProblemKind",
    "StorageSize",
    "human_size",
]

#: The levels of :func:`~claystore.housekeeping.integrity.check`, each including those below.
LEVELS = {
    1: "classes",  # tables, columns, indexes, link tables; registry class names known
    2: "registry",  # object rows <-> registry rows, aliases, versions, backends, moves
    3: "references",  # reference columns and link rows point at existing objects
    4: "data",  # every stored value decodes to its declared type
}


class ProblemKind(enum.Enum):
    """What is wrong, and the level of the check that finds it (see docs/operations.md)."""

    # level 1: classes
    SCHEMA = ("schema", 1)  # a table, column, index or link table differs from the model
    UNKNOWN_CLASS = ("unknown class", 1)  # registry rows name a class no model defines
    # level 2: registry
    UNREACHABLE_BACKEND = ("unreachable backend", 2)
    MISSING_OBJECT_ROW = ("missing object row", 2)  # a registry row whose object row is gone
    UNREGISTERED_ROW = ("unregistered row", 2)  # an object row without its registry row
    DANGLING_ALIAS = ("dangling alias", 2)  # an alias naming no object
    BROKEN_VERSION = ("broken version", 2)  # a version whose original or parent is gone
    PENDING_MOVE = ("pending move", 2)  # a move between backends not finished
    PENDING_COMMIT = ("pending commit", 2)  # a commit across backends left in doubt
    # level 3: references
    DANGLING_REFERENCE = ("dangling reference", 3)  # a reference or link row to no object
    WRONG_CLASS_REFERENCE = ("wrong class reference", 3)  # to an object of a class not allowed
    # level 4: data
    UNDECODABLE_VALUE = ("undecodable value", 4)  # JSON that does not parse
    WRONG_TYPE = ("wrong type", 4)  # a value that is not of the declared type
    UNKNOWN_ENUM = ("unknown enum name", 4)  # an enum member name the enum does not have
    INVALID_DATETIME = ("invalid datetime", 4)  # a date or time that cannot be read
    NUL_IN_TEXT = ("NUL in text", 4)  # text holding a NUL character

    @property
    def label(self) -> str:
        """The kind as reports show it (``"dangling alias"``)."""
        return str(self.value[0])

    @property
    def level(self) -> int:
        """The check level that finds this kind of problem."""
        return int(self.value[1])


@attrs.frozen
class Problem:
    """One problem an integrity check found: its kind (and level), where it is and a message
    that says what is wrong."""

    kind: ProblemKind
    message: str
    class_name: str | None = None  # the model class (its name), else the table's name
    object_id: UUID | None = None
    field: str | None = None
    backend: str | None = None  # the backend's name
    table: str | None = None

    @property
    def level(self) -> int:
        """The check level that found the problem."""
        return self.kind.level

    def __str__(self) -> str:
        where = [
            part
            for part in (
                f"backend {self.backend!r}" if self.backend else None,
                self.class_name,
                str(self.object_id) if self.object_id else None,
                f"field {self.field!r}" if self.field else None,
            )
            if part
        ]
        place = f" ({', '.join(where)})" if where else ""
        return f"level {self.level} {self.kind.label}{place}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The problem as JSON values."""
        return {
            "level": self.level,
            "kind": self.kind.label,
            "class": self.class_name,
            "table": self.table,
            "object_id": None if self.object_id is None else str(self.object_id),
            "field": self.field,
            "backend": self.backend,
            "message": self.message,
        }


@attrs.define
class IntegrityReport:
    """What :meth:`Client.check_integrity <claystore.client.Client.check_integrity>` found:
    the problems in the order found, how much was checked, and whether the check stopped at
    the first problem.  ``report.ok`` is true when nothing was found."""

    level: int
    collection: str | None = None
    problems: list[Problem] = attrs.field(factory=list)
    #: how many rows each part of the check read (``"registry rows"``, ``"Employee rows"``...)
    checked: dict[str, int] = attrs.field(factory=dict)
    stopped: bool = False  # stop_on_error cut the check short at its first problem
    started_at: dt.datetime = attrs.field(factory=lambda: dt.datetime.now(dt.UTC))
    seconds: float = 0.0
    path: Path | None = None  # the report file, when one was written

    @property
    def ok(self) -> bool:
        """True when the check found no problem."""
        return not self.problems

    def count(self, what: str, rows: int = 1) -> None:
        """Add ``rows`` to what the check read under ``what``."""
        self.checked[what] = self.checked.get(what, 0) + rows

    def kinds(self) -> set[ProblemKind]:
        """The kinds of the problems found."""
        return {problem.kind for problem in self.problems}

    def summary(self) -> str:
        """One line: healthy, or how many problems (and whether the check stopped early)."""
        scope = f"class {self.collection}" if self.collection else "the store"
        if self.ok:
            return f"level {self.level} check of {scope}: no problem found"
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        stop = " (stopped at the first; run with stop_on_error=False for all)" * self.stopped
        return f"level {self.level} check of {scope}: {count} found{stop}"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values."""
        return {
            "level": self.level,
            "collection": self.collection,
            "ok": self.ok,
            "stopped": self.stopped,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "checked": dict(self.checked),
            "problems": [problem.to_dict() for problem in self.problems],
        }

    def text(self) -> str:
        """The report as text: the summary, then one line per problem."""
        return "\n".join([self.summary(), *(f"- {problem}" for problem in self.problems)]) + "\n"

    def write(self, to: bool | str | Path) -> Path:
        """Write the report (text; ``.json`` files get the JSON form): ``True`` writes
        ``claystore-check-<date>.txt`` into the current directory, a directory gets that file,
        a file path is written as given.  Returns the path."""
        stamp = self.started_at.strftime("%Y-%m-%dT%H-%M-%S")
        default_name = f"claystore-check-{stamp}.txt"
        path = Path(default_name) if to is True else Path(str(to))
        if path.is_dir():
            path = path / default_name
        if path.suffix == ".json":
            content = json.dumps(self.to_dict(), indent=2) + "\n"
        else:
            content = self.text()
        path.write_text(content, encoding="utf-8")
        self.path = path
        return path


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: int) -> str:
    """``size`` bytes for people: ``"512 B"``, ``"12.3 MiB"`` (powers of 1024)."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover - the loop always returns


@attrs.frozen
class StorageSize:
    """A size on disk: ``.bytes``, ``.human`` (``"12.3 MiB"``), and the part each backend
    holds (``.backends``: backend name -> bytes)."""

    bytes: int
    backends: dict[str, int] = attrs.field(factory=dict)
    #: what the size covers, backend name -> table name -> bytes of the table with its
    #: indexes (a class's share of the registry under ``"dc_object"``); a backend whose
    #: tables cannot be measured one by one (SQLite without ``dbstat``) has no entry
    tables: dict[str, dict[str, int]] = attrs.field(factory=dict)

    @property
    def human(self) -> str:
        """The size for people (``"12.3 MiB"``)."""
        return human_size(self.bytes)

    def __int__(self) -> int:
        return self.bytes

    def __str__(self) -> str:
        return self.human

    def to_dict(self) -> dict[str, Any]:
        """The size as JSON values."""
        return {
            "bytes": self.bytes,
            "human": self.human,
            "backends": dict(self.backends),
            "tables": {name: dict(tables) for name, tables in self.tables.items()},
        }


@attrs.frozen
class LockHolder:
    """A session (PostgreSQL) or process (SQLite) that holds locks on a store's tables, or a
    writer that left them behind (``is_stale``)."""

    backend: str  # the backend's name
    pid: int | None  # the server process (PostgreSQL) or the client process (SQLite)
    tables: tuple[str, ...]  # the claystore tables it holds locks on
    age: float | None  # seconds since its transaction began (None: unknown)
    state: str  # "idle in transaction", "active", "stale journal", ...
    application_name: str | None = None
    query: str | None = None  # its current or last statement
    is_own: bool = False  # one of the caller's own connections (never terminated)
    is_stale: bool = False  # left by a process that is gone
    cleared: bool = False  # terminated / recovered by clear_locks
    #: clear_locks can end it when old enough (a PostgreSQL session, a crashed SQLite
    #: writer's leftovers); a live SQLite process (the application itself) is only told about
    can_end: bool = False
    note: str | None = None  # what clear_locks did, or why not; what makes a holder stale

    def is_overdue(self, older_than: float) -> bool:
        """True for a holder that is a problem: one clear_locks can end (not the caller's
        own, not ended yet) that is a crashed writer's leftover or older than ``older_than``
        seconds."""
        if self.cleared or self.is_own or not self.can_end:
            return False
        return self.is_stale or (self.age is not None and self.age > older_than)

    def to_dict(self) -> dict[str, Any]:
        """The lock holder as JSON values."""
        values = attrs.asdict(self)
        values["tables"] = list(self.tables)
        return values


@attrs.frozen
class ClassStats:
    """How much of one class a store holds: its objects (per backend), versions and aliases.
    ``cls`` is the model class, None for a class no loaded module defines (``table`` names
    it)."""

    name: str
    table: str
    cls: type | None
    objects: int  # objects of exactly this class (subclasses have their own line), no versions
    versions: int
    aliases: int
    backends: dict[str, int] = attrs.field(factory=dict)  # backend name -> objects there

    def to_dict(self) -> dict[str, Any]:
        """The stats as JSON values."""
        return {
            "class": self.name,
            "table": self.table,
            "known": self.cls is not None,
            "objects": self.objects,
            "versions": self.versions,
            "aliases": self.aliases,
            "backends": dict(self.backends),
        }


@attrs.frozen
class AliasInfo:
    """An alias and the object it names: its class (the model class's name; the table's name
    for a class no loaded module defines), table and backend, all None when no backend holds
    the object (a dangling alias: ``check_integrity(level=2)`` reports it)."""

    dataset: str
    name: str
    object_id: UUID
    class_name: str | None
    table: str | None
    backend: str | None

    @property
    def is_dangling(self) -> bool:
        """True when no backend that answers holds the object."""
        return self.class_name is None

    def to_dict(self) -> dict[str, Any]:
        """The alias as JSON values."""
        return {
            "dataset": self.dataset,
            "name": self.name,
            "object_id": str(self.object_id),
            "class": self.class_name,
            "table": self.table,
            "backend": self.backend,
        }
