"""``claystore backends ...``: the databases a store's objects live in.

Owns the ``backends`` group: ``list``, ``add URL [--name N]``, ``remove BACKEND``, ``repair``
(:mod:`claystore.orm.backends`, :mod:`claystore.orm.moving`, :mod:`claystore.orm.twophase`), and
``federate --models MODULE`` (SQL reporting across backends, :mod:`claystore.orm.federation`).
Each starts a client on the metadata database (:func:`.common.store`), does its work through
the client's API and stops.

Called by click through :func:`claystore.cli.app.main`.
"""

from __future__ import annotations

from uuid import UUID

import click
import sqlalchemy as sa

from claystore.cli.app import main
from claystore.cli.common import (
    console,
    describe_commit,
    describe_move,
    emit_json,
    import_models,
    json_option,
    new_table,
    store,
    store_option,
)
from claystore.client import Client
from claystore.orm import backends as backend_registry
from claystore.orm import moving
from claystore.orm.system import dc_object


@main.group(invoke_without_command=True)
@click.pass_context
def backends(ctx: click.Context) -> None:
    """The databases a store's objects live in: list, add, remove, repair.

    Every command connects to the store's metadata database: --url, else DC_URL / DC_HOST...
    as for Client(), else sqlite:///claystore.db.  Without a subcommand: list.

    Example: claystore backends --url sqlite:///app.db
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_backends, url=None, as_json=False)


def _object_count(client: Client, backend_id: UUID) -> int:
    """How many objects live on a backend (its home registry rows)."""
    database = client.context.router.database(backend_id)
    statement = (
        sa.select(sa.func.count())
        .select_from(dc_object)
        .where(dc_object.c.backend_id == backend_id)
    )
    return int(database.read(lambda conn: conn.execute(statement).scalar_one()))


@backends.command("list")
@store_option
@json_option
def list_backends(url: str | None, as_json: bool) -> None:
    """Show every backend: name, id, URL (no password), the default one, objects on it.

    Example: claystore backends list --url postgresql+psycopg://app@db/store --json
    """
    with store(url) as client:
        infos = client.get_backends()
        counts = {backend_id: _object_count(client, backend_id) for backend_id in infos}
    if as_json:
        emit_json(
            [
                {
                    "name": info.name,
                    "id": str(info.id),
                    "url": info.url,
                    "default": info.is_default,
                    "objects": counts[info.id],
                }
                for info in infos.values()
            ]
        )
        return
    table = new_table(("name", "id", "url", "default", "objects"), right={"objects"})
    for info in infos.values():
        default = "yes" if info.is_default else ""
        table.add_row(info.name, str(info.id), info.url, default, str(counts[info.id]))
    console().print(table)


@backends.command("add")
@click.argument("backend_url", metavar="URL")
@click.option("--name", metavar="NAME", help="The backend's name (default: its database's).")
@store_option
def add_backend(backend_url: str, name: str | None, url: str | None) -> None:
    """Register the database at URL as a backend of the store; prints its id."""
    with store(url) as client:
        backend_id = client.add_backend(backend_url, name)
    click.echo(str(backend_id))


@backends.command("remove")
@click.argument("backend", metavar="BACKEND")
@store_option
def remove_backend(backend: str, url: str | None) -> None:
    """Unregister BACKEND (a name or id); refused while objects live on it."""
    with store(url) as client:
        infos = client.get_backends()
        info = infos[backend_registry.resolve(infos, backend)]
        client.remove_backend(info.id)
    click.echo(f"removed backend {info.name!r} ({info.id})")


@backends.command("repair")
@store_option
def repair(url: str | None) -> None:
    """End the transactions across backends a crash left in doubt (committed or rolled back
    everywhere), then finish or undo the moves between backends that a crash interrupted
    (moves under way in a live process are left to it, and listed)."""
    with store(url, report_repairs=False) as client:
        resolved = [*client.resolved_at_start, *client.repair_transactions()]
        lines = [describe_commit(client, one) for one in resolved]
        repaired = [*client.repaired_at_start, *client.repair_moves()]
        lines += [describe_move(client, one) for one in repaired]
        running = moving.journal(client.context.router)
        lines += [describe_move(client, entry) for entry in running]
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("nothing to repair")


@backends.command("federate")
@click.option(
    "--models",
    required=True,
    metavar="MODULE[,MODULE...]",
    help="The modules that define your model classes (one view per class).",
)
@store_option
def federate(models: str, url: str | None) -> None:
    """Set up SQL reporting across backends (PostgreSQL): in the metadata database, a view
    claystore_all.<table> per model class over the objects of every backend (postgres_fdw
    foreign tables).  Run it again after adding a backend or changing the models."""
    import_models(models)
    with store(url) as client:
        report = client.federate()
    table = new_table(("backend", "read through", "tables"), right={"tables"})
    for backend in report.backends:
        how = backend.server or "(metadata database)"
        table.add_row(backend.name, how, str(len(backend.tables)))
    for skipped in report.skipped:
        table.add_row(skipped.name, f"skipped: {skipped.reason}", "")
    out = console()
    out.print(table)
    count = f"{len(report.views)} view{'s' if len(report.views) != 1 else ''}"
    out.print(f"{count} in schema {report.schema}: {', '.join(report.views) or 'none'}")
