"""Model-level latency predictor: a regressor on architecture features, with adaptive sampling.

Features (``features.ArchFeatures``): the family's encoding of the arch (for mobilenet, the OFA encoding that ignores
unused block slots) plus analytic costs of its layer list (MACs, params, kernel counts, activation traffic, bytes of
activations large enough to be page-faulted afresh by the allocator). Regressors: gradient boosting or a random forest
on log latency (a relative error is what ±10% accuracy scores), or a linear model of latency on standardised features
(the analytic costs alone suit it best).

Adaptive sampling (after nn-Meter's): the training archs whose out-of-fold prediction errs by more than 10% get
mutated neighbours (``Space.mutate``), which are measured and added; a few rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..space import Arch
from .features import FEATURE_SETS, ArchFeatures
from .predictor import LatencyPredictor, PredictorError

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task

REGRESSORS = ("gbr", "rf", "ridge")


class ModelPredictor(LatencyPredictor):
    """Model-level regressor on architecture features + analytic costs (see the module docstring).

    ``regressor``: ``"gbr"`` (gradient boosting on log latency), ``"rf"`` (random forest on log latency) or
    ``"ridge"`` (a linear model of latency on standardised features). ``features``: ``"both"`` (the encoding and the
    analytic costs), ``"encoding"`` or ``"analytic"``.
    """

    kind = "model-level"

    def __init__(
        self,
        family: Family | str | Mapping[str, Any],
        task: Task,
        regressor: str = "gbr",
        seed: int = 0,
        features: str = "both",
    ) -> None:
        super().__init__(family, task, seed)
        self.regressor = regressor
        self.feature_set = features
        self.model: Any = None
        self.data: tuple[list[Arch], list[float]] = ([], [])  # what it was fitted on: a saved file keeps it

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.feature_set not in FEATURE_SETS:
            raise PredictorError(f"unknown feature set {self.feature_set!r}; use {', '.join(FEATURE_SETS)}")
        return ArchFeatures(self.family, self.task, self.feature_set).many(archs)

    def _make(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.regressor == "gbr":
            return GradientBoostingRegressor(
                n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=self.seed
            )
        if self.regressor == "rf":
            return RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=self.seed, n_jobs=1)
        if self.regressor == "ridge":
            return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        raise PredictorError(f"unknown regressor {self.regressor!r}; use {', '.join(REGRESSORS)}")

    def _target(self, ms: np.ndarray) -> np.ndarray:
        return ms if self.regressor == "ridge" else np.log(ms)

    def _untarget(self, y: np.ndarray) -> np.ndarray:
        return y if self.regressor == "ridge" else np.exp(y)

    def fit(self, archs: Sequence[Mapping[str, Any]], ms: Sequence[float]) -> ModelPredictor:
        checked = self.check(archs)
        y = np.asarray(ms, dtype=float)
        if len(checked) != len(y) or len(y) < 3 or not np.all(y > 0):
            raise PredictorError(f"need at least 3 archs with positive latencies, got {len(checked)} and {len(y)}")
        self.model = self._make().fit(self.features(checked), self._target(y))
        self.data = (checked, [float(v) for v in y])
        self.fitted = True
        return self

    # the regressor is saved as its training data and fitted again on load (deterministic: seeded, one job)
    def _state(self) -> dict[str, Any]:
        if not self.fitted:
            raise PredictorError(f"the {self.kind} predictor is not trained yet; call fit() before save()")
        archs, ms = self.data
        return {"regressor": self.regressor, "features": self.feature_set, "archs": [dict(a) for a in archs],
                "ms": ms}  # fmt: skip

    @classmethod
    def _from_state(cls, family: Family, task: Task, seed: int, state: Mapping[str, Any]) -> ModelPredictor:
        p = cls(family, task, str(state["regressor"]), seed, str(state["features"]))
        return p.fit(state["archs"], [float(v) for v in state["ms"]])

    def _check_archs(self) -> list[Arch]:
        return self.data[0]

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        return self._untarget(self.model.predict(self.features(archs)))

    def out_of_fold(self, archs: Sequence[Arch], ms: Sequence[float], folds: int = 5) -> np.ndarray:
        """Each arch predicted by a model that did not see it (k-fold)."""
        x, y = self.features(list(archs)), np.asarray(ms, dtype=float)
        pred = np.empty_like(y)
        idx = np.random.default_rng(self.seed).permutation(len(y))
        for f in range(folds):
            test = idx[f::folds]
            train = np.setdiff1d(idx, test)
            m = self._make().fit(x[train], self._target(y[train]))
            pred[test] = self._untarget(m.predict(x[test]))
        return pred


def adaptive_fit(
    predictor: ModelPredictor,
    archs: Sequence[Mapping[str, Any]],
    ms: Sequence[float],
    measure: Callable[[list[Arch]], Sequence[float]],
    *,
    rounds: int = 2,
    per_bad: int = 2,
    max_new: int = 40,
    tol: float = 0.10,
) -> tuple[ModelPredictor, list[Arch], np.ndarray, list[dict[str, Any]]]:
    """Model-level adaptive sampling: archs whose out-of-fold prediction errs by more than ``tol`` get ``per_bad``
    mutated neighbours each (at most ``max_new`` per round), measured with ``measure`` and added; then refit.
    Returns the predictor, the grown training set and its latencies, and a per-round history."""
    fam = predictor.fam
    rng = np.random.default_rng(predictor.seed)
    pool = predictor.check(archs)
    y = np.asarray(ms, dtype=float)
    seen = {a.key for a in pool}
    history: list[dict[str, Any]] = []
    for r in range(rounds):
        oof = predictor.out_of_fold(pool, y)
        err = np.abs(oof / y - 1)
        new: list[Arch] = []
        for i in np.argsort(-err):
            if err[i] <= tol or len(new) >= max_new:
                break
            for _ in range(per_bad):
                c = fam.space.mutate(pool[i], rng)
                if c.key not in seen and len(new) < max_new:
                    seen.add(c.key)
                    new.append(c)
        history.append({"round": r + 1, "oof_acc10": float(np.mean(err <= tol)), "added": len(new)})
        if not new:
            break
        pool += new
        y = np.concatenate([y, np.asarray(measure(new), dtype=float)])
    predictor.fit(pool, y)
    return predictor, pool, y, history
