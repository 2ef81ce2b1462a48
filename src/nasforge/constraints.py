"""Constraints and objectives parsed from readable strings.

Constraints: ``"size<=0.05MiB"``, ``"macs<=300M"``, ``"params<50K"``, ``"latency_ms<=5"``, ``"lat_ms_fpga<=3"``.
Units: K/M/G (×10^3, ×10^6, ×10^9) for counts; B, KB/MB/GB (×10^3…) and KiB/MiB/GiB (×2^10…) for bytes;
us/ms/s/min for times (stored in the metric's unit: ``latency_ms`` in milliseconds, ``train_time_s`` in seconds); % for
percentages; uJ/mJ/J for energy. ``size<=0.05MiB`` therefore means 0.05·2^20 bytes.

Objectives: ``"maximize accuracy"``, ``"minimize latency_ms"``, ``"max:val_acc"``, ``"+val_acc"``, ``"-lat_ms_fpga"``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConstraintError
from .metrics import unit as metric_unit

_COUNT = {"": 1, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_BYTES = {"B": 1, "KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}  # in milliseconds
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DIRECTIONS = ("maximize", "minimize", "max", "min")  # a direction alone names no metric
_RE = re.compile(rf"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*({_NUM})\s*([A-Za-z%]*)\s*$")


def _scale(metric: str, unit: str, text: str) -> float:
    kind = metric_unit(metric)  # the metric table says what a limit on this metric is measured in
    if kind == "bytes":
        table, what = {**_BYTES, "": 1}, "a byte unit (B, KB, KiB, MiB, ...)"
    elif kind in ("ms", "s"):  # a time, stored in the metric's own unit
        table = {k: v / (1e3 if kind == "s" else 1.0) for k, v in {**_TIME_MS, "min": 6e4, "": 1e3 if kind == "s"
                                                                   else 1.0}.items()}  # fmt: skip
        what = "a time unit (us, ms, s, min)"
    elif kind == "percent":
        table, what = {"": 1, "%": 1}, "%"
    elif kind == "uJ":
        table, what = {"": 1, "uJ": 1, "mJ": 1e3, "J": 1e6}, "an energy unit (uJ, mJ, J)"
    else:
        table, what = _COUNT, "a count unit (K, M, G)"
    if unit not in table:
        raise ConstraintError(f"constraint {text!r}: unit {unit!r} does not fit {metric!r}; use {what} or none")
    return table[unit]


@dataclass(frozen=True)
class Constraint:
    """``metric op value`` with the value already in base units (bytes, counts, milliseconds)."""

    metric: str
    op: str
    value: float
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if isinstance(text, Constraint):
            return text
        m = _RE.match(str(text))
        if not m and len(re.findall(r"<=|>=|<|>", str(text))) > 1:
            raise ConstraintError(
                f"constraint {text!r} holds several limits; give each one separately (repeat -c/--constraint, or "
                "list them: constraints: [...])"
            )
        if not m:
            raise ConstraintError(
                f"cannot read constraint {text!r}; write it as metric<=number[unit], e.g. 'size<=0.05MiB', "
                "'macs<=300M', 'latency_ms<=5'"
            )
        metric, op, num, unit = m.groups()
        value = float(num) * _scale(metric, unit, str(text))
        if not math.isfinite(value):
            raise ConstraintError(f"constraint {text!r}: the limit must be a finite number")
        return cls(metric, op, value, str(text).strip())

    def ok(self, metrics: Mapping[str, float]) -> bool:
        v = metrics.get(self.metric)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return _OPS[self.op](v, self.value)

    def violation(self, metrics: Mapping[str, float]) -> float:
        """How far ``metrics`` lies outside the limit (0 when met): used to rank infeasible archs."""
        v = metrics.get(self.metric)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return math.inf  # unknown: as far as can be
        return 0.0 if self.ok(metrics) else abs(v - self.value)

    def __str__(self) -> str:
        return self.text or f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "maximize" or "minimize"

    @classmethod
    def parse(cls, text: str) -> Objective:
        if isinstance(text, Objective):
            return text
        t = str(text).strip()
        if _several(t):
            # 'a,b' is not read as two objectives: whether several are optimised, and how, is the strategy's to say
            raise ConstraintError(
                f"objective {text!r} names several metrics; give each one separately (repeat -o/--objective, or "
                "list them: objectives: [...]) and use a multi-objective strategy such as nsga2"
            )
        m = re.match(r"^(maximize|minimize|max|min)\s*[: ]\s*([A-Za-z_][A-Za-z0-9_]*)$", t)
        if m:
            d = "maximize" if m.group(1).startswith("max") else "minimize"
            return cls(m.group(2), d)
        m = re.match(r"^([+-]?)([A-Za-z_][A-Za-z0-9_]*)$", t)
        if m and m.group(2) not in _DIRECTIONS:
            return cls(m.group(2), "minimize" if m.group(1) == "-" else "maximize")
        raise ConstraintError(
            f"cannot read objective {text!r}; write 'maximize val_acc', 'minimize latency_ms' or '-lat_ms_fpga'"
        )

    def score(self, metrics: Mapping[str, float]) -> float:
        """The metric oriented so that greater is better (what strategies see)."""
        v = float(metrics[self.metric])
        return v if self.direction == "maximize" else -v

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    def __str__(self) -> str:
        return f"{self.direction} {self.metric}"


def _several(text: str) -> bool:
    """Whether objective ``text`` reads as a list (``a,b``, ``a;b``, ``a and b``) rather than one."""
    return bool(re.search(r"[,;&]|\s(and|&&)\s", text))
