"""The relaxation of a supernet: where the gradient methods mix, and a forward that mixes there.

A *unit* is a part of the blueprint whose candidates all map the same input to an output of the same shape:

- a choice node (an edge op of NAS-Bench-201, a branch or combine op of ``cell``): its candidates are its dimension's
  values, times the values of the dimension that picks its input when it has one (a ``cell`` branch is one unit over
  (input, op) pairs, which is DARTS's mixed edge between the two newest states);
- a run of nodes that a family declares as one block with the ``("unit", name)`` fact (``mbconv`` does): its
  candidates are the product of the dimensions only its blocks read (a MobileNet slot's kernel and expand ratio, the
  nine ops of ProxylessNAS's per-block choice, here with weights shared through the elastic layers).

Units whose candidates come from the same dimensions form a *group* and share one architecture parameter vector
(NAS-Bench-201's six edge dimensions are shared by every cell, as in its DARTS and GDAS baselines). A dimension that
something outside its units reads (width, resolution, a stage's depth, which a condition reads) is *global*: the
gradient methods hold it at a value (``fixed``) or, for ProxylessNAS, learn it by REINFORCE.

``RelaxedNet.forward(x, arch, mixer)`` runs the supernet node by node with ``arch`` giving the global dimensions; at
each unit it calls ``mixer(group, run)``, where ``run(c)`` is the unit's output under candidate ``c``. Mixers:
``single`` (one candidate: equals ``SuperNet`` with that arch active), ``weighted`` (DARTS: Σ w_c·run(c)),
``straight_through`` (GDAS: one candidate run, weighted by a hard one-hot whose gradient is the soft one's) and
``two_path`` (ProxylessNAS: binary gates on two sampled candidates, the inactive one computed without gradient, so
that activation memory does not grow with the number of candidates).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..blueprint import Blueprint
from ..blueprint.params import P, dims_of
from ..blueprint.supernet import SuperNet
from ..blueprint.views import INPUT
from ..errors import SpaceError
from ..space import Arch

Run = Callable[[int], torch.Tensor]
Mixer = Callable[[int, Run], torch.Tensor]


@dataclass(frozen=True)
class Group:
    """Dimensions mixed together: ``candidates[c]`` gives one value per dimension of ``dims``."""

    dims: tuple[str, ...]
    candidates: tuple[tuple[Any, ...], ...]

    @property
    def name(self) -> str:
        return "+".join(self.dims)

    def label(self, c: int) -> str:
        return ",".join(str(v) for v in self.candidates[c])

    def values(self, c: int) -> dict[str, Any]:
        return dict(zip(self.dims, self.candidates[c], strict=True))

    def index(self, arch: Mapping[str, Any]) -> int:
        return self.candidates.index(tuple(arch[d] for d in self.dims))


@dataclass(frozen=True)
class Unit:
    nodes: tuple[int, ...]  # consecutive node indices; the last one's output is the unit's
    group: int


def _node_reads(node) -> tuple[set[str], set[str]]:
    """(dimensions a node's blocks and inputs read, dimensions its conditions read)."""
    blocks = {d for ch in node.chains for b in ch for d in b.dims} | dims_of(*node.inputs)
    if node.dim is not None:
        blocks.add(node.dim)
    return blocks, dims_of(*node.when)


def _unit_tag(node) -> Any:
    for ch in node.chains:
        for b in ch:
            for k, v in b.extra:
                if k == "unit":
                    return v
    return None


def _spans(bp: Blueprint) -> list[tuple[int, ...]]:
    """Candidate units: every choice node alone, and every run of consecutive nodes with one ``unit`` tag."""
    spans: list[list[int]] = []
    last_tag = None
    for ni, node in enumerate(bp.nodes):
        tag = None if node.dim is not None else _unit_tag(node)
        if node.dim is not None:
            spans.append([ni])
        elif tag is not None and tag == last_tag and spans:
            spans[-1].append(ni)
        elif tag is not None:
            spans.append([ni])
        last_tag = tag
    return [tuple(s) for s in spans]


def find_units(bp: Blueprint) -> tuple[list[Group], list[Unit], tuple[str, ...]]:
    """The groups, the units (in execution order) and the global dimensions of a frozen blueprint."""
    sp = bp._space()
    spans = _spans(bp)
    inside = {ni: si for si, span in enumerate(spans) for ni in span}
    reads = [_node_reads(n) for n in bp.nodes]
    outside: set[str] = dims_of(bp.input_shape)
    for ni, (blocks, conds) in enumerate(reads):
        outside |= conds | (set() if ni in inside else blocks)
    # a unit's internal nodes may not feed anything outside it (its output is its last node only)
    names = {bp.nodes[ni].name: si for si, span in enumerate(spans) for ni in span[:-1]}
    for ni, node in enumerate(bp.nodes):
        for i in node.inputs:
            for nm in i.values(sp) if isinstance(i, P) else [i]:
                if nm in names and inside.get(ni) != names[nm]:
                    outside |= {d for k in spans[names[nm]] for d in reads[k][0]}
    groups: list[Group] = []
    index: dict[tuple[str, ...], int] = {}
    units: list[Unit] = []
    for span in spans:
        mine = set().union(*(reads[ni][0] for ni in span)) - outside
        dims = tuple(d for d in sp.dims if d in mine)  # in the space's order
        if not dims:
            continue
        if dims not in index:
            cands = tuple(itertools.product(*(sp.dims[d].values for d in dims)))
            index[dims] = len(groups)
            groups.append(Group(dims, cands))
        units.append(Unit(span, index[dims]))
    mixed = {d for g in groups for d in g.dims}
    return groups, units, tuple(d for d in sp.dims if d not in mixed)


class RelaxedNet(nn.Module):
    """A ``SuperNet`` run node by node, mixing at its units (see the module docstring)."""

    def __init__(self, supernet: SuperNet) -> None:
        super().__init__()
        self.supernet = supernet
        bp = supernet.blueprint
        self.groups, self.units, self.global_dims = find_units(bp)
        self._unit_at = {u.nodes[0]: u for u in self.units}

    @property
    def blueprint(self) -> Blueprint:
        return self.supernet.blueprint

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any], mixer: Mixer) -> torch.Tensor:
        """The network on ``x``: global dimensions from ``arch``, every unit mixed by ``mixer``."""
        bp = self.blueprint
        outs: dict[str, torch.Tensor] = {INPUT: x}
        ni, n = 0, len(bp.nodes)
        while ni < n:
            unit = self._unit_at.get(ni)
            if unit is None:
                self._node(ni, arch, outs)
                ni += 1
                continue
            g = self.groups[unit.group]

            def run(c: int, unit=unit, g=g) -> torch.Tensor:
                a = {**arch, **g.values(c)}
                local = dict(outs)
                for k in unit.nodes:
                    self._node(k, a, local)
                return local[bp.nodes[unit.nodes[-1]].name]

            outs[bp.nodes[unit.nodes[-1]].name] = mixer(unit.group, run)
            ni = unit.nodes[-1] + 1
        return outs[bp.nodes[-1].name]

    def _node(self, ni: int, arch: Mapping[str, Any], outs: dict[str, torch.Tensor]) -> None:
        node = self.blueprint.nodes[ni]
        ins = [outs[i(arch) if type(i) is P else i] for i in node.inputs]
        if node.when and not all(c(arch) for c in node.when):
            outs[node.name] = ins[0]
            return
        ci = 0 if node.dim is None else self.blueprint._space().dims[node.dim].index(arch[node.dim])
        mods = self.supernet._mods
        for pos, block in enumerate(node.chains[ci]):
            ins = [block.super_forward(mods[(ni, ci, pos)], ins, block.resolve(arch))]
        outs[node.name] = ins[0]

    # --- arch <-> candidates ------------------------------------------------------------------------------------
    def arch_of(self, base: Mapping[str, Any], choice: Sequence[int]) -> Arch:
        """The arch with global dimensions from ``base`` and candidate ``choice[g]`` for every group ``g``."""
        a = dict(base)
        for g, c in zip(self.groups, choice, strict=True):
            a.update(g.values(c))
        return self.blueprint._space().validate(a)

    def choice_of(self, arch: Mapping[str, Any]) -> list[int]:
        return [g.index(arch) for g in self.groups]

    def check_fixed(self, fixed: Mapping[str, Any] | None) -> dict[str, Any]:
        """Values for the global dimensions: ``fixed`` where given, else the dimension's last (largest) value."""
        sp = self.blueprint._space()
        fixed = dict(fixed or {})
        unknown = sorted(set(fixed) - set(sp.dims))
        if unknown:
            raise SpaceError(f"fixed dimensions {unknown} are not in the space ({', '.join(sp.dims)})")
        mixed = sorted(set(fixed) - set(self.global_dims))
        if mixed:
            raise SpaceError(f"dimensions {mixed} are searched by the architecture weights; fix only global ones "
                             f"({', '.join(self.global_dims) or 'none'})")  # fmt: skip
        out = {}
        for d in self.global_dims:
            vals = sp.dims[d].values
            v = fixed.get(d, vals[-1])
            if v not in vals:
                raise SpaceError(f"fixed {d}={v!r} is not one of its values {list(vals)}")
            out[d] = v
        return out


