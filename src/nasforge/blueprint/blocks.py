"""The blocks a blueprint is made of. Each knows, for its resolved parameters and input shapes: its output shape,
its ``LayerSpec``s, its graph node, its plain torch module, and its elastic (supernet) module with ``extract``.

Torch enters only in the module methods (imported there), so layer lists, costs, graphs and canonical forms need no
torch. A parameter given as ``P(...)`` is tied to space dimensions (see ``params.py``); ``extra`` is a tuple of
(key, value) facts copied onto the block's LayerSpecs (a latency table keys on them); values may be ``P`` too.

Adding a block kind: subclass ``Block``, set ``kind`` (the LayerSpec kind, "" for none) and ``op`` (the graph op),
and implement ``out_shape`` and ``module``; weighted blocks also implement ``graph_weight``, ``super_module`` and
``extract``. The family conformance tests check every family built from them against FlopCounterMode and ``numel()``.
Blocks without weights are in ``ops.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

from ..cost.layers import LayerSpec, conv_out
from ..errors import SpaceError
from ..space import Space
from .params import P, dims_of, resolve

Shape = tuple[int, ...]


class Block:
    """One node's computation. Subclasses pass their parameters to ``__init__`` as keywords (constants or ``P``)."""

    kind: ClassVar[str] = ""  # LayerSpec kind; "" = the block adds no layer to the cost list
    op: ClassVar[str] = ""  # graph op name

    def __init__(self, extra: tuple = (), **fields: Any) -> None:
        self.fields = dict(fields)
        self.extra = tuple(extra)
        # the fields tied to dimensions, resolved per arch; everything else is fixed
        self.var = tuple(k for k, v in self.fields.items() if type(v) is P)
        self.var_extra = bool(dims_of(self.extra))
        self.dims = frozenset(dims_of(*self.fields.values(), self.extra))
        self.key_dims = tuple(sorted(self.dims))  # the arch values that decide every parameter

    # --- parameters ---------------------------------------------------------------------------------------------
    def resolve(self, arch: Any) -> dict[str, Any]:
        """The parameters for ``arch``: every field and the ``extra`` facts with ``P``s evaluated."""
        p = dict(self.fields)
        for k in self.var:
            p[k] = p[k](arch)
        p["extra"] = tuple((k, resolve(v, arch)) for k, v in self.extra) if self.var_extra else self.extra
        return p

    def param_sets(self, space: Space) -> list[dict[str, Any]]:
        """Every parameter dict over ``space`` (the product of each tied parameter's values; a superset)."""
        lists = [self.fields[k].values(space) for k in self.var]
        out = []
        for combo in itertools.product(*lists):
            p = dict(self.fields)
            p.update(zip(self.var, combo, strict=True))
            p["extra"] = self.extra
            out.append(p)
        return out

    # --- analytic views -----------------------------------------------------------------------------------------
    def out_shape(self, ins: Sequence[Shape], p: dict[str, Any]) -> Shape:
        return ins[0]

    def specs(self, name: str, ins: Sequence[Shape], out: Shape, p: dict[str, Any]) -> list[LayerSpec]:
        if not self.kind:
            return []
        return [LayerSpec(self.kind, ins[0], out, name=name, extra=p["extra"])]

    def graph_weight(self, ins: Sequence[Shape], out: Shape, p: dict[str, Any]) -> tuple[int, ...] | None:
        return None

    def graph_attrs(self, p: dict[str, Any]) -> dict[str, Any]:
        return {}

    # --- torch --------------------------------------------------------------------------------------------------
    def module(self, ins: Sequence[Shape], p: dict[str, Any]):
        raise NotImplementedError

    def super_module(self, in_sets: Sequence[set[Shape]], psets: list[dict[str, Any]]):
        """The module the supernet holds for this block over every input shape and parameter set it can meet."""
        if self.var:
            raise SpaceError(f"{type(self).__name__} cannot vary {', '.join(self.var)} in a supernet")
        return self.module([next(iter(s)) for s in in_sets], psets[0])

    def super_forward(self, m, xs: Sequence[Any], p: dict[str, Any]):
        return m(*xs)

    def extract(self, m, ins: Sequence[Shape], p: dict[str, Any]):
        """A plain module equal to the supernet's ``m`` at these shapes and parameters (weights copied)."""
        return self.module(ins, p)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{type(self).__name__}({inner})"


def _image(ins: Sequence[Shape], what: str) -> tuple[int, int, int]:
    if len(ins[0]) != 3:
        raise SpaceError(f"{what} needs an image input (C, H, W), got shape {ins[0]}")
    return ins[0]  # type: ignore[return-value]


