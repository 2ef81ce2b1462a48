"""The NAS chapter's cell-level space.

A cell has two inputs and L hidden layers. Each hidden layer picks two inputs, each one of two candidates (the two
most recent states), applies one of M ops to each, and merges them with one of N combine ops, so the space holds
(2·2·M·M·N)^L = 4^L·M^(2L)·N^L cells (3.2×10^11 for M=5, N=2, L=5).

The network around the cell: a 3×3 stem conv (C channels) whose output feeds both cell inputs, the cell, global
average pooling and a linear classifier. Every conv op is Conv-BN-ReLU with 'same' padding, so all states keep shape
(C, H, W); ``concat`` joins two states and projects back to C channels with a 1×1 conv and BN.

Module names: ``stem.{0,1,2}``; for hidden layer i, ``l{i}.a`` and ``l{i}.b`` (the two ops, choices of ``l{i}_op_a`` and
``l{i}_op_b`` reading the state that ``l{i}_in_a`` / ``l{i}_in_b`` picks; a conv op is ``.0`` conv, ``.1`` BN, ``.2``
ReLU) and ``l{i}.comb`` (the combine op; concat is ``.0`` concat, ``.1`` 1×1 conv, ``.2`` BN); then ``gap``,
``flatten``, ``head``. The cell's graph is the blueprint's, so the hypernetwork reads cells like every other family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..blueprint import (
    BN,
    Act,
    Block,
    Blueprint,
    Concat,
    Conv,
    Flatten,
    GlobalPool,
    Identity,
    Linear,
    Mul,
    P,
    Pool,
    Sum,
)
from ..errors import SpaceError
from ..space import Space
from .base import MNIST_TASK, Family, Task, register_family

ALL_OPS = ("identity", "conv3x3", "conv5x5", "dwconv3x3", "maxpool3x3", "conv1x1", "avgpool3x3", "dwconv5x5")
ALL_COMBINES = ("add", "concat", "mul")


def _op(op: str, c: int) -> Block | list[Block]:
    """The blocks of one cell op on C channels (every conv op keeps the shape: 'same' padding, stride 1)."""
    if op == "identity":
        return Identity()
    if op.startswith("conv"):
        return [Conv(c, int(op[4])), BN(), Act("relu")]
    if op.startswith("dwconv"):  # depthwise-separable: depthwise k×k, pointwise 1×1
        return [Conv(None, int(op[6]), groups="dw"), Conv(c, 1), BN(), Act("relu")]
    if op == "maxpool3x3":
        return Pool("max", 3, 1, 1)
    if op == "avgpool3x3":
        return Pool("avg", 3, 1, 1, count_include_pad=False)
    raise SpaceError(f"unknown cell op {op!r}; known: {', '.join(ALL_OPS)}")


def _combine(comb: str, c: int) -> Block | list[Block]:
    if comb == "add":
        return Sum()
    if comb == "mul":
        return Mul()
    if comb == "concat":
        return [Concat(), Conv(c, 1), BN()]
    raise SpaceError(f"unknown combine op {comb!r}; known: {', '.join(ALL_COMBINES)}")


@register_family("cell")
class Cell(Family):
    """Cell-level space with M ops, N combine ops and L hidden layers (defaults: the chapter's 5, 2, 5)."""

    default_task = MNIST_TASK

    def __init__(
        self,
        M: int = 5,
        N: int = 2,
        L: int = 5,
        C: int = 16,
        ops: Sequence[str] | None = None,
        combines: Sequence[str] | None = None,
    ) -> None:
        self.M, self.N, self.L, self.C = M, N, L, C
        self.ops = tuple(ops) if ops is not None else None
        self.combines = tuple(combines) if combines is not None else None
        self._space: Space | None = None

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"C": 4, "L": 3, "M": 5, "N": 2}

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"M": self.M, "N": self.N, "L": self.L, "C": self.C}
        if self.ops is not None:
            cfg["ops"] = list(self.ops)
        if self.combines is not None:
            cfg["combines"] = list(self.combines)
        return cfg

    @property
    def op_names(self) -> tuple[str, ...]:
        ops = self.ops if self.ops is not None else ALL_OPS[: self.M]
        bad = [o for o in ops if o not in ALL_OPS]
        if bad or len(ops) != self.M or self.M < 1:
            raise SpaceError(f"cell family: need M={self.M} ops out of {', '.join(ALL_OPS)}, got {list(ops)}")
        return ops

    @property
    def combine_names(self) -> tuple[str, ...]:
        cs = self.combines if self.combines is not None else ALL_COMBINES[: self.N]
        bad = [o for o in cs if o not in ALL_COMBINES]
        if bad or len(cs) != self.N or self.N < 1:
            raise SpaceError(f"cell family: need N={self.N} combine ops out of {', '.join(ALL_COMBINES)}, got {cs}")
        return cs

    @property
    def space(self) -> Space:
        if self._space is None:
            if self.L < 1 or self.C < 1:
                raise SpaceError(f"cell family: L and C must be positive, got L={self.L}, C={self.C}")
            dims: dict[str, Any] = {}
            for i in range(self.L):
                dims[f"l{i}_in_a"] = (0, 1)
                dims[f"l{i}_op_a"] = self.op_names
                dims[f"l{i}_in_b"] = (0, 1)
                dims[f"l{i}_op_b"] = self.op_names
                dims[f"l{i}_comb"] = self.combine_names
            self._space = self.make_space(dims)
        return self._space

    def describe(self, arch: Mapping[str, Any]) -> str:
        parts = []
        for i in range(self.L):
            a = arch
            parts.append(
                f"{a[f'l{i}_comb']}({a[f'l{i}_op_a']}@{a[f'l{i}_in_a']},{a[f'l{i}_op_b']}@{a[f'l{i}_in_b']})"
            )
        return " ".join(parts)

    def blueprint(self, task: Task) -> Blueprint:
        if not task.is_image:
            raise SpaceError(f"the cell family needs image inputs (C, H, W), got input shape {task.input_shape}")
        c = self.C
        bp = Blueprint(task.input_shape)
        stem = bp.seq("stem", [Conv(c, 3), BN(), Act("relu")])
        states = [stem, stem]  # both cell inputs are the stem's output
        for i in range(self.L):
            cands = (states[-2], states[-1])
            branches = []
            for b in ("a", "b"):
                pick = P(lambda v, cands=cands: cands[v], f"l{i}_in_{b}")  # which of the two newest states
                ops = {op: _op(op, c) for op in self.op_names}
                branches.append(bp.choice(f"l{i}.{b}", f"l{i}_op_{b}", ops, inputs=pick))
            combs = {cb: _combine(cb, c) for cb in self.combine_names}
            states.append(bp.choice(f"l{i}.comb", f"l{i}_comb", combs, inputs=branches))
        bp.add("gap", GlobalPool())
        bp.add("flatten", Flatten())
        bp.add("head", Linear(task.num_classes))
        return bp
