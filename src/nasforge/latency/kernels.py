"""A network as the kernels a runtime executes: nn-Meter's fusion rule over a layer list.

nn-Meter (Zhang et al., 2021) finds the kernels by fusion rules (two ops fuse when T1 + T2 − T12 > 0.5·min(T1, T2)).
Our rule (``fuse``): a conv or linear layer together with the BatchNorm and the activation that directly follow it is
one kernel (conv-bn-act, conv-bn, dwconv-bn-act, linear-act, ...); every other layer (pool, add, concat, a lone act)
is its own kernel. That is what onnxruntime does on CPU (BN folded into the conv weights, ReLU/Clip fused into the conv
as its activation), and what nn-Meter's test finds for mobile CPUs. torch eager runs the three as separate calls, but
their cost is a function of the conv's configuration, so one kernel per group keeps a predictor's inputs the same for
both runtimes. A kernel's configuration (``FEATURES``) is what nn-Meter's per-kernel random forests read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..cost.layers import LayerSpec, conv_out
from .units import Unit

FEATURES = ("hw_in", "c_in", "c_out", "kernel", "stride", "groups", "macs", "params", "hw_out")


@dataclass(frozen=True)
class Kernel:
    """One runtime kernel: a conv/linear with its fused bn and act, or one other layer."""

    specs: tuple[LayerSpec, ...]

    @property
    def type(self) -> str:
        s = self.specs[0]
        base = s.kind
        if s.kind == "conv" and s.groups > 1:
            base = "dwconv" if s.groups == s.in_shape[0] == s.out_shape[0] else "gconv"
        return "-".join([base, *(x.kind for x in self.specs[1:])])

    def features(self) -> np.ndarray:
        """The kernel's configuration, in ``FEATURES`` order."""
        first, last = self.specs[0], self.specs[-1]
        i, o = first.in_shape, last.out_shape
        if first.kind == "linear" or len(i) != 3:
            c_in, c_out, hw_in, hw_out = i[-1], o[-1], math.prod(i[:-1]), math.prod(o[:-1])
        else:
            c_in, c_out, hw_in, hw_out = i[0], o[0], i[1] * i[2], math.prod(o[1:])
        return np.array(
            [hw_in, c_in, c_out, first.kernel[0], first.stride, first.groups,
             sum(s.macs for s in self.specs), sum(s.params for s in self.specs), hw_out],
            dtype=float,
        )

    def unit(self) -> Unit:
        """The kernel as a lookup-table unit, stripped of names and of extras that do not change the computation,
        so that equal kernels share one measurement (the activation is kept: it decides which function runs)."""
        return Unit(tuple(replace(s, name="", live=0, extra=_kept(s)) for s in self.specs))


def _kept(spec: LayerSpec) -> tuple:
    return tuple((k, v) for k, v in spec.extra if k in ("act", "pool"))


def fuse(layers: Sequence[LayerSpec]) -> list[Kernel]:
    """Cut a layer list into kernels by the fusion rule in the module docstring."""
    out: list[Kernel] = []
    i, n = 0, len(layers)
    while i < n:
        group = [layers[i]]
        i += 1
        if group[0].kind in ("conv", "linear"):
            for follow in ("bn", "act"):
                if i < n and layers[i].kind == follow and layers[i].in_shape == group[-1].out_shape:
                    group.append(layers[i])
                    i += 1
        out.append(Kernel(tuple(group)))
    return out


def perturb(k: Kernel, rng: np.random.Generator) -> Kernel | None:
    """A kernel of the same type and kernel/stride with channels and map size drawn within ±25% (nn-Meter's
    "configurations around" a badly predicted one). None for kernels it cannot resize."""
    first = k.specs[0]
    if len(first.in_shape) != 3 or first.kind not in ("conv", "act", "bn", "pool", "add"):
        return None

    def jiggle(v: int, lo: int = 1) -> int:
        return max(lo, int(round(v * rng.uniform(0.75, 1.25))))

    c_in, h, w = first.in_shape
    h2 = jiggle(h, max(first.kernel[0], 1))
    w2 = h2 if h == w else jiggle(w, max(first.kernel[1], 1))
    if first.kind == "conv":
        return _perturb_conv(k, jiggle, h2, w2)
    if first.kind == "pool":
        if first.out_shape[1:] == (1, 1):
            c2 = jiggle(c_in)
            return Kernel((replace(first, in_shape=(c2, h2, w2), out_shape=(c2, 1, 1), kernel=(h2, w2)),))
        return None
    c2 = jiggle(c_in)
    scale = first.out_shape[0] / c_in if c_in else 1
    return Kernel((replace(first, in_shape=(c2, h2, w2), out_shape=(max(1, int(c2 * scale)), h2, w2)),))


def _perturb_conv(k: Kernel, jiggle: Callable[[int], int], h2: int, w2: int) -> Kernel | None:
    first = k.specs[0]
    c_in, h, _ = first.in_shape
    c_in2 = jiggle(c_in)
    dw = first.groups > 1 and first.groups == c_in == first.out_shape[0]
    c_out2 = c_in2 if dw else jiggle(first.out_shape[0])
    groups = c_in2 if dw else 1 if first.groups == 1 else None
    if groups is None:
        return None
    kh, st = first.kernel[0], first.stride
    p = next((p for p in [kh // 2, *range(kh)] if conv_out(h, kh, st, p) == first.out_shape[1]), kh // 2)
    out = (c_out2, conv_out(h2, kh, st, p), conv_out(w2, kh, st, p))
    if min(out[1:]) < 1:
        return None
    specs = [replace(first, in_shape=(c_in2, h2, w2), out_shape=out, groups=groups)]
    specs += [replace(s, in_shape=out, out_shape=out) for s in k.specs[1:]]
    return Kernel(tuple(specs))
