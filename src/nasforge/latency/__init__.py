"""Latency models, above the families: measured on this machine, a lookup table, learned and few-shot predictors.

Every source answers ``model(arch) -> {"latency_ms": ms}`` for one family and task; ``latency_model(source, family,
task, **options)`` builds one by name. Importing this package registers every source module in it.
"""

from .._discover import import_submodules
from .base import SOURCES, LatencyError, LatencyModel, latency_model, register_source

import_submodules(__name__, __path__)

__all__ = ["SOURCES", "LatencyError", "LatencyModel", "latency_model", "register_source"]
