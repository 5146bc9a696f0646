"""``claystore backends list | add | remove | repair`` and ``claystore db upgrade`` on every
backend, run as a user runs them, on SQLite files and PostgreSQL schemas: the effects are read
back through a client's API, the mistakes are one line on stderr and exit 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from claystore import Client
from claystore.cli import main
from tests.migrations.conftest import Project
from tests.models import Company, Employee

ROOT = Path(__file__).resolve().parents[1]


def claystore(*args: str, expect: int = 0, env: dict[str, str] | None = None) -> Result:
    """``claystore ARGS`` in this process; asserts its exit code."""
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == expect, (
        f"claystore {' '.join(args)} exited {result.exit_code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}\n{result.exception!r}"
    )
    return result


def one_line_error(result: Result, *fragments: str) -> str:
    """The single ``Error:`` line of a failed command (no traceback), holding ``fragments``."""
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("Error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def backends_of(db_url: str) -> dict[str, tuple[UUID, bool]]:
    """name -> (id, is_default) of every backend, as a client of the store sees them."""
    with Client(db_url, schema="skip") as client:
        return {info.name: (info.id, info.is_default) for info in client.get_backends().values()}


def listed(result: Result) -> dict[str, list[str]]:
    """The rows of ``backends list`` by name: [id, url, default marker..., objects]."""
    rows = {}
    for line in result.stdout.splitlines()[2:]:  # after the header and its rule
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def test_add_list_and_remove_backends(db_url: str, backend_url_factory: Callable[..., str]) -> None:
    """add prints the new id, and every client sees the backend; list shows each backend with
    its id, URL, the default marker and how many objects live there; remove (by name or id)
    unregisters it once it is empty and is refused while objects live on it."""
    b1_url, b2_url = backend_url_factory(), backend_url_factory()
    added = claystore("backends", "add", b1_url, "--name", "b1", "--url", db_url).stdout
    b1 = UUID(added.strip())
    second = claystore("backends", "add", b2_url, env={"DC_URL": db_url}).stdout  # DC_URL
    b2 = UUID(second.strip())
    known = backends_of(db_url)
    assert known["b1"] == (b1, False)
    assert [name for name, (_, is_default) in known.items() if is_default] == ["default"]
    assert b2 in {backend_id for backend_id, _ in known.values()}

    with Client(db_url):
        Company("Acme", Employee("Ann", 1.0), Employee("Bob", 2.0)).make_persistent(
            alias="acme", backend_id=b1
        )
        Employee("Cid", 3.0).make_persistent(alias="cid")

    rows = listed(claystore("backends", "list", "--url", db_url))
    assert list(rows)[:2] == ["default", "b1"]
    metadata_id = known["default"][0]
    shown_b1 = make_url(b1_url).render_as_string(hide_password=True)
    assert rows["default"][0] == str(metadata_id)
    assert rows["default"][-2:] == ["yes", "1"]
    assert rows["b1"] == [str(b1), shown_b1, "3"]
    assert rows[next(n for n, (i, _) in known.items() if i == b2)][-1] == "0"

    refused = claystore("backends", "remove", "b1", "--url", db_url, expect=1)
    one_line_error(refused, "backend 'b1'", "holds 3 objects", "move them")
    assert "b1" in backends_of(db_url)

    with Client(db_url):
        Company.get_by_alias("acme").move(metadata_id, recursive=True)
    removed = claystore("backends", "remove", str(b1), "--url", db_url).stdout
    assert removed.strip() == f"removed backend 'b1' ({b1})"
    assert "b1" not in backends_of(db_url)
    rows = listed(claystore("backends", "list", "--url", db_url))
    assert "b1" not in rows
    assert rows["default"][-1] == "4"
    with Client(db_url):
        assert [e.name for e in Company.get_by_alias("acme").employees] == ["Ann", "Bob"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_list_never_shows_a_password(
    db_url: str, backend_url_factory: Callable[..., str], engine_name: str
) -> None:
    """The metadata database's and the backends' passwords are not in list's output (nor in
    add's), though the store keeps them to connect (the test server trusts any password)."""
    secret = "s3cret-pw"
    meta = make_url(db_url).set(password=secret).render_as_string(hide_password=False)
    backend = make_url(backend_url_factory("second")).set(password=secret)
    added = claystore(
        "backends", "add", backend.render_as_string(hide_password=False), "--url", meta
    )
    assert secret not in added.output
    out = claystore("backends", "list", "--url", meta).stdout
    assert secret not in out
    assert "***" in out
    rows = listed(claystore("backends", "list", "--url", meta))
    assert len(rows) == 2
    with Client(meta, schema="skip") as client:  # still connects with what it stored
        backend_id = next(i for i, info in client.get_backends().items() if not info.is_default)
        assert client.context.router.database(backend_id).read(
            lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one()
        )


