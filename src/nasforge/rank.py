"""How well does a cheap evaluator rank architectures? Score N sampled archs with it and with a reference.

``rank(family, evaluator, reference, n)`` samples ``n`` distinct networks of the family (seeded; two archs that build
the same network count once, by ``family.network_key``), scores each with the evaluator (any registered one: a
zero-cost proxy, ``hypernet``, ``inherit``, ``supernet``) under its default objective's metric, and with the
reference (the NAS-Bench-201 table's column for ``nb201``, or training from scratch), and reports Spearman's ρ and
Kendall's τ (scipy.stats) with the time per arch of each.

An arch the evaluator cannot score (``TrialFailed``: NASWOT's singular kernel on a network whose output ignores its
input, whose log|det K| is −∞) is ranked below every scored arch, tied with the other failures, as the formula would
rank it; an arch the reference cannot score is left out of the correlations. Both are counted in the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .constraints import Objective
from .errors import NasforgeError, TrialFailed
from .evaluators.base import Context, Evaluator
from .space import Arch
from .spaces.base import Family

__all__ = ["RankResult", "Reference", "rank", "sample_distinct", "table_reference", "train_reference"]


@dataclass
class Reference:
    """What the cheap evaluator is judged against: an evaluator and the metric of it that is the truth."""

    evaluator: Evaluator
    metric: str
    label: str


def table_reference(family: Family, column: str = "acc12_cifar10_val", data_dir: str | None = None) -> Reference:
    """The NAS-Bench-201 table's ``column`` (only for the ``nb201`` family); one line naming the columns if unknown."""
    from .evaluators.table import TableEvaluator

    if family.name != "nb201":
        raise NasforgeError(f"--reference table needs the nb201 family (the NAS-Bench-201 table), not {family.name!r}; "
                            "use --reference train")  # fmt: skip
    ev = TableEvaluator(data_dir=data_dir)
    ev.table.column(column)  # UnknownNameError listing the columns
    if not column.startswith("acc"):
        raise NasforgeError(f"--column {column!r} is not an accuracy column of the nb201 table (acc12_...)")
    return Reference(ev, column, f"nb201 table {column}")


def train_reference(family: Family, dataset: Any = "mnist", **settings: Any) -> Reference:
    """Training from scratch (``TrainEvaluator`` with ``settings``), judged by its best ``val_acc``."""
    from .evaluators.train import TrainEvaluator

    ev = TrainEvaluator(family, dataset, save_weights=False, **settings)
    return Reference(ev, "val_acc", f"trained val_acc ({ev.epochs} epoch{'s' * (ev.epochs != 1)})")


def sample_distinct(family: Family, n: int, seed: int = 0) -> list[Arch]:
    """``n`` archs of distinct networks, drawn with ``numpy.random.default_rng(seed)`` (same seed, same archs)."""
    rng = np.random.default_rng(seed)
    seen: dict[str, Arch] = {}
    tries = 0
    while len(seen) < n:
        a = family.space.sample(rng)
        seen.setdefault(family.network_key(a), family.canonical(a))
        tries += 1
        if tries > 50 * n + 1000:
            raise NasforgeError(f"family {family.name!r} has fewer than {n} distinct networks ({len(seen)} found); "
                                "ask for fewer --archs")  # fmt: skip
    return list(seen.values())


@dataclass
class RankResult:
    """Per-arch rows (arch, key, describe, score, reference, times, error) and the correlations over them."""

    evaluator: str
    metric: str
    reference: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    spearman: float = math.nan
    spearman_p: float = math.nan
    kendall: float = math.nan
    kendall_p: float = math.nan

    @property
    def n(self) -> int:
        """Archs in the correlations (those with a reference value)."""
        return sum(r["reference"] is not None for r in self.rows)

    @property
    def failed(self) -> int:
        return sum(r["score"] is None for r in self.rows)

    def mean_time(self, which: str) -> float:
        ts = [r[f"{which}_time_s"] for r in self.rows]
        return float(np.mean(ts)) if ts else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator, "metric": self.metric, "reference": self.reference, "archs": self.n,
            "failed": self.failed, "spearman": self.spearman, "spearman_p": self.spearman_p, "kendall": self.kendall,
            "kendall_p": self.kendall_p, "eval_time_s": self.mean_time("eval"), "ref_time_s": self.mean_time("ref"),
            "rows": self.rows,
        }  # fmt: skip


