"""Evaluators: everything that turns an arch into metrics. Importing this package registers every evaluator module."""

from .._discover import import_submodules
from .base import EVALUATORS, Context, Evaluator, FunctionEvaluator, create_evaluator, register_evaluator

import_submodules(__name__, __path__)

__all__ = ["EVALUATORS", "Context", "Evaluator", "FunctionEvaluator", "create_evaluator", "register_evaluator"]