def test_mistakes_are_one_line_errors(
    db_url: str, backend_url_factory: Callable[..., str], engine_name: str
) -> None:
    """An unknown backend, the same database twice, a name taken, an unreachable URL, the
    metadata database itself (to add or to remove), a URL that is not one: one line on stderr
    naming the thing, exit 1, and nothing registered; a missing argument exits 2."""
    b1_url = backend_url_factory()
    claystore("backends", "add", b1_url, "--name", "b1", "--url", db_url)
    before = backends_of(db_url)

    one_line_error(
        claystore("backends", "remove", "nope", "--url", db_url, expect=1),
        "Backend nope does not exist",
        "claystore backends list",
    )
    one_line_error(
        claystore("backends", "add", b1_url, "--name", "again", "--url", db_url, expect=1),
        "is registered already, as backend 'b1'",
    )
    one_line_error(
        claystore(
            "backends", "add", backend_url_factory(), "--name", "b1", "--url", db_url, expect=1
        ),
        "a backend named 'b1' exists already",
    )
    one_line_error(
        claystore("backends", "add", db_url, "--url", db_url, expect=1),
        "metadata database of this store",
    )
    unreachable = "postgresql://nobody:pw@127.0.0.1:1/nowhere"
    line = one_line_error(
        claystore("backends", "add", unreachable, "--url", db_url, expect=1),
        "cannot connect to postgresql at 127.0.0.1:1",
    )
    assert ":pw@" not in line
    one_line_error(
        claystore("backends", "remove", "default", "--url", db_url, expect=1),
        "backend 'default' is the metadata database",
        "cannot be removed",
    )
    one_line_error(
        claystore("backends", "list", "--url", "not a url", expect=1), "is not a database URL"
    )
    one_line_error(claystore("backends", "list", "--url", unreachable, expect=1), "cannot connect")
    assert backends_of(db_url) == before
    usage = claystore("backends", "remove", "--url", db_url, expect=2)
    assert "Missing argument 'BACKEND'" in usage.stderr


@pytest.mark.parametrize(
    "command", ["backends", *(f"backends {c}" for c in ("list", "add", "remove", "repair"))]
)
def test_every_backends_command_has_help(command: str) -> None:
    """``--help`` works, says what the command does and offers --url (the store)."""
    result = claystore(*command.split(), "--help")
    assert "Usage:" in result.output
    assert "backend" in result.output
    if command != "backends":
        assert "--url URL" in result.output


CRASHING_MOVE = """
    import os, signal, sys
    from claystore import Client
    from claystore.orm import moving
    from tests.models import Company

    def crash(step):
        if step == sys.argv[3]:
            os.kill(os.getpid(), signal.SIGKILL)

    moving.step_hook = crash
    with Client(sys.argv[1]):
        Company.get_by_alias("acme").move(sys.argv[2], recursive=True)
    print("the move ended")
"""


@pytest.mark.parametrize(("step", "outcome"), [("copied", "undone"), ("deleted", "finished")])
def test_repair_ends_a_move_a_crash_interrupted(
    db_url: str, backend_url_factory: Callable[..., str], step: str, outcome: str
) -> None:
    """A process killed (SIGKILL) in the middle of a move leaves it in the journal; repair
    says what it did ("undone" before the decision, "finished" after) and every object is then
    readable exactly once, on the backend the outcome names; a second repair has nothing to
    do."""
    with Client(db_url) as client:
        b1 = client.add_backend(backend_url_factory(), name="b1")
        Company("Acme", Employee("Ann", 1.0), Employee("Bob", 2.0)).make_persistent(alias="acme")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING_MOVE), db_url, "b1", step],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr

    out = claystore("backends", "repair", "--url", db_url).stdout
    [line] = out.splitlines()
    where = "default" if outcome == "undone" else "b1"
    assert f"of 3 objects from 'default' to 'b1': {outcome} (the objects are on '{where}')" in (
        line
    )
    assert claystore("backends", "repair", "--url", db_url).stdout == "nothing to repair\n"

    rows = listed(claystore("backends", "list", "--url", db_url))
    assert (rows["default"][-1], rows["b1"][-1]) == (
        ("3", "0") if where == "default" else ("0", "3")
    )
    with Client(db_url) as client:
        acme = Company.get_by_alias("acme")
        assert [e.name for e in acme.employees] == ["Ann", "Bob"]
        expected = client.context.router.metadata_id if where == "default" else b1
        assert {acme._dc_backend_id, *(e._dc_backend_id for e in acme.employees)} == {expected}


PAUSED_MOVE = """
    import sys
    from claystore import Client
    from claystore.orm import moving
    from tests.models import Company

    def pause(step):
        if step == "copied":
            print("paused", flush=True)
            sys.stdin.readline()

    moving.step_hook = pause
    with Client(sys.argv[1]):
        Company.get_by_alias("acme").move(sys.argv[2], recursive=True)
"""


