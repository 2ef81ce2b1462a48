"""Few-shot latency predictor (HELP's protocol on NAS-Bench-201): parsing, MACs, posterior math, the headline figure."""

from __future__ import annotations

import numpy as np
import pytest

from nasforge.cost import help as H
from nasforge.errors import NasforgeError
from nasforge.spaces import create_family
from nasforge.spaces.nb201 import CIFAR10_TASK, DIMS, from_string, to_string

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"


def _random_cells(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, len(H.OPS), size=(n, H.N_EDGES))


def test_cell_ops_agree_with_the_nb201_parser():
    ops = H.cell_ops([CELL])[0]
    arch = from_string(CELL)
    assert [H.OPS[i] for i in ops] == [arch[d] for d in DIMS]
    for row in _random_cells(5):
        s = to_string({d: H.OPS[i] for d, i in zip(DIMS, row, strict=True)})
        assert H.cell_ops([s])[0].tolist() == row.tolist()
    with pytest.raises(NasforgeError, match="malformed"):
        H.cell_ops(["|conv~0|+|"])


def test_features_are_one_hot_per_edge():
    x = H.cell_features(_random_cells(7))
    assert x.shape == (7, 31)
    np.testing.assert_array_equal(x[:, :30].reshape(7, 6, 5).sum(2), np.ones((7, 6)))
    assert (x[:, 30] == 1).all()
    assert H.cell_features(_random_cells(2), pairs=True).shape == (2, 31 + 15 * 25)


def test_cell_macs_equal_the_family_count():
    fam = create_family("nb201", N=1, C=4)
    ops = _random_cells(6, seed=3)
    got = H.cell_macs(ops, N=1, C=4)
    want = [fam.costs({d: H.OPS[i] for d, i in zip(DIMS, row, strict=True)}, CIFAR10_TASK)["macs"] for row in ops]
    np.testing.assert_array_equal(got, want)


def test_adaptation_is_the_bayesian_posterior_mean():
    ops = _random_cells(400, seed=1)
    rng = np.random.default_rng(2)
    truth = rng.random(31)
    cols = {f"d{i}": H.cell_features(ops) @ (truth + 0.3 * rng.random(31)) + 1.0 for i in range(5)}
    model = H.FewShotLatency(jitter=1e-3, noise=1e-2, reference=tuple(range(10))).fit(ops, cols)
    y_new = H.cell_features(ops) @ (truth + 0.3 * rng.random(31)) + 1.0
    dev = model.adapt(y_new[:10])
    # reference: the information form of the same Gaussian posterior, (Σ⁻¹ + AᵀA/σ²)⁻¹ (Σ⁻¹μ + Aᵀy/σ²)
    a = H.cell_features(ops[:10])
    cov = model.device_cov + model.jitter * np.eye(31)
    prec = np.linalg.inv(cov) + a.T @ a / model.noise
    y = y_new[:10] / y_new[:10].mean()
    w = np.linalg.solve(prec, np.linalg.solve(cov, model.mu) + a.T @ y / model.noise)
    np.testing.assert_allclose(dev.weights, w, rtol=1e-6, atol=1e-8)
    from scipy.stats import spearmanr

    assert spearmanr(dev.predict(ops), y_new)[0] > 0.95  # a device like the meta-training ones is learned from 10


def test_bad_input_is_a_clear_error():
    model = H.FewShotLatency()
    with pytest.raises(NasforgeError, match="fit"):
        model.adapt([1.0] * 10)
    ops = _random_cells(50)
    model.reference = tuple(range(10))
    model.fit(ops, {"a": np.ones(50), "b": np.arange(1, 51.0)})
    with pytest.raises(NasforgeError, match="10 reference"):
        model.adapt([1.0, 2.0])
    data = H.NB201Latencies(ops, {"a": np.ones(50)})
    with pytest.raises(NasforgeError, match="devices: a"):
        data.device("tpu")


def test_help_protocol_reaches_the_target(monkeypatch):
    """Meta-train on HELP's meta-training devices, adapt with the 10 reference samples, Spearman on the test devices
    over all other cells: the issue's target is a mean of 0.90 (HELP 0.932; MACs alone is far lower)."""
    monkeypatch.setenv("NASFORGE_DATA", "/work/shared/data")
    data = H.load_latencies()
    assert data.ops.shape == (15_625, 6)
    r = H.evaluate(data)
    assert r["cells_scored"] == 15_615
    assert set(r["devices"]) == set(H.TEST_DEVICES)
    assert r["mean"]["few_shot"] >= 0.90
    assert r["mean"]["few_shot"] > r["mean"]["macs"] + 0.05
    assert r["mean"]["few_shot"] > r["mean"]["ridge_10"]  # the meta-learned prior is what makes 10 samples enough
