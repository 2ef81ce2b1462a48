"""Learned latency predictors: their interface, how they are scored, and the ``predictor`` latency source.

A ``LatencyPredictor`` learns a family's latency on one device from measured (arch, ms) pairs: model-level regressors
on architecture features (``model_level.py``), nn-Meter's kernel-level forests (``kernel_level.py``) and the few-shot
predictor meta-learned on other devices (``fewshot.py``). ``accuracy_report`` scores predictions the way the literature
does: ±10% accuracy (share predicted within 10% of the measured latency), RMSE and Spearman's ρ. ``PredictorLatency``
serves a trained predictor (an object or a saved file) to a study as the ``predictor`` source.
"""

from __future__ import annotations

import math
import pickle
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import NasforgeError
from ..space import Arch
from .base import LatencyError, LatencyModel, register_source, resolve_family

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task


class PredictorError(LatencyError):
    """A predictor asked to work outside what it was trained on, or used before it is trained."""


def accuracy_report(pred: Sequence[float], measured: Sequence[float], tol: float = 0.10) -> dict[str, float]:
    """±``tol`` accuracy (share of |pred/measured − 1| ≤ tol), RMSE (ms), MAPE and Spearman's ρ."""
    from scipy.stats import spearmanr

    p, m = np.asarray(pred, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape or p.size == 0:
        raise PredictorError(f"need as many predictions as measurements, got {p.size} and {m.size}")
    rel = np.abs(p / m - 1.0)
    rho = float(spearmanr(p, m)[0]) if p.size > 2 else math.nan
    return {
        f"acc{round(tol * 100)}": float(np.mean(rel <= tol)),
        "rmse_ms": float(np.sqrt(np.mean((p - m) ** 2))),
        "mape": float(np.mean(rel)),
        "spearman": rho,
        "n": int(p.size),
    }


class LatencyPredictor(ABC):
    """A latency predictor for one family and task.

    Contract: ``fit(archs, ms)`` learns from measured (arch, latency) pairs and returns self; ``predict(archs)`` returns
    one latency in ms per arch; an arch that is not of the family raises ``PredictorError`` (a ``NasforgeError``).
    Fitted predictors pickle (``save`` / ``load``). Subclasses implement ``fit`` and ``_predict``.
    """

    kind: ClassVar[str] = ""

    def __init__(self, family: Family | str | Mapping[str, Any], task: Task, seed: int = 0) -> None:
        self.family = family
        self.task = task
        self.seed = seed
        self.fitted = False

    @property
    def fam(self) -> Family:
        return resolve_family(self.family)

    @property
    def family_name(self) -> str:
        return self.fam.name

    def check(self, archs: Sequence[Mapping[str, Any]]) -> list[Arch]:
        fam = self.fam
        out = []
        for a in archs:
            try:
                out.append(fam.space.validate(a))
            except NasforgeError as e:
                raise PredictorError(
                    f"this {self.kind} predictor was trained on family {fam.name!r} and cannot price an arch of "
                    f"another space ({e}); train a predictor on that family"
                ) from None
        return out

    @abstractmethod
    def fit(self, archs: Sequence[Mapping[str, Any]], ms: Sequence[float]) -> LatencyPredictor: ...

    @abstractmethod
    def _predict(self, archs: list[Arch]) -> np.ndarray: ...

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        checked = self.check(archs)
        if not self.fitted:
            raise PredictorError(f"the {self.kind} predictor is not trained yet; call fit() or load a trained one")
        return self._predict(checked)

    def evaluate(self, archs: Sequence[Mapping[str, Any]], ms: Sequence[float]) -> dict[str, float]:
        return accuracy_report(self.predict(archs), ms)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(pickle.dumps(self))
        return p

    @staticmethod
    def load(path: str | Path) -> LatencyPredictor:
        p = Path(path)
        try:
            obj = pickle.loads(p.read_bytes())
        except FileNotFoundError:
            msg = f"predictor file {p} does not exist; train one with `nasforge latency predictor train`"
            raise PredictorError(msg) from None
        except Exception as e:  # any unpickling failure means the same thing to the user
            raise PredictorError(f"predictor file {p} cannot be read ({type(e).__name__}); train it again") from None
        if not isinstance(obj, LatencyPredictor):
            raise PredictorError(f"{p} does not hold a nasforge latency predictor")
        return obj


@register_source("predictor")
class PredictorLatency(LatencyModel):
    """Latency from a trained predictor (an object or the path of a saved one), as a study cost model."""

    def __init__(
        self,
        family: Family | str | Mapping[str, Any],
        task: Task,
        predictor: LatencyPredictor | str | Path,
        metric: str = "latency_ms",
    ) -> None:
        super().__init__(family, task, metric)
        self.predictor = predictor

    @property
    def model(self) -> LatencyPredictor:
        if not isinstance(self.predictor, LatencyPredictor):
            self.predictor = LatencyPredictor.load(self.predictor)
        p = self.predictor
        if p.family_name != self.fam.name:
            raise PredictorError(
                f"the predictor was trained on family {p.family_name!r}, not {self.fam.name!r}; train one on "
                f"{self.fam.name!r}"
            )
        return p

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        model = self.model
        return model.predict([self.check(a) for a in archs])

    def config(self) -> dict[str, Any]:
        p = self.predictor
        return {**super().config(), "predictor": str(p) if isinstance(p, str | Path) else p.kind}
