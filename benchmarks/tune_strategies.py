"""Tune and compare the learning strategies on the NAS-Bench-201 table, in memory, against Optuna on the same seeds.

A throwaway harness (the official multi-seed benchmark is ``nasforge bench nb201``): it reads the table itself, drives
strategies with ask/tell, and prints mean regret at fixed budgets (single objective, optionally under a constraint on a
latency column) or the number of true-front cells found and the hypervolume ratio (two objectives).

    nice -n 10 .venv/bin/python benchmarks/tune_strategies.py single --strategies predictor,evolution,tpe --seeds 30
    nice -n 10 .venv/bin/python benchmarks/tune_strategies.py single --constraint lat_ms_fpga<=3 --seeds 30
    nice -n 10 .venv/bin/python benchmarks/tune_strategies.py multi --strategies nsga2,optuna_nsga2 --seeds 10
    nice -n 10 .venv/bin/python benchmarks/tune_strategies.py overhead --trials 1000

Strategy specs are ``name`` or ``name:key=value:key=value`` (hyper-parameters, e.g. ``evolution:population=10``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.pareto import hypervolume, pareto_mask
from nasforge.space import Arch, Space
from nasforge.strategies import create_strategy
from nasforge.trial import Result, State

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
SPACE = Space({f"e{i}": list(OPS) for i in range(6)})
BUDGETS = (25, 50, 100, 200, 300)
RESULTS = Path(__file__).parent / "results"


def load_table(data_dir: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The table as (ops index per row, 6 columns in SPACE order) and columns by name, rows in ``grid()`` order.

    Read by the library (``nasforge.nb201table``), found through ``--data-dir`` or ``NASFORGE_DATA``."""
    from nasforge.nb201table import load_table as read
    from nasforge.spaces.nb201 import DIMS, from_string

    t = read(data_dir)
    codes = np.array([[OPS.index(a[d]) for d in DIMS] for a in map(from_string, t.strings)])
    order = np.argsort(codes @ (5 ** np.arange(5, -1, -1)))  # grid order: e0 slowest, e5 fastest
    cols = {h: v[order] for h, v in t.columns.items() if h != "index"}
    return codes[order], cols


def make_parse(spec: str) -> tuple[str, dict]:
    name, *kv = spec.split(":")
    hyper = {}
    for item in kv:
        k, v = item.split("=")
        try:
            hyper[k] = json.loads(v)
        except json.JSONDecodeError:
            hyper[k] = v
    return name, hyper


