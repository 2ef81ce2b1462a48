"""The plain network of one arch, built from a bound blueprint: one module per running block, run in order.

Module names are the blueprint's node names (``stages.0.1.depthwise.0``), so ``model.get_submodule(node.name)`` finds
every graph node's module and a state dict reads like the declaration. ``forward`` runs the blocks in declaration
order, handing each the tensors it reads, and drops a tensor as soon as nothing later reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import SpaceError
from .core import Blueprint
from .views import Bound, Prim


class BlueprintNet(nn.Module):
    """A network of modules at dotted names, run in the order of a bound blueprint."""

    def __init__(self, bound: Bound, modules: list[nn.Module]) -> None:
        super().__init__()
        self._mods: list[nn.Module] = []
        for pr, m in zip(bound.prims, modules, strict=True):
            _place(self, pr.name, m)
            self._mods.append(m)
        n = len(bound.prims)
        self._inputs = [pr.inputs for pr in bound.prims]
        self._output = bound.output
        last = [0] * (n + 1)
        for i, ins in enumerate(self._inputs):
            for t in ins:
                last[t] = i
        last[self._output] = n
        # after block i, the tensors whose last reader it was can be dropped
        self._drop = [[t for t in set(ins) if last[t] == i] for i, ins in enumerate(self._inputs)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor | None] = [x] + [None] * len(self._mods)
        for i, m in enumerate(self._mods):
            outs[i + 1] = m(*[outs[t] for t in self._inputs[i]])
            for t in self._drop[i]:
                outs[t] = None
        return outs[self._output]  # type: ignore[return-value]


def _place(root: nn.Module, name: str, m: nn.Module) -> None:
    """Register ``m`` at the dotted ``name`` under ``root``, creating plain container modules on the way."""
    parent = root
    parts = name.split(".")
    for part in parts[:-1]:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    if parts[-1] in parent._modules:
        raise SpaceError(f"blueprint module name {name!r} is used twice in one network")
    parent.add_module(parts[-1], m)


def build(bp: Blueprint, arch: Mapping[str, Any], make: Callable[[Prim], nn.Module] | None = None) -> BlueprintNet:
    """The plain network of ``arch``; ``make(prim)`` gives each block's module (default: freshly initialised)."""
    bound = bp.bind(arch)
    make = make or (lambda pr: pr.block.module(pr.in_shapes, pr.p))
    return BlueprintNet(bound, [make(pr) for pr in bound.prims])
