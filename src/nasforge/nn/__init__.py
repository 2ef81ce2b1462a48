"""Reusable torch building blocks: small ops every node of a built network needs, and elastic (dynamic) layers."""

from .elastic import ElasticBatchNorm, ElasticConv2d, ElasticLinear
from .ops import ACTIVATIONS, Concat, Mul, Resize, Sum, Zero, activation

__all__ = [
    "ACTIVATIONS", "Concat", "ElasticBatchNorm", "ElasticConv2d", "ElasticLinear", "Mul", "Resize", "Sum", "Zero",
    "activation",
]  # fmt: skip
