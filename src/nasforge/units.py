"""Readable numbers: bytes as KiB/MiB, counts as K/M/G, times in ms."""

from __future__ import annotations

import math

from .constraints import BYTE_METRICS


def human(metric: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if metric in BYTE_METRICS or metric.endswith("_bytes"):
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(v) >= scale:
                return f"{v / scale:.3g} {unit}"
        return f"{v:.0f} B"
    if metric in ("params", "macs"):
        for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{unit}"
        return f"{v:.0f}"
    if metric.endswith("_acc") or metric.startswith("acc"):
        return f"{v:.2f}"
    if float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.4g}"
