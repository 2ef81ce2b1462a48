"""Reusable torch blocks: Conv-BN-act and the inverted-residual (MBConv) block, with their exact layer specs.

MBConv is MobileNetV2's inverted residual as ProxylessNAS, Once-for-All and MCUNet search it: a 1×1 expansion conv
(``expand``× the input channels, skipped when ``expand == 1``), a k×k depthwise conv carrying the stride, and a linear
1×1 projection; the block adds its input back when the stride is 1 and the channel count is kept. Every conv has no
bias and is followed by BatchNorm; the activation (ReLU6, as MobileNetV2/ProxylessNAS/MCUNet, friendly to int8)
follows the expansion and the depthwise conv, never the projection. No squeeze-excitation: microcontroller runtimes
(MCUNet's TinyEngine) and ProxylessNAS do without it.

``mbconv_specs`` lists the block's layers with exact shapes without building it, so that cost models and latency
tables never need torch modules; a test checks it against ``trace_layers`` of the built block. Supernets (ProxylessNAS,
Once-for-All) build blocks from the same constructor arguments: kernel, expand and channel counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from ..cost.layers import LayerSpec, conv_out
from ..errors import SpaceError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu6": nn.ReLU6,
    "relu": nn.ReLU,
    "hswish": nn.Hardswish,
}


def make_divisible(v: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding: the nearest multiple of ``divisor``, at least ``divisor`` and never more than
    10% below ``v`` (hardware likes channel counts in multiples of 8)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def mid_channels(in_ch: int, expand: int) -> int:
    """The expanded width of an MBConv block (Once-for-All rounds ``in_ch·expand`` to a multiple of 8)."""
    return in_ch if expand == 1 else make_divisible(in_ch * expand)


def _act(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise SpaceError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None


class ConvBNAct(nn.Sequential):
    """k×k conv (no bias, 'same' padding k//2) - BatchNorm - activation (``act=None``: none)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "relu6"
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(_act(act))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Inverted residual block: [1×1 expand - BN - act] - k×k depthwise (stride) - BN - act - 1×1 project - BN (+ x).

    ``mid_ch`` overrides the expanded width (default ``mid_channels(in_ch, expand)``), for supernets that slice it.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        expand: int,
        mid_ch: int | None = None,
        act: str = "relu6",
    ) -> None:
        super().__init__()
        if kernel % 2 != 1 or stride not in (1, 2) or expand < 1:
            raise SpaceError(f"MBConv needs an odd kernel, stride 1 or 2 and expand >= 1; got k={kernel}, "
                             f"s={stride}, e={expand}")
        mid = mid_ch if mid_ch is not None else mid_channels(in_ch, expand)
        self.in_ch, self.out_ch, self.kernel, self.stride, self.expand, self.mid_ch = (
            in_ch, out_ch, kernel, stride, expand, mid
        )
        self.residual = stride == 1 and in_ch == out_ch
        self.expand_conv = ConvBNAct(in_ch, mid, 1, act=act) if expand != 1 else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act)
        self.project = ConvBNAct(mid, out_ch, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand_conv(x) if self.expand_conv is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y

    def extra_repr(self) -> str:
        return f"{self.in_ch}->{self.out_ch}, k={self.kernel}, s={self.stride}, e={self.expand}, skip={self.residual}"


def conv_bn_act_specs(
    in_shape: tuple[int, int, int],
    out_ch: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    act: bool = True,
    name: str = "",
    live: int = 0,
    extra: tuple = (),
) -> list[LayerSpec]:
    """The specs of ``ConvBNAct`` on one input of ``in_shape`` (C, H, W)."""
    c, h, w = in_shape
    p = kernel // 2
    out = (out_ch, conv_out(h, kernel, stride, p), conv_out(w, kernel, stride, p))
    specs = [
        LayerSpec("conv", in_shape, out, (kernel, kernel), stride, groups, name=f"{name}.conv", live=live,
                  extra=extra),
        LayerSpec("bn", out, out, name=f"{name}.bn", live=live, extra=extra),
    ]
    if act:
        specs.append(LayerSpec("act", out, out, name=f"{name}.act", live=live, extra=extra))
    return specs


def mbconv_specs(
    in_shape: tuple[int, int, int],
    out_ch: int,
    kernel: int,
    stride: int,
    expand: int,
    name: str = "mbconv",
    mid_ch: int | None = None,
) -> list[LayerSpec]:
    """The exact layer list of ``MBConv(in_shape[0], out_ch, kernel, stride, expand, mid_ch)`` on one input.

    Every spec carries ``extra = (("block", "mbconv"), ("expand", e), ("skip", residual))``, the facts a latency table
    keys on (Once-for-All keys its table on layer type, shapes, expand, kernel, stride and skip). For peak memory,
    a residual block keeps its input alive (``live``) from the depthwise conv until the add; the add's ``in_shape``
    stacks its two operands along channels (the convention of the ``cell`` family).
    """
    c, h, w = in_shape
    mid = mid_ch if mid_ch is not None else mid_channels(c, expand)
    residual = stride == 1 and c == out_ch
    extra = (("block", "mbconv"), ("expand", expand), ("skip", residual))
    specs: list[LayerSpec] = []
    x = in_shape
    if expand != 1:
        specs += conv_bn_act_specs(x, mid, 1, name=f"{name}.expand", extra=extra)
        x = specs[-1].out_shape
    specs += conv_bn_act_specs(x, mid, kernel, stride, groups=mid, name=f"{name}.dw", extra=extra)
    specs += conv_bn_act_specs(specs[-1].out_shape, out_ch, 1, act=False, name=f"{name}.project", extra=extra)
    y = specs[-1].out_shape
    if not residual:
        return specs
    # the block input stays in memory for the skip from the moment a layer no longer reads it (MCUNet's residual
    # buffer): every layer after the first conv, up to the add
    keep = c * h * w
    specs = [specs[0]] + [replace(s, live=keep) for s in specs[1:]]
    specs.append(LayerSpec("add", (2 * out_ch, y[1], y[2]), y, name=f"{name}.add", extra=extra))
    return specs