def objective_of(evaluator: Evaluator, metric: str | None = None) -> Objective:
    """The objective the evaluator is ranked by: ``metric`` (maximised) or its first default objective."""
    if metric:
        return Objective.parse(metric)
    if not evaluator.default_objectives:
        raise NasforgeError(f"evaluator {evaluator.name!r} declares no objective; name the metric to rank by")
    return Objective.parse(evaluator.default_objectives[0])


def correlations(scores: list[float | None], refs: list[float | None]) -> tuple[float, float, float, float]:
    """(Spearman ρ, p, Kendall τ, p) over pairs with a reference; a missing score ranks below every score."""
    from scipy import stats

    pairs = [(s, r) for s, r in zip(scores, refs, strict=True) if r is not None]
    if len(pairs) < 2:
        return (math.nan,) * 4
    finite = [s for s, _ in pairs if s is not None]
    floor = (min(finite) - 1.0) if finite else 0.0
    s = np.array([floor if v is None else v for v, _ in pairs], dtype=float)
    r = np.array([v for _, v in pairs], dtype=float)
    if np.ptp(s) == 0 or np.ptp(r) == 0:  # a constant ranking has no correlation (scipy would warn and give NaN)
        return (math.nan,) * 4
    rho = stats.spearmanr(s, r)
    tau = stats.kendalltau(s, r)
    return float(rho.statistic), float(rho.pvalue), float(tau.statistic), float(tau.pvalue)


def _timed(ev: Evaluator, arch: Arch, seed: int, metric: str) -> tuple[float | None, float, str | None]:
    t0 = time.perf_counter()
    try:
        value: float | None = float(ev(arch, Context(seed=seed)).get(metric, math.nan))
        error = None
    except TrialFailed as e:
        value, error = None, str(e)
    if value is not None and not math.isfinite(value):
        value, error = None, f"{metric} missing or not finite"
    return value, time.perf_counter() - t0, error


def rank(family: Family, evaluator: Evaluator, reference: Reference, n: int, *, seed: int = 0,
         metric: str | None = None, progress: Callable[[int, int], None] | None = None) -> RankResult:
    """Score ``n`` distinct sampled archs with ``evaluator`` and ``reference``; every evaluation gets ``seed``."""
    if n < 2:
        raise NasforgeError(f"--archs must be at least 2 to rank anything, got {n}")
    obj = objective_of(evaluator, metric)
    if evaluator.metrics and obj.metric not in evaluator.metrics:
        raise NasforgeError(f"evaluator {evaluator.name!r} has no metric {obj.metric!r}; it gives "
                            f"{', '.join(evaluator.metrics)}")  # fmt: skip
    archs = sample_distinct(family, n, seed)
    res = RankResult(evaluator.name or type(evaluator).__name__, obj.metric, reference.label)
    for i, a in enumerate(archs):
        score, et, err = _timed(evaluator, a, seed, obj.metric)
        ref, rt, rerr = _timed(reference.evaluator, a, seed, reference.metric)
        res.rows.append({
            "arch": dict(a), "key": a.key, "describe": family.describe(a),
            "score": None if score is None else (score if obj.direction == "maximize" else -score),
            "reference": ref, "eval_time_s": et, "ref_time_s": rt, "error": err or rerr,
        })  # fmt: skip
        if progress is not None:
            progress(i + 1, len(archs))
    res.spearman, res.spearman_p, res.kendall, res.kendall_p = correlations(
        [r["score"] for r in res.rows], [r["reference"] for r in res.rows])
    return res
