"""Peak activation memory (SRAM) and weight storage (flash), as MCUNet accounts them (Lin et al., 2020).

Peak activation memory. Layers run one after another on a batch of one; while a layer runs, memory holds its input,
its output and every other tensor that a later layer still needs (a residual block's input, kept for the skip, is
recorded in ``LayerSpec.live``). The peak is the largest such sum over the network:

    peak = max over layers of  in_numel + out_numel + live        (elements; × act_bits / 8 for bytes)

except that an in-place layer writes its output over its input, so it adds no output buffer:

    in-place layer:  in_numel + live

In-place kinds (``INPLACE``): activations, BatchNorm (folded into the conv at inference anyway), LayerNorm and
GroupNorm, reshapes/flatten and dropout (views), and an element-wise ``add``/``mul`` of two operands whose result
overwrites one operand (its ``in_shape`` stacks both operands, as the ``cell`` and ``mobilenet`` families write it).
Convolutions, linear layers, pooling and concatenation need a separate output buffer. Depthwise convolutions are not
done in place here (TinyEngine's in-place depthwise kernel of MCUNetV2 is a later runtime trick, not MCUNet's
accounting).

This is the rule behind the cost metrics ``peak_mem`` (at the float activation width) and ``sram`` (at int8); it
ignores the runtime's own buffers (im2col scratch, the interpreter), as MCUNet's search did.

Flash: the weights at a bit width (int8 on a microcontroller, fp32 for a float runtime): ``params × bits / 8`` bytes.
Code size and the runtime are not included.
"""

from __future__ import annotations

from collections.abc import Sequence

from .layers import LayerSpec

INPLACE = frozenset({"act", "bn", "ln", "gn", "reshape", "dropout", "identity", "add", "mul"})


def layer_activation_elems(layer: LayerSpec) -> int:
    """Activation elements held while ``layer`` runs (see the module docstring)."""
    out = 0 if layer.kind in INPLACE else layer.out_numel
    return layer.in_numel + out + layer.live


def peak_activation_elems(layers: Sequence[LayerSpec]) -> int:
    """The largest number of activation elements held at once over the network (0 for an empty list)."""
    return max((layer_activation_elems(lay) for lay in layers), default=0)


def peak_memory(layers: Sequence[LayerSpec], act_bits: int = 8) -> int:
    """Peak activation memory in bytes at ``act_bits`` per element (int8 by default, as on a microcontroller)."""
    return _bytes(peak_activation_elems(layers), act_bits)


def peak_layer(layers: Sequence[LayerSpec]) -> int:
    """Index of the layer where the peak occurs (the first, if several tie); -1 for an empty list."""
    if not layers:
        return -1
    sizes = [layer_activation_elems(lay) for lay in layers]
    return sizes.index(max(sizes))


def memory_profile(layers: Sequence[LayerSpec], act_bits: int = 8) -> list[tuple[str, int]]:
    """(layer name, bytes held) for every layer, to show where the memory goes (MCUNet's per-block bar chart)."""
    return [(lay.name or lay.kind, _bytes(layer_activation_elems(lay), act_bits)) for lay in layers]


def flash_bytes(layers: Sequence[LayerSpec], bits: int = 8) -> int:
    """Weight storage in bytes at ``bits`` per parameter (int8 by default; 32 for fp32)."""
    return _bytes(sum(lay.params for lay in layers), bits)


def _bytes(elems: int, bits: int) -> int:
    if bits <= 0:
        from ..errors import NasforgeError

        raise NasforgeError(f"a bit width must be positive, got {bits}")
    return -(-elems * bits // 8)  # ceil: 4-bit tensors of odd length still take a whole byte
