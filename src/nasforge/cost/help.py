"""Few-shot latency prediction for a new device on the NAS-Bench-201 table, under HELP's protocol.

HELP (Lee et al., 2021) meta-trains on the latency columns of some devices, then adapts to a new device from 10
measured samples: the latencies of 10 fixed reference architectures, which also serve as the device's "hardware
embedding". It reports Spearman's ρ over the NAS-Bench-201 cells on six test devices (mean 0.932; FLOPs alone 0.787).

Our method is not HELP's MAML but a meta-learned *Bayesian linear* model (a hierarchical prior over devices), which
suits this table because NAS-Bench-201 latency is close to additive over the cell's edges (an additive fit with all
cells reaches Spearman 0.91–1.00 on every device):

- features φ(cell): the one-hot op of each of the 6 edges (30) and a constant, optionally (``pairs=True``) one-hot op
  pairs of every two edges, for the non-additive part;
- each device's latencies are normalised by the mean latency of the reference architectures (the hardware embedding
  sets the scale), so that devices of different speed share one weight space;
- meta-training: a ridge fit w_d of the normalised latencies of each meta-training device d; the prior over a device's
  weights is N(μ, Σ) with μ the mean of the w_d and Σ their covariance plus ``jitter``·I (9 devices span only 8
  directions; the jitter lets the new device leave that span a little);
- adaptation: the posterior mean of w given the 10 reference samples, w = μ + Σ Aᵀ (A Σ Aᵀ + ``noise``·I)⁻¹ (y − Aμ),
  with A the samples' features and y their normalised latencies. In HELP's terms the predictor takes the cell encoding
  and the hardware embedding as input: latency(cell, h) = φ(cell)·w(h), where w(h) is that closed-form posterior.

``jitter``, ``noise``, ``ridge`` and ``pairs`` are chosen on HELP's *validation* devices only (``select``); the test
devices are never looked at before the final figure. Baselines beside it: MACs alone, the prior mean without
adaptation (zero-shot), and a ridge fit on the 10 samples without the meta-learned prior.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import NasforgeError

REFERENCE_ARCHS = (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)
META_TRAIN_DEVICES = (
    "1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3", "essential_ph_1",
    "samsung_s7",
)
VALIDATION_DEVICES = ("titanx_1", "titanx_32", "titanx_256", "gold_6240")
TEST_DEVICES = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
# mean Spearman over the six test devices with 10 samples (HELP paper; REFERENCES.md)
PUBLISHED = {"HELP (10 samples)": 0.932, "BRP-NAS (900 samples)": 0.789, "FLOPs": 0.787}
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
N_EDGES = 6
DEFAULT_HYPER: dict[str, Any] = {"jitter": 1e-4, "noise": 1e-3, "ridge": 1e-3, "pairs": False}


class FewShotError(NasforgeError, ValueError):
    """Bad input to the few-shot predictor (unknown device, wrong sample count, malformed cell)."""


# --- cells ------------------------------------------------------------------------------------------------------------
def cell_ops(strings: Iterable[str]) -> np.ndarray:
    """The op index (into ``OPS``) of each of the 6 edges, in the string's order, for each cell string: (n, 6) ints."""
    out = []
    for s in strings:
        try:
            edges = [t.split("~")[0] for g in s.strip().strip("|").split("|+|") for t in g.split("|")]
            row = [OPS.index(e) for e in edges]
        except (ValueError, AttributeError):
            row = []
        if len(row) != N_EDGES:
            raise FewShotError(f"malformed NAS-Bench-201 cell string {s!r}; expected |op~0|+|op~0|op~1|+|...~2|")
        out.append(row)
    return np.asarray(out, dtype=np.int64).reshape(-1, N_EDGES)


def cell_features(ops: np.ndarray, pairs: bool = False) -> np.ndarray:
    """φ(cell): one-hot op per edge (30 columns) and a constant; with ``pairs``, one-hot op pairs of every edge pair."""
    ops = np.asarray(ops, dtype=np.int64)
    n, k = len(ops), len(OPS)
    rows = np.arange(n)[:, None]
    x = np.zeros((n, N_EDGES * k))
    x[rows, np.arange(N_EDGES) * k + ops] = 1.0
    cols = [x, np.ones((n, 1))]
    if pairs:
        for i, j in itertools.combinations(range(N_EDGES), 2):
            p = np.zeros((n, k * k))
            p[np.arange(n), ops[:, i] * k + ops[:, j]] = 1.0
            cols.append(p)
    return np.hstack(cols)