def test_repair_leaves_a_move_under_way_to_its_process(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """A move paused in a live process (its copies made): repair lists it as under way and
    leaves it alone; the move then ends in its process, and there is nothing to repair."""
    with Client(db_url) as client:
        b1 = client.add_backend(backend_url_factory(), name="b1")
        Company("Acme", Employee("Ann", 1.0)).make_persistent(alias="acme")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    mover = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PAUSED_MOVE), db_url, "b1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert mover.stdout is not None
        assert mover.stdout.readline().strip() == "paused"
        [line] = claystore("backends", "repair", "--url", db_url).stdout.splitlines()
        assert line.endswith(
            "of 2 objects from 'default' to 'b1': under way in a live process, left alone"
        )
    finally:
        assert mover.stdin is not None
        mover.stdin.close()
        assert mover.wait(60) == 0
    assert claystore("backends", "repair", "--url", db_url).stdout == "nothing to repair\n"
    with Client(db_url):
        acme = Company.get_by_alias("acme")
        assert (acme._dc_backend_id, acme.employees[0]._dc_backend_id) == (b1, b1)


def test_other_commands_tell_the_repairs_their_start_made(
    db_url: str, backend_url_factory: Callable[..., str]
) -> None:
    """list after a crashed move: the start of its client repairs it, and list says so on
    stderr (one line, no log record) before the table."""
    with Client(db_url) as client:
        client.add_backend(backend_url_factory(), name="b1")
        Company("Acme").make_persistent(alias="acme")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING_MOVE), db_url, "b1", "journaled"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    result = claystore("backends", "list", "--url", db_url)
    [told] = result.stderr.splitlines()
    assert told.startswith("repaired move ")
    assert told.endswith("from 'default' to 'b1': undone (the objects are on 'default')")
    assert listed(result)["default"][-1] == "1"


# -- claystore db on every backend -------------------------------------------------------------

NOTES_1 = """
    from claystore import DataClayObject


    class Note(DataClayObject):
        text: str

        def __init__(self, text: str) -> None:
            self.text = text
"""

NOTES_2 = NOTES_1.replace("        text: str\n", "        text: str\n        pages: int = 100\n")

WRITE_ON_B1 = """
    from claystore import Client
    from notes import Note

    with Client(schema="check"):
        Note("on b1").make_persistent(alias="n1", backend_id="b1")
        Note("on default").make_persistent(alias="n0")
"""

READ = """
    from claystore import Client
    from notes import Note

    with Client(schema="check"):
        for alias in ("n0", "n1"):
            note = Note.get_by_alias(alias)
            print(note.text.replace(" ", "_"), note.pages, note._dc_backend_id)
"""


def columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {column["name"] for column in sa.inspect(conn).get_columns(table)}
    finally:
        engine.dispose()


def test_db_commands_migrate_every_backend(
    db_url: str, backend_url_factory: Callable[..., str], tmp_path: Path
) -> None:
    """upgrade creates the tables on every backend registered in the metadata database and a
    later revision's change reaches the backend's tables too (a client in "check" mode then
    starts and reads objects on both); current and check report each backend; downgrade
    undoes the change everywhere; a backend that cannot be reached is named in the error."""
    (tmp_path / "project").mkdir()
    project = Project(tmp_path / "project", db_url)
    b1_url = backend_url_factory("second")
    project.write("notes.py", NOTES_1)
    project.claystore("db", "init", "migrations", "--models", "notes")
    project.claystore("db", "revision", "--autogenerate", "-m", "notes")
    project.claystore("backends", "add", b1_url, "--name", "b1")
    shown = make_url(b1_url).render_as_string(hide_password=True)

    upgraded = project.claystore("db", "upgrade").stdout.splitlines()
    assert upgraded[0].startswith("upgrading backend 'default' (")
    assert upgraded[1] == f"upgrading backend 'b1' ({shown})"
    assert "text" in columns(b1_url, "note")
    project.python(WRITE_ON_B1)

    project.write("notes.py", NOTES_2)
    drift = project.claystore("db", "check", expect=1).stdout
    assert drift.count("missing column: note.pages") == 2
    project.claystore("db", "revision", "--autogenerate", "-m", "pages")
    first, second = project.revisions()
    project.claystore("db", "upgrade")
    assert "pages" in columns(b1_url, "note")
    assert "pages" in columns(db_url, "note")
    read = [line.split() for line in project.python(READ).splitlines()]
    assert [(text, pages) for text, pages, _ in read] == [("on_default", "100"), ("on_b1", "100")]
    assert read[0][2] != read[1][2]

    current = project.claystore("db", "current").stdout
    head = f"{second.stem.split('_')[0]} (head)"
    assert current.count(head) == 2
    assert f"at backend 'b1' ({shown})" in current
    checked = project.claystore("db", "check").stdout
    assert "checking backend 'b1'" in checked

    project.claystore("db", "downgrade", "-1")
    assert "pages" not in columns(b1_url, "note")
    assert "pages" not in columns(db_url, "note")
    assert project.claystore("db", "current").stdout.count(first.stem.split("_")[0]) == 2

    # the backend's database gone: the error names it, after the metadata database is done
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE dc_backend SET url = :url WHERE name = 'b1'"),
            {"url": "postgresql://nobody@127.0.0.1:1/nowhere"},
        )
    engine.dispose()
    failed = project.claystore("db", "upgrade", expect=1)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, failed.stderr
    assert errors[0].startswith("Error: backend 'b1' (postgresql://nobody@127.0.0.1:1/nowhere)")
    assert "cannot connect" in errors[0]
    assert "Traceback" not in failed.stderr
    assert "pages" in columns(db_url, "note")
