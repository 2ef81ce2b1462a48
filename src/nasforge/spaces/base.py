"""``Family``: a search space plus what turns an arch into a network and into a layer list; and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..cost.counts import costs
from ..cost.layers import LayerSpec
from ..registry import Registry
from ..space import Arch, Space

if TYPE_CHECKING:  # torch enters only where tensors do
    from torch import nn


@dataclass(frozen=True)
class Task:
    """What a network is built for: the shape of one input (without batch) and the number of classes."""

    input_shape: tuple[int, ...]
    num_classes: int
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "num_classes": self.num_classes, "name": self.name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Task:
        return cls(tuple(d["input_shape"]), int(d["num_classes"]), d.get("name", ""))


MNIST_TASK = Task((1, 28, 28), 10, "mnist")


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


def register_family(name: str):
    """Class decorator: make a family available by name to ``create_family``, the CLI and the conformance tests."""

    def deco(cls: type[Family]) -> type[Family]:
        cls.name = name
        return FAMILIES.register(name)(cls)

    return deco


def create_family(name: str, **config: Any) -> Family:
    from ..errors import SpaceError

    cls = FAMILIES.get(name)
    try:
        return cls(**config)
    except TypeError as e:
        raise SpaceError(f"family {name!r}: bad configuration {config}: {e}") from None
