"""Run search strategies over many seeds on the NAS-Bench-201 table, side by side with peers, and summarise.

Everything runs in memory: a strategy's ``ask``/``tell`` is driven directly (no study, no database), each query is a
table lookup. Peers run on the same seeds and the same table: random search (our ``random`` strategy) and Optuna's
TPE and NSGA-II samplers (Optuna is optional; it is imported only when asked for).

How queries are counted, for everyone alike: every proposal is one query against the budget, including a repeat
(Optuna may propose a cell it has seen) and a cell that breaks a constraint. An infeasible cell never counts as found.
Our strategies get the constraints through ``set_feasible`` and propose only feasible cells; Optuna's samplers are
told the table's values of every cell they propose and, under constraints, the violation as Optuna constraints
(``Trial.set_constraint``, or ``constraints_func`` before Optuna 5: Optuna's own constrained optimisation).

Single objective: regret = best feasible value in the table − best feasible value found (oriented, so it is ≥ 0 for a
maximised or a minimised column), at each budget; the chosen cell (the best found) is also scored on the matching
test column. Multi-objective: objectives are scaled to [0, 1] over the feasible cells and the hypervolume is taken
against the worst corner (0, ..., 0); the ratio is that of the found cells' front to the true front, and front
cells found counts the distinct true-front points reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..constraints import Constraint, Objective
from ..errors import NasforgeError, UnknownNameError
from ..space import Arch
from ..spaces.nb201 import DIMS, OPS
from ..trial import Result, State
from .nb201 import NB201Table, load_table

BUDGETS = (25, 50, 100, 200, 300)
MO_BUDGETS = (100, 200, 300, 500, 1000)
PEERS = {"random": "random", "tpe": "tpe", "optuna-tpe": "tpe", "optuna-nsga2": "optuna-nsga2"}
TREATMENT = (
    "every proposal counts as one query, repeats and infeasible cells included; infeasible cells are never found; "
    "nasforge strategies get the constraints via set_feasible; Optuna samplers are told the table values of every "
    "proposed cell and, under constraints, the violation as Optuna constraints"
)


@dataclass(frozen=True)
class Contender:
    """One column of the comparison: a registered strategy with hyper-parameters, or an Optuna sampler."""

    label: str
    kind: str  # "strategy", "tpe" or "optuna-nsga2"
    name: str = ""
    hyper: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, peer: bool = False) -> Contender:
        """``"evolution"``, ``"evolution:population=20,sample=5"``; as a peer also ``"tpe"``, ``"optuna-nsga2"``."""
        name, _, rest = text.strip().partition(":")
        hyper: dict[str, Any] = {}
        for item in filter(None, (x.strip() for x in rest.split(","))):
            k, eq, v = item.partition("=")
            if not eq or not k.strip():
                raise NasforgeError(f"cannot read {item!r} in {text!r}; write name:key=value,key=value")
            hyper[k.strip()] = _value(v.strip())
        if peer:
            if name not in PEERS:
                raise UnknownNameError(f"unknown peer {name!r}; known: random, tpe, optuna-nsga2")
            name = PEERS[name]
            if name != "random":
                label = f"optuna-{name}" if name == "tpe" else name
                return cls(label, name, name, hyper)
        from ..strategies import STRATEGIES

        STRATEGIES.get(name)  # raises UnknownNameError listing the known strategies
        label = name + ("(" + ",".join(f"{k}={v}" for k, v in hyper.items()) + ")" if hyper else "")
        return cls(label, "strategy", name, hyper)


def _value(v: str) -> Any:
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


@dataclass
class Problem:
    """The table seen through objectives and constraints, precomputed once for all seeds.

    Derived: ``scores`` (rows × objectives, greater is better), ``feasible`` (mask), ``lo``/``hi`` (per objective over
    the feasible cells), ``test_column`` (``acc12_cifar10_test`` for ``acc12_cifar10_val``, else None); single
    objective: ``optimum``; multi-objective: ``front`` (true front rows, one per distinct point), ``front_id`` (per
    row, its point on the true front or −1) and ``true_hv``.
    """

    table: NB201Table
    objectives: list[Objective]
    constraints: list[Constraint]
    scores: np.ndarray = field(init=False)  # rows × objectives, greater is better
    feasible: np.ndarray = field(init=False)
    test_column: str | None = field(init=False)

    def __post_init__(self) -> None:
        t = self.table
        for m in [o.metric for o in self.objectives] + [c.metric for c in self.constraints]:
            t.column(m)  # unknown column: UnknownNameError listing the columns
        self.scores = t.scores(self.objectives)
        self.feasible = t.feasible(self.constraints)
        if not self.feasible.any():
            raise NasforgeError(f"no NAS-Bench-201 cell meets {', '.join(map(str, self.constraints))}; loosen it")
        m = self.objectives[0].metric
        self.test_column = m[: -len("_val")] + "_test" if m.endswith("_val") and m[:-4] + "_test" in t.columns else None
        ok = self.scores[self.feasible]
        self.lo, self.hi = ok.min(axis=0), ok.max(axis=0)
        if len(self.objectives) == 1:
            self.optimum = float(self.hi[0])
        else:
            front = t.pareto_front(self.objectives, constraint=self.constraints)
            self.front = front
            self.front_id = np.full(len(t), -1)
            key = {tuple(self.scores[i]): k for k, i in enumerate(front)}
            for i in np.flatnonzero(self.feasible):
                self.front_id[i] = key.get(tuple(self.scores[i]), -1)
            self.true_hv = self.hv(front)

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def hv(self, rows: np.ndarray) -> float:
        from ..pareto import hypervolume

        if len(rows) == 0:
            return 0.0
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        G = (self.scores[np.unique(rows)] - self.lo) / span
        return hypervolume(G, np.zeros(len(self.objectives)))

    def predicate(self) -> Callable[[Arch], bool] | None:
        if not self.constraints:
            return None
        t, ok = self.table, self.feasible
        return lambda arch: bool(ok[t.index_of(arch)])


def problem(objectives: Sequence[str], constraints: Sequence[str] = (), data_dir: str | None = None) -> Problem:
    """Check the objectives and constraints against the table (clear errors) and precompute what all runs share."""
    if not objectives:
        raise NasforgeError("give at least one objective, e.g. acc12_cifar10_val")
    objs = [Objective.parse(o) for o in objectives]
    return Problem(load_table(data_dir), objs, [Constraint.parse(c) for c in constraints])


# --- one seed -------------------------------------------------------------------------------------------------------
def run_seed(c: Contender, p: Problem, seed: int, budget: int) -> np.ndarray:
    """The rows queried by one contender in one seeded run, in order (shorter than ``budget`` only if it stopped)."""
    if c.kind == "strategy":
        return _run_strategy(c, p, seed, budget)
    return _run_optuna(c, p, seed, budget)


def _run_strategy(c: Contender, p: Problem, seed: int, budget: int) -> np.ndarray:
    from ..spaces import create_family
    from ..strategies import create_strategy

    strat = create_strategy(c.name, create_family("nb201").space, seed=seed, **dict(c.hyper))
    strat.set_feasible(p.predicate())
    t, names = p.table, [o.metric for o in p.objectives]
    cols = [t.columns[m] for m in names] + [t.columns[k.metric] for k in p.constraints]
    cost_names = [k.metric for k in p.constraints]
    rows: list[int] = []
    while len(rows) < budget:
        asked = strat.ask(1)
        if not asked:
            break  # the strategy has nothing more to propose
        for arch in asked:
            i = t.index_of(arch)
            rows.append(i)
            costs = {m: float(cols[len(names) + k][i]) for k, m in enumerate(cost_names)}
            if p.feasible[i]:
                metrics = {m: float(cols[k][i]) for k, m in enumerate(names)}
                res = Result(State.COMPLETE, tuple(float(s) for s in p.scores[i]), metrics, costs)
            else:
                res = Result(State.INFEASIBLE, None, {}, costs, feasible=False)
            strat.tell(arch, res)
    return np.asarray(rows[:budget], dtype=int)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise NasforgeError("Optuna peers need optuna: pip install optuna, or drop them from --peers") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _run_optuna(c: Contender, p: Problem, seed: int, budget: int) -> np.ndarray:
    optuna = _optuna()
    from optuna.distributions import CategoricalDistribution

    # Optuna 5 reads constraints set on the trial; Optuna 4 needs a constraints_func (deprecated in 5)
    modern = hasattr(optuna.trial.Trial, "set_constraint")
    kw = dict(c.hyper)
    if p.constraints and not modern:
        kw["constraints_func"] = lambda trial: trial.user_attrs["violation"]
    kind = optuna.samplers.TPESampler if c.kind == "tpe" else optuna.samplers.NSGAIISampler
    try:
        sampler = kind(seed=seed, **kw)
    except TypeError as e:
        raise NasforgeError(f"{c.label}: bad sampler settings {dict(c.hyper)}: {e}") from None
    directions = [o.direction for o in p.objectives]
    study = optuna.create_study(directions=directions, sampler=sampler)
    dists = {d: CategoricalDistribution(OPS) for d in DIMS}
    t = p.table
    cols = [t.columns[o.metric] for o in p.objectives]
    rows = []
    for _ in range(budget):
        trial = study.ask(dists)
        i = t.index_of(trial.params)
        rows.append(i)
        if p.constraints:
            v = _violation(p, i)
            if modern:
                for k, x in enumerate(v):
                    trial.set_constraint(f"c{k}", x)
            else:
                trial.set_user_attr("violation", v)
        values = [float(col[i]) for col in cols]
        study.tell(trial, values if len(values) > 1 else values[0])
    return np.asarray(rows, dtype=int)


def _violation(p: Problem, i: int) -> list[float]:
    """Per constraint, how far cell ``i`` lies beyond the limit (> 0) or within it (<= 0), as Optuna expects."""
    out = []
    for k in p.constraints:
        x = float(p.table.columns[k.metric][i])
        v = x - k.value if k.op in ("<=", "<") else k.value - x
        out.append(min(v, 0.0) if k.ok({k.metric: x}) else max(v, 1e-12))  # a strict limit met exactly is broken
    return out


# --- summaries ------------------------------------------------------------------------------------------------------
def single_curves(p: Problem, rows: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query q (1..budget): regret, chosen row (−1 while none is feasible), and whether the optimum was hit."""
    s = np.full(budget, -np.inf)
    n = len(rows)
    ok = p.feasible[rows]
    s[:n] = np.where(ok, p.scores[rows, 0], -np.inf)
    best = np.maximum.accumulate(s)
    # the chosen cell is the first one to reach the running best (a later tie does not replace it)
    prev = np.concatenate([[-np.inf], best[:-1]])
    pos = np.maximum.accumulate(np.where(s > prev, np.arange(budget), -1))
    chosen = np.where(np.isfinite(best), np.concatenate([rows, np.full(budget - n, -1)])[np.maximum(pos, 0)], -1)
    floor = float(p.lo[0])  # nothing feasible yet: as bad as the worst feasible cell
    regret = p.optimum - np.where(np.isfinite(best), best, floor)
    return regret, chosen, best >= p.optimum


