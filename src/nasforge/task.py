"""``Task``: what a network is built for. Plain data, no torch at import.

A task says what one input looks like (shape without the batch dimension, element type, and for token inputs the
vocabulary size), how many outputs a classifier needs, and optionally the class names and the normalisation that
the data went through. Families build and cost networks for a task; a study records its task, so that a study can be
shown, reported and exported in a fresh process without loading its data.

Image tasks have ``input_shape == (C, H, W)`` and ``dtype == "float32"``; token tasks (the Transformer family) have
``input_shape == (L,)`` (sequence length), ``dtype == "int64"`` and a ``vocab_size``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import NasforgeError

DTYPES = ("float32", "int64")


@dataclass(frozen=True)
class Task:
    """One input's shape (no batch), its dtype, the number of classes; optional vocabulary, class names, mean/std."""

    input_shape: tuple[int, ...]
    num_classes: int
    name: str = ""
    dtype: str = "float32"
    vocab_size: int | None = None
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None  # per-channel normalisation the data went through (None: none recorded)
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.input_shape)
        if not shape or any(s < 1 for s in shape):
            raise NasforgeError(f"a task's input shape must be positive sizes, got {self.input_shape!r}")
        if int(self.num_classes) < 1:
            raise NasforgeError(f"a task needs at least one class, got {self.num_classes!r}")
        if self.dtype not in DTYPES:
            raise NasforgeError(f"a task's dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.dtype == "int64" and not self.vocab_size:
            raise NasforgeError("a task of token ids (dtype int64) needs a vocab_size")
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "num_classes", int(self.num_classes))
        for k in ("class_names", "mean", "std"):
            v = getattr(self, k)
            if v is not None:
                object.__setattr__(self, k, tuple(v))
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise NasforgeError(f"a task has {self.num_classes} classes but {len(self.class_names)} class names")

    @property
    def is_image(self) -> bool:
        return self.dtype == "float32" and len(self.input_shape) == 3

    @property
    def is_tokens(self) -> bool:
        return self.dtype == "int64"

    def with_shape(self, input_shape: Sequence[int]) -> Task:
        """The same task at another input shape (a family that fixes its own resolution costs at that)."""
        d = self.to_dict()
        d["input_shape"] = list(input_shape)
        return Task.from_dict(d)

    def example(self, batch: int = 1, seed: int = 0):
        """A deterministic example batch (a torch tensor of the task's dtype), for tracing, counting and export."""
        import torch

        g = torch.Generator().manual_seed(seed)
        if self.is_tokens:
            return torch.randint(0, int(self.vocab_size or 1), (batch, *self.input_shape), generator=g)
        return torch.randn(batch, *self.input_shape, generator=g)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"input_shape": list(self.input_shape), "num_classes": self.num_classes, "name": self.name}
        if self.dtype != "float32":
            d["dtype"] = self.dtype
        for k in ("vocab_size", "class_names", "mean", "std"):
            v = getattr(self, k)
            if v is not None:
                d[k] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Task:
        if not isinstance(d, Mapping) or "input_shape" not in d or "num_classes" not in d:
            raise NasforgeError(f"a task needs input_shape and num_classes, got {d!r}")
        known = {"input_shape", "num_classes", "name", "dtype", "vocab_size", "class_names", "mean", "std"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise NasforgeError(f"unknown task field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(
            tuple(d["input_shape"]),
            int(d["num_classes"]),
            str(d.get("name", "")),
            str(d.get("dtype", "float32")),
            d.get("vocab_size"),
            d.get("class_names"),
            d.get("mean"),
            d.get("std"),
        )


MNIST_TASK = Task((1, 28, 28), 10, "mnist")
CIFAR10_TASK = Task((3, 32, 32), 10, "cifar10")
