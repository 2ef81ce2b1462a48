"""Peak activation memory (MCUNet's in-place rule) and flash, against hand computation and a liveness simulator."""

from __future__ import annotations

import pytest
import torch

from nasforge.blueprint import Blueprint
from nasforge.blueprint.macros import mbconv, mid_channels
from nasforge.blueprint.net import build
from nasforge.constraints import Constraint
from nasforge.cost.counts import COST_METRICS, costs
from nasforge.cost.layers import LayerSpec
from nasforge.cost.memory import (
    flash_bytes,
    memory_profile,
    peak_activation_elems,
    peak_layer,
    peak_memory,
)
from nasforge.cost.trace import trace_layers
from nasforge.errors import NasforgeError
from nasforge.space import Space


def mbconv_block(cin: int, cout: int, k: int, s: int, e: int, hw: int):
    """One MBConv block declared with the shared macro: its layer list and its built module."""
    bp = Blueprint((cin, hw, hw))
    mbconv(bp, "b", cin, cout, k, s, e)
    bp.freeze(Space({"_": [0]}))
    return bp.layers({"_": 0}), build(bp, {"_": 0})


def chain() -> list[LayerSpec]:
    # conv 1->4 (8x8, 'same'), ReLU, conv 4->2 stride 2, flatten, linear 32->10
    return [
        LayerSpec("conv", (1, 8, 8), (4, 8, 8), (3, 3), name="c1"),
        LayerSpec("act", (4, 8, 8), (4, 8, 8), name="relu"),
        LayerSpec("conv", (4, 8, 8), (2, 4, 4), (3, 3), 2, name="c2"),
        LayerSpec("reshape", (2, 4, 4), (32,), name="flat"),
        LayerSpec("linear", (32,), (10,), bias=True, name="fc"),
    ]


def test_plain_chain_by_hand():
    # c1: 64 in + 256 out = 320; relu in place: 256; c2: 256 + 32 = 288; flatten in place: 32; fc: 32 + 10 = 42
    layers = chain()
    assert [b for _, b in memory_profile(layers, act_bits=8)] == [320, 256, 288, 32, 42]
    assert peak_activation_elems(layers) == 320
    assert peak_layer(layers) == 0
    assert peak_memory(layers, act_bits=8) == 320
    assert peak_memory(layers, act_bits=32) == 1280
    c = costs(layers)  # peak_mem at fp32 activations, sram at int8
    assert c["peak_mem"] == 1280 and c["sram"] == 320


def test_residual_block_by_hand():
    # MBConv 8->8, expand 2 (mid 16), k3, stride 1 on 8x4x4: residual, so the block input (128) stays live
    layers, _ = mbconv_block(8, 8, 3, 1, 2, 4)
    assert [s.name for s in layers] == ["b.expand_conv.0", "b.expand_conv.1", "b.expand_conv.2", "b.depthwise.0",
                                        "b.depthwise.1", "b.depthwise.2", "b.project.0", "b.project.1", "b.add"]
    held = [b for _, b in memory_profile(layers, act_bits=8)]
    # expand: 128 + 256; bn, act in place: 256 + 128 live; dw: 256 + 256 + 128; bn, act: 256 + 128;
    # project: 256 + 128 + 128; bn: 128 + 128; add (two stacked operands, written over one): 256
    assert held == [384, 384, 384, 640, 384, 384, 512, 256, 256]
    assert peak_memory(layers, act_bits=8) == 640


def _simulate(layers: list[LayerSpec], residual_input: int) -> int:
    """Reference: explicit tensors with producers and last consumers; in-place ops reuse their input's buffer."""
    tensors = {"x": residual_input}  # name -> elements
    last_use = {"x": len(layers) - 1 if layers[-1].kind == "add" else 0}
    cur, peak = "x", 0
    for i, lay in enumerate(layers):
        alive = {t for t, last in last_use.items() if last >= i}
        if lay.kind in ("bn", "act", "add"):
            name = cur  # written in place
        else:
            name = f"t{i}"
            tensors[name] = lay.out_numel
            alive.add(name)
        alive.add(cur)
        peak = max(peak, sum(tensors[t] for t in alive))
        last_use[name] = max(last_use.get(name, i), i + 1)
        last_use[cur] = max(last_use[cur], i)
        cur = name
    return peak


@pytest.mark.parametrize("cin,cout,k,s,e", [(8, 8, 3, 1, 3), (8, 16, 5, 2, 6), (16, 16, 7, 1, 4), (8, 8, 3, 1, 1)])
def test_mbconv_peak_matches_liveness_simulation(cin, cout, k, s, e):
    layers, _ = mbconv_block(cin, cout, k, s, e, 6)
    assert peak_activation_elems(layers) == _simulate(layers, cin * 36)


@pytest.mark.parametrize("cin,cout,k,s,e", [(8, 8, 3, 1, 3), (8, 16, 5, 2, 6), (16, 16, 7, 1, 1)])
def test_mbconv_specs_match_the_built_block(cin, cout, k, s, e):
    layers, block = mbconv_block(cin, cout, k, s, e, 9)
    # the tracer sees the residual sum as an unknown parameter-free module ("other"): compare everything else
    traced = [(t.kind, t.in_shape, t.out_shape, t.kernel, t.stride, t.groups) for t in trace_layers(block, (cin, 9, 9))
              if t.kind != "other"]
    ours = [(t.kind, t.in_shape, t.out_shape, t.kernel, t.stride, t.groups) for t in layers if t.kind != "add"]
    assert ours == traced
    assert sum(t.params for t in layers) == sum(p.numel() for p in block.parameters())
    assert any(t.kind == "add" for t in layers) == (s == 1 and cin == cout)
    assert block(torch.zeros(1, cin, 9, 9)).shape[1] == cout
    dw = next(t for t in layers if t.name == "b.depthwise.0")
    assert dw.groups == dw.in_shape[0] == mid_channels(cin, e)


def test_flash_at_int8_and_fp32():
    layers = chain()
    params = 4 * 1 * 9 + 2 * 4 * 9 + 32 * 10 + 10  # 438
    assert sum(s.params for s in layers) == params
    assert flash_bytes(layers) == params  # int8 by default
    assert flash_bytes(layers, bits=32) == 4 * params
    assert flash_bytes(layers, bits=4) == 219
    c = costs(layers, mcu_bits=8)
    assert c["flash"] == params and c["size"] == 4 * params
    assert costs(layers, mcu_bits=32)["flash"] == 4 * params


def test_memory_constraints_are_ordinary_constraints():
    assert {"peak_mem", "flash", "sram", "energy_uj"} <= set(COST_METRICS)
    c = costs(chain())
    assert Constraint.parse("sram<=320B").ok(c) and not Constraint.parse("sram<320B").ok(c)
    assert Constraint.parse("flash<=1MiB").ok(c) and Constraint.parse("peak_mem<=256KiB").ok(c)
    assert Constraint.parse("peak_mem<=256KiB").value == 256 * 1024


def test_bad_bit_width():
    with pytest.raises(NasforgeError, match="bit width"):
        flash_bytes(chain(), bits=0)
    with pytest.raises(NasforgeError):
        costs(chain(), mcu_bits=0)


def test_empty_network():
    assert peak_memory([]) == 0 and peak_layer([]) == -1 and flash_bytes([]) == 0
