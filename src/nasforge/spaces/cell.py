"""The NAS chapter's cell-level space.

A cell has two inputs and L hidden layers. Each hidden layer picks two inputs, each one of two candidates (the two
most recent states), applies one of M ops to each, and merges them with one of N combine ops, so the space holds
(2·2·M·M·N)^L = 4^L·M^(2L)·N^L cells (3.2×10^11 for M=5, N=2, L=5).

The network around the cell: a 3×3 stem conv (C channels) whose output feeds both cell inputs, the cell, global
average pooling and a linear classifier. Every conv op is Conv-BN-ReLU with 'same' padding, so all states keep shape
(C, H, W); ``concat`` joins two states and projects back to C channels with a 1×1 conv and BN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..cost.layers import LayerSpec
from ..errors import SpaceError
from ..space import Space
from .base import MNIST_TASK, Family, Task, register_family

ALL_OPS = ("identity", "conv3x3", "conv5x5", "dwconv3x3", "maxpool3x3", "conv1x1", "avgpool3x3", "dwconv5x5")
ALL_COMBINES = ("add", "concat", "mul")


def _op_layers(op: str, c: int, h: int, w: int, live: int, name: str) -> list[LayerSpec]:
    s = (c, h, w)
    if op == "identity":
        return []
    if op.startswith("conv"):
        k = int(op[4])
        return [
            LayerSpec("conv", s, s, (k, k), name=f"{name}.conv", live=live),
            LayerSpec("bn", s, s, name=f"{name}.bn", live=live),
            LayerSpec("act", s, s, name=f"{name}.relu", live=live),
        ]
    if op.startswith("dwconv"):  # depthwise-separable: depthwise k×k, pointwise 1×1
        k = int(op[6])
        return [
            LayerSpec("conv", s, s, (k, k), groups=c, name=f"{name}.dw", live=live),
            LayerSpec("conv", s, s, (1, 1), name=f"{name}.pw", live=live),
            LayerSpec("bn", s, s, name=f"{name}.bn", live=live),
            LayerSpec("act", s, s, name=f"{name}.relu", live=live),
        ]
    if op.endswith("pool3x3"):
        return [LayerSpec("pool", s, s, (3, 3), name=f"{name}.pool", live=live)]
    raise SpaceError(f"unknown cell op {op!r}; known: {', '.join(ALL_OPS)}")


def _op_module(op: str, c: int) -> nn.Module:
    if op == "identity":
        return nn.Identity()
    if op.startswith("conv"):
        k = int(op[4])
        return nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU())
    if op.startswith("dwconv"):
        k = int(op[6])
        return nn.Sequential(
            nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
        )
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, 1, 1)
    if op == "avgpool3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise SpaceError(f"unknown cell op {op!r}; known: {', '.join(ALL_OPS)}")


@register_family("cell")
class Cell(Family):
    """Cell-level space with M ops, N combine ops and L hidden layers (defaults: the chapter's 5, 2, 5)."""

    default_task = MNIST_TASK

    def __init__(
        self,
        M: int = 5,
        N: int = 2,
        L: int = 5,
        C: int = 16,
        ops: Sequence[str] | None = None,
        combines: Sequence[str] | None = None,
    ) -> None:
        self.M, self.N, self.L, self.C = M, N, L, C
        self.ops = tuple(ops) if ops is not None else None
        self.combines = tuple(combines) if combines is not None else None
        self._space: Space | None = None

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"M": self.M, "N": self.N, "L": self.L, "C": self.C}
        if self.ops is not None:
            cfg["ops"] = list(self.ops)
        if self.combines is not None:
            cfg["combines"] = list(self.combines)
        return cfg

    @property
    def op_names(self) -> tuple[str, ...]:
        ops = self.ops if self.ops is not None else ALL_OPS[: self.M]
        bad = [o for o in ops if o not in ALL_OPS]
        if bad or len(ops) != self.M or self.M < 1:
            raise SpaceError(f"cell family: need M={self.M} ops out of {', '.join(ALL_OPS)}, got {list(ops)}")
        return ops

    @property
    def combine_names(self) -> tuple[str, ...]:
        cs = self.combines if self.combines is not None else ALL_COMBINES[: self.N]
        bad = [o for o in cs if o not in ALL_COMBINES]
        if bad or len(cs) != self.N or self.N < 1:
            raise SpaceError(f"cell family: need N={self.N} combine ops out of {', '.join(ALL_COMBINES)}, got {cs}")
        return cs

    @property
    def space(self) -> Space:
        if self._space is None:
            if self.L < 1 or self.C < 1:
                raise SpaceError(f"cell family: L and C must be positive, got L={self.L}, C={self.C}")
            dims: dict[str, Any] = {}
            for i in range(self.L):
                dims[f"l{i}_in_a"] = (0, 1)
                dims[f"l{i}_op_a"] = self.op_names
                dims[f"l{i}_in_b"] = (0, 1)
                dims[f"l{i}_op_b"] = self.op_names
                dims[f"l{i}_comb"] = self.combine_names
            self._space = Space(dims)
        return self._space

    def describe(self, arch: Mapping[str, Any]) -> str:
        parts = []
        for i in range(self.L):
            a = arch
            parts.append(
                f"{a[f'l{i}_comb']}({a[f'l{i}_op_a']}@{a[f'l{i}_in_a']},{a[f'l{i}_op_b']}@{a[f'l{i}_in_b']})"
            )
        return " ".join(parts)

    def layers(self, arch: Mapping[str, Any], task: Task) -> list[LayerSpec]:
        cin, h, w = task.input_shape
        c = self.C
        s = (c, h, w)
        n = c * h * w
        out = [
            LayerSpec("conv", (cin, h, w), s, (3, 3), name="stem.conv"),
            LayerSpec("bn", s, s, name="stem.bn"),
            LayerSpec("act", s, s, name="stem.relu"),
        ]
        for i in range(self.L):
            # while layer i runs, the two candidate states and the first branch's result stay in memory
            for b in ("a", "b"):
                out += _op_layers(arch[f"l{i}_op_{b}"], c, h, w, live=2 * n, name=f"l{i}.{b}")
            comb = arch[f"l{i}_comb"]
            if comb == "concat":
                out.append(LayerSpec("concat", (2 * c, h, w), (2 * c, h, w), name=f"l{i}.cat", live=n))
                out.append(LayerSpec("conv", (2 * c, h, w), s, name=f"l{i}.proj", live=n))
                out.append(LayerSpec("bn", s, s, name=f"l{i}.bn", live=n))
            else:
                out.append(LayerSpec(comb, (2 * c, h, w), s, name=f"l{i}.{comb}", live=n))
        out.append(LayerSpec("pool", s, (c, 1, 1), (h, w), name="gap"))
        out.append(LayerSpec("linear", (c,), (task.num_classes,), bias=True, name="classifier"))
        return out

    def build(self, arch: Mapping[str, Any], task: Task) -> nn.Module:
        return CellNet(self, self.space.validate(arch), task)


