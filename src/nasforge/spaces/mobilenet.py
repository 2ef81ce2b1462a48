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
R×R inputs; its first module (``resize``) resizes any other input bilinearly to R×R (a no-op at R), so that it trains
on a data set of another size exactly as its costs say. Only the task's channel count and class count are used;
``input_shape(arch, task)`` gives the (C, R, R) a caller should feed.

Module names: ``resize``, ``stem.{0,1,2}``, ``first.depthwise.*``, ``first.project.*`` (``first.add`` at width 0.5),
``stages.{i}.{j}.expand_conv.*``, ``.depthwise.*``, ``.project.*``, ``.add``, then ``head.*``, ``pool``, ``flatten``,
``classifier``. The network is one blueprint; the depth dimension makes the blocks beyond a stage's depth inactive,
which is what makes their kernel and expand dimensions unread (so ``canonical`` drops them) and what the supernet
turns into elastic depth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..blueprint import Blueprint, Flatten, GlobalPool, Linear, P, Resize
from ..blueprint.macros import conv_bn_act, make_divisible, mbconv
from ..errors import SpaceError
from ..space import Space
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
        }  # fmt: skip
        self._cfg = {k: v for k, v in given.items() if v is not None}
        self._space: Space | None = None

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

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"stages": [[16, 2], [24, 2]], "depths": [1, 2], "kernels": [3, 5], "expands": [3, 4],
                "widths": [0.5, 1.0], "resolutions": [32, 48], "stem": 8, "first": 8, "head": 32}

    def config(self) -> dict[str, Any]:
        cfg = {}
        for k, v in self._cfg.items():
            seq = isinstance(v, Sequence) and not isinstance(v, str)
            cfg[k] = [list(x) for x in v] if k == "stages" else (list(v) if seq else v)
        return cfg

    @property
    def space(self) -> Space:
        if self._space is None:
            _ = self.stages  # validates the stage list
            if any(int(d) < 1 for d in self._get("depths")):
                raise SpaceError(f"mobilenet depths must be positive, got {list(self._get('depths'))}")
            if any(int(k) % 2 != 1 for k in self._get("kernels")):
                raise SpaceError(f"mobilenet kernels must be odd, got {list(self._get('kernels'))}")
            if any(int(e) < 1 for e in self._get("expands")) or (
                1 in self._get("expands") and len(self._get("expands")) > 1
            ):
                raise SpaceError(f"mobilenet expands must be >= 1, and 1 only alone, got {list(self._get('expands'))}")
            dims: dict[str, Any] = {"resolution": tuple(self._get("resolutions")), "width": tuple(self._get("widths"))}
            for i in range(len(self.stages)):
                dims[f"s{i}_d"] = tuple(self._get("depths"))
                for j in range(self.max_depth):
                    dims[f"s{i}_b{j}_k"] = tuple(self._get("kernels"))
                    dims[f"s{i}_b{j}_e"] = tuple(self._get("expands"))
            self._space = self.make_space(dims)
        return self._space

    @property
    def num_networks(self) -> int:
        """Exact number of distinct networks (archs that differ only in unused slots count once)."""
        ke = len(self._get("kernels")) * len(self._get("expands"))
        per_stage = sum(ke ** int(d) for d in self._get("depths"))
        return len(self._get("widths")) * len(self._get("resolutions")) * per_stage ** len(self.stages)

    # --- the network, declared once -----------------------------------------------------------------------------
    def blueprint(self, task: Task) -> Blueprint:
        if not task.is_image:
            raise SpaceError(f"the mobilenet family needs an image task (C, H, W), got input shape {task.input_shape}")
        c_in, act = task.input_shape[0], self._get("act")

        def width(base: int) -> P:  # a fixed base width at the arch's width multiplier
            def channels(w: float) -> int:
                return make_divisible(base * float(w))

            return P(channels, "width")

        bp = Blueprint(P(lambda r: (c_in, int(r), int(r)), "resolution"))
        bp.add("resize", Resize(P("resolution")))
        stem, first = width(self._get("stem")), width(self._get("first"))
        conv_bn_act(bp, "stem", stem, 3, 2, act=act)
        c = mbconv(bp, "first", stem, first, 3, 1, 1, act=act)
        prev = first
        for i, ((_, stride), ch) in enumerate(zip(self.stages, [width(b) for b, _ in self.stages], strict=True)):
            for j in range(self.max_depth):
                # blocks a stage may skip are conditional on its depth (elastic depth: keep the first d blocks)
                when = () if j < min(self._get("depths")) else (P(lambda d, j=j: j < d, f"s{i}_d"),)
                c = mbconv(bp, f"stages.{i}.{j}", prev, ch, P(f"s{i}_b{j}_k"), stride if j == 0 else 1,
                           P(f"s{i}_b{j}_e"), act=act, inputs=c, when=when)  # fmt: skip
                prev = ch
        conv_bn_act(bp, "head", width(self._get("head")), 1, act=act)
        bp.add("pool", GlobalPool())
        bp.add("flatten", Flatten())
        bp.add("classifier", Linear(task.num_classes))
        return bp

    # --- readable forms -----------------------------------------------------------------------------------------
    def blocks(self, arch: Mapping[str, Any]) -> list[list[tuple[int, int]]]:
        """Per stage, the (kernel, expand) of its used blocks."""
        a = self.space.validate(arch)
        return [
            [(a[f"s{i}_b{j}_k"], a[f"s{i}_b{j}_e"]) for j in range(a[f"s{i}_d"])] for i in range(len(self.stages))
        ]

    def describe(self, arch: Mapping[str, Any]) -> str:
        """``r128 w0.75 | k3e4 k5e6 | k7e3 k3e3 k5e4 | ...``: one group of used blocks per stage."""
        a = self.space.validate(arch)
        stages = " | ".join(" ".join(f"k{k}e{e}" for k, e in st) for st in self.blocks(a))
        return f"r{a['resolution']} w{a['width']} | {stages}"

    def features(self, arch: Mapping[str, Any]) -> np.ndarray:
        """Once-for-All's accuracy-predictor encoding: per block slot the kernel and expand one-hots (all zeros for a
        skipped slot), then the resolution and width one-hots. Equal networks give equal vectors."""
        a = self.space.validate(arch)
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

    def channels(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The actual channel counts at the arch's width: stem, first, per-stage, head."""
        w = float(arch["width"])
        return {
            "stem": make_divisible(self._get("stem") * w),
            "first": make_divisible(self._get("first") * w),
            "stages": [make_divisible(c * w) for c, _ in self.stages],
            "head": make_divisible(self._get("head") * w),
        }
