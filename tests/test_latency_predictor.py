"""Learned latency predictors: metrics, fusion rule, model- and kernel-level fits on a known synthetic latency,
adaptive sampling, refusal of foreign archs, persistence."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from nasforge.cost.layers import LayerSpec
from nasforge.errors import NasforgeError
from nasforge.latency import kernels as K
from nasforge.latency import predictor as P
from nasforge.latency.kernel_level import KernelPredictor
from nasforge.latency.model_level import ModelPredictor, adaptive_fit
from nasforge.latency.table import LatencyTable
from nasforge.latency.units import Unit, unit_module
from nasforge.spaces import MNIST_TASK, create_family

LENET = create_family("lenet")


def _archs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [LENET.space.sample(rng) for _ in range(n)]


def _unit_ms(specs) -> float:
    """A known, smooth 'device': a per-call cost plus time proportional to MACs and to memory traffic."""
    return sum(0.01 + 2e-6 * s.macs + 1e-5 * (s.in_numel + s.out_numel) for s in specs)


def _synthetic_ms(arch) -> float:
    return 1.2 * _unit_ms(LENET.layers(arch, MNIST_TASK)) + 0.05


def test_accuracy_report_by_hand():
    r = P.accuracy_report([1.0, 2.0, 3.5], [1.0, 2.1, 3.0])
    assert r["acc10"] == pytest.approx(2 / 3)  # 2/2.1 is 4.8% off, 3.5/3 is 16.7% off
    assert r["rmse_ms"] == pytest.approx(math.sqrt((0 + 0.01 + 0.25) / 3))
    assert r["spearman"] == pytest.approx(1.0)
    assert r["n"] == 3
    with pytest.raises(NasforgeError):
        P.accuracy_report([1.0], [1.0, 2.0])


def test_fusion_rule_groups_conv_bn_act():
    s = (8, 4, 4)
    layers = [
        LayerSpec("conv", (3, 4, 4), s, (3, 3)),
        LayerSpec("bn", s, s),
        LayerSpec("act", s, s),
        LayerSpec("pool", s, s, (3, 3)),
        LayerSpec("conv", s, s, (3, 3), groups=8),
        LayerSpec("conv", s, s),
        LayerSpec("bn", s, s),
        LayerSpec("add", (16, 4, 4), s),
        LayerSpec("act", s, s),
        LayerSpec("linear", (8,), (10,)),
        LayerSpec("act", (10,), (10,)),
    ]
    kinds = [k.type for k in K.fuse(layers)]
    assert kinds == ["conv-bn-act", "pool", "dwconv", "conv-bn", "add", "act", "linear-act"]
    assert sum(len(k.specs) for k in K.fuse(layers)) == len(layers)
    f = K.fuse(layers)[0].features()
    assert dict(zip(K.FEATURES, f, strict=True)) == {
        "hw_in": 16, "c_in": 3, "c_out": 8, "kernel": 3, "stride": 1, "groups": 1,
        "macs": 8 * 3 * 9 * 16, "params": 8 * 3 * 9 + 16, "hw_out": 16,
    }


def test_perturbed_kernels_keep_type_and_build():
    fam = create_family("cell", L=2, M=5)
    from nasforge.spaces import Task

    arch = fam.space.sample(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for k in K.fuse(fam.layers(arch, Task((3, 8, 8), 10))):
        q = K.perturb(k, rng)
        if q is None:
            continue
        assert q.type == k.type and q.specs[0].kernel == k.specs[0].kernel and q.specs[0].stride == k.specs[0].stride
        mod, shape = unit_module(Unit(q.specs))
        with torch.no_grad():
            assert tuple(mod.eval()(torch.randn(1, *shape)).shape[1:]) == q.specs[-1].out_shape


def test_model_predictor_learns_a_known_latency_and_refuses_other_families(tmp_path):
    train, test = _archs(80, 0), _archs(30, 1)
    p = ModelPredictor("lenet", MNIST_TASK, regressor="ridge")
    with pytest.raises(NasforgeError, match="not trained"):
        p.predict(test)
    p.fit(train, [_synthetic_ms(a) for a in train])
    r = p.evaluate(test, [_synthetic_ms(a) for a in test])
    assert r["acc10"] >= 0.9 and r["spearman"] >= 0.9
    cell_arch = create_family("cell", L=1).space.sample(np.random.default_rng(0))
    with pytest.raises(NasforgeError, match="family 'lenet'"):
        p.predict([cell_arch])
    p2 = P.LatencyPredictor.load(p.save(tmp_path / "p.pkl"))
    np.testing.assert_array_equal(p2.predict(test), p.predict(test))
    model = pickle.loads(pickle.dumps(P.PredictorLatency("lenet", MNIST_TASK, str(tmp_path / "p.pkl"))))
    assert model(test[0])["latency_ms"] == pytest.approx(float(p.predict(test[:1])[0]))
    with pytest.raises(NasforgeError, match="trained on family 'lenet'"):
        P.PredictorLatency(create_family("cell", L=1), MNIST_TASK, p)(cell_arch)
    with pytest.raises(NasforgeError, match="does not exist"):
        P.LatencyPredictor.load(tmp_path / "none.pkl")


def _fake_measure(self, units, **kw):
    """Stand-in for timing: the synthetic device, so that the test is exact and fast."""
    n = 0
    for u in self.missing(units):
        self.entries[u.key] = {"ms": _unit_ms(u.specs)}
        n += 1
    return n


def test_kernel_predictor_with_adaptive_sampling_matches_the_synthetic_device(monkeypatch):
    monkeypatch.setattr(LatencyTable, "measure", _fake_measure)
    train, test = _archs(15, 2), _archs(30, 3)
    kp = KernelPredictor("lenet", MNIST_TASK, n_estimators=30, seed=0)
    kp.fit(train, [_synthetic_ms(a) for a in train], rounds=2, per_bad=3, max_new=30, probe_archs=5)
    assert len(kp.history) == 2 and all(h["added"] <= 30 for h in kp.history)
    assert kp.calibration["a"] == pytest.approx(1.2, rel=0.15)
    r = kp.evaluate(test, [_synthetic_ms(a) for a in test])
    assert r["acc10"] >= 0.8 and r["spearman"] >= 0.9
    with pytest.raises(NasforgeError, match="lenet"):
        kp.predict([create_family("cell", L=1).space.sample(np.random.default_rng(0))])


def test_model_level_adaptive_sampling_measures_only_new_neighbours():
    train = _archs(25, 4)
    seen = {a.key for a in train}
    asked: list = []

    def measure(archs):
        assert all(a.key not in seen for a in archs)
        asked.extend(archs)
        return [_synthetic_ms(a) * (1.3 if i % 2 else 1.0) for i, a in enumerate(archs)]

    p = ModelPredictor("lenet", MNIST_TASK, regressor="rf")
    noisy = [_synthetic_ms(a) * (1.3 if i % 3 == 0 else 1.0) for i, a in enumerate(train)]  # some badly fit points
    p, pool, y, hist = adaptive_fit(p, train, noisy, measure, rounds=2, per_bad=2, max_new=10)
    assert len(pool) == len(train) + len(asked) == len(y)
    assert hist[0]["added"] > 0 and all(h["added"] <= 10 for h in hist)
    assert p.fitted
