"""Net2Net morphisms derived from a family's blueprint: a trained parent's weights mapped into a wider or deeper child.

``morph(family, parent_arch, parent_state, child_arch, task)`` returns the child's network (``family.build``) whose
output equals the parent's in eval mode (Chen et al., 2016; REFERENCES.md). Nothing here is family-specific: the two
archs are bound to the blueprint (``bind``), blocks are matched by node name (= module name, so a state dict reads
like the declaration), and a *channel map* follows every tensor: for each channel of the child's tensor, the channel
of the parent's tensor it copies. Per matched block:

- conv / linear: output units widen by Net2WiderNet's mapping (``nn.morph.wider_map``); input units follow the input
  tensor's map, with outgoing weights divided by the copy count (this is what widens "the next layer"). A larger
  kernel is zero-padded at the centre ('same' padding keeps the function); a smaller one is refused.
- depthwise conv, BatchNorm (parameters and running statistics), activation, pooling, resize: channel-wise, so the
  output copies the input's map.
- flatten: the map expands to the flattened features (channel c, position s → feature c·H·W + s).
- residual add: its inputs must carry the same map. The random part of a mapping depends only on (seed, n, q), so
  every tensor widened from n to q channels copies the same units and adds stay aligned (both branches of a
  MobileNet residual widen alike).

Deepening. A block the parent lacks must sit on a residual branch: the new branch's last layer (a BatchNorm: γ = β = 0,
else a conv or linear: zero weights) is zeroed, so the branch adds exactly 0 and the add passes its other input
through. This is the practical Net2DeeperNet for residual blocks (an MBConv block is made the identity through its
residual, as zero-γ initialisation does, Goyal et al. 2017), chosen over an identity conv because an MBConv's
expand-depthwise-project chain with ReLU6 cannot compute the identity on unbounded inputs; the new block's other
layers keep their fresh initialisation, so gradients reach it as soon as γ moves. A new block outside a residual, a
block the child drops, another input shape (mobilenet's resolution), a narrower layer, a changed stride or a smaller
kernel are refused with a one-line ``MorphError``: the child is then not a morph of the parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .blueprint import BN, Act, Conv, Flatten, GlobalPool, Identity, Linear, Pool, Prim, Resize, Sum
from .spaces.base import Family, Task

# blocks that act channel by channel without weights: the output copies the input's channel map
_CHANNELWISE = (Act, Pool, GlobalPool, Identity, Resize)
NEW = None  # the map of a tensor made by a block the parent lacks


def morph(family: Family, parent_arch: Mapping[str, Any], parent_state: Mapping[str, Any],
          child_arch: Mapping[str, Any], task: Task | None = None, *, seed: int = 0, noise: float = 0.0):  # fmt: skip
    """The child's network holding the parent's function (see the module docstring). ``noise`` (relative to each
    weight tensor's std) on the copied units' incoming weights breaks symmetry; 0 preserves the function exactly.
    Fresh parts are initialised from ``torch.manual_seed(seed)``."""
    import torch

    from .nn.morph import MorphError

    task = family.task_or_default(task)
    bp = family._blueprint(task)
    parent = bp.bind(family.space.validate(parent_arch))
    child_arch = family.space.validate(child_arch)
    child = bp.bind(child_arch)
    if tuple(parent.input_shape) != tuple(child.input_shape):
        raise MorphError(f"the child's input shape {child.input_shape} differs from the parent's {parent.input_shape};"
                         " a morph keeps the input (same resolution)")  # fmt: skip
    torch.manual_seed(seed)
    model = family.build(child_arch, task)
    _Mapper(parent.prims, parent_state, model, seed, noise).run(child)
    return model


class _Mapper:
    """One walk over the child's blocks in order, carrying each tensor's channel map and copying weights."""

    def __init__(self, parent_prims: list[Prim], state: Mapping[str, Any], model, seed: int, noise: float) -> None:
        self.parents = {pr.name: pr for pr in parent_prims}
        self.state = state
        self.model = model
        self.seed = seed
        self.noise = noise
        self._maps: dict[tuple[int, int], np.ndarray] = {}

    def mapping(self, n: int, q: int) -> np.ndarray:
        """Net2WiderNet's g from n to q units; one per (n, q), so that tensors widened alike stay aligned."""
        from .nn.morph import wider_map

        if (n, q) not in self._maps:
            self._maps[(n, q)] = np.arange(n) if n == q else wider_map(n, q, np.random.default_rng([self.seed, n, q]))
        return self._maps[(n, q)]

    def run(self, child) -> None:
        from .nn.morph import MorphError

        c0 = child.input_shape[0]
        maps: list[tuple[np.ndarray, int] | None] = [(np.arange(c0), c0)]
        for i, pr in enumerate(child.prims):
            ins = [maps[t] for t in pr.inputs]
            pp = self.parents.pop(pr.name, None)
            if pp is None:
                maps.append(self._new(child.prims, pr, ins))
                continue
            if any(m is NEW for m in ins):
                raise MorphError(f"{pr.name} reads a block the parent lacks other than through a residual add")
            self._check(pr, pp)
            maps.append(self._copy(i, pr, pp, ins))  # type: ignore[arg-type]
        if maps[child.output] is NEW:
            raise MorphError("the child's output comes from a block the parent lacks")
        if self.parents:
            raise MorphError(f"the child lacks the parent's block {next(iter(self.parents))}: a morph only adds blocks")

    # --- blocks the parent lacks (Net2DeeperNet through a residual) --------------------------------------------
    def _new(self, prims: list[Prim], pr: Prim, ins: list) -> tuple[np.ndarray, int] | None:
        from .nn.morph import MorphError

        if not isinstance(pr.block, Sum):
            return NEW
        old = [m for m in ins if m is not NEW]
        if len(old) != len(ins) - 1:
            raise MorphError(f"{pr.name}: a new residual add needs exactly one new branch, got {len(ins) - len(old)}")
        branch = prims[pr.inputs[[m is NEW for m in ins].index(True)] - 1]  # tensor t is made by prim t - 1
        if not isinstance(branch.block, BN | Conv | Linear):
            raise MorphError(f"{pr.name}: the new branch ends in {type(branch.block).__name__}; it must end in a "
                             "BatchNorm, conv or linear layer to be zeroed")  # fmt: skip
        import torch

        with torch.no_grad():  # the branch adds exactly 0: the add is the identity on its other input
            for p in self.model.get_submodule(branch.name).parameters():
                p.zero_()
        return old[0]

    # --- blocks both have ---------------------------------------------------------------------------------------
    def _check(self, pr: Prim, pp: Prim) -> None:
        from .nn.morph import MorphError

        if type(pr.block) is not type(pp.block):
            raise MorphError(f"{pr.name} is a {type(pr.block).__name__} in the child, {type(pp.block).__name__} in the "
                             "parent")  # fmt: skip
        same = {k: v for k, v in pr.p.items() if k not in ("out", "k", "extra")}
        if same != {k: v for k, v in pp.p.items() if k not in ("out", "k", "extra")}:
            raise MorphError(f"{pr.name}: settings other than width and kernel differ ({same})")
        for a, b in zip(pr.in_shapes, pp.in_shapes, strict=True):
            if len(a) != len(b) or (len(a) == 3 and a[1:] != b[1:]):
                raise MorphError(f"{pr.name}: input size {a} differs from the parent's {b} beyond the channels")
        if len(pr.out_shape) == 3 and pr.out_shape[1:] != pp.out_shape[1:]:
            raise MorphError(f"{pr.name}: output size {pr.out_shape} differs from the parent's {pp.out_shape}")

    def _copy(self, i: int, pr: Prim, pp: Prim, ins: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
        from .nn.morph import MorphError

        block = pr.block
        if isinstance(block, Sum):
            if any(not np.array_equal(m[0], ins[0][0]) for m in ins[1:]):
                raise MorphError(f"{pr.name}: the residual's inputs were widened differently")
            return ins[0]
        if isinstance(block, _CHANNELWISE):
            return ins[0]
        if isinstance(block, Flatten):
            g, n = ins[0]
            hw = int(np.prod(pr.in_shapes[0][1:], dtype=np.int64))
            return (g[:, None] * hw + np.arange(hw)).reshape(-1), n * hw
        if isinstance(block, BN):
            self._load(pr.name, {k: self._rows(v, ins[0][0]) for k, v in self._params(pr.name).items()})
            return ins[0]
        if isinstance(block, Conv | Linear):
            return self._weighted(i, pr, pp, ins[0])
        raise MorphError(f"{pr.name}: no Net2Net rule for a {type(block).__name__} block")

    def _weighted(self, i: int, pr: Prim, pp: Prim, inp: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
        from .nn.morph import pad_kernel, widen_in, widen_out

        g_in, n_in = inp
        w = self._params(pr.name)["weight"]
        depthwise = isinstance(pr.block, Conv) and pr.p["groups"] == "dw"
        rng = np.random.default_rng([self.seed, i, 1])
        if depthwise:  # each channel sees only itself: copy, no division
            g_out, n_out = g_in, n_in
            w = widen_out(w, g_out)
        else:
            n_out, q = pp.out_shape[0 if len(pp.out_shape) == 3 else -1], pr.out_shape[0 if len(pr.out_shape) == 3
                                                                                       else -1]  # fmt: skip
            g_out = self.mapping(n_out, q)
            w = widen_in(widen_out(w, g_out, self.noise, rng, n_out), g_in, n_in)
        new = {"weight": pad_kernel(w, int(pr.p["k"])) if isinstance(pr.block, Conv) else w}
        if "bias" in self._params(pr.name):
            new["bias"] = widen_out(self._params(pr.name)["bias"], g_out)
        self._load(pr.name, new)
        return g_out, n_out

    # --- state ------------------------------------------------------------------------------------------------
    def _params(self, name: str) -> dict[str, Any]:
        pre = name + "."
        return {k[len(pre):]: v for k, v in self.state.items() if k.startswith(pre) and "." not in k[len(pre):]}

    @staticmethod
    def _rows(v, g: np.ndarray):
        from .nn.morph import widen_out

        return widen_out(v, g) if v.dim() else v.clone()

    def _load(self, name: str, tensors: Mapping[str, Any]) -> None:
        from .nn.morph import MorphError

        m = self.model.get_submodule(name)
        try:
            m.load_state_dict(dict(tensors), strict=True)
        except RuntimeError as e:
            why = str(e).splitlines()[-1].strip()[:120]
            raise MorphError(f"{name}: the parent's weights do not fit ({why})") from e
