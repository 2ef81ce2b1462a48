"""Trial states and the result a strategy is told. Plain data, no torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


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
    """

    state: State
    score: tuple[float, ...] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    costs: Mapping[str, float] = field(default_factory=dict)
    feasible: bool = True

    @property
    def ok(self) -> bool:
        return self.state == State.COMPLETE and self.score is not None and self.feasible
