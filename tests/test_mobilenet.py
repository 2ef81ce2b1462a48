"""The mobilenet family: layer specs against the built model (numel, FlopCounterMode, traced layers), forward passes,
canonical forms of unused block slots, and one-line errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nasforge.cost.counts import costs
from nasforge.cost.trace import trace_layers
from nasforge.errors import NasforgeError, SpaceError
from nasforge.space import Arch
from nasforge.spaces import FAMILIES, Task, create_family

TASK = Task((3, 32, 32), 10)  # H x W are replaced by each arch's resolution


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # two threads on a shared 2-core machine are 10-100x slower than one for these small convs
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def fam():
    return create_family("mobilenet")


def _extreme(fam, pick: int, **fixed) -> Arch:
    return Arch({**{k: fam.space.dims[k].values[pick] for k in fam.space.names}, **fixed})


def _sample(fam, n: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    return [fam.space.sample(rng) for _ in range(n)]


def test_registered_and_space(fam):
    assert "mobilenet" in FAMILIES
    sp = fam.space
    assert sp.names[:3] == ("resolution", "width", "s0_d")
    assert set(sp.dims["s0_b3_k"].values) == {3, 5, 7} and set(sp.dims["s4_b0_e"].values) == {3, 4, 6}
    assert sp.dims["width"].values == (0.5, 0.75, 1.0) and sp.dims["resolution"].values == (96, 112, 128, 160)
    assert len(sp) == 2 + 5 * (1 + 4 * 2)
    # distinct networks: per stage sum over depth d of 9^d, five stages, 3 widths, 4 resolutions
    assert fam.num_networks == 3 * 4 * (9**2 + 9**3 + 9**4) ** 5


def test_params_and_macs_equal_the_built_model(fam):
    archs = [_extreme(fam, 0), _extreme(fam, -1)] + _sample(fam, 3)
    for a in archs:
        model = fam.build(a, TASK).eval()
        shape = fam.input_shape(a, TASK)
        assert shape == (3, a["resolution"], a["resolution"])
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(torch.zeros(1, *shape))
        c = costs(fam.layers(a, TASK))
        assert c["params"] == sum(p.numel() for p in model.parameters()), fam.describe(a)
        assert c["macs"] == fc.get_total_flops() // 2, fam.describe(a)


def test_layer_specs_equal_the_traced_layers(fam):
    a = _sample(fam, 1, seed=3)[0]
    model = fam.build(a, TASK)
    key = lambda s: (s.kind, s.in_shape, s.out_shape, s.kernel, s.stride, s.groups, s.bias)  # noqa: E731
    traced = [key(s) for s in trace_layers(model, fam.input_shape(a, TASK)) if s.kind in ("conv", "bn", "linear")]
    ours = [key(s) for s in fam.layers(a, TASK) if s.kind in ("conv", "bn", "linear")]
    assert ours == traced


def test_specs_carry_what_a_latency_table_needs(fam):
    a = _extreme(fam, -1, s1_d=2)
    layers = fam.layers(a, TASK)
    blocks = [s for s in layers if s.name.startswith("stages.1.")]
    assert {s.name.split(".")[2] for s in blocks} == {"0", "1"}  # depth 2: slots 2, 3 unused
    for s in blocks:
        ex = dict(s.extra)
        assert ex["block"] == "mbconv" and ex["expand"] == a["s1_b0_e"]
        assert ex["skip"] == s.name.startswith("stages.1.1") and ex["unit"] == ".".join(s.name.split(".")[:3])
        assert ex.get("act", "relu6") == "relu6"
    dw = [s for s in layers if s.name.endswith(".depthwise.0")]
    assert all(s.groups == s.in_shape[0] == s.out_shape[0] for s in dw)
    assert [s.kernel for s in dw if s.name.startswith("stages.1.")] == [(7, 7), (7, 7)]
    assert [s.stride for s in dw if s.name.startswith("stages.1.")] == [2, 1]
    assert len({s.key() for s in layers}) > 10  # LUT keys distinguish layers
    # the key of a layer does not depend on where it sits: two equal blocks of one stage share their keys
    b = _extreme(fam, 0, s1_d=3)
    keys = [[x.key() for x in fam.layers(b, TASK) if x.name.startswith(f"stages.1.{j}.")] for j in (1, 2)]
    assert keys[0] == keys[1]


def test_every_sampled_arch_builds_and_runs(fam):
    torch.manual_seed(0)
    for a in [_extreme(fam, 0)] + _sample(fam, 8, seed=1):
        model = fam.build(a, TASK).eval()
        with torch.no_grad():
            y = model(torch.randn(2, *fam.input_shape(a, TASK)))
        assert y.shape == (2, TASK.num_classes) and torch.isfinite(y).all()


def test_other_input_sizes_are_resized_to_the_arch_resolution(fam):
    mnist = Task((1, 28, 28), 10)
    a = _extreme(fam, 0)  # resolution 96
    model = fam.build(a, mnist).eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        y = model(x)
        ref = model(torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False))
    torch.testing.assert_close(y, ref)
    assert fam.layers(a, mnist)[0].in_shape == (1, 96, 96)


def test_unused_slots_are_canonicalised(fam):
    a = _extreme(fam, 0, s2_d=2, s2_b2_k=7, s2_b3_e=6)
    b = a.replace(s2_b2_k=5, s2_b3_e=4)  # differs only in unused slots
    assert a.key != b.key
    assert fam.network_key(a) == fam.network_key(b) and fam.canonical(a) == fam.canonical(b)
    assert fam.describe(a) == fam.describe(b) and "k7" not in fam.describe(a).split("|")[3]
    assert fam.layers(a, TASK) == fam.layers(b, TASK)
    np.testing.assert_array_equal(fam.features(a), fam.features(b))
    c = a.replace(s2_b1_k=7)  # a used slot: a different network
    assert fam.network_key(c) != fam.network_key(a) and (fam.features(c) != fam.features(a)).any()
    assert fam.canonical(fam.canonical(a)) == fam.canonical(a)
    assert fam.arch(dict(a, width=1)).key == fam.arch(dict(a, width=1.0)).key  # the space's own values
    # a skipped slot encodes as zeros, a used one as one kernel and one expand one-hot
    f = fam.features(a).reshape(-1)[: 5 * 4 * 6].reshape(5, 4, 6)
    assert f[2, 2:].sum() == 0 and (f[2, :2].sum(axis=1) == 2).all()


def test_num_networks_by_brute_force():
    tiny = create_family("mobilenet", stages=[[8, 2], [16, 1]], depths=[1, 2], kernels=[3, 5], expands=[3],
                         widths=[1.0], resolutions=[32])
    distinct = {tiny.network_key(a) for a in tiny.space.grid()}
    assert len(distinct) == tiny.num_networks == (2 + 4) ** 2
    assert tiny.space.size == 2 * 2 * 2 * 2 * 2 * 2  # (depth, 2 slot kernels) per stage, expand fixed


def test_config_round_trip():
    f = create_family("mobilenet", stages=[[8, 2], [16, 2]], widths=[0.5, 1.0], head=64)
    g = create_family("mobilenet", **f.config())
    assert g.space == f.space and g.config() == f.config()
    assert create_family("mobilenet").config() == {}


@pytest.mark.parametrize(
    "change,match",
    [
        ({"width": 0.3}, r"mobilenet width=0\.3 is not one of \[0\.5, 0\.75, 1\.0\]"),
        ({"resolution": 224}, r"mobilenet resolution=224 is not one of"),
        ({"s3_b1_k": 9}, r"mobilenet s3_b1_k=9 is not one of \[3, 5, 7\]"),
    ],
)
def test_bad_values_raise_one_line(fam, change, match):
    a = dict(_extreme(fam, 0), **change)
    for call in (fam.layers, fam.build):
        with pytest.raises(SpaceError, match=match) as e:
            call(a, TASK)
        assert "\n" not in str(e.value)


def test_arch_from_another_family(fam):
    lenet = create_family("lenet")
    other = next(lenet.space.grid())
    for call in (lambda: fam.layers(other, TASK), lambda: fam.build(other, TASK), lambda: fam.describe(other)):
        with pytest.raises(NasforgeError, match="not a mobilenet arch") as e:
            call()
        assert "\n" not in str(e.value)


def test_bad_task_and_config():
    fam = create_family("mobilenet")
    with pytest.raises(SpaceError, match="image task"):
        fam.layers(_extreme(fam, 0), Task((64,), 10))
    with pytest.raises(SpaceError, match="strides 1 or 2"):
        _ = create_family("mobilenet", stages=[[8, 3]]).space
    with pytest.raises(SpaceError, match="kernels must be odd"):
        _ = create_family("mobilenet", kernels=[3, 4]).space


def test_space_operators_work_on_the_family(fam):
    rng = np.random.default_rng(0)
    a = fam.space.sample(rng)
    m = fam.space.mutate(a, rng, n=2)
    x = fam.space.crossover(a, m, rng)
    for arch in (a, m, x, *itertools.islice(fam.space.grid(), 2)):
        assert fam.space.contains(arch) and fam.layers(arch, TASK)
