"""Latency lookup table: stable keys, one module per unit, sum over units, calibration, incremental build and resume."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.cost.layers import LayerSpec
from nasforge.cost.trace import trace_layers
from nasforge.errors import NasforgeError
from nasforge.latency import lut as T
from nasforge.latency import table as TB
from nasforge.latency.table import LatencyTable
from nasforge.latency.units import Unit, split_units, unit_module
from nasforge.space import Space
from nasforge.spaces import FAMILIES, MNIST_TASK, Task, create_family
from nasforge.spaces.base import Family

FAST = {"warmup": 1, "repeats": 3, "target_ms": 0.0}
needs_mobilenet = pytest.mark.skipif("mobilenet" not in FAMILIES, reason="the mobilenet family is not there yet")


def test_layer_keys_are_stable_literals_and_ignore_names():
    spec = LayerSpec("conv", (16, 8, 8), (32, 4, 4), (3, 3), 2, 16, name="x", extra=(("expand", 6), ("skip", False)))
    # a literal: the key must not change between runs or Python versions (tables on disk depend on it)
    assert spec.key() == "conv|in=16x8x8|out=32x4x4|k=3x3|s=2|g=16|b=0|expand=6,skip=False"
    assert LayerSpec("conv", (16, 8, 8), (32, 4, 4), (3, 3), 2, 16, name="y", extra=spec.extra).key() == spec.key()
    block = Unit((spec, LayerSpec("bn", (32, 4, 4), (32, 4, 4), extra=(("block", "mbconv"),))))
    assert block.key == "block|in=16x8x8|out=32x4x4|k=3|n=2|expand=6,skip=False|56abd8fbecb1"


def _check_module(unit: Unit) -> None:
    mod, shape = unit_module(unit)
    with torch.no_grad():
        y = mod.eval()(torch.randn(1, *shape))
    assert tuple(y.shape[1:]) == unit.specs[-1].out_shape, unit.key
    own = sum(p.numel() for p in mod.parameters())
    assert own == sum(s.params for s in unit.specs), unit.key


@pytest.mark.parametrize("name", ["lenet", "cell"])
def test_unit_modules_have_the_specs_shapes_and_params(name):
    fam = create_family(name) if name == "lenet" else create_family("cell", L=3, M=5, N=3)
    task = MNIST_TASK if name == "lenet" else Task((3, 8, 8), 10)
    rng = np.random.default_rng(0)
    for _ in range(3):
        for u in split_units(fam.layers(fam.space.sample(rng), task), "layer"):
            _check_module(u)


@needs_mobilenet
def test_mobilenet_blocks_are_units_with_their_skip():
    fam = create_family("mobilenet")
    task = Task((3, 32, 32), 10)
    arch = fam.space.sample(np.random.default_rng(3))
    layers = fam.layers(arch, task)
    units = split_units(layers, "block")
    blocks = [u for u in units if len(u.specs) > 1]
    assert len(blocks) == 1 + sum(arch[f"s{i}_d"] for i in range(len(fam.stages)))  # the first block + the stages'
    assert sum(len(u.specs) for u in units) == len(layers)
    assert any(u.residual for u in blocks) and not all(u.residual for u in blocks)
    for u in blocks[:3]:
        _check_module(u)
    assert len(split_units(layers, "layer")) == len(layers)


def test_sum_over_a_one_layer_network_equals_its_entry(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
    layers = trace_layers(model, (3, 8, 8))
    assert len(layers) == 1
    table = LatencyTable(tmp_path / "lut.json", **FAST)
    assert table.measure(table.units(layers)) == 1
    entry = table.entries[layers[0].key()]["ms"]
    assert entry > 0
    assert table.predict(layers, calibrated=False) == entry
    assert LatencyTable.load(tmp_path / "lut.json").predict(layers) == entry  # saved, and a=1, b=0 uncalibrated


def test_calibration_recovers_a_linear_map():
    table = LatencyTable()
    specs = [LayerSpec("act", (n,), (n,)) for n in (1, 2, 3, 4)]
    for i, s in enumerate(specs):
        table.entries[s.key()] = {"ms": float(i + 1)}
    nets = [[specs[0]], [specs[1]], [specs[0], specs[3]], [specs[2], specs[3]]]  # sums 1, 2, 5, 7
    cal = table.calibrate(nets, [1.3 * s + 0.2 for s in (1, 2, 5, 7)])
    assert cal["a"] == pytest.approx(1.3) and cal["b"] == pytest.approx(0.2) and cal["n"] == 4
    assert table.predict(nets[2]) == pytest.approx(1.3 * 5 + 0.2)
    with pytest.raises(NasforgeError, match="not in the lookup table"):
        table.predict([LayerSpec("act", (9,), (9,))])
    # measurements that fall as the sums rise (noise on a loaded machine) never give a negative slope: a ratio keeps
    # the table's order (a negative one inverted the latency loss of a ProxylessNAS benchmark)
    cal = table.calibrate(nets, [15.0, 14.0, 13.0, 12.0])
    assert cal["a"] > 0 and cal["b"] == 0 and cal["fit"].startswith("ratio")
    assert table.predict(nets[3]) > table.predict(nets[0])


def test_build_writes_incrementally_and_resumes(tmp_path, monkeypatch):
    fam = create_family("lenet")
    rng = np.random.default_rng(1)
    archs = [fam.space.sample(rng) for _ in range(4)]
    units = T.family_units(fam, MNIST_TASK, archs)
    path = tmp_path / "lut.json"
    real = TB.time_functions
    calls = {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(TB, "time_functions", interrupted)
    with pytest.raises(KeyboardInterrupt):
        T.build_table(fam, MNIST_TASK, path, archs=archs, chunk=4, **FAST)
    saved = json.loads(path.read_text())["entries"]
    assert len(saved) == 4  # the first chunk survived the interruption
    monkeypatch.setattr(TB, "time_functions", real)
    table = T.build_table(fam, MNIST_TASK, path, archs=archs, chunk=4, **FAST)
    assert len(table) == len(units)
    assert all(table.entries[k] == v for k, v in saved.items())  # resumed, not re-measured
    with pytest.raises(NasforgeError, match="threads=1"):
        LatencyTable.open(path, threads=2)


def test_lut_latency_model_is_picklable_and_refuses_other_families(tmp_path):
    fam = create_family("lenet")
    arch = fam.space.sample(np.random.default_rng(0))
    table = T.build_table(fam, MNIST_TASK, tmp_path / "lut.json", archs=[arch], **FAST)
    model = T.LutLatency("lenet", MNIST_TASK, str(tmp_path / "lut.json"), on_missing="error")
    m2 = pickle.loads(pickle.dumps(model))
    assert m2(arch)["latency_ms"] == pytest.approx(table.raw_sum(fam.layers(arch, MNIST_TASK)))
    other = create_family("cell", L=1).space.sample(np.random.default_rng(0))
    with pytest.raises(NasforgeError, match="lenet"):
        m2(other)
    arch2 = fam.space.sample(np.random.default_rng(5))
    with pytest.raises(NasforgeError, match="lookup table"):
        m2(arch2)  # on_missing="error": a unit the table lacks is an error, not a guess
    assert T.LutLatency(fam, MNIST_TASK, table)(arch2)["latency_ms"] > 0  # on_missing="measure" fills it


def test_unreadable_or_foreign_tables_are_clear_errors(tmp_path):
    with pytest.raises(NasforgeError, match="does not exist"):
        LatencyTable.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(NasforgeError, match="cannot be read"):
        LatencyTable.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(NasforgeError, match="not a nasforge"):
        LatencyTable.load(tmp_path / "other.json")


class _SaysHswish(Family):
    """A family whose act specs name their function, as blueprint families do: a conv-bn-act block, then a lone act."""

    name = "says-hswish"

    @property
    def space(self) -> Space:
        return Space({"width": [4, 8]})

    def layers(self, arch, task):
        c = arch["width"]
        x, y = task.input_shape, (arch["width"], *task.input_shape[1:])
        block = (("block", "conv-bn-act"),)
        return [
            LayerSpec("conv", x, y, (3, 3), name="b.conv", extra=block),
            LayerSpec("bn", y, y, name="b.bn", extra=block),
            LayerSpec("act", y, y, name="b.act", extra=(*block, ("act", "hswish"))),
            LayerSpec("act", y, y, name="tail", extra=(("act", "hswish"),)),
            LayerSpec("pool", y, (c, 1, 1), y[1:], name="pool"),
        ]


def test_the_lut_runs_the_activation_its_spec_names(tmp_path):
    fam, task = _SaysHswish(), Task((3, 8, 8), 10)
    archs = list(fam.space.grid())
    for granularity in ("block", "layer"):
        units = T.family_units(fam, task, archs, granularity)
        acts = [m for u in units for m in unit_module(u)[0].modules() if isinstance(m, nn.Hardswish | nn.ReLU)]
        assert acts and all(isinstance(m, nn.Hardswish) for m in acts), granularity
    # an act spec that names no function is a ReLU, and a different table entry
    plain = LayerSpec("act", (4, 8, 8), (4, 8, 8))
    assert isinstance(unit_module(Unit((plain,)))[0], nn.ReLU)
    assert plain.key() != fam.layers(archs[0], task)[3].key()
    with pytest.raises(NasforgeError, match="unknown activation 'swish7'"):
        unit_module(Unit((LayerSpec("act", (4,), (4,), extra=(("act", "swish7"),)),)))
    model = T.LutLatency(fam, task, LatencyTable(tmp_path / "t.json", **FAST))
    assert (model.predict(archs) > 0).all() and len(model.lut) == 6  # per width: a block, a lone act, a pool


def test_cli_resume_keeps_the_calibration_unless_recalibrate(tmp_path, capsys):
    from nasforge.cli import main

    path = tmp_path / "lut.json"
    cmd = ["latency", "lut", "--family", "lenet", "--out", str(path), "--archs", "2", "--calibrate", "3",
           "--repeats", "2", "--warmup", "0", "-q"]  # fmt: skip
    assert main(cmd) == 0
    cal = json.loads(path.read_text())["calibration"]
    assert cal["n"] == 3 and cal["calibrated_at"].endswith("+00:00") and cal["cpus"] >= 1
    assert cal["load_avg"] is None or len(cal["load_avg"]) == 3
    data = json.loads(path.read_text())
    data["calibration"]["a"] = 123.0  # a mark: a resume that recalibrates would overwrite it
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(cmd) == 0
    said = capsys.readouterr().out
    assert json.loads(path.read_text())["calibration"] == data["calibration"]
    assert "kept the calibration of " + cal["calibrated_at"] in said and "--recalibrate" in said
    assert main([*cmd, "--recalibrate"]) == 0
    again = json.loads(path.read_text())["calibration"]
    assert again["a"] != 123.0 and again["n"] == 3 and again["calibrated_at"] >= cal["calibrated_at"]
