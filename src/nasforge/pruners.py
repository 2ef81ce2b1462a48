"""Stopping bad trials early: pruners over the learning curve an evaluator reports (``Context.report``).

A pruner answers one question, ``should_prune(step, value, history, key=...)``: should the running trial, which has
just reported ``value`` of the watched metric at ``step``, stop now? ``history`` holds the recorded curves of the
study's finished trials (``Curve``). The watched metric is the study's first objective; values are oriented so that
greater is better (a minimised metric is negated), so no pruner needs to know the direction. A pruner is pure and
deterministic: the same question always gets the same answer, so a resumed study that hands a rerun trial the same
history replays the same decisions. Optuna's ``BasePruner`` and its MedianPruner, SuccessiveHalvingPruner and
HyperbandPruner are the model; this is our own code.

How the engine uses it (``loop.py``, ``executors.py``): when a trial is dispatched, the driver takes a snapshot of the
curves of the trials finished by then and sends it with the job (``Watch``), so a worker process needs no database.
The consequence, as in any asynchronous successive halving: a trial is judged against what had finished when it
started, not against trials that finish while it runs. Run in-process (one worker) that is every earlier trial, so a
run's decisions depend only on the seed; with ``--workers`` they depend also on which trials finished first.

Registered by name (``@register_pruner``): ``none``, ``median``, ``asha``, ``hyperband``.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .registry import Registry
from .strategies.base import setting
from .trial import State

if TYPE_CHECKING:
    from .constraints import Objective
    from .trial import Trial


@dataclass(frozen=True)
class Curve:
    """One finished trial's curve of the watched metric, oriented greater-is-better: ``(step, value)`` points in the
    order reported. ``complete`` is False for a pruned trial (its curve stops where it was stopped)."""

    number: int
    key: str
    points: tuple[tuple[int, float], ...]
    complete: bool = True

    def at(self, step: int) -> float | None:
        """The value reported at ``step`` (the last one when reported twice), or None."""
        found = None
        for s, v in self.points:
            if s == step:
                found = v
        return found


def curves(trials: Iterable[Trial], objective: Objective) -> tuple[Curve, ...]:
    """The curves of the complete and pruned trials among ``trials`` that reported ``objective``'s metric."""
    sign = 1.0 if objective.direction == "maximize" else -1.0
    out = []
    for t in trials:
        if t.state not in (State.COMPLETE, State.PRUNED):
            continue
        pts = tuple((int(p["step"]), sign * float(p[objective.metric])) for p in t.curve if objective.metric in p)
        if pts:
            out.append(Curve(t.number, t.arch.key, pts, t.state == State.COMPLETE))
    return tuple(out)


