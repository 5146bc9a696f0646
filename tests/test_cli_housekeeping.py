"""``claystore check | size | locks | stats | aliases``, run as a user runs them (subprocesses):
exit 0 when healthy and 1 when problems are found, ``--json`` that parses, a progress bar on a
terminal and nothing of it when piped, ``--help`` with an example, one-line errors."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from claystore import Client
from claystore.cli import main
from claystore.orm.system import dc_object
from tests.housekeeping.lock_holder import APPLICATION_NAME
from tests.housekeeping.models import HkDepartment, HkStaff, build_store
from tests.housekeeping.test_locks import COUNTER_TABLE, LkCounter, lock_held

ROOT = Path(__file__).resolve().parent.parent
MODELS = "tests.housekeeping.models"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("DC_URL", None)
    return env


def claystore(*args: str, expect: int = 0, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``claystore ARGS`` in a subprocess, stdout and stderr piped; asserts its exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "claystore.cli", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == expect, (
        f"claystore {' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout}"
        f"\n--- stderr\n{done.stderr}"
    )
    return done


def as_json(*args: str, expect: int = 0) -> Any:
    """The parsed ``--json`` output of ``claystore ARGS --json``."""
    return json.loads(claystore(*args, "--json", expect=expect).stdout)


def _dangling_alias(db_url: str, *, build: bool = True) -> str:
    """Store the healthy store (unless ``build`` is false: it is there), then delete the
    aliased department's rows behind the client's back; returns the department's id."""
    with Client(db_url) as client:
        dept = build_store(2) if build else HkDepartment.get_by_alias("dept")
        dept_id = dept._dc_meta.id
        database = client.context.router.metadata
        with database.writing() as conn:
            info = HkDepartment._dc_info
            links = info.link_tables["staff"]
            conn.execute(sa.delete(links).where(links.c.owner_id == dept_id))
            conn.execute(sa.delete(dc_object).where(dc_object.c.id == dept_id))
            conn.execute(sa.delete(info.table).where(info.table.c.id == dept_id))
    return str(dept_id)


def test_a_healthy_store_checks_clean_with_exit_0_and_json(db_url: str) -> None:
    """check --level 4 on a healthy store exits 0, its JSON says ok with nothing found, and
    nothing is printed on stderr when it is piped (no progress bar)."""
    with Client(db_url):
        build_store(3)
    done = claystore("check", "--level", "4", "--models", MODELS, "--url", db_url, "--json")
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["level"] == 4
    assert done.stderr == ""
    text = claystore("check", "--models", MODELS, "--url", db_url).stdout
    assert "no problem found" in text


def test_problems_exit_1_with_json_and_a_report_file(db_url: str, tmp_path: Path) -> None:
    """A dangling alias: check --level 2 exits 1, its JSON names the problem, --to-file writes
    the report where asked (a .json path gets JSON), and level 1 does not see it."""
    dept_id = _dangling_alias(db_url)
    claystore("check", "--level", "1", "--models", MODELS, "--url", db_url)
    args = ("check", "--level", "2", "--no-stop", "--models", MODELS, "--url", db_url)
    report = as_json(*args, expect=1)
    assert report["ok"] is False
    kinds = {problem["kind"] for problem in report["problems"]}
    assert kinds == {"dangling alias"}
    assert report["problems"][0]["object_id"] == dept_id
    target = tmp_path / "report.json"
    claystore(
        "check",
        "--level",
        "2",
        "--models",
        MODELS,
        "--url",
        db_url,
        "--to-file",
        str(target),
        expect=1,
    )
    written = json.loads(target.read_text())
    assert written["problems"][0]["kind"] == "dangling alias"
    claystore(
        "check",
        "--level",
        "2",
        "--models",
        MODELS,
        "--url",
        db_url,
        "--to-file",
        expect=1,
        cwd=tmp_path,
    )
    [default_file] = tmp_path.glob("claystore-check-*.txt")
    assert "dangling alias" in default_file.read_text()


