"""The ``LatencyModel`` interface that every latency source shares, and the registry of sources.

A latency source prices an arch of one family, for one task, in milliseconds: ``model(arch) -> {"latency_ms": ms}``,
so that ``"latency_ms<=8"`` is an ordinary constraint and a study uses it like any cost model. Sources register by
decorator, as strategies do (``@register_source("lut")``), and ``latency_model(source, family, task, **options)``
builds one by name; an unknown source or option is a one-line error naming what there is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import NasforgeError
from ..registry import Registry
from ..space import Arch

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task


class LatencyError(NasforgeError, ValueError):
    """A bad latency setting (runtime, thread count, statistic) or an arch a latency model cannot price."""


def resolve_family(family: Family | str | Mapping[str, Any]) -> Family:
    """A family object from itself, a registered name, an import path ``pkg.mod:attr`` or a ``Family.spec()``.

    A latency model may hold the name or spec instead of the object, so that it pickles small and rebuilds the family
    in whatever process prices the arch."""
    from ..spaces.base import load_family

    if isinstance(family, str | Mapping):
        return load_family(family)
    return family


def sample_archs(family: Family, n: int, seed: int = 0) -> list[Arch]:
    """``n`` archs drawn from the family's space with a seeded generator (what a table or a predictor is built on)."""
    rng = np.random.default_rng(seed)
    return [family.space.sample(rng) for _ in range(n)]


class LatencyModel(ABC):
    """A latency source for one family and task: ``model(arch) -> {metric: milliseconds}``.

    Contract: ``predict(archs)`` returns one latency in ms per arch (a float array); an arch outside the family's space
    raises ``LatencyError`` saying which family the model serves. ``__call__`` is what a study uses as a cost model,
    and ``metrics`` names what it returns (``("latency_ms",)`` unless another ``metric`` name is given, say to hold
    two runtimes' latencies in one study). Instances are picklable and hold no open files or sessions.
    """

    name: ClassVar[str] = ""  # set by ``register_source``
    metrics: tuple[str, ...] = ("latency_ms",)

    def __init__(self, family: Family | str | Mapping[str, Any], task: Task, metric: str = "latency_ms") -> None:
        self.family = family
        self.task = task
        self.metrics = (metric,)

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def fam(self) -> Family:
        return resolve_family(self.family)

    def check(self, arch: Mapping[str, Any]) -> Arch:
        fam = self.fam
        try:
            return fam.space.validate(arch)
        except NasforgeError as e:
            raise LatencyError(
                f"this {self.name or 'latency'} model serves family {fam.name!r}, and the arch does not belong to "
                f"it ({e}); use a latency model built for the arch's family"
            ) from None

    @abstractmethod
    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        return {self.metric: float(self.predict([arch])[0])}

    def config(self) -> dict[str, Any]:
        """Settings that decide the latencies (for the study's record)."""
        return {"source": self.name, "family": self.fam.name, "task": self.task.to_dict(), "metric": self.metric}


SOURCES: Registry[type[LatencyModel]] = Registry("latency source")

register_source = SOURCES.register


def latency_model(source: str, family: Family | str | Mapping[str, Any], task: Task, **options: Any) -> LatencyModel:
    """The latency model registered as ``source`` (``measured``, ``lut``, ``predictor``, ...) for ``family`` and
    ``task``; ``options`` are its constructor's keywords, and one it does not take is a one-line error."""
    return SOURCES.create(source, family, task, **options)