class Pruner(ABC):
    """Decides whether a running trial stops early.

    Contract: ``should_prune(step, value, history, key=...)`` is pure: it reads only its arguments (``value`` oriented
    greater-is-better, ``history`` the finished trials' curves, ``key`` the running trial's arch key) and its own
    settings, keeps no state between calls, and is deterministic. ``config()`` returns the settings that decide its
    answers (for the study's record: a study resumed with another pruner is refused). Constructors only store and
    check their settings; a bad one is a one-line ``NasforgeError``. Pruners must be picklable (they travel to
    worker processes with each job).
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def should_prune(self, step: int, value: float, history: Sequence[Curve], *, key: str = "") -> bool: ...

    def config(self) -> dict[str, Any]:
        return {}

    @property
    def active(self) -> bool:
        """False for a pruner that never prunes (then the driver sends no history with jobs)."""
        return True

    def with_steps(self, steps: int | None) -> Pruner:
        """This pruner told how many steps a full trial reports (the training evaluator's epochs), for settings left
        to default to it; itself when it has none such. A pruner that cannot work without it raises a one-line
        ``NasforgeError`` here, before anything runs."""
        return self


PRUNERS: Registry[type[Pruner]] = Registry("pruner")
register_pruner = PRUNERS.register


def create_pruner(name: str, **settings: Any) -> Pruner:
    """Build the pruner registered as ``name``; unknown settings are a one-line error naming the known ones."""
    return PRUNERS.create(name, **settings)


@register_pruner("none")
class NoPruner(Pruner):
    """Never prunes: every trial runs to the end."""

    def should_prune(self, step: int, value: float, history: Sequence[Curve], *, key: str = "") -> bool:
        return False

    @property
    def active(self) -> bool:
        return False


@register_pruner("median")
class MedianPruner(Pruner):
    """The median stopping rule (Golovin et al. 2017, Google Vizier; Optuna's MedianPruner): stop a trial whose value
    at ``step`` is below the median of the complete trials' values at the same step.

    Nothing is pruned until ``n_startup_trials`` trials are complete, before step ``n_warmup_steps``, between judged
    steps (every ``interval_steps`` from the warm-up on), or while fewer than ``n_min_trials`` complete trials
    reported that step. Unlike Optuna, which compares the trial's best value so far, the current value is compared
    (a pruner is asked about one point); for a per-epoch validation accuracy the two seldom differ."""

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0, interval_steps: int = 1,
                 n_min_trials: int = 1) -> None:  # fmt: skip
        who = "pruner median"
        self.n_startup_trials = setting(who, "n_startup_trials", n_startup_trials, int, 0)
        self.n_warmup_steps = setting(who, "n_warmup_steps", n_warmup_steps, int, 0)
        self.interval_steps = setting(who, "interval_steps", interval_steps, int, 1)
        self.n_min_trials = setting(who, "n_min_trials", n_min_trials, int, 1)

    def config(self) -> dict[str, Any]:
        return {"n_startup_trials": self.n_startup_trials, "n_warmup_steps": self.n_warmup_steps,
                "interval_steps": self.interval_steps, "n_min_trials": self.n_min_trials}  # fmt: skip

    def should_prune(self, step: int, value: float, history: Sequence[Curve], *, key: str = "") -> bool:
        if step < self.n_warmup_steps or (step - self.n_warmup_steps) % self.interval_steps:
            return False
        done = [c for c in history if c.complete]
        if len(done) < self.n_startup_trials:
            return False
        vals = sorted(v for v in (c.at(step) for c in done) if v is not None)
        if len(vals) < self.n_min_trials:
            return False
        mid = len(vals) // 2
        median = vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2
        return value < median


def _rungs(min_resource: int, eta: int, rate: int, max_resource: int | None) -> Iterable[int]:
    r = min_resource * eta**rate
    while max_resource is None or r < max_resource:
        yield r
        r *= eta


@register_pruner("asha")
class ASHAPruner(Pruner):
    """Asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning",
    Algorithm 2; Optuna's SuccessiveHalvingPruner).

    Rungs are the steps ``min_resource · η^(s + k)``, k = 0, 1, ... (s = ``min_early_stopping_rate``), below
    ``max_resource`` when it is given (a trial that reached its full budget is not stopped at its last step). A trial
    reporting at a rung goes on only if its value is among the top ``max(1, ⌊n/η⌋)`` of the ``n`` values recorded at
    that rung: its own and those of every finished trial (complete or pruned) that reached the rung. As in Optuna, the
    first trials at a rung (n < η) go on only if they are the best there so far, since a stopped trial is never
    resumed. A trial must report at every rung step (per epoch, say) to be judged there."""

    def __init__(self, min_resource: int = 1, reduction_factor: int = 3, min_early_stopping_rate: int = 0,
                 max_resource: int | None = None) -> None:  # fmt: skip
        who = f"pruner {self.name or 'asha'}"
        self.min_resource = setting(who, "min_resource", min_resource, int, 1)
        self.reduction_factor = setting(who, "reduction_factor", reduction_factor, int, 2)
        self.min_early_stopping_rate = setting(who, "min_early_stopping_rate", min_early_stopping_rate, int, 0)
        self.max_resource = setting(who, "max_resource", max_resource, int, 1, optional=True)

    def config(self) -> dict[str, Any]:
        return {"min_resource": self.min_resource, "reduction_factor": self.reduction_factor,
                "min_early_stopping_rate": self.min_early_stopping_rate, "max_resource": self.max_resource}  # fmt: skip

    def with_steps(self, steps: int | None) -> Pruner:
        if self.max_resource is not None or steps is None:
            return self
        return ASHAPruner(self.min_resource, self.reduction_factor, self.min_early_stopping_rate, steps)

    def is_rung(self, step: int) -> bool:
        for r in _rungs(self.min_resource, self.reduction_factor, self.min_early_stopping_rate, self.max_resource):
            if r >= step:
                return r == step
        return False

    def should_prune(self, step: int, value: float, history: Sequence[Curve], *, key: str = "") -> bool:
        if not self.is_rung(step):
            return False
        rung = sorted((v for v in (c.at(step) for c in history) if v is not None), reverse=True)
        rung.append(value)  # appended after the sort: on a tie the running trial goes on
        rung.sort(reverse=True)
        keep = max(1, len(rung) // self.reduction_factor)
        return value < rung[keep - 1]


@register_pruner("hyperband")
class HyperbandPruner(Pruner):
    """Hyperband (Li et al. 2018, JMLR 18) over ASHA, as Optuna's HyperbandPruner: brackets of successive halving
    that start stopping at different resources, so that a slow starter has a bracket that does not judge it early.

    With ``s_max = ⌊log_η(max_resource / min_resource)⌋`` there are ``s_max + 1`` brackets; bracket b is ASHA with
    ``min_early_stopping_rate = b`` (first rung ``min_resource · η^b``; the last bracket never prunes). A trial's
    bracket is drawn from a hash of its arch key, with the paper's weights: the bracket with ``s`` halvings gets
    ``⌈(s_max + 1) / (s + 1) · η^s⌉`` trials per round. Trials compete only within their bracket.
    ``max_resource`` is the steps a full trial reports (the training evaluator's epochs when not given)."""

    def __init__(self, min_resource: int = 1, max_resource: int | None = None, reduction_factor: int = 3) -> None:
        who = "pruner hyperband"
        self.min_resource = setting(who, "min_resource", min_resource, int, 1)
        self.max_resource = setting(who, "max_resource", max_resource, int, 1, optional=True)
        self.reduction_factor = setting(who, "reduction_factor", reduction_factor, int, 2)
        if self.max_resource is not None and self.max_resource < self.min_resource:
            from .errors import NasforgeError

            raise NasforgeError(f"{who}: max_resource ({self.max_resource}) must be at least min_resource "
                                f"({self.min_resource})")  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {"min_resource": self.min_resource, "max_resource": self.max_resource,
                "reduction_factor": self.reduction_factor}  # fmt: skip

    def with_steps(self, steps: int | None) -> Pruner:
        out = self if self.max_resource is not None or steps is None else HyperbandPruner(
            self.min_resource, max(steps, self.min_resource), self.reduction_factor)
        out.s_max  # noqa: B018 - refuses a missing max_resource now, not inside a worker
        return out

    @property
    def s_max(self) -> int:
        if self.max_resource is None:
            from .errors import NasforgeError

            raise NasforgeError("pruner hyperband needs max_resource (the steps a full trial reports), e.g. "
                                "--pruner-opt max_resource=9")  # fmt: skip
        s, r = 0, self.min_resource
        while r * self.reduction_factor <= self.max_resource:
            s, r = s + 1, r * self.reduction_factor
        return s

    def weights(self) -> list[int]:
        """Trials per round of each bracket b = 0 .. s_max (b = s_max - s, s the bracket's number of halvings)."""
        s_max, eta = self.s_max, self.reduction_factor
        return [math.ceil((s_max + 1) / (s + 1) * eta**s) for s in (s_max - b for b in range(s_max + 1))]

    def bracket(self, key: str) -> int:
        """The bracket of the trial whose arch key is ``key``: deterministic, spread by the weights."""
        w = self.weights()
        u = int(hashlib.sha256(f"hyperband:{key}".encode()).hexdigest()[:12], 16) / 16**12 * sum(w)
        for b, wb in enumerate(w):
            if u < wb:
                return b
            u -= wb
        return len(w) - 1

    def asha(self, b: int) -> ASHAPruner:
        return ASHAPruner(self.min_resource, self.reduction_factor, b, self.max_resource)

    def should_prune(self, step: int, value: float, history: Sequence[Curve], *, key: str = "") -> bool:
        b = self.bracket(key)
        same = [c for c in history if self.bracket(c.key) == b]
        return self.asha(b).should_prune(step, value, same)


@dataclass
class Watch:
    """A pruner bound to one trial: the metric it watches (the study's first objective), its orientation, the
    snapshot of finished curves the trial is judged against, and the trial's arch key. ``Context.report`` calls it
    with each reported point; it travels to worker processes inside the job."""

    pruner: Pruner
    metric: str
    sign: float
    history: tuple[Curve, ...]
    key: str

    def __call__(self, step: int, metrics: Mapping[str, float]) -> bool:
        if self.metric not in metrics:
            return False
        v = self.sign * float(metrics[self.metric])
        return math.isfinite(v) and self.pruner.should_prune(int(step), v, self.history, key=self.key)

    @classmethod
    def of(cls, pruner: Pruner, objective: Objective, trials: Iterable[Trial], key: str) -> Watch:
        sign = 1.0 if objective.direction == "maximize" else -1.0
        return cls(pruner, objective.metric, sign, curves(trials, objective), key)
