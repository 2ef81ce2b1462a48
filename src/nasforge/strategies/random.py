"""Random search without replacement, seeded; it proposes only archs the study says are feasible."""

from __future__ import annotations

from ..space import Arch
from .base import Strategy, register_strategy

# below this size a shuffled index list is cheap and guarantees no rejection loops near exhaustion
_PERMUTE_BELOW = 1 << 20


@register_strategy("random")
class RandomSearch(Strategy):
    max_objectives = None

    def __init__(self, space, *, seed: int | None = 0) -> None:
        super().__init__(space, seed=seed)
        self._perm = None
        self._pos = 0

    def _ask(self, n: int) -> list[Arch]:
        if self.space.size > _PERMUTE_BELOW:
            return self._random_unseen(n)
        if self._perm is None:
            self._perm = self.rng.permutation(self.space.size)
        out: list[Arch] = []
        while len(out) < n and self._pos < len(self._perm):
            a = self.space.at(int(self._perm[self._pos]))
            self._pos += 1
            if not self.seen(a) and a not in out and self.feasible(a):  # positions may share a network
                out.append(a)
        return out
