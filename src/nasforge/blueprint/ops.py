"""Blocks without weights: activation, pooling, reshapes, element-wise merges, zeros, identity and resize.

Each gives its output shape, its LayerSpec (the kinds ``cost/memory.py`` and ``cost/energy.py`` know: act, pool,
reshape, add, mul, concat, zero) and its plain torch module; in a supernet the plain module serves every arch (only
``Resize`` varies, with the arch's resolution).
"""

from __future__ import annotations

import math

from ..cost.layers import LayerSpec, conv_out
from ..errors import SpaceError
from .blocks import Block, _image
from .params import P


class Act(Block):
    """An activation function by name (``nn.ops.ACTIVATIONS``); its LayerSpec carries ``("act", fn)``."""

    kind = "act"

    def __init__(self, fn: str = "relu", extra: tuple = ()) -> None:
        super().__init__(tuple(extra) + (("act", fn),), fn=fn)

    @property
    def op(self) -> str:  # type: ignore[override]
        return self.fields["fn"]

    def module(self, ins, p):
        from ..nn.ops import activation

        return activation(p["fn"])


class Pool(Block):
    """Max or average pooling; ``stride`` defaults to the kernel (torch's default)."""

    kind = "pool"

    def __init__(
        self, how: str = "max", k: int = 2, stride: int | None = None, pad: int = 0, *,
        count_include_pad: bool = True, extra: tuple = (),
    ) -> None:  # fmt: skip
        if how not in ("max", "avg"):
            raise SpaceError(f"pooling is 'max' or 'avg', got {how!r}")
        super().__init__(extra, how=how, k=k, stride=stride or k, pad=pad, count_include_pad=count_include_pad)

    @property
    def op(self) -> str:  # type: ignore[override]
        return f"{self.fields['how']}_pool"

    def out_shape(self, ins, p):
        c, h, w = _image(ins, "pooling")
        k, s, pad = p["k"], p["stride"], p["pad"]
        ho, wo = conv_out(h, k, s, pad), conv_out(w, k, s, pad)
        if ho < 1 or wo < 1:
            raise SpaceError(f"input {h}×{w} is too small for {k}×{k} pooling")
        return (c, ho, wo)

    def specs(self, name, ins, out, p):
        # max or average: the latency table builds the right module from it
        extra = (*p["extra"], ("pool", p["how"]))
        return [LayerSpec("pool", ins[0], out, (p["k"], p["k"]), p["stride"], name=name, extra=extra)]

    def graph_attrs(self, p):
        return {"kernel": p["k"], "stride": p["stride"]}

    def module(self, ins, p):
        from torch import nn

        if p["how"] == "max":
            return nn.MaxPool2d(p["k"], p["stride"], p["pad"])
        return nn.AvgPool2d(p["k"], p["stride"], p["pad"], count_include_pad=p["count_include_pad"])


class GlobalPool(Block):
    """Global average pooling to (C, 1, 1)."""

    kind, op = "pool", "global_avg_pool"

    def __init__(self, extra: tuple = ()) -> None:
        super().__init__(extra)

    def out_shape(self, ins, p):
        return (_image(ins, "global pooling")[0], 1, 1)

    def specs(self, name, ins, out, p):
        return [LayerSpec("pool", ins[0], out, (ins[0][1], ins[0][2]), name=name, extra=p["extra"])]

    def module(self, ins, p):
        from torch import nn

        return nn.AdaptiveAvgPool2d(1)


class Flatten(Block):
    kind, op = "reshape", "flatten"

    def __init__(self, extra: tuple = ()) -> None:
        super().__init__(extra)

    def out_shape(self, ins, p):
        return (math.prod(ins[0]),)

    def module(self, ins, p):
        from torch import nn

        return nn.Flatten()


class Identity(Block):
    """Passes its input on (a skip connection); no layer, but a graph node (GHN-2 contracts these)."""

    op = "identity"

    def __init__(self) -> None:
        super().__init__()

    def module(self, ins, p):
        from torch import nn

        return nn.Identity()


class Zero(Block):
    """Zeros of the input's shape (NAS-Bench-201's ``none``)."""

    kind, op = "zero", "zero"

    def __init__(self) -> None:
        super().__init__()

    def module(self, ins, p):
        from ..nn.ops import Zero as ZeroOp

        return ZeroOp()


class _Merge(Block):
    """Element-wise merge of one or more inputs of equal shape; its LayerSpec stacks them along channels."""

    def __init__(self, extra: tuple = ()) -> None:
        super().__init__(extra)

    def out_shape(self, ins, p):
        if any(s != ins[0] for s in ins):
            raise SpaceError(f"{type(self).__name__.lower()} of inputs with different shapes: {list(ins)}")
        return ins[0]

    def specs(self, name, ins, out, p):
        stacked = (len(ins) * out[0], *out[1:])
        return [LayerSpec(self.kind, stacked, out, name=name, extra=p["extra"])]


class Sum(_Merge):
    kind, op = "add", "sum"

    def module(self, ins, p):
        from ..nn.ops import Sum as SumOp

        return SumOp()


class Mul(_Merge):
    kind, op = "mul", "mul"

    def module(self, ins, p):
        from ..nn.ops import Mul as MulOp

        return MulOp()


class Concat(Block):
    """Concatenation along channels."""

    kind, op = "concat", "concat"

    def __init__(self, extra: tuple = ()) -> None:
        super().__init__(extra)

    def out_shape(self, ins, p):
        if any(s[1:] != ins[0][1:] for s in ins):
            raise SpaceError(f"concat of inputs with different spatial shapes: {list(ins)}")
        return (sum(s[0] for s in ins), *ins[0][1:])

    def specs(self, name, ins, out, p):
        return [LayerSpec("concat", out, out, name=name, extra=p["extra"])]

    def module(self, ins, p):
        from ..nn.ops import Concat as ConcatOp

        return ConcatOp()


class Resize(Block):
    """Resize an image to ``size``×``size`` (bilinear); a network whose resolution is in its arch starts with one.
    Costs are taken at the resized shape, so it adds no layer."""

    op = "resize"

    def __init__(self, size: int | P) -> None:
        super().__init__(size=size)

    def out_shape(self, ins, p):
        return (_image(ins, "resize")[0], int(p["size"]), int(p["size"]))

    def module(self, ins, p):
        from ..nn.ops import Resize as ResizeOp

        return ResizeOp(p["size"])

    def super_module(self, in_sets, psets):
        from ..nn.ops import Resize as ResizeOp

        return ResizeOp(max(int(p["size"]) for p in psets))

    def super_forward(self, m, xs, p):
        return m(xs[0], int(p["size"]))