def test_aliases_lists_every_alias_and_exits_1_on_a_dangling_one(db_url: str) -> None:
    """aliases --json lists each alias with its object's class and backend; after the object
    is deleted behind the client's back the alias shows no class and the exit code is 1."""
    with Client(db_url):
        build_store(1)
        HkStaff("solo", 1.0).make_persistent(alias="solo")
    listed = as_json("aliases", "--models", MODELS, "--url", db_url)
    assert {(a["name"], a["class"], a["table"], a["backend"]) for a in listed} == {
        ("dept", "HkDepartment", "hk_department", "default"),
        ("solo", "HkStaff", "hk_staff", "default"),
    }
    assert as_json("aliases", "--dataset", "nobody", "--models", MODELS, "--url", db_url) == []
    _dangling_alias(db_url, build=False)
    listed = as_json("aliases", "--models", MODELS, "--url", db_url, expect=1)
    assert {(a["name"], a["class"]) for a in listed if a["name"].startswith("dept")} == {
        ("dept", None)
    }


def test_stats_size_and_locks_print_json_for_scripts(db_url: str) -> None:
    """stats, size (whole store and one class) and locks give JSON a script can read: counts
    per class, sizes in bytes per backend, no lock holders on an idle store (exit 0)."""
    with Client(db_url):
        build_store(4)
    found = as_json("stats", "--models", MODELS, "--url", db_url)
    counts = {entry["class"]: entry["objects"] for entry in found["classes"]}
    assert counts == {"HkDepartment": 1, "HkManager": 1, "HkOffice": 1, "HkStaff": 4}
    assert found["meta_version"]
    whole = as_json("size", "--models", MODELS, "--url", db_url)
    one = as_json("size", "HkStaff", "--models", MODELS, "--url", db_url)
    assert 0 < one["bytes"] < whole["bytes"]
    assert set(whole["backends"]) == {"default"}
    human = claystore("size", "--human", "--models", MODELS, "--url", db_url).stdout
    assert "KiB" in human or "MiB" in human
    locks = as_json("locks", "--models", MODELS, "--url", db_url)
    # only this command's own process (SQLite: it has the file open) may be listed
    assert [holder for holder in locks["holders"] if not holder["is_own"]] == []


def test_every_command_has_help_with_an_example() -> None:
    """--help of each housekeeping command exits 0 and shows an example (in this process:
    the subprocess runs above show the command as users run it)."""
    for command in ("check", "size", "locks", "stats", "aliases", "backends"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example: claystore" in result.output, command


def test_mistakes_are_one_line_errors(db_url: str) -> None:
    """An unknown class is one line on stderr, exit 1; a level out of range is a usage error
    (exit 2)."""
    with Client(db_url):
        build_store(1)
    bad = claystore("check", "--collection", "Nope", "--models", MODELS, "--url", db_url, expect=1)
    [line] = [line for line in bad.stderr.splitlines() if line.strip()]
    assert line.startswith("Error: ")
    assert "'Nope'" in line
    claystore("check", "--level", "5", "--url", db_url, expect=2)


def _run_in_terminal(*args: str) -> str:
    """``claystore ARGS`` with stderr on a pseudo-terminal; what the terminal showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "claystore.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**_env(), "COLUMNS": "120"},
        cwd=ROOT,
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed with the process
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return shown.decode("utf-8", "replace")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_check_shows_a_progress_bar_on_a_terminal(db_url: str) -> None:
    """On a terminal, check --level 4 draws progress (the part checked, rows done/total) on
    stderr; piped it draws nothing (test above)."""
    with Client(db_url):
        build_store(50)
    shown = _run_in_terminal("check", "--level", "4", "--models", MODELS, "--url", db_url)
    assert "level 4" in shown
    assert "/" in shown  # rows done / total


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_locks_exits_1_on_a_stuck_session_and_clear_ends_it(db_url: str) -> None:
    """Another process's open transaction on an object's row: locks --older-than 0 lists it
    (its application name) and exits 1; locks --clear ends it (exit 0, JSON says cleared);
    then nothing is held."""
    models = "tests.housekeeping.test_locks"
    with Client(db_url):
        LkCounter().make_persistent()
    with lock_held(db_url, COUNTER_TABLE):
        time.sleep(0.1)
        args = ("--older-than", "0", "--models", models, "--url", db_url)
        listed = claystore("locks", *args, expect=1)
        assert APPLICATION_NAME in listed.stdout
        assert "end them with: claystore locks --clear" in listed.stdout
        cleared = as_json("locks", "--clear", *args)
        [ended] = [h for h in cleared["holders"] if not h["is_own"]]
        assert ended["cleared"] is True
        assert ended["application_name"] == APPLICATION_NAME
        assert claystore("locks", *args).stdout.strip() == "no locks held"
