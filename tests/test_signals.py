"""Signals and worker processes: with workers, Ctrl-C cancels what has not started, records what finished and exits
at once (not after the running trainings); kill -9 of the driver leaves no worker running; a resumed search then ends
equal to an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future

import pytest
from procs_kit import run_study, session, start_driver, states, wait_for

from nasforge.executors import Executor, Job, Outcome, run_job
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.strategies import create_strategy
from nasforge.study import Study
from nasforge.trial import State

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
LENET = create_family("lenet")
GRID = list(LENET.space.grid())


def listing(url: str) -> list[tuple]:
    return [(t.number, t.arch.key, t.state, t.metrics) for t in Study.open("s", url, create=False).trials()]


@linux
def test_ctrl_c_with_workers_keeps_what_finished_and_exits_at_once(tmp_path, monkeypatch):
    url, db = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "db.sqlite"
    # trial 0 finishes at once; trials 1 and 2 would train for ten minutes
    driver = start_driver(url, 6, workers=2, env={"NFT_SLEEP": "600", "NFT_QUICK": GRID[0].key})
    try:
        wait_for(lambda: states(db).get(0) == "complete" and states(db).get(2) == "running", timeout=180,
                 what="trial 0 recorded and trial 2 running")  # fmt: skip
        t0 = time.time()
        os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the driver and its workers
        try:
            out, err = driver.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(driver.pid, signal.SIGUSR1)  # its threads' stacks, to stderr
            time.sleep(2)
            os.killpg(driver.pid, signal.SIGKILL)
            out, err = driver.communicate()
            pytest.fail(f"the driver did not exit within 60 s of Ctrl-C; where it was:\n{err[-6000:]}")
        took = time.time() - t0
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130 and "interrupted" in out, (out, err[-2000:])
    assert took < 20, f"Ctrl-C took {took:.1f} s"
    assert "Traceback" not in err, err[-2000:]
    assert states(db) == {0: "complete", 1: "running", 2: "running"}  # finished kept, running ones run again
    wait_for(lambda: not session(driver.pid), timeout=10, what="the workers to end")
    monkeypatch.setenv("NFT_SLEEP", "0")
    run_study(url, 6)
    assert listing(url) == [(t.number, t.arch.key, t.state, t.metrics) for t in run_study("memory://", 6).trials()]


@linux
def test_kill_9_of_the_driver_leaves_no_worker_running(tmp_path):
    db = tmp_path / "db.sqlite"
    driver = start_driver(f"sqlite:///{db}", 6, workers=2, env={"NFT_SLEEP": "600"})
    try:
        wait_for(lambda: list(states(db).values()).count("running") == 2, timeout=180, what="two trials running")
        time.sleep(1.0)
        workers = [p for p in session(driver.pid) if p != driver.pid]
        assert len(workers) >= 2  # two workers (and multiprocessing's resource tracker)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        wait_for(lambda: not session(driver.pid), timeout=5, what="the workers to notice their driver died")
    finally:
        for p in session(driver.pid):
            os.kill(p, signal.SIGKILL)


class Interrupted(Executor):
    """Two jobs finish (their futures are done but not yet collected), then Ctrl-C arrives while the third is handed
    over; ``abort`` is recorded."""

    slots = 3
    in_process = True

    def __init__(self) -> None:
        self.submitted, self.aborted = 0, False

    def submit(self, job: Job) -> Future[Outcome]:
        self.submitted += 1
        if self.submitted == 3:
            raise KeyboardInterrupt
        f: Future[Outcome] = Future()
        f.set_result(run_job(job))
        return f

    def abort(self) -> None:
        self.aborted = True


def test_interrupted_loop_records_the_finished_and_aborts_the_rest():
    study = Study.open("s", "sqlite://")
    ex = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        study.run(LENET, create_strategy("grid", LENET.space), lambda a, c: {"val_acc": 1.0}, task=MNIST_TASK,
                  budget=6, executor=ex)  # fmt: skip
    assert ex.aborted
    assert [(t.number, t.state) for t in study.trials()] == [(0, State.COMPLETE), (1, State.COMPLETE),
                                                              (2, State.RUNNING)]  # fmt: skip


def test_ctrl_c_during_a_database_write_is_raised_once_the_write_is_done():
    from nasforge.loop import _no_ctrl_c_inside

    # Ctrl-C as in a terminal (a test run in the background inherits SIGINT ignored)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with _no_ctrl_c_inside():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # a Ctrl-C here would cut the write short
                done.append("written")
        assert done == ["written"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
