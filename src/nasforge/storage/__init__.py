"""Experiment storage: the interface (``base.py``) and its backends, registered by kind (``memory.py``, ``sql.py``).
Importing this package registers every backend module in it."""

from .._discover import import_submodules
from .base import BACKENDS, DEFAULT_URL, MEMORY_URL, Storage, Trial, check_study_name, worker_name

import_submodules(__name__, __path__)

__all__ = ["BACKENDS", "DEFAULT_URL", "MEMORY_URL", "Storage", "Trial", "check_study_name", "worker_name"]
