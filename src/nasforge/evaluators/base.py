"""The evaluator interface: ``evaluate(arch, ctx) -> dict[str, float]``.

Train-from-scratch, table lookup, supernet, hypernetwork, zero-cost proxies and weight inheritance all share it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..registry import Registry
from ..space import Arch
from ..task import Task


@dataclass
class Context:
    """What an evaluation may use besides the arch.

    ``seed`` is derived from the study seed and the arch key, so that a trial's result does not depend on the order in
    which trials run (a resumed search ends where an uninterrupted one does). ``artifacts`` is a directory for this
    trial's files (weights). ``report`` records a learning-curve point; ``progress`` drives a progress bar.
    """

    seed: int = 0
    task: Task | None = None
    device: str = "cpu"
    artifacts: Path | None = None
    trial: int = -1
    curve: list[dict[str, float]] = field(default_factory=list)
    progress: Callable[[float, float, str], None] | None = None

    def report(self, step: int, **metrics: float) -> None:
        self.curve.append({"step": step, **{k: float(v) for k, v in metrics.items()}})

    def update(self, done: float, total: float, label: str = "") -> None:
        if self.progress is not None:
            self.progress(done, total, label)


class Evaluator(ABC):
    """Contract: ``__call__(arch, ctx)`` returns finite metrics by name (accuracies in %, times in ms), or raises
    ``TrialFailed`` with a one-line reason. It must be picklable (it may run in a worker process) and must not
    depend on global random state: all randomness comes from ``ctx.seed``. ``metrics`` names what it returns, so that
    the study can check objectives and constraints before anything runs.
    """

    name: ClassVar[str] = ""
    metrics: tuple[str, ...] = ()

    @abstractmethod
    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]: ...

    def config(self) -> dict[str, Any]:
        """Settings that decide the results (for the study's record; a resumed study must use the same)."""
        return {}

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        """Metrics known without evaluating (a table's latency columns, say). Constraints on them are checked before
        evaluation, like those on the family's analytic costs, and an arch failing them is never evaluated."""
        return {}


class FunctionEvaluator(Evaluator):
    """Wrap a plain function ``fn(arch, ctx) -> dict`` (or ``fn(arch) -> dict``) as an evaluator."""

    name = "function"

    def __init__(self, fn: Callable[..., Mapping[str, float]], metrics: tuple[str, ...] = ()) -> None:
        self.fn = fn
        self.metrics = tuple(metrics)

    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        try:
            out = self.fn(arch, ctx)
        except TypeError:
            out = self.fn(arch)
        return dict(out)

    def config(self) -> dict[str, Any]:
        return {"function": getattr(self.fn, "__qualname__", type(self.fn).__qualname__)}


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator")


register_evaluator = EVALUATORS.register


def create_evaluator(name: str, **kwargs: Any) -> Evaluator:
    """Build a registered evaluator. ``family``, ``dataset`` and ``data_dir`` are passed only to evaluators whose
    constructor takes them; any other setting it does not take is an error naming what it accepts."""
    import inspect

    cls = EVALUATORS.get(name)
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    given = {k: v for k, v in kwargs.items() if k in params or takes_any or k not in ("family", "dataset", "data_dir")}
    return EVALUATORS.create(name, **given)
