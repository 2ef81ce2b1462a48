"""The evaluator interface: ``evaluate(arch, ctx) -> dict[str, float]``.

Train-from-scratch, table lookup, supernet, hypernetwork, zero-cost proxies and weight inheritance all share it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..registry import Registry
from ..space import Arch
from ..task import Task

if TYPE_CHECKING:
    from ..artifacts import TrialArtifacts


@dataclass
class Context:
    """What an evaluation may use besides the arch.

    ``seed`` is derived from the study seed and the arch key, so that a trial's result does not depend on the order in
    which trials run (a resumed search ends where an uninterrupted one does). ``artifacts`` is this trial's view of the
    study's artifact store (``put``/``get`` bytes, ``save``/``load`` state dicts, ``parent(arch_key)`` for another
    trial's files), or None outside a study. ``report`` records a learning-curve point; ``progress`` drives a
    progress bar. ``prune`` (set by the study when it has a pruner: ``pruners.Watch``) is asked about every reported
    point; when it says stop, ``report`` raises ``TrialPruned``, which an evaluator must let pass (its training loop
    ends there and the trial is recorded as ``pruned`` with its curve and last reported metrics).
    """

    seed: int = 0
    task: Task | None = None
    artifacts: TrialArtifacts | None = None
    trial: int = -1
    curve: list[dict[str, float]] = field(default_factory=list)
    progress: Callable[[float, float, str], None] | None = None
    prune: Callable[[int, Mapping[str, float]], bool] | None = None

    def report(self, step: int, **metrics: float) -> None:
        point = {k: float(v) for k, v in metrics.items()}
        self.curve.append({"step": step, **point})
        if self.prune is not None and self.prune(step, point):
            from ..errors import TrialPruned

            raise TrialPruned(step)

    def update(self, done: float, total: float, label: str = "") -> None:
        if self.progress is not None:
            self.progress(done, total, label)


class Evaluator(ABC):
    """Contract: ``__call__(arch, ctx)`` returns finite metrics by name (accuracies in %, times in ms), or raises
    ``TrialFailed`` with a one-line reason. It must be picklable (it may run in a worker process) and must not
    depend on global random state: all randomness comes from ``ctx.seed``.

    Declared, so that the study checks objectives and constraints before anything runs: ``metrics`` names what it
    returns (empty: unknown, nothing is checked), ``cheap_metric_names`` what ``cheap_metrics`` returns, and
    ``default_objectives`` what a study maximises when told nothing. ``task()`` is the task it evaluates for, if it
    knows one without loading data (a table's task, a data set's from its metadata).
    """

    name: ClassVar[str] = ""
    metrics: tuple[str, ...] = ()
    cheap_metric_names: tuple[str, ...] = ()
    default_objectives: tuple[str, ...] = ("maximize val_acc",)

    @abstractmethod
    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]: ...

    def config(self) -> dict[str, Any]:
        """Settings that decide the results (for the study's record; a resumed study must use the same)."""
        return {}

    def task(self) -> Task | None:
        return None

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        """Metrics known without evaluating (a table's latency columns, say). Constraints on them are checked before
        evaluation, like those on the family's analytic costs, and an arch failing them is never evaluated."""
        return {}


class FunctionEvaluator(Evaluator):
    """Wrap a plain function ``fn(arch, ctx) -> dict`` (or ``fn(arch) -> dict``) as an evaluator."""

    name = "function"

    def __init__(
        self,
        fn: Callable[..., Mapping[str, float]],
        metrics: tuple[str, ...] = (),
        default_objectives: tuple[str, ...] | None = None,
    ) -> None:
        self.fn = fn
        self.metrics = tuple(metrics)
        if default_objectives is not None:
            self.default_objectives = tuple(default_objectives)

    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        # decided by the signature, not by catching TypeError, which would hide a TypeError raised inside fn
        return dict(self.fn(arch, ctx) if _takes_two(self.fn) else self.fn(arch))

    def config(self) -> dict[str, Any]:
        return {"function": getattr(self.fn, "__qualname__", type(self.fn).__qualname__)}


def _takes_two(fn: Callable[..., Any]) -> bool:
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): assume the documented (arch, ctx)
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 2


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
