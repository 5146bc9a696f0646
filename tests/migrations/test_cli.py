"""``claystore db ...`` run as a user runs it: in a project directory, one process per command,
on SQLite and PostgreSQL."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from claystore.cli import main
from claystore.migrations.project import ENVIRONMENT_FILES
from tests.migrations.conftest import Project, function_body

ROOT = Path(__file__).resolve().parents[2]

RELEASE_1 = """
    from __future__ import annotations

    from typing import Annotated

    from claystore import DataClayObject, Indexed


    class Author(DataClayObject):
        name: Annotated[str, Indexed(unique=True)]
        nickname: Annotated[str | None, Indexed()] = None

        def __init__(self, name: str) -> None:
            self.name = name


    class Book(DataClayObject):
        title: Annotated[str, Indexed()]
        author: Author | None = None
        sequels: list[Book]

        def __init__(self, title: str, author: Author | None = None) -> None:
            self.title = title
            self.author = author
            self.sequels = []
"""

# release 2: a field with a default
RELEASE_2 = RELEASE_1.replace(
    "        sequels: list[Book]\n", "        sequels: list[Book]\n        pages: int = 100\n"
)

SEED = """
    from claystore import Client
    from library import Author, Book

    with Client():
        ann = Author("Ann")
        first = Book("First", ann)
        first.sequels = [Book("Second", ann)]
        first.make_persistent(alias="first")
"""

READ = """
    from claystore import Client
    from library import Book

    with Client():
        book = Book.get_by_alias("first")
        print(book.title, book.author.name, book.pages, [b.title for b in book.sequels])
"""


def test_two_releases_through_the_command_line(project: Project) -> None:
    """init, autogenerate and upgrade release 1, store objects, then release 2 (a field with a
    default): check sees it, autogenerate + upgrade apply it, downgrade -1 and upgrade again
    (plain alembic) work, current names the head, check passes and the objects read back."""
    project.write("library.py", RELEASE_1)
    out = project.claystore("db", "init", "migrations", "--models", "library").stdout
    assert "created alembic.ini" in out
    assert (project.path / "migrations" / "versions").is_dir()
    assert "claystore_models = library" in (project.path / "alembic.ini").read_text()

    project.claystore("db", "revision", "--autogenerate", "-m", "release 1")
    [first] = project.revisions()
    assert "op.create_table('book'" in first.read_text()
    project.claystore("db", "upgrade")
    project.python(SEED)

    project.write("library.py", RELEASE_2)
    drift = project.claystore("db", "check", expect=1)
    assert "missing column: book.pages" in drift.stdout
    assert "Traceback" not in drift.stderr

    project.claystore("db", "revision", "--autogenerate", "-m", "release 2")
    first, second = project.revisions()
    assert "claystore_ops.add_field('book'" in second.read_text()
    assert "default=100" in second.read_text()
    project.claystore("db", "upgrade")
    project.claystore("db", "downgrade", "-1")
    assert first.stem.split("_")[0] in project.claystore("db", "current").stdout
    project.run("-m", "alembic", "-c", "alembic.ini", "upgrade", "head")  # plain alembic

    current = project.claystore("db", "current").stdout
    assert f"{second.stem.split('_')[0]} (head)" in current
    project.claystore("db", "check")
    assert project.python(READ).split() == ["First", "Ann", "100", "['Second']"]


def test_check_exits_one_when_no_migration_was_made(project: Project) -> None:
    """Models that changed with no migration written: check lists the differences, exit 1;
    autogenerate on a database claystore's client made writes nothing else."""
    project.write("library.py", RELEASE_1)
    project.python("from claystore import Client\nimport library\nClient().start().stop()")
    project.claystore("db", "init", "migrations", "--models", "library")
    project.claystore("db", "revision", "--autogenerate", "-m", "adopt")
    [adopt] = project.revisions()
    assert [type(s).__name__ for s in function_body(adopt, "upgrade")] == ["Pass"]
    project.claystore("db", "upgrade")
    project.claystore("db", "check")

    project.write("library.py", RELEASE_2.replace("Author", "Writer"))
    drift = project.claystore("db", "check", expect=1)
    lines = drift.stdout.splitlines()
    assert lines[0] == "The tables differ from the model classes (7 differences):"
    assert lines[1:8] == [
        "  - missing table: writer",
        "  - missing index: ix_writer_nickname on writer",
        "  - missing index: uq_writer_name on writer",
        "  - index not in the models: ix_author_nickname on author",
        "  - index not in the models: uq_author_name on author",
        "  - table not in the models: author",
        "  - missing column: book.pages (BigInteger() NOT NULL)",
    ]
    assert "claystore db revision --autogenerate" in lines[8]


def test_the_repository_example_configuration_is_current(project: Project) -> None:
    """The repository's alembic.ini (examples/migrations) upgrades an empty database to the
    tables of examples/quickstart.py's classes, from any directory: check then passes."""
    ini = str(ROOT / "alembic.ini")
    project.claystore("db", "upgrade", "-c", ini)
    project.claystore("db", "check", "-c", ini)
    template = resources.files("claystore.migrations").joinpath("template")
    for name in ENVIRONMENT_FILES:  # as `claystore db init` writes them today
        written = (ROOT / "examples" / "migrations" / name).read_text()
        assert written == template.joinpath(name).read_text(), name


# -- mistakes a user can make: one line, exit 1 (usage: 2), never a traceback -------------------


def _one_line_error(result: object, *fragments: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], stderr


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    """No alembic.ini, a second init, a model module that does not exist, a database that
    cannot be reached: a one-line message naming the fix, exit 1; a missing option: exit 2."""
    project = Project(tmp_path, f"sqlite:///{tmp_path}/app.db")
    _one_line_error(
        project.claystore("db", "upgrade", expect=1), "no alembic configuration", "db init"
    )
    project.claystore("db", "init", "migrations", "--models", "no_such_models")
    _one_line_error(
        project.claystore("db", "init", "migrations", "--models", "x", expect=1), "exists already"
    )
    _one_line_error(
        project.claystore("db", "check", expect=1), "'no_such_models'", "cannot be imported"
    )
    project.write("no_such_models.py", "import claystore\n")
    unreachable = "postgresql://nobody@127.0.0.1:1/nowhere"
    _one_line_error(
        project.claystore("db", "current", "--url", unreachable, expect=1),
        "cannot connect to postgresql at 127.0.0.1:1",
    )
    usage = project.claystore("db", "revision", expect=2)
    assert "Missing option '-m'" in usage.stderr


COMMANDS = ["", "db", "db init", "db revision", "db upgrade", "db downgrade", "db current"]


@pytest.mark.parametrize("command", [*COMMANDS, "db check"])
def test_every_command_has_help(command: str) -> None:
    """``--help`` works on every command and says what it does."""
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
