"""Measured latency: statistics, threads, interleaving, paired mode, runtimes, cache, the source registry."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
import torch
from torch import nn

from nasforge import latency
from nasforge.errors import NasforgeError
from nasforge.latency import machine as M
from nasforge.latency import measured
from nasforge.latency import runtime as R
from nasforge.latency import timing as T
from nasforge.spaces import MNIST_TASK, create_family


def test_timing_statistics_match_numpy():
    s = (5.0, 1.0, 3.0, 2.0, 100.0, 4.0)
    t = T.Timing(s)
    assert t.median == pytest.approx(np.median(s))
    assert t.min == 1.0
    assert t.mean == pytest.approx(np.mean(s))
    q25, q75 = np.quantile(s, [0.25, 0.75])
    assert t.iqr == pytest.approx(q75 - q25)
    assert t.spread == pytest.approx((q75 - q25) / np.median(s))
    assert t.stat("q10") == pytest.approx(np.quantile(s, 0.1))
    assert T.Timing.from_dict(t.to_dict()) == t
    with pytest.raises(NasforgeError):
        t.stat("max")


class _ThreadProbe(nn.Module):
    """Records the torch thread count seen by every forward call."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.lin(x)


@pytest.mark.parametrize("threads", [1, 2])
def test_measurement_respects_and_restores_thread_count(threads):
    before = torch.get_num_threads()
    probe = _ThreadProbe()
    t = R.measure_model(probe, (4,), threads=threads, warmup=2, repeats=5)
    assert len(t.samples_ms) == 5
    assert probe.seen and set(probe.seen) == {threads}
    assert torch.get_num_threads() == before


def test_thread_count_restored_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), R.torch_threads(2):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_onnxruntime_session_uses_the_thread_count_and_matches_torch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten()).eval()
    onnx = R.export_onnx(model, (3, 6, 6), exporter="dynamo")
    sess = R.onnx_session(onnx, threads=2)
    assert sess.get_session_options().intra_op_num_threads == 2
    x = torch.randn(1, 3, 6, 6)
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, model(x).numpy(), rtol=1e-4, atol=1e-5)
    t = R.measure_model(model, (3, 6, 6), runtime="onnxruntime", exporter="legacy", warmup=1, repeats=3)
    assert len(t.samples_ms) == 3 and t.min > 0


def test_interleaved_rounds_call_every_function_once():
    log: list[int] = []
    fns = [lambda i=i: log.append(i) for i in range(3)]
    T.time_functions(fns, warmup=0, repeats=4, seed=1)
    rounds = [sorted(log[i : i + 3]) for i in range(0, 12, 3)]
    assert rounds == [[0, 1, 2]] * 4
    assert len({tuple(log[i : i + 3]) for i in range(0, 12, 3)}) > 1  # the order is reshuffled each round
    log.clear()
    T.time_functions(fns, warmup=0, repeats=2, interleave=False)
    assert log == [0, 0, 1, 1, 2, 2]


class _Sleep(nn.Module):
    def __init__(self, ms: float, log: list[str], name: str) -> None:
        super().__init__()
        self.ms, self.log, self.name = ms, log, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        time.sleep(self.ms / 1e3)
        return x


def test_paired_mode_alternates_abba_and_reports_the_ratio():
    log: list[str] = []
    a, b = _Sleep(2.0, log, "A"), _Sleep(20.0, log, "B")
    p = R.measure_paired(a, b, (1,), warmup=0, repeats=4)
    assert "".join(log) == "ABBAABBA"
    assert p.ratios == pytest.approx([tb / ta for ta, tb in zip(p.a.samples_ms, p.b.samples_ms, strict=True)])
    assert p.b_faster_share == np.mean(np.asarray(p.ratios) < 1)
    # B sleeps 10x as long as A; on a loaded machine a 2 ms sleep was seen to take 8.5 ms, so only a wide margin
    # (the median of four rounds above 1.5) is asserted about wall-clock time
    assert p.ratio > 1.5


