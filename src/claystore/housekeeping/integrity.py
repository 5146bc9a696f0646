"""The integrity check of a store: levels 1-4, run over every backend, into one report.

Owns :func:`check` (what :meth:`Client.check_integrity
<claystore.client.Client.check_integrity>` runs) and the order of the levels.  The levels are
cumulative; each lives in its own module:

1. :mod:`.classes` -- every stored class has its tables, columns, indexes and link tables as the
   model says, and every class the registry names is known;
2. :mod:`.registry` -- object rows and registry rows match, aliases and version lineage point
   at objects, every backend answers, no move or commit across backends is left half-done;
3. :mod:`.references` -- reference columns and link rows point at existing objects of an
   allowed class, on whichever backend holds them;
4. :mod:`.data` -- every stored value decodes to its declared type, read in streaming batches.

A check reads and never writes: a problem is reported, never repaired.

Called by the client; calls the level modules through a :class:`~.run.CheckRun`.
"""

from __future__ import annotations

import time
from typing import Any

from claystore.errors import ConfigurationError
from claystore.housekeeping import classes, data, references, registry
from claystore.housekeeping.report import LEVELS, IntegrityReport
from claystore.housekeeping.run import (
    BATCH,
    CheckRun,
    Progress,
    StopCheck,
    registered_backends,
    resolve_collection,
)
from claystore.orm import mapping
from claystore.orm.routing import Router

__all__ = ["check", "check_level"]


def check_level(level: Any) -> int:
    """``level`` if it is 1-4; raises ConfigurationError."""
    if isinstance(level, bool) or level not in LEVELS:
        wanted = ", ".join(f"{n} ({what})" for n, what in LEVELS.items())
        msg = f"level must be one of {wanted}, not {level!r}"
        raise ConfigurationError(msg)
    return int(level)


def check(
    router: Router,
    *,
    level: int = 1,
    stop_on_error: bool = True,
    collection: Any = None,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> IntegrityReport:
    """Run the levels up to ``level`` over every backend of the store (or one collection);
    the report of what was found (see the module docstring)."""
    level = check_level(level)
    chosen = resolve_collection(collection)
    backends = registered_backends(router)
    selected = list(mapping.iter_subclass_infos(chosen)) if chosen is not None else mapping.models()
    name = None if chosen is None else chosen.cls.__name__
    report = IntegrityReport(level=level, collection=name)
    run = CheckRun(
        router=router,
        report=report,
        backends=backends,
        classes=selected,
        collection=chosen,
        stop_on_error=stop_on_error,
        progress=progress,
        batch=batch,
    )
    started = time.monotonic()
    levels = [classes.check, registry.check, references.check, data.check][:level]
    try:
        for run_level in levels:
            run_level(run)
    except StopCheck:
        pass
    report.seconds = time.monotonic() - started
    return report
