"""Declaration helpers for blocks that recur across families: Conv-BN-act, ReLU-Conv-BN and the MBConv block.

They only add nodes to a blueprint (the network is still declared once); channel rounding is MobileNetV2's.
"""

from __future__ import annotations

from typing import Any

from .blocks import BN, Conv
from .core import Blueprint
from .ops import Act, Sum
from .params import P


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


def conv_bn_act(bp: Blueprint, name: str, out: int | P | None, k: int | P, stride: int = 1, *, groups: Any = 1,
                act: str | None = "relu6", inputs=None, when=None, extra: tuple = ()) -> str:  # fmt: skip
    """``name.0`` conv (no bias, 'same' padding), ``name.1`` BatchNorm, ``name.2`` activation (none if ``act`` is
    None)."""
    blocks = [Conv(out, k, stride, groups=groups, extra=extra), BN(extra=extra)]
    if act is not None:
        blocks.append(Act(act, extra=extra))
    return bp.seq(name, blocks, inputs, when)


def relu_conv_bn(bp: Blueprint, name: str, out: int, k: int, stride: int = 1, inputs=None) -> str:
    """NAS-Bench-201's ReLU-Conv-BN: ``name.0`` ReLU, ``name.1`` conv, ``name.2`` BatchNorm."""
    return bp.seq(name, [Act("relu"), Conv(out, k, stride), BN()], inputs)


def mbconv(bp: Blueprint, name: str, in_ch: int | P, out: int | P, k: int | P, stride: int, expand: int | P, *,
           act: str = "relu6", inputs=None, when: tuple = ()) -> str:  # fmt: skip
    """MobileNetV2's inverted residual as ProxylessNAS, Once-for-All and MCUNet search it.

    ``name.expand_conv`` (1×1 to ``expand``× the input channels, left out when ``expand`` is 1), ``name.depthwise``
    (k×k, carrying the stride), ``name.project`` (linear 1×1), and ``name.add``, the residual, when the stride is 1
    and the channel count is kept. Channels may depend on the arch (``P``); every LayerSpec carries
    ``("block", "mbconv")``, ``("expand", e)``, ``("skip", residual)`` and ``("unit", name)``, which a latency table
    keys on (Once-for-All keys its table on layer type, shapes, expand, kernel, stride and skip).
    """
    when = tuple(when)
    mid = _derived(mid_channels, in_ch, expand)
    residual = False if stride != 1 else _derived(lambda c, o: c == o, in_ch, out)
    extra = (("block", "mbconv"), ("expand", expand), ("skip", residual), ("unit", name))
    x = inputs
    if isinstance(expand, P) or expand != 1:
        # an elastic expand of 1 would need the conv to vanish; the spaces here never mix 1 with other ratios
        x = conv_bn_act(bp, f"{name}.expand_conv", mid, 1, act=act, inputs=x, when=when, extra=extra)
    x = conv_bn_act(bp, f"{name}.depthwise", None, k, stride, groups="dw", act=act, inputs=x, when=when, extra=extra)
    y = conv_bn_act(bp, f"{name}.project", out, 1, act=None, inputs=x, when=when, extra=extra)
    first = inputs if inputs is not None else _first_input(bp, f"{name}.")
    if residual is False:
        return y
    cond = when if residual is True else (*when, residual)
    return bp.add(f"{name}.add", Sum(extra=extra), [y, first], when=cond)


def _derived(fn, *args: Any) -> Any:
    """``fn`` of constants, or a ``P`` reading the dimensions of the arguments that are ``P``s."""
    ps = [a for a in args if isinstance(a, P)]
    if not ps:
        return fn(*args)
    dims = tuple(dict.fromkeys(d for p in ps for d in p.dims))

    def f(*vals: Any) -> Any:
        arch = dict(zip(dims, vals, strict=True))
        return fn(*(a(arch) if isinstance(a, P) else a for a in args))

    f.__name__ = getattr(fn, "__name__", "derived")
    return P(f, *dims)


def _first_input(bp: Blueprint, prefix: str) -> str:
    """The input of the first node whose name starts with ``prefix`` (the block's input)."""
    for node in bp.nodes:
        if node.name.startswith(prefix):
            i = node.inputs[0]
            if isinstance(i, str):
                return i
    raise ValueError(f"no node starts with {prefix!r}")
