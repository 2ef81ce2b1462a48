"""Search strategies behind one ask/tell interface. Importing this package registers the built-ins."""

from . import grid, random  # noqa: F401  (registration)
from .base import STRATEGIES, Strategy, create_strategy, register_strategy

__all__ = ["STRATEGIES", "Strategy", "create_strategy", "register_strategy"]
