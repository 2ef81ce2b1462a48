"""Evolution by network morphisms: every child is its parent grown by one function-preserving step (EAS, Cai et al.,
2018; NASH, Elsken et al., 2018; Net2Net moves, Chen et al., 2016).

Aging evolution (``RegularizedEvolution``: a tournament picks the parent, the oldest member leaves) whose only
mutation moves one growable dimension to its next larger value: a wider layer, a deeper stage, a larger expand ratio
or kernel. With the ``inherit`` evaluator each such child is found one step from its parent and starts from the
parent's morphed weights, so a search pays full training only for its first ``population`` (random) archs.

``grow`` names the dimensions that may grow (default: every numeric one); leave out those the family cannot morph
(lenet's unpadded kernels change the feature-map size; mobilenet's resolution changes the input), or the inherit
evaluator trains those children from scratch. The tournament is held among the members that can still grow into an
unseen, feasible arch; when none can, a random unseen arch is asked instead, so a query is never spent twice and the
space is exhausted cleanly (``retries``, a shared setting of evolution, is unused here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import NasforgeError
from ..space import Arch, Space
from .base import register_strategy
from .evolution import RegularizedEvolution


def step(values: tuple, value: Any, direction: int = 1) -> Any:
    """The next larger (``direction`` 1) or smaller (-1) value of a numeric choice, or None (an end, or not a number:
    strings and booleans have no width)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    nums = sorted(v for v in values if isinstance(v, int | float) and not isinstance(v, bool))
    i = nums.index(value) + direction
    return nums[i] if 0 <= i < len(nums) else None


@register_strategy("morph-evolution")
class MorphEvolution(RegularizedEvolution):
    """See the module docstring. Defaults P=10, S=3 (the NAS-Bench-201 paper's aging evolution): growth-only moves
    need a varied population to start from more than a greedy tournament."""

    def __init__(self, space: Space, *, seed: int | None = 0, population: int = 10, sample: int = 3,
                 retries: int = 50, grow: Sequence[str] | str | None = None) -> None:  # fmt: skip
        super().__init__(space, seed=seed, population=population, sample=sample, retries=retries)
        names = [grow] if isinstance(grow, str) else list(grow) if grow is not None else None
        if names is not None:
            bad = [n for n in names if n not in space.dims]
            if bad:
                raise NasforgeError(f"morph-evolution: grow names {bad[0]!r}, not a dimension of the space "
                                    f"({', '.join(space.names)})")  # fmt: skip
        self.grow = names

    def hyper(self) -> dict[str, Any]:
        return {**super().hyper(), "grow": None if self.grow is None else list(self.grow)}

    def growable(self) -> list[str]:
        return list(self.grow) if self.grow is not None else list(self.space.names)

    def _child(self, batch: set[str]) -> Arch | None:
        # the tournament is held among members that can still grow into an unseen feasible arch, so that a winner
        # at the top of every dimension does not stall the search
        pool = [(a, f, m) for a, f in self.population if (m := self.open_moves(a, batch))]
        if not pool:
            return None
        k = min(self.sample_size, len(pool))
        picks = self.rng.choice(len(pool), size=k, replace=False)
        best = max(picks, key=lambda i: (pool[i][1], -i))  # ties: the oldest of the sample
        moves = pool[best][2]
        return moves[int(self.rng.integers(len(moves)))]

    def open_moves(self, parent: Arch, batch: set[str]) -> list[Arch]:
        return [c for c in self.moves(parent) if c.key not in batch and not self.seen(c) and self.feasible(c)]

    def moves(self, parent: Arch) -> list[Arch]:
        """Every child one growth step from ``parent`` (canonical, distinct)."""
        out: dict[str, Arch] = {}
        for k in self.growable():
            v = step(self.space.dims[k].values, parent[k])
            if v is not None:
                a = self.space.validate({**parent, k: v})
                if a.key != parent.key:  # a dimension the parent's network does not read changes nothing
                    out.setdefault(a.key, a)
        return list(out.values())
