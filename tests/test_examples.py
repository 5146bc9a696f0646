"""Every program in examples/ runs (on both engines, where it takes DC_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_runs(db_url: str, tmp_path: Path) -> None:
    """examples/quickstart.py walks the user guide without error and prints the salaries."""
    env = {} if db_url.startswith("sqlite") else {"DC_URL": db_url}
    out = run_example("quickstart.py", tmp_path, env)
    assert "payroll for 50 hours: 1250.0" in out
    assert "Boss is now: Anna 8000.0" in out


def test_quickstart_on_the_default_sqlite_file(tmp_path: Path) -> None:
    """With no configuration the quickstart writes a SQLite file readable with sqlite3."""
    out = run_example("quickstart.py", tmp_path)
    assert (tmp_path / "quickstart.db").exists()
    assert "('Anna', 8000.0)" in out


@pytest.mark.parametrize(
    "name", sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "quickstart.py")
)
def test_other_examples_run(name: str, tmp_path: Path) -> None:
    """Each further example runs to completion on SQLite."""
    run_example(name, tmp_path)


def test_schema_evolution_example_runs(db_url: str, tmp_path: Path) -> None:
    """examples/schema_evolution.py shows the drift of release 2, then evolves the table."""
    env = {} if db_url.startswith("sqlite") else {"DC_URL": db_url}
    out = run_example("schema_evolution.py", tmp_path, env)
    assert "employee.team: missing column (model: str, default 'staff')" in out
    assert "after evolve: Ann team=staff badge=None" in out
    assert "badges: [('Ann', 1), ('Bob', None)]" in out
