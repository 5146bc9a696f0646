"""``claystore check | size | locks | stats | aliases``: looking after a store.

Owns the commands an operator runs after a crash, a bad deploy or a hand-edited row
(docs/operations.md), each a client method (:class:`~claystore.housekeeping.api.Housekeeping`)
with output for people (rich tables, a progress bar on a terminal, nothing of it when piped)
or for scripts (``--json``):

- ``check [--level N] [--collection C] [--no-stop] [--to-file [PATH]]``: the integrity check;
- ``size [C] [--human]``: the space the store (or a class) takes, per backend;
- ``locks [--clear] [--older-than SECONDS] [--collection C]``: who holds locks on its tables;
- ``stats``: the stored classes and their counts; ``aliases [--dataset D]``: every alias.

Exit 0 when healthy, 1 when problems were found (a check's problems, dangling aliases, locks
older than the threshold left held, a leftover of a crashed writer) or on an error a user can
fix, 2 on a wrong command line.  The model classes come from ``--models``, else from
``claystore_models`` of ``./alembic.ini`` (``claystore db init`` writes it).

Called by click through :func:`claystore.cli.app.main`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from claystore.cli.app import main
from claystore.cli.common import (
    F,
    console,
    emit_json,
    import_models,
    json_option,
    new_table,
    reported,
    store,
    store_option,
)
from claystore.housekeeping.report import human_size
from claystore.housekeeping.run import Progress as ProgressCallback
from claystore.migrations.environment import model_modules
from claystore.migrations.project import load_config

DEFAULT_INI = Path("alembic.ini")


def models_option(func: F) -> F:
    """The ``--models`` option: the modules that define the model classes."""
    return click.option(
        "--models",
        metavar="MODULE[,MODULE...]",
        help="The modules that define your model classes (default: claystore_models of "
        "./alembic.ini).",
    )(func)


def _load_models(models: str | None) -> None:
    """Import the model modules of ``--models``, else those ``./alembic.ini`` names; warn on
    stderr when there are none (every stored class is then unknown to the command)."""
    if models:
        import_models(models)
        return
    if DEFAULT_INI.is_file():
        with reported(None):
            names = model_modules(load_config(DEFAULT_INI))
        import_models(",".join(names))
        return
    click.echo(
        "warning: no model modules (--models MODULE, or claystore_models in ./alembic.ini): "
        "the stored classes are unknown to this command",
        err=True,
    )


@contextlib.contextmanager
def _progress_bar() -> Iterator[ProgressCallback | None]:
    """A progress callback drawing one bar per part of the work on stderr, when stderr is a
    terminal; None (no output at all) when it is not."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def tick(task: str, done: int, total: int | None) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        yield tick


