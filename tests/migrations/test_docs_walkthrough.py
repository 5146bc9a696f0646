"""docs/migrations.md runs as written: its walkthrough, step by step, on SQLite and PostgreSQL.

The steps are the doc's code blocks that follow a ``<!-- test: ... -->`` comment:

- ``write FILE``: the block is the file's content;
- ``run``: a console block; each ``$ command`` runs in the project directory (``claystore`` is
  ``python -m claystore.cli``) and must exit 0, or N when its comment says ``# exit status N``;
  the lines shown under it must be lines of its output;
- ``edit REV``: the block's functions replace those of migration script ``REV``;
- ``expect in REV``: every line of the block is a line of migration script ``REV``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.migrations.conftest import Project, replace_functions

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrations.md"
STEP = re.compile(r"<!-- test: (?P<step>[^>]+?) -->\n```\w+\n(?P<body>.*?)\n```", re.DOTALL)
EXIT = re.compile(r"#\s*exit status (\d+)")


def steps() -> Iterator[tuple[str, str]]:
    for match in STEP.finditer(DOC.read_text()):
        yield match["step"], match["body"]


def _script(project: Project, revision: str) -> Path:
    [path] = (project.path / "migrations" / "versions").glob(f"{revision}_*.py")
    return path


def _commands(console: str) -> Iterator[tuple[str, int, list[str]]]:
    """(command, expected exit status, output lines shown) of a console block."""
    command, status, shown = None, 0, []
    for line in console.splitlines():
        if line.startswith("$ "):
            if command is not None:
                yield command, status, shown
            command, shown = line[2:], []
            found = EXIT.search(command)
            status = int(found[1]) if found else 0
        elif line.strip():
            shown.append(line)
    if command is not None:
        yield command, status, shown


def _run(project: Project, command: str, status: int, shown: list[str]) -> None:
    words = shlex.split(command, comments=True)
    program, args = words[0], words[1:]
    assert program in ("claystore", "python"), command
    prefix = ["-m", "claystore.cli"] if program == "claystore" else []
    result = project.run(*prefix, *args, expect=status)
    lines = result.stdout.splitlines()
    missing = [line for line in shown if line not in lines]
    assert not missing, f"{command}: expected {missing} in\n{result.stdout}"


def test_the_doc_has_a_walkthrough() -> None:
    """The parser finds the doc's steps (a guard against a silently empty test)."""
    kinds = [step.split()[0] for step, _ in steps()]
    assert kinds.count("run") >= 6
    assert kinds.count("write") >= 5
    assert kinds.count("edit") == 2


def test_the_walkthrough_runs_as_written(project: Project) -> None:
    """Every step of docs/migrations.md does and prints what the doc says."""
    for step, body in steps():
        kind, _, argument = step.partition(" ")
        if kind == "write":
            project.write(argument, body + "\n")
        elif kind == "run":
            for command, status, shown in _commands(body):
                _run(project, command, status, shown)
        elif kind == "edit":
            replace_functions(_script(project, argument), body)
        elif kind == "expect":
            revision = argument.removeprefix("in ")
            script = {line.strip() for line in _script(project, revision).read_text().splitlines()}
            missing = [line for line in body.splitlines() if line.strip() not in script]
            assert not missing, f"not in migration {revision}: {missing}"
        else:
            pytest.fail(f"unknown step {step!r} in {DOC.name}")
