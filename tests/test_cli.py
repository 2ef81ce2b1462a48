import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_data

from nasforge.cli import main
from nasforge.study import Study
from nasforge.trial import State

QUICK = ["--train-subset", "600", "--test-subset", "300", "--val-size", "300", "--epochs", "1", "--threads", "1"]
PRACTICE = ["search", "--family", "lenet", "--dataset", "mnist", "--strategy", "grid", "-c", "size<=0.05MiB", "-q"]


def cli(*args):
    return main([str(a) for a in args])


def test_practice_end_to_end(mnist, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/nf.db"
    assert cli(*PRACTICE, *QUICK, "--study", "practice", "--storage", db) == 0
    s = Study.open("practice", db)
    assert len(s.trials()) == 729 and len(s.trials([State.COMPLETE])) == 17
    assert cli("show", "practice", "--storage", db) == 0
    assert "c6k5-c12k7-fc64-32" in capsys.readouterr().out
    assert cli("best", "practice", "--storage", db, "--export", tmp_path / "best") == 0
    info = json.loads((tmp_path / "best" / "arch.json").read_text())
    assert info["arch_key"] == s.best().arch.key and info["onnx_max_abs_diff"] < 1e-4
    # the exported ONNX model classifies real test images exactly like the torch model
    import onnxruntime as ort
    import torch

    from nasforge.data import load_image_dataset
    from nasforge.export import load_exported

    model = load_exported(tmp_path / "best")
    x = load_image_dataset("mnist", val_size=300, test_subset=64).x_test
    sess = ort.InferenceSession(str(tmp_path / "best" / "model.onnx"))
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(got - want).max() < 1e-4 and (got.argmax(1) == want.argmax(1)).all()
    assert cli("report", "practice", "--storage", db, "--out", tmp_path / "r.html") == 0
    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "size&lt;=0.05MiB" in html and "<script" not in html


def test_yaml_search_file(mnist, tmp_path):
    f = tmp_path / "search.yaml"
    f.write_text(
        f"""
study: y
storage: sqlite:///{tmp_path}/y.db
family: lenet
dataset: mnist
strategy: {{name: random, seed: 1}}
constraints: size<=0.05MiB
evaluator: {{name: train, epochs: 1, train_subset: 300, test_subset: 100, val_size: 100}}
budget: 40
"""
    )
    assert cli("run", f, "-q") == 0
    s = Study.open("y", f"sqlite:///{tmp_path}/y.db")
    # random search honours the cheap constraint: it proposes only the 17 archs that fit
    assert len(s.trials()) == 17 and all(t.state == State.COMPLETE for t in s.trials())


@pytest.mark.parametrize(
    "args,needle",
    [
        (["search", "--family", "nope"], "unknown family 'nope'"),
        (["search", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["search", "--dataset", "nope"], "data set 'nope' is neither a known name"),
        (["search", "-c", "size<=abc"], "cannot read constraint"),
        (["search", "-c", "size<=0.001MiB"], "no arch of the 729"),
        (["search", "--data-dir", "/nonexistent", "-c", "size<=0.05MiB"], "not found; looked in /nonexistent/mnist"),
        (["show", "nope"], "no study 'nope'"),
        (["search", "--strategy-opt", "oops"], "must look like key=value"),
        (["search", "--evaluator-opt", "colour=red"], "has no option 'colour'"),
        (["run", "/nonexistent.yaml"], "does not exist"),
        (["search", "--study", "a/b"], "study name 'a/b' is not allowed"),
        (["search", "--study", ".."], "study name '..' is not allowed"),
        (["show", "../x"], "no study '../x'"),
    ],
)
def test_bad_input_one_line_and_nonzero(args, needle, tmp_path, capsys, monkeypatch):
    if needle.startswith("no arch"):
        require_data("mnist")  # the proof prices archs for the data set's input shape, read from its files
    if "--data-dir" in args:
        monkeypatch.setenv("NASFORGE_DATA", str(tmp_path / "none"))
    rc = cli(*args, "--storage", f"sqlite:///{tmp_path}/e.db") if args[0] != "run" else cli(*args)
    err = capsys.readouterr().err
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in " ".join(err.split()), err


def test_corrupt_database_cli(tmp_path, capsys):
    p = tmp_path / "bad.db"
    p.write_text("garbage")
    assert cli("show", "x", "--storage", f"sqlite:///{p}") == 2
    assert "corrupt or not a database" in capsys.readouterr().err and p.read_text() == "garbage"


def test_kill_9_then_rerun_resumes_to_the_uninterrupted_result(mnist, tmp_path):
    """A search killed with SIGKILL mid-training resumes with the same command and ends as an uninterrupted run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    db = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "nasforge.cli", *PRACTICE, *QUICK, "--study", "k", "--storage", f"sqlite:///{db}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                done = len(Study.open("k", f"sqlite:///{db}").trials([State.COMPLETE]))
            except Exception:
                done = 0
            if done >= 4:
                break
    assert proc.poll() is None, "the search finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = Study.open("k", f"sqlite:///{db}").trials()
    assert 4 <= sum(t.state == State.COMPLETE for t in partial) < 17
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    ref_cmd = cmd[:-4] + ["--study", "ref", "--storage", f"sqlite:///{tmp_path}/ref.db"]
    subprocess.run(ref_cmd, env=env, check=True, capture_output=True, timeout=300)
    got = Study.open("k", f"sqlite:///{db}").trials()
    ref = Study.open("ref", f"sqlite:///{tmp_path}/ref.db").trials()
    assert [t.state for t in got] == [t.state for t in ref] and len(got) == 729
    assert {t.arch.key: t.metrics.get("val_acc") for t in got} == {t.arch.key: t.metrics.get("val_acc") for t in ref}


def test_help_is_readable(capsys):
    assert cli("--help") == 0
    out = capsys.readouterr().out
    for cmd in ("search", "show", "best", "export", "report", "run"):
        assert cmd in out


def test_cli_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "nasforge.cli", "space", "cell"], capture_output=True, text=True)
    assert r.returncode == 0 and "320,000,000,000" in r.stdout
    assert Path(sys.executable).exists()


def test_latency_as_an_ordinary_constraint(mnist, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/lat.db"
    rc = cli("search", "--strategy", "random", "--budget", "3", "-c", "latency_ms<=1000", "--latency", "measured",
             "--latency-opt", "repeats=3", "--latency-opt", "warmup=1", *QUICK, "--study", "lat", "--storage", db,
             "-q")  # fmt: skip
    assert rc == 0
    trials = Study.open("lat", db).trials()
    assert len(trials) == 3 and all(0 < t.costs["latency_ms"] <= 1000 for t in trials)
    assert Study.open("lat", db).config["cost_models"][0]["source"] == "measured"
    assert cli("show", "lat", "--storage", db) == 0 and "latency_ms" in capsys.readouterr().out
    assert cli("search", "--latency", "guessed", "--budget", "1", "--study", "x", "--storage", db, "-q") == 2
    assert "unknown latency source 'guessed'" in capsys.readouterr().err


# --- studies that come back in a fresh process ------------------------------------------------------------------
USER_MODULE = '''
from torch import nn

from nasforge.space import Space
from nasforge.spaces.custom import BuilderFamily
from nasforge.task import Task

TASK = Task((1, 8, 8), 3, "toy")


def mlp(arch, task):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, arch["width"]), nn.ReLU(), nn.Linear(arch["width"], 3))


SPACE = Space({"width": [4, 8, 16]})
FAMILY = BuilderFamily(SPACE, mlp, default_task=TASK, ref="userfam:FAMILY")
ANONYMOUS = BuilderFamily(SPACE, mlp, default_task=TASK)  # no ref: cannot be rebuilt elsewhere


def evaluate(arch, ctx):
    import torch

    torch.manual_seed(ctx.seed)
    ctx.artifacts.save("model.pt", mlp(arch, ctx.task).state_dict())
    return {"val_acc": float(arch["width"])}
'''

DRIVER = '''
import userfam
from nasforge.strategies import create_strategy
from nasforge.study import Study

for name, fam in (("user", userfam.FAMILY), ("anon", userfam.ANONYMOUS)):
    Study.open(name, "sqlite:///dbs/u.db").run(fam, create_strategy("grid", fam.space), userfam.evaluate)
'''

READER = '''
import sys
from nasforge.cli import main

db = sys.argv[1]
for args in (["show", "user"], ["report", "user", "--out", "user.html"], ["best", "user", "--export", "best"],
             ["export", "user", "t0", "--trial", "0"], ["show", "anon"], ["report", "anon", "--out", "anon.html"],
             ["export", "anon", "a0"]):
    print("RC", args[0], args[1], main([*args, "--storage", db]), flush=True)
'''


def fresh(code, cwd, *args, pythonpath=()):
    import nasforge

    src = str(Path(nasforge.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), src]), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_user_family_study_comes_back_in_a_fresh_process_from_another_folder(tmp_path, monkeypatch):
    """A BuilderFamily study run from one folder (relative database URL) is shown, reported and exported from another
    folder, in a fresh process; a family without an import path is still shown and reported, and export says why
    it cannot."""
    mod, here, there = tmp_path / "mods", tmp_path / "here", tmp_path / "there"
    for d in (mod, here, there):
        d.mkdir()
    (mod / "userfam.py").write_text(USER_MODULE)
    r = fresh(DRIVER, here, pythonpath=[mod])
    assert r.returncode == 0, r.stderr
    db = f"sqlite:///{here}/dbs/u.db"
    r = fresh(READER, there, db, pythonpath=[mod])
    rcs = dict(line.split(" ", 1)[1].rsplit(" ", 1) for line in r.stdout.splitlines() if line.startswith("RC "))
    assert rcs == {"show user": "0", "report user": "0", "best user": "0", "export user": "0", "show anon": "0",
                   "report anon": "0", "export anon": "2"}, r.stdout + r.stderr  # fmt: skip
    assert '{"width":16}' in r.stdout  # anon's archs shown as JSON
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "cannot export trial 2 of study 'anon'" in errors[0] and "ref=" in errors[0]
    info = json.loads((there / "best" / "arch.json").read_text())
    assert info["arch"] == {"width": 16} and info["family_spec"] == {"import": "userfam:FAMILY"}
    assert info["onnx_max_abs_diff"] < 1e-4 and (there / "t0" / "model.onnx").exists()
    assert "data:image/png;base64," in (there / "user.html").read_text()
    assert (here / "dbs" / "u_artifacts" / "user").is_dir() and not (there / "dbs").exists()
    monkeypatch.syspath_prepend(str(mod))
    from nasforge.export import load_exported

    model = load_exported(there / "t0")
    assert sum(p.numel() for p in model.parameters()) == 64 * 4 + 4 + 4 * 3 + 3


def test_nb201_table_search_from_the_command_line_and_yaml(nb201, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/nb.db"
    assert cli("search", "--family", "nb201", "--evaluator", "table", "--strategy", "random", "--budget", 6,
               "-c", "lat_ms_fpga<=3", "--study", "nb", "--storage", db, "-q") == 0  # fmt: skip
    s = Study.open("nb", db)
    assert s.config["objectives"] == ["maximize acc12_cifar10_val"] and s.task().input_shape == (3, 32, 32)
    done = s.trials()
    assert len(done) == 6 and all(t.state == State.COMPLETE and t.costs["lat_ms_fpga"] <= 3 for t in done)
    assert s.best().metrics["acc12_cifar10_val"] == max(t.metrics["acc12_cifar10_val"] for t in done)
    assert "acc12_cifar10_val" in capsys.readouterr().out
    f = tmp_path / "nb.yaml"
    f.write_text(f"study: y\nstorage: {db}\nfamily: nb201\nevaluator: table\nstrategy: {{name: nsga2, seed: 2}}\n"
                 "objectives: [maximize acc12_cifar10_val, -lat_ms_fpga]\nbudget: 12\n")  # fmt: skip
    assert cli("run", f, "-q") == 0
    assert len(Study.open("y", db).trials([State.COMPLETE])) == 12 and Study.open("y", db).pareto()
    capsys.readouterr()
    assert cli("show", "y", "--storage", db, "--sort", "lat_ms_fpga") == 0
    lat = [float(v) for v in column(capsys.readouterr().out, "lat_ms_fpga")]
    assert len(lat) == 12 and lat == sorted(lat)  # the metric table says lat_ms_* is minimised: smallest first


def column(text, name):
    """The cells of column ``name`` of the rich table printed in ``text``."""
    lines = text.splitlines()
    head = next(ln for ln in lines if ln.startswith("┃") and f" {name} " in ln)
    i = [c.strip() for c in head.split("┃")].index(name)
    return [ln.split("│")[i].strip() for ln in lines if ln.startswith("│")]


def test_training_options_reach_the_evaluators_that_take_them(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/nf.db"
    # the table evaluator trains nothing: a training option given to it is a usage error, not silently dropped
    assert cli("search", "--family", "nb201", "--evaluator", "table", "--epochs", "3", "--study", "t",
               "--storage", db) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --epochs does not apply to evaluator 'table'") and len(err.splitlines()) == 1
    assert not (tmp_path / "nf.db").exists()
