"""Experiment storage: the interface (``base.py``) and its backends, registered by kind (``memory.py``, ``sql.py``).
Importing this package registers every backend module in it."""

from .._discover import import_submodules
from .base import BACKENDS, DEFAULT_URL, MEMORY_URL, Holder, Storage, Trial, check_study_name, worker_name
from .errors import (
    DamagedError,
    LeaseHeld,
    LeaseLost,
    LockedError,
    MissingDatabase,
    ReadOnlyError,
    UnreachableError,
)

import_submodules(__name__, __path__)

__all__ = [
    "BACKENDS", "DEFAULT_URL", "MEMORY_URL", "DamagedError", "Holder", "LeaseHeld", "LeaseLost", "LockedError",
    "MissingDatabase", "ReadOnlyError", "Storage", "Trial", "UnreachableError", "check_study_name", "worker_name",
]
