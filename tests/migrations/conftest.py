"""Fixtures of the migration tests: a user project in a temporary directory, whose commands
(``claystore db ...``, plain ``alembic``, the project's own scripts) run in subprocesses, as a
user runs them, against the test's database (``DC_URL``)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import claystore

#: The src directory of the checkout under test (subprocesses import claystore from it).
SRC = Path(claystore.__file__).resolve().parent.parent


class Project:
    """A project directory, and the commands a user runs in it."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DC_")}
        self.env = {
            **environ,
            "PYTHONPATH": str(SRC),
            "PYTHONDONTWRITEBYTECODE": "1",  # a module rewritten within a second stays fresh
            "DC_URL": url,
        }

    def write(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def run(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if expect is not None:
            assert result.returncode == expect, (
                f"{' '.join(args)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def claystore(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        """``claystore ARGS`` (as ``python -m claystore.cli``)."""
        return self.run("-m", "claystore.cli", *args, expect=expect)

    def python(self, code: str, expect: int | None = 0) -> str:
        """Run ``code`` as a script of the project; its output."""
        return self.run("-c", textwrap.dedent(code), expect=expect).stdout

    def revisions(self, directory: str = "migrations") -> list[Path]:
        """The migration scripts, oldest first (a linear history)."""
        scripts = (self.path / directory / "versions").glob("*.py")
        by_parent = {_assignment(path, "down_revision"): path for path in scripts}
        order: list[Path] = []
        parent = None
        while parent in by_parent:
            order.append(by_parent[parent])
            parent = _assignment(order[-1], "revision")
        return order


def _assignment(path: Path, name: str) -> object:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                assert node.value is not None
                return ast.literal_eval(node.value)
    raise AssertionError(f"{path} assigns no {name}")


def function_body(path: Path, name: str) -> list[ast.stmt]:
    """The statements of function ``name`` in a script, its docstring left out."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            return body
    raise AssertionError(f"{path} defines no {name}()")


@pytest.fixture
def project(db_url: str, tmp_path: Path) -> Project:
    """An empty project directory whose commands use the test's database (each engine)."""
    path = tmp_path / "project"
    path.mkdir()
    return Project(path, db_url)


def replace_functions(path: Path, code: str) -> None:
    """Replace the functions of migration script ``path`` that ``code`` defines (``upgrade``,
    ``downgrade``) with ``code``'s, as a user edits a generated script."""
    code = textwrap.dedent(code).strip("\n")
    given = {
        node.name: ast.get_source_segment(code, node)
        for node in ast.parse(code).body
        if isinstance(node, ast.FunctionDef)
    }
    lines = path.read_text().splitlines()
    for node in sorted(
        (n for n in ast.parse("\n".join(lines)).body if isinstance(n, ast.FunctionDef)),
        key=lambda n: -n.lineno,
    ):
        if node.name in given:
            assert node.end_lineno is not None
            lines[node.lineno - 1 : node.end_lineno] = str(given[node.name]).splitlines()
    path.write_text("\n".join(lines) + "\n")
