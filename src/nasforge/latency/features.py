"""What a latency predictor reads off an arch: the family's encoding and analytic costs of its layer list.

``analytic_features(layers)``: per kernel group (conv, 1×1 conv, depthwise, grouped, linear, pool, add, other) the
kernel count, MACs and activation elements read + written; then the parameters, and the bytes and count of activations
large enough to be mapped and page-faulted afresh by the allocator on every call in eager torch (glibc's mmap
threshold). Latency is close to linear in these: a cost per call, per MAC and per byte moved, by kernel type.

``ArchFeatures(family, task, which)`` is the feature function of an arch: ``"encoding"`` (``family.features``: a
fixed-length code of the canonical arch, so equal networks get equal features), ``"analytic"`` or ``"both"``. It is a
picklable object, so a predictor that holds one can be saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cost.layers import LayerSpec
from .base import LatencyError, resolve_family
from .kernels import Kernel, fuse

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task

KERNEL_GROUPS = ("conv", "pw", "dw", "gconv", "linear", "pool", "add", "other")
BIG_ALLOC_BYTES = 128 * 1024  # glibc's default mmap threshold: bigger blocks are mapped, and faulted in, per call
FEATURE_SETS = ("both", "encoding", "analytic")


def _group(k: Kernel) -> str:
    first = k.specs[0]
    if first.kind == "conv":
        if first.groups > 1:
            return "dw" if k.type.startswith("dwconv") else "gconv"
        return "pw" if first.kernel == (1, 1) else "conv"
    return first.kind if first.kind in KERNEL_GROUPS else "other"


def analytic_features(layers: Sequence[LayerSpec]) -> np.ndarray:
    """The analytic costs of a layer list that latency is close to linear in (see the module docstring)."""
    agg = {g: [0.0, 0.0, 0.0] for g in KERNEL_GROUPS}
    for k in fuse(layers):
        a = agg[_group(k)]
        a[0] += 1
        a[1] += sum(s.macs for s in k.specs)
        a[2] += sum(s.in_numel + s.out_numel for s in k.specs)
    big = [s.out_numel * 4 for s in layers if s.out_numel * 4 >= BIG_ALLOC_BYTES]
    tail = [sum(s.params for s in layers), sum(big), len(big)]
    return np.array([v for g in KERNEL_GROUPS for v in agg[g]] + tail, dtype=float)


class ArchFeatures:
    """``features(arch) -> np.ndarray``: the family's encoding, the analytic costs, or both (concatenated)."""

    def __init__(self, family: Family | str | Mapping[str, Any], task: Task, which: str = "both") -> None:
        self.family = family
        self.task = task
        self.which = which

    def __call__(self, arch: Mapping[str, Any]) -> np.ndarray:
        return self._row(resolve_family(self.family), arch)

    def many(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """One row per arch."""
        fam = resolve_family(self.family)
        return np.array([self._row(fam, a) for a in archs])

    def _row(self, fam: Family, arch: Mapping[str, Any]) -> np.ndarray:
        if self.which not in FEATURE_SETS:
            raise LatencyError(f"unknown feature set {self.which!r}; use {', '.join(FEATURE_SETS)}")
        parts = []
        if self.which != "analytic":
            parts.append(np.asarray(fam.features(arch), dtype=float))
        if self.which != "encoding":
            parts.append(analytic_features(fam.layers(arch, self.task)))
        return np.concatenate(parts)