def _checkpoints(budgets: Sequence[int], budget: int) -> list[int]:
    out = sorted({b for b in budgets if b <= budget} | {budget})
    return out


def summarize(p: Problem, runs: dict[str, list[np.ndarray]], budget: int, budgets: Sequence[int]) -> dict[str, Any]:
    """Figures per contender from the queried rows of each seed (see the module docstring)."""
    cps = _checkpoints(budgets, budget)
    out: dict[str, Any] = {}
    for label, seed_rows in runs.items():
        distinct = [len(np.unique(r)) for r in seed_rows]
        infeasible = [int(np.sum(~p.feasible[r])) for r in seed_rows]
        d: dict[str, Any] = {
            "distinct_queries_mean": float(np.mean(distinct)),
            "infeasible_queries_mean": float(np.mean(infeasible)),
            "queries_mean": float(np.mean([len(r) for r in seed_rows])),
        }
        if not p.multi:
            curves = [single_curves(p, r, budget) for r in seed_rows]
            R = np.stack([c[0] for c in curves])
            C = np.stack([c[1] for c in curves])
            H = np.stack([c[2] for c in curves])
            chosen_ok = [bool(p.feasible[C[s, -1]]) for s in range(len(C)) if C[s, -1] >= 0]
            d["all_feasible"] = all(chosen_ok)
            d["curve_mean"] = R.mean(0).round(5).tolist()
            d["curve_std"] = R.std(0).round(5).tolist()
            d["budgets"] = {}
            for b in cps:
                e = {"regret_mean": float(R[:, b - 1].mean()), "regret_std": float(R[:, b - 1].std())}
                e["found_optimum"] = float(H[:, b - 1].mean())
                if p.test_column:
                    tc = p.table.columns[p.test_column]
                    test = np.array([tc[i] for i in C[:, b - 1] if i >= 0])
                    e["test_mean"] = float(test.mean()) if len(test) else None
                    e["test_std"] = float(test.std()) if len(test) else None
                d["budgets"][str(b)] = e
            d["regret_per_seed"] = R[:, [b - 1 for b in cps]].round(5).tolist()
            d["chosen"] = [p.table.strings[i] if i >= 0 else None for i in C[:, -1]]
        else:
            grid = sorted({int(q) for q in np.linspace(1, budget, 40)} | set(cps))
            HV = np.zeros((len(seed_rows), len(grid)))
            found = np.zeros((len(seed_rows), len(grid)))
            for s, r in enumerate(seed_rows):
                for k, q in enumerate(grid):
                    ok = r[:q][p.feasible[r[:q]]]
                    HV[s, k] = p.hv(ok) / p.true_hv
                    ids = p.front_id[ok]
                    found[s, k] = len(np.unique(ids[ids >= 0]))
            d["grid"] = grid
            d["hv_ratio_curve_mean"] = HV.mean(0).round(6).tolist()
            d["hv_ratio_curve_std"] = HV.std(0).round(6).tolist()
            d["budgets"] = {
                str(b): {
                    "hv_ratio_mean": float(HV[:, grid.index(b)].mean()),
                    "hv_ratio_std": float(HV[:, grid.index(b)].std()),
                    "front_found_mean": float(found[:, grid.index(b)].mean()),
                    "front_found_std": float(found[:, grid.index(b)].std()),
                }
                for b in cps
            }
            # the found front of the median seed (by final hypervolume), for the plot
            med = int(np.argsort(HV[:, -1])[len(HV) // 2])
            r = seed_rows[med]
            ok = np.unique(r[p.feasible[r]])
            from .nb201 import non_dominated

            d["median_seed_front"] = ok[non_dominated(p.scores[ok], keep_ties=False)].tolist()
            d["all_feasible"] = bool(p.feasible[d["median_seed_front"]].all())
        out[label] = d
    return out


def run_benchmark(
    contenders: Sequence[Contender],
    objectives: Sequence[str],
    constraints: Sequence[str] = (),
    budget: int = 300,
    seeds: Sequence[int] = range(10),
    budgets: Sequence[int] | None = None,
    data_dir: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    seeds_for: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Run every contender on every seed and return the JSON-able result.

    ``seeds_for`` may give a contender (by label) fewer seeds, e.g. a slow peer; the result says which seeds each used.
    ``progress(label, seeds_done, seeds_total)`` is called after every seed.
    """
    if budget < 1:
        raise NasforgeError(f"the budget must be at least 1 query, got {budget}")
    p = problem(objectives, constraints, data_dir)
    objs = p.objectives
    budgets = tuple(budgets or (MO_BUDGETS if p.multi else BUDGETS))
    labels = [c.label for c in contenders]
    if len(set(labels)) != len(labels):
        raise NasforgeError(f"contenders must differ: {labels}")
    runs: dict[str, list[np.ndarray]] = {}
    timing: dict[str, float] = {}
    used: dict[str, list[int]] = {}
    for c in contenders:
        ss = list((seeds_for or {}).get(c.label, seeds))
        t0 = time.perf_counter()
        runs[c.label] = []
        for k, s in enumerate(ss):
            runs[c.label].append(run_seed(c, p, s, budget))
            if progress:
                progress(c.label, k + 1, len(ss))
        n = sum(len(r) for r in runs[c.label])
        timing[c.label] = (time.perf_counter() - t0) / max(n, 1) * 1e3
        used[c.label] = ss
    summary = summarize(p, runs, budget, budgets)
    for c in contenders:
        summary[c.label].update(
            kind=c.kind, name=c.name, hyper=dict(c.hyper), seeds=used[c.label], ms_per_trial=timing[c.label]
        )
    result: dict[str, Any] = {
        "benchmark": "nb201",
        "objectives": [f"{o.direction} {o.metric}" for o in objs],
        "constraints": [str(c) for c in p.constraints],
        "budget": budget,
        "checkpoints": _checkpoints(budgets, budget),
        "seeds": list(seeds),
        "queries": TREATMENT,
        "feasible_cells": int(p.feasible.sum()),
        "contenders": summary,
    }
    if p.multi:
        result["true_front"] = p.front.tolist()
        result["true_front_size"] = len(p.front)
        result["hypervolume_reference"] = "objectives scaled to [0, 1] over the feasible cells; reference at the worst"
    else:
        best = p.table.best(f"{objs[0].direction} {objs[0].metric}", p.constraints)
        result["optimum"] = {"value": best[objs[0].metric], "arch": best["arch"], "index": best["index"]}
        if p.test_column:
            result["optimum"]["test"] = best[p.test_column]
        result["test_column"] = p.test_column
    return result


def overhead(contender: Contender, trials: int = 1000, seed: int = 0, data_dir: str | None = None) -> float:
    """Milliseconds per trial for ``trials`` ask + tell calls in memory on the table (a trivial evaluator)."""
    p = Problem(load_table(data_dir), [Objective.parse("acc12_cifar10_val")], [])
    t0 = time.perf_counter()
    rows = run_seed(contender, p, seed, trials)
    return (time.perf_counter() - t0) / max(len(rows), 1) * 1e3


# --- output ---------------------------------------------------------------------------------------------------------
def render(result: Mapping[str, Any]):
    """The result as a ``rich`` table (mean ± std over seeds)."""
    from rich.table import Table

    multi = "true_front" in result
    cps = result["checkpoints"]
    title = f"NAS-Bench-201: {', '.join(result['objectives'])}"
    if result["constraints"]:
        title += f" subject to {', '.join(result['constraints'])} ({result['feasible_cells']} feasible cells)"
    tab = Table(title=title, caption=f"queries: {result['queries']}")
    tab.add_column("strategy")
    tab.add_column("seeds", justify="right")
    for b in cps:
        tab.add_column(f"{'HV ratio' if multi else 'regret'} @{b}", justify="right")
    last = str(cps[-1])
    if multi:
        tab.add_column(f"front cells @{last} (of {result['true_front_size']})", justify="right")
    else:
        if result.get("test_column"):
            tab.add_column(f"test acc @{last}", justify="right")
        tab.add_column(f"optimum found @{last}", justify="right")
    tab.add_column("distinct / infeasible", justify="right")
    tab.add_column("ms/trial", justify="right")
    for label, d in result["contenders"].items():
        row = [label, str(len(d["seeds"]))]
        for b in cps:
            e = d["budgets"][str(b)]
            if multi:
                row.append(f"{e['hv_ratio_mean']:.4f} ± {e['hv_ratio_std']:.4f}")
            else:
                row.append(f"{e['regret_mean']:.2f} ± {e['regret_std']:.2f}")
        e = d["budgets"][last]
        if multi:
            row.append(f"{e['front_found_mean']:.1f} ± {e['front_found_std']:.1f}")
        else:
            if result.get("test_column"):
                row.append("-" if e.get("test_mean") is None else f"{e['test_mean']:.2f} ± {e['test_std']:.2f}")
            row.append(f"{100 * e['found_optimum']:.0f}%")
        row.append(f"{d['distinct_queries_mean']:.0f} / {d['infeasible_queries_mean']:.1f}")
        row.append(f"{d['ms_per_trial']:.2f}")
        tab.add_row(*row)
    return tab


def plot(result: Mapping[str, Any], path, data_dir: str | None = None) -> None:
    """Regret vs queries with ±std bands, or (multi-objective) the found fronts vs the true front and the
    hypervolume ratio vs queries. Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contenders = result["contenders"]
    if "true_front" not in result:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        top = 0.0
        for label, d in contenders.items():
            m, s = np.asarray(d["curve_mean"]), np.asarray(d["curve_std"])
            q = np.arange(1, len(m) + 1)
            (line,) = ax.plot(q, m, label=label)
            ax.fill_between(q, np.maximum(m - s, 0), m + s, alpha=0.15, color=line.get_color())
            top = max(top, float(m[min(len(m), 20) - 1]))
        ax.set_ylim(0, 1.3 * top or 1)
        ax.set_xlabel("queries")
        ax.set_ylabel(f"regret ({result['objectives'][0]})")
        ax.set_title(f"NAS-Bench-201, {len(result['seeds'])} seeds" + "".join(f", {c}" for c in result["constraints"]))
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        t = load_table(data_dir)
        objs = [Objective.parse(o) for o in result["objectives"]][:2]
        x, y = t.column(objs[1].metric), t.column(objs[0].metric)
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        ok = t.feasible(result["constraints"])
        ax.scatter(x[ok], y[ok], s=2, c="0.8", label="feasible cells")
        f = np.asarray(result["true_front"])
        f = f[np.argsort(x[f])]
        ax.step(x[f], y[f], where="post", c="k", lw=1, label=f"true front ({len(f)})")
        for label, d in contenders.items():
            g = np.asarray(d["median_seed_front"], dtype=int)
            ax.scatter(x[g], y[g], s=14, label=f"{label} (median seed)")
        ax.set_xscale("log")
        ax.set_xlabel(objs[1].metric)
        ax.set_ylabel(objs[0].metric)
        ax.legend(fontsize=8)
        for label, d in contenders.items():
            m, s = np.asarray(d["hv_ratio_curve_mean"]), np.asarray(d["hv_ratio_curve_std"])
            (line,) = ax2.plot(d["grid"], m, label=label)
            ax2.fill_between(d["grid"], m - s, np.minimum(m + s, 1), alpha=0.15, color=line.get_color())
        ax2.set_ylim(0.9, 1.0)
        ax2.set_xlabel("queries")
        ax2.set_ylabel("hypervolume ratio")
        ax2.legend()
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: Mapping[str, Any], out_dir, name: str = "nb201", data_dir: str | None = None) -> dict[str, str]:
    """Write ``<name>.json`` and ``<name>.png`` under ``out_dir``; returns their paths."""
    import json
    from pathlib import Path

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    js, png = d / f"{name}.json", d / f"{name}.png"
    js.write_text(json.dumps(result, indent=1))
    plot(result, png, data_dir)
    return {"json": str(js), "png": str(png)}
