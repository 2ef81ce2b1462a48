"""Figures of a multi-seed benchmark from the rows each seeded run queried, in order (see ``runner``'s docstring).

Single objective: regret = best feasible value in the table − best feasible value found (oriented, so it is ≥ 0 for a
maximised or a minimised column), at each query; the chosen cell (the first to reach the best found) is also scored on
the matching test column. Multi-objective: objectives are scaled to [0, 1] over the feasible cells and the
hypervolume is taken against the worst corner (0, ..., 0); the ratio is that of the found cells' front to the true
front, and front cells found counts the distinct true-front points reached. An infeasible cell never counts as found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..pareto import non_dominated

if TYPE_CHECKING:
    from .problem import Problem


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


def checkpoints(budgets: Sequence[int], budget: int) -> list[int]:
    """The budgets reported: those within ``budget``, and ``budget`` itself."""
    return sorted({b for b in budgets if b <= budget} | {budget})


def summarize(p: Problem, runs: dict[str, list[np.ndarray]], budget: int, budgets: Sequence[int]) -> dict[str, Any]:
    """Figures per contender (label) from the queried rows of each of its seeds."""
    cps = checkpoints(budgets, budget)
    out: dict[str, Any] = {}
    for label, seed_rows in runs.items():
        d: dict[str, Any] = {
            "distinct_queries_mean": float(np.mean([len(np.unique(r)) for r in seed_rows])),
            "infeasible_queries_mean": float(np.mean([int(np.sum(~p.feasible[r])) for r in seed_rows])),
            "queries_mean": float(np.mean([len(r) for r in seed_rows])),
        }
        d.update(_multi(p, seed_rows, budget, cps) if p.multi else _single(p, seed_rows, budget, cps))
        out[label] = d
    return out


def _single(p: Problem, seed_rows: list[np.ndarray], budget: int, cps: list[int]) -> dict[str, Any]:
    curves = [single_curves(p, r, budget) for r in seed_rows]
    R = np.stack([c[0] for c in curves])
    C = np.stack([c[1] for c in curves])
    H = np.stack([c[2] for c in curves])
    d: dict[str, Any] = {
        "all_feasible": all(bool(p.feasible[C[s, -1]]) for s in range(len(C)) if C[s, -1] >= 0),
        "curve_mean": R.mean(0).round(5).tolist(),
        "curve_std": R.std(0).round(5).tolist(),
        "budgets": {},
    }
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
    return d


def _multi(p: Problem, seed_rows: list[np.ndarray], budget: int, cps: list[int]) -> dict[str, Any]:
    grid = sorted({int(q) for q in np.linspace(1, budget, 40)} | set(cps))
    HV = np.zeros((len(seed_rows), len(grid)))
    found = np.zeros((len(seed_rows), len(grid)))
    for s, r in enumerate(seed_rows):
        for k, q in enumerate(grid):
            ok = r[:q][p.feasible[r[:q]]]
            HV[s, k] = p.hv(ok) / p.true_hv
            ids = p.front_id[ok]
            found[s, k] = len(np.unique(ids[ids >= 0]))
    d: dict[str, Any] = {
        "grid": grid,
        "hv_ratio_curve_mean": HV.mean(0).round(6).tolist(),
        "hv_ratio_curve_std": HV.std(0).round(6).tolist(),
        "budgets": {
            str(b): {
                "hv_ratio_mean": float(HV[:, grid.index(b)].mean()),
                "hv_ratio_std": float(HV[:, grid.index(b)].std()),
                "front_found_mean": float(found[:, grid.index(b)].mean()),
                "front_found_std": float(found[:, grid.index(b)].std()),
            }
            for b in cps
        },
        "hv_ratio_per_seed": HV[:, [grid.index(b) for b in cps]].round(6).tolist(),
        "front_found_per_seed": found[:, [grid.index(b) for b in cps]].astype(int).tolist(),
    }
    # the found front of the median seed (by final hypervolume), for the plot
    r = seed_rows[int(np.argsort(HV[:, -1])[len(HV) // 2])]
    ok = np.unique(r[p.feasible[r]])
    d["median_seed_front"] = ok[non_dominated(p.scores[ok], keep_ties=False)].tolist()
    d["all_feasible"] = bool(p.feasible[d["median_seed_front"]].all())
    return d
