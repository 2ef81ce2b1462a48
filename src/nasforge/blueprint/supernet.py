"""The supernet of a blueprint: every tied dimension free, one set of shared weights for the whole space.

Derived from the same declaration as every plain network, never written per family:

- a block whose parameters or input shapes vary over the space becomes *elastic* (``nn/elastic.py``): it holds the
  largest weight any arch needs and runs as a smaller layer by slicing a prefix (channels) or a centre crop (kernel);
- a choice becomes a ``Mixed`` module holding every candidate chain (``candidates[i]`` for the dimension's i-th value),
  which is where one-shot methods (DARTS, GDAS, ProxylessNAS, SPOS) mix, sample or binarise paths;
- a conditional node (elastic depth) is skipped when inactive.

``set_active(arch)`` selects one path; ``forward`` then equals the plain network of that arch with the same weights,
and ``extract(arch)`` returns exactly that plain network (the module ``family.build`` makes, weights copied), so a
state dict of ``extract(arch)`` loads into ``family.build(arch)``.

The largest sizes come from shape-set propagation: for every node, the set of input shapes it can meet over the space
(a superset: dimensions are combined independently) and every parameter set its blocks can take.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import SpaceError
from ..space import Arch
from .blocks import Block, Shape
from .core import Blueprint
from .net import BlueprintNet, _place, build
from .params import P
from .views import INPUT


class Mixed(nn.Module):
    """The candidates of one choice node: ``candidates[i]`` is the chain of modules for ``values[i]`` of ``dim``."""

    def __init__(self, dim: str, values: tuple[Any, ...], chains: list[list[nn.Module]]) -> None:
        super().__init__()
        self.dim, self.values = dim, values
        self.candidates = nn.ModuleList(nn.ModuleList(ch) for ch in chains)

    def extra_repr(self) -> str:
        return f"dim={self.dim!r}, values={list(self.values)}"


def shape_sets(bp: Blueprint) -> dict[tuple[int, int, int], tuple[list[set[Shape]], list[dict[str, Any]]]]:
    """Per (node, chain, position): the input shape sets and the parameter sets the block meets over the space."""
    sp = bp._space()
    shape = bp.input_shape
    sets: dict[str, set[Shape]] = {INPUT: {tuple(v) for v in shape.values(sp)} if isinstance(shape, P) else {shape}}
    out: dict[tuple[int, int, int], tuple[list[set[Shape]], list[dict[str, Any]]]] = {}
    for ni, node in enumerate(bp.nodes):
        in_sets = [_input_set(i, sp, sets) for i in node.inputs]
        result: set[Shape] = set(in_sets[0]) if node.when else set()
        for ci, chain in enumerate(node.chains):
            cur = in_sets
            for pos, block in enumerate(chain):
                psets = block.param_sets(sp)
                nxt = _out_set(block, cur, psets)
                if not nxt:
                    if node.when:  # a conditional node no arch can run (a residual whose shapes never match)
                        break
                    raise SpaceError(f"supernet node {node.name!r}: no input shape and parameter combination fits")
                out[(ni, ci, pos)] = (cur, psets)
                cur = [nxt]
            else:
                result |= cur[0]
        sets[node.name] = result
    return out


def _input_set(i: str | P, sp, sets: dict[str, set[Shape]]) -> set[Shape]:
    if isinstance(i, P):
        return set().union(*(sets[name] for name in i.values(sp)))
    return sets[i]


def _out_set(block: Block, in_sets: list[set[Shape]], psets: list[dict[str, Any]]) -> set[Shape]:
    res: set[Shape] = set()
    for ins in itertools.product(*in_sets):
        for p in psets:
            try:
                res.add(block.out_shape(ins, p))
            except SpaceError:
                continue  # a combination no arch meets (dimensions combined independently)
    return res


class SuperNet(nn.Module):
    """See the module docstring. ``set_active(arch)`` before ``forward``; ``extract(arch)`` for a plain network."""

    def __init__(self, bp: Blueprint) -> None:
        super().__init__()
        self.blueprint = bp
        info = shape_sets(bp)
        self._mods: dict[tuple[int, int, int], nn.Module] = {}
        for ni, node in enumerate(bp.nodes):
            chains = [[block.super_module(*info[(ni, ci, pos)]) for pos, block in enumerate(chain)
                       if (ni, ci, pos) in info] for ci, chain in enumerate(node.chains)]  # fmt: skip
            if not any(chains):
                continue  # never runs
            for ci, chain in enumerate(chains):
                for pos, m in enumerate(chain):
                    self._mods[(ni, ci, pos)] = m
            if node.dim is None:
                _place(self, node.name, chains[0][0])
            else:
                _place(self, node.name, Mixed(node.dim, node.values, chains))
        self._plan: list[tuple[Any, ...]] | None = None
        self.active: Arch | None = None

    def set_active(self, arch: Mapping[str, Any]) -> None:
        """Select the path of ``arch`` (validated); later forwards run it."""
        bp = self.blueprint
        a = bp._space().validate(arch)
        bound = bp.bind(a)  # also checks that every shape fits
        steps = [(pr.node, pr.chain, pr.pos, pr.inputs, pr.p) for pr in bound.prims]
        self._plan = [(self._mods[(n, c, k)], bp.nodes[n].chains[c][k], ins, p) for n, c, k, ins, p in steps]
        self._output = bound.output
        self.active = a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._plan is None:
            raise SpaceError("call set_active(arch) on the supernet before running it")
        outs = [x]
        for m, block, ins, p in self._plan:
            outs.append(block.super_forward(m, [outs[t] for t in ins], p))
        return outs[self._output]

    def extract(self, arch: Mapping[str, Any]) -> BlueprintNet:
        """The plain network of ``arch`` with this supernet's weights copied (its output equals the supernet's)."""
        a = self.blueprint._space().validate(arch)

        def make(pr):
            return pr.block.extract(self._mods[(pr.node, pr.chain, pr.pos)], pr.in_shapes, pr.p)

        net = build(self.blueprint, a, make)
        return net.train(self.training)
