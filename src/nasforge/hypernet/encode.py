"""An ``OpGraph`` as the tensors a graph hypernetwork reads: op tokens, shape features and propagation schedules.

Torch enters only in ``to_tensors``; the rest is plain data so that a graph's code can be cached and compared.

Op tokens follow GHN-2 (Knyazev et al., 2021, Sec. 3): primitive ops, with convolutions split by how they are grouped
(dense, depthwise, grouped), since those are different primitives with different weight statistics. The kernel size
and stride are not separate tokens but part of the shape encoding.

The propagation schedule is by *levels*: a node's forward level is the length of the longest path from a source to
it, its backward level that of the longest path from it to a sink. Updating all nodes of one level at once gives
exactly the sequential GHN-1 update in topological order (Zhang et al., 2019, Eq. 3): no node depends on another of
its own level, and every predecessor (successor) has been updated before. The schedule depends only on the graph's
structure, never on node ids, so a renumbered graph gets the same embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import NasforgeError
from ..graph import OpGraph

OPS = ("input", "conv", "dwconv", "group_conv", "bn", "relu", "avg_pool", "max_pool", "sum", "concat", "identity",
       "zero", "global_avg_pool", "flatten", "linear", "other")  # fmt: skip
OP_INDEX = {op: i for i, op in enumerate(OPS)}
N_SHAPE = 8  # length of a node's shape encoding (``shape_features``)

# what a weighted op's tensor is: conv (O, I, kh, kw), linear (O, I), bn (C,) kept at identity (see model.py)
WEIGHT_KINDS = ("conv", "linear", "bn")


@dataclass(frozen=True)
class Weighted:
    """A node whose module has a weight: its id, module name, kind (``WEIGHT_KINDS``) and weight shape."""

    node: int
    name: str
    kind: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class GraphCode:
    """What the GHN reads of a graph. ``fwd``/``bwd``: per level, (nodes updated, message sources, index into the
    level's nodes of each message's target), forward levels from sources, backward levels from sinks."""

    ops: tuple[int, ...]
    shapes: tuple[tuple[float, ...], ...]
    fwd: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    bwd: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    weighted: tuple[Weighted, ...]

    def __len__(self) -> int:
        return len(self.ops)


def op_token(g: OpGraph, i: int) -> str:
    """The GHN op token of node ``i`` (``other`` for an op the GHN has no embedding for)."""
    n = g.nodes[i]
    if n.op == "conv" and n.weight is not None:
        preds = g.predecessors(i)
        c_in = g.nodes[preds[0]].shape[0] if preds else n.weight[1]
        if n.weight[1] != c_in:
            return "dwconv" if n.weight[1] == 1 else "group_conv"
    return n.op if n.op in OP_INDEX else "other"


def shape_features(g: OpGraph, i: int) -> tuple[float, ...]:
    """GHN-2's shape encoding, as numbers: log2 of the output channels and spatial size, of the weight's output and
    input sizes, the kernel height and width, the stride, and whether the node has a weight; each roughly in [0, 1]."""
    n = g.nodes[i]
    attrs = dict(n.attrs)
    c = n.shape[0] if n.shape else 1
    hw = n.shape[1] if len(n.shape) > 1 else 1
    w = n.weight or ()
    o = w[0] if len(w) > 0 else 0
    ci = w[1] if len(w) > 1 else 0
    kh = w[2] if len(w) > 2 else (1 if len(w) == 2 else 0)
    kw = w[3] if len(w) > 3 else kh
    if not w:
        kh = kw = int(attrs.get("kernel", 0))
    lg = math.log2
    return (lg(c + 1) / 10, lg(hw + 1) / 10, lg(o + 1) / 10, lg(ci + 1) / 10, kh / 7, kw / 7,
            float(attrs.get("stride", 1)) / 2, float(n.weight is not None))  # fmt: skip


def _levels(n: int, order: list[int], before) -> list[int]:
    level = [0] * n
    for i in order:
        level[i] = max((level[j] + 1 for j in before(i)), default=0)
    return level


def _schedule(n: int, order: list[int], before) -> tuple:
    level = _levels(n, order, before)
    out = []
    for lv in range(1, max(level, default=0) + 1):
        nodes = tuple(i for i in order if level[i] == lv)
        pos = {v: k for k, v in enumerate(nodes)}
        src, dst = [], []
        for v in nodes:
            for u in sorted(before(v), key=order.index):
                src.append(u)
                dst.append(pos[v])
        out.append((nodes, tuple(src), tuple(dst)))
    return tuple(out)


def weight_kind(g: OpGraph, i: int) -> str:
    n = g.nodes[i]
    kind = {"conv": "conv", "linear": "linear", "bn": "bn"}.get(n.op)
    ok = {"conv": 4, "linear": 2, "bn": 1}
    if kind is None or n.weight is None or len(n.weight) != ok[kind]:
        raise NasforgeError(f"the graph hypernetwork cannot predict the weight {n.weight} of node {n.name!r} (op "
                            f"{n.op!r}); it predicts conv, linear and batch-norm weights")  # fmt: skip
    return kind


def encode_graph(g: OpGraph) -> GraphCode:
    """The ``GraphCode`` of ``g`` (``NasforgeError`` for a cycle or a weight the GHN cannot predict)."""
    order = g.topological_order()
    n = len(g)
    ops = tuple(OP_INDEX[op_token(g, i)] for i in range(n))
    shapes = tuple(shape_features(g, i) for i in range(n))
    fwd = _schedule(n, order, g.predecessors)
    bwd = _schedule(n, order[::-1], g.successors)
    weighted = tuple(Weighted(i, g.nodes[i].name, weight_kind(g, i), tuple(g.nodes[i].weight))  # type: ignore[arg-type]
                     for i in order if g.nodes[i].weight is not None)  # fmt: skip
    return GraphCode(ops, shapes, fwd, bwd, weighted)


def to_tensors(code: GraphCode, device=None) -> dict:
    """The code's tensors: ``ops`` (n,), ``shapes`` (n, N_SHAPE), and per level (nodes, src, dst) index tensors."""
    import torch

    def t(x):
        return torch.tensor(x, dtype=torch.long, device=device)

    return {
        "ops": t(code.ops),
        "shapes": torch.tensor(code.shapes, dtype=torch.float32, device=device),
        "fwd": [(t(a), t(b), t(c)) for a, b, c in code.fwd],
        "bwd": [(t(a), t(b), t(c)) for a, b, c in code.bwd],
    }
