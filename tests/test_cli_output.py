"""Output for programs: ``--json`` on show, best, list, bench and latency, ``--csv`` on show, bench and latency measure;
piped tables are never cut."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasforge.cli import main
from nasforge.spaces import create_family
from nasforge.strategies import create_strategy
from nasforge.study import Study
from nasforge.task import Task
from nasforge.trial import State
from nasforge.units import human


def cli(*args):
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def lenet_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("out")
    fam = create_family("lenet")
    url = f"sqlite:///{tmp}/o.db"
    Study.open("o", url).run(fam, create_strategy("grid", fam.space), lambda arch: {"val_acc": arch["fc1"] / 300},
                             constraints=["size<=0.05MiB"])  # fmt: skip
    return url


def test_show_json_round_trips_the_stored_values(lenet_db, capsys):
    assert cli("show", "o", "--storage", lenet_db, "--all", "--json") == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)  # the whole of stdout is one document
    study = Study.open("o", lenet_db, create=False)
    stored = {t.number: t for t in study.trials()}
    assert doc["study"] == "o" and doc["trials_total"] == len(stored) == len(doc["trials"]) == 729
    assert doc["constraints"] == ["size<=0.05MiB"]
    fam = create_family("lenet")
    for rec in doc["trials"]:
        t = stored[rec["number"]]
        assert rec["key"] == t.arch.key and fam.arch(rec["arch"]).key == t.arch.key
        assert rec["describe"] == fam.describe(t.arch) and rec["state"] == t.state.value
        assert rec["costs"] == t.costs and rec["metrics"] == t.metrics  # as stored: not humanised
    # the same values the table shows, once humanised
    assert cli("show", "o", "--storage", lenet_db) == 0
    table = capsys.readouterr().out
    best = doc["trials"][0] if doc["trials"][0]["state"] == "complete" else None
    assert best is not None
    assert fam.describe(best["arch"]) in table and human("val_acc", best["metrics"]["val_acc"]) in table


def test_show_json_follows_limit_and_hides_infeasible(lenet_db, capsys):
    assert cli("show", "o", "--storage", lenet_db, "--json", "--limit", "3") == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["trials"]) == 3 and all(r["state"] != "infeasible" for r in doc["trials"])
    accs = [r["metrics"]["val_acc"] for r in doc["trials"]]
    assert accs == sorted(accs, reverse=True)  # best first, like the table


def test_show_csv(lenet_db, capsys):
    assert cli("show", "o", "--storage", lenet_db, "--csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    stored = {t.number: t for t in Study.open("o", lenet_db, create=False).trials()}
    assert rows and len(rows) == sum(1 for t in stored.values() if t.state != State.INFEASIBLE)
    for r in rows:
        t = stored[int(r["number"])]
        assert r["key"] == t.arch.key and json.loads(r["arch_json"]) == dict(t.arch)
        assert float(r["size"]) == t.costs["size"] and float(r["val_acc"]) == t.metrics["val_acc"]


def test_show_json_and_csv_together_is_an_error(lenet_db, capsys):
    assert cli("show", "o", "--storage", lenet_db, "--json", "--csv") == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "at most one of --json and --csv" in cap.err


def test_best_json(lenet_db, capsys):
    assert cli("best", "o", "--storage", lenet_db, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    b = Study.open("o", lenet_db, create=False).best()
    assert doc["best"]["number"] == b.number and doc["best"]["arch"] == dict(b.arch)
    assert doc["best"]["metrics"] == b.metrics and doc["best"]["costs"] == b.costs


def test_list_json(tmp_path, lenet_db, capsys):
    assert cli("list", "--json", "--storage", lenet_db) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["families"]["lenet"]["size"] == 729 and "grid" in doc["strategies"]
    assert "mnist" in doc["datasets"] and doc["studies"] == ["o"]


def test_piped_show_keeps_whole_archs(tmp_path):
    """A mobilenet arch is long; piped (COLUMNS=80 as a terminal would say), the table keeps it whole."""
    fam = create_family("mobilenet")
    url = f"sqlite:///{tmp_path}/m.db"
    Study.open("m", url).run(fam, create_strategy("random", fam.space, seed=1), lambda arch: {"val_acc": 0.5},
                             budget=4, task=Task((3, 224, 224), 10))  # fmt: skip
    import nasforge

    env = {**os.environ, "PYTHONPATH": str(Path(nasforge.__file__).resolve().parents[1]), "COLUMNS": "80"}
    r = subprocess.run([sys.executable, "-m", "nasforge.cli", "show", "m", "--storage", url], env=env,
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    archs = [fam.describe(t.arch) for t in Study.open("m", url, create=False).trials()]
    assert len(archs) == 4 and all(len(a) > 40 for a in archs)
    for a in archs:
        assert a in r.stdout, r.stdout
    assert "…" not in r.stdout


def test_best_export_says_every_file_it_wrote(mnist, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/e.db"
    assert cli("search", "--family", "lenet", "--dataset", "mnist", "--strategy", "random", "-c", "size<=0.05MiB",
               "--budget", "1", "--epochs", "1", "--train-subset", "200", "--test-subset", "100", "--val-size", "100",
               "--threads", "1", "-q", "--study", "e", "--storage", db) == 0  # fmt: skip
    capsys.readouterr()
    assert cli("best", "e", "--storage", db, "--export", tmp_path / "x") == 0
    said = capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "x").iterdir())
    assert all(name in said for name in written), (said, written)
    assert cli("best", "e", "--storage", db, "--export", tmp_path / "y", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(doc["export"]["files"]) == sorted(p.name for p in (tmp_path / "y").iterdir()) == written


def test_bench_json_is_the_written_file_and_csv_its_rows(tmp_path, capsys, monkeypatch):
    from conftest import require_data

    require_data("nb201")
    monkeypatch.chdir(tmp_path)
    args = ["bench", "nb201", "--seeds", "2", "--budget", "12", "--budgets", "6,12", "-s", "random,evolution"]
    assert cli(*args, "--out", tmp_path / "j", "--json") == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)  # stdout holds the document alone; what was written is said on stderr
    assert doc == json.loads((tmp_path / "j" / "nb201.json").read_text()) and "wrote" in cap.err
    assert cli(*args, "--csv") == 0  # no --out: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j"]
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    want_rows = [(s, b) for s in ("random", "evolution") for b in ("6", "12")]
    assert [(r["strategy"], r["budget"]) for r in rows] == want_rows
    for r in rows:
        want = doc["contenders"][r["strategy"]]["budgets"][r["budget"]]
        assert float(r["regret_mean"]) == want["regret_mean"] and r["seeds"] == "2"


def test_latency_measure_json_and_csv_hold_the_same_timings(tmp_path, capsys):
    base = ["latency", "measure", "--family", "lenet", "--random", "2", "--repeats", "3", "--warmup", "1",
            "--cache-dir", tmp_path]  # fmt: skip
    assert cli(*base, "--json") == 0  # measured once, cached: the CSV run reads the same timings
    doc = json.loads(capsys.readouterr().out)
    assert doc["family"] == "lenet" and len(doc["results"]) == 2
    assert cli(*base, "--csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["key"] for r in rows] == [r["key"] for r in doc["results"]]
    for r, d in zip(rows, doc["results"], strict=True):
        assert float(r["median_ms"]) == d["median_ms"] and json.loads(r["arch"]) == d["arch"]
    assert cli(*base, "--json", "--csv") == 2
