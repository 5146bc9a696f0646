"""docs/backends.md runs as written: its Python blocks, in order, are one program (on SQLite
files in an empty directory), and the messages its comments show are the ones printed; so does
the README's backends example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import claystore

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "backends.md"
SRC = Path(claystore.__file__).resolve().parent.parent

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path = DOC) -> list[str]:
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


def run_python(code: str, cwd: Path) -> str:
    """Run ``code`` in a new process in ``cwd`` (no ``DC_*`` configuration); its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DC_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def shown_output(block: str) -> list[str]:
    """The output a block's comments show: its whole-line comments (a line that goes on is
    indented: ``#   more``), not the explanations at the end of code lines."""
    lines: list[str] = []
    for line in block.splitlines():
        if line.startswith("#   ") and lines:
            lines[-1] += " " + line[4:]
        elif line.startswith("# "):
            lines.append(line[2:])
    return lines


def matches(shown: str, printed: str) -> bool:
    """A shown line stands for a printed one; ``...`` elides (ids, the end of long lines)."""
    pattern = ".*".join(re.escape(part) for part in shown.split("..."))
    return re.fullmatch(pattern + (".*" if shown.endswith("...") else ""), printed) is not None


def test_the_python_blocks_run_and_print_what_they_show(tmp_path: Path) -> None:
    """The blocks, joined, run without error; every line a comment shows as output is
    printed, in that order."""
    blocks = python_blocks()
    assert len(blocks) >= 5
    printed = run_python("\n".join(blocks), tmp_path).splitlines()
    shown = [line for block in blocks for line in shown_output(block)]
    assert len(printed) == len(shown), (printed, shown)
    for want, got in zip(shown, printed, strict=True):
        assert matches(want, got.rstrip()), (want, got)


def test_the_readme_backends_example_runs(tmp_path: Path) -> None:
    """The README's backends example (after its first example, which defines the classes)
    prints the two backends."""
    first, *others = python_blocks(ROOT / "README.md")
    [example] = [block for block in others if "add_backend" in block]
    out = run_python(f"{first}\n{example}", tmp_path)
    assert out.splitlines()[-1] == "{'default': 'sqlite:///meta.db', 'b1': 'sqlite:///b1.db'}"
