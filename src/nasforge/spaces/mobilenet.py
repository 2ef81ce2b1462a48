"""The ``mobilenet`` family: a network-level space of inverted-residual (MBConv) stages.

The layout follows Once-for-All's MobileNetV3-like space (REFERENCES.md), scaled so that a CPU builds and runs it in
milliseconds, and without squeeze-excitation, as ProxylessNAS and MCUNet:

    stem 3×3 conv stride 2 (16) - first block MBConv k3 e1 (8, the fixed depthwise-separable block of ProxylessNAS)
    - S stages of MBConv blocks (default 5 stages: widths 24, 40, 80, 96, 160; strides 2, 2, 2, 1, 2)
    - 1×1 head conv (640) - global average pool - linear classifier.

Every channel count is multiplied by the arch's ``width`` and rounded to a multiple of 8 (MobileNetV2's rule). The
first block of a stage carries its stride and changes the width; the others keep both and add a residual (so does the
fixed first block when the stem and it round to the same width, as at width 0.5). With 1,000 classes an arch has
0.5–3.0 M parameters and 7–255 M MACs; ``layers`` equals ``numel()`` and ``FlopCounterMode`` on the built network.

Dimensions (in this order): ``resolution``, ``width``, then per stage ``s{i}_d`` (depth, keep the first d blocks, as
Once-for-All) and for every block slot j < max depth ``s{i}_b{j}_k`` (kernel) and ``s{i}_b{j}_e`` (expand ratio).

Unused slots. The space is the plain product of its dimensions, so that every strategy, ``grid``, ``mutate`` and
``encode`` work unchanged; the kernel and expand of slots at or beyond a stage's depth are ignored by ``build``,
``layers`` and ``describe``, so several archs build the same network. ``canonical(arch)`` maps an arch to its
network's representative (unused slots set to the first choice) and ``network_key(arch)`` is that representative's key:
de-duplicate on it. We keep the product space rather than a conditional one because ``Space`` is a product by
design, and uniform sampling over it draws the depth uniformly, as Once-for-All samples subnets. ``num_networks``
counts distinct networks; ``features(arch)`` is Once-for-All's predictor encoding (kernel and expand one-hots per
slot, zeros for a skipped slot, plus resolution and width).

Resolution. The arch's ``resolution`` R replaces the task's H×W: the network is costed (``layers``) at R×R and expects
R×R inputs; its ``forward`` first resizes any other input bilinearly to R×R (a no-op at R), so that it trains on a data
set of another size exactly as its costs say. Only the task's channel count and class count are used;
``input_shape(arch, task)`` gives the (C, R, R) a caller should feed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cost.layers import LayerSpec
from ..errors import SpaceError
from ..nn.ops import ConvBNAct, MBConv, conv_bn_act_specs, make_divisible, mbconv_specs
from ..space import Arch, Space
from .base import Family, Task, register_family

DEFAULT_STAGES: tuple[tuple[int, int], ...] = ((24, 2), (40, 2), (80, 2), (96, 1), (160, 2))
DEFAULTS: dict[str, Any] = {
    "stages": DEFAULT_STAGES,
    "depths": (2, 3, 4),
    "kernels": (3, 5, 7),
    "expands": (3, 4, 6),
    "widths": (0.5, 0.75, 1.0),
    "resolutions": (96, 112, 128, 160),
    "stem": 16,
    "first": 8,
    "head": 640,
    "act": "relu6",
}


@lru_cache(maxsize=65536)
def _block_specs(in_shape: tuple[int, int, int], out_ch: int, k: int, s: int, e: int, name: str) -> tuple:
    # blocks repeat across archs (TinyNAS costs thousands of them): cache their specs, which are frozen
    return tuple(mbconv_specs(in_shape, out_ch, k, s, e, name=name))


@register_family("mobilenet")
class MobileNet(Family):
    """Network-level MBConv space; see the module docstring. Arguments override ``DEFAULTS``.

    ``stages`` is a list of (base width, stride) pairs, one per stage; ``depths``, ``kernels``, ``expands``,
    ``widths`` and ``resolutions`` are the choices; ``stem``, ``first`` and ``head`` the fixed base widths.
    """

    def __init__(
        self,
        stages: Sequence[Sequence[int]] | None = None,
        depths: Sequence[int] | None = None,
        kernels: Sequence[int] | None = None,
        expands: Sequence[int] | None = None,
        widths: Sequence[float] | None = None,
        resolutions: Sequence[int] | None = None,
        stem: int | None = None,
        first: int | None = None,
        head: int | None = None,
        act: str | None = None,
    ) -> None:
        given = {
            "stages": stages, "depths": depths, "kernels": kernels, "expands": expands, "widths": widths,
            "resolutions": resolutions, "stem": stem, "first": first, "head": head, "act": act,
        }
        self._cfg = {k: v for k, v in given.items() if v is not None}
        self._space: Space | None = None
        self._valid: set[Arch] = set()  # archs already checked, so layers() after costs() does not re-check

    # --- configuration ------------------------------------------------------------------------------------------
    def _get(self, name: str) -> Any:
        return self._cfg.get(name, DEFAULTS[name])

    @property
    def stages(self) -> tuple[tuple[int, int], ...]:
        st = self._get("stages")
        try:
            out = tuple((int(c), int(s)) for c, s in st)
        except (TypeError, ValueError):
            raise SpaceError(f"mobilenet stages must be a list of [width, stride] pairs, got {st!r}") from None
        if not out or any(c < 1 or s not in (1, 2) for c, s in out):
            raise SpaceError(f"mobilenet stages need positive widths and strides 1 or 2, got {st!r}")
        return out

    @property
    def max_depth(self) -> int:
        return max(self._get("depths"))

    def config(self) -> dict[str, Any]:
        cfg = {}
        for k, v in self._cfg.items():
            cfg[k] = [list(x) for x in v] if k == "stages" else (list(v) if isinstance(v, Sequence)
                                                                 and not isinstance(v, str) else v)
        return cfg

    @property
    def space(self) -> Space:
        if self._space is None:
            _ = self.stages  # validates the stage list
            if any(int(d) < 1 for d in self._get("depths")):
                raise SpaceError(f"mobilenet depths must be positive, got {list(self._get('depths'))}")
            if any(int(k) % 2 != 1 for k in self._get("kernels")):
                raise SpaceError(f"mobilenet kernels must be odd, got {list(self._get('kernels'))}")
            dims: dict[str, Any] = {"resolution": tuple(self._get("resolutions")), "width": tuple(self._get("widths"))}
            for i in range(len(self.stages)):
                dims[f"s{i}_d"] = tuple(self._get("depths"))
                for j in range(self.max_depth):
                    dims[f"s{i}_b{j}_k"] = tuple(self._get("kernels"))
                    dims[f"s{i}_b{j}_e"] = tuple(self._get("expands"))
            self._space = Space(dims)
        return self._space

    @property
    def num_networks(self) -> int:
        """Exact number of distinct networks (archs that differ only in unused slots count once)."""
        ke = len(self._get("kernels")) * len(self._get("expands"))
        per_stage = sum(ke ** int(d) for d in self._get("depths"))
        return len(self._get("widths")) * len(self._get("resolutions")) * per_stage ** len(self.stages)

    # --- arch helpers -------------------------------------------------------------------------------------------
    def _check(self, arch: Mapping[str, Any]) -> Arch:
        """The arch as an ``Arch`` of this space, or a one-line ``SpaceError`` saying what does not fit."""
        if isinstance(arch, Arch) and arch in self._valid:
            return arch
        if not isinstance(arch, Mapping):
            raise SpaceError(f"a mobilenet arch must be a mapping, got {type(arch).__name__}")
        sp = self.space
        unknown = [k for k in arch if k not in sp.dims]
        missing = [k for k in sp.names if k not in arch]
        if unknown or missing:
            what = f"unknown dimensions {unknown[:4]}" if unknown else f"missing dimensions {missing[:4]}"
            raise SpaceError(
                f"not a mobilenet arch ({what}); build it with family.arch(...) or sample it from family.space"
            )
        vals = {}
        for k in sp.names:
            try:
                # the space's own value, so that width=1 and width=1.0 give the same arch and key
                vals[k] = sp.dims[k].values[sp.dims[k].index(arch[k])]
            except SpaceError:
                raise SpaceError(f"mobilenet {k}={arch[k]!r} is not one of {list(sp.dims[k].values)}") from None
        a = Arch(vals)
        if len(self._valid) > 4096:
            self._valid.clear()
        self._valid.add(a)
        return a

    def arch(self, values: Mapping[str, Any]) -> Arch:
        return self._check(values)

    def blocks(self, arch: Mapping[str, Any]) -> list[list[tuple[int, int]]]:
        """Per stage, the (kernel, expand) of its used blocks."""
        a = self._check(arch)
        return [
            [(a[f"s{i}_b{j}_k"], a[f"s{i}_b{j}_e"]) for j in range(a[f"s{i}_d"])] for i in range(len(self.stages))
        ]

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """The representative of ``arch``'s network: slots beyond each stage's depth set to the first choice."""
        a = self._check(arch)
        k0, e0 = self.space.dims["s0_b0_k"].values[0], self.space.dims["s0_b0_e"].values[0]
        out = dict(a)
        for i in range(len(self.stages)):
            for j in range(a[f"s{i}_d"], self.max_depth):
                out[f"s{i}_b{j}_k"], out[f"s{i}_b{j}_e"] = k0, e0
        return Arch(out)

    def network_key(self, arch: Mapping[str, Any]) -> str:
        """Equal for two archs exactly when they build the same network."""
        return self.canonical(arch).key

    def describe(self, arch: Mapping[str, Any]) -> str:
        """``r128 w0.75 | k3e4 k5e6 | k7e3 k3e3 k5e4 | ...``: one group of used blocks per stage."""
        a = self._check(arch)
        stages = " | ".join(" ".join(f"k{k}e{e}" for k, e in st) for st in self.blocks(a))
        return f"r{a['resolution']} w{a['width']} | {stages}"

    def features(self, arch: Mapping[str, Any]) -> np.ndarray:
        """Once-for-All's accuracy-predictor encoding: per block slot the kernel and expand one-hots (all zeros for a
        skipped slot), then the resolution and width one-hots. Equal networks give equal vectors."""
        a = self._check(arch)
        ks, es = self.space.dims["s0_b0_k"].values, self.space.dims["s0_b0_e"].values
        parts: list[np.ndarray] = []
        for i in range(len(self.stages)):
            for j in range(self.max_depth):
                v = np.zeros(len(ks) + len(es), dtype=np.float32)
                if j < a[f"s{i}_d"]:
                    v[ks.index(a[f"s{i}_b{j}_k"])] = 1
                    v[len(ks) + es.index(a[f"s{i}_b{j}_e"])] = 1
                parts.append(v)
        for dim in ("resolution", "width"):
            v = np.zeros(len(self.space.dims[dim]), dtype=np.float32)
            v[self.space.dims[dim].index(a[dim])] = 1
            parts.append(v)
        return np.concatenate(parts)

    # --- shapes -------------------------------------------------------------------------------------------------
    def channels(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The actual channel counts at the arch's width: stem, first, per-stage, head."""
        w = float(arch["width"])
        return {
            "stem": make_divisible(self._get("stem") * w),
            "first": make_divisible(self._get("first") * w),
            "stages": [make_divisible(c * w) for c, _ in self.stages],
            "head": make_divisible(self._get("head") * w),
        }

    def input_shape(self, arch: Mapping[str, Any], task: Task) -> tuple[int, int, int]:
        """The (C, R, R) input the network is costed at: the task's channels at the arch's resolution."""
        if len(task.input_shape) != 3:
            raise SpaceError(f"the mobilenet family needs an image task (C, H, W), got input shape {task.input_shape}")
        r = int(arch["resolution"])
        return (task.input_shape[0], r, r)

    def layers(self, arch: Mapping[str, Any], task: Task) -> list[LayerSpec]:
        a = self._check(arch)
        ch = self.channels(a)
        x = self.input_shape(a, task)
        out = conv_bn_act_specs(x, ch["stem"], 3, 2, name="stem")
        x = out[-1].out_shape
        out += _block_specs(x, ch["first"], 3, 1, 1, "first")
        x = out[-1].out_shape
        for i, ((_, stride), c) in enumerate(zip(self.stages, ch["stages"], strict=True)):
            for j in range(a[f"s{i}_d"]):
                out += _block_specs(x, c, a[f"s{i}_b{j}_k"], stride if j == 0 else 1, a[f"s{i}_b{j}_e"], f"s{i}.b{j}")
                x = out[-1].out_shape
        out += conv_bn_act_specs(x, ch["head"], 1, name="head")
        c, h, w = out[-1].out_shape
        out.append(LayerSpec("pool", (c, h, w), (c, 1, 1), (h, w), name="pool"))
        out.append(LayerSpec("reshape", (c, 1, 1), (c,), name="flatten"))
        out.append(LayerSpec("linear", (c,), (task.num_classes,), bias=True, name="classifier"))
        return out

    def build(self, arch: Mapping[str, Any], task: Task) -> nn.Module:
        a = self._check(arch)
        self.input_shape(a, task)
        return MobileNetNet(self, a, task)


