"""A benchmark problem: the NAS-Bench-201 table seen through objectives and constraints, shared by every run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..constraints import Constraint, Objective
from ..errors import NasforgeError
from ..nb201table import NB201Table, load_table

if TYPE_CHECKING:
    from ..evaluators.table import TableEvaluator
    from ..spaces.base import Family


@dataclass
class Problem:
    """The table seen through objectives and constraints, precomputed once for all seeds.

    Derived: ``scores`` (rows × objectives, greater is better), ``feasible`` (mask), ``lo``/``hi`` (per objective over
    the feasible cells), ``test_column`` (``acc12_cifar10_test`` for ``acc12_cifar10_val``, else None); single
    objective: ``optimum``; multi-objective: ``front`` (true front rows, one per distinct point), ``front_id`` (per
    row, its point on the true front or −1) and ``true_hv``. Shared by every run: the ``family`` (nb201) and the
    table ``evaluator``, made on first use.
    """

    table: NB201Table
    objectives: list[Objective]
    constraints: list[Constraint]
    data_dir: str | None = None  # where the table was found, for the evaluator
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

    @cached_property
    def family(self) -> Family:
        """The ``nb201`` family, made once for all runs (its blueprint and canonical form are cached on it)."""
        from ..spaces import create_family

        return create_family("nb201")

    @cached_property
    def evaluator(self) -> TableEvaluator:
        """The ``table`` evaluator on this problem's table, made once for all runs."""
        from ..evaluators.table import TableEvaluator

        return TableEvaluator(self.data_dir)


def problem(objectives: Sequence[str], constraints: Sequence[str] = (), data_dir: str | None = None) -> Problem:
    """Check the objectives and constraints against the table (clear errors) and precompute what all runs share."""
    if not objectives:
        raise NasforgeError("give at least one objective, e.g. acc12_cifar10_val")
    objs = [Objective.parse(o) for o in objectives]
    return Problem(load_table(data_dir), objs, [Constraint.parse(c) for c in constraints], data_dir)
