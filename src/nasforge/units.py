"""Readable numbers, by the metric table's unit: bytes as KiB/MiB, counts as K/M/G, percentages with 2 decimals."""

from __future__ import annotations

import math

from .metrics import unit


def human(metric: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    u = unit(metric)
    if u == "bytes":
        for name, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(v) >= scale:
                return f"{v / scale:.3g} {name}"
        return f"{v:.0f} B"
    if u == "count":
        for name, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{name}"
        return f"{v:.0f}"
    if u == "percent":
        return f"{v:.2f}"
    if float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.4g}"