class MobileNetNet(nn.Module):
    """The network of one mobilenet arch; ``stages[i]`` is the ``nn.Sequential`` of stage i's MBConv blocks."""

    def __init__(self, fam: MobileNet, arch: Arch, task: Task) -> None:
        super().__init__()
        ch = fam.channels(arch)
        act = fam._get("act")
        self.resolution = int(arch["resolution"])
        self.stem = ConvBNAct(task.input_shape[0], ch["stem"], 3, 2, act=act)
        self.first = MBConv(ch["stem"], ch["first"], 3, 1, 1, act=act)
        stages = []
        c_in = ch["first"]
        for i, ((_, stride), c) in enumerate(zip(fam.stages, ch["stages"], strict=True)):
            blocks = []
            for j in range(arch[f"s{i}_d"]):
                blocks.append(MBConv(c_in, c, arch[f"s{i}_b{j}_k"], stride if j == 0 else 1, arch[f"s{i}_b{j}_e"],
                                     act=act))
                c_in = c
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = ConvBNAct(c_in, ch["head"], 1, act=act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(ch["head"], task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if x.shape[-2:] != (r, r):
            # the arch's resolution is part of the arch: other inputs are resized to it (see the module docstring)
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
        x = self.first(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.flatten(self.pool(self.head(x))))
