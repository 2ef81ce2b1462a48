"""What a lookup table prices: units (one layer, or one block of layers) and a module that runs each one alone.

Granularity. ``"block"``: consecutive specs that carry ``("block", ...)`` in ``extra`` and belong to the same block
(same name once the trailing sub-layer parts ``expand|dw|project|conv|bn|act|add|pw`` are stripped, e.g.
``s2.b1.dw.conv`` → ``s2.b1``) form one unit, timed as the whole block with its residual add, as ProxylessNAS and OFA
time whole MBConv blocks; every other spec is its own unit. ``"layer"``: every spec is its own unit. Blocks are the
better unit: their internal per-call overhead (module calls, the skip add) is measured, not guessed.

A unit's key is built from its specs' keys (``LayerSpec.key()``: kind, shapes, kernel, stride, groups, bias and the
``extra`` facts such as expand, skip and the activation), so it is stable across runs and processes.

How a unit is built from its specs (``unit_module``): conv → ``Conv2d`` (padding solved from the shapes, groups,
bias), linear → ``Linear``, bn → ``BatchNorm`` (eval), ln → ``LayerNorm``, act → the function its spec names in
``extra`` as ``("act", name)`` (none named: ReLU), pool → global average pool when it covers the whole map, else max
pool (``("pool", "avg")`` in ``extra`` for average), reshape → flatten, add/mul/concat → the op with a stored second
operand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..cost.layers import LayerSpec, conv_out
from .base import LatencyError

GRANULARITIES = ("block", "layer")
_SUBPARTS = {"expand", "dw", "project", "conv", "bn", "act", "add", "pw"}
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "gelu": nn.GELU, "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}  # fmt: skip


class LutError(LatencyError):
    """A lookup table that cannot be read, does not match its settings, lacks an entry, or cannot build a unit."""


@dataclass(frozen=True)
class Unit:
    """What the table prices: one layer, or one block of several layers (measured together)."""

    specs: tuple[LayerSpec, ...]

    @property
    def key(self) -> str:
        if len(self.specs) == 1:
            return self.specs[0].key()
        # readable head (shapes and the block's extra facts) + a hash of every member's key, which decides the rest
        first, last = self.specs[0], self.specs[-1]
        full = " ; ".join(s.key() for s in self.specs)
        ex = ",".join(f"{a}={b}" for a, b in first.extra if a != "unit")  # "unit" is a position, not a cost
        kernels = "/".join(f"{s.kernel[0]}" for s in self.specs if s.kind == "conv")
        return (
            f"block|in={'x'.join(map(str, first.in_shape))}|out={'x'.join(map(str, last.out_shape))}|k={kernels}"
            f"|n={len(self.specs)}|{ex}|{hashlib.sha1(full.encode()).hexdigest()[:12]}"
        )

    @property
    def residual(self) -> bool:
        """A block ending in an add that sums the block's input back (MBConv's skip)."""
        return len(self.specs) > 1 and self.specs[-1].kind == "add"

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.specs)


def _block_of(spec: LayerSpec) -> str | None:
    """The block a layer belongs to: its ``("unit", name)`` fact (what a blueprint macro such as MBConv sets), else,
    for specs marked ``("block", ...)`` without one, the name without its trailing sub-part names."""
    ex = dict(spec.extra)
    if "unit" in ex:
        return str(ex["unit"])
    if "block" not in ex:
        return None
    parts = spec.name.split(".")
    while len(parts) > 1 and parts[-1] in _SUBPARTS:
        parts.pop()
    return ".".join(parts)


def split_units(layers: Sequence[LayerSpec], granularity: str = "block") -> list[Unit]:
    """The layer list cut into table units (see the module docstring)."""
    if granularity not in GRANULARITIES:
        raise LutError(f"unknown LUT granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")
    if granularity == "layer":
        return [Unit((s,)) for s in layers]
    out: list[Unit] = []
    cur: list[LayerSpec] = []
    cur_block: str | None = None
    for s in layers:
        b = _block_of(s)
        if cur and (b is None or b != cur_block):
            out.append(Unit(tuple(cur)))
            cur = []
        if b is None:
            out.append(Unit((s,)))
        else:
            cur.append(s)
        cur_block = b
    if cur:
        out.append(Unit(tuple(cur)))
    return out


# --- one module per unit ----------------------------------------------------------------------------------------------
def _padding(h: int, out: int, k: int, s: int) -> int:
    for p in [k // 2, *range(k)]:
        if conv_out(h, k, s, p) == out:
            return p
    raise LutError(f"no padding maps size {h} to {out} with kernel {k} and stride {s}")


def activation(spec: LayerSpec) -> nn.Module:
    """The activation an "act" spec names in ``extra`` as ``("act", name)``; ReLU when it names none."""
    name = str(dict(spec.extra).get("act", "relu"))
    if name not in ACTIVATIONS:
        raise LutError(f"unknown activation {name!r} in {spec.name or 'an act layer'}; the LUT knows "
                       f"{', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _pool(spec: LayerSpec) -> nn.Module:
    i, o = spec.in_shape, spec.out_shape
    if len(o) == 3 and o[1:] == (1, 1) and tuple(spec.kernel) == tuple(i[1:]):
        return nn.AdaptiveAvgPool2d(1)
    p = _padding(i[1], o[1], spec.kernel[0], spec.stride)
    if dict(spec.extra).get("pool") == "avg":
        return nn.AvgPool2d(spec.kernel, spec.stride, p, count_include_pad=False)
    return nn.MaxPool2d(spec.kernel, spec.stride, p)


def layer_module(spec: LayerSpec) -> tuple[nn.Module, tuple[int, ...]]:
    """A one-layer module equivalent to ``spec`` in cost, and the input shape (without batch) to feed it."""
    k, i, o = spec.kind, spec.in_shape, spec.out_shape
    if k == "conv":
        p = _padding(i[1], o[1], spec.kernel[0], spec.stride)
        return nn.Conv2d(i[0], o[0], spec.kernel, spec.stride, p, groups=spec.groups, bias=spec.bias), i
    if k == "linear":
        return nn.Linear(i[-1], o[-1], bias=spec.bias), i
    if k == "bn":
        return (nn.BatchNorm2d(i[0]) if len(i) == 3 else nn.BatchNorm1d(i[0])), i
    if k == "ln":
        return nn.LayerNorm(i[-1]), i
    if k == "act":
        return activation(spec), i
    if k == "pool":
        return _pool(spec), i
    if k == "reshape":
        return (nn.Flatten() if len(o) == 1 else _Reshape(o)), i
    if k in ("add", "mul"):
        return _WithOperand(k, torch.randn(1, *o)), o
    if k == "concat":
        half = i[0] // 2
        return _WithOperand(k, torch.randn(1, half, *i[1:])), (i[0] - half, *i[1:])
    raise LutError(f"the LUT cannot build a layer of kind {k!r} ({spec.name}); price it with the learned predictor")


def unit_module(unit: Unit) -> tuple[nn.Module, tuple[int, ...]]:
    """The module that runs ``unit`` and its input shape: a single layer, or the block's layers in a chain (plus the
    skip when the block ends in an add)."""
    if len(unit.specs) == 1:
        return layer_module(unit.specs[0])
    body = unit.specs[:-1] if unit.residual else unit.specs
    return _Chain([layer_module(s)[0] for s in body], unit.residual), unit.specs[0].in_shape


class _Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class _WithOperand(nn.Module):
    """A binary op whose second operand is a stored tensor (the other branch of an add, mul or concat)."""

    def __init__(self, op: str, other: torch.Tensor) -> None:
        super().__init__()
        self.op = op
        self.register_buffer("other", other)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "add":
            return x + self.other
        if self.op == "mul":
            return x * self.other
        return torch.cat([x, self.other], 1)


class _Chain(nn.Module):
    """A block's layers in order, plus the skip (input added to the output) when the block has one."""

    def __init__(self, mods: list[nn.Module], residual: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(*mods)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y
