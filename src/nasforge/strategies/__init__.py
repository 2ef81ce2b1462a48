"""Search strategies behind one ask/tell interface. Importing this package registers every strategy module in it."""

from .._discover import import_submodules
from .base import STRATEGIES, Strategy, create_strategy, register_strategy

import_submodules(__name__, __path__)

__all__ = ["STRATEGIES", "Strategy", "create_strategy", "register_strategy"]
