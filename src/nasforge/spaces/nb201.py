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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..cost.layers import LayerSpec
from ..errors import SpaceError
from ..graph import OpGraph
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

    def __init__(self, N: int = 5, C: int = 16) -> None:
        self.N, self.C = N, C
        self._space: Space | None = None

    def config(self) -> dict[str, Any]:
        return {} if (self.N, self.C) == (5, 16) else {"N": self.N, "C": self.C}

    @property
    def space(self) -> Space:
        if self._space is None:
            if self.N < 1 or self.C < 1:
                raise SpaceError(f"nb201 family: N and C must be positive, got N={self.N}, C={self.C}")
            self._space = Space({d: OPS for d in DIMS})
        return self._space

    def arch(self, values: Mapping[str, Any] | str) -> Arch:
        """An arch from a mapping of edge ops or from the standard string."""
        return from_string(values) if isinstance(values, str) else self.space.validate(values)

    @classmethod
    def from_string(cls, text: str) -> Arch:
        return from_string(text)

    def describe(self, arch: Mapping[str, Any]) -> str:
        return to_string(arch)

    # --- analytic views -----------------------------------------------------------------------------------------
    def layers(self, arch: Mapping[str, Any], task: Task = CIFAR10_TASK) -> list[LayerSpec]:
        return _walk(self, self.space.validate(arch), task).layers

    def graph(self, arch: Mapping[str, Any], task: Task = CIFAR10_TASK) -> OpGraph:
        """The op DAG of the whole network; node names are the built module's qualified module names."""
        return _walk(self, self.space.validate(arch), task).graph

    def build(self, arch: Mapping[str, Any], task: Task = CIFAR10_TASK) -> nn.Module:
        a = self.space.validate(arch)
        _check_task(task)
        return NB201Net(a, task, N=self.N, C=self.C)


def _check_task(task: Task) -> tuple[int, int, int]:
    if len(task.input_shape) != 3:
        raise SpaceError(f"nb201 needs image inputs (C, H, W), got input shape {task.input_shape}")
    c, h, w = task.input_shape
    # two stride-2 reductions whose conv branch rounds up and whose pooling shortcut rounds down must agree
    if h % 4 or w % 4 or h < 4 or w < 4:
        raise SpaceError(f"nb201 needs an input height and width divisible by 4 (two reductions), got {h}×{w}")
    return c, h, w


