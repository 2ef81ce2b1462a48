"""Model-based search: a surrogate ensemble fitted to the results so far picks the next archs by an acquisition rule.

Beyond the chapter's strategies, in the spirit of BANANAS (White et al., AAAI 2021): an ensemble of small MLPs on
``Space.encode`` features, expected improvement (or UCB / Thompson sampling) over the ensemble's mean and spread, and
candidates that are every unseen feasible arch when the space is small enough to list, otherwise mutations of the
best archs found plus random samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NasforgeError
from ..space import Arch, Space
from ..trial import Result
from .base import Strategy, register_strategy, setting
from .evolution import mutable_dims, random_unseen

if TYPE_CHECKING:  # the surrogate is torch: imported when first fitted, so that listing strategies stays light
    from ..surrogate import Surrogate

ACQUISITIONS = ("ei", "ucb", "ts", "mean")


def encode_indices(space: Space, idx: np.ndarray) -> np.ndarray:
    """``Space.encode`` of the archs at grid positions ``idx``, vectorised: row k equals ``encode(at(idx[k]))``."""
    radix = [len(c) for c in space.dims.values()]
    digits = np.unravel_index(np.asarray(idx, dtype=np.int64), radix)
    X = np.zeros((len(idx), sum(radix)), dtype=np.float32)
    off = 0
    for d, r in zip(digits, radix, strict=True):
        X[np.arange(len(idx)), off + d] = 1.0
        off += r
    return X


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """EI for maximisation (Jones et al., 1998); where the spread is zero it is the plain improvement."""
    sd = np.maximum(sd, 1e-9)
    z = (mu - best) / sd
    from scipy.special import ndtr  # scipy.special takes a second to import: only model-based search needs it

    return (mu - best) * ndtr(z) + sd * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def ranked(values: np.ndarray, k: int) -> Iterator[int]:
    """Indices of ``values`` from the largest down, ties by position (the order of a stable argsort of -values).

    The first ``k`` (and any tied with the k-th) come from a partial sort, O(n); the rest only if the caller reads on.
    """
    n = len(values)
    if k < n:
        thr = values[np.argpartition(-values, k - 1)[k - 1]]
        head = np.flatnonzero(values >= thr)
        head = head[np.lexsort((head, -values[head]))]
        yield from head.tolist()
        done = np.zeros(n, dtype=bool)
        done[head] = True
    else:
        done = np.zeros(n, dtype=bool)
    for j in np.argsort(-values, kind="stable").tolist():
        if not done[j]:
            yield j


@register_strategy("predictor")
class PredictorSearch(Strategy):
    """Surrogate-guided search on ``score[0]``.

    - The first ``initial`` asks are the initial design: ``balanced`` (default) gives every value of every dimension an
      equal share, ``random`` draws them at random (so that no value is judged from one or two unlucky archs).
    - Then a ``Surrogate`` (``members`` MLPs) is fitted to (encode(arch), score[0]) of the completed feasible results;
      it is refitted when the number of results has grown by ``refit`` (a fraction, at least one result) since the last
      fit, from its previous weights for ``warm_steps`` steps, so that the per-trial cost stays low on long runs.
    - Candidates: every unseen arch when ``space.size <= pool_limit`` (predictions cached between refits); otherwise
      ``mutants`` one- or two-gene mutations of each of the ``top`` best archs plus ``randoms`` random samples.
    - The next ``n`` archs are the feasible candidates with the highest acquisition: ``ei`` (expected improvement over
      the best score), ``ucb`` (mean + ``beta``·spread), ``ts`` (one member's prediction, a new member for every
      arch of a batch: Thompson sampling) or ``mean``. Feasibility is checked lazily, best candidate first, and an
      infeasible candidate is never looked at again.

    The defaults were chosen with ``benchmarks/tune_strategies.py``; the comparison and the per-trial cost (mostly the
    refits and the grid-wide predictions after each refit) are in benchmarks/RESULTS.md.
    """

    def __init__(self, space: Space, *, seed: int | None = 0, initial: int = 15, design: str = "balanced",
                 acquisition: str = "ei", beta: float = 1.0, members: int = 5, hidden: int = 64, layers: int = 1,
                 steps: int = 200, warm_steps: int = 30, lr: float = 1e-2, weight_decay: float = 1e-4,
                 bootstrap: bool = False, prior: float = 0.0, refit: float = 0.05, pool_limit: int = 50_000,
                 top: int = 10, mutants: int = 100, randoms: int = 1_000) -> None:
        super().__init__(space, seed=seed)
        if acquisition not in ACQUISITIONS:
            raise NasforgeError(f"predictor: unknown acquisition {acquisition!r}; use one of {', '.join(ACQUISITIONS)}")
        if design not in ("random", "balanced"):
            raise NasforgeError(f"predictor: unknown design {design!r}; use 'balanced' or 'random'")
        who = "predictor"
        self.initial = setting(who, "initial", initial, int, 2)
        self.design = design
        self.acquisition = acquisition
        self.beta = setting(who, "beta", beta, float, 0)
        self.members = setting(who, "members", members, int, 1)
        self.hidden = setting(who, "hidden", hidden, int, 1)
        self.layers = setting(who, "layers", layers, int, 1)
        self.steps = setting(who, "steps", steps, int, 1)
        self.warm_steps = setting(who, "warm_steps", warm_steps, int, 1)
        self.lr = setting(who, "lr", lr, float, 0, lo_open=True)
        self.weight_decay = setting(who, "weight_decay", weight_decay, float, 0)
        self.bootstrap = setting(who, "bootstrap", bootstrap, bool)
        self.prior = setting(who, "prior", prior, float, 0)
        self.refit = setting(who, "refit", refit, float, 0, 1, lo_open=True)
        self.pool_limit = setting(who, "pool_limit", pool_limit, int, 0)
        self.top = setting(who, "top", top, int, 1)
        self.mutants = setting(who, "mutants", mutants, int, 0)
        self.randoms = setting(who, "randoms", randoms, int, 0)
        self.surrogate: Surrogate | None = None
        self._design: list[Arch] | None = None
        self._X: list[np.ndarray] = []
        self._y: list[float] = []
        self._archs: list[Arch] = []
        self._fitted_at = 0
        self._avail: np.ndarray | None = None  # small spaces: grid positions still open (unseen, not known infeasible)
        self._pred: np.ndarray | None = None  # small spaces: cached member predictions over the whole grid
        self._mu = self._sd = np.zeros(0)

    def hyper(self) -> dict[str, Any]:
        keys = ("initial", "design", "acquisition", "beta", "members", "hidden", "layers", "steps", "warm_steps", "lr",
                "weight_decay", "bootstrap", "prior", "refit", "pool_limit", "top", "mutants", "randoms")
        return {k: getattr(self, k) for k in keys}

    @property
    def small(self) -> bool:
        return self.space.size <= self.pool_limit

    # --- proposing ----------------------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Arch]:
        if self.small and self._avail is None:
            self._avail = np.ones(self.space.size, dtype=bool)
            for a in self._archs:  # archs told before the first ask (replay of foreign trials)
                self._avail[self.space.index(a)] = False
        if len(self._y) < max(self.initial, 2):
            return self._take_design(n)
        fresh = self._fit_if_due()
        if self.small:
            out = self._ask_pool(n, fresh)
        else:
            out = self._ask_sampled(n)
        if len(out) < n:  # nothing promising left that is feasible: random unseen archs, if any
            out += self._take_random(n - len(out), {a.key for a in out})
        return out

    def _take_design(self, n: int) -> list[Arch]:
        """The initial design: ``design="balanced"`` gives every value of every dimension an equal share of the first
        ``initial`` archs (a Latin-hypercube-like design: each column is a shuffled repeat of its values), so that no
        value is judged from one or two unlucky archs; archs already seen or infeasible are replaced by random ones."""
        if self.design == "balanced" and self._design is None:
            dims = self.space.dims.items()
            cols = [self.rng.permutation(np.resize(np.arange(len(c)), self.initial)) for _, c in dims]
            self._design = [self.space.validate({k: c.values[int(col[i])] for (k, c), col in zip(dims, cols,
                                                                                               strict=True)})
                            for i in range(self.initial)]
        out: list[Arch] = []
        batch: set[str] = set()
        while len(out) < n and self._design:
            a = self._design.pop(0)
            if a.key not in batch and not self.seen(a) and self.feasible(a):
                out.append(a)
                batch.add(a.key)
                if self._avail is not None:
                    self._avail[self.space.index(a)] = False
        return out + self._take_random(n - len(out), batch)

    def _take_random(self, n: int, batch: set[str]) -> list[Arch]:
        out = random_unseen(self, n, batch)
        if self._avail is not None:
            for a in out:
                self._avail[self.space.index(a)] = False
        return out

    def _fit_if_due(self) -> bool:
        n = len(self._y)
        due = self.surrogate is None or n - self._fitted_at >= max(1, int(self.refit * n))
        if due:
            if self.surrogate is None:
                from ..surrogate import Surrogate

                self.surrogate = Surrogate(
                    members=self.members, hidden=self.hidden, layers=self.layers, steps=self.steps,
                    warm_steps=self.warm_steps, lr=self.lr, weight_decay=self.weight_decay, bootstrap=self.bootstrap,
                    prior=self.prior, seed=int(self.rng.integers(2**31)),
                )
            self.surrogate.fit(np.stack(self._X), np.asarray(self._y), warm=self.surrogate.n_fit > 0)
            self._fitted_at = n
        return due

    def _scores(self, P: np.ndarray, n: int, mu: np.ndarray | None = None, sd: np.ndarray | None = None) -> np.ndarray:
        """Acquisition values from member predictions P (members × candidates), or from their mean and spread when
        given; for ``ts``, one row per batch slot."""
        if self.acquisition == "ts":
            return P[self.rng.integers(len(P), size=n)]
        if mu is None or sd is None:
            mu, sd = P.mean(0), P.std(0)
        if self.acquisition == "ei":
            return expected_improvement(mu, sd, max(self._y))[None]
        if self.acquisition == "ucb":
            return (mu + self.beta * sd)[None]
        return mu[None]

    def _ask_pool(self, n: int, fresh: bool) -> list[Arch]:
        if fresh or self._pred is None:  # predictions for the whole grid, kept until the next refit
            self._pred = self.surrogate.predict_members(encode_indices(self.space, np.arange(self.space.size)))
            self._mu, self._sd = self._pred.mean(0), self._pred.std(0)
        open_idx = np.flatnonzero(self._avail)
        if not len(open_idx):
            return []
        if self.acquisition == "ts":
            A = self._scores(self._pred[:, open_idx], n)
        else:
            A = self._scores(self._pred, n, self._mu[open_idx], self._sd[open_idx])
        out: list[Arch] = []
        for row in A:
            for j in ranked(row, 4 * n + 16):
                i = int(open_idx[j])
                if not self._avail[i]:
                    continue
                a = self.space.at(i)
                self._avail[i] = False  # asked now, or infeasible for good
                if self.seen(a) or a in out:  # another position of a network already taken (canonical spaces)
                    continue
                if self.feasible(a):
                    out.append(a)
                    if len(A) > 1 or len(out) == n:
                        break
            if len(out) == n:
                break
        return out

    def _candidates(self) -> list[Arch]:
        order = np.argsort(-np.asarray(self._y), kind="stable")[: self.top]
        seen: set[str] = set()
        out: list[Arch] = []
        k = mutable_dims(self.space)
        for i in order:
            for _ in range(self.mutants if k else 0):
                a = self.space.mutate(self._archs[i], self.rng, n=1 if k < 2 or self.rng.random() < 0.5 else 2)
                if a.key not in seen and not self.seen(a):
                    seen.add(a.key)
                    out.append(a)
        for _ in range(self.randoms):
            a = self.space.sample(self.rng)
            if a.key not in seen and not self.seen(a):
                seen.add(a.key)
                out.append(a)
        return out

    def _ask_sampled(self, n: int) -> list[Arch]:
        cands = self._candidates()
        if not cands:
            return []
        A = self._scores(self.surrogate.predict_members(self.space.encode_many(cands)), n)
        out: list[Arch] = []
        taken: set[str] = set()
        for row in A:
            for j in ranked(row, 4 * n + 16):
                a = cands[j]
                if a.key in taken:
                    continue
                taken.add(a.key)
                if self.feasible(a):
                    out.append(a)
                    if len(A) > 1 or len(out) == n:
                        break
            if len(out) == n:
                break
        return out

    # --- learning -----------------------------------------------------------------------------------------------
    def _tell(self, arch: Arch, result: Result) -> None:
        if self._avail is not None:
            self._avail[self.space.index(arch)] = False
        if not (result.ok and result.score) or not np.isfinite(result.score[0]):
            return
        self._archs.append(arch)
        self._X.append(self.space.encode(arch))
        self._y.append(float(result.score[0]))