# --- mixers ---------------------------------------------------------------------------------------------------------
def single(choice: Sequence[int]) -> Mixer:
    """One candidate per group (the path of one arch)."""
    return lambda g, run: run(choice[g])


def weighted(weights: Sequence[torch.Tensor]) -> Mixer:
    """DARTS's continuous relaxation: Σ_c w[g][c] · run(c) over every candidate."""

    def mix(g: int, run: Run) -> torch.Tensor:
        w = weights[g]
        return sum(w[c] * run(c) for c in range(len(w)))  # type: ignore[return-value]

    return mix


def straight_through(hard: Sequence[torch.Tensor], index: Sequence[int]) -> Mixer:
    """GDAS: only candidate ``index[g]`` runs; ``hard[g]`` is one-hot in value with the soft weights' gradient, so
    every candidate's weight receives a gradient (the others' terms are zero in value)."""

    def mix(g: int, run: Run) -> torch.Tensor:
        h, k = hard[g], index[g]
        out = h[k] * run(k)
        return out + (h.sum() - h[k])  # zero in value; carries the other weights' gradients

    return mix


def two_path(pairs: Sequence[tuple[int, int]], gates: Sequence[torch.Tensor]) -> Mixer:
    """ProxylessNAS's binarised paths: ``pairs[g] = (active, other)`` and ``gates[g]`` the binary gates (1, 0) of
    those two candidates, a leaf tensor whose gradient after backward is ∂L/∂g. The active path runs with gradient;
    the other only for its output (no graph is kept), which is all ∂L/∂g_other = <∂L/∂y, o_other> needs."""

    def mix(g: int, run: Run) -> torch.Tensor:
        (a, b), gate = pairs[g], gates[g]
        out = gate[0] * run(a)
        if a == b:
            return out
        with torch.no_grad():
            other = run(b)
        return out + gate[1] * other

    return mix
