"""Helpers for tests that run drivers in other processes: an evaluator whose speed the environment sets, a driver
script, and what /proc says about a process's session. Importable by spawned workers (tests/ is on their path)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def slow(arch, ctx):
    """Sleeps ``$NFT_SLEEP`` seconds (arch keys in ``$NFT_QUICK`` do not), then scores the arch; each evaluation is
    noted in ``$NFT_LOG`` when set."""
    log = os.environ.get("NFT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{arch.key}\n")
    if arch.key not in os.environ.get("NFT_QUICK", "").split(","):
        time.sleep(float(os.environ.get("NFT_SLEEP", "0")))
    return {"val_acc": arch["fc1"] / 10 + arch["conv1_ch"] + arch["conv2_k"] / 7}


def run_study(url: str, budget: int, workers: int = 1, lease_s: float = 60.0, name: str = "s", strategy: str = "grid"):
    from nasforge.executors import ProcessPool
    from nasforge.spaces import MNIST_TASK, create_family
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    fam = create_family("lenet")
    return Study.open(name, url).run(
        fam, create_strategy(strategy, fam.space, seed=0), slow, task=MNIST_TASK, budget=budget,
        executor=ProcessPool(workers) if workers > 1 else None, lease_s=lease_s,
    )  # fmt: skip


DRIVER = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)  # a test that waits too long asks where the driver hangs
sys.path[:0] = [{tests!r}, {src!r}]
from nasforge.errors import NasforgeError
from procs_kit import run_study
t0 = float(sys.argv[1])
while time.time() < t0:
    time.sleep(0.001)
try:
    run_study({url!r}, {budget}, workers={workers}, lease_s={lease_s})
except NasforgeError as e:
    print("refused:", e, flush=True)
    sys.exit(2)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("done", flush=True)
"""


def start_driver(url: str, budget: int, *, workers: int = 1, lease_s: float = 60.0, at: float = 0.0,
                 env: dict | None = None) -> subprocess.Popen:  # fmt: skip
    """A driver in its own session (like a terminal's foreground job), started at time ``at`` (a barrier)."""
    code = DRIVER.format(tests=str(TESTS), src=str(SRC), url=url, budget=budget, workers=workers, lease_s=lease_s)
    # Ctrl-C as in a terminal even where the tests run as a background job, whose children inherit SIGINT ignored
    return subprocess.Popen(
        [sys.executable, "-c", code, str(at)], env={**os.environ, **(env or {})}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def states(db: Path, study: str = "s") -> dict[int, str]:
    """Trial number -> state, read without writing (the file may be in use)."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return dict(con.execute(
            "SELECT t.number, t.state FROM nasforge_trials t JOIN nasforge_studies s ON s.id = t.study_id "
            "WHERE s.name = ?", (study,)
        ).fetchall())  # fmt: skip
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        con.close()


def wait_for(cond, timeout: float = 120.0, what: str = "a condition") -> None:
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid`` (Linux /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if rest[0] != "Z" and int(rest[3]) == sid:
                out.append(int(d))
    return out
