"""Run search strategies over many seeds on the NAS-Bench-201 table, side by side with peers, and summarise.

Each seeded run of a registered strategy is one study on an in-memory store (``memory://``), run by the same engine as
``nasforge search``: ``Study.run`` with the ``table`` evaluator, no analytic costs (the table knows the latencies) and
the constraints as study constraints. A constraint on a latency column is checked before a query, so an infeasible
cell is never queried and the strategy, told the constraint through ``set_feasible``, proposes feasible cells only; a
constraint on an accuracy column is checked after the query (the trial is complete but infeasible). The rows queried,
in trial order, are what the summaries (``summary.py``) read.

Peers are callables ``run(problem, seed, budget) -> rows`` given with a ``Contender`` (the Optuna samplers live with
the benchmark scripts, in ``benchmarks/``, since Optuna is not a dependency of the library).

How queries are counted, for everyone alike: every proposal is one query against the budget, including a repeat (a
peer may propose a cell it has seen) and a cell that breaks a constraint. An infeasible cell never counts as found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constraints import Objective
from ..errors import NasforgeError
from ..nb201table import load_table
from ..textio import parse_kv
from .problem import Problem, problem
from .summary import checkpoints, summarize

if TYPE_CHECKING:
    from ..study import Study

BUDGETS = (25, 50, 100, 200, 300)
MO_BUDGETS = (100, 200, 300, 500, 1000)
TREATMENT = (
    "every proposal counts as one query, repeats and infeasible cells included; infeasible cells are never found; "
    "nasforge strategies run through Study.run (memory://, table evaluator) with the constraints as study constraints, "
    "so they get them via set_feasible"
)
Rows = np.ndarray  # the table rows (NAS-Bench-201 indices) one run queried, in order


@dataclass(frozen=True)
class Contender:
    """One column of the comparison: a registered strategy with hyper-parameters (``kind="strategy"``), or a peer
    (``kind="peer"``) whose ``run(problem, seed, budget)`` returns the rows it queried; ``treatment`` says how the
    peer is told results and constraints (recorded with the figures)."""

    label: str
    kind: str = "strategy"
    name: str = ""
    hyper: Mapping[str, Any] = field(default_factory=dict)
    run: Callable[[Problem, int, int], Rows] | None = field(default=None, compare=False, repr=False)
    treatment: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("strategy", "peer") or (self.kind == "peer") != (self.run is not None):
            raise NasforgeError(f"contender {self.label!r}: a strategy has a name, a peer a run function")

    @classmethod
    def parse(cls, text: str) -> Contender:
        """A registered strategy: ``"evolution"``, ``"evolution:population=20,sample=5"``."""
        name, _, rest = text.strip().partition(":")
        hyper = parse_kv([x.strip() for x in rest.split(",") if x.strip()], f"strategy {name!r}")
        if any(not k for k in hyper):
            raise NasforgeError(f"cannot read {text!r}; write name:key=value,key=value")
        from ..strategies import STRATEGIES

        STRATEGIES.get(name)  # raises UnknownNameError listing the known strategies
        label = name + ("(" + ",".join(f"{k}={v}" for k, v in hyper.items()) + ")" if hyper else "")
        return cls(label, "strategy", name, hyper)


# --- one seed -------------------------------------------------------------------------------------------------------
def run_seed(c: Contender, p: Problem, seed: int, budget: int) -> Rows:
    """The rows queried by one contender in one seeded run, in order (shorter than ``budget`` only if it stopped)."""
    if c.run is not None:
        return np.asarray(c.run(p, seed, budget), dtype=int)[:budget]
    return np.asarray([p.table.index_of(t.arch) for t in study_run(c, p, seed, budget).trials()], dtype=int)


def study_run(c: Contender, p: Problem, seed: int, budget: int) -> Study:
    """One seeded run of a registered strategy: a study on a fresh ``memory://`` store, run by ``Study.run``."""
    from ..strategies import create_strategy
    from ..study import Study

    strategy = create_strategy(c.name, p.family.space, seed=seed, **dict(c.hyper))
    study = Study.open("nb201", storage="memory://")  # every memory:// store is a new, empty database
    return study.run(
        p.family, strategy, p.evaluator, constraints=p.constraints, objectives=p.objectives, budget=budget,
        seed=seed, analytic_costs=False,
    )  # fmt: skip


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
    labels = [c.label for c in contenders]
    if len(set(labels)) != len(labels):
        raise NasforgeError(f"contenders must differ: {labels}")
    p = problem(objectives, constraints, data_dir)
    _check_objectives(contenders, p)
    budgets = tuple(budgets or (MO_BUDGETS if p.multi else BUDGETS))
    runs: dict[str, list[Rows]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for c in contenders:
        ss = list((seeds_for or {}).get(c.label, seeds))
        t0 = time.perf_counter()
        runs[c.label] = []
        for k, s in enumerate(ss):
            runs[c.label].append(run_seed(c, p, s, budget))
            if progress:
                progress(c.label, k + 1, len(ss))
        ms = (time.perf_counter() - t0) / max(sum(len(r) for r in runs[c.label]), 1) * 1e3
        extra[c.label] = {"kind": c.kind, "name": c.name, "hyper": dict(c.hyper), "seeds": ss, "ms_per_trial": ms}
    summary = summarize(p, runs, budget, budgets)
    for label, e in extra.items():
        summary[label].update(e)
    treatment = [TREATMENT] + list(dict.fromkeys(f"{c.label}: {c.treatment}" for c in contenders if c.treatment))
    result: dict[str, Any] = {
        "benchmark": "nb201",
        "objectives": [f"{o.direction} {o.metric}" for o in p.objectives],
        "constraints": [str(c) for c in p.constraints],
        "budget": budget,
        "checkpoints": checkpoints(budgets, budget),
        "seeds": list(seeds),
        "queries": "; ".join(treatment),
        "feasible_cells": int(p.feasible.sum()),
        "contenders": summary,
    }
    result.update(_reference(p))
    return result


def _check_objectives(contenders: Sequence[Contender], p: Problem) -> None:
    """Refuse, before any run, a strategy that optimises fewer objectives than the problem has (the study would
    refuse it at its first seed, after the contenders before it had run)."""
    from ..strategies import STRATEGIES

    for c in contenders:
        most = STRATEGIES.get(c.name).max_objectives if c.kind == "strategy" else None
        if most is not None and len(p.objectives) > most:
            raise NasforgeError(
                f"strategy {c.name!r} optimises {most} objective{'s' if most != 1 else ''}, not {len(p.objectives)}; "
                "use a multi-objective strategy such as nsga2 (or random, grid)"
            )


def _reference(p: Problem) -> dict[str, Any]:
    """What the figures are measured against: the true front (multi-objective) or the optimum."""
    if p.multi:
        return {
            "true_front": p.front.tolist(),
            "true_front_size": len(p.front),
            "hypervolume_reference": "objectives scaled to [0, 1] over the feasible cells; reference at the worst",
        }
    o = p.objectives[0]
    best = p.table.best(f"{o.direction} {o.metric}", p.constraints)
    optimum = {"value": best[o.metric], "arch": best["arch"], "index": best["index"]}
    if p.test_column:
        optimum["test"] = best[p.test_column]
    return {"optimum": optimum, "test_column": p.test_column}


def overhead(contender: Contender, trials: int = 1000, seed: int = 0, data_dir: str | None = None) -> float:
    """Milliseconds per trial (wall) of one run of ``trials`` trials maximising ``acc12_cifar10_val``: for a strategy,
    ask, canonical form, table lookup, recording in ``memory://`` and tell, through ``Study.run``."""
    p = Problem(load_table(data_dir), [Objective.parse("acc12_cifar10_val")], [], data_dir)
    t0 = time.perf_counter()
    rows = run_seed(contender, p, seed, trials)
    return (time.perf_counter() - t0) / max(len(rows), 1) * 1e3
