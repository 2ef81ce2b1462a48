"""Small torch ops that a blueprint's networks use besides torch's own modules, and the activation table.

Every node of a built network is a module, so that graph node names, LayerSpec names and module names are one and
the same: element-wise ``Sum``/``Mul`` of several inputs, ``Concat`` along channels, ``Zero`` (NAS-Bench-201's
``none`` op) and ``Resize`` (a network whose resolution is part of its arch resizes any other input to it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpaceError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise SpaceError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None


class Sum(nn.Module):
    """The element-wise sum of all inputs (one input passes through)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


class Mul(nn.Module):
    """The element-wise product of all inputs."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y


class Concat(nn.Module):
    """Concatenation along the channel (first non-batch) dimension."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, 1)


class Zero(nn.Module):
    """The ``none`` op: zeros of the input's shape (it cuts an edge but keeps a sum well defined)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Resize(nn.Module):
    """Bilinear resize of an image batch to ``size``×``size`` (a no-op when it already has that size)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor, size: int | None = None) -> torch.Tensor:
        r = int(size or self.size)
        if x.shape[-2:] == (r, r):
            return x
        return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"
