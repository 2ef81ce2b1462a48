"""The kill harness, short: a search killed with kill -9 inside a database write (before and after its commit), during
an evaluation, five times in a row, and while its workers start up, each resumed by running it again, ends equal to an
uninterrupted run, with no trial lost, none evaluated twice and no worker left running. The full harness (every
strategy, 20+ points each) is ``benchmarks/bench_kill.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and /proc")
def test_killed_searches_resume_equal_to_an_uninterrupted_run(tmp_path):
    out = tmp_path / "kill.json"
    points = "before-commit:17,after-commit:30,eval:9,chain,workers-startup"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_kill.py"), "--strategies", "evolution", "--budget", "16",
         "--kill-points", points, "--json", str(out)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.exists(), r.stderr[-3000:]
    rows = json.loads(out.read_text())["runs"][0]["rows"]
    assert [row["point"] for row in rows] == points.split(",")
    for row in rows:
        assert row["killed"] >= 1, row  # each point was reached
        assert row["resumed_ok"] and row["equal"], row
        assert row["lost"] == 0 and row["twice"] == 0 and row["left_running"] == 0, row
    assert r.returncode == 0, r.stdout[-2000:]