class Conv(Block):
    """k×k convolution. ``groups="dw"`` is depthwise (groups = in = out channels); ``pad="same"`` is k // 2."""

    kind, op = "conv", "conv"

    def __init__(
        self, out: int | P | None = None, k: int | P = 3, stride: int = 1, *, groups: int | str = 1,
        pad: int | str = "same", bias: bool = False, extra: tuple = (),
    ) -> None:  # fmt: skip
        if out is None and groups != "dw":
            raise SpaceError("Conv needs its output channels (out=...) unless it is depthwise (groups='dw')")
        super().__init__(extra, out=out, k=k, stride=stride, groups=groups, pad=pad, bias=bias)

    @staticmethod
    def _geometry(c: int, p: dict[str, Any]) -> tuple[int, int, int]:
        dw = p["groups"] == "dw"
        out = c if dw else int(p["out"])
        return out, (c if dw else int(p["groups"])), (p["k"] // 2 if p["pad"] == "same" else int(p["pad"]))

    def out_shape(self, ins: Sequence[Shape], p: dict[str, Any]) -> Shape:
        c, h, w = _image(ins, "a conv")
        out, groups, pad = self._geometry(c, p)
        k, s = p["k"], p["stride"]
        ho, wo = conv_out(h, k, s, pad), conv_out(w, k, s, pad)
        if ho < 1 or wo < 1:
            raise SpaceError(f"input {h}×{w} is too small for a {k}×{k} conv (padding {pad})")
        if c % groups or out % groups:
            raise SpaceError(f"a conv with {groups} groups needs channels divisible by it, got {c} -> {out}")
        return (out, ho, wo)

    def specs(self, name, ins, out, p):
        k = p["k"]
        groups = self._geometry(ins[0][0], p)[1]
        return [LayerSpec("conv", ins[0], out, (k, k), p["stride"], groups, p["bias"], name, extra=p["extra"])]

    def graph_weight(self, ins, out, p):
        groups = self._geometry(ins[0][0], p)[1]
        return (out[0], ins[0][0] // groups, p["k"], p["k"])

    def graph_attrs(self, p):
        return {"kernel": p["k"], "stride": p["stride"]}

    def module(self, ins, p):
        from torch import nn

        c = ins[0][0]
        out, groups, pad = self._geometry(c, p)
        return nn.Conv2d(c, out, p["k"], p["stride"], pad, groups=groups, bias=p["bias"])

    def super_module(self, in_sets, psets):
        from ..nn.elastic import ElasticConv2d

        p0 = psets[0]
        max_in = max(s[0] for s in in_sets[0])
        dw = p0["groups"] == "dw"
        if not dw and p0["groups"] != 1:
            raise SpaceError("a supernet conv must have groups 1 or 'dw'")
        max_out = max_in if dw else max(int(p["out"]) for p in psets)
        ks = {p["k"] for p in psets}
        if any(k % 2 != max(ks) % 2 for k in ks):
            raise SpaceError(f"elastic kernels must all be odd or all even to share centres, got {sorted(ks)}")
        pad = None if p0["pad"] == "same" else int(p0["pad"])
        return ElasticConv2d(max_in, max_out, max(ks), p0["stride"], depthwise=dw, bias=p0["bias"], padding=pad)

    def super_forward(self, m, xs, p):
        return m(xs[0], None if p["groups"] == "dw" else int(p["out"]), p["k"])

    def extract(self, m, ins, p):
        c = ins[0][0]
        return m.extract(c, self._geometry(c, p)[0], p["k"])


class Linear(Block):
    """A fully connected layer on the last dimension."""

    kind, op = "linear", "linear"

    def __init__(self, out: int | P, *, bias: bool = True, extra: tuple = ()) -> None:
        super().__init__(extra, out=out, bias=bias)

    def out_shape(self, ins, p):
        return (*ins[0][:-1], int(p["out"]))

    def specs(self, name, ins, out, p):
        return [LayerSpec("linear", ins[0], out, bias=p["bias"], name=name, extra=p["extra"])]

    def graph_weight(self, ins, out, p):
        return (out[-1], ins[0][-1])

    def module(self, ins, p):
        from torch import nn

        return nn.Linear(ins[0][-1], int(p["out"]), bias=p["bias"])

    def super_module(self, in_sets, psets):
        from ..nn.elastic import ElasticLinear

        return ElasticLinear(max(s[-1] for s in in_sets[0]), max(int(p["out"]) for p in psets), psets[0]["bias"])

    def super_forward(self, m, xs, p):
        return m(xs[0], int(p["out"]))

    def extract(self, m, ins, p):
        return m.extract(ins[0][-1], int(p["out"]))


class BN(Block):
    """BatchNorm over the channels (2-d for images, 1-d for feature vectors)."""

    kind, op = "bn", "bn"

    def __init__(self, extra: tuple = ()) -> None:
        super().__init__(extra)

    def graph_weight(self, ins, out, p):
        return (ins[0][0],)

    def module(self, ins, p):
        from torch import nn

        return (nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d)(ins[0][0])

    def super_module(self, in_sets, psets):
        from ..nn.elastic import ElasticBatchNorm

        return ElasticBatchNorm(max(s[0] for s in in_sets[0]))

    def extract(self, m, ins, p):
        return m.extract(ins[0][0], 2 if len(ins[0]) == 3 else 1)
