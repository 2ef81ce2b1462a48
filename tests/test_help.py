"""The few-shot latency predictor: meta-trained on some devices' latencies over any family's archs, adapted to a new
device from a few samples. Synthetic devices whose latencies are known linear functions of the features, the posterior
math against its information form, one-line errors, and HELP's protocol on the NAS-Bench-201 table when it is there."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.stats import spearmanr

from nasforge.errors import DataError, NasforgeError
from nasforge.latency import latency_model
from nasforge.latency.features import ArchFeatures
from nasforge.latency.fewshot import FewShotLatency
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.task import CIFAR10_TASK

LENET = create_family("lenet")
ARCHS = list(LENET.space.grid())  # 729 archs


def _devices(features: np.ndarray, n: int, seed: int, factors: int = 3) -> dict[str, np.ndarray]:
    """``n`` devices, each a known positive linear function of the features: a positive mix of a few hardware
    "factors" (say compute, memory traffic and per-layer overhead), each factor a weight per feature. A new device is
    a new mix, so what the meta-training devices share is what a few samples of it must pin down."""
    rng = np.random.default_rng(seed)
    x = features / np.abs(features).max(0).clip(1e-12)
    basis = rng.random((factors, x.shape[1]))
    return {f"dev{i}": x @ (rng.uniform(0.1, 2.0, factors) @ basis) + rng.uniform(0.5, 2.0) for i in range(n)}


def _split(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    *meta, new = cols
    return {d: cols[d] for d in meta}, cols[new]


def _reference(n: int = 8, seed: int = 0) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).choice(len(ARCHS), n, replace=False)]


def test_recovers_a_held_out_device_from_a_few_samples():
    meta, y_new = _split(_devices(np.array([LENET.features(a) for a in ARCHS]), 7, seed=1))
    ref = _reference()
    model = FewShotLatency("lenet", MNIST_TASK, [ARCHS[i] for i in ref]).meta_fit(ARCHS, meta)
    adapted = model.adapt([ARCHS[i] for i in ref], y_new[ref])
    rho = spearmanr(adapted.predict(ARCHS), y_new)[0]
    assert rho > 0.98  # 8 samples for 19 weights: the meta-learned prior fills in the rest
    assert rho > spearmanr(model.zero_shot().predict(ARCHS), y_new)[0] + 0.02
    a, phi = model.phi([ARCHS[i] for i in ref]), model.phi(ARCHS)  # the same 8 samples without the prior: a ridge fit
    alone = phi @ np.linalg.solve(a.T @ a + 1e-2 * np.eye(a.shape[1]), a.T @ y_new[ref])
    assert rho > spearmanr(alone, y_new)[0] + 0.1
    # the predictions are in milliseconds of the new device, not in normalised units
    np.testing.assert_allclose(adapted.predict(ARCHS), y_new, rtol=0.15)
    # adapting made a copy: the meta-trained prior is untouched and serves the next device
    assert not model.fitted and model.weights is None


def test_analytic_features_and_a_study_cost_model(tmp_path):
    feats = ArchFeatures("lenet", MNIST_TASK, "analytic")
    meta, y_new = _split(_devices(feats.many(ARCHS), 5, seed=2))
    ref = _reference(10, seed=3)
    more = _reference(5, seed=4)  # samples beyond the reference archs are used too
    model = FewShotLatency("lenet", MNIST_TASK, [ARCHS[i] for i in ref], features=feats, interactions=True)
    adapted = model.meta_fit(ARCHS, meta).adapt([ARCHS[i] for i in ref + more], y_new[ref + more])
    assert spearmanr(adapted.predict(ARCHS), y_new)[0] > 0.95
    saved = pickle.loads(pickle.dumps(adapted))
    np.testing.assert_array_equal(saved.predict(ARCHS[:5]), adapted.predict(ARCHS[:5]))
    source = latency_model("predictor", "lenet", MNIST_TASK, predictor=str(adapted.save(tmp_path / "fs.pkl")))
    assert source(ARCHS[0])["latency_ms"] == pytest.approx(float(adapted.predict(ARCHS[:1])[0]))


def test_adaptation_is_the_bayesian_posterior_mean():
    meta, y_new = _split(_devices(np.array([LENET.features(a) for a in ARCHS]), 6, seed=5))
    ref = _reference(10, seed=6)
    model = FewShotLatency("lenet", MNIST_TASK, [ARCHS[i] for i in ref], jitter=1e-3, noise=1e-2).meta_fit(ARCHS, meta)
    dev = model.adapt([ARCHS[i] for i in ref], y_new[ref])
    # reference: the information form of the same Gaussian posterior, (Σ⁻¹ + AᵀA/σ²)⁻¹ (Σ⁻¹μ + Aᵀy/σ²)
    a = model.phi([ARCHS[i] for i in ref])
    cov = model.cov + model.jitter * np.eye(len(model.mu))
    prec = np.linalg.inv(cov) + a.T @ a / model.noise
    y = y_new[ref] / y_new[ref].mean()
    w = np.linalg.solve(prec, np.linalg.solve(cov, model.mu) + a.T @ y / model.noise)
    np.testing.assert_allclose(dev.weights, w, rtol=1e-6, atol=1e-8)
    assert dev.scale == pytest.approx(y_new[ref].mean())


def test_bad_input_is_a_one_line_error():
    ref = [ARCHS[i] for i in _reference(4)]
    model = FewShotLatency("lenet", MNIST_TASK, ref)
    cols = {"a": np.ones(len(ARCHS)), "b": np.arange(1, len(ARCHS) + 1.0)}
    cases = [
        (lambda: model.fit(ref, [1.0] * 4), "meta_fit"),
        (lambda: model.meta_fit(ARCHS, {}), "at least one device"),
        (lambda: model.meta_fit(ARCHS, {"a": np.ones(3)}), "device 'a'"),
        (lambda: FewShotLatency("lenet", MNIST_TASK, []).meta_fit(ARCHS, cols), "needs reference archs"),
        (lambda: model.meta_fit(ARCHS[:10], cols), "reference archs"),
        (lambda: model.meta_fit(ARCHS, cols).fit(ref[:3], [1.0] * 3), "1 of them are missing"),
        (lambda: model.meta_fit(ARCHS, cols).fit(ref, [1.0, 2.0]), "one positive latency per arch"),
        (lambda: model.meta_fit(ARCHS, cols).predict(ref), "not trained"),
        (lambda: model.meta_fit(ARCHS, cols).phi([create_family("cell", L=1).space.sample(np.random.default_rng())]),
         "family 'lenet'"),
    ]
    for call, message in cases:
        with pytest.raises(NasforgeError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


# HELP's protocol (Lee et al., 2021): its device split and reference architectures (NAS-Bench-201 indices)
HELP_REFERENCE = (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)
HELP_META = ("1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
             "essential_ph_1", "samsung_s7")
HELP_TEST = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")


def test_help_protocol_on_nas_bench_201():
    """Meta-train on HELP's meta-training devices, adapt with the 10 reference samples, Spearman on the test devices
    over all other cells: the issue's target is a mean of 0.90 (HELP 0.932); the prior alone is far lower."""
    from nasforge.data import find_dataset
    from nasforge.nb201table import load_table

    try:
        find_dataset("nb201")
    except DataError:
        pytest.skip("NAS-Bench-201 table not found: set NASFORGE_DATA to the folder holding nb201/")
    table = load_table()
    archs = [table.arch(i) for i in range(len(table))]
    ref = [archs[i] for i in HELP_REFERENCE]
    meta = {d: table.column(f"lat_ms_{d}") for d in HELP_META}
    model = FewShotLatency("nb201", CIFAR10_TASK, ref).meta_fit(archs, meta)
    phi = model.phi(archs)
    keep = np.ones(len(archs), dtype=bool)
    keep[list(HELP_REFERENCE)] = False
    rho, zero = [], []
    for d in HELP_TEST:
        y = table.column(f"lat_ms_{d}")
        rho.append(spearmanr(model.adapt(ref, y[list(HELP_REFERENCE)]).predict_phi(phi)[keep], y[keep])[0])
        zero.append(spearmanr(model.zero_shot().predict_phi(phi)[keep], y[keep])[0])
    assert np.mean(rho) >= 0.90
    assert np.mean(rho) > np.mean(zero) + 0.05
