"""One-shot runs as studies: recorded settings and history, the derived arch retrained as a trial and exported, a
resume that refuses other settings, and a run killed with SIGKILL that resumes to the state of an uninterrupted one."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import require_data

from nasforge.cli import main
from nasforge.oneshot_run import load_run, run_key
from nasforge.study import Study
from nasforge.trial import State

TINY = ["--family", "nb201", "--family-opt", "C=2", "--family-opt", "N=1", "--dataset", "mnist", "--train-subset",
        "96", "--val-size", "32", "--batch-size", "16", "--retrain-epochs", "1", "--device", "cpu", "-q"]  # fmt: skip


def cli(*args):
    return main([str(a) for a in args])


def checkpoint(study: Study) -> dict:
    raw = study.artifacts.get(run_key(study.name), "oneshot.pt")
    return torch.load(io.BytesIO(raw), weights_only=False)


@pytest.mark.parametrize("method", ["spos", "darts", "gdas", "proxyless"])
def test_a_oneshot_run_is_a_study_whose_derived_arch_is_a_trial(mnist, tmp_path, capsys, method):
    db = f"sqlite:///{tmp_path}/nf.db"
    assert cli("oneshot", method, *TINY, "--epochs", "2", "--study", "s", "--storage", db) == 0
    out = capsys.readouterr().out
    assert "derived arch: |" in out and "retrained from scratch (1 epochs): trial 0 complete" in out
    s = Study.open("s", db, create=False)
    rec = load_run(s)
    assert rec["record"]["method"] == method and rec["record"]["epochs"] == 2
    assert [e["epoch"] for e in rec["history"]] == [1, 2]
    assert all("train_loss" in e and (e["probs"] or method == "spos") for e in rec["history"])
    (t,) = s.trials()
    assert t.state is State.COMPLETE and dict(t.arch) == rec["derived"]
    # the trial is an ordinary one: export works
    assert cli("best", "s", "--storage", db, "--export", tmp_path / "best") == 0
    assert json.loads((tmp_path / "best" / "arch.json").read_text())["arch_key"] == t.arch.key
    # the report shows the run: weights over epochs, the derived arch and its costs
    assert cli("report", "s", "--storage", db, "--out", tmp_path / "r.html") == 0
    page = (tmp_path / "r.html").read_text()
    assert f"One-shot run: {method}" in page and "derived arch: <code>|" in page and "params" in page
    assert page.count("<img alt='architecture weights'") == (method != "spos") and "alt='one-shot losses'" in page
    # rerunning resumes: nothing trains again, nothing is recorded twice
    assert cli("oneshot", method, *TINY, "--epochs", "2", "--study", "s", "--storage", db) == 0
    assert len(Study.open("s", db).trials()) == 1 and len(load_run(s)["history"]) == 2


def test_resuming_with_other_settings_or_a_search_study_is_refused(mnist, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/nf.db"
    assert cli("oneshot", "darts", *TINY, "--epochs", "1", "--study", "s", "--storage", db, "--no-retrain") == 0
    capsys.readouterr()
    assert cli("report", "s", "--storage", db, "--out", tmp_path / "r.html") == 0  # a run with no trial yet
    assert "One-shot run: darts" in (tmp_path / "r.html").read_text()
    assert cli("oneshot", "darts", *TINY, "--epochs", "1", "--study", "s", "--storage", db, "--opt", "order=2") == 2
    err = capsys.readouterr().err.strip()
    assert "was created with oneshot settings" in err and len(err.splitlines()) == 1
    assert cli("search", "--family", "lenet", "--dataset", "mnist", "--train-subset", "64", "--val-size", "16",
               "--epochs", "1", "--budget", "1", "--study", "plain", "--storage", db, "-q") == 0  # fmt: skip
    capsys.readouterr()
    assert cli("oneshot", "darts", *TINY, "--epochs", "1", "--study", "plain", "--storage", db) == 2
    assert "holds a search, not a one-shot run" in capsys.readouterr().err


def test_bad_method_settings_and_dimensions_are_one_line(mnist, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/nf.db"
    assert cli("oneshot", "darts", *TINY, "--study", "s", "--storage", db, "--opt", "order=5") == 2
    assert "order must be 1 or 2" in capsys.readouterr().err
    assert cli("oneshot", "proxyless", *TINY, "--study", "s", "--storage", db, "--opt", "latency_weight=1") == 2
    assert "needs a latency model" in capsys.readouterr().err
    assert cli("oneshot", "darts", *TINY, "--study", "s", "--storage", db, "--opt", "warp=3") == 2
    assert "takes no setting 'warp'; it takes: order, fd_eps, epochs" in capsys.readouterr().err
    lenet = ["--family", "lenet", "--dataset", "mnist", "--train-subset", "64", "--device", "cpu", "-q"]
    assert cli("oneshot", "gdas", *lenet, "--study", "s", "--storage", db) == 2
    assert "has nothing to mix" in capsys.readouterr().err
    # nothing was recorded by the refused runs
    assert not (tmp_path / "nf.db").exists() or not Study.open("s", db).trials()


KILLER = """
import os, signal, sys
sys.path.insert(0, {src!r})
from nasforge.evaluators.train import TrainEvaluator
from nasforge.oneshot import load_methods
from nasforge.oneshot_run import run_oneshot
from nasforge.spaces import create_family
load_methods()
fam = create_family("nb201", C=2, N=1)
ev = TrainEvaluator(fam, "mnist", train_subset=96, val_size=32, epochs=1, device="cpu")
kill_after = int(sys.argv[2])
def on_epoch(e):
    if e["epoch"] == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
