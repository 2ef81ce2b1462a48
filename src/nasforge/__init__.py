"""nasforge: hardware-aware neural architecture search for PyTorch."""

from .constraints import Constraint, Objective
from .errors import NasforgeError
from .space import Arch, Choice, Space
from .trial import Result, State

__version__ = "0.1.0"

__all__ = ["Arch", "Choice", "Constraint", "NasforgeError", "Objective", "Result", "Space", "State", "__version__"]
