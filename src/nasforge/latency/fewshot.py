"""Few-shot latency prediction for a new device: a prior meta-learned on other devices, adapted from a few samples.

HELP (Lee et al., 2021) meta-trains on the latencies of a set of archs measured on several devices, then adapts to a
new device from the latencies of a few fixed reference archs, which also serve as the device's "hardware embedding".
This is not HELP's MAML but a meta-learned *Bayesian linear* model (a hierarchical prior over devices), which suits
latency because it is close to linear in suitable features of an arch (the ops of a cell, analytic costs):

- features φ(arch): the arch's features (``family.features`` by default, or any function of an arch you pass, such as
  ``ArchFeatures(family, task, "analytic")``), each column divided by its largest magnitude over the meta-training archs
  (one-hot columns stay as they are); with ``interactions``, the products of every two columns as well (the
  non-additive part); and a constant;
- each device's latencies are divided by the mean latency of the reference archs (the hardware embedding sets the
  scale), so that devices of different speed share one weight space;
- meta-training (``meta_fit``): a ridge fit w_d of each meta-training device's normalised latencies; the prior over a
  device's weights is N(μ, Σ) with μ the mean of the w_d and Σ their covariance plus ``jitter``·I (k devices span only
  k − 1 directions; the jitter lets a new device leave that span a little);
- adaptation (``fit``, or ``adapt`` for a copy): the posterior mean of w given the new device's samples,
  w = μ + Σ Aᵀ (A Σ Aᵀ + ``noise``·I)⁻¹ (y − Aμ), A the samples' features and y their normalised latencies. The
  samples must include every reference arch. In HELP's terms: latency(arch, h) = scale(h)·φ(arch)·w(h).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..space import Arch
from .base import resolve_family
from .features import ArchFeatures
from .predictor import LatencyPredictor, PredictorError

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task


class FewShotError(PredictorError):
    """Bad input to the few-shot predictor (no reference archs, missing samples, mismatched columns)."""


class FewShotLatency(LatencyPredictor):
    """Meta-learned Bayesian linear latency model for a new device (see the module docstring).

    Contract: ``meta_fit(archs, columns)`` with the latencies of ``archs`` on known devices (``columns``: device name →
    one latency per arch, the reference archs among ``archs``); then ``fit(archs, ms)`` adapts to one new device from
    its few measured samples (every reference arch among them) and ``predict`` prices any arch of the family on it.
    Only those samples of the new device are used. Constructor arguments only store; a predictor that ``save``s
    takes its features from the family or an ``ArchFeatures`` (a file holds data, and a feature function is code).
    A meta-trained prior saves too, before any adaptation.
    """

    kind = "few-shot"

    def __init__(
        self,
        family: Family | str | Mapping[str, Any],
        task: Task,
        reference: Sequence[Mapping[str, Any]],
        *,
        features: Callable[[Arch], Any] | None = None,
        interactions: bool = False,
        jitter: float = 1e-4,
        noise: float = 1e-3,
        ridge: float = 1e-3,
        seed: int = 0,
    ) -> None:
        super().__init__(family, task, seed)
        self.reference = tuple(reference)
        self.features, self.interactions = features, interactions
        self.jitter, self.noise, self.ridge = jitter, noise, ridge
        self.col_scale: np.ndarray | None = None
        self.mu: np.ndarray | None = None
        self.cov: np.ndarray | None = None
        self.devices: tuple[str, ...] = ()
        self.weights: np.ndarray | None = None
        self.scale = 1.0

    # --- features -----------------------------------------------------------------------------------------------------
    def _raw(self, archs: Sequence[Arch]) -> np.ndarray:
        fn = self.features or self.fam.features
        return np.array([np.asarray(fn(a), dtype=float) for a in archs])

    def _phi(self, x: np.ndarray) -> np.ndarray:
        x = x / self.col_scale
        cols = [x]
        if self.interactions:
            i, j = np.triu_indices(x.shape[1], 1)
            cols.append(x[:, i] * x[:, j])
        cols.append(np.ones((len(x), 1)))
        return np.hstack(cols)

    def phi(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The design matrix φ (one row per arch), for pricing one set of archs on many devices (``predict_phi``)."""
        self._need_prior()
        return self._phi(self._raw(self.check(archs)))

    def _reference_rows(self, archs: Sequence[Arch], what: str) -> list[int]:
        if not self.reference:
            raise FewShotError("the few-shot predictor needs reference archs (their latencies set a device's scale)")
        pos: dict[str, int] = {}
        for i, a in enumerate(archs):
            pos.setdefault(a.key, i)
        keys = [a.key for a in self.check(self.reference)]
        missing = [k for k in keys if k not in pos]
        if missing:
            raise FewShotError(
                f"{what} needs the latencies of all {len(keys)} reference archs (they set the device's scale), and "
                f"{len(missing)} of them are missing; measure them too"
            )
        return [pos[k] for k in keys]

    def _need_prior(self) -> None:
        if self.mu is None or self.cov is None or self.col_scale is None:
            raise FewShotError("the few-shot predictor is not meta-trained yet; call meta_fit() first")

    # --- meta-training and adaptation ---------------------------------------------------------------------------------
    def meta_fit(self, archs: Sequence[Mapping[str, Any]], columns: Mapping[str, Sequence[float]]) -> FewShotLatency:
        """Learn the prior over devices from the latencies of ``archs`` on the devices of ``columns``."""
        if not columns:
            raise FewShotError("meta-training needs at least one device's latency column")
        checked = self.check(archs)
        x = self._raw(checked)
        top = np.abs(x).max(0)
        self.col_scale = np.where(top > 0, top, 1.0)
        phi = self._phi(x)
        ref = self._reference_rows(checked, "meta-training")
        gram = phi.T @ phi + self.ridge * np.eye(phi.shape[1])
        ws = []
        for name, col in columns.items():
            y = np.asarray(col, dtype=float)
            if y.shape != (len(phi),) or not np.all(y[ref] > 0):
                raise FewShotError(f"device {name!r}: need one latency per arch ({len(phi)}), positive on the "
                                   f"reference archs; got {y.size} values")
            ws.append(np.linalg.solve(gram, phi.T @ (y / y[ref].mean())))
        w = np.array(ws)
        self.mu = w.mean(0)
        self.cov = np.cov(w.T) if len(w) > 1 else np.zeros((w.shape[1], w.shape[1]))
        self.devices = tuple(columns)
        return self

    def fit(self, archs: Sequence[Mapping[str, Any]], ms: Sequence[float]) -> FewShotLatency:
        """Adapt to a new device from its measured samples (the reference archs and any others): the posterior mean."""
        self._need_prior()
        checked = self.check(archs)
        y = np.asarray(ms, dtype=float)
        if y.shape != (len(checked),) or not np.all(y > 0):
            raise FewShotError(f"adaptation needs one positive latency per arch, got {len(checked)} archs and "
                               f"{y.size} values")
        self.scale = float(y[self._reference_rows(checked, "adaptation")].mean())
        a = self._phi(self._raw(checked))
        cov = self.cov + self.jitter * np.eye(len(self.mu))  # the prior over the new device's weights
        k = a @ cov @ a.T + self.noise * np.eye(len(a))
        self.weights = self.mu + cov @ a.T @ np.linalg.solve(k, y / self.scale - a @ self.mu)
        self.fitted = True
        return self

    def adapt(self, archs: Sequence[Mapping[str, Any]], ms: Sequence[float]) -> FewShotLatency:
        """A copy adapted to one device (the meta-learned prior is shared, and stays ready for the next device)."""
        return copy.copy(self).fit(archs, ms)

    def zero_shot(self) -> FewShotLatency:
        """The prior mean as a predictor: one ranking for every device, in units of the reference archs' mean latency
        (the baseline that shows what adaptation adds)."""
        self._need_prior()
        out = copy.copy(self)
        out.weights, out.scale, out.fitted = self.mu, 1.0, True
        return out

    # --- prediction ---------------------------------------------------------------------------------------------------
    def predict_phi(self, phi: np.ndarray) -> np.ndarray:
        """Latencies (ms) of archs given by their design matrix ``phi(archs)``."""
        if not self.fitted or self.weights is None:
            raise FewShotError("the few-shot predictor is not adapted to a device yet; call fit() with its samples")
        return self.scale * (phi @ self.weights)

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        return self.predict_phi(self._phi(self._raw(archs)))


    # --- files: the fitted numbers themselves (a linear model is its weights) -----------------------------------------
    def _state(self) -> dict[str, Any]:
        self._need_prior()
        f = self.features
        if f is not None and not isinstance(f, ArchFeatures):
            raise PredictorError(
                "this few-shot predictor uses a custom feature function, which a file cannot hold (it is code); use "
                "the family's features or an ArchFeatures to save it"
            )
        feats = None if f is None else {"family": resolve_family(f.family).spec(), "task": f.task.to_dict(),
                                        "which": f.which}  # fmt: skip

        def arr(a: np.ndarray | None) -> Any:
            return None if a is None else np.asarray(a, dtype=float).tolist()

        return {
            "reference": [dict(self.check([a])[0]) for a in self.reference], "features": feats,
            "interactions": self.interactions, "jitter": self.jitter, "noise": self.noise, "ridge": self.ridge,
            "col_scale": arr(self.col_scale), "mu": arr(self.mu), "cov": arr(self.cov), "devices": list(self.devices),
            "weights": arr(self.weights), "scale": self.scale, "fitted": self.fitted,
        }  # fmt: skip

    @classmethod
    def _from_state(cls, family: Family, task: Task, seed: int, state: Mapping[str, Any]) -> FewShotLatency:
        from ..task import Task as _Task
        from .predictor import _family_from_file

        f = state["features"]
        feats = None if f is None else ArchFeatures(_family_from_file(f["family"]), _Task.from_dict(f["task"]),
                                                    str(f["which"]))  # fmt: skip
        m = cls(family, task, state["reference"], features=feats, interactions=bool(state["interactions"]),
                jitter=float(state["jitter"]), noise=float(state["noise"]), ridge=float(state["ridge"]), seed=seed)
        m.check(m.reference)

        def arr(v: Any, ndim: int) -> np.ndarray | None:
            if v is None:
                return None
            a = np.asarray(v, dtype=float)
            if a.ndim != ndim:
                raise ValueError(f"expected a {ndim}-d array, got {a.ndim}-d")
            return a

        m.col_scale, m.mu, m.cov = arr(state["col_scale"], 1), arr(state["mu"], 1), arr(state["cov"], 2)
        m.weights, m.scale = arr(state["weights"], 1), float(state["scale"])
        m.devices, m.fitted = tuple(str(d) for d in state["devices"]), bool(state["fitted"]) and m.weights is not None
        return m

    def _check_archs(self) -> list[Arch]:
        return self.check(self.reference)