def cell_macs(ops: np.ndarray, N: int = 5, C: int = 16) -> np.ndarray:
    """MACs of the NAS-Bench-201 CIFAR network of each cell, from the ``nb201`` family's exact layer list.

    Every stage has C_s²·H_s·W_s equal (channels double as the map halves), so MACs = base + n3·c3 + n1·c1 with n3, n1
    the numbers of 3×3 and 1×1 conv edges; base, c3 and c1 are read off the family's counts for three cells.
    """
    from ..spaces import create_family
    from ..spaces.nb201 import CIFAR10_TASK, DIMS

    fam = create_family("nb201", N=N, C=C)

    def macs(edge_op: str | None) -> float:
        arch = {d: "none" for d in DIMS}
        if edge_op is not None:
            arch[DIMS[0]] = edge_op
        return float(fam.costs(arch, CIFAR10_TASK)["macs"])

    base = macs(None)
    c3, c1 = macs("nor_conv_3x3") - base, macs("nor_conv_1x1") - base
    ops = np.asarray(ops)
    return base + c3 * (ops == OPS.index("nor_conv_3x3")).sum(1) + c1 * (ops == OPS.index("nor_conv_1x1")).sum(1)


# --- the model --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceLatency:
    """The predictor adapted to one device: latency_ms(cell) = scale · φ(cell)·w."""

    weights: np.ndarray
    scale: float
    pairs: bool

    def predict(self, ops: np.ndarray) -> np.ndarray:
        return self.scale * (cell_features(ops, self.pairs) @ self.weights)


class FewShotLatency:
    """Meta-learned Bayesian linear latency model (see the module docstring).

    Contract: ``fit(ops, columns)`` with every cell's ops and the full latency columns of the meta-training devices;
    ``adapt(ref_latencies)`` with a new device's latencies of the reference architectures (in ``reference`` order),
    optionally plus more (ops, latency) samples, returns a ``DeviceLatency``. Only those samples of the new device are
    used. Constructor arguments only store.
    """

    def __init__(
        self,
        jitter: float = DEFAULT_HYPER["jitter"],
        noise: float = DEFAULT_HYPER["noise"],
        ridge: float = DEFAULT_HYPER["ridge"],
        pairs: bool = DEFAULT_HYPER["pairs"],
        reference: Sequence[int] = REFERENCE_ARCHS,
    ) -> None:
        self.jitter, self.noise, self.ridge, self.pairs = jitter, noise, ridge, pairs
        self.reference = tuple(reference)
        self.mu: np.ndarray | None = None
        self.device_cov: np.ndarray | None = None
        self.ref_ops: np.ndarray | None = None
        self.devices: tuple[str, ...] = ()

    def fit(self, ops: np.ndarray, columns: Mapping[str, np.ndarray]) -> FewShotLatency:
        if not columns:
            raise FewShotError("meta-training needs at least one device's latency column")
        ops = np.asarray(ops)
        x = cell_features(ops, self.pairs)
        gram = x.T @ x + self.ridge * np.eye(x.shape[1])
        ws = []
        for name, col in columns.items():
            y = np.asarray(col, dtype=float)
            if len(y) != len(x):
                raise FewShotError(f"device {name!r}: {len(y)} latencies for {len(x)} cells")
            ws.append(np.linalg.solve(gram, x.T @ (y / y[list(self.reference)].mean())))
        w = np.array(ws)
        self.mu = w.mean(0)
        self.device_cov = np.cov(w.T) if len(w) > 1 else np.zeros((x.shape[1], x.shape[1]))
        self.ref_ops = ops[list(self.reference)]
        self.devices = tuple(columns)
        return self

    def adapt(
        self,
        ref_latencies: Sequence[float],
        extra_ops: np.ndarray | None = None,
        extra_latencies: Sequence[float] | None = None,
    ) -> DeviceLatency:
        if self.mu is None or self.device_cov is None or self.ref_ops is None:
            raise FewShotError("the few-shot predictor is not meta-trained yet; call fit() first")
        ref = np.asarray(ref_latencies, dtype=float)
        if ref.shape != (len(self.reference),) or not np.all(ref > 0):
            raise FewShotError(
                f"adaptation needs the positive latencies of the {len(self.reference)} reference architectures "
                f"(NAS-Bench-201 indices {list(self.reference)}), got {ref.shape[0] if ref.ndim else 0} values"
            )
        scale = float(ref.mean())  # the hardware embedding's scale normalises the device, as in meta-training
        ops, y = self.ref_ops, ref / scale
        if extra_ops is not None and extra_latencies is not None:
            ops = np.vstack([ops, np.asarray(extra_ops)])
            y = np.concatenate([y, np.asarray(extra_latencies, dtype=float) / scale])
        a = cell_features(ops, self.pairs)
        cov = self.device_cov + self.jitter * np.eye(len(self.mu))  # the prior over the new device's weights
        k = a @ cov @ a.T + self.noise * np.eye(len(a))
        w = self.mu + cov @ a.T @ np.linalg.solve(k, y - a @ self.mu)
        return DeviceLatency(w, scale, self.pairs)

    def zero_shot(self) -> DeviceLatency:
        """The prior mean: one ranking for every device (the baseline that shows what adaptation adds)."""
        if self.mu is None:
            raise FewShotError("the few-shot predictor is not meta-trained yet; call fit() first")
        return DeviceLatency(self.mu, 1.0, self.pairs)


