"""Grid search: every arch once, in the space's deterministic lexicographic order."""

from __future__ import annotations

from ..space import Arch
from .base import Strategy, register_strategy


@register_strategy("grid")
class GridSearch(Strategy):
    max_objectives = None

    def __init__(self, space, *, seed: int | None = 0) -> None:
        super().__init__(space, seed=seed)
        self._next = 0

    def _ask(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        while len(out) < n and self._next < self.space.size:
            a = self.space.at(self._next)
            self._next += 1
            if not self.seen(a) and a not in out:  # positions may share a network (a canonical form)
                out.append(a)
        return out
