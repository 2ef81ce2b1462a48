"""A latency lookup table: each distinct unit measured once on this machine; a network priced as the sum.

This is the ProxylessNAS / Once-for-All scheme: latency(net) ≈ Σ latency(unit), each unit timed alone on the device.
OFA keys its table on layer type, input/output shape, expand, kernel, stride and skip; a unit's key holds all of
these (``units.Unit.key``).

Calibration. Summing isolated units misses what only the whole network pays, and on a CPU the raw sum falls well short
of the measured latency: a unit timed alone, call after call, keeps its weights and buffers in the cache, and a
network timed alone can have the allocator return its freed activations to the OS after every call and page-fault them
back in. ``calibrate`` fits measured = a·(table sum) + b on a few measured networks (least squares) and ``predict``
applies it.

The table is a JSON file, written after every chunk of measurements (atomically), so an interrupted build resumes where
it stopped; its header records the settings and the machine's fingerprint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cost.layers import LayerSpec
from .machine import machine_fingerprint
from .runtime import check_runtime, check_threads, prepare, torch_threads
from .timing import calls_per_sample, check_stat, time_functions
from .units import LutError, Unit, split_units, unit_module

FORMAT = "nasforge-lut/1"


def calibration_conditions() -> dict[str, Any]:
    """When (UTC, ISO 8601) and under what load (the 1, 5 and 15-minute load averages, and the CPU count) a
    calibration was measured: a table calibrated on a busy machine predicts the busy machine's latencies."""
    import datetime

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # not every platform has load averages
        load = None
    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"calibrated_at": at, "load_avg": load, "cpus": os.cpu_count()}


