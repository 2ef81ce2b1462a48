"""``Family``: a search space plus what turns an arch into a network and into a layer list; and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..cost.counts import costs
from ..cost.layers import LayerSpec
from ..registry import Registry
from ..space import Arch, Space
from ..task import CIFAR10_TASK, MNIST_TASK, Task

if TYPE_CHECKING:  # torch enters only where tensors do
    from torch import nn

__all__ = ["CIFAR10_TASK", "MNIST_TASK", "FAMILIES", "Family", "Task", "create_family", "register_family"]


class Family(ABC):
    """A search space with a builder and an analytic layer list.

    Contract: ``build(arch, task)`` returns a freshly initialised ``nn.Module`` mapping a batch of ``task.input_shape``
    to ``task.num_classes`` logits; ``layers(arch, task)`` returns that module's layers with exact shapes, so that
    ``costs(layers)`` equals what ``FlopCounterMode`` and ``numel()`` measure on the built module. Both must accept
    every arch of ``space`` and nothing else. Constructors only store their configuration.
    """

    name: ClassVar[str] = ""
    # the task a family is usually searched for, used when no data set says otherwise
    default_task: ClassVar[Task | None] = None

    @property
    @abstractmethod
    def space(self) -> Space: ...

    @abstractmethod
    def build(self, arch: Mapping[str, Any], task: Task) -> nn.Module: ...

    @abstractmethod
    def layers(self, arch: Mapping[str, Any], task: Task) -> list[LayerSpec]: ...

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so that ``create_family(name, **config())`` rebuilds this family."""
        return {}

    def describe(self, arch: Mapping[str, Any]) -> str:
        """A short readable form of an arch."""
        return " ".join(f"{k}={v}" for k, v in arch.items())

    def costs(self, arch: Mapping[str, Any], task: Task, bits: int = 32) -> dict[str, float]:
        return costs(self.layers(self.space.validate(arch), task), bits=bits)

    def arch(self, values: Mapping[str, Any]) -> Arch:
        return self.space.validate(values)


FAMILIES: Registry[type[Family]] = Registry("family")


register_family = FAMILIES.register


def create_family(name: str, **config: Any) -> Family:
    """Build the family registered as ``name``; ``create_family(f.name, **f.config())`` rebuilds ``f``."""
    return FAMILIES.create(name, **config)
