"""What a blueprint derives for one arch: the blocks that run (``bind``), their layer list with liveness
(``layers``), the op graph (``graph``) and the canonical form (``canonical``). Torch-free.

``layers`` is the hot path (a study prices every arch it meets): it walks compiled tuples, caches each block's
LayerSpecs by its input shapes and the values of the dimensions it reads, and computes liveness in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..cost.layers import LayerSpec
from ..errors import SpaceError
from ..graph import OpGraph
from ..space import Arch, Space
from .blocks import Block, Shape
from .params import P, resolve

INPUT = "input"


@dataclass
class Prim:
    """One block that runs for a given arch, with everything resolved. Tensor 0 is the input; prim i makes i + 1."""

    name: str
    block: Block
    p: dict[str, Any]
    inputs: tuple[int, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    node: int  # index of the declared node
    chain: int
    pos: int
    specs: tuple[LayerSpec, ...] = ()  # with ``live`` = 0; ``Blueprint.layers`` adds the liveness


@dataclass
class Bound:
    """A blueprint bound to one arch: the blocks that run, in order, and the input shape."""

    prims: list[Prim]
    input_shape: Shape
    output: int  # the tensor the network returns


class Views:
    """The per-arch views of a frozen ``Blueprint`` (a mixin: the declaration lives in ``core.py``)."""

    def _space(self) -> Space:
        if self.space is None:
            raise SpaceError("the blueprint is not frozen: call freeze(space) first")
        return self.space

    def input_shape_of(self, arch: Mapping[str, Any]) -> Shape:
        return tuple(resolve(self.input_shape, arch))

    def bind(self, arch: Mapping[str, Any]) -> Bound:
        """The blocks that run for ``arch`` with parameters and shapes (``SpaceError`` if a shape does not fit)."""
        sp = self._space()
        shapes: list[Shape] = [self.input_shape_of(arch)]
        where: dict[str, int] = {INPUT: 0}
        prims: list[Prim] = []
        cache = self._cache
        for ni, node in enumerate(self.nodes):
            ins = tuple(where[i(arch) if type(i) is P else i] for i in node.inputs)
            if node.when and not all(c(arch) for c in node.when):
                where[node.name] = ins[0]
                continue
            ci = 0 if node.dim is None else sp.dims[node.dim].index(arch[node.dim])
            for pos, (block, name) in enumerate(zip(node.chains[ci], node.names[ci], strict=True)):
                raw = tuple(arch[k] for k in block.key_dims)
                in_shapes = tuple(shapes[t] for t in ins)
                hit = cache.get((block, in_shapes, raw))
                if hit is None:
                    hit = self._price(block, in_shapes, raw, name, arch)
                p = block.resolve(arch)
                prims.append(Prim(name, block, p, ins, in_shapes, hit[0], ni, ci, pos, hit[1]))
                shapes.append(hit[0])
                ins = (len(shapes) - 1,)
            where[node.name] = ins[0]
        return Bound(prims, shapes[0], where[self.nodes[-1].name])

    def layers(self, arch: Mapping[str, Any]) -> list[LayerSpec]:
        """Every layer that runs, with exact shapes; ``live`` counts the other tensors a later layer still needs.

        The same walk as ``bind`` without building ``Prim``s, with each block's layers cached by its input shapes and
        the values of the dimensions it reads: a study prices every arch it meets with this.
        """
        self._space()
        d = arch._d if type(arch) is Arch else dict(arch)  # plain dict lookups: this loop is the hot path
        if self._flat is not None:
            return self._flat_layers(d)
        cache = self._cache
        ok = [all(c(d) for c in when) for when in self._conds]
        shapes: dict[str, Shape] = {INPUT: self.input_shape_of(d)}
        sizes: dict[str, int] = {INPUT: _numel(shapes[INPUT])}
        alias: dict[str, str] = {}
        per_prim: list[tuple[tuple[LayerSpec, ...], tuple[str, ...], str]] = []
        for names, inputs, single, cond, dim, pos, chains, get in self._segments:
            if single:
                ins = (alias.get(inputs[0], inputs[0]),)
            else:
                ins = tuple(alias.get(x, x) for x in ((i(d) if type(i) is P else i) for i in inputs))
            if cond >= 0 and not ok[cond]:
                for name in names:
                    alias[name] = ins[0]
                continue
            in_shapes = (shapes[ins[0]],) if len(ins) == 1 else tuple(shapes[x] for x in ins)
            if dim is None:  # a run of plain nodes, priced as one cached unit
                key = (names[0], in_shapes, get(d) if get is not None else ())
                hit = self._seg_cache.get(key)
                if hit is None:
                    hit = self._price_run(key, chains[0], in_shapes, d)
                per_prim.append((hit[0], ins, names[0]))
                per_prim += hit[1]
                shapes.update(hit[2])
                sizes.update(hit[3])
                continue
            for block, get_b, pname in chains[pos[(isinstance(d[dim], bool), d[dim])]]:
                raw = get_b(d) if get_b is not None else ()
                hit = cache.get((block, in_shapes, raw))
                if hit is None:
                    hit = self._price(block, in_shapes, raw, pname, d)
                shapes[pname], sizes[pname] = hit[0], hit[2]
                per_prim.append((hit[1], ins, pname))
                ins = (pname,)
                in_shapes = (hit[0],)
            if ins[0] != names[0]:
                alias[names[0]] = ins[0]
        if self._is_chain:
            return [s for specs, _, _ in per_prim for s in specs]
        return _with_liveness(per_prim, sizes, alias.get(self.nodes[-1].name, self.nodes[-1].name), self._live_cache)

    def _flat_layers(self, d: dict[str, Any]) -> list[LayerSpec]:
        cache = self._flat_cache
        shape = self.input_shape_of(d)
        out: list[LayerSpec] = []
        for block, get, name in self._flat:  # type: ignore[union-attr]
            raw = get(d) if get is not None else ()
            hit = cache.get((block, shape, raw))
            if hit is None:
                hit = cache[(block, shape, raw)] = self._price(block, (shape,), raw, name, d)
            shape = hit[0]
            out += hit[1]
        return out

    def _price_run(self, key: tuple, chain: tuple, in_shapes: tuple[Shape, ...], d: Mapping[str, Any]) -> tuple:
        """A run's first layers, the (layers, inputs, name) of the others, and every node's output shape."""
        entries: list[tuple[tuple[LayerSpec, ...], tuple[str, ...], str]] = []
        made: dict[str, Shape] = {}
        sizes: dict[str, int] = {}
        prev = None
        for block, get, pname in chain:
            raw = get(d) if get is not None else ()
            hit = self._cache.get((block, in_shapes, raw)) or self._price(block, in_shapes, raw, pname, d)
            entries.append((hit[1], (prev,), pname))
            made[pname], sizes[pname] = hit[0], hit[2]
            in_shapes, prev = (hit[0],), pname
        out = self._seg_cache[key] = (entries[0][0], tuple(entries[1:]), made, sizes)
        return out

    def _price(self, block: Block, in_shapes: tuple[Shape, ...], raw: tuple, name: str, arch: Mapping[str, Any]):
        p = block.resolve(arch)
        try:
            out = block.out_shape(in_shapes, p)
        except SpaceError as e:
            raise SpaceError(f"{name}: {e}") from None
        hit = self._cache[(block, in_shapes, raw)] = (out, tuple(block.specs(name, in_shapes, out, p)), _numel(out))
        return hit

    def graph(self, arch: Mapping[str, Any]) -> OpGraph:
        """The op DAG: node 0 is the input, then one node per running block; names are module names."""
        b = self.bind(arch)
        g = OpGraph()
        g.add_node(INPUT, "input", b.input_shape)
        for pr in b.prims:
            w = pr.block.graph_weight(pr.in_shapes, pr.out_shape, pr.p)
            g.add_node(pr.name, pr.block.op, pr.out_shape, w, list(pr.inputs), **pr.block.graph_attrs(pr.p))
        return g

    def canonical(self, arch: Arch) -> Arch:
        """``arch`` with every dimension no running node reads set to its first value (one arch per network)."""
        sp = self._space()
        if len(self._always) == len(sp.dims):
            return arch
        d = arch._d if type(arch) is Arch else dict(arch)
        used = set(self._always)
        for when, dims in self._cond_dims:
            if all(c(d) for c in when):
                used |= dims
        for cond, dim, chains in self._choice_dims:
            if cond < 0 or all(c(d) for c in self._conds[cond]):
                used |= chains[sp.dims[dim].index(d[dim])]
        if len(used) == len(sp.dims):
            return arch
        new = {k: (d[k] if k in used else c.values[0]) for k, c in sp.dims.items()}
        if new == d:
            return arch
        return Arch._trusted(new, sp)  # values taken from the space's own choices

def _with_liveness(per_prim, size: dict[str, int], output: str, memo: dict) -> list[LayerSpec]:
    """The specs with ``live`` set: at each layer, the elements of earlier tensors (other than its own inputs) that a
    later layer still reads. One pass: a running sum of the tensors made so far that are read later."""
    n = len(per_prim)
    last: dict[str, int] = {}
    for i, (_, ins, _) in enumerate(per_prim):
        for t in ins:
            last[t] = i
    last[output] = n
    expiring = [0] * (n + 1)  # elements whose last reader is layer i
    for t, i in last.items():
        expiring[i] += size[t]
    running = size[INPUT] if INPUT in last else 0
    out: list[LayerSpec] = []
    for i, (specs, ins, made) in enumerate(per_prim):
        if len(ins) == 1:
            t = ins[0]
            own_later = size[t] if last[t] > i else 0
        else:
            own_later = sum(size[t] for t in set(ins) if last[t] > i)
        live = running - expiring[i] - own_later
        if live:
            key = (id(specs), live)  # the cached spec tuples live as long as the blueprint
            got = memo.get(key)
            if got is None:
                got = memo[key] = tuple(_with_live(s, live) for s in specs)
            specs = got
        out += specs
        running -= expiring[i]
        if last.get(made, -1) > i:
            running += size[made]
    return out


def _numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _with_live(s: LayerSpec, live: int) -> LayerSpec:
    return LayerSpec(s.kind, s.in_shape, s.out_shape, s.kernel, s.stride, s.groups, s.bias, s.name, live, s.extra)
