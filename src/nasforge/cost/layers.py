"""``LayerSpec``: one layer with its exact shapes, the common currency of every cost model.

Counting follows the NAS chapter (batch 1, bias ignored in MACs):
linear c_o·c_i; conv c_o·c_i·k_h·k_w·h_o·w_o; grouped conv divided by g; depthwise (g = c_i = c_o) c_o·k_h·k_w·h_o·w_o;
a 1×1 conv is the conv formula with k = 1. Parameters include biases and BatchNorm's affine weights, so that they equal
``sum(p.numel() for p in model.parameters())``.

Kinds without a formula (``embedding``, ``attention``, ``rnn``, ``other``) state their counts in ``extra`` as
``("params", n)`` and ``("macs", m)`` (0 when not stated). ``MeasuredSpec`` is a layer whose counts were measured on a
module rather than derived from its kind: the tracer's records (``cost/trace.py``), where a reused module's second call
has no parameters of its own and a LayerNorm over several dimensions has more than the ``ln`` formula says. A count
that could not be measured is ``None`` (``("macs", None)`` in ``extra``), and ``macs`` is then NaN, and so is every sum
over it: a cost that is not known can never pass for a small one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# kinds whose parameters and MACs are counted; every other kind (act, pool, add, concat, ...) has neither
WEIGHTED = {"conv", "linear", "bn", "ln", "gn", "embedding", "attention", "rnn", "other"}
# kinds without a formula: their counts are stated in ``extra``
STATED = frozenset({"embedding", "attention", "rnn", "other"})


# slots and no ``frozen``: a frozen dataclass's __init__ costs three times as much, and a study builds a layer list for
# every arch it sees. Treat a LayerSpec as immutable all the same (it is hashable by value).
@dataclass(slots=True, unsafe_hash=True)
class LayerSpec:
    """One layer. Shapes exclude the batch dimension: (C, H, W) for images, (..., F) for linear layers.

    ``live`` counts activation elements of *other* tensors that must stay in memory while this layer runs (residual
    branches, cell states); it matters only for peak memory. ``extra`` holds family-specific, hashable facts (expand
    ratio, skip) that a latency table keys on.
    """

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    groups: int = 1
    bias: bool = False
    name: str = ""
    live: int = 0
    extra: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def in_numel(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_numel(self) -> int:
        return math.prod(self.out_shape)

    @property
    def params(self) -> int:
        k = self.kind
        if k == "conv":
            c_o, c_i = self.out_shape[0], self.in_shape[0]
            return c_o * (c_i // self.groups) * self.kernel[0] * self.kernel[1] + (c_o if self.bias else 0)
        if k == "linear":
            c_o, c_i = self.out_shape[-1], self.in_shape[-1]
            return c_o * c_i + (c_o if self.bias else 0)
        if k in ("bn", "ln", "gn"):  # an affine weight and bias per channel (ln: per element of the last dimension)
            return 2 * self.in_shape[-1 if k == "ln" else 0]
        if k in STATED:
            return int(dict(self.extra).get("params", 0))
        return 0

    @property
    def macs(self) -> int | float:
        """Multiply-accumulates: an int, or NaN for a layer that states that its MACs could not be counted."""
        k = self.kind
        if k == "conv":
            c_o, c_i = self.out_shape[0], self.in_shape[0]
            return c_o * (c_i // self.groups) * self.kernel[0] * self.kernel[1] * math.prod(self.out_shape[1:])
        if k == "linear":
            rows = math.prod(self.out_shape[:-1])  # tokens for a Transformer, 1 for a classifier head
            return rows * self.out_shape[-1] * self.in_shape[-1]
        if k in STATED:
            return _count(dict(self.extra).get("macs", 0))
        return 0

    def key(self) -> str:
        """A stable string identity of everything that decides this layer's cost (for lookup tables)."""
        # counts are derived, and "unit" names the block a layer belongs to (a position, not a cost)
        ex = ",".join(f"{a}={b}" for a, b in self.extra if a not in ("params", "macs", "unit"))
        return (
            f"{self.kind}|in={'x'.join(map(str, self.in_shape))}|out={'x'.join(map(str, self.out_shape))}"
            f"|k={self.kernel[0]}x{self.kernel[1]}|s={self.stride}|g={self.groups}|b={int(self.bias)}|{ex}"
        )


@dataclass(slots=True, unsafe_hash=True)
class MeasuredSpec(LayerSpec):
    """A layer whose parameters and MACs were measured on the module that ran (see the module docstring).

    ``kind`` and the shapes still say what the layer is, for memory and latency; ``n_params`` are the parameters first
    counted at this layer (0 for a module's second call, so that a shared parameter counts once), ``n_macs`` the MACs of
    this call, ``None`` when they could not be counted.
    """

    n_params: int = 0
    n_macs: int | None = 0

    @property
    def params(self) -> int:
        return self.n_params

    @property
    def macs(self) -> int | float:
        return _count(self.n_macs)


def _count(m: Any) -> int | float:
    return math.nan if m is None else int(m)


def conv_out(h: int, k: int, stride: int = 1, pad: int = 0) -> int:
    """Output size of a convolution or pooling window (floor division, as PyTorch)."""
    return (h + 2 * pad - k) // stride + 1
