"""The multi-seed benchmark runner and ``nasforge bench nb201``, on tiny settings.

The runner drives every strategy through the study engine; the reference it must agree with, ask for ask and tell
for tell, is the direct ask/tell loop it used before (``direct``, below).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import ROOT, require_data
from typer.testing import CliRunner

import nasforge.strategies
from nasforge.bench.runner import Contender, Problem, problem, run_benchmark, run_seed
from nasforge.bench.summary import single_curves, summarize
from nasforge.commands.bench import app
from nasforge.errors import NasforgeError, UnknownNameError
from nasforge.strategies import STRATEGIES, create_strategy
from nasforge.trial import Result, State

# small settings, so that a few dozen queries reach each strategy's learning phase quickly
HYPER = {
    "evolution": {"population": 10, "sample": 3},
    "nsga2": {"population": 10},
    "predictor": {"initial": 8, "members": 2, "steps": 30, "warm_steps": 10, "mutants": 20, "randoms": 100},
    "reinforce": {"hidden": 16, "resample": 32},
}


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
    c = Contender(name, "strategy", name, HYPER.get(name, {}))
    res = run_benchmark([c], ["acc12_cifar10_val"], ["lat_ms_fpga<=3"], budget=30, seeds=[0, 1])
    t = problem(["acc12_cifar10_val"]).table
    d = res["contenders"][name]
    assert d["all_feasible"] and all(t.row(a)["lat_ms_fpga"] <= 3 for a in d["chosen"] if a is not None)
    assert d["budgets"]["30"]["regret_mean"] >= 0
    if name != "grid":  # grid enumerates everything and leaves infeasible archs to the study
        assert d["infeasible_queries_mean"] == 0 and None not in d["chosen"]


def test_tpe_counts_every_proposal_as_a_query(monkeypatch):
    pytest.importorskip("optuna")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the Optuna adapters live with the benchmarks
    from _optuna import peer

    p = problem(["acc12_cifar10_val"], ["lat_ms_fpga<=3"])
    tpe = peer("tpe")
    rows = run_seed(tpe, p, seed=0, budget=15)
    assert len(rows) == 15 and tpe.label == "optuna-tpe" and tpe.kind == "peer"  # repeats and infeasible included
    s = summarize(p, {"tpe": [rows]}, 15, [15])["tpe"]
    assert s["all_feasible"] and s["infeasible_queries_mean"] == np.sum(~p.feasible[rows])
    assert np.array_equal(rows, run_seed(tpe, p, seed=0, budget=15))  # seeded
    res = run_benchmark([Contender.parse("random"), tpe], ["acc12_cifar10_val"], budget=10, seeds=[0])
    assert "Optuna samplers are told" in res["queries"] and res["contenders"]["optuna-tpe"]["kind"] == "peer"
    with pytest.raises(UnknownNameError, match="unknown peer"):
        peer("smac")
    sys.modules.pop("_optuna", None)


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
    assert Contender.parse("random").kind == "strategy" and Contender.parse("random").run is None
    with pytest.raises(UnknownNameError, match="unknown strategy 'bogus'"):
        Contender.parse("bogus")
    with pytest.raises(NasforgeError, match="key=value"):
        Contender.parse("evolution:population")
    with pytest.raises(NasforgeError, match="a peer a run function"):
        Contender("mine", "peer")


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


# --- the engine against the direct loop ----------------------------------------------------------------------------
def direct(name: str, hyper: dict, p: Problem, seed: int, budget: int):
    """The reference: the direct ask/tell loop the runner used before it ran studies (no study, no storage).
    Returns the rows queried and what the strategy was told, in order."""
    strat = create_strategy(name, p.family.space, seed=seed, **hyper)
    t, ok = p.table, p.feasible
    strat.set_feasible((lambda arch: bool(ok[t.index_of(arch)])) if p.constraints else None)
    rows: list[int] = []
    while len(rows) < budget:
        asked = strat.ask(1)
        if not asked:
            break
        for arch in asked:
            i = t.index_of(arch)
            rows.append(i)
            costs = {k.metric: float(t.columns[k.metric][i]) for k in p.constraints}
            if ok[i]:
                metrics = {o.metric: float(t.columns[o.metric][i]) for o in p.objectives}
                strat.tell(arch, Result(State.COMPLETE, tuple(float(s) for s in p.scores[i]), metrics, costs))
            else:
                strat.tell(arch, Result(State.INFEASIBLE, None, {}, costs, feasible=False))
    return np.asarray(rows, dtype=int), _told(strat)


def _told(strat) -> list[tuple]:
    """What a strategy reads of its tells (``score``, ``ok``, ``state``), per arch in order."""
    return [(a.key, r.state, r.score, r.ok) for a, r in strat.history]


CASES = [  # objectives, constraints
    (["acc12_cifar10_val"], []),
    (["acc12_cifar10_val"], ["lat_ms_fpga<=3"]),
    (["acc12_cifar10_val", "-lat_ms_pixel3"], []),
]


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_engine_gives_the_same_asks_and_tells_as_the_direct_loop(name, monkeypatch):
    made = []

    def spy(*args, **kwargs):
        made.append(create_strategy(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(nasforge.strategies, "create_strategy", spy)  # the runner makes its strategy through it
    c = Contender(name, "strategy", name, HYPER.get(name, {}))
    for objectives, constraints in CASES:
        if len(objectives) > 1 and STRATEGIES.get(name).max_objectives == 1:
            continue
        p = problem(objectives, constraints)
        for seed in (0, 7):
            rows, told = direct(name, dict(c.hyper), p, seed, 24)
            got = run_seed(c, p, seed, 24)
            assert np.array_equal(got, rows), (objectives, constraints, seed)
            assert _told(made[-1]) == told  # same results told, in the same order
            assert len(rows) == 24 and (not constraints or name == "grid" or p.feasible[rows].all())


def test_cli_table_piped_keeps_whole_headers(tmp_path):
    long = "evolution:population=10,sample=3"
    args = ["nb201", "-s", "random", "-s", long, "--budget", "30", "--seeds", "1", "--out", str(tmp_path)]
    r = CliRunner().invoke(app, [*args, "-c", "lat_ms_fpga<=3"])  # output captured: not a terminal
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    header = next(line for line in lines if "strategy" in line and "seeds" in line)
    for h in ("regret @25", "regret @30", "test acc @30", "optimum found @30", "distinct / infeasible", "ms/trial"):
        assert h in header  # every header whole, on one line
    assert any("evolution(population=10,sample=3)" in line for line in lines)
    assert len(header) > 80  # wider than the 80 columns a pipe gets by default


def test_single_objective_strategy_refused_on_two_objectives_before_any_run(tmp_path):
    args = ["nb201", "-s", "random", "-s", "evolution", "--objectives", "acc12_cifar10_val,-lat_ms_pixel3"]
    r = CliRunner().invoke(app, [*args, "--budget", "5", "--seeds", "1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "strategy 'evolution' optimises 1 objective, not 2" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "nb201.json").exists()
