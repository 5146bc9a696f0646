"""Runs examples/datastore_hello.py as a user would, with the current interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "datastore_hello.py"


def test_datastore_hello_example_runs():
    """The hello-world example runs to completion and prints each store's answers."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    titles = [line for line in lines if line.startswith("== ")]
    assert titles == [
        "== Hello Dict",
        "== Hello filesystem",
        "== Hello Serialization",
        "== Hello Tiered Access",
        "== Hello Sharding",
    ]
    assert lines.count("contains: True") == 5
    assert lines.count("get: world") == 5
    assert lines.count("after delete: None") == 5
    assert lines[-1] == "stored in shard: 3"  # hash(Key('/hello')) % 10, as datastore 0.3.6