class LatencyTable:
    """Per-unit latencies (ms) measured with one runtime and thread count, plus a linear calibration.

    Contract: ``predict(layers)`` = a·Σ entry(unit) + b over ``split_units(layers, granularity)`` (a=1, b=0 before
    ``calibrate`` or with ``calibrated=False``); a missing unit raises ``LutError`` naming the command that fills it.
    ``measure`` fills missing units, saving to ``path`` after every chunk.
    """

    # settings that decide the entries: a table on disk is reused only with the same ones
    _SETTINGS = ("runtime", "threads", "granularity", "stat")
    _ALL = (*_SETTINGS, "warmup", "repeats", "target_ms", "exporter")

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        runtime: str = "torch",
        threads: int = 1,
        granularity: str = "block",
        stat: str = "median",
        warmup: int = 5,
        repeats: int = 20,
        target_ms: float = 0.2,
        exporter: str = "legacy",
    ) -> None:
        self.path = None if path is None else Path(path)
        self.runtime, self.threads, self.granularity, self.stat = runtime, threads, granularity, stat
        self.warmup, self.repeats, self.target_ms, self.exporter = warmup, repeats, target_ms, exporter
        self.entries: dict[str, dict[str, float]] = {}
        self.calibration: dict[str, Any] = {"a": 1.0, "b": 0.0, "n": 0}
        self.machine: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._ALL}

    def __len__(self) -> int:
        return len(self.entries)

    # --- files --------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "settings": self.settings(),
            "machine": self.machine,
            "calibration": self.calibration,
            "entries": self.entries,
        }

    def save(self, path: str | Path | None = None) -> Path:
        p = Path(path) if path is not None else self.path
        if p is None:
            raise LutError("this lookup table has no file; pass a path to save()")
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=0))
        os.replace(tmp, p)  # atomic: an interrupted write never leaves a broken table
        return p

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise LutError(f"lookup table {p} does not exist; build it with `nasforge latency lut`") from None
        except (OSError, json.JSONDecodeError) as e:
            raise LutError(f"lookup table {p} cannot be read ({e}); delete it and build it again") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LutError(f"{p} is not a nasforge lookup table (format {FORMAT})")
        st = data.get("settings", {})
        t = cls(p, **{k: st[k] for k in cls._ALL if k in st})  # settings of older tables that no longer decide: skipped
        t.entries = {k: dict(v) for k, v in data.get("entries", {}).items()}
        t.calibration = dict(data.get("calibration", t.calibration))
        t.machine = data.get("machine")
        return t

    @classmethod
    def open(cls, path: str | Path, **settings: Any) -> LatencyTable:
        """The table at ``path`` to resume (its settings must equal the given ones), or a new one."""
        p = Path(path)
        if not p.exists():
            return cls(p, **settings)
        t = cls.load(p)
        want = cls(p, **settings)
        diff = [k for k in cls._SETTINGS if k in settings and getattr(t, k) != getattr(want, k)]
        if diff:
            have = ", ".join(f"{k}={getattr(t, k)!r}" for k in diff)
            raise LutError(f"lookup table {p} was built with {have}; use another file or the same settings")
        return t

    # --- prediction ---------------------------------------------------------------------------------------------------
    def units(self, layers: Sequence[LayerSpec]) -> list[Unit]:
        return split_units(layers, self.granularity)

    def missing(self, units: Iterable[Unit]) -> list[Unit]:
        seen: dict[str, Unit] = {}
        for u in units:
            if u.key not in self.entries and u.key not in seen:
                seen[u.key] = u
        return list(seen.values())

    def unit_ms(self, unit: Unit) -> float:
        try:
            return float(self.entries[unit.key]["ms"])
        except KeyError:
            where = f" in {self.path}" if self.path else ""
            raise LutError(
                f"unit {unit.specs[0].name or unit.specs[0].kind} is not in the lookup table{where}; "
                "build the table over more archs (`nasforge latency lut --archs N`) or let it measure missing units"
            ) from None

    def raw_sum(self, layers: Sequence[LayerSpec]) -> float:
        return float(sum(self.unit_ms(u) for u in self.units(layers)))

    def predict(self, layers: Sequence[LayerSpec], calibrated: bool = True) -> float:
        s = self.raw_sum(layers)
        if not calibrated:
            return s
        return float(self.calibration["a"] * s + self.calibration["b"])

    def calibrate(self, layer_lists: Sequence[Sequence[LayerSpec]], measured_ms: Sequence[float]) -> dict[str, Any]:
        """Fit measured = a·(LUT sum) + b by least squares over networks whose latency was measured; records when and
        under what load (``calibration_conditions``)."""
        x = np.array([self.raw_sum(lay) for lay in layer_lists], dtype=float)
        y = np.asarray(measured_ms, dtype=float)
        if len(x) != len(y) or len(x) == 0:
            raise LutError(f"calibration needs one measured latency per network, got {len(x)} and {len(y)}")
        fit = "line"
        if len(x) < 3 or np.ptp(x) == 0:
            a, b, fit = float(np.median(y / x)), 0.0, "ratio"  # too few points for a line: a ratio
        else:
            a, b = (float(v) for v in np.polyfit(x, y, 1))
            if a <= 0:
                # measured latency falling as the table's sums rise is noise (a loaded machine), not a model: a
                # non-positive slope would rank slower networks as faster; keep the order with a ratio
                a, b, fit = float(np.median(y / x)), 0.0, "ratio (the line's slope was not positive)"
        resid = y - (a * x + b)
        self.calibration = {"a": a, "b": b, "n": len(x), "fit": fit, "rmse_ms": float(np.sqrt(np.mean(resid**2))),
                            **calibration_conditions()}  # fmt: skip
        return self.calibration

    @property
    def calibrated(self) -> bool:
        """Whether ``calibrate`` has fitted the table on measured networks (a new table holds a = 1, b = 0)."""
        return int(self.calibration.get("n", 0) or 0) > 0

    # --- measurement --------------------------------------------------------------------------------------------------
    def measure(self, units: Iterable[Unit], *, chunk: int = 16, seed: int = 0, progress: bool = False) -> int:
        """Measure the units not yet in the table (``chunk`` at a time, interleaved), saving after each chunk when the
        table has a path. Returns how many were measured. Shows a rich progress bar when ``progress``."""
        check_runtime(self.runtime)
        check_threads(self.threads)
        check_stat(self.stat)
        todo = self.missing(units)
        if self.machine is None:
            self.machine = machine_fingerprint(self.runtime, self.threads)
        if not todo:
            return 0
        label = f"LUT ({self.runtime}, {self.threads} thread{'s' if self.threads > 1 else ''})"
        with _Bar(len(todo), label, progress) as bar, torch_threads(self.threads):
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                fns = []
                for u in part:
                    mod, shape = unit_module(u)
                    fns.append(prepare(mod, shape, self.runtime, self.threads, seed, self.exporter))
                inner = [calls_per_sample(f, self.target_ms) for f in fns]
                ts = time_functions(fns, warmup=self.warmup, repeats=self.repeats, inner=inner, seed=seed + start)
                for u, t, n in zip(part, ts, inner, strict=True):
                    self.entries[u.key] = {"ms": t.stat(self.stat), "spread": t.spread, "calls": n}
                if self.path is not None:
                    self.save()
                bar.advance(len(part))
        return len(todo)


class _Bar:
    """A rich progress bar, or nothing."""

    def __init__(self, total: int, label: str, show: bool) -> None:
        self.total, self.label, self.show = total, label, show
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeRemainingColumn())
            self._p.__enter__()
            self._task = self._p.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._p is not None:
            self._p.advance(self._task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)
