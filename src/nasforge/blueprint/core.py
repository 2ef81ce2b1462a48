"""``Blueprint``: a family's network declared once, as an ordered graph of blocks. Torch-free.

A blueprint is a list of named nodes in execution order. A node is

- a block (``add``), or a chain of blocks named ``name.0``, ``name.1``, ... (``seq``), or
- a *choice* (``choice``): a space dimension picks one of several chains of blocks (an op on a cell edge, a combine
  op); a one-block candidate is named ``name``, a longer one ``name.0``, ``name.1``, ...

Its inputs are earlier node names (``"input"`` is the network input), or a ``P`` that picks one by the arch (a cell's
input choice). ``when`` (a ``P`` or a tuple of them, all true) makes a node conditional: an inactive node passes its
first input on (elastic depth: a stage keeps its first d blocks). Block parameters are constants or ``P``s.

Everything else is derived per arch by ``bind``: which nodes run, their parameters, input and output shapes. From it:
``layers`` (LayerSpecs with exact shapes; ``live`` from the network's own liveness), ``graph`` (an ``OpGraph`` whose
node names are module names), ``canonical`` (dimensions that no running node reads are set to their first value)
(``views.py``) and, with torch, ``net.build(bp, arch)`` and ``supernet.SuperNet(bp)``. The output is the last node.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..cost.layers import LayerSpec
from ..errors import SpaceError
from ..space import Space
from .blocks import Block, Shape
from .params import P, dims_of
from .views import INPUT, Bound, Prim, Views

__all__ = ["INPUT", "Blueprint", "Bound", "Node", "Prim"]


@dataclass
class Node:
    """One declared node: a chain of blocks, or one chain per value of the choice dimension ``dim``."""

    name: str
    chains: tuple[tuple[Block, ...], ...]
    names: tuple[tuple[str, ...], ...]  # the module name of every block of every chain
    inputs: tuple[str | P, ...]
    when: tuple[P, ...] = ()
    dim: str | None = None
    values: tuple[Any, ...] = ()  # a choice's dimension values, in the order of ``chains``


def _conds(when: P | Sequence[P] | None) -> tuple[P, ...]:
    if when is None:
        return ()
    return (when,) if isinstance(when, P) else tuple(when)


class Blueprint(Views):
    """See the module docstring. Declare with ``add``/``seq``/``choice``; ``freeze(space)`` checks and compiles."""

    def __init__(self, input_shape: Sequence[int] | P) -> None:
        self.input_shape = input_shape if isinstance(input_shape, P) else tuple(int(s) for s in input_shape)
        self.nodes: list[Node] = []
        self.space: Space | None = None
        self._names: set[str] = {INPUT}
        self._cache: dict[tuple, tuple[Shape, tuple[LayerSpec, ...]]] = {}

    # --- declaring ----------------------------------------------------------------------------------------------
    def _inputs(self, inputs: str | P | Sequence[str | P] | None) -> tuple[str | P, ...]:
        if inputs is None:
            return (self.nodes[-1].name if self.nodes else INPUT,)
        if isinstance(inputs, str | P):
            return (inputs,)
        return tuple(inputs)

    def _add(self, node: Node) -> str:
        if self.space is not None:
            raise SpaceError("a frozen blueprint cannot take more nodes")
        new = {node.name, *itertools.chain.from_iterable(node.names)}
        taken = sorted(new & self._names)
        if taken:
            raise SpaceError(f"blueprint node name {taken[0]!r} is used twice")
        self._names |= new
        self.nodes.append(node)
        return node.name

    def add(self, name: str, block: Block, inputs=None, when=None) -> str:
        """One block named ``name``; inputs default to the previous node."""
        return self._add(Node(name, ((block,),), ((name,),), self._inputs(inputs), _conds(when)))

    def seq(self, name: str, blocks: Sequence[Block], inputs=None, when=None) -> str:
        """A chain of blocks named ``name.0``, ``name.1``, ... (one node per block); returns the last name."""
        last = None
        for i, b in enumerate(blocks):
            last = self.add(f"{name}.{i}", b, inputs if i == 0 else None, when)
        if last is None:
            raise SpaceError(f"blueprint sequence {name!r} has no blocks")
        return last

    def choice(self, name: str, dim: str, candidates: Mapping[Any, Block | Sequence[Block]], inputs=None,
               when=None) -> str:  # fmt: skip
        """Dimension ``dim`` picks one candidate chain; returns ``name`` (the chosen chain's output)."""
        values, chains, names = [], [], []
        for v, c in candidates.items():
            chain = (c,) if isinstance(c, Block) else tuple(c)
            if not chain:
                raise SpaceError(f"choice {name!r}: candidate {v!r} has no blocks")
            values.append(v)
            chains.append(chain)
            names.append((name,) if len(chain) == 1 else tuple(f"{name}.{i}" for i in range(len(chain))))
        node = Node(name, tuple(chains), tuple(names), self._inputs(inputs), _conds(when), dim, tuple(values))
        return self._add(node)

    # --- checking and compiling ---------------------------------------------------------------------------------
    def freeze(self, space: Space) -> Blueprint:
        """Check the declaration against ``space`` (names, inputs, dimensions, choice values) and compile it."""
        if self.space is not None:
            return self
        if not self.nodes:
            raise SpaceError("a blueprint needs at least one node")
        known = {INPUT}
        for node in self.nodes:
            self._check_node(node, space, known)
            known.add(node.name)
        self.space = space
        self._always = self._always_read()
        self._conds: list[tuple[P, ...]] = []
        self._cond_ids: dict[tuple[int, ...], int] = {}
        self._plan = [self._compile(node) for node in self.nodes]
        # for ``canonical``: the dimensions each condition's nodes read, and each choice's per-candidate dimensions
        by_cond: dict[int, set[str]] = {}
        self._choice_dims = []
        for (_, _, _, cond, dim, _, _), node in zip(self._plan, self.nodes, strict=True):
            if dim is not None:
                self._choice_dims.append((cond, dim, [frozenset(self._reads(*ch)) for ch in node.chains]))
            elif cond >= 0:
                by_cond.setdefault(cond, set()).update(self._reads(*node.chains[0]))
        self._cond_dims = [(self._conds[c], frozenset(dims)) for c, dims in by_cond.items()]
        first = self.nodes[0]
        # a plain chain (every node reads the one before, nothing conditional): nothing is ever live besides a
        # layer's own input, so ``layers`` skips the liveness pass
        self._is_chain = all(
            not node.when and len(node.inputs) == 1 and node.inputs[0] == (self.nodes[k - 1].name if k else INPUT)
            for k, node in enumerate(self.nodes)
        ) and not isinstance(first.inputs[0], P)
        # a chain without choices is one list of blocks: the tightest loop (the practice's LeNet is one)
        self._flat = [c[0][0] for *_, c in self._plan] if self._is_chain and all(
            n.dim is None for n in self.nodes) else None
        self._flat_cache: dict[tuple, tuple[Shape, tuple[LayerSpec, ...]]] = {}
        self._live_cache: dict[tuple[int, int], tuple[LayerSpec, ...]] = {}
        self._segments = _segments(self._plan)
        self._seg_cache: dict[tuple, tuple] = {}
        return self

    def _compile(self, node: Node) -> tuple:
        """The node as plain tuples, for the per-arch fast path of ``layers`` (it runs for every arch a study meets)."""
        pos = None if node.dim is None else self.space.dims[node.dim]._pos  # type: ignore[union-attr]
        chains = tuple(tuple((b, _getter(b), nm) for b, nm in zip(ch, names, strict=True))
                       for ch, names in zip(node.chains, node.names, strict=True))  # fmt: skip
        # nodes that share a condition (every node of one block) share its evaluation
        cond = -1
        if node.when:
            ids = tuple(id(c) for c in node.when)
            cond = self._cond_ids.setdefault(ids, len(self._conds))
            if cond == len(self._conds):
                self._conds.append(node.when)
        single = len(node.inputs) == 1 and type(node.inputs[0]) is str
        return node.name, node.inputs, single, cond, node.dim, pos, chains

    def _check_node(self, node: Node, space: Space, known: set[str]) -> None:
        where = f"blueprint node {node.name!r}"
        dims = dims_of(*node.inputs, *node.when) | {b_d for ch in node.chains for b in ch for b_d in b.dims}
        if node.dim is not None:
            dims.add(node.dim)
        missing = sorted(d for d in dims if d not in space.dims)
        if missing:
            raise SpaceError(f"{where} reads dimensions the space lacks: {missing}")
        for i in node.inputs:
            names = i.values(space) if isinstance(i, P) else [i]
            bad = [n for n in names if n not in known]
            if bad:
                raise SpaceError(f"{where}: input {bad[0]!r} is not an earlier node")
        if node.dim is not None:
            want = list(space.dims[node.dim].values)
            order = []
            for v in want:
                hits = [k for k, x in enumerate(node.values) if x == v and type(x) is type(v)]
                if not hits:
                    raise SpaceError(f"{where}: no candidate for {node.dim}={v!r}")
                order.append(hits[0])
            if len(node.values) != len(want):
                extra = [x for x in node.values if x not in want]
                raise SpaceError(f"{where}: candidates {extra} are not values of {node.dim}")
            # chains in the order of the dimension's values, so that Choice.index finds them
            node.chains = tuple(node.chains[k] for k in order)
            node.names = tuple(node.names[k] for k in order)
            node.values = tuple(want)

    def _reads(self, *objs: Any) -> set[str]:
        """The dimensions the given parameters, inputs, conditions or blocks really read: a ``P`` that takes one
        value over the space (a cell's first layer picks between two names of one state) reads none."""
        out: set[str] = set()
        for x in objs:
            if isinstance(x, Block):
                out |= self._reads(*(x.fields[k] for k in x.var), *(v for _, v in x.extra))
            elif isinstance(x, P):
                memo = self.__dict__.setdefault("_varies", {})
                if id(x) not in memo:
                    memo[id(x)] = (x, len(x.values(self.space)) > 1)  # type: ignore[arg-type]
                if memo[id(x)][1]:
                    out.update(x.dims)
        return out

    def _always_read(self) -> frozenset[str]:
        """Dimensions every arch's network reads, whatever the arch (conditions are always evaluated)."""
        out: set[str] = self._reads(self.input_shape)
        for node in self.nodes:
            out |= self._reads(*node.inputs, *node.when)
            if node.dim is not None:
                out.add(node.dim)
            if not node.when:
                out |= set.intersection(*(self._reads(*ch) for ch in node.chains))
        return frozenset(out)

    # --- per arch -----------------------------------------------------------------------------------------------


def _segments(plan: list[tuple]) -> list[tuple]:
    """The plan with runs of plain nodes merged: a run (no choice, one condition, each node reading the one before)
    is priced as one unit, cached by its input shapes and the values of every dimension its blocks read.

    Entries: ``(names, inputs, single, cond, dim, pos, chains, getter)``; for a run, ``dim`` is None, ``chains`` holds
    its one flattened chain and ``getter`` reads the run's dimensions; for a choice, ``getter`` is None."""
    out: list[list[Any]] = []
    for name, inputs, single, cond, dim, pos, chains in plan:
        prev = out[-1] if out else None
        joins = (
            prev is not None and dim is None and prev[4] is None and prev[3] == cond and single
            and inputs[0] == prev[0][-1]
        )
        if joins:
            prev[0] = (*prev[0], name)
            prev[6] = ((*prev[6][0], *chains[0]),)
        else:
            out.append([(name,), inputs, single, cond, dim, pos, chains, None])
    for seg in out:
        if seg[4] is None:
            dims = sorted({d for block, _, _ in seg[6][0] for d in block.key_dims})
            if dims:
                get = operator.itemgetter(*dims)
                seg[7] = get if len(dims) > 1 else (lambda d, get=get: (get(d),))
    return [tuple(seg) for seg in out]


def _getter(block: Block):
    """The values of the dimensions a block reads, as a tuple (an itemgetter), or ``None`` when it reads none."""
    if not block.key_dims:
        return None
    get = operator.itemgetter(*block.key_dims)
    return get if len(block.key_dims) > 1 else (lambda d: (get(d),))