def feasible_mask(cols: dict, constraint: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Feasible rows, and the constraint slack (value - limit, > 0 when infeasible)."""
    if not constraint:
        return np.ones(SPACE.size, bool), None
    metric, limit = constraint.split("<=")
    slack = cols[metric] - float(limit)
    return slack <= 0, slack


# --- drivers: each returns the sequence of queried row indices (grid order) -----------------------------------------
def run_nasforge(spec: str, seed: int, budget: int, ys: list[np.ndarray], feas: np.ndarray, batch: int = 1):
    name, hyper = make_parse(spec)
    s = create_strategy(name, SPACE, seed=seed, **hyper)
    if not feas.all():
        s.set_feasible(lambda a: bool(feas[SPACE.index(a)]))
    out = []
    while len(out) < budget:
        archs = s.ask(min(batch, budget - len(out)))
        if not archs:
            break
        for a in archs:
            i = SPACE.index(a)
            out.append(i)
            score = tuple(float(y[i]) for y in ys)
            s.tell(a, Result(State.COMPLETE, score) if feas[i] else Result(State.INFEASIBLE, None, feasible=False))
    return out, s


def run_optuna(kind: str, seed: int, budget: int, ys: list[np.ndarray], feas: np.ndarray, slack=None):
    """Optuna with its defaults. ``tpe`` and ``optuna_nsga2``: an infeasible cell is a failed trial. ``tpe_c``: TPE
    with Optuna's constraint support, told the value and the constraint slack (``slack``: > 0 means infeasible), the
    most a TPE user can do. Duplicates count as queries, as in the issue's figures."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif kind == "tpe_c":
        sampler = optuna.samplers.TPESampler(seed=seed, constraints_func=lambda t: t.user_attrs["slack"])
    elif kind == "optuna_nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        raise ValueError(kind)
    dirs = ["maximize"] * len(ys)
    study = optuna.create_study(directions=dirs, sampler=sampler)
    out = []
    for _ in range(budget):
        t = study.ask()
        row = {k: t.suggest_categorical(k, list(OPS)) for k in SPACE.names}
        i = SPACE.index(row)
        out.append(i)
        if kind == "tpe_c":
            t.set_user_attr("slack", [float(slack[i]) if slack is not None else -1.0])
            study.tell(t, float(ys[0][i]))
        elif feas[i]:
            vals = [float(y[i]) for y in ys]
            study.tell(t, vals if len(vals) > 1 else vals[0])
        else:
            study.tell(t, state=optuna.trial.TrialState.FAIL)
    return out, study


def run_one(spec: str, seed: int, budget: int, ys, feas, slack=None):
    if spec in ("tpe", "tpe_c", "optuna_nsga2"):
        return run_optuna(spec, seed, budget, ys, feas, slack)[0]
    return run_nasforge(spec, seed, budget, ys, feas)[0]


# --- experiments --------------------------------------------------------------------------------------------------
def single(args, cols) -> dict:
    y = cols[args.objective]
    feas, slack = feasible_mask(cols, args.constraint)
    best = y[feas].max()
    budget = max(args.budgets)
    report = {}
    for spec in args.strategies.split(","):
        t0 = time.time()
        regrets, distinct, exact = [], [], []
        for seed in range(args.seed0, args.seed0 + args.seeds):
            q = np.array(run_one(spec, seed, budget, [y], feas, slack))
            assert feas[q].all() or spec.startswith("tpe"), f"{spec} queried an infeasible cell"
            vals = np.where(feas[q], y[q], -np.inf)
            curve = best - np.maximum.accumulate(vals)
            regrets.append([curve[min(b, len(curve)) - 1] for b in args.budgets])
            distinct.append(len(set(q.tolist())))
            exact.append(curve[-1] == 0)
        R = np.array(regrets)
        report[spec] = {"mean": R.mean(0).tolist(), "std": R.std(0).tolist(), "distinct": float(np.mean(distinct)),
                        "exact": float(np.mean(exact)), "seconds": time.time() - t0}
        print(f"{spec:50s} " + " ".join(f"{m:5.2f}±{s:4.2f}" for m, s in zip(R.mean(0), R.std(0), strict=True))
              + f"  distinct {np.mean(distinct):.0f} exact {np.mean(exact):.2f} ({time.time() - t0:.0f}s)", flush=True)
    return report


def multi(args, cols) -> dict:
    """acc (max) vs latency (min): true-front cells found and hypervolume ratio at the final budget.

    The hypervolume is computed on objectives scaled to [0, 1] by the table's range, from the reference point at the
    table's worst corner (lowest accuracy, highest latency)."""
    names = args.objectives.split(",")
    ys = [cols[n.lstrip("-")] * (-1 if n.startswith("-") else 1) for n in names]
    F = np.stack(ys, 1)
    lo, hi = F.min(0), F.max(0)
    G = (F - lo) / (hi - lo)
    true = pareto_mask(F)
    hv_true = hypervolume(G[true], np.zeros(len(names)))
    feas = np.ones(len(F), bool)
    report = {}
    for spec in args.strategies.split(","):
        t0 = time.time()
        found, ratio = [], []
        for seed in range(args.seed0, args.seed0 + args.seeds):
            q = np.unique(run_one(spec, seed, args.budget, ys, feas))
            found.append(int(true[q].sum()))
            ratio.append(hypervolume(G[q], np.zeros(len(names))) / hv_true)
        report[spec] = {"front_found": float(np.mean(found)), "front_size": int(true.sum()),
                        "hv_ratio": float(np.mean(ratio)), "hv_ratio_min": float(np.min(ratio))}
        print(f"{spec:50s} front {np.mean(found):5.2f}/{true.sum()} (min {min(found)}) hv ratio {np.mean(ratio):.5f} "
              f"(min {np.min(ratio):.5f}) ({time.time() - t0:.0f}s)", flush=True)
    return report


def overhead(args, cols) -> dict:
    """Mean wall time of ask + tell per trial over ``--trials`` trials with a trivial (table) evaluator, in memory,
    one seed; multi-objective strategies get two objectives (accuracy and -lat_ms_pixel3)."""
    ys = [cols[args.objective]]
    feas = np.ones(SPACE.size, bool)
    report = {}
    for spec in args.strategies.split(","):
        two = spec.split(":")[0] in ("nsga2", "optuna_nsga2")
        use = ys + [-cols["lat_ms_pixel3"]] if two else ys
        run_one(spec, 0, 20, use, feas)  # warm up imports and lazy set-up
        t0 = time.perf_counter()
        run_one(spec, 0, args.trials, use, feas)
        ms = (time.perf_counter() - t0) / args.trials * 1e3
        report[spec] = {"ms_per_trial": ms, "trials": args.trials}
        print(f"{spec:50s} {ms:7.2f} ms per trial over {args.trials} trials", flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["single", "multi", "overhead"])
    p.add_argument("--strategies", default="predictor,evolution,reinforce,random,tpe")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--seed0", type=int, default=0)
    p.add_argument("--objective", default="acc12_cifar10_val")
    p.add_argument("--objectives", default="acc12_cifar10_val,-lat_ms_pixel3")
    p.add_argument("--constraint", default=None)
    p.add_argument("--budgets", default="25,50,100,200,300")
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--out", default=None, help="JSON file to write (default: benchmarks/results/tune_<mode>.json)")
    p.add_argument("--data-dir", default=None, help="folder that holds nb201/ (default: NASFORGE_DATA, ...)")
    args = p.parse_args(argv)
    args.budgets = [int(b) for b in args.budgets.split(",")]
    try:
        _, cols = load_table(args.data_dir)
    except NasforgeError as e:
        sys.exit(f"error: {e}")
    report = {"single": single, "multi": multi, "overhead": overhead}[args.mode](args, cols)
    meta = {"mode": args.mode, "argv": sys.argv[1:], "date": str(date.today()), "seeds": args.seeds,
            "budgets": args.budgets, "constraint": args.constraint, "machine": f"{os.cpu_count()} cpus, no gpu"}
    out = Path(args.out) if args.out else RESULTS / f"tune_{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": report}, indent=1))


if __name__ == "__main__":
    main()


__all__ = ["Arch", "load_table", "main"]
