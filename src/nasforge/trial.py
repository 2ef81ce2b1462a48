"""Trials as plain data: their states, the recorded ``Trial``, and the ``Result`` a strategy is told. No torch.

``Trial.result(objectives)`` is the one place that turns a trial into a ``Result``: the study calls it when a trial
finishes and when a resumed study replays its recorded trials, so that a strategy learns the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from .space import Arch

if TYPE_CHECKING:
    from .constraints import Objective


class State(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    INFEASIBLE = "infeasible"  # a cheap constraint failed: recorded with its costs, never trained
    PRUNED = "pruned"


@dataclass(frozen=True)
class Result:
    """What a strategy learns about one arch.

    ``score`` holds the objectives oriented so that *greater is better* (a minimised metric is negated), in the order
    the study lists them; it is ``None`` when the trial did not complete. ``feasible`` is False when any constraint
    (cheap or measured) failed.

    A trial stopped early by the study's pruner has state ``PRUNED``: ``ok`` False and ``score`` None, as a failed
    trial, with its last reported metrics in ``metrics``. That is what Optuna's samplers mostly do (random, CMA-ES
    and NSGA-II learn only from complete trials; TPE alone ranks pruned ones below complete ones by their last
    value) and what ASHA assumes of its searcher (Li et al. 2020: random search, told nothing): a pruned arch was
    judged worse than its peers, so no strategy should breed from it or fit a model to its truncated value.
    """

    state: State
    score: tuple[float, ...] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    costs: Mapping[str, float] = field(default_factory=dict)
    feasible: bool = True

    @property
    def ok(self) -> bool:
        return self.state == State.COMPLETE and self.score is not None and self.feasible


@dataclass
class Trial:
    """One recorded trial. ``arch`` is the family's canonical form of the asked arch (one network, one trial).

    ``artifacts`` names the files the trial saved in the study's artifact store (``"model.pt"``), comma-separated,
    or is None; the store finds them by study and trial number, or by arch key.
    """

    number: int
    arch: Arch
    state: State
    feasible: bool = True
    metrics: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    artifact: str | None = None

    def value(self, metric: str) -> float | None:
        v = self.metrics.get(metric, self.costs.get(metric))
        return None if v is None else float(v)

    @property
    def values(self) -> dict[str, float]:
        return {**self.costs, **self.metrics}

    def scored(self, objectives: Sequence[Objective]) -> bool:
        """Complete, with a value for every objective (a candidate for best and Pareto front if also feasible)."""
        return self.state == State.COMPLETE and all(self.value(o.metric) is not None for o in objectives)

    def result(self, objectives: Sequence[Objective]) -> Result:
        """The ``Result`` a strategy is told about this trial."""
        score = tuple(o.score(self.values) for o in objectives) if self.scored(objectives) else None
        return Result(self.state, score, self.metrics, self.costs, self.feasible)
