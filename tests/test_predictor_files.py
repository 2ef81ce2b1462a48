"""Saved latency predictors hold data, never code: every kind comes back from its JSON file predicting exactly what it
predicted before, and a crafted file (a pickle that would run a command, a file naming a function to call, a damaged
or foreign file) is a one-line refusal that runs nothing."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from nasforge.errors import NasforgeError
from nasforge.latency import latency_model
from nasforge.latency.features import ArchFeatures
from nasforge.latency.fewshot import FewShotLatency
from nasforge.latency.kernel_level import KernelPredictor
from nasforge.latency.model_level import ModelPredictor
from nasforge.latency.predictor import FORMAT, LatencyPredictor
from nasforge.latency.table import LatencyTable
from nasforge.spaces import MNIST_TASK, create_family

LENET = create_family("lenet")


def _archs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [LENET.space.sample(rng) for _ in range(n)]


def _ms(arch) -> float:
    return sum(0.01 + 2e-6 * s.macs + 1e-5 * (s.in_numel + s.out_numel) for s in LENET.layers(arch, MNIST_TASK))


def _fake_measure(self, units, **kw):
    for u in self.missing(units):
        self.entries[u.key] = {"ms": sum(0.01 + 2e-6 * s.macs for s in u.specs), "spread": 0.0, "calls": 1}
    return 0


def _kernel(monkeypatch):
    monkeypatch.setattr(LatencyTable, "measure", _fake_measure)
    train = _archs(12, 2)
    return KernelPredictor("lenet", MNIST_TASK, n_estimators=20, seed=3).fit(
        train, [_ms(a) for a in train], rounds=1, per_bad=2, max_new=10, probe_archs=3
    )


def _fewshot():
    archs = list(LENET.space.grid())[::7]
    feats = ArchFeatures("lenet", MNIST_TASK, "analytic")
    rng = np.random.default_rng(0)
    cols = {f"d{i}": feats.many(archs) @ rng.random(27) * 1e-6 + rng.uniform(0.5, 2) for i in range(3)}
    model = FewShotLatency("lenet", MNIST_TASK, archs[:6], features=feats).meta_fit(archs, cols)
    return model, model.adapt(archs[:10], list(cols["d0"][:10] * 1.1))


@pytest.mark.parametrize("kind", ["gbr", "rf", "ridge", "kernel", "few-shot", "prior"])
def test_every_kind_comes_back_from_json_predicting_exactly_the_same(kind, tmp_path, monkeypatch):
    train, test = _archs(40, 0), _archs(25, 1)
    if kind in ("gbr", "rf", "ridge"):
        p = ModelPredictor("lenet", MNIST_TASK, regressor=kind, seed=5).fit(train, [_ms(a) for a in train])
    elif kind == "kernel":
        p = _kernel(monkeypatch)
    else:
        prior, adapted = _fewshot()
        p = prior if kind == "prior" else adapted
    path = p.save(tmp_path / "p.json")
    doc = json.loads(path.read_text())  # plain JSON: data a person can read
    assert doc["format"] == FORMAT and doc["kind"] == p.kind and doc["family"] == {"name": "lenet", "config": {}}
    back = LatencyPredictor.load(path)
    assert type(back) is type(p) and back.fitted == p.fitted
    if kind == "prior":  # a meta-trained prior, saved before adaptation, adapts the same afterwards
        ref = list(LENET.space.grid())[::7][:10]
        y = [_ms(a) for a in ref]
        np.testing.assert_array_equal(back.adapt(ref, y).predict(test), p.adapt(ref, y).predict(test))
    else:
        np.testing.assert_array_equal(back.predict(test), p.predict(test))
    if kind == "ridge":  # the study's latency source reads the same file
        src = latency_model("predictor", "lenet", MNIST_TASK, predictor=str(path))
        assert src(test[0])["latency_ms"] == float(p.predict(test[:1])[0])


class _Boom:
    """A pickle that runs a shell command when it is loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_a_command_is_refused_unread(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "predictor.pkl"
    evil.write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(NasforgeError, match="is a pickle, which nasforge no longer loads") as e:
        LatencyPredictor.load(evil)
    assert "\n" not in str(e.value) and not marker.exists()
    src = latency_model("predictor", "lenet", MNIST_TASK, predictor=str(evil))  # the study's path to the file
    with pytest.raises(NasforgeError, match="pickle"):
        src(LENET.space.at(0))
    assert not marker.exists()


def test_crafted_and_damaged_files_are_one_line_refusals_that_call_nothing(tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(os, "getcwd", lambda: called.append(1))  # what a file naming 'os:getcwd' would call
    p = ModelPredictor("lenet", MNIST_TASK, regressor="ridge").fit(_archs(10, 0), [1.0 + i for i in range(10)])
    good = json.loads(p.save(tmp_path / "good.json").read_text())

    def variant(**change):
        doc = {**good, **change}
        path = tmp_path / f"v{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(doc))
        return path

    state = dict(good["state"])
    cases = [
        (tmp_path / "none.json", "does not exist"),
        (variant(format="other/1"), "is not a nasforge latency predictor"),
        (variant(kind="evil"), "unknown kind 'evil'"),
        (variant(family={"import": "os:getcwd"}), "not a Family object"),
        (variant(family={"name": "nope"}), "cannot be used"),
        (variant(state={**state, "ms": "x"}), "is damaged"),
        (variant(state={k: v for k, v in state.items() if k != "archs"}), "is damaged"),
        (variant(state={**state, "ms": [v * 2 for v in state["ms"]]}), "predicts up to"),
    ]
    (tmp_path / "text.json").write_text("not json at all")
    cases.append((tmp_path / "text.json", "is not a nasforge latency predictor"))
    (tmp_path / "bin.json").write_bytes(bytes(range(1, 256)))
    cases.append((tmp_path / "bin.json", "is not a nasforge latency predictor"))
    for path, message in cases:
        with pytest.raises(NasforgeError, match=message) as e:
            LatencyPredictor.load(path)
        assert "\n" not in str(e.value), str(e.value)
    assert called == []


def test_what_a_file_cannot_hold_is_refused_when_saving(tmp_path):
    with pytest.raises(NasforgeError, match="not trained yet"):
        ModelPredictor("lenet", MNIST_TASK).save(tmp_path / "p.json")
    archs = list(LENET.space.grid())[::9]
    custom = FewShotLatency("lenet", MNIST_TASK, archs[:4], features=lambda a: np.array([a["fc1"], a["fc2"]]))
    custom.meta_fit(archs, {"a": np.arange(1.0, len(archs) + 1), "b": np.arange(2.0, len(archs) + 2)})
    with pytest.raises(NasforgeError, match="custom feature function"):
        custom.save(tmp_path / "f.json")
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "f.json").exists()
