"""Learned latency predictors: kernel-level (nn-Meter) and model-level, with adaptive sampling and evaluation.

Kernel-level (nn-Meter, Zhang et al., 2021). A network runs as a sequence of *kernels*; nn-Meter finds the kernels by
fusion rules and predicts each with a random forest on its configuration, then sums. Our fusion rule (``fuse``): a
conv or linear layer together with the BatchNorm and the activation that directly follow it is one kernel (conv-bn-act,
conv-bn, dwconv-bn-act, linear-act, ...); every other layer (pool, add, concat, a lone act) is its own kernel. That is
what onnxruntime does on CPU (BN folded into the conv weights, ReLU/Clip fused into the conv as its activation), and
what nn-Meter's test finds for mobile CPUs (two ops fuse when T1 + T2 − T12 > 0.5·min(T1, T2); ``fusion_gain`` measures
it). torch eager runs the three as separate calls, but their cost is a function of the conv's configuration, so one
kernel per group keeps the predictor's inputs the same for both runtimes. Each kernel type has a random forest on
(H·W in, C_in, C_out, kernel, stride, groups, MACs, params, H·W out), fitted to log latency (a relative error is what
±10% accuracy scores). Kernels are measured alone (``LatencyTable`` with one unit per kernel); the kernel sum is
calibrated on measured networks (a·Σ + b), as the lookup table is, because isolated kernels miss per-network costs.

Adaptive sampling (nn-Meter): after the first fit, measure the kernels of fresh archs, and around every kernel
predicted with more than 10% error add ``per_bad`` (20 in the paper) new configurations (channels and map size drawn
within ±25% of it, kernel, stride and type kept), measure them and refit; ``rounds`` times (3 in the paper).

Model-level: a regressor on architecture features, the family's encoding (``family.features`` where a family has one,
e.g. mobilenet's OFA encoding that ignores unused block slots; else ``Space.encode``) plus analytic costs (MACs,
params, kernel count, activation elements, bytes of activations large enough to be page-faulted afresh by the
allocator). Adaptive sampling: the training archs whose out-of-fold prediction errs by more than 10% get mutated
neighbours (``Space.mutate``), which are measured and added; a few rounds.

``accuracy_report`` scores predictions the way the literature does: ±10% accuracy (share predicted within 10% of the
measured latency), RMSE and Spearman's ρ. A predictor refuses an arch that is not of its family (``LatencyError``).
"""

from __future__ import annotations

import math
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NasforgeError
from ..space import Arch
from .latency import LatencyError, LatencyModel, resolve_family
from .layers import LayerSpec, conv_out

if TYPE_CHECKING:
    from ..spaces.base import Family, Task
    from .lut import LatencyTable

FEATURES = ("hw_in", "c_in", "c_out", "kernel", "stride", "groups", "macs", "params", "hw_out")
BIG_ALLOC_BYTES = 128 * 1024  # glibc's default mmap threshold: bigger blocks are mapped, and faulted in, per call


class PredictorError(LatencyError):
    """A predictor asked to work outside what it was trained on, or used before it is trained."""


# --- evaluation ---------------------------------------------------------------------------------------------------
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


# --- kernels ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kernel:
    """One runtime kernel: a conv/linear with its fused bn and act, or one other layer."""

    specs: tuple[LayerSpec, ...]

    @property
    def type(self) -> str:
        s = self.specs[0]
        base = s.kind
        if s.kind == "conv" and s.groups > 1:
            base = "dwconv" if s.groups == s.in_shape[0] == s.out_shape[0] else "gconv"
        return "-".join([base, *(x.kind for x in self.specs[1:])])

    def features(self) -> np.ndarray:
        first, last = self.specs[0], self.specs[-1]
        i, o = first.in_shape, last.out_shape
        if first.kind == "linear" or len(i) != 3:
            c_in, c_out, hw_in, hw_out = i[-1], o[-1], math.prod(i[:-1]), math.prod(o[:-1])
        else:
            c_in, c_out, hw_in, hw_out = i[0], o[0], i[1] * i[2], math.prod(o[1:])
        return np.array(
            [hw_in, c_in, c_out, first.kernel[0], first.stride, first.groups,
             sum(s.macs for s in self.specs), sum(s.params for s in self.specs), hw_out],
            dtype=float,
        )