run_oneshot(sys.argv[1], {db!r}, "gdas", fam, ev, epochs=3, seed=1, settings={{"batch_size": 16}}, retrain=False,
            on_epoch=on_epoch)
"""


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_state(tmp_path):
    require_data("mnist")
    db = f"sqlite:///{tmp_path}/nf.db"
    script = KILLER.format(src=str(os.path.join(os.path.dirname(__file__), "..", "src")), db=db)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(study, kill_after):
        return subprocess.run([sys.executable, "-c", script, study, str(kill_after)], env=env, capture_output=True,
                              text=True, timeout=600,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip

    killed = run("k", 2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoint(Study.open("k", db))["epoch"] == 2
    again = run("k", 0)
    assert again.returncode == 0, again.stderr
    whole = run("w", 0)
    assert whole.returncode == 0, whole.stderr
    a, b = checkpoint(Study.open("k", db)), checkpoint(Study.open("w", db))
    assert a["epoch"] == b["epoch"] == 3
    for x, y in zip(a["state"]["alphas"], b["state"]["alphas"], strict=True):
        assert torch.equal(x, y)
    for k, v in a["state"]["net"].items():
        assert torch.equal(v, b["state"]["net"][k]), k
    assert [e["derived"] for e in a["history"]] == [e["derived"] for e in b["history"]]


def test_spos_pipeline_evolution_on_the_trained_supernet(mnist, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/nf.db"
    assert cli("oneshot", "spos", *TINY, "--epochs", "1", "--opt", "n_derive=2", "--study", "sp", "--storage", db,
               "--no-retrain") == 0  # fmt: skip
    capsys.readouterr()
    # any black-box strategy searches the supernet through the supernet evaluator: SPOS's search step
    assert cli("search", "--family", "nb201", "--family-opt", "C=2", "--family-opt", "N=1", "--dataset", "mnist",
               "--evaluator", "supernet", "--evaluator-opt", "study=sp", "--evaluator-opt", "train_subset=96",
               "--evaluator-opt", "val_size=32", "--evaluator-opt", "device=cpu", "--evaluator-opt", "bn_batches=2",
               "--strategy", "evolution", "--strategy-opt", "population=2", "--budget", "4", "--study", "evo",
               "--storage", db, "-q") == 0  # fmt: skip
    done = Study.open("evo", db).trials([State.COMPLETE])
    assert len(done) == 4 and all(0 <= t.metrics["val_acc"] <= 100 for t in done)
