"""The metric table: every metric's name, unit, direction, and whether it is cheap. Plain data, no torch.

One table read by everything that needs to know what a metric is: constraints (which units a limit may carry),
objectives (a default direction), readable numbers (``units.human``), the CLI's tables, the report's axes and the
dashboard. A cost model, an evaluator or a latency source declares the metrics it produces by name; a name that is not
in the table is looked up by its patterns (``lat_ms_<device>``, ``acc12_<set>_<split>``, ``*_bytes``, ``*_ms``), and
anything else is a plain number with no unit and no known direction.

Units: ``count`` (parameters, MACs; limits take K/M/G), ``bytes`` (limits take B, KB/MB/GB, KiB/MiB/GiB), ``ms``
(limits take us/ms/s, stored in milliseconds), ``s``, ``percent``, ``uJ``, ``loss``, ``epoch`` and ``""`` (none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = ("count", "bytes", "ms", "s", "percent", "uJ", "loss", "epoch", "")
DIRECTIONS = ("minimize", "maximize", "")


@dataclass(frozen=True)
class Metric:
    """What a metric is. ``cheap``: known without training (constraints on it are checked before evaluation)."""

    name: str
    unit: str = ""
    direction: str = ""  # the usual goal: "minimize" (costs, losses), "maximize" (accuracies), "" (unknown)
    cheap: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"metric {self.name!r}: unit {self.unit!r} is not one of {UNITS}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction {self.direction!r} is not one of {DIRECTIONS}")


METRICS: dict[str, Metric] = {}


def register_metric(m: Metric) -> Metric:
    """Add a metric to the table (a cost model or evaluator declaring what it produces). Re-adding the same is fine."""
    old = METRICS.get(m.name)
    if old is not None and old != m:
        raise ValueError(f"metric {m.name!r} is declared twice, differently: {old} and {m}")
    METRICS[m.name] = m
    return m


for _m in (
    # analytic costs of a layer list (cost/counts.py): all cheap
    Metric("params", "count", "minimize", True, "parameters (weights, biases, norm affine), as numel() counts them"),
    Metric("macs", "count", "minimize", True, "multiply-accumulates of one inference at batch 1"),
    Metric("size", "bytes", "minimize", True, "weight storage at the study's bit width (fp32 by default)"),
    Metric("peak_mem", "bytes", "minimize", True, "peak activation memory at fp32 (MCUNet's in-place rule)"),
    Metric("flash", "bytes", "minimize", True, "weights at int8 (a microcontroller's flash)"),
    Metric("sram", "bytes", "minimize", True, "peak activation memory at int8 (a microcontroller's SRAM)"),
    Metric("energy_uj", "uJ", "minimize", True, "energy of one inference, Horowitz 45 nm"),
    Metric("latency_ms", "ms", "minimize", True, "latency of one inference (measured, lookup table or predictor)"),
    # what training reports (evaluators/train.py)
    Metric("val_acc", "percent", "maximize", False, "validation accuracy of the best epoch"),
    Metric("test_acc", "percent", "maximize", False, "test accuracy of the best epoch's weights"),
    Metric("val_loss", "loss", "minimize", False, "validation cross-entropy of the best epoch"),
    Metric("train_loss", "loss", "minimize", False, "training cross-entropy of the last epoch"),
    Metric("best_epoch", "epoch", "", False, "the epoch whose weights were kept"),
    Metric("train_time_s", "s", "minimize", False, "wall time of training"),
):
    register_metric(_m)

# names that are not in the table: (pattern, unit, direction, cheap)
_PATTERNS: tuple[tuple[re.Pattern[str], str, str, bool], ...] = (
    (re.compile(r"^lat(ency)?_ms(_.+)?$"), "ms", "minimize", True),  # a table's per-device latency columns
    (re.compile(r"^acc\d*_.+$|^.+_acc$"), "percent", "maximize", False),  # acc12_cifar10_val, top1_acc
    (re.compile(r"^.+_bytes$"), "bytes", "minimize", True),
    (re.compile(r"^.+_ms$"), "ms", "minimize", False),
    (re.compile(r"^.+_loss$"), "loss", "minimize", False),
    (re.compile(r"^.+_(time_)?s$"), "s", "minimize", False),
)


def metric(name: str) -> Metric:
    """The table's entry for ``name``, else one inferred from its name, else a plain number (no unit, no direction)."""
    m = METRICS.get(name)
    if m is not None:
        return m
    for pat, unit, direction, cheap in _PATTERNS:
        if pat.match(name):
            return Metric(name, unit, direction, cheap)
    return Metric(name)


def unit(name: str) -> str:
    return metric(name).unit


def direction(name: str, default: str = "maximize") -> str:
    """The metric's usual goal, or ``default`` when the table does not know one."""
    return metric(name).direction or default


COST_METRICS: tuple[str, ...] = ("params", "macs", "size", "peak_mem", "flash", "sram", "energy_uj")
