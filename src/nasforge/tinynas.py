"""TinyNAS search-space optimisation (MCUNet, Lin et al., 2020): choose the sub-space before searching it.

For each value combination of the ``axes`` dimensions (by default MCUNet's width multiplier × input resolution), sample
``n`` archs, keep those meeting the memory limits (any constraints on cheap cost metrics, e.g. ``"sram<=256KiB"`` and
``"flash<=1MiB"``), and rank the sub-spaces by the MACs of their feasible archs. MCUNet's argument: within a family,
more computation under the same memory means more capacity and higher accuracy, so the best sub-space is the one whose
feasible archs' MACs CDF lies furthest right. The score is the mean feasible MACs (MCUNet's choice); ``"median"`` or a
percentile ``"p90"`` may be asked instead. A sub-space with fewer than ``min_feasible`` feasible archs is not ranked
and is reported as such.

Every sub-space sees the same ``n`` draws of the other dimensions (common random numbers, seeded by ``seed``), so that
two sub-spaces differ only by their axes values and the ranking does not depend on sampling luck.

It plans a search before it starts, so it stands with the strategies, above the families whose spaces it splits and
the constraints it checks; it needs only the analytic counts of ``cost/``, never a latency model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .constraints import Constraint
from .cost.counts import costs
from .errors import ConstraintError, NasforgeError, SpaceError
from .metrics import COST_METRICS

if TYPE_CHECKING:
    from .spaces.base import Family
    from .task import Task


@dataclass(frozen=True)
class SubSpace:
    """One sub-space: its fixed axes values, how many archs were drawn, and the sorted MACs of the feasible ones."""

    values: Mapping[str, Any]
    sampled: int
    macs: np.ndarray = field(repr=False)
    score: float = math.nan  # NaN: too few feasible archs to rank
    index: int = 0  # position in the grid of sub-spaces

    @property
    def feasible(self) -> int:
        return int(self.macs.size)

    @property
    def fraction(self) -> float:
        return self.feasible / self.sampled if self.sampled else 0.0

    @property
    def ranked(self) -> bool:
        return not math.isnan(self.score)

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())

    def row(self) -> dict[str, Any]:
        m = self.macs
        return {
            **dict(self.values),
            "feasible": self.feasible,
            "sampled": self.sampled,
            "fraction": self.fraction,
            "score": None if not self.ranked else self.score,
            "mean_macs": float(m.mean()) if m.size else None,
            "median_macs": float(np.median(m)) if m.size else None,
            "max_macs": int(m.max()) if m.size else None,
        }


@dataclass(frozen=True)
class TinyNASResult:
    """Sub-spaces ranked best first (ranked by score, then the unranked ones in grid order)."""

    subspaces: list[SubSpace]
    constraints: list[str]
    score: str
    n: int
    seed: int

    @property
    def best(self) -> SubSpace | None:
        """The chosen sub-space, or None when no sub-space has enough feasible archs."""
        return self.subspaces[0] if self.subspaces and self.subspaces[0].ranked else None

    def table(self) -> list[dict[str, Any]]:
        return [{"rank": i + 1 if s.ranked else None, **s.row()} for i, s in enumerate(self.subspaces)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "constraints": self.constraints,
            "score": self.score,
            "n": self.n,
            "seed": self.seed,
            "best": dict(self.best.values) if self.best else None,
            "table": self.table(),
        }

    def plot(self, path: str | Path, title: str = "") -> Path:
        """Write the CDF of feasible MACs per sub-space (MCUNet's Figure 3) to a PNG; the best is drawn thick."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        best = self.best
        cmap = plt.get_cmap("tab20")
        shown = sorted((s for s in self.subspaces if s.feasible), key=lambda s: s.index)
        for s in shown:
            x = s.macs / 1e6
            y = np.arange(1, x.size + 1) / x.size
            lw = 3.0 if s is best else 1.2
            ax.step(x, y, where="post", lw=lw, color=cmap(s.index % 20),
                    label=f"{s.label()} ({100 * s.fraction:.0f}% feasible)")
        empty = [s.label() for s in self.subspaces if not s.feasible]
        ax.set_xlabel("MACs of feasible archs (M)")
        ax.set_ylabel("cumulative fraction")
        ax.set_title(title or f"TinyNAS: {', '.join(self.constraints)}; best: {best.label() if best else 'none'}")
        if shown:
            ax.legend(fontsize=6, loc="lower right")
        if empty:
            ax.text(0.01, 0.99, "no feasible arch:\n" + "\n".join(empty), transform=ax.transAxes, fontsize=6,
                    va="top")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(p, dpi=120)
        plt.close(fig)
        return p


def _scorer(score: str) -> Callable[[np.ndarray], float]:
    if score == "mean":
        return lambda m: float(m.mean())
    if score == "median":
        return lambda m: float(np.median(m))
    if score.startswith("p"):
        try:
            q = float(score[1:])
        except ValueError:
            q = -1.0
        if 0 <= q <= 100:
            return lambda m: float(np.percentile(m, q))
    raise NasforgeError(f"unknown TinyNAS score {score!r}; use 'mean', 'median' or a percentile such as 'p90'")


def optimise_space(
    family: Family,
    task: Task,
    constraints: Sequence[str | Constraint],
    *,
    axes: Sequence[str] = ("width", "resolution"),
    n: int = 1000,
    seed: int = 0,
    score: str = "mean",
    min_feasible: int = 1,
    bits: int = 32,
    act_bits: int = 32,
    mcu_bits: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> TinyNASResult:
    """Rank the sub-spaces of ``family`` along ``axes`` by the MACs of their archs that meet ``constraints``.

    ``constraints`` must be on the analytic cost metrics (``COST_METRICS``: sram, flash, peak_mem, size, ...),
    evaluated with ``costs(layers, bits, act_bits, mcu_bits)``. ``progress(done, total)`` is called after each arch.
    """
    cons = [Constraint.parse(c) for c in constraints]
    if not cons:
        raise ConstraintError("TinyNAS needs at least one limit, e.g. 'sram<=256KiB' and 'flash<=1MiB'")
    bad = [c.metric for c in cons if c.metric not in COST_METRICS]
    if bad:
        raise ConstraintError(f"TinyNAS limits must be on cost metrics ({', '.join(COST_METRICS)}), not {bad}")
    if n < 1 or min_feasible < 1:
        raise NasforgeError(f"TinyNAS needs n >= 1 and min_feasible >= 1, got n={n}, min_feasible={min_feasible}")
    scorer = _scorer(score)
    space = family.space
    missing = [a for a in axes if a not in space.dims]
    if missing or not axes:
        raise SpaceError(f"family {family.name!r} has no dimension {missing or list(axes)} to split on; "
                         f"its dimensions start {list(space.names)[:6]}")
    combos = list(itertools.product(*(space.dims[a].values for a in axes)))
    total, done = len(combos) * n, 0
    subs: list[SubSpace] = []
    for combo in combos:
        fixed = dict(zip(axes, combo, strict=True))
        rng = np.random.default_rng(seed)  # the same draws for every sub-space: common random numbers
        feasible: list[int] = []
        for _ in range(n):
            arch = space.sample(rng).replace(**fixed)
            c = costs(family.layers(arch, task), bits=bits, act_bits=act_bits, mcu_bits=mcu_bits)
            if all(con.ok(c) for con in cons):
                feasible.append(int(c["macs"]))
            done += 1
            if progress is not None:
                progress(done, total)
        macs = np.sort(np.asarray(feasible, dtype=np.int64))
        s = scorer(macs) if macs.size >= min_feasible else math.nan
        subs.append(SubSpace(fixed, n, macs, s, len(subs)))
    order = sorted(range(len(subs)), key=lambda i: (not subs[i].ranked, -(subs[i].score if subs[i].ranked else 0), i))
    return TinyNASResult([subs[i] for i in order], [str(c) for c in cons], score, n, seed)
