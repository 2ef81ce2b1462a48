"""nn-Meter's kernel-level latency predictor (Zhang et al., 2021): fuse, one random forest per kernel type, sum.

The network is cut into kernels (``kernels.fuse``); each kernel type has a random forest on the kernel's configuration
(``kernels.FEATURES``), fitted to log latency. Kernels are measured alone (a ``LatencyTable`` of granularity "layer",
one unit per kernel), so the kernel sum is calibrated on measured networks (a·Σ + b), as the lookup table is, because
isolated kernels miss per-network costs.

Adaptive sampling (nn-Meter): after the first fit, measure the kernels of fresh archs, and around every kernel
predicted with more than 10% error add ``per_bad`` (20 in the paper) new configurations (channels and map size drawn
within ±25% of it, kernel, stride and type kept), measure them and refit; ``rounds`` times (3 in the paper).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cost.layers import LayerSpec
from ..space import Arch
from .kernels import Kernel, fuse, perturb
from .predictor import LatencyPredictor, PredictorError
from .table import LatencyTable
from .units import Unit

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task


class KernelPredictor(LatencyPredictor):
    """nn-Meter's kernel-level predictor: fuse, one random forest per kernel type, sum, calibrate on networks.

    ``table`` holds the kernel measurements (a ``LatencyTable`` of granularity "layer", one unit per kernel); it is
    filled on demand by ``fit`` and may be shared with, or saved beside, the predictor.
    """

    kind = "kernel-level"

    def __init__(
        self,
        family: Family | str | Mapping[str, Any],
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
        self._units: dict[str, Unit] = {}  # kernel-table key -> unit, for every kernel this predictor measured
        self.trained_on: list[Arch] = []  # the measured archs the kernel sum was calibrated on

    @property
    def kernel_table(self) -> LatencyTable:
        if self.table is None:
            self.table = LatencyTable(granularity="layer")
        return self.table

    def kernels(self, arch: Arch) -> list[Kernel]:
        return fuse(self.fam.layers(arch, self.task))

    def _measured(self, kernels: Sequence[Kernel]) -> np.ndarray:
        units = [k.unit() for k in kernels]
        self.kernel_table.measure(units, seed=self.seed)
        return np.array([self.kernel_table.unit_ms(u) for u in units])

    def _remember(self, kernels: Sequence[Kernel]) -> None:
        for k in kernels:
            u = k.unit()
            self._units.setdefault(u.key, u)

    def _fit_forests(self) -> None:
        from sklearn.ensemble import RandomForestRegressor

        by_type: dict[str, tuple[list[np.ndarray], list[float]]] = {}
        for key, e in self.kernel_table.entries.items():
            unit = self._units.get(key)  # entries of a shared table that are not kernels are skipped
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

    def _adaptive_round(
        self, rng: np.random.Generator, probe_archs: int, per_bad: int, max_new: int, tol: float
    ) -> dict[str, Any]:
        """nn-Meter's adaptive sampling: probe fresh configurations, and densify around the badly predicted ones."""
        probes = [self.fam.space.sample(rng) for _ in range(probe_archs)]
        fresh = list({k.unit().key: k for a in probes for k in self.kernels(a)}.values())
        fresh = [k for k in fresh if k.unit().key not in self.kernel_table.entries] or fresh
        pred = self.predict_kernels(fresh)
        self._remember(fresh)
        true = self._measured(fresh)
        bad = [k for k, p, t in zip(fresh, pred, true, strict=True) if abs(p / t - 1) > tol]
        new: list[Kernel] = []
        for k in bad:
            for _ in range(per_bad):
                if len(new) >= max_new:
                    break
                q = perturb(k, rng)
                if q is not None:
                    new.append(q)
        self._remember(new)
        self._measured(new)
        self._fit_forests()
        acc = float(np.mean(np.abs(pred / true - 1) <= tol))
        return {"probed": len(fresh), "acc10_probe": acc, "bad": len(bad), "added": len(new)}

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
        kernels = list({k.unit().key: k for a in checked for k in self.kernels(a)}.values())
        self._remember(kernels)
        self._measured(kernels)
        self._fit_forests()
        rng = np.random.default_rng(self.seed)
        self.history = [
            {"round": r + 1, **self._adaptive_round(rng, probe_archs, per_bad, max_new, tol)} for r in range(rounds)
        ]
        self.trained_on = checked[: len(y)]
        sums = np.array([self.raw_sum(a) for a in self.trained_on])
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

    # --- files: the kernels it measured (layers and latencies) and its calibration; the forests are fitted again ---
    def _state(self) -> dict[str, Any]:
        if not self.fitted:
            raise PredictorError(f"the {self.kind} predictor is not trained yet; call fit() before save()")
        kernels = [
            {"key": key, "entry": dict(e), "layers": [_spec_data(s) for s in self._units[key].specs]}
            for key, e in self.kernel_table.entries.items()  # the table's order, which the forests were fitted in
            if key in self._units
        ]
        return {"n_estimators": self.n_estimators, "table": self.kernel_table.settings(), "kernels": kernels,
                "calibration": self.calibration, "history": self.history,
                "archs": [dict(a) for a in self.trained_on]}  # fmt: skip

    @classmethod
    def _from_state(cls, family: Family, task: Task, seed: int, state: Mapping[str, Any]) -> KernelPredictor:
        kp = cls(family, task, LatencyTable(**dict(state["table"])), n_estimators=int(state["n_estimators"]), seed=seed)
        for k in state["kernels"]:
            unit = Unit(tuple(_spec(d) for d in k["layers"]))
            if unit.key != k["key"]:
                raise ValueError(f"kernel {k['key']!r} does not match its layers")
            kp._units[unit.key] = unit
            kp.kernel_table.entries[unit.key] = {n: float(v) for n, v in dict(k["entry"]).items()}
        kp._fit_forests()
        kp.calibration = {"a": float(state["calibration"]["a"]), "b": float(state["calibration"]["b"])}
        kp.history = [dict(h) for h in state["history"]]
        kp.trained_on = kp.check(state["archs"])
        kp.fitted = True
        return kp

    def _check_archs(self) -> list[Arch]:
        return self.trained_on


def _spec_data(spec: LayerSpec) -> dict[str, Any]:
    return {f.name: _lists(getattr(spec, f.name)) for f in dataclasses.fields(spec)}


def _spec(data: Mapping[str, Any]) -> LayerSpec:
    return LayerSpec(**{k: _tuples(v) for k, v in dict(data).items()})


def _lists(v: Any) -> Any:
    return [_lists(x) for x in v] if isinstance(v, tuple | list) else v


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v