class _Walk:
    """Builds the layer list and the op graph together, in execution order, so that the two always agree."""

    def __init__(self) -> None:
        self.layers: list[LayerSpec] = []
        self.graph = OpGraph()

    def node(self, name, op, inputs, out_shape, *, weight=None, spec: LayerSpec | None = None, **attrs) -> int:
        if spec is not None:
            self.layers.append(spec)
        return self.graph.add_node(name, op, out_shape, weight, inputs, **attrs)

    def shape(self, i: int) -> tuple[int, ...]:
        return self.graph.nodes[i].shape

    def relu_conv_bn(self, name: str, x: int, c_out: int, k: int, stride: int, live: int, first: int = 0) -> int:
        """ReLU-Conv-BN (NAS-Bench-201's ``ReLUConvBN``) as modules ``name.{first}``, ``.{first+1}``, ``.{first+2}``."""
        s = self.shape(x)
        h, w = (s[1] + 2 * (k // 2) - k) // stride + 1, (s[2] + 2 * (k // 2) - k) // stride + 1
        o = (c_out, h, w)
        n0, n1, n2 = (f"{name}.{first + t}" for t in range(3))
        r = self.node(n0, "relu", [x], s, spec=LayerSpec("act", s, s, name=n0, live=live))
        spec = LayerSpec("conv", s, o, (k, k), stride, name=n1, live=live)
        cv = self.node(n1, "conv", [r], o, weight=(c_out, s[0], k, k), spec=spec, kernel=k, stride=stride)
        return self.node(n2, "bn", [cv], o, weight=(c_out,), spec=LayerSpec("bn", o, o, name=n2, live=live))


def _walk(fam: NB201, arch: Arch, task: Task) -> _Walk:
    cin, h, w = _check_task(task)
    W = _Walk()
    c = fam.C
    x = W.node("input", "input", [], (cin, h, w))
    s = (c, h, w)
    x = W.node(
        "stem.0",
        "conv",
        [x],
        s,
        weight=(c, cin, 3, 3),
        kernel=3,
        stride=1,
        spec=LayerSpec("conv", (cin, h, w), s, (3, 3), name="stem.0"),
    )
    x = W.node("stem.1", "bn", [x], s, weight=(c,), spec=LayerSpec("bn", s, s, name="stem.1"))
    k = 0
    for stage in range(3):
        if stage:
            x = _reduction(W, f"cells.{k}", x, c * 2**stage)
            k += 1
        for _ in range(fam.N):
            x = _cell(W, f"cells.{k}", x, arch)
            k += 1
    s = W.shape(x)
    x = W.node("lastact.0", "bn", [x], s, weight=(s[0],), spec=LayerSpec("bn", s, s, name="lastact.0"))
    x = W.node("lastact.1", "relu", [x], s, spec=LayerSpec("act", s, s, name="lastact.1"))
    g = (s[0], 1, 1)
    x = W.node("gap", "pool", [x], g, kernel=s[1], spec=LayerSpec("pool", s, g, (s[1], s[2]), name="gap"))
    W.layers.append(LayerSpec("reshape", g, (s[0],), name="flatten"))
    o = (task.num_classes,)
    W.node(
        "classifier",
        "linear",
        [x],
        o,
        weight=(task.num_classes, s[0]),
        spec=LayerSpec("linear", (s[0],), o, bias=True, name="classifier"),
    )
    return W


def _cell(W: _Walk, name: str, x: int, arch: Arch) -> int:
    s = W.shape(x)
    n = s[0] * s[1] * s[2]
    nodes = [x]
    for i in (1, 2, 3):
        outs = []
        for e, (ii, j) in enumerate(EDGES):
            if ii != i:
                continue
            # while node i is computed, nodes 0..i-1 wait for later edges and the partial sum of node i is held
            live = i * n + (n if outs else 0)
            en, op = f"{name}.edges.{e}", arch[DIMS[e]]
            src = nodes[j]
            if op == "none":
                outs.append(W.node(en, "zero", [src], s, spec=LayerSpec("zero", s, s, name=en, live=live)))
            elif op == "skip_connect":
                outs.append(W.node(en, "identity", [src], s))
            elif op.startswith("nor_conv_"):
                outs.append(W.relu_conv_bn(en, src, s[0], int(op[-1]), 1, live))
            else:
                spec = LayerSpec("pool", s, s, (3, 3), name=en, live=live)
                outs.append(W.node(en, "avg_pool", [src], s, spec=spec, kernel=3, stride=1))
        m = len(outs)
        spec = LayerSpec("add", (m * s[0], s[1], s[2]), s, name=f"{name}.node{i}", live=(i - 1) * n)
        nodes.append(W.node(f"{name}.node{i}", "sum", outs, s, spec=spec))
    return nodes[3]


def _reduction(W: _Walk, name: str, x: int, c_out: int) -> int:
    """NAS-Bench-201's ``ResNetBasicblock`` with stride 2 (modules ``conv_a``, ``conv_b``, ``shortcut``)."""
    s = W.shape(x)
    n_in = s[0] * s[1] * s[2]
    a = W.relu_conv_bn(f"{name}.conv_a", x, c_out, 3, 2, live=n_in)
    b = W.relu_conv_bn(f"{name}.conv_b", a, c_out, 3, 1, live=n_in)
    o = W.shape(b)
    p = (s[0], s[1] // 2, s[2] // 2)
    n_b = o[0] * o[1] * o[2]
    sc = W.node(
        f"{name}.shortcut.0",
        "avg_pool",
        [x],
        p,
        kernel=2,
        stride=2,
        spec=LayerSpec("pool", s, p, (2, 2), 2, name=f"{name}.shortcut.0", live=n_b),
    )
    sc = W.node(
        f"{name}.shortcut.1",
        "conv",
        [sc],
        o,
        weight=(c_out, s[0], 1, 1),
        kernel=1,
        stride=1,
        spec=LayerSpec("conv", p, o, (1, 1), name=f"{name}.shortcut.1", live=n_b),
    )
    spec = LayerSpec("add", (2 * o[0], o[1], o[2]), o, name=f"{name}.add")
    return W.node(f"{name}.add", "sum", [b, sc], o, spec=spec)


# --- torch modules ------------------------------------------------------------------------------------------------
class Zero(nn.Module):
    """The ``none`` op: an all-zero tensor of the input's shape (it cuts the edge but keeps the sum well defined)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _relu_conv_bn(c_in: int, c_out: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out))


def _op(op: str, c: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op.startswith("nor_conv_"):
        return _relu_conv_bn(c, c, int(op[-1]), 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise SpaceError(f"unknown NAS-Bench-201 op {op!r}; known: {', '.join(OPS)}")


class NB201Cell(nn.Module):
    """Node i = Σ_{j<i} op_{j→i}(node j); returns node 3."""

    def __init__(self, arch: Mapping[str, Any], c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_op(arch[d], c) for d in DIMS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in (1, 2, 3):
            nodes.append(sum(self.edges[e](nodes[j]) for e, (ii, j) in enumerate(EDGES) if ii == i))
        return nodes[3]


class ResidualReduction(nn.Module):
    """Stride-2 residual block between stages: conv branch plus average-pool/1×1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = _relu_conv_bn(c_in, c_out, 3, 2)
        self.conv_b = _relu_conv_bn(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Net(nn.Module):
    """Stem, 3 stages of N cells joined by reductions, BN-ReLU, global average pooling, linear classifier."""

    def __init__(self, arch: Mapping[str, Any], task: Task, N: int = 5, C: int = 16) -> None:
        super().__init__()
        self.arch_string = to_string(arch)
        self.stem = nn.Sequential(nn.Conv2d(task.input_shape[0], C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage:
                cells.append(ResidualReduction(c, 2 * c))
                c *= 2
            cells += [NB201Cell(arch, c) for _ in range(N)]
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(self.gap(self.lastact(x)).flatten(1))
