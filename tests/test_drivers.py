"""Two drivers on one study never duplicate work and never crash: the second is refused in one line while the first
holds the study's lease (renewed by a heartbeat), takes over at once when the first was killed on this machine, or when
the lease of a driver elsewhere expires; a driver that lost its lease can never record a trial again."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time

import pytest
from procs_kit import run_study, start_driver, states, wait_for

from nasforge.spaces import MNIST_TASK, create_family
from nasforge.storage import LeaseHeld, LeaseLost
from nasforge.strategies import create_strategy
from nasforge.study import Study
from nasforge.trial import State

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
LENET = create_family("lenet")


def reference(budget: int) -> list[tuple]:
    study = run_study("memory://", budget)
    return [(t.number, t.arch.key, t.state, t.metrics) for t in study.trials()]


def listing(url: str) -> list[tuple]:
    return [(t.number, t.arch.key, t.state, t.metrics) for t in Study.open("s", url, create=False).trials()]


def test_second_driver_is_refused_while_the_first_runs_and_takes_over_when_it_is_killed(tmp_path, monkeypatch):
    url, db = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "db.sqlite"
    first = start_driver(url, 10, lease_s=3, env={"NFT_SLEEP": "0.7"})
    try:
        wait_for(lambda: sum(s == "complete" for s in states(db).values()) >= 1, what="the first driver's trials")
        monkeypatch.setenv("NFT_SLEEP", "0")
        with pytest.raises(LeaseHeld, match=rf"being run by another driver \(process {first.pid} on .*\); its lease "
                                            r"expires in \d s") as e:  # fmt: skip
            run_study(url, 10)
        assert "\n" not in str(e.value)
        time.sleep(4)  # longer than the lease: the first driver's heartbeat has renewed it
        with pytest.raises(LeaseHeld):
            run_study(url, 10)
        assert first.poll() is None
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        run_study(url, 10)  # the dead driver ran on this machine: taken over at once, no wait for the lease
    finally:
        if first.poll() is None:
            first.kill()
    assert listing(url) == reference(10)


def test_a_driver_elsewhere_holds_the_study_until_its_lease_expires(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    run_study(url, 3)
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("INSERT INTO nasforge_leases VALUES (1, '4242@another-host/1/feedbeef', ?, 2.0)", (time.time() + 2,))
    con.commit()
    con.close()
    with pytest.raises(LeaseHeld, match=r"process 4242 on another-host\); its lease expires in [12] s"):
        run_study(url, 6)
    assert len(listing(url)) == 3  # the refused driver recorded nothing
    time.sleep(2.2)
    run_study(url, 6)
    assert listing(url) == reference(6)


def test_a_driver_that_lost_its_lease_records_nothing_more(tmp_path):
    url, db = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "db.sqlite"
    calls = []

    def stolen_at_third(arch, ctx):
        calls.append(arch.key)
        if len(calls) == 3:  # meanwhile, another driver took the study over (this one stalled past its lease)
            con = sqlite3.connect(db)
            con.execute("UPDATE nasforge_leases SET owner = '1@elsewhere/1/thief'")
            con.commit()
            con.close()
        return {"val_acc": float(arch["fc1"])}

    study = Study.open("s", url)
    with pytest.raises(LeaseLost, match="no longer holds study 's'") as e:
        study.run(LENET, create_strategy("grid", LENET.space), stolen_at_third, task=MNIST_TASK, budget=8)
    assert "\n" not in str(e.value)
    assert [(t.number, t.state) for t in study.trials()] == [(0, State.COMPLETE), (1, State.COMPLETE),
                                                              (2, State.RUNNING)]  # fmt: skip


def test_two_drivers_started_at_once_never_duplicate_and_never_crash(tmp_path):
    url, log = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "evals.log"
    at = time.time() + 5  # both are started and waiting by then
    env = {"NFT_SLEEP": "0.3", "NFT_LOG": str(log)}
    drivers = [start_driver(url, 8, at=at, env=env) for _ in range(2)]
    outs = [d.communicate(timeout=300) for d in drivers]
    codes = sorted(d.returncode for d in drivers)
    assert codes == [0, 2], outs
    refused = next(o for o, d in zip(outs, drivers, strict=True) if d.returncode == 2)
    assert refused[0].startswith("refused: study 's' is being run by another driver") and "Traceback" not in refused[1]
    evaluated = log.read_text().split()
    assert len(evaluated) == len(set(evaluated)) == 8
    assert listing(url) == reference(8)