# -- check -------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--level",
    type=click.IntRange(1, 4),
    default=1,
    show_default=True,
    help="1 classes, 2 registry, 3 references, 4 data (each includes those below).",
)
@click.option("--collection", metavar="CLASS", help="Check one class (name or table) only.")
@click.option("--no-stop", is_flag=True, help="Find every problem (default: stop at the first).")
@click.option(
    "--to-file",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[PATH]",
    help="Also write the report: to PATH (.json: JSON), else claystore-check-<date>.txt here.",
)
@models_option
@store_option
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    *,
    level: int,
    collection: str | None,
    no_stop: bool,
    to_file: str | None,
    models: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Check the store's integrity on every backend; exit 1 when problems are found.

    Example: claystore check --level 4 --no-stop --models app.models --to-file
    """
    _load_models(models)
    with store(url) as client, _progress_bar() as progress, reported(None):
        report = client.check_integrity(
            level=level,
            stop_on_error=not no_stop,
            to_file=False,
            collection=collection,
            progress=progress,
        )
    if to_file is not None:
        report.write(True if to_file == "" else Path(to_file))
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(report.text(), nl=False)
        if report.path is not None:
            click.echo(f"report written to {report.path}")
    ctx.exit(0 if report.ok else 1)


# -- size --------------------------------------------------------------------------------------


@main.command()
@click.argument("collection", metavar="[CLASS]", required=False)
@click.option("--human", is_flag=True, help="Sizes in KiB, MiB, GiB (default: bytes).")
@models_option
@store_option
@json_option
def size(
    collection: str | None, human: bool, models: str | None, url: str | None, as_json: bool
) -> None:
    """Show the space the store (or one class: its tables, indexes, share of the registry)
    takes on each backend.

    Example: claystore size Employee --human --models app.models
    """
    _load_models(models)
    with store(url) as client, reported(None):
        found = client.calculate_storage_size(collection)
    if as_json:
        emit_json(found.to_dict())
        return

    def shown(count: int) -> str:
        return human_size(count) if human else str(count)

    table = new_table(("backend", "size"), right={"size"})
    for backend, count in found.backends.items():
        table.add_row(backend, shown(count))
    table.add_row("total", shown(found.bytes))
    console().print(table)


# -- locks -------------------------------------------------------------------------------------


@main.command()
@click.option("--collection", metavar="CLASS", help="Only the locks on one class's tables.")
@click.option("--clear", is_flag=True, help="End the locks older than --older-than.")
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="The age that makes a lock stale (default: the client's lock timeout).",
)
@models_option
@store_option
@json_option
@click.pass_context
def locks(
    ctx: click.Context,
    *,
    collection: str | None,
    clear: bool,
    older_than: float | None,
    models: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """List the sessions (PostgreSQL) or processes (SQLite) holding locks on the store's
    tables; --clear ends those older than --older-than (never this command's own).  Exit 1
    when stale locks are left.

    Example: claystore locks --clear --older-than 300
    """
    _load_models(models)
    with store(url) as client, reported(None):
        threshold = client.lock_timeout if older_than is None else older_than
        if clear:
            holders = client.clear_locks(collection, older_than=threshold)
        else:
            holders = client.list_locks(collection)
    left = [holder for holder in holders if holder.is_overdue(threshold)]
    others = [holder for holder in holders if not holder.is_own]  # not this command's own
    if as_json:
        emit_json({"older_than": threshold, "holders": [h.to_dict() for h in holders]})
    elif not others:
        click.echo("no locks held")
    else:
        columns = ("backend", "pid", "age (s)", "state", "application", "tables", "query")
        table = new_table((*columns, "note"), right={"pid", "age (s)"})
        for holder in others:
            age = "" if holder.age is None else f"{holder.age:.1f}"
            note = "cleared" if holder.cleared else "stale" if holder.is_stale else ""
            tables = ", ".join(holder.tables[:3])
            if len(holder.tables) > 3:
                tables += f" (+{len(holder.tables) - 3})"
            table.add_row(
                holder.backend,
                "" if holder.pid is None else str(holder.pid),
                age,
                holder.state,
                holder.application_name or "",
                tables,
                (holder.query or "").replace("\n", " ")[:60],
                note,
            )
        console().print(table)
        if left and not clear:
            click.echo(f"{len(left)} stale; end them with: claystore locks --clear")
    ctx.exit(1 if left else 0)


# -- stats, aliases ----------------------------------------------------------------------------


@main.command()
@models_option
@store_option
@json_option
def stats(models: str | None, url: str | None, as_json: bool) -> None:
    """Show every class the store holds objects of: objects per backend, versions, aliases.

    Example: claystore stats --models app.models --json
    """
    _load_models(models)
    with store(url) as client, reported(None):
        found = client.stats()
        version = client.meta_version
    if as_json:
        emit_json({"meta_version": version, "classes": [entry.to_dict() for entry in found]})
        return
    backends = sorted({name for entry in found for name in entry.backends})
    table = new_table(
        ("class", "table", "objects", "versions", "aliases", *backends),
        right={"objects", "versions", "aliases", *backends},
    )
    for entry in found:
        name = entry.name if entry.cls is not None else f"{entry.name} (unknown)"
        per_backend = [str(entry.backends.get(backend, 0)) for backend in backends]
        table.add_row(
            name,
            entry.table,
            str(entry.objects),
            str(entry.versions),
            str(entry.aliases),
            *per_backend,
        )
    out = console()
    out.print(table)
    out.print(f"system schema version {version}")


@main.command()
@click.option("--dataset", metavar="D", help="Only the aliases of one dataset.")
@models_option
@store_option
@json_option
@click.pass_context
def aliases(
    ctx: click.Context, dataset: str | None, models: str | None, url: str | None, as_json: bool
) -> None:
    """List every alias with the object it names (class, backend); exit 1 when an alias
    names an object that is gone.

    Example: claystore aliases --dataset sales
    """
    _load_models(models)
    with store(url) as client, reported(None):
        found = client.list_aliases(dataset)
    if as_json:
        emit_json([alias.to_dict() for alias in found])
    elif not found:
        click.echo("no aliases")
    else:
        table = new_table(("dataset", "alias", "object", "class", "backend"))
        for alias in found:
            missing = "(missing)" if alias.is_dangling else ""
            table.add_row(
                alias.dataset,
                alias.name,
                str(alias.object_id),
                alias.class_name or missing,
                alias.backend or missing,
            )
        console().print(table)
    ctx.exit(1 if any(alias.is_dangling for alias in found) else 0)
