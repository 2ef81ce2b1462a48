"""Cost models computed from layer lists: parameters, MACs, model size, peak activation memory."""

from .counts import COST_METRICS, costs
from .layers import LayerSpec

__all__ = ["COST_METRICS", "LayerSpec", "costs"]