def ridge_only(ops: np.ndarray, latencies: np.ndarray, alpha: float = 1e-2, pairs: bool = False) -> DeviceLatency:
    """A ridge fit on the device's own samples and nothing else (the baseline without meta-learning)."""
    a = cell_features(ops, pairs)
    scale = float(np.mean(latencies))
    y = np.asarray(latencies, dtype=float) / scale
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ y)
    return DeviceLatency(w, scale, pairs)


# --- the protocol -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NB201Latencies:
    """Cell ops (n, 6) and latency columns by device name (``lat_ms_`` stripped)."""

    ops: np.ndarray
    columns: dict[str, np.ndarray]

    def device(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            known = ", ".join(sorted(self.columns))
            raise FewShotError(f"no latency column for device {name!r}; devices: {known}") from None


def load_latencies(data_dir: str | None = None) -> NB201Latencies:
    """The NAS-Bench-201 table's cells and latency columns (read by ``nasforge.bench.nb201.load_table``)."""
    from ..bench.nb201 import load_table

    table = load_table(data_dir)
    cols = {c[len("lat_ms_") :]: table.columns[c] for c in table.latency_columns}
    return NB201Latencies(cell_ops(table.strings), cols)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def evaluate(
    data: NB201Latencies,
    devices: Sequence[str] = TEST_DEVICES,
    meta: Sequence[str] = META_TRAIN_DEVICES,
    *,
    exclude_samples: bool = True,
    baselines: bool = True,
    **hyper: Any,
) -> dict[str, Any]:
    """Meta-train on ``meta``, adapt to each of ``devices`` with the 10 reference samples, and report Spearman's ρ over
    all cells but the samples (``exclude_samples``) or all 15,625; with the baselines beside it."""
    model = FewShotLatency(**{**DEFAULT_HYPER, **hyper})
    model.fit(data.ops, {d: data.device(d) for d in meta})
    ref = list(model.reference)
    mask = np.ones(len(data.ops), dtype=bool)
    if exclude_samples:
        mask[ref] = False
    macs = cell_macs(data.ops) if baselines else None
    zero = model.zero_shot().predict(data.ops) if baselines else None
    rows: dict[str, dict[str, float]] = {}
    for d in devices:
        y = data.device(d)
        pred = model.adapt(y[ref]).predict(data.ops)
        row = {"few_shot": _spearman(pred[mask], y[mask])}
        if baselines:
            row["macs"] = _spearman(macs[mask], y[mask])
            row["zero_shot"] = _spearman(zero[mask], y[mask])
            row["ridge_10"] = _spearman(ridge_only(data.ops[ref], y[ref]).predict(data.ops)[mask], y[mask])
        rows[d] = row
    methods = next(iter(rows.values())).keys() if rows else []
    mean = {m: float(np.mean([r[m] for r in rows.values()])) for m in methods}
    return {"devices": rows, "mean": mean, "hyper": {**DEFAULT_HYPER, **hyper}, "samples": len(ref),
            "cells_scored": int(mask.sum())}


GRID: dict[str, Sequence[Any]] = {
    "jitter": (1e-5, 1e-4, 1e-3, 1e-2),
    "noise": (1e-4, 1e-3, 1e-2, 1e-1),
    "ridge": (1e-6, 1e-3),
    "pairs": (False, True),
}


def select(data: NB201Latencies, grid: Mapping[str, Sequence[Any]] = GRID) -> tuple[dict[str, Any], float]:
    """The hyperparameters with the best mean Spearman on HELP's validation devices (never the test devices).

    Meta-training depends only on ``ridge`` and ``pairs``; ``jitter`` and ``noise`` act at adaptation, so each fit
    serves every (jitter, noise) pair."""
    grid = {**{k: (v,) for k, v in DEFAULT_HYPER.items()}, **grid}
    ref = list(REFERENCE_ARCHS)
    mask = np.ones(len(data.ops), dtype=bool)
    mask[ref] = False
    meta = {d: data.device(d) for d in META_TRAIN_DEVICES}
    best: tuple[dict[str, Any], float] = ({}, -np.inf)
    for pairs in grid["pairs"]:
        x = cell_features(data.ops, pairs)[mask]
        for ridge in grid["ridge"]:
            model = FewShotLatency(ridge=ridge, pairs=pairs).fit(data.ops, meta)
            for jitter, noise in itertools.product(grid["jitter"], grid["noise"]):
                model.jitter, model.noise = jitter, noise
                rhos = []
                for d in VALIDATION_DEVICES:
                    y = data.device(d)
                    w = model.adapt(y[ref]).weights
                    rhos.append(_spearman(x @ w, y[mask]))
                score = float(np.mean(rhos))
                if score > best[1]:
                    best = ({"jitter": jitter, "noise": noise, "ridge": ridge, "pairs": pairs}, score)
    return best
