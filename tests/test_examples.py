"""Every program in examples/ runs (on both engines, where it takes DC_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, cwd: Path, env: dict[str, str] | None = None, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
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


def test_backends_example_runs(
    db_url: str, backend_url_factory: Callable[..., str], tmp_path: Path
) -> None:
    """examples/backends.py on three databases given on its command line (PostgreSQL: schemas
    on the first server and one on the second): the objects end where each move put them."""
    urls = [db_url, backend_url_factory("local"), backend_url_factory("second")]
    out = run_example("backends.py", tmp_path, None, *urls).splitlines()
    assert out[0] == "backends:"
    assert [line.split()[0] for line in out[1:4]] == ["default", "b1", "b2"]
    assert "stored: red@b1 ann@b1 bob@b1 carol@default" in out
    assert "team red on b1, led by carol (another backend)" in out
    assert "recursive, remotes=False: red@b2 ann@b2 bob@b2 carol@default" in out
    assert "recursive, remotes=True: red@b1 ann@b1 bob@b1 carol@b1" in out
    assert "read back: red@b1 ann@b2 bob@default carol@b1" in out
    assert "bob by alias: bob@default" in out
    assert out[-2] == "people, by name descending: carol@b1 bob@default ann@b2"
    assert out[-1] == "people after the first: 2"


def test_housekeeping_example_finds_the_hand_edits(db_url: str, tmp_path: Path) -> None:
    """examples/housekeeping.py: a healthy store checks clean; after the hand edits the
    check names each problem at its level, and writes its report file."""
    env = {} if db_url.startswith("sqlite") else {"DC_URL": db_url}
    out = run_example("housekeeping.py", tmp_path, env)
    assert "level 4 check of the store: no problem found" in out
    assert "level 4 check of the store: 3 problems found" in out
    assert "level 2 missing object row: Customer" in out
    assert "level 4 unknown enum name: Order.status" in out
    assert "level 4 wrong type: Order.lines" in out
    assert "dangling" not in out  # the order's registry row of its customer is still there
    assert "classes: ['Customer', 'Order']" in out
    assert (tmp_path / "housekeeping-check.txt").read_text().count("\n- ") == 3
