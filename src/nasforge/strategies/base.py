"""The ask/tell interface every black-box strategy shares, and its registry."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..registry import Registry
from ..space import Arch, Space
from ..trial import Result


class Strategy(ABC):
    """A search strategy: proposes archs (``ask``) and learns from their results (``tell``).

    Contract:
    - ``ask(n)`` returns up to ``n`` archs of ``space``, never one it returned before. Fewer than ``n`` (or none) means
      it has nothing more to propose (the space is exhausted); it must not block.
    - ``tell(arch, result)`` is called exactly once for every asked arch, in any order, possibly after further asks.
    - Reproducible: with the same seed, the same sequence of ask and tell calls yields the same archs. A resumed study
      rebuilds a strategy by replaying its recorded asks and tells, so there is no other state to save.
    - It never trains, never touches storage, and reads only ``result.score`` (greater is better), ``result.ok``
      and ``result.costs``.
    - A trial the study's pruner stopped early is told with state ``PRUNED``, ``ok`` False and ``score`` None (its last
      reported metrics in ``result.metrics``): a strategy treats it as it treats a failed trial (see ``Result``).
    - ``feasible(arch)`` (set by the study from the constraints on cheap metrics; by default everything is feasible)
      tells whether an arch meets the constraints without evaluating it. Learning strategies propose only feasible
      archs; ``grid`` enumerates everything and lets the study record infeasible archs as such, untrained.

    Subclasses implement ``_ask`` (and usually ``_tell``); constructors only store arguments.
    """

    name: ClassVar[str] = ""  # set by ``register_strategy``
    # how many objectives the strategy can optimise (None: any number; grid and random ignore scores). A study refuses
    # more objectives than that instead of silently optimising the first
    max_objectives: ClassVar[int | None] = 1

    def __init__(self, space: Space, *, seed: int | None = 0) -> None:
        self.space = space
        self.seed = seed
        self.feasible: Callable[[Arch], bool] = _always
        self.rng = np.random.default_rng(seed)
        self._asked: set[str] = set()
        self.history: list[tuple[Arch, Result]] = []

    # --- public interface ---------------------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Arch]:
        # every proposal in the space's canonical form (one arch per network); archs the space made already are
        out = [self.space.canonical(a) for a in self._ask(n)]
        for a in out:
            if a.key in self._asked:
                raise RuntimeError(f"{type(self).__name__} proposed {a} twice")
            self._asked.add(a.key)
        return out

    def tell(self, arch: Arch, result: Result) -> None:
        self.history.append((arch, result))
        self._tell(arch, result)

    def set_feasible(self, predicate: Callable[[Arch], bool] | None) -> None:
        """Called by the study before the first ask; ``None`` means every arch is feasible."""
        self.feasible = predicate or _always

    def hyper(self) -> dict[str, Any]:
        """Hyper-parameters (constructor keywords besides space and seed), for the study's record."""
        return {}

    # --- for subclasses -----------------------------------------------------------------------------------------
    @abstractmethod
    def _ask(self, n: int) -> list[Arch]: ...

    def _tell(self, arch: Arch, result: Result) -> None:  # noqa: B027 - optional hook
        pass

    def seen(self, arch: Arch) -> bool:
        """Whether ``arch`` (canonical, as every arch the space makes) was asked before."""
        return arch.key in self._asked

    @property
    def exhausted(self) -> bool:
        return len(self._asked) >= self.space.size

    def _random_unseen(
        self, n: int, batch: set[str] | None = None, tries: int = 10_000, feasible_only: bool = True
    ) -> list[Arch]:
        """Up to ``n`` distinct random archs never asked before (rejection sampling), feasible ones only unless told
        otherwise. Gives up after ``tries`` consecutive misses, so it may return fewer when few unseen archs remain."""
        out: list[Arch] = []
        taken = set(batch or ())
        misses = 0
        while len(out) < n and len(self._asked) + len(taken) < self.space.size and misses < tries:
            a = self.space.sample(self.rng)
            if a.key in self._asked or a.key in taken or (feasible_only and not self.feasible(a)):
                misses += 1
                continue
            misses = 0
            taken.add(a.key)
            out.append(a)
        return out


def _always(arch: Arch) -> bool:
    return True


def setting(owner: str, name: str, value: Any, kind: type = int, lo: float | None = None, hi: float | None = None,
            *, lo_open: bool = False, optional: bool = False) -> Any:  # fmt: skip
    """``value`` if it is a ``kind`` (int, float or bool) within ``[lo, hi]`` (``lo`` excluded when ``lo_open``), else a
    one-line ``NasforgeError`` naming the setting, so that a bad YAML value or ``--strategy-opt`` fails before anything
    is recorded. ``optional`` allows None. A float setting takes an int; no number setting takes a bool."""
    from ..errors import NasforgeError

    if value is None and optional:
        return None
    ok = isinstance(value, bool) if kind is bool else (
        isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool))
    if ok and kind is not bool:
        ok = math.isfinite(value) and (lo is None or (value > lo if lo_open else value >= lo)) and (
            hi is None or value <= hi)
    if not ok:
        what = {int: "an integer", float: "a number", bool: "true or false"}[kind]
        rng = ""
        if lo is not None:
            rng += f" {'>' if lo_open else '>='} {lo:g}"
        if hi is not None:
            rng += f"{' and' if rng else ''} <= {hi:g}"
        raise NasforgeError(f"{owner}: {name} must be {what}{rng}, got {value!r}")
    return float(value) if kind is float else value


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


register_strategy = STRATEGIES.register


def create_strategy(name: str, space: Space, *, seed: int | None = 0, **hyper: Any) -> Strategy:
    """Build the strategy registered as ``name`` on ``space``; unknown hyper-parameters are a one-line error."""
    return STRATEGIES.create(name, space, seed=seed, **hyper)