def fuse(layers: Sequence[LayerSpec]) -> list[Kernel]:
    """Cut a layer list into kernels by the fusion rule in the module docstring."""
    out: list[Kernel] = []
    i, n = 0, len(layers)
    while i < n:
        group = [layers[i]]
        i += 1
        if group[0].kind in ("conv", "linear"):
            for follow in ("bn", "act"):
                if i < n and layers[i].kind == follow and layers[i].in_shape == group[-1].out_shape:
                    group.append(layers[i])
                    i += 1
        out.append(Kernel(tuple(group)))
    return out


def _kernel_unit(k: Kernel) -> Any:
    from .lut import Unit

    # strip names and extras that do not change the computation, so that equal kernels share one measurement
    return Unit(tuple(replace(s, name="", live=0, extra=()) for s in k.specs))


def _perturb(k: Kernel, rng: np.random.Generator) -> Kernel | None:
    """A kernel of the same type and kernel/stride with channels and map size drawn within ±25% (nn-Meter's
    "configurations around" a badly predicted one). None for kernels it cannot resize."""
    first = k.specs[0]
    if len(first.in_shape) != 3 or first.kind not in ("conv", "act", "bn", "pool", "add"):
        return None

    def jiggle(v: int, lo: int = 1) -> int:
        return max(lo, int(round(v * rng.uniform(0.75, 1.25))))

    c_in, h, w = first.in_shape
    h2 = jiggle(h, max(first.kernel[0], 1))
    w2 = h2 if h == w else jiggle(w, max(first.kernel[1], 1))
    if first.kind == "conv":
        c_in2 = jiggle(c_in)
        dw = first.groups > 1 and first.groups == c_in == first.out_shape[0]
        c_out2 = c_in2 if dw else jiggle(first.out_shape[0])
        groups = c_in2 if dw else 1 if first.groups == 1 else None
        if groups is None:
            return None
        kh, st = first.kernel[0], first.stride
        p = next((p for p in [kh // 2, *range(kh)] if conv_out(h, kh, st, p) == first.out_shape[1]), kh // 2)
        out = (c_out2, conv_out(h2, kh, st, p), conv_out(w2, kh, st, p))
        if min(out[1:]) < 1:
            return None
        specs = [replace(first, in_shape=(c_in2, h2, w2), out_shape=out, groups=groups)]
        specs += [replace(s, in_shape=out, out_shape=out) for s in k.specs[1:]]
        return Kernel(tuple(specs))
    if first.kind == "pool":
        if first.out_shape[1:] == (1, 1):
            c2 = jiggle(c_in)
            return Kernel((replace(first, in_shape=(c2, h2, w2), out_shape=(c2, 1, 1), kernel=(h2, w2)),))
        return None
    c2 = jiggle(c_in)
    o = first.out_shape
    scale = o[0] / c_in if c_in else 1
    return Kernel((replace(first, in_shape=(c2, h2, w2), out_shape=(max(1, int(c2 * scale)), h2, w2)),))


# --- the predictors -----------------------------------------------------------------------------------------------
class LatencyPredictor(ABC):
    """A latency predictor for one family and task.

    Contract: ``fit(archs, ms)`` learns from measured (arch, latency) pairs and returns self; ``predict(archs)`` returns
    one latency in ms per arch; an arch that is not of the family raises ``PredictorError`` (a ``NasforgeError``).
    Fitted predictors pickle (``save`` / ``load``).
    """

    kind = ""

    def __init__(self, family: Family | str, task: Task, seed: int = 0) -> None:
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


KERNEL_GROUPS = ("conv", "pw", "dw", "gconv", "linear", "pool", "add", "other")


def _group(k: Kernel) -> str:
    first = k.specs[0]
    if first.kind == "conv":
        if first.groups > 1:
            return "dw" if k.type.startswith("dwconv") else "gconv"
        return "pw" if first.kernel == (1, 1) else "conv"
    return first.kind if first.kind in KERNEL_GROUPS else "other"


def analytic_features(layers: Sequence[LayerSpec]) -> np.ndarray:
    """Per kernel group (conv, 1×1 conv, depthwise, grouped, linear, pool, add, other): the kernel count, MACs and
    activation elements read + written; then the parameters, and the bytes and count of activations large enough to
    be mapped and page-faulted afresh by the allocator on every call in eager torch (glibc's mmap threshold).
    Latency is close to linear in these (a cost per call, per MAC and per byte moved, by kernel type)."""
    agg = {g: [0.0, 0.0, 0.0] for g in KERNEL_GROUPS}
    for k in fuse(layers):
        a = agg[_group(k)]
        a[0] += 1
        a[1] += sum(s.macs for s in k.specs)
        a[2] += sum(s.in_numel + s.out_numel for s in k.specs)
    big = [s.out_numel * 4 for s in layers if s.out_numel * 4 >= BIG_ALLOC_BYTES]
    tail = [sum(s.params for s in layers), sum(big), len(big)]
    return np.array([v for g in KERNEL_GROUPS for v in agg[g]] + tail, dtype=float)


class ModelPredictor(LatencyPredictor):
    """Model-level regressor on architecture features + analytic costs (see the module docstring).

    ``regressor``: ``"gbr"`` (gradient boosting on log latency), ``"rf"`` (random forest on log latency) or
    ``"ridge"`` (a linear model of latency on standardised features). ``features``: ``"both"`` (the encoding and the
    analytic costs), ``"encoding"`` or ``"analytic"`` (the costs alone suit the linear model best).
    """

    kind = "model-level"

    def __init__(
        self, family: Family | str, task: Task, regressor: str = "gbr", seed: int = 0, features: str = "both"
    ) -> None:
        super().__init__(family, task, seed)
        self.regressor = regressor
        self.feature_set = features
        self.model: Any = None

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.feature_set not in ("both", "encoding", "analytic"):
            raise PredictorError(f"unknown feature set {self.feature_set!r}; use both, encoding or analytic")
        fam = self.fam
        enc = getattr(fam, "features", None)
        rows = []
        for a in archs:
            parts = []
            if self.feature_set != "analytic":
                parts.append(np.asarray(enc(a) if callable(enc) else fam.space.encode(a), dtype=float))
            if self.feature_set != "encoding":
                parts.append(analytic_features(fam.layers(a, self.task)))
            rows.append(np.concatenate(parts))
        return np.array(rows)

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
        raise PredictorError(f"unknown regressor {self.regressor!r}; use gbr, rf or ridge")

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
        self.fitted = True
        return self

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


class KernelPredictor(LatencyPredictor):
    """nn-Meter's kernel-level predictor: fuse, one random forest per kernel type, sum, calibrate on networks.

    ``table`` holds the kernel measurements (a ``LatencyTable`` of granularity "layer", one unit per kernel); it is
    filled on demand by ``fit`` and ``adapt`` and may be shared with, or saved beside, the predictor.
    """

    kind = "kernel-level"

    def __init__(
        self,
        family: Family | str,
        task: Task,
        table: LatencyTable | None = None,
        *,
        n_estimators: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(family, task, seed)
        self.table = table
        self.n_estimators = n_estimators
        self.forests: dict[str, Any] = {}
        self.calibration = {"a": 1.0, "b": 0.0}
        self.history: list[dict[str, Any]] = []
        self._units: dict[str, Any] = {}  # kernel-table key -> unit, for every kernel this predictor measured

    @property
    def kernel_table(self) -> LatencyTable:
        if self.table is None:
            from .lut import LatencyTable

            self.table = LatencyTable(granularity="layer")
        return self.table

    def kernels(self, arch: Arch) -> list[Kernel]:
        return fuse(self.fam.layers(arch, self.task))

    def _measured(self, kernels: Sequence[Kernel]) -> np.ndarray:
        units = [_kernel_unit(k) for k in kernels]
        self.kernel_table.measure(units, seed=self.seed)
        return np.array([self.kernel_table.unit_ms(u) for u in units])

    def _fit_forests(self) -> None:
        from sklearn.ensemble import RandomForestRegressor

        from .lut import Unit

        by_type: dict[str, tuple[list[np.ndarray], list[float]]] = {}
        for key, e in self.kernel_table.entries.items():
            unit: Unit | None = self._units.get(key)  # entries of a shared table that are not kernels are skipped
            if unit is None:
                continue
            k = Kernel(unit.specs)
            xs, ys = by_type.setdefault(k.type, ([], []))
            xs.append(k.features())
            ys.append(math.log(max(e["ms"], 1e-6)))
        self.forests = {}
        for t, (xs, ys) in by_type.items():
            rf = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=1, random_state=self.seed)
            self.forests[t] = rf.fit(np.array(xs), np.array(ys))

    def predict_kernels(self, kernels: Sequence[Kernel]) -> np.ndarray:
        out = np.empty(len(kernels))
        by_type: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_type.setdefault(k.type, []).append(i)
        for t, idx in by_type.items():
            rf = self.forests.get(t)
            if rf is None:  # a kernel type never measured: measure it now rather than guess
                out[idx] = self._measured([kernels[i] for i in idx])
                continue
            out[idx] = np.exp(rf.predict(np.array([kernels[i].features() for i in idx])))
        return out

    def raw_sum(self, arch: Arch) -> float:
        return float(self.predict_kernels(self.kernels(arch)).sum())

    def _remember(self, kernels: Sequence[Kernel]) -> None:
        for k in kernels:
            u = _kernel_unit(k)
            self._units.setdefault(u.key, u)

    def fit(
        self,
        archs: Sequence[Mapping[str, Any]],
        ms: Sequence[float],
        *,
        kernel_archs: Sequence[Mapping[str, Any]] = (),
        rounds: int = 3,
        per_bad: int = 20,
        max_new: int = 200,
        probe_archs: int = 10,
        tol: float = 0.10,
    ) -> KernelPredictor:
        """Measure the kernels of ``archs`` (and ``kernel_archs``), fit the forests, sample adaptively for ``rounds``,
        then calibrate the kernel sum on the measured (arch, ms) pairs."""
        checked = self.check(list(archs) + list(kernel_archs))
        y = np.asarray(ms, dtype=float)
        if len(y) != len(archs) or len(y) < 1:
            raise PredictorError(f"need one measured latency per arch, got {len(archs)} archs and {len(y)} values")
        kernels = list({_kernel_unit(k).key: k for a in checked for k in self.kernels(a)}.values())
        self._remember(kernels)
        self._measured(kernels)
        self._fit_forests()
        rng = np.random.default_rng(self.seed)
        self.history = []
        for r in range(rounds):
            # nn-Meter's adaptive sampling: probe fresh configurations, and densify around the badly predicted ones
            probes = [self.fam.space.sample(rng) for _ in range(probe_archs)]
            fresh = list({_kernel_unit(k).key: k for a in probes for k in self.kernels(a)}.values())
            fresh = [k for k in fresh if _kernel_unit(k).key not in self.kernel_table.entries] or fresh
            pred = self.predict_kernels(fresh)
            self._remember(fresh)
            true = self._measured(fresh)
            bad = [k for k, p, t in zip(fresh, pred, true, strict=True) if abs(p / t - 1) > tol]
            new: list[Kernel] = []
            for k in bad:
                for _ in range(per_bad):
                    if len(new) >= max_new:
                        break
                    q = _perturb(k, rng)
                    if q is not None:
                        new.append(q)
            self._remember(new)
            self._measured(new)
            self.history.append({"round": r + 1, "probed": len(fresh), "acc10_probe": float(np.mean(
                np.abs(pred / true - 1) <= tol)), "bad": len(bad), "added": len(new)})
            self._fit_forests()
        sums = np.array([self.raw_sum(a) for a in checked[: len(y)]])
        if len(y) >= 3 and np.ptp(sums) > 0:
            a, b = np.polyfit(sums, y, 1)
        else:
            a, b = float(np.median(y / sums)), 0.0
        self.calibration = {"a": float(a), "b": float(b)}
        self.fitted = True
        return self

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        sums = np.array([self.raw_sum(a) for a in archs])
        return self.calibration["a"] * sums + self.calibration["b"]


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
        order = np.argsort(-err)
        new: list[Arch] = []
        for i in order:
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


class PredictorLatency(LatencyModel):
    """Latency from a trained predictor (an object or the path of a saved one), as a study cost model."""

    source = "predictor"

    def __init__(
        self, family: Family | str, task: Task, predictor: LatencyPredictor | str | Path, metric: str = "latency_ms"
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
