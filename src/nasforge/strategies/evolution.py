"""Regularized (aging) evolution (Real et al., AAAI 2019), and the random fallback the learning strategies share."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ..space import Arch, Space
from ..trial import Result
from .base import Strategy, register_strategy, setting

# below this size a space is listed in a random order once, and random unseen archs are read off it with a cursor, so
# that a strategy stops exactly when no feasible unseen arch is left, at no more than one look per arch in all
# (NAS-Bench-201 has 15,625 archs); above it, rejection sampling
SCAN_BELOW = 1 << 20


def random_unseen(strategy: Strategy, n: int, batch: set[str]) -> list[Arch]:
    """Up to ``n`` random feasible archs that ``strategy`` never asked and that are not in ``batch`` (keys).

    Fewer than ``n`` means there is nothing left (for spaces under ``SCAN_BELOW`` archs; above, that rejection
    sampling gave up). The random order is drawn from ``strategy.rng`` on first use, so replay reproduces it.
    """
    space = strategy.space
    if space.size > SCAN_BELOW:
        return strategy._random_unseen(n, batch)
    scan = strategy.__dict__.get("_scan")
    if scan is None:
        scan = strategy.__dict__["_scan"] = [strategy.rng.permutation(space.size), 0]
    perm, pos = scan
    out: list[Arch] = []
    while len(out) < n and pos < len(perm):
        a = space.at(int(perm[pos]))
        pos += 1  # an arch passed over is asked now, was asked before, is in this batch, or is infeasible for good
        if a.key not in batch and not strategy.seen(a) and strategy.feasible(a):
            out.append(a)
            batch = batch | {a.key}  # two positions can hold one network (a space with a canonical form)
    scan[1] = pos
    return out


def fitness(result: Result) -> float:
    """The single-objective fitness of a result: ``score[0]`` when it completed and met every constraint."""
    return float(result.score[0]) if result.ok and result.score else -math.inf


def mutable_dims(space: Space) -> int:
    return sum(len(c) > 1 for c in space.dims.values())


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    """Aging evolution: the population is a queue of the last ``population`` completed trials in the order they were
    told. Each child comes from a tournament: ``sample`` members drawn at random, the best is the parent, one gene is
    mutated (``Space.mutate``); the oldest member, not the worst, leaves when a child joins (Real et al., 2019, Alg. 1).

    The first ``population`` asks are random feasible archs. A child that was asked before or is infeasible is
    mutated again (a new tournament every ``retries // 5`` tries) and, failing ``retries`` tries, replaced by a random
    unseen arch, so no query is ever spent twice. Only ``score[0]`` of results that completed and met every constraint
    enter the population; failed or infeasible trials are dropped.

    Defaults P=20, S=7, greedier than the NAS-Bench-201 paper's P=10, S=3: a short budget rewards exploiting the best
    members, and aging keeps any one of them from taking over (the sweep is in benchmarks/RESULTS.md).
    """

    def __init__(self, space: Space, *, seed: int | None = 0, population: int = 20, sample: int = 7,
                 retries: int = 50) -> None:
        super().__init__(space, seed=seed)
        self.population_size = setting("evolution", "population", population, int, 1)
        self.sample_size = setting("evolution", "sample", sample, int, 1)  # a tournament takes at most P
        self.retries = setting("evolution", "retries", retries, int, 1)
        self.population: deque[tuple[Arch, float]] = deque()

    def hyper(self) -> dict[str, Any]:
        return {"population": self.population_size, "sample": self.sample_size, "retries": self.retries}

    def _ask(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        batch: set[str] = set()
        while len(out) < n:
            child = None
            if len(self._asked) + len(batch) >= self.population_size and self.population:
                child = self._child(batch)
            if child is None:
                more = random_unseen(self, 1, batch)
                if not more:
                    break
                child = more[0]
            out.append(child)
            batch.add(child.key)
        return out

    def _tournament(self) -> Arch:
        k = min(self.sample_size, len(self.population))
        picks = self.rng.choice(len(self.population), size=k, replace=False)
        best = max(picks, key=lambda i: (self.population[i][1], -i))  # ties: the oldest of the sample
        return self.population[best][0]

    def _child(self, batch: set[str]) -> Arch | None:
        if mutable_dims(self.space) == 0:
            return None
        every = max(1, self.retries // 5)
        parent = None
        for t in range(self.retries):
            if t % every == 0:
                parent = self._tournament()
            child = self.space.mutate(parent, self.rng)
            if child.key not in batch and not self.seen(child) and self.feasible(child):
                return child
        return None

    def _tell(self, arch: Arch, result: Result) -> None:
        f = fitness(result)
        if f == -math.inf:
            return
        self.population.append((arch, f))
        while len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest leaves, whatever its fitness
