"""Evaluators: everything that turns an arch into metrics."""

from .base import EVALUATORS, Context, Evaluator, FunctionEvaluator, register_evaluator

__all__ = ["EVALUATORS", "Context", "Evaluator", "FunctionEvaluator", "register_evaluator"]
