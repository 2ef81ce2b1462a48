"""Analytic costs of a layer list: parameters, MACs, model size, activation memory, flash, energy.

``costs`` is called for every arch of a study, so it makes one pass over the layers and builds nothing.

Metrics (all cheap; constraints on them are checked before any training):

- ``params``: parameters (weights, biases, BN affine), as ``numel()`` counts them.
- ``macs``: multiply-accumulates of one inference (batch 1), as ``FlopCounterMode`` counts them (FLOPs / 2). NaN when
  a layer's MACs are unknown (a traced model's compute that the tracer cannot count, ``cost/trace.py``): a sum over
  an unknown is unknown, and so is ``energy_uj``, which depends on it; the other metrics stay known.
- ``size``: weight storage in bytes at ``bits`` per parameter (fp32 by default).
- ``peak_mem``: peak activation memory in bytes at ``act_bits`` per element, by MCUNet's rule with in-place
  activations, BN and adds (``cost/memory.py``). Before issue 4 it counted the output of in-place layers too.
- ``flash`` and ``sram``: the microcontroller pair of MCUNet/TinyNAS at ``mcu_bits`` (int8 by default): weights in
  flash and peak activation memory in SRAM, in bytes. ``"sram<=256KiB"`` and ``"flash<=1MiB"`` are MCUNet's limits.
- ``energy_uj``: energy of one inference in microjoules at ``bits``/``act_bits`` with Horowitz's 45 nm table, weights
  read once from DRAM and activations read and written once in SRAM (``cost/energy.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..metrics import COST_METRICS
from .energy import FUSED, EnergyModel
from .layers import LayerSpec
from .memory import INPLACE

__all__ = ["COST_METRICS", "costs"]  # COST_METRICS: what ``costs`` returns (the metric table describes each)


def costs(layers: Sequence[LayerSpec], bits: int = 32, act_bits: int = 32, mcu_bits: int = 8) -> dict[str, float]:
    """All analytic costs of a network (see the module docstring for each key). Byte counts are whole bytes."""
    em = EnergyModel(bits, act_bits).check()
    if mcu_bits <= 0:
        from ..errors import NasforgeError

        raise NasforgeError(f"mcu_bits must be positive, got {mcu_bits}")
    params = macs = peak = adds = mults = traffic = 0
    for lay in layers:
        p, m, k = lay.params, lay.macs, lay.kind
        params += p
        macs += m
        n_in = lay.in_numel
        n_out = lay.out_numel
        held = n_in + lay.live + (0 if k in INPLACE else n_out)
        if held > peak:
            peak = held
        if k in FUSED:
            continue
        # the same terms as cost.energy.energy, inlined so that one pass serves every metric
        if k == "add":
            adds += n_out
        elif k == "mul":
            mults += n_out
        elif k == "pool":
            adds += n_in
        traffic += n_in + n_out
    pj = ((macs + mults) * em.mult_pj + (macs + adds) * em.add_pj
          + params * bits / 32 * em.word_pj(em.weight_memory) + traffic * act_bits / 32 * em.word_pj(em.act_memory))
    return {
        "params": params,
        "macs": macs,
        "size": params * bits / 8,
        "peak_mem": _ceil_bytes(peak, act_bits),
        "flash": _ceil_bytes(params, mcu_bits),
        "sram": _ceil_bytes(peak, mcu_bits),
        "energy_uj": pj * 1e-6,
    }


def _ceil_bytes(elems: int, bits: int) -> int:
    return -(-elems * bits // 8)