class CellNet(nn.Module):
    """Stem, one cell of L hidden layers, global average pooling, linear classifier."""

    def __init__(self, fam: Cell, arch: Mapping[str, Any], task: Task) -> None:
        super().__init__()
        c = fam.C
        self.arch = dict(arch)
        self.L = fam.L
        self.stem = nn.Sequential(
            nn.Conv2d(task.input_shape[0], c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()
        )
        self.op_a = nn.ModuleList(_op_module(arch[f"l{i}_op_a"], c) for i in range(fam.L))
        self.op_b = nn.ModuleList(_op_module(arch[f"l{i}_op_b"], c) for i in range(fam.L))
        self.proj = nn.ModuleDict(
            {
                str(i): nn.Sequential(nn.Conv2d(2 * c, c, 1, bias=False), nn.BatchNorm2d(c))
                for i in range(fam.L)
                if arch[f"l{i}_comb"] == "concat"
            }
        )
        self.head = nn.Linear(c, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        states = [s, s]
        for i in range(self.L):
            a = self.op_a[i](states[-2 + self.arch[f"l{i}_in_a"]])
            b = self.op_b[i](states[-2 + self.arch[f"l{i}_in_b"]])
            comb = self.arch[f"l{i}_comb"]
            if comb == "add":
                y = a + b
            elif comb == "mul":
                y = a * b
            else:
                y = self.proj[str(i)](torch.cat([a, b], 1))
            states.append(y)
        return self.head(states[-1].mean((2, 3)))
