"""The one-shot contract: methods that train shared weights (and, for the gradient methods, architecture weights)
in one network, then ``derive()`` an arch. They are not ask/tell strategies: they see data and gradients.

A method is registered by name (``register_oneshot``) and driven epoch by epoch by ``oneshot.run`` (which records
the run in a study, checkpoints every epoch and resumes after a kill):

    m = ONESHOT.create("darts", family, task, seed=0, **hyper)   # stores only (no torch work in the constructor)
    m.setup(device)                                              # builds the supernet and the optimisers
    for epoch in range(1, epochs + 1):
        stats = m.train_epoch(data, epoch, progress)             # {"train_loss": ..., ...}, finite floats
    m.arch_probs()                                               # {group: {candidate: probability}}; {} for SPOS
    m.derive()                                                   # an Arch of family.space
    m.state_dict() / m.load_state_dict(sd)                       # everything a resumed run needs, RNG included

Contract:
- all randomness comes from ``seed`` (a ``torch.Generator`` and a ``numpy`` generator made in ``setup`` and saved in
  ``state_dict``), so that a run resumed from epoch k's checkpoint ends in the same state as an uninterrupted one;
- ``attach(data)`` gives the method its data (``datasets.Splits``: normalised tensors on the device) before training
  or deriving (a resumed run with no epochs left derives at once); ``train_epoch`` reads it and never its test split;
  methods with a bilevel problem split ``x_train`` into two fixed halves (first half: weights; second: architecture),
  as DARTS does, and select nothing on ``x_val``; SPOS's ``derive`` selects on ``x_val`` (as a black-box search
  does), so a derived arch's held-out figure is its test accuracy;
- ``cheap_derive`` says whether ``derive()`` is cheap enough to call after every epoch (an argmax) or not (SPOS scores
  archs on data): the runner records the per-epoch derived arch only when it is;
- a non-finite loss raises ``TrialFailed`` with a one-line reason (``check_loss``);
- ``derive()`` returns a valid arch of ``family.space``; ``supernet`` is the trained ``SuperNet`` (for the
  ``supernet`` evaluator), available after ``setup``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from ..errors import TrialFailed
from ..registry import Registry
from ..space import Arch
from ..spaces.base import Family
from ..task import Task

Progress = Callable[[float, float, str], None] | None
RUN_KEY = "oneshot"  # the arch key of the artifact slot where a study's one-shot run keeps its files


class OneShot(ABC):
    """See the module docstring. Subclasses implement ``setup``, ``train_epoch``, ``derive`` and the state."""

    name: ClassVar[str] = ""
    cheap_derive: ClassVar[bool] = True

    def __init__(self, family: Family, task: Task, *, seed: int = 0) -> None:
        self.family = family
        self.task = task
        self.seed = int(seed)
        self.data: Any = None

    def attach(self, data: Any) -> None:
        """The data to train and derive on (see the module docstring)."""
        self.data = data

    @abstractmethod
    def setup(self, device: Any) -> None: ...

    @abstractmethod
    def train_epoch(self, data: Any, epoch: int, progress: Progress = None) -> dict[str, float]: ...

    def arch_probs(self) -> dict[str, dict[str, float]]:
        """The architecture distribution, per group of dimensions and candidate (empty for methods without one)."""
        return {}

    @abstractmethod
    def derive(self) -> Arch: ...

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def config(self) -> dict[str, Any]:
        """The settings that decide the run (recorded with the study; a resume must use the same)."""
        return {}


def check_loss(value: float, where: str) -> float:
    """``value`` if finite, else a one-line ``TrialFailed`` saying where it went bad."""
    if not math.isfinite(value):
        raise TrialFailed(f"one-shot training loss became {value} at {where}; lower the learning rate")
    return value


ONESHOT: Registry[type[OneShot]] = Registry("one-shot method")
register_oneshot = ONESHOT.register


def settings_of(cls: type[OneShot]) -> list[str]:
    """The keyword settings a method takes, its base classes' included (subclasses pass ``**settings`` up)."""
    import inspect

    names: dict[str, None] = {}
    for c in cls.__mro__:
        init = c.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY and p.name != "seed":
                names[p.name] = None
    return list(names)


def create_oneshot(name: str, family: Family, task: Task, **settings: Any) -> OneShot:
    """Method ``name`` with ``settings``; a setting it does not take is a one-line error naming those it does."""
    from ..errors import NasforgeError

    cls = ONESHOT.get(name)
    known = settings_of(cls)
    bad = sorted(k for k in settings if k not in known and k != "seed")
    if bad:
        raise NasforgeError(f"one-shot method {name!r} takes no setting {bad[0]!r}; it takes: {', '.join(known)}")
    return cls(family, task, **settings)
