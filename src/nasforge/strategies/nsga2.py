"""NSGA-II (Deb et al., IEEE TEC 2002) for two or more objectives, as an ask/tell strategy over categorical genes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import NasforgeError
from ..pareto import hypervolume, non_dominated_sort, pareto_mask, rank_and_crowding
from ..space import Arch, Space
from ..trial import Result
from .base import Strategy, register_strategy, setting
from .evolution import random_unseen


@register_strategy("nsga2")
class NSGA2(Strategy):
    """Elitist multi-objective evolution on ``Result.score`` (a tuple, greater is better in every component).

    Generation 0 is ``population`` random feasible archs. Every child comes from two binary tournaments on (rank,
    crowding distance), uniform crossover with probability ``crossover_prob``, then per-gene resampling with
    probability ``mutation_prob`` (default min(0.1, 1/number of genes): Deb's 1/genes, but no more than 0.1 on short
    genomes, where uniform crossover already mixes plenty; the comparison is in benchmarks/RESULTS.md). When
    ``population`` children have completed, parents and children are merged and the next parents are filled front by
    front, the last front cut by crowding distance (Deb et al., 2002, §III-C). Asks made while a generation is still
    running draw more children from the current parents, so parallel workers never wait; children that complete late
    join the next merge.

    A child asked before (or infeasible) is drawn again, up to ``retries`` times, then replaced by a random unseen arch.
    Failed or infeasible trials have no score and take no part in selection.

    ``hypervolumes[g]`` is the hypervolume of every completed result's Pareto front after generation g (g = 0: the
    random one; ``generation`` counts the generations completed), measured from ``ref_point`` (in score orientation).
    By default the reference is fixed at the first survival: the worst value of generation 0 in each objective, less
    10% of that objective's range, so that the figures of one run are comparable.
    """

    max_objectives = None

    def __init__(self, space: Space, *, seed: int | None = 0, population: int = 30, crossover_prob: float = 0.9,
                 mutation_prob: float | None = None, ref_point: list[float] | None = None, retries: int = 100) -> None:
        super().__init__(space, seed=seed)
        self.population_size = setting("nsga2", "population", population, int, 2)
        self.crossover_prob = setting("nsga2", "crossover_prob", crossover_prob, float, 0, 1)
        self.mutation_prob = setting("nsga2", "mutation_prob", mutation_prob, float, 0, 1, optional=True)
        if ref_point is not None and (not isinstance(ref_point, list | tuple) or not ref_point):
            raise NasforgeError(f"nsga2: ref_point must be a list of numbers, one per objective, got {ref_point!r}")
        self.ref_point = None if ref_point is None else [setting("nsga2", "ref_point", v, float) for v in ref_point]
        self.retries = setting("nsga2", "retries", retries, int, 1)
        self.parents: list[tuple[Arch, np.ndarray]] = []
        self._pool: list[tuple[Arch, np.ndarray]] = []  # completed children since the last survival
        self._rank = np.zeros(0, dtype=int)
        self._crowd = np.zeros(0)
        self.hypervolumes: list[float] = []
        self.generation = 0

    def hyper(self) -> dict[str, Any]:
        return {"population": self.population_size, "crossover_prob": self.crossover_prob,
                "mutation_prob": self.mutation_prob, "ref_point": self.ref_point, "retries": self.retries}

    # --- proposing ----------------------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        batch: set[str] = set()
        while len(out) < n:
            child = self._child(batch) if self.parents else None
            if child is None:
                more = random_unseen(self, 1, batch)
                if not more:
                    break
                child = more[0]
            out.append(child)
            batch.add(child.key)
        return out

    def _tournament(self) -> Arch:
        i, j = self.rng.integers(len(self.parents), size=2)
        better_j = (self._rank[j], -self._crowd[j]) < (self._rank[i], -self._crowd[i])
        return self.parents[j if better_j else i][0]

    def _child(self, batch: set[str]) -> Arch | None:
        names = self.space.names
        pm = self.mutation_prob if self.mutation_prob is not None else min(0.1, 1.0 / len(names))
        for _ in range(self.retries):
            a, b = self._tournament(), self._tournament()
            genes = dict(self.space.crossover(a, b, self.rng) if self.rng.random() < self.crossover_prob else a)
            for k, flip in zip(names, self.rng.random(len(names)) < pm, strict=True):
                if flip:  # resample the gene uniformly (it may keep its value)
                    vals = self.space.dims[k].values
                    genes[k] = vals[int(self.rng.integers(len(vals)))]
            child = self.space.validate(genes)
            if child.key not in batch and not self.seen(child) and self.feasible(child):
                return child
        return None

    # --- learning -----------------------------------------------------------------------------------------------
    def _tell(self, arch: Arch, result: Result) -> None:
        if not result.ok:
            return
        score = np.asarray(result.score, dtype=float)
        if not np.isfinite(score).all():
            return
        self._pool.append((arch, score))
        if len(self._pool) >= self.population_size:
            self._survive()

    def _survive(self) -> None:
        merged = self.parents + self._pool
        self._pool = []
        F = np.stack([s for _, s in merged])
        keep: list[int] = []
        for front in non_dominated_sort(F):
            room = self.population_size - len(keep)
            if room <= 0:
                break
            if len(front) <= room:
                keep.extend(front.tolist())
            else:  # the last front that fits only partly: the least crowded survive
                _, crowd = rank_and_crowding(F[front])
                order = np.argsort(-crowd, kind="stable")
                keep.extend(front[order[:room]].tolist())
        self.parents = [merged[i] for i in keep]
        self._rank, self._crowd = rank_and_crowding(np.stack([s for _, s in self.parents]))
        if self.ref_point is None:
            lo, hi = F.min(axis=0), F.max(axis=0)
            span = np.where(hi > lo, hi - lo, 1.0)
            self.ref_point = (lo - 0.1 * span).tolist()
        self.generation += 1
        self.hypervolumes.append(self.hypervolume())

    # --- results ------------------------------------------------------------------------------------------------
    def _completed(self) -> tuple[list[Arch], np.ndarray]:
        done = [(a, r.score) for a, r in self.history if r.ok and r.score is not None and np.isfinite(r.score).all()]
        if not done:
            return [], np.zeros((0, 0))
        return [a for a, _ in done], np.asarray([s for _, s in done], dtype=float)

    def pareto_front(self) -> tuple[list[Arch], np.ndarray]:
        """The non-dominated archs among all completed results, and their scores (rows, greater is better)."""
        archs, F = self._completed()
        if not archs:
            return [], F
        mask = pareto_mask(F)
        return [a for a, m in zip(archs, mask, strict=True) if m], F[mask]

    def hypervolume(self, ref_point: list[float] | None = None) -> float:
        """Hypervolume of ``pareto_front()`` from ``ref_point`` (default: this strategy's reference)."""
        ref = ref_point if ref_point is not None else self.ref_point
        _, F = self.pareto_front()
        if len(F) == 0:
            return 0.0
        if ref is None:
            raise NasforgeError("nsga2: no reference point yet; pass ref_point=[...] (one value per objective)")
        return hypervolume(F, ref)
