"""Energy with Horowitz's 45 nm table, against hand calculation."""

from __future__ import annotations

import pytest

from nasforge.constraints import Constraint, Objective
from nasforge.cost.counts import costs
from nasforge.cost.energy import HOROWITZ_45NM, EnergyModel, energy, energy_uj
from nasforge.cost.layers import LayerSpec
from nasforge.errors import NasforgeError

# a single 3x3 conv, 3 -> 8 channels, 10x10 input, no padding: 8x8 output
CONV = LayerSpec("conv", (3, 10, 10), (8, 8, 8), (3, 3), name="conv")
MACS = 8 * 3 * 9 * 64  # 13,824
PARAMS = 8 * 3 * 9  # 216


def test_table_is_horowitz():
    assert HOROWITZ_45NM == {"fp32_add": 0.9, "fp32_mult": 3.7, "int8_add": 0.03, "int8_mult": 0.2,
                             "sram_32bit": 5.0, "dram_32bit": 640.0}


def test_single_conv_fp32_by_hand():
    assert CONV.macs == MACS and CONV.params == PARAMS
    compute_pj = MACS * (3.7 + 0.9)  # one multiply and one add per MAC
    weights_pj = PARAMS * 640  # every fp32 weight read once from DRAM
    acts_pj = (300 + 512) * 5  # input read once, output written once, in SRAM, one word each
    e = energy([CONV])
    assert e.compute_uj == pytest.approx(compute_pj * 1e-6)
    assert e.weights_uj == pytest.approx(weights_pj * 1e-6)
    assert e.activations_uj == pytest.approx(acts_pj * 1e-6)
    assert e.total_uj == pytest.approx(0.2058904)
    assert costs([CONV])["energy_uj"] == pytest.approx(0.2058904)


def test_single_conv_int8_by_hand():
    # int8 arithmetic; four 8-bit values to a 32-bit word for weights and activations
    total_pj = MACS * (0.2 + 0.03) + PARAMS / 4 * 640 + (300 + 512) / 4 * 5
    assert total_pj == pytest.approx(38754.52)
    assert energy_uj([CONV], bits=8) == pytest.approx(total_pj * 1e-6)
    assert costs([CONV], bits=8, act_bits=8)["energy_uj"] == pytest.approx(total_pj * 1e-6)


def test_memory_model_is_configurable():
    on_chip = energy([CONV], EnergyModel(weight_memory="sram"))
    assert on_chip.weights_uj == pytest.approx(PARAMS * 5 * 1e-6)
    in_dram = energy([CONV], EnergyModel(act_memory="dram"))
    assert in_dram.activations_uj == pytest.approx(812 * 640 * 1e-6)
    # fp32 weights with int8 activations: weights a word each, activations four to a word
    assert energy([CONV], EnergyModel(bits=32, act_bits=8)).activations_uj == pytest.approx(203 * 5 * 1e-6)


def test_fused_layers_are_free_and_adds_cost_one_add():
    s = (4, 2, 2)
    assert energy([LayerSpec("act", s, s), LayerSpec("reshape", s, (16,))]).total_uj == 0
    bn = energy([LayerSpec("bn", s, s)])  # folded into the conv: only its 8 affine weights are read
    assert (bn.compute_uj, bn.activations_uj) == (0, 0) and bn.weights_uj == pytest.approx(8 * 640 * 1e-6)
    add = LayerSpec("add", (8, 2, 2), s)  # two stacked operands of 16 elements, 16 results
    assert energy([add]).total_uj == pytest.approx((16 * 0.9 + (32 + 16) * 5) * 1e-6)
    pool = LayerSpec("pool", s, (4, 1, 1), (2, 2))
    assert energy([pool]).total_uj == pytest.approx((16 * 0.9 + (16 + 4) * 5) * 1e-6)


def test_costs_energy_equals_energy_module():
    layers = [CONV, LayerSpec("bn", (8, 8, 8), (8, 8, 8)), LayerSpec("act", (8, 8, 8), (8, 8, 8)),
              LayerSpec("pool", (8, 8, 8), (8, 1, 1), (8, 8)), LayerSpec("reshape", (8, 1, 1), (8,)),
              LayerSpec("linear", (8,), (10,), bias=True)]
    for bits, act_bits in ((32, 32), (8, 8), (32, 8)):
        assert costs(layers, bits, act_bits)["energy_uj"] == pytest.approx(energy_uj(layers, bits, act_bits))


def test_energy_as_constraint_and_objective():
    c = costs([CONV])
    assert Constraint.parse("energy_uj<=0.21").ok(c) and not Constraint.parse("energy_uj<=0.2").ok(c)
    assert Objective.parse("minimize energy_uj").score(c) == pytest.approx(-0.2058904)


def test_bad_memory_name():
    with pytest.raises(NasforgeError, match="weight_memory='flash' is not one of sram, dram"):
        energy([CONV], EnergyModel(weight_memory="flash"))
