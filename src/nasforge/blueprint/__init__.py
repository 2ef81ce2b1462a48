"""One description per family: a ``Blueprint`` of blocks, from which layers, network, graph, canonical form and
supernet are all derived (see ``core.py``)."""

from .blocks import BN, Block, Conv, Linear
from .core import INPUT, Blueprint, Bound, Node, Prim
from .ops import Act, Concat, Flatten, GlobalPool, Identity, Mul, Pool, Resize, Sum, Zero
from .params import P

__all__ = [
    "BN", "INPUT", "Act", "Block", "Blueprint", "Bound", "Concat", "Conv", "Flatten", "GlobalPool", "Identity",
    "Linear", "Mul", "Node", "P", "Pool", "Prim", "Resize", "Sum", "Zero",
]  # fmt: skip
