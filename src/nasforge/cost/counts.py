"""Analytic costs of a layer list: parameters, MACs, model size, peak activation memory."""

from __future__ import annotations

from collections.abc import Sequence

from .layers import LayerSpec

# metrics that the analytic counter provides; constraints on them are checked before any training
COST_METRICS = ("params", "macs", "size", "peak_mem")


def peak_activation_bytes(layers: Sequence[LayerSpec], act_bits: int = 32) -> int:
    """Largest memory held by activations while one layer runs: its input + its output + live buffers.

    This is the simple (not in-place) accounting; a layer whose input is also needed later carries that in ``live``.
    """
    if not layers:
        return 0
    return max(lay.in_numel + lay.out_numel + lay.live for lay in layers) * act_bits // 8


def costs(layers: Sequence[LayerSpec], bits: int = 32, act_bits: int = 32) -> dict[str, float]:
    """All analytic costs of a network. ``size`` is the weights' storage in bytes at ``bits`` per parameter."""
    params = sum(lay.params for lay in layers)
    return {
        "params": params,
        "macs": sum(lay.macs for lay in layers),
        "size": params * bits / 8,
        "peak_mem": peak_activation_bytes(layers, act_bits),
    }
