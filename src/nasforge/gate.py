"""Checking constraints: which ones can be checked before evaluation, on which metrics, and whether any arch can pass.

A constraint on a metric the ``Pricer`` knows without evaluating (a cheap metric) is checked before an arch is
evaluated: an arch that fails it is recorded as infeasible, with its costs, and never evaluated. Any other constraint
is checked on the evaluated trial's metrics (a trial that fails one is complete but infeasible). Names that no source
declares are refused before anything runs, and so is a constraint on free metrics that no arch of the space can meet
(proved by enumerating spaces of up to ``EXHAUSTIVE_CHECK`` archs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from .constraints import Constraint, Objective
from .errors import ConstraintError
from .metrics import COST_METRICS
from .pricing import Pricer
from .space import Arch
from .spaces.base import Family
from .units import human

# spaces up to this size are enumerated to prove a constraint impossible before anything is evaluated
EXHAUSTIVE_CHECK = 50_000


class Gate:
    """The constraints of one run, split by when they can be checked."""

    def __init__(self, constraints: Sequence[Constraint], pricer: Pricer) -> None:
        self.constraints = list(constraints)
        self.pricer = pricer
        self.cheap = [c for c in self.constraints if c.metric in pricer.cheap_names]
        self.late = [c for c in self.constraints if c.metric not in pricer.cheap_names]
        self.free = [c for c in self.cheap if c.metric in pricer.free_names]

    # --- before the run -----------------------------------------------------------------------------------------
    def check_names(self, objectives: Sequence[Objective], evaluated: Sequence[str]) -> None:
        """Refuse a constraint or objective on a metric that no source produces (when the evaluator declares what it
        returns), and one on analytic costs when the run does not compute them."""
        known = set(self.pricer.cheap_names) | set(evaluated)
        for what, names in (("constraint", [c.metric for c in self.constraints]),
                            ("objective", [o.metric for o in objectives])):  # fmt: skip
            for m in names:
                if m in COST_METRICS and not self.pricer.analytic:
                    raise ConstraintError(
                        f"{what} on {m!r} needs the family's analytic costs, which this run does not compute "
                        "(analytic_costs=False); drop it or compute them"
                    )
                if evaluated and m not in known:
                    raise ConstraintError(f"unknown metric {m!r} in {what}; available: {', '.join(sorted(known))}")

    def prove_possible(self, family: Family) -> None:
        """Refuse, before evaluating anything, free constraints that no arch meets (proved by enumeration)."""
        space = family.space
        if not self.free or space.size > EXHAUSTIVE_CHECK:
            return
        names = {c.metric for c in self.free}
        best: Arch | None = None
        best_v = math.inf
        for a in space.grid():
            costs = self.pricer.only(a, names)
            self.known(costs, a)
            v = sum(k.violation(costs) / max(abs(k.value), 1e-12) for k in self.free)
            if v == 0:
                return
            if v < best_v:
                best, best_v = a, v
        assert best is not None
        c = self.pricer.only(best, names)
        what = ", ".join(f"{k.metric}={_fmt(k.metric, c.get(k.metric))}" for k in self.free)
        raise ConstraintError(
            f"no arch of the {space.size:,} in family {family.name!r} meets {' and '.join(map(str, self.free))}; "
            f"the closest, {family.describe(best)}, has {what}: relax the constraint"
        )

    # --- during the run -----------------------------------------------------------------------------------------
    def violated(self, costs: Mapping[str, float], arch: Arch | None = None) -> list[Constraint]:
        """The cheap constraints ``costs`` fail; a ``ConstraintError`` when one of their metrics is unknown (NaN)."""
        self.known(costs, arch)
        return [k for k in self.cheap if not k.ok(costs)]

    def known(self, costs: Mapping[str, float], arch: Arch | None = None) -> None:
        """Refuse to go on when a constrained metric is unknown (a tracer that could not count a module gives NaN):
        passing or failing such an arch would be a guess, and a constraint that passes what it should reject is the
        worst kind of bug for a hardware-aware search."""
        for k in self.cheap:
            v = costs.get(k.metric)
            if isinstance(v, float) and math.isnan(v):
                who = self.pricer.family.describe(arch) if arch is not None else "an arch"
                raise ConstraintError(
                    f"constraint '{k}' cannot be checked: {k.metric} of {who} is unknown (a module could not be "
                    "counted; see the warning above); drop the constraint or make the module countable"
                )

    def feasible_predicate(self) -> Callable[[Arch], bool] | None:
        """What a strategy asks before proposing an arch (None: everything is feasible)."""
        if not self.cheap:
            return None
        gate, pricer = self, self.pricer
        return lambda arch: not gate.violated(pricer.cheap(arch), arch)

    def late_ok(self, values: Mapping[str, float]) -> bool:
        return all(c.ok(values) for c in self.late)


def _fmt(metric: str, v: float | None) -> str:
    return "n/a" if v is None else human(metric, v)
