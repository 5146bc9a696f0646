"""docs/operations.md stays true: every problem kind is documented at its level, and every
command and option it shows exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from claystore.cli import main
from claystore.housekeeping.report import ProblemKind

DOC = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def test_every_problem_kind_is_documented_at_its_level() -> None:
    """The table of problems has a row per kind, labelled ``kind`` (level), and no other."""
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \((\d)\) \|", text, flags=re.MULTILINE))
    assert rows == {(kind.label, str(kind.level)) for kind in ProblemKind}


def test_the_commands_shown_take_the_options_shown() -> None:
    """Each ``$ claystore ...`` line of the document parses (``--help`` appended: the command
    and its options exist)."""
    commands = re.findall(r"^\$ claystore (.+)$", DOC.read_text(), flags=re.MULTILINE)
    assert len(commands) >= 8
    for line in commands:
        args = [arg for arg in shlex.split(line) if arg != "app.models"]
        args = [arg for arg in args if arg != "--models"]
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (line, result.output)
