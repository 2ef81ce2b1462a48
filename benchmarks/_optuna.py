"""Optuna's samplers as peers of the NAS-Bench-201 benchmark (Optuna is a benchmark extra, not a library dependency).

The reference protocol, the one the issue's reference figures were measured with: every proposal is one query against
the budget, a repeat (TPE re-proposes cells) and an infeasible cell included; the sampler is told the table's values
of every cell it proposes and, under constraints, each constraint's violation through Optuna's own constrained
optimisation (``Trial.set_constraint`` from Optuna 5, ``constraints_func`` before). An infeasible cell is never found
(the summaries read the table's feasibility, not the sampler's).

    from _optuna import peer
    run_benchmark([Contender.parse("evolution"), peer("tpe")], ["acc12_cifar10_val"])
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from nasforge.bench.runner import Contender, Problem
from nasforge.errors import NasforgeError, UnknownNameError
from nasforge.spaces.nb201 import DIMS, OPS

SAMPLERS = {"tpe": "TPESampler", "optuna-tpe": "TPESampler", "optuna-nsga2": "NSGAIISampler"}
LABELS = {"TPESampler": "optuna-tpe", "NSGAIISampler": "optuna-nsga2"}
TREATMENT = (
    "Optuna samplers are told the table values of every proposed cell and, under constraints, the violation as "
    "Optuna constraints"
)


def peer(name: str, **hyper: Any) -> Contender:
    """The peer ``tpe`` (or ``optuna-tpe``) or ``optuna-nsga2``, with sampler settings, as a benchmark contender."""
    if name not in SAMPLERS:
        raise UnknownNameError(f"unknown peer {name!r}; known: tpe, optuna-nsga2")
    sampler = SAMPLERS[name]
    label = LABELS[sampler] + ("(" + ",".join(f"{k}={v}" for k, v in hyper.items()) + ")" if hyper else "")
    run = partial(run_sampler, sampler, dict(hyper), label)
    return Contender(label, "peer", LABELS[sampler], dict(hyper), run=run, treatment=TREATMENT)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise NasforgeError("Optuna peers need optuna: pip install 'nasforge[bench]', or leave them out") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def run_sampler(sampler: str, hyper: dict[str, Any], label: str, p: Problem, seed: int, budget: int) -> np.ndarray:
    """The rows one seeded Optuna study queries in ``budget`` proposals on the table."""
    optuna = _optuna()
    from optuna.distributions import CategoricalDistribution

    # Optuna 5 reads constraints set on the trial; Optuna 4 needs a constraints_func (deprecated in 5)
    modern = hasattr(optuna.trial.Trial, "set_constraint")
    kw = dict(hyper)
    if p.constraints and not modern:
        kw["constraints_func"] = lambda trial: trial.user_attrs["violation"]
    try:
        made = getattr(optuna.samplers, sampler)(seed=seed, **kw)
    except TypeError as e:
        raise NasforgeError(f"{label}: bad sampler settings {hyper}: {e}") from None
    study = optuna.create_study(directions=[o.direction for o in p.objectives], sampler=made)
    dists = {d: CategoricalDistribution(OPS) for d in DIMS}
    t = p.table
    cols = [t.columns[o.metric] for o in p.objectives]
    rows = []
    for _ in range(budget):
        trial = study.ask(dists)
        i = t.index_of(trial.params)
        rows.append(i)
        if p.constraints:
            v = violation(p, i)
            if modern:
                for k, x in enumerate(v):
                    trial.set_constraint(f"c{k}", x)
            else:
                trial.set_user_attr("violation", v)
        values = [float(col[i]) for col in cols]
        study.tell(trial, values if len(values) > 1 else values[0])
    return np.asarray(rows, dtype=int)


def violation(p: Problem, i: int) -> list[float]:
    """Per constraint, how far cell ``i`` lies beyond the limit (> 0) or within it (<= 0), as Optuna expects."""
    out = []
    for k in p.constraints:
        x = float(p.table.columns[k.metric][i])
        v = x - k.value if k.op in ("<=", "<") else k.value - x
        out.append(min(v, 0.0) if k.ok({k.metric: x}) else max(v, 1e-12))  # a strict limit met exactly is broken
    return out
