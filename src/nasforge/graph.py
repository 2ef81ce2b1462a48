"""``OpGraph``: an architecture as a DAG of op nodes, torch-free.

The graph hypernetwork (GHN, Zhang et al., 2019; GHN-2, Knyazev et al., 2021) reads an architecture as a DAG whose
nodes are primitive ops (conv, bn, relu, pool, sum, ...) with their shapes, and propagates messages along the edges
in topological order, forward then backward. Families that expose ``graph(arch)`` return one of these.

Conventions: a node's ``name`` is the qualified name of the module that runs it in the built network (so that a
weight predicted for a node can be put into ``model.get_submodule(name)``); ``shape`` is its output activation shape
without the batch dimension; ``weight`` is the shape of its weight tensor, or ``None`` for parameter-free ops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import NasforgeError


@dataclass(frozen=True)
class Node:
    """One op. ``attrs`` holds hashable extra facts (kernel, stride) as sorted (key, value) pairs."""

    name: str
    op: str
    shape: tuple[int, ...]
    weight: tuple[int, ...] | None = None
    attrs: tuple[tuple[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "op": self.op, "shape": list(self.shape)}
        if self.weight is not None:
            d["weight"] = list(self.weight)
        if self.attrs:
            d["attrs"] = dict(self.attrs)
        return d


class OpGraph:
    """A directed acyclic graph of ``Node``s, built by ``add_node`` / ``add_edge``.

    Contract: node ids are the integers ``0..len-1`` in insertion order; edges run from a node to a later use of its
    output and never form a cycle (``topological_order`` raises ``NasforgeError`` if they do); parallel edges are
    ignored. Insertion order is a valid topological order when a family adds nodes in execution order, which every
    family does, but consumers should call ``topological_order``.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._succ: list[list[int]] = []
        self._pred: list[list[int]] = []
        self._names: dict[str, int] = {}

    # --- building -----------------------------------------------------------------------------------------------
    def add_node(
        self,
        name: str,
        op: str,
        shape: tuple[int, ...],
        weight: tuple[int, ...] | None = None,
        inputs: tuple[int, ...] | list[int] = (),
        **attrs: Any,
    ) -> int:
        """Add a node fed by the nodes ``inputs``; returns its id. Names must be unique."""
        if name in self._names:
            raise NasforgeError(f"graph node name {name!r} is used twice; node names must be unique")
        i = len(self.nodes)
        w = None if weight is None else tuple(weight)
        self.nodes.append(Node(name, op, tuple(shape), w, tuple(sorted(attrs.items()))))
        self._succ.append([])
        self._pred.append([])
        self._names[name] = i
        for j in inputs:
            self.add_edge(j, i)
        return i

    def add_edge(self, src: int, dst: int) -> None:
        n = len(self.nodes)
        if not (0 <= src < n and 0 <= dst < n) or src == dst:
            raise NasforgeError(f"graph edge {src}->{dst} does not join two different existing nodes (0..{n - 1})")
        if dst not in self._succ[src]:
            self._succ[src].append(dst)
            self._pred[dst].append(src)

    # --- reading ------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __repr__(self) -> str:
        return f"OpGraph({len(self.nodes)} nodes, {len(self.edges)} edges)"

    @property
    def edges(self) -> list[tuple[int, int]]:
        return [(i, j) for i, succ in enumerate(self._succ) for j in succ]

    def id(self, name: str) -> int:
        try:
            return self._names[name]
        except KeyError:
            raise NasforgeError(f"graph has no node named {name!r}") from None

    def predecessors(self, i: int) -> list[int]:
        return list(self._pred[i])

    def successors(self, i: int) -> list[int]:
        return list(self._succ[i])

    @property
    def sources(self) -> list[int]:
        return [i for i, p in enumerate(self._pred) if not p]

    @property
    def sinks(self) -> list[int]:
        return [i for i, s in enumerate(self._succ) if not s]

    def ops(self) -> list[str]:
        return [n.op for n in self.nodes]

    def topological_order(self) -> list[int]:
        """Kahn's algorithm, taking the smallest ready id first, so the order is deterministic."""
        import heapq

        indeg = [len(p) for p in self._pred]
        ready = [i for i, d in enumerate(indeg) if d == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for j in self._succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) != len(self.nodes):
            raise NasforgeError("graph has a cycle; an architecture graph must be acyclic")
        return order

    def adjacency(self) -> list[list[int]]:
        """Dense 0/1 adjacency matrix as nested lists (``A[i][j] == 1`` for an edge i -> j); numpy-free."""
        n = len(self.nodes)
        a = [[0] * n for _ in range(n)]
        for i, j in self.edges:
            a[i][j] = 1
        return a

    # --- transforming -------------------------------------------------------------------------------------------
    def contract(self, *ops: str) -> OpGraph:
        """A copy without the nodes whose op is in ``ops``, each one's predecessors joined to its successors.

        GHN-2 does this for identity (skip) ops, which carry no weights and only route a tensor.
        """
        self.topological_order()  # raises on a cycle, which would make the recursion below endless
        keep = [i for i, n in enumerate(self.nodes) if n.op not in ops]
        new_id = {old: k for k, old in enumerate(keep)}

        def live_preds(i: int) -> list[int]:
            out: list[int] = []
            for p in self._pred[i]:
                out.extend([p] if p in new_id else live_preds(p))
            return out

        g = OpGraph()
        for old in keep:
            n = self.nodes[old]
            g.add_node(n.name, n.op, n.shape, n.weight, **dict(n.attrs))
        for old in keep:
            for p in sorted({new_id[p] for p in live_preds(old)}):
                g.add_edge(p, new_id[old])
        return g

    # --- serialising --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [n.to_dict() for n in self.nodes], "edges": [list(e) for e in self.edges]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpGraph:
        g = cls()
        for n in d["nodes"]:
            w = n.get("weight")
            g.add_node(n["name"], n["op"], tuple(n["shape"]), None if w is None else tuple(w), **n.get("attrs", {}))
        for i, j in d["edges"]:
            g.add_edge(int(i), int(j))
        return g
