"""Reusable torch building blocks (MBConv / inverted residual, Conv-BN-act) and their exact layer specs."""

from .ops import ConvBNAct, MBConv, make_divisible, mbconv_specs, mid_channels

__all__ = ["ConvBNAct", "MBConv", "make_divisible", "mbconv_specs", "mid_channels"]