def test_bad_settings_raise_nasforge_errors():
    m = nn.Linear(2, 2)
    with pytest.raises(NasforgeError, match="runtime"):
        R.measure_model(m, (2,), runtime="tvm")
    with pytest.raises(NasforgeError, match="thread"):
        R.measure_model(m, (2,), threads=0)
    with pytest.raises(NasforgeError, match="source"):
        latency.latency_model("guess", "lenet", MNIST_TASK)


def test_cache_dir_defaults_and_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("NASFORGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert M.default_cache_dir() == tmp_path / "xdg" / "nasforge"
    monkeypatch.setenv("NASFORGE_CACHE_DIR", str(tmp_path / "own"))
    assert M.default_cache_dir() == tmp_path / "own"
    assert M.LatencyCache(tmp_path / "given").path.parent == tmp_path / "given"


def _lenet_archs(n: int):
    fam = create_family("lenet")
    rng = np.random.default_rng(0)
    return fam, [fam.space.sample(rng) for _ in range(n)]


def test_measured_latency_is_cached_by_arch_and_machine(tmp_path, monkeypatch):
    fam, archs = _lenet_archs(2)
    m = measured.MeasuredLatency(fam, MNIST_TASK, warmup=1, repeats=3, cache_dir=tmp_path)
    first = m.predict(archs)
    assert (first > 0).all() and len(M.LatencyCache(tmp_path)) == 2

    def boom(*a, **k):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(measured, "measure_models", boom)
    np.testing.assert_array_equal(m.predict(archs), first)
    assert m(archs[0]) == {"latency_ms": first[0]}
    # another thread count is another machine setting: a different key
    m2 = measured.MeasuredLatency(fam, MNIST_TASK, threads=2, warmup=1, repeats=3, cache_dir=tmp_path)
    assert m2.key(archs[0]) != m.key(archs[0])
    assert M.machine_fingerprint("torch", 2)["threads"] == 2


def test_latency_model_is_picklable_and_refuses_other_families(tmp_path):
    fam, archs = _lenet_archs(1)
    m = latency.latency_model("measured", "lenet", MNIST_TASK, warmup=1, repeats=2, cache_dir=tmp_path, stat="min")
    m2 = pickle.loads(pickle.dumps(m))
    out = m2(archs[0])
    assert set(out) == {"latency_ms"} and out["latency_ms"] > 0
    cell_arch = create_family("cell", L=1).space.sample(np.random.default_rng(0))
    with pytest.raises(NasforgeError, match="lenet"):
        m2(cell_arch)


def test_registry_refuses_an_unknown_source_or_option_in_one_line():
    assert set(latency.SOURCES.names()) >= {"measured", "lut", "predictor"}
    for source, options, message in [
        ("guess", {}, "unknown latency source 'guess'; known: lut, measured, predictor"),
        ("measured", {"repeat": 3}, "latency source 'measured' has no option 'repeat'; its options: "),
        ("lut", {}, "latency source 'lut': missing a required argument: 'table'"),
    ]:
        with pytest.raises(NasforgeError) as e:
            latency.latency_model(source, "lenet", MNIST_TASK, **options)
        assert message in str(e.value) and "\n" not in str(e.value)
    m = latency.latency_model("measured", "lenet", MNIST_TASK, metric="latency_ms_onnx", runtime="onnxruntime")
    assert isinstance(m, measured.MeasuredLatency) and m.name == "measured"
    assert m.metrics == ("latency_ms_onnx",) and m.config()["source"] == "measured"
    assert measured.MeasuredLatency("lenet", MNIST_TASK).metrics == ("latency_ms",)


# --- the `nasforge latency` sub-app -----------------------------------------------------------------------------------
def test_cli_measure_lut_and_predictor(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from nasforge.commands.latency import app

    monkeypatch.setenv("NASFORGE_CACHE_DIR", str(tmp_path / "cache"))
    run = CliRunner().invoke
    fast = ["--repeats", "2", "--warmup", "1"]
    r = run(app, ["measure", "--family", "lenet", "--random", "2", *fast, "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    assert "median ms" in r.output and len(json.loads((tmp_path / "m.json").read_text())["results"]) == 2
    arch = json.dumps(dict(create_family("lenet").space.sample(np.random.default_rng(0))))
    assert run(app, ["measure", "--family", "lenet", "--arch", arch, *fast]).exit_code == 0

    lut = tmp_path / "lut.json"
    r = run(app, ["lut", "--family", "lenet", "--archs", "3", "--out", str(lut), "--calibrate", "3", "-q", *fast])
    assert r.exit_code == 0, r.output
    assert "calibration on 3" in r.output and json.loads(lut.read_text())["calibration"]["n"] == 3

    pkl = tmp_path / "p.pkl"
    r = run(app, ["predictor", "train", "--family", "lenet", "--n-train", "8", "--rounds", "1", "--regressor",
                  "ridge", "--out", str(pkl), *fast])
    assert r.exit_code == 0, r.output
    r = run(app, ["predictor", "evaluate", "--predictor", str(pkl), "--n-test", "4", *fast])
    assert r.exit_code == 0 and "±10% accuracy" in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["measure", "--family", "lenet", "--arch", "{x"], "not valid JSON"),
        (["measure", "--family", "lenet"], "exactly one of"),
        (["measure", "--family", "lenet", "--random", "1", "--runtime", "tvm"], "unknown runtime"),
        (["measure", "--family", "nope", "--random", "1"], "unknown family"),
        (["predictor", "evaluate", "--predictor", "/nonexistent.pkl"], "does not exist"),
    ],
)
def test_cli_user_errors_are_one_line_nasforge_errors(args, message):
    from typer.testing import CliRunner

    from nasforge.commands.latency import app

    r = CliRunner().invoke(app, args)
    # the sub-app leaves NasforgeErrors to nasforge.cli.main, which prints them as one line and exits with 2
    assert isinstance(r.exception, NasforgeError), r.output
    assert message in str(r.exception) and "\n" not in str(r.exception)


# --- every registered source keeps the LatencyModel contract ----------------------------------------------------------
def _options(source: str, tmp_path) -> dict:
    """How the conformance test builds each source for lenet; a new source needs an entry here to be tested."""
    if source == "measured":
        return {"warmup": 1, "repeats": 2, "cache_dir": tmp_path}
    if source == "lut":
        from nasforge.latency.table import LatencyTable

        return {"table": LatencyTable(tmp_path / "lut.json", warmup=1, repeats=2, target_ms=0.0)}
    if source == "predictor":
        from nasforge.latency.model_level import ModelPredictor

        fam, archs = _lenet_archs(12)
        ms = [1.0 + fam.costs(a, MNIST_TASK)["macs"] / 1e6 for a in archs]
        return {"predictor": ModelPredictor("lenet", MNIST_TASK, "ridge").fit(archs, ms)}
    raise AssertionError(f"latency source {source!r} is registered but the conformance test cannot build it")


@pytest.mark.parametrize("source", latency.SOURCES.names())
def test_every_source_keeps_the_contract(source, tmp_path):
    from nasforge.metrics import metric

    fam, archs = _lenet_archs(3)
    model = latency.latency_model(source, "lenet", MNIST_TASK, **_options(source, tmp_path))
    assert model.name == source and model.metrics == ("latency_ms",) and metric("latency_ms").unit == "ms"
    ms = model.predict(archs)
    assert ms.shape == (3,) and np.all(np.isfinite(ms)) and np.all(ms > 0)
    again = pickle.loads(pickle.dumps(model))  # a study may hand its cost models to another process
    out = again(archs[0])
    assert set(out) == set(model.metrics) and out["latency_ms"] > 0
    assert model.config()["source"] == source and model.config()["family"] == "lenet"
    with pytest.raises(NasforgeError, match="lenet") as e:
        again(create_family("cell", L=1).space.sample(np.random.default_rng(0)))
    assert "\n" not in str(e.value)
