"""A user's own search space without writing a family: a ``Space`` plus a builder function.

The layer list (and so params, MACs, size and memory) comes from tracing the built model once per arch
(``cost.trace.trace_layers``) on the task's example input (token ids for a task of dtype ``int64``), so costs work for
any ``nn.Module`` the builder returns: ``params`` equals ``numel()`` and ``macs`` what ``FlopCounterMode`` counts.
A model that does compute the tracer cannot count (a custom op, a fused kernel without a FLOP formula, NumPy inside a
custom autograd Function) warns, naming the module, and its ``macs`` and ``energy_uj`` are NaN: unknown, never low::

    space = Space({"width": [16, 32], "depth": [1, 2, 3]})
    fam = BuilderFamily(space, lambda arch, task: MyNet(**arch, classes=task.num_classes))

Tracing builds a model, so this path is slower than a blueprint's ``layers``; the result is cached per arch.
A ``BuilderFamily`` is not registered by name (it holds a function); pass it to ``Study.run`` directly. Give it
``ref="package.module:attr"`` (the import path of the family object, or of a function returning it) so that a study
made with it can be shown, reported and exported in a fresh process; without one it still runs and is shown, but
cannot be rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cost.layers import LayerSpec
from ..space import Space
from .base import Family, Task

if TYPE_CHECKING:  # torch enters only where a model is built or traced: listing families must not import it
    from torch import nn


class BuilderFamily(Family):
    name = "custom"

    def __init__(
        self,
        space: Space | Mapping[str, Any] | str | Path,
        builder: Callable[[Mapping[str, Any], Task], nn.Module],
        *,
        default_task: Task | None = None,
        name: str = "custom",
        ref: str | None = None,
    ) -> None:
        self._space_src = space
        self.builder = builder
        self.default_task = default_task
        self.name = name
        self.ref = ref
        self._space: Space | None = None
        self._layers: dict[tuple[str, Task], list[LayerSpec]] = {}  # per arch and task: tracing builds a model

    @property
    def space(self) -> Space:
        if self._space is None:
            src = self._space_src
            if isinstance(src, Space):
                self._space = src
            elif isinstance(src, str | Path):
                self._space = Space.from_file(src)
            else:
                self._space = Space.from_dict(src)
        return self._space

    def config(self) -> dict[str, Any]:
        return {"space": self.space.to_dict(), "builder": getattr(self.builder, "__qualname__", "builder")}

    def spec(self) -> dict[str, Any]:
        if self.ref:
            return {"import": self.ref}
        return {"name": self.name, "loadable": False}

    def build(self, arch: Mapping[str, Any], task: Task | None = None) -> nn.Module:
        return self.builder(self.space.validate(arch), self.task_or_default(task))

    def layers(self, arch: Mapping[str, Any], task: Task | None = None) -> list[LayerSpec]:
        a = self.space.validate(arch)
        task = self.task_or_default(task)
        k = (a.key, task)
        if k not in self._layers:
            from ..cost.trace import trace_layers

            self._layers[k] = trace_layers(self.builder(a, task), task)
        return self._layers[k]
