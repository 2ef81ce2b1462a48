"""NAS-Bench-201 figures: our strategies against random search and Optuna, side by side on the same seeds.

1. maximize acc12_cifar10_val, 300 queries: evolution (P 20, S 5) and (P 10, S 3), reinforce, predictor, random,
   Optuna TPE; mean ± std regret at 25/50/100/200/300, test accuracy of the chosen cell, share of exact optima.
2. the same subject to lat_ms_fpga<=3 (every returned cell must be feasible).
3. acc12_cifar10_val vs lat_ms_pixel3, 1,000 queries: our nsga2 against Optuna's NSGA-II (hypervolume ratio, true-front
   cells found of 37).
4. overhead per trial at 1,000 trials on the table (a trivial evaluator), maximising acc12_cifar10_val: each strategy
   through the engine (``Study.run`` on ``memory://``, what parts 1-3 run) beside the direct ask/tell loop the runner
   used before (no study), same seed, interleaved repeats, medians of wall and CPU time; and the Optuna peers.

Our strategies run through the study engine (``nasforge.bench.runner``); the Optuna peers through ``_optuna.py``.
Each part also says, per contender, whether its per-seed figures equal those of the result file it replaces (same
seeds), so a rerun shows at once what changed.

Usage (2 shared cores: run it alone, niced; the data folder comes from --data-dir or NASFORGE_DATA):
    nice -n 10 python benchmarks/bench_nb201.py                                 # 100 seeds everywhere
    python benchmarks/bench_nb201.py --seeds 3 --only single                    # a quick look
    ... --seeds-for optuna-tpe=40,reinforce=30                                  # fewer seeds for slow contenders
Writes benchmarks/results/bench_nb201.json (all figures) and a JSON + PNG per part.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from _optuna import peer  # beside this script (the script's folder is on sys.path)

from nasforge.bench.runner import Contender, Problem, problem, run_benchmark, run_seed
from nasforge.commands.bench_render import show, write
from nasforge.errors import NasforgeError
from nasforge.strategies import STRATEGIES
from nasforge.trial import Result, State

RESULTS = Path(__file__).resolve().parent / "results"
# measured before the issue was filed, with Optuna 5.0 on the same table: mean regret at 50 / 100 / 300 queries
REFERENCE = {
    "single": {"optuna-tpe": (0.78, 0.32, 0.09), "random": (1.59, 1.20, 0.69), "evolution(P20,S5)": (1.16, 0.51, 0.16)},
    "fpga": {"optuna-tpe": (2.00, 1.03, 0.34), "evolution(P20,S5)": (2.81, 1.36, 0.30)},
    "tpe_optimum_share_at_300": 0.81,
    "optuna_nsga2_front_cells_at_1000": 10.6,
}
PARTS = {  # name: objectives, constraints, budget
    "single": (["acc12_cifar10_val"], [], 300),
    "fpga": (["acc12_cifar10_val"], ["lat_ms_fpga<=3"], 300),
    "multi": (["acc12_cifar10_val", "-lat_ms_pixel3"], [], 1000),
}


def ours() -> list[Contender]:
    cs = [
        Contender("evolution(P20,S5)", "strategy", "evolution", {"population": 20, "sample": 5}),
        Contender("evolution(P10,S3)", "strategy", "evolution", {"population": 10, "sample": 3}),
    ]
    cs += [Contender(n, "strategy", n) for n in ("reinforce", "predictor") if n in STRATEGIES]
    return [*cs, Contender("random", "strategy", "random")]


def contenders(part: str, optuna: bool) -> list[Contender]:
    if part == "multi":
        return [Contender("nsga2", "strategy", "nsga2")] + ([peer("optuna-nsga2")] if optuna else [])
    return ours() + ([peer("tpe")] if optuna else [])


# --- the direct loop the runner used before the engine, kept to time the engine against ---------------------------
def direct_rows(c: Contender, p: Problem, seed: int, budget: int) -> np.ndarray:
    """The rows a strategy queries when its ask/tell is driven directly on the table (no study, no storage)."""
    from nasforge.strategies import create_strategy

    strat = create_strategy(c.name, p.family.space, seed=seed, **dict(c.hyper))
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
    return np.asarray(rows, dtype=int)


def overhead(cs: list[Contender], trials: int, repeats: int, data_dir: str | None) -> dict:
    """Per contender, median wall and CPU ms per trial over ``repeats`` runs of ``trials`` trials (seed 0), the engine
    and the direct loop interleaved; both must query the same rows."""
    p = problem(["acc12_cifar10_val"], [], data_dir)
    out: dict = {}
    for c in cs:
        paths = {"engine": run_seed} if c.kind == "peer" else {"engine": run_seed, "direct": direct_rows}
        for f in paths.values():
            f(c, p, 0, 20)  # warm up imports and lazy set-up
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in paths}
        rows = {}
        for _ in range(repeats):
            for k, f in paths.items():
                w, u = time.perf_counter(), time.process_time()
                rows[k] = f(c, p, 0, trials)
                w, u = time.perf_counter() - w, time.process_time() - u
                times[k].append((w / len(rows[k]) * 1e3, u / len(rows[k]) * 1e3))
        e = {k: {"wall_ms": statistics.median(x[0] for x in v), "cpu_ms": statistics.median(x[1] for x in v)}
             for k, v in times.items()}  # fmt: skip
        if "direct" in e:
            e["same_rows"] = bool(np.array_equal(rows["engine"], rows["direct"]))
            e["engine_over_direct_cpu"] = e["engine"]["cpu_ms"] / e["direct"]["cpu_ms"]
            e["engine_minus_direct_cpu_ms"] = e["engine"]["cpu_ms"] - e["direct"]["cpu_ms"]
        out[c.label] = e
        print(f"overhead {c.label}: " + ", ".join(f"{k} {v['cpu_ms']:.3f} ms CPU / {v['wall_ms']:.3f} ms wall"
                                                 for k, v in e.items() if isinstance(v, dict)), flush=True)  # fmt: skip
    return {"trials": trials, "repeats": repeats, "seed": 0, "contenders": out}


# --- same numbers as the file being replaced? -----------------------------------------------------------------------
def compare(old: dict, new: dict) -> dict:
    """Per contender in both: on the seeds both ran, are the per-seed figures (and chosen cells) identical?"""
    out = {}
    for label, n in new["contenders"].items():
        o = old.get("contenders", {}).get(label)
        if o is None or o.get("hyper") != n["hyper"]:
            continue
        common = [s for s in n["seeds"] if s in o["seeds"]]
        keys = [k for k in ("regret_per_seed", "chosen", "hv_ratio_per_seed", "front_found_per_seed") if k in o]
        if not keys:  # an older file without per-seed figures: the means, if the seeds are the same
            same = o["seeds"] == n["seeds"] and o["budgets"] == n["budgets"]
            out[label] = {"seeds": len(common), "identical": same, "compared": "means (no per-seed figures)"}
            continue
        pick = {k: ([o[k][o["seeds"].index(s)] for s in common], [n[k][n["seeds"].index(s)] for s in common])
                for k in keys}  # fmt: skip
        out[label] = {"seeds": len(common), "identical": all(a == b for a, b in pick.values()), "compared": keys}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--seeds-for", default="", help="fewer seeds for some contenders: label=n,label=n")
    ap.add_argument("--only", default="single,fpga,multi,overhead", help="parts to run")
    ap.add_argument("--repeats", type=int, default=3, help="overhead: interleaved repeats per path")
    ap.add_argument("--data-dir", default=None, help="folder that holds nb201/ (default: NASFORGE_DATA, ...)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # tiny controller/surrogate tensors: thread pools only fight over the 2 shared cores
    try:
        problem(["acc12_cifar10_val"], [], a.data_dir)  # no table: one line saying where it was looked for
        return run(a)
    except NasforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(a: argparse.Namespace) -> int:
    parts = set(a.only.split(","))
    seeds = list(range(a.seeds))
    fewer = {k: seeds[: int(v)] for k, v in (x.split("=") for x in a.seeds_for.split(",") if x)}
    out: dict = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "reference": REFERENCE,
    }
    try:
        import optuna

        out["optuna"] = optuna.__version__
    except ImportError:
        out["optuna"] = None
        print("optuna is not installed: its peers are skipped", file=sys.stderr)

    def progress(label: str, done: int, total: int) -> None:
        if done == total or done % 10 == 0:
            print(f"  {label}: {done}/{total} seeds", file=sys.stderr, flush=True)

    for name, (objs, cons, budget) in PARTS.items():
        if name not in parts:
            continue
        t0 = time.perf_counter()
        res = run_benchmark(contenders(name, bool(out["optuna"])), objs, cons, budget, seeds, progress=progress,
                            seeds_for=fewer, data_dir=a.data_dir)  # fmt: skip
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        old = a.out / f"bench_nb201_{name}.json"
        res["same_as_previous"] = compare(json.loads(old.read_text()), res) if old.exists() else {}
        write(res, a.out, f"bench_nb201_{name}", a.data_dir)
        show(res)
        out[name] = _brief(res)

    if "overhead" in parts:
        cs = [*ours(), Contender("nsga2", "strategy", "nsga2")]
        if out["optuna"]:
            cs += [peer("tpe"), peer("optuna-nsga2")]
        out["overhead_1000"] = overhead(cs, 1000, a.repeats, a.data_dir)
        out["overhead_ms_per_trial_1000"] = {k: round(v["engine"]["wall_ms"], 3)
                                             for k, v in out["overhead_1000"]["contenders"].items()}  # fmt: skip
    _save(a.out, out, parts)
    _headline(out)
    return 0


def _save(folder: Path, out: dict, parts: set[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench_nb201.json"
    if path.exists():  # parts run separately accumulate; each keeps the command and date of its own run
        old = json.loads(path.read_text())
        for k in ("single", "fpga", "multi", "overhead_1000", "overhead_ms_per_trial_1000"):
            if k in old and k not in out:
                out[k] = old[k]
    for k in ("single", "fpga", "multi", "overhead_1000"):
        if k in out and (k in parts or (k == "overhead_1000" and "overhead" in parts)):
            out[k]["command"], out[k]["date"] = out["command"], out["date"]
    path.write_text(json.dumps(out, indent=1))


def _headline(out: dict) -> None:
    """Mean regret at 50 / 100 / 300 beside the issue's reference figures; fronts found at 1,000."""
    for part in ("single", "fpga"):
        if part not in out:
            continue
        print(f"{part}: mean regret at 50 / 100 / 300 (reference), optimum found by 300, test acc of the chosen cell")
        for label, e in out[part].items():
            if not isinstance(e, dict) or "300" not in e:
                continue
            ref = REFERENCE[part].get(label)
            got = " / ".join(f"{e[b]['regret_mean']:.2f}" for b in ("50", "100", "300"))
            print(
                f"  {label:20s} {got}  ({' / '.join(map(str, ref)) if ref else '-'})  "
                f"{100 * e['300']['found_optimum']:.0f}%  {e['300'].get('test_mean') or 0:.2f}  seeds {e['seeds']}"
                f"  same as before: {e.get('same_as_previous', '-')}"
            )
    if "multi" in out:
        print("multi: hypervolume ratio and true-front cells (of 37) at 1,000 queries")
        for label, e in out["multi"].items():
            if isinstance(e, dict) and "1000" in e:
                v = e["1000"]
                print(f"  {label:20s} {v['hv_ratio_mean']:.4f}  {v['front_found_mean']:.1f}  seeds {e['seeds']}"
                      f"  same as before: {e.get('same_as_previous', '-')}")  # fmt: skip


def _brief(res: dict) -> dict:
    """The headline figures of one part, per contender."""
    out: dict = {"constraints": res["constraints"], "budget": res["budget"], "wall_s": res["wall_s"]}
    for label, d in res["contenders"].items():
        e: dict = {"seeds": len(d["seeds"]), "ms_per_trial": round(d["ms_per_trial"], 3)}
        for b, v in d["budgets"].items():
            e[b] = {k: (round(x, 4) if isinstance(x, float) else x) for k, x in v.items()}
        e["all_feasible"] = d["all_feasible"]
        e["distinct_queries_mean"] = d["distinct_queries_mean"]
        e["infeasible_queries_mean"] = d["infeasible_queries_mean"]
        same = res["same_as_previous"].get(label)
        e["same_as_previous"] = None if same is None else same["identical"]
        out[label] = e
    return out


if __name__ == "__main__":
    sys.exit(main())
