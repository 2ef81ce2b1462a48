"""The NAS-Bench-201 family (Dong & Yang, 2020): a 4-node cell, 6 edges × 5 ops = 15,625 cells.

Cell: node 0 is the cell input; node i (1..3) is the sum of op_{j→i}(node j) over all j < i; node 3 is the output.
Ops: ``none`` (zeros), ``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU-Conv-BN), and
``avg_pool_3x3`` (stride 1, padding 1, padding not counted). A dimension ``e{i}_{j}`` holds the op of edge j→i; the
dimensions are in the order of the standard string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

Network (the paper's Fig. 1, as its reference code builds it): 3×3 conv stem with C channels + BN; three stages of N
cells at C, 2C, 4C channels, joined by residual reduction blocks (ReLU-Conv3x3 stride 2-BN, ReLU-Conv3x3-BN, plus a
shortcut of 2×2 average pooling and a 1×1 conv); BN-ReLU; global average pooling; linear classifier. The benchmark's
settings are N=5, C=16 on 3×32×32 inputs; ``N`` and ``C`` are configurable so that tests can build tiny networks.
Every edge op runs, even one whose result cannot reach the output, as in the reference code, so params and MACs
count it.

Module names, as the reference code's: ``stem.0`` (conv), ``stem.1`` (BN); ``cells.{k}.edges.{e}`` (the op of edge e, a
choice: ``.0``/``.1``/``.2`` for ReLU-Conv-BN), ``cells.{k}.node{i}`` (the sum into node i); reductions
``cells.{k}.conv_a.*``, ``.conv_b.*``, ``.shortcut.0`` (2×2 average pooling), ``.shortcut.1`` (1×1 conv), ``.add``;
``lastact.0`` (BN), ``lastact.1`` (ReLU), ``gap``, ``flatten``, ``classifier``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..blueprint import BN, Act, Blueprint, Conv, Flatten, GlobalPool, Identity, Linear, Pool, Sum, Zero
from ..blueprint.macros import relu_conv_bn
from ..errors import SpaceError
from ..space import Arch, Space
from .base import CIFAR10_TASK, Family, Task, register_family

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (i, j): edge from node j into node i, string order
DIMS = tuple(f"e{i}_{j}" for i, j in EDGES)

_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def to_string(arch: Mapping[str, Any]) -> str:
    """The standard NAS-Bench-201 string of a cell, e.g. ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|``."""
    a = [arch[d] for d in DIMS]
    return f"|{a[0]}~0|+|{a[1]}~0|{a[2]}~1|+|{a[3]}~0|{a[4]}~1|{a[5]}~2|"


def from_string(text: str) -> Arch:
    """Parse a standard NAS-Bench-201 string into an ``Arch`` of the ``nb201`` space; ``SpaceError`` if malformed."""

    def bad(why: str) -> SpaceError:
        return SpaceError(f"malformed NAS-Bench-201 cell string {text!r}: {why}; expected the form {_EXAMPLE}")

    if not isinstance(text, str):
        raise SpaceError(f"a NAS-Bench-201 cell string must be a str, got {type(text).__name__}")
    groups = text.strip().split("+")
    if len(groups) != 3:
        raise bad(f"{len(groups)} node groups separated by '+', need 3")
    values: dict[str, str] = {}
    for i, group in enumerate(groups, 1):
        if not (group.startswith("|") and group.endswith("|") and len(group) > 2):
            raise bad(f"group {i} must start and end with '|'")
        items = group[1:-1].split("|")
        if len(items) != i:
            raise bad(f"node {i} needs {i} incoming edges, found {len(items)}")
        for item in items:
            op, sep, src = item.partition("~")
            if not sep or not src.isdigit():
                raise bad(f"edge {item!r} is not of the form op~input")
            if op not in OPS:
                raise bad(f"unknown op {op!r} (known: {', '.join(OPS)})")
            j = int(src)
            name = f"e{i}_{j}"
            if j >= i or name in values:
                raise bad(f"node {i} must take each of the inputs 0..{i - 1} exactly once")
            values[name] = op
    return Arch({d: values[d] for d in DIMS})


@register_family("nb201")
class NB201(Family):
    """The NAS-Bench-201 cell space with its full network (N cells per stage, C stem channels)."""

    default_task = CIFAR10_TASK

    def __init__(self, N: int = 5, C: int = 16) -> None:
        self.N, self.C = N, C
        self._space: Space | None = None

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"N": 1, "C": 4}

    def config(self) -> dict[str, Any]:
        return {} if (self.N, self.C) == (5, 16) else {"N": self.N, "C": self.C}

    @property
    def space(self) -> Space:
        if self._space is None:
            if self.N < 1 or self.C < 1:
                raise SpaceError(f"nb201 family: N and C must be positive, got N={self.N}, C={self.C}")
            self._space = self.make_space({d: OPS for d in DIMS})
        return self._space

    def arch(self, values: Mapping[str, Any] | str) -> Arch:
        """An arch from a mapping of edge ops or from the standard string."""
        return from_string(values) if isinstance(values, str) else self.space.validate(values)

    @classmethod
    def from_string(cls, text: str) -> Arch:
        return from_string(text)

    def describe(self, arch: Mapping[str, Any]) -> str:
        return to_string(arch)

    def blueprint(self, task: Task) -> Blueprint:
        if not task.is_image:
            raise SpaceError(f"nb201 needs image inputs (C, H, W), got input shape {task.input_shape}")
        _, h, w = task.input_shape
        # two stride-2 reductions whose conv branch rounds up and whose pooling shortcut rounds down must agree
        if h % 4 or w % 4:
            raise SpaceError(f"nb201 needs an input height and width divisible by 4 (two reductions), got {h}×{w}")
        c = self.C
        bp = Blueprint(task.input_shape)
        bp.seq("stem", [Conv(c, 3), BN()])
        k = 0
        for stage in range(3):
            if stage:
                _reduction(bp, f"cells.{k}", c * 2**stage)
                k += 1
            for _ in range(self.N):
                _cell(bp, f"cells.{k}", c * 2**stage)
                k += 1
        bp.seq("lastact", [BN(), Act("relu")])
        bp.add("gap", GlobalPool())
        bp.add("flatten", Flatten())
        bp.add("classifier", Linear(task.num_classes))
        return bp


def _edge_ops(c: int) -> dict[str, Any]:
    return {
        "none": Zero(),
        "skip_connect": Identity(),
        "nor_conv_1x1": [Act("relu"), Conv(c, 1), BN()],
        "nor_conv_3x3": [Act("relu"), Conv(c, 3), BN()],
        "avg_pool_3x3": Pool("avg", 3, 1, 1, count_include_pad=False),
    }


def _cell(bp: Blueprint, name: str, c: int) -> str:
    """Node i = Σ_{j<i} op_{j→i}(node j); returns node 3. Each edge is a choice of its dimension."""
    nodes = [bp.nodes[-1].name]
    for i in (1, 2, 3):
        outs = [bp.choice(f"{name}.edges.{e}", DIMS[e], _edge_ops(c), inputs=nodes[j])
                for e, (ii, j) in enumerate(EDGES) if ii == i]  # fmt: skip
        nodes.append(bp.add(f"{name}.node{i}", Sum(), outs))
    return nodes[3]


def _reduction(bp: Blueprint, name: str, c_out: int) -> str:
    """NAS-Bench-201's ``ResNetBasicblock`` with stride 2 (modules ``conv_a``, ``conv_b``, ``shortcut``)."""
    x = bp.nodes[-1].name
    relu_conv_bn(bp, f"{name}.conv_a", c_out, 3, 2, inputs=x)
    b = relu_conv_bn(bp, f"{name}.conv_b", c_out, 3, 1)
    sc = bp.seq(f"{name}.shortcut", [Pool("avg", 2, 2), Conv(c_out, 1)], inputs=x)
    return bp.add(f"{name}.add", Sum(), [b, sc])
