"""Pricing an arch: every metric known without evaluating it, from sources that declare what they produce.

Three sources, each naming its metrics up front so that a study knows, before it prices anything, which constraints
it can check early and which metrics exist at all:

- the family's analytic costs (``metrics.COST_METRICS``: params, MACs, size, memory, energy), microseconds per arch;
- the evaluator's cheap metrics (``evaluator.cheap_metric_names``: a table's latency columns), as cheap;
- cost models (``model.metrics``: a latency model declares ``("latency_ms",)``), which may take milliseconds.

The first two are *free*: an impossible constraint on them is proved by enumerating the space. A plain function
becomes a cost model with ``cost_model(fn, metrics=(...))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConstraintError, NasforgeError
from .evaluators.base import Evaluator
from .metrics import COST_METRICS
from .space import Arch
from .spaces.base import Family
from .task import Task

CostModel = Callable[[Arch], Mapping[str, float]]  # with a ``metrics`` attribute naming what it returns


@dataclass(frozen=True)
class FunctionCostModel:
    """A plain function ``fn(arch) -> {metric: value}`` with the metrics it returns declared."""

    fn: Callable[[Arch], Mapping[str, float]]
    metrics: tuple[str, ...]

    def __call__(self, arch: Arch) -> Mapping[str, float]:
        return self.fn(arch)


def cost_model(fn: Callable[[Arch], Mapping[str, float]], metrics: Sequence[str]) -> FunctionCostModel:
    """Declare what a cost function returns, so that a study can use it: ``cost_model(f, metrics=("latency_ms",))``."""
    return FunctionCostModel(fn, tuple(metrics))


def declared_metrics(model: Any) -> tuple[str, ...]:
    """The metric names a cost model declares (``metrics``; a single ``metric`` name is accepted too)."""
    names = getattr(model, "metrics", None)
    if names is None and isinstance(getattr(model, "metric", None), str):
        names = (model.metric,)
    if isinstance(names, str):
        names = (names,)
    if not names:
        what = getattr(model, "__qualname__", type(model).__name__)
        raise ConstraintError(
            f"cost model {what} does not declare the metrics it returns; give it a 'metrics' attribute or wrap it: "
            "nasforge.pricing.cost_model(fn, metrics=('latency_ms',))"
        )
    return tuple(names)


class Pricer:
    """Prices archs for one run of a study, each arch once (cached by key).

    ``free(arch)``: analytic costs and the evaluator's cheap metrics; ``cheap(arch)``: those plus the cost models;
    ``only(arch, names)``: just the sources that give ``names`` (the impossibility proof prices thousands of archs).
    """

    def __init__(
        self,
        family: Family,
        task: Task,
        evaluator: Evaluator,
        cost_models: Sequence[CostModel] = (),
        *,
        bits: int = 32,
        analytic: bool = True,
    ) -> None:
        self.family, self.task, self.evaluator, self.bits, self.analytic = family, task, evaluator, bits, analytic
        self.models = [(m, declared_metrics(m)) for m in cost_models]
        self.analytic_names: tuple[str, ...] = COST_METRICS if analytic else ()
        self.evaluator_names = tuple(evaluator.cheap_metric_names)
        self.free_names = frozenset(self.analytic_names + self.evaluator_names)
        self.cheap_names = self.free_names | {n for _, names in self.models for n in names}
        self._free: dict[str, dict[str, float]] = {}
        self._cheap: dict[str, dict[str, float]] = {}

    def _analytic(self, arch: Arch) -> dict[str, float]:
        return self._checked(self.family.costs(arch, self.task, bits=self.bits), self.analytic_names,
                             f"family {self.family.name!r}'s costs")  # fmt: skip

    def _evaluator(self, arch: Arch) -> dict[str, float]:
        return self._checked(self.evaluator.cheap_metrics(arch), self.evaluator_names,
                             f"evaluator {self.evaluator.name!r}'s cheap metrics")  # fmt: skip

    @staticmethod
    def _checked(got: Mapping[str, float], names: Iterable[str], what: str) -> dict[str, float]:
        missing = [n for n in names if n not in got]
        if missing:
            raise NasforgeError(f"{what} lack {missing[0]!r}, which they declare; fix the declaration or the source")
        return dict(got)

    def free(self, arch: Arch) -> dict[str, float]:
        c = self._free.get(arch.key)
        if c is None:
            c = self._analytic(arch) if self.analytic else {}
            if self.evaluator_names:
                c.update(self._evaluator(arch))
            self._free[arch.key] = c
        return c

    def cheap(self, arch: Arch) -> dict[str, float]:
        c = self._cheap.get(arch.key)
        if c is None:
            c = dict(self.free(arch))
            for model, names in self.models:
                c.update(self._checked(model(arch), names, f"cost model {type(model).__name__}"))
            self._cheap[arch.key] = c
        return c

    def only(self, arch: Arch, names: Iterable[str]) -> dict[str, float]:
        """The free metrics among ``names``, computing only the sources that give them."""
        want = set(names)
        if arch.key in self._free:
            return self._free[arch.key]
        c: dict[str, float] = {}
        if want & set(self.analytic_names):
            c.update(self._analytic(arch))
        if want & set(self.evaluator_names):
            c.update(self._evaluator(arch))
        return c
