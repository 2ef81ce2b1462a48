"""Search-space families. Importing this package registers the built-in families."""

from . import cell, lenet  # noqa: F401  (registration)
from .base import FAMILIES, MNIST_TASK, Family, Task, create_family, register_family

__all__ = ["FAMILIES", "MNIST_TASK", "Family", "Task", "create_family", "register_family"]
