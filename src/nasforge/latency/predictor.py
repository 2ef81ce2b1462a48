"""Learned latency predictors: their interface, how they are scored, and the ``predictor`` latency source.

A ``LatencyPredictor`` learns a family's latency on one device from measured (arch, ms) pairs: model-level regressors
on architecture features (``model_level.py``), nn-Meter's kernel-level forests (``kernel_level.py``) and the few-shot
predictor meta-learned on other devices (``fewshot.py``). ``accuracy_report`` scores predictions the way the literature
does: ±10% accuracy (share predicted within 10% of the measured latency), RMSE and Spearman's ρ. ``PredictorLatency``
serves a trained predictor (an object or a saved file) to a study as the ``predictor`` source.

Saved predictors hold data, never code: a JSON file (``FORMAT``) with the family (a registered name and its settings),
the task, the predictor's settings and what it learned from: the training data of a regressor, which ``load`` fits
again (deterministically, with the saved seed), or the fitted numbers of a linear model. The file also holds the
predictions of a few archs, and ``load`` refuses a refit that does not reproduce them. A pickle (the format of older
versions) is refused unread: unpickling a file can run any command in it.
"""

from __future__ import annotations

import importlib
import json
import math
import os
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

FORMAT = "nasforge-latency-predictor/1"
_KINDS: dict[str, type[LatencyPredictor]] = {}  # kind -> class, filled as subclasses are defined
_CHECK_ARCHS = 8  # archs whose saved predictions a loaded predictor must reproduce
_CHECK_RTOL = 1e-6


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
    Fitted predictors pickle (to send them to worker processes) and ``save`` to / ``load`` from JSON files (see the
    module docstring). Subclasses implement ``fit``, ``_predict``, ``_state`` (the JSON data that rebuilds the
    fitted predictor) and ``_from_state``.
    """

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            _KINDS[cls.kind] = cls

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

    # --- files: data, never code ---------------------------------------------------------------------------------
    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """JSON data (numbers, strings, lists, dicts) from which ``_from_state`` rebuilds this fitted predictor."""

    @classmethod
    @abstractmethod
    def _from_state(cls, family: Family, task: Task, seed: int, state: Mapping[str, Any]) -> LatencyPredictor: ...

    def _check_archs(self) -> list[Arch]:
        """A few archs whose predictions the file keeps, for ``load`` to compare (archs it was trained on)."""
        return []

    def save(self, path: str | Path) -> Path:
        """Write the predictor as JSON (atomically); a predictor that a file cannot describe is a one-line error."""
        state = self._state()
        spec = self.fam.spec()
        if "import" not in spec and spec.get("loadable") is False:
            raise PredictorError(
                f"family {self.fam.name!r} is not registered and has no import path, so a saved predictor could not "
                "rebuild it; register it or give BuilderFamily(..., ref='package.module:attr')"
            )
        doc: dict[str, Any] = {"format": FORMAT, "kind": self.kind, "family": spec, "task": self.task.to_dict(),
                               "seed": self.seed, "state": state}  # fmt: skip
        if self.fitted:
            archs = self._check_archs()[:_CHECK_ARCHS]
            doc["check"] = {"archs": [dict(a) for a in archs], "ms": [float(v) for v in self.predict(archs)]}
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, p)  # a reader never sees half a file
        return p

    @staticmethod
    def load(path: str | Path) -> LatencyPredictor:
        """The predictor saved in ``path``. Only data is read: a pickle or any other file is refused in one line."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            msg = f"predictor file {p} does not exist; train one with `nasforge latency predictor train`"
            raise PredictorError(msg) from None
        except OSError as e:
            raise PredictorError(f"predictor file {p} cannot be read ({e.strerror or e})") from None
        if raw[:1] == b"\x80":
            raise PredictorError(
                f"{p} is a pickle, which nasforge no longer loads (unpickling a file can run any command in it); "
                "train the predictor again to save it in the JSON format"
            )
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PredictorError(f"{p} is not a nasforge latency predictor (a JSON file of format {FORMAT})")
        cls = _KINDS.get(str(doc.get("kind")))
        if cls is None:
            kinds = ", ".join(_KINDS)
            raise PredictorError(f"{p} holds a predictor of unknown kind {doc.get('kind')!r}; known: {kinds}")
        try:
            from ..task import Task

            pred = cls._from_state(_family_from_file(doc["family"]), Task.from_dict(doc["task"]),
                                   int(doc.get("seed", 0)), doc["state"])  # fmt: skip
            check = doc.get("check")
            if check is not None:
                want, got = np.asarray(check["ms"], dtype=float), pred.predict(check["archs"])
        except NasforgeError as e:
            raise PredictorError(f"predictor file {p} cannot be used: {e}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise PredictorError(f"predictor file {p} is damaged ({type(e).__name__}: {e}); train it again") from None
        if check is not None and not np.allclose(got, want, rtol=_CHECK_RTOL, atol=0.0):
            off = float(np.max(np.abs(got / want - 1)))
            raise PredictorError(
                f"predictor file {p}: the predictor fitted again from its data predicts up to {off:.2%} off the saved "
                "predictions (another scikit-learn version?); train it again with this installation"
            )
        return pred


def _family_from_file(spec: Any) -> Family:
    """The family a predictor file names: a registered name with its settings, or an import path naming a ``Family``
    object. Nothing from the file is called: an import path to a function (which ``load_family`` would call) is
    refused."""
    from ..spaces.base import Family, create_family

    if not isinstance(spec, Mapping):
        raise PredictorError(f"the family in a predictor file must be a JSON object, got {spec!r}")
    if "import" in spec:
        ref = str(spec["import"])
        mod_name, _, attr = ref.partition(":")
        try:
            obj: Any = importlib.import_module(mod_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError, ValueError) as e:
            msg = f"cannot find family {ref!r} of a predictor file ({e}); is it on PYTHONPATH?"
            raise PredictorError(msg) from None
        if not isinstance(obj, Family):
            raise PredictorError(
                f"the family {ref!r} of a predictor file is not a Family object; a file may only name one (nothing "
                "it names is called)"
            )
        return obj
    config = spec.get("config") or {}
    if not isinstance(config, Mapping):
        raise PredictorError(f"the family settings in a predictor file must be a JSON object, got {config!r}")
    return create_family(str(spec.get("name")), **dict(config))


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
