"""The multi-seed benchmark runner and ``nasforge bench nb201``, on tiny settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import require_data
from typer.testing import CliRunner

from nasforge.bench.runner import Contender, problem, run_benchmark, run_seed, single_curves, summarize
from nasforge.commands.bench import app
from nasforge.errors import NasforgeError, UnknownNameError
from nasforge.strategies import STRATEGIES


@pytest.fixture(autouse=True)
def data(monkeypatch):
    monkeypatch.setenv("NASFORGE_DATA", str(require_data("nb201").parent))


def test_random_search_regret_is_non_negative_and_non_increasing():
    res = run_benchmark([Contender.parse("random")], ["acc12_cifar10_val"], budget=40, seeds=[0, 1], budgets=[10, 25])
    d = res["contenders"]["random"]
    curve = np.asarray(d["curve_mean"])
    assert len(curve) == 40 and np.all(curve >= 0) and np.all(np.diff(curve) <= 0)
    per_seed = np.asarray(d["regret_per_seed"])  # seeds × checkpoints 10, 25, 40
    assert per_seed.shape == (2, 3) and np.all(per_seed >= 0) and np.all(np.diff(per_seed, axis=1) <= 0)
    assert res["optimum"]["value"] == pytest.approx(84.892) and res["checkpoints"] == [10, 25, 40]
    # the chosen cell's test accuracy is that cell's table entry
    p = problem(["acc12_cifar10_val"])
    cell = d["chosen"][0]
    assert p.table.row(cell)["acc12_cifar10_val"] == pytest.approx(84.892 - per_seed[0, -1])


def test_regret_and_chosen_cell_by_hand():
    p = problem(["acc12_cifar10_val"], ["lat_ms_fpga<=3"])
    acc, ok = p.table.column("acc12_cifar10_val"), p.feasible
    good = np.flatnonzero(ok)
    good = good[np.argsort(acc[good])]
    bad = int(np.flatnonzero(~ok)[np.argmax(acc[~ok])])  # the best infeasible cell must never be chosen
    lo, mid, hi = good[-300], good[-400], good[-100]
    assert acc[mid] < acc[lo] < acc[hi]
    rows = np.array([lo, bad, mid, hi, hi])
    regret, chosen, hit = single_curves(p, rows, 6)
    opt = acc[ok].max()
    expect = [opt - acc[lo]] * 3 + [opt - acc[hi]] * 3
    assert np.allclose(regret, expect)
    assert chosen.tolist() == [lo] * 3 + [hi] * 3  # first to reach the best, kept after the run ends
    assert not hit.any() and p.optimum == pytest.approx(opt)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_constrained_runs_return_only_feasible_cells(name):
    res = run_benchmark([Contender.parse(name)], ["acc12_cifar10_val"], ["lat_ms_fpga<=3"], budget=30, seeds=[0, 1])
    t = problem(["acc12_cifar10_val"]).table
    d = res["contenders"][name]
    assert d["all_feasible"] and all(t.row(a)["lat_ms_fpga"] <= 3 for a in d["chosen"] if a is not None)
    assert d["budgets"]["30"]["regret_mean"] >= 0
    if name != "grid":  # grid enumerates everything and leaves infeasible archs to the study
        assert d["infeasible_queries_mean"] == 0 and None not in d["chosen"]


def test_tpe_counts_every_proposal_as_a_query():
    pytest.importorskip("optuna")
    p = problem(["acc12_cifar10_val"], ["lat_ms_fpga<=3"])
    rows = run_seed(Contender.parse("tpe", peer=True), p, seed=0, budget=15)
    assert len(rows) == 15  # repeats and infeasible cells included
    s = summarize(p, {"tpe": [rows]}, 15, [15])["tpe"]
    assert s["all_feasible"] and s["infeasible_queries_mean"] == np.sum(~p.feasible[rows])


def test_multi_objective_figures_against_the_true_front():
    p = problem(["acc12_cifar10_val", "-lat_ms_pixel3"])
    assert len(p.front) == 37
    one = p.front[:1]
    s = summarize(p, {"oracle": [p.front], "one": [one]}, len(p.front), [len(p.front)])
    e = s["oracle"]["budgets"][str(len(p.front))]
    assert e["hv_ratio_mean"] == pytest.approx(1.0) and e["front_found_mean"] == 37
    e = s["one"]["budgets"][str(len(p.front))]  # a run that stopped after one query
    assert e["front_found_mean"] == 1 and 0 < e["hv_ratio_mean"] < 1


def test_contender_parsing():
    c = Contender.parse("evolution:population=10,sample=3")
    assert (c.label, c.kind, dict(c.hyper)) == (
        "evolution(population=10,sample=3)",
        "strategy",
        {"population": 10, "sample": 3},
    )
    assert Contender.parse("tpe", peer=True).label == "optuna-tpe"
    assert Contender.parse("random", peer=True).kind == "strategy"
    with pytest.raises(UnknownNameError, match="unknown strategy 'bogus'"):
        Contender.parse("bogus")
    with pytest.raises(UnknownNameError, match="unknown peer"):
        Contender.parse("smac", peer=True)
    with pytest.raises(NasforgeError, match="key=value"):
        Contender.parse("evolution:population")


def test_cli_writes_json_and_plot(tmp_path):
    args = ["nb201", "-s", "random", "--budget", "20", "--seeds", "2", "--out", str(tmp_path), "-c", "lat_ms_fpga<=3"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "nb201.json").read_text())
    assert res["constraints"] == ["lat_ms_fpga<=3"] and res["contenders"]["random"]["seeds"] == [0, 1]
    assert (tmp_path / "nb201.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_multi_objective(tmp_path):
    args = ["nb201", "-s", "random", "--objectives", "acc12_cifar10_val,-lat_ms_pixel3", "--budget", "30"]
    r = CliRunner().invoke(app, [*args, "--seeds", "1", "--budgets", "10,30", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "nb201.json").read_text())
    assert res["true_front_size"] == 37 and set(res["contenders"]["random"]["budgets"]) == {"10", "30"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--objective", "acc_bogus"], "no column 'acc_bogus'"),
        (["-c", "lat_ms_mars<=3"], "no column 'lat_ms_mars'"),
        (["-s", "bogus"], "unknown strategy 'bogus'"),
        (["-c", "lat_ms_fpga<=0"], "no NAS-Bench-201 cell meets"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, message):
    r = CliRunner().invoke(app, ["nb201", "--budget", "5", "--seeds", "1", "--out", str(tmp_path), *args])
    assert r.exit_code != 0
    out = r.output.strip()
    assert message in out and len(out.splitlines()) == 1 and "Traceback" not in out
    assert not (tmp_path / "nb201.json").exists()


def test_runs_are_reproducible_per_seed():
    p = problem(["acc12_cifar10_val"], ["lat_ms_fpga<=3"])
    c = Contender.parse("evolution:population=10,sample=3")
    a, b, other = (run_seed(c, p, s, 40) for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, other)
