"""Search-space families. Importing this package registers every family module in it."""

from .._discover import import_submodules
from .base import (
    CIFAR10_TASK,
    FAMILIES,
    MNIST_TASK,
    Family,
    Task,
    create_family,
    load_family,
    register_family,
)

import_submodules(__name__, __path__)

__all__ = [
    "CIFAR10_TASK", "FAMILIES", "MNIST_TASK", "Family", "Task", "create_family", "load_family", "register_family",
]  # fmt: skip
