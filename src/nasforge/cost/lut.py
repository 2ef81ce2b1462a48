"""A latency lookup table over layer specs: measure each distinct unit once, predict a network as the sum.

This is the ProxylessNAS / Once-for-All scheme: latency(net) ≈ Σ latency(unit), each unit timed alone on the device.
OFA keys its table on layer type, input/output shape, expand, kernel, stride and skip; ``LayerSpec.key()`` holds all
of these (expand and skip ride in ``extra``), so a unit's key is built from its specs' keys and is stable across runs.

Granularity. ``"block"`` (default): consecutive specs that carry ``("block", ...)`` in ``extra`` and belong to the same
block (same name once the trailing sub-layer parts ``expand|dw|project|conv|bn|act|add`` are stripped, e.g.
``s2.b1.dw.conv`` → ``s2.b1``) form one unit, timed as the whole block with its residual add, as ProxylessNAS and OFA
time whole MBConv blocks; every other spec is its own unit. ``"layer"``: every spec is its own unit. Blocks are the
better unit: their internal per-call overhead (module calls, the skip add) is measured, not guessed.

How a unit is built from its specs (``unit_module``): conv → ``Conv2d`` (padding solved from the shapes, groups,
bias), linear → ``Linear``, bn → ``BatchNorm`` (eval), ln → ``LayerNorm``, act → ReLU unless ``extra`` or the table
says otherwise (mobilenet uses ReLU6), pool → global average pool when it covers the whole map, else max pool
(``extra`` ``("pool", "avg")`` for average), reshape → flatten, add/mul/concat → the op with a stored second operand.

Calibration. Summing isolated units misses what only the whole network pays. On this machine (torch eager, 1 thread)
the raw block sum is only 35-55% of the measured latency: a unit timed alone, call after call, keeps its weights and
buffers in the 2 MiB L2 cache (evicting the cache before each call brings the sum to 55-65%), and a network timed
alone can have glibc return its freed activations to the OS after every call and page-fault them back in (pinning
the allocator's trim/mmap thresholds took one network from 15.5 to 9.5 ms). ``calibrate`` fits
measured = a·(LUT sum) + b on a few measured networks (least squares) and ``predict`` applies it.

The table is a JSON file, written after every chunk of measurements (atomically), so an interrupted build resumes where
it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .latency import (
    LatencyError,
    LatencyModel,
    _check_runtime,
    _check_stat,
    _check_threads,
    calls_per_sample,
    machine_fingerprint,
    prepare,
    resolve_family,
    time_functions,
    torch_threads,
)
from .layers import LayerSpec, conv_out

if TYPE_CHECKING:
    from ..spaces.base import Family, Task

FORMAT = "nasforge-lut/1"
GRANULARITIES = ("block", "layer")
_SUBPARTS = {"expand", "dw", "project", "conv", "bn", "act", "add", "pw"}
# activation of the specs' "act" layers, for families whose specs do not say (LayerSpec has no act type)
_FAMILY_ACT = {"mobilenet": "relu6"}


class LutError(LatencyError):
    """A lookup table that cannot be read, does not match its settings, or lacks an entry."""


# --- units ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """What the table prices: one layer, or one block of several layers (measured together)."""

    specs: tuple[LayerSpec, ...]

    @property
    def key(self) -> str:
        if len(self.specs) == 1:
            return self.specs[0].key()
        # readable head (shapes and the block's extra facts) + a hash of every member's key, which decides the rest
        first, last = self.specs[0], self.specs[-1]
        full = " ; ".join(s.key() for s in self.specs)
        ex = ",".join(f"{a}={b}" for a, b in first.extra)
        kernels = "/".join(f"{s.kernel[0]}" for s in self.specs if s.kind == "conv")
        return (
            f"block|in={'x'.join(map(str, first.in_shape))}|out={'x'.join(map(str, last.out_shape))}|k={kernels}"
            f"|n={len(self.specs)}|{ex}|{hashlib.sha1(full.encode()).hexdigest()[:12]}"
        )

    @property
    def residual(self) -> bool:
        """A block ending in an add that sums the block's input back (MBConv's skip)."""
        return len(self.specs) > 1 and self.specs[-1].kind == "add"

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.specs)


def _block_of(spec: LayerSpec) -> str | None:
    if "block" not in dict(spec.extra):
        return None
    parts = spec.name.split(".")
    while len(parts) > 1 and parts[-1] in _SUBPARTS:
        parts.pop()
    return ".".join(parts)


def split_units(layers: Sequence[LayerSpec], granularity: str = "block") -> list[Unit]:
    """The layer list cut into table units (see the module docstring)."""
    if granularity not in GRANULARITIES:
        raise LutError(f"unknown LUT granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")
    if granularity == "layer":
        return [Unit((s,)) for s in layers]
    out: list[Unit] = []
    cur: list[LayerSpec] = []
    cur_block: str | None = None
    for s in layers:
        b = _block_of(s)
        if cur and (b is None or b != cur_block):
            out.append(Unit(tuple(cur)))
            cur = []
        if b is None:
            out.append(Unit((s,)))
        else:
            cur.append(s)
        cur_block = b
    if cur:
        out.append(Unit(tuple(cur)))
    return out


# --- one module per unit ----------------------------------------------------------------------------------------------
def _padding(h: int, out: int, k: int, s: int) -> int:
    for p in [k // 2, *range(k)]:
        if conv_out(h, k, s, p) == out:
            return p
    raise LutError(f"no padding maps size {h} to {out} with kernel {k} and stride {s}")


def _act_module(name: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "gelu": nn.GELU, "silu": nn.SiLU,
            "sigmoid": nn.Sigmoid}
    if name not in acts:
        raise LutError(f"unknown activation {name!r} for the LUT; use one of {', '.join(acts)}")
    return acts[name]()


def layer_module(spec: LayerSpec, act: str = "relu") -> tuple[nn.Module, tuple[int, ...]]:
    """A one-layer module equivalent to ``spec`` in cost, and the input shape (without batch) to feed it."""
    k, i, o, ex = spec.kind, spec.in_shape, spec.out_shape, dict(spec.extra)
    if k == "conv":
        p = _padding(i[1], o[1], spec.kernel[0], spec.stride)
        return nn.Conv2d(i[0], o[0], spec.kernel, spec.stride, p, groups=spec.groups, bias=spec.bias), i
    if k == "linear":
        return nn.Linear(i[-1], o[-1], bias=spec.bias), i
    if k == "bn":
        return (nn.BatchNorm2d(i[0]) if len(i) == 3 else nn.BatchNorm1d(i[0])), i
    if k == "ln":
        return nn.LayerNorm(i[-1]), i
    if k == "act":
        return _act_module(str(ex.get("act", act))), i
    if k == "pool":
        if len(o) == 3 and o[1:] == (1, 1) and tuple(spec.kernel) == tuple(i[1:]):
            return nn.AdaptiveAvgPool2d(1), i
        p = _padding(i[1], o[1], spec.kernel[0], spec.stride)
        if ex.get("pool") == "avg":
            return nn.AvgPool2d(spec.kernel, spec.stride, p, count_include_pad=False), i
        return nn.MaxPool2d(spec.kernel, spec.stride, p), i
    if k == "reshape":
        return (nn.Flatten() if len(o) == 1 else _Reshape(o)), i
    if k in ("add", "mul"):
        return _WithOperand(k, torch.randn(1, *o)), o
    if k == "concat":
        half = i[0] // 2
        return _WithOperand(k, torch.randn(1, half, *i[1:])), (i[0] - half, *i[1:])
    raise LutError(f"the LUT cannot build a layer of kind {k!r} ({spec.name}); price it with the learned predictor")


def unit_module(unit: Unit, act: str = "relu") -> tuple[nn.Module, tuple[int, ...]]:
    """The module that runs ``unit`` and its input shape: a single layer, or the block's layers in a chain (plus the
    skip when the block ends in an add)."""
    if len(unit.specs) == 1:
        return layer_module(unit.specs[0], act)
    body = unit.specs[:-1] if unit.residual else unit.specs
    mods = [layer_module(s, act)[0] for s in body]
    return _Chain(mods, unit.residual), unit.specs[0].in_shape


class _Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class _WithOperand(nn.Module):
    """A binary op whose second operand is a stored tensor (the other branch of an add, mul or concat)."""

    def __init__(self, op: str, other: torch.Tensor) -> None:
        super().__init__()
        self.op = op
        self.register_buffer("other", other)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "add":
            return x + self.other
        if self.op == "mul":
            return x * self.other
        return torch.cat([x, self.other], 1)


class _Chain(nn.Module):
    """A block's layers in order, plus the skip (input added to the output) when the block has one."""

    def __init__(self, mods: list[nn.Module], residual: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(*mods)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


# --- the table --------------------------------------------------------------------------------------------------------
class LatencyTable:
    """Per-unit latencies (ms) measured with one runtime and thread count, plus a linear calibration.

    Contract: ``predict(layers)`` = a·Σ entry(unit) + b over ``split_units(layers, granularity)`` (a=1, b=0 before
    ``calibrate`` or with ``calibrated=False``); a missing unit raises ``LutError`` naming the command that fills it.
    ``measure`` fills missing units, saving to ``path`` after every chunk.
    """

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
        act: str = "relu",
        exporter: str = "legacy",
    ) -> None:
        self.path = None if path is None else Path(path)
        self.runtime, self.threads, self.granularity, self.stat = runtime, threads, granularity, stat
        self.warmup, self.repeats, self.target_ms, self.act, self.exporter = warmup, repeats, target_ms, act, exporter
        self.entries: dict[str, dict[str, float]] = {}
        self.calibration: dict[str, float] = {"a": 1.0, "b": 0.0, "n": 0}
        self.machine: dict[str, Any] | None = None

    # settings that decide the entries: a table on disk is reused only with the same ones
    _SETTINGS = ("runtime", "threads", "granularity", "stat", "act")

    def settings(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in self._SETTINGS},
            "warmup": self.warmup,
            "repeats": self.repeats,
            "target_ms": self.target_ms,
            "exporter": self.exporter,
        }

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
        known = {k: st[k] for k in ("runtime", "threads", "granularity", "stat", "warmup", "repeats", "target_ms",
                                    "act", "exporter") if k in st}
        t = cls(p, **known)
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

    def calibrate(self, layer_lists: Sequence[Sequence[LayerSpec]], measured_ms: Sequence[float]) -> dict[str, float]:
        """Fit measured = a·(LUT sum) + b by least squares over networks whose latency was measured."""
        x = np.array([self.raw_sum(lay) for lay in layer_lists], dtype=float)
        y = np.asarray(measured_ms, dtype=float)
        if len(x) != len(y) or len(x) == 0:
            raise LutError(f"calibration needs one measured latency per network, got {len(x)} and {len(y)}")
        if len(x) < 3 or np.ptp(x) == 0:
            a, b = float(np.median(y / x)), 0.0  # too few points for a line: a ratio
        else:
            a, b = (float(v) for v in np.polyfit(x, y, 1))
        resid = y - (a * x + b)
        self.calibration = {"a": a, "b": b, "n": len(x), "rmse_ms": float(np.sqrt(np.mean(resid**2)))}
        return self.calibration

    # --- measurement --------------------------------------------------------------------------------------------------
    def measure(self, units: Iterable[Unit], *, chunk: int = 16, seed: int = 0, progress: bool = False) -> int:
        """Measure the units not yet in the table (``chunk`` at a time, interleaved), saving after each chunk when the
        table has a path. Returns how many were measured. Shows a rich progress bar when ``progress``."""
        _check_runtime(self.runtime)
        _check_threads(self.threads)
        _check_stat(self.stat)
        todo = self.missing(units)
        if self.machine is None:
            self.machine = machine_fingerprint(self.runtime, self.threads)
        if not todo:
            return 0
        bar = _Bar(len(todo), f"LUT ({self.runtime}, {self.threads} thread{'s' if self.threads > 1 else ''})",
                   progress)
        done = 0
        with bar, torch_threads(self.threads):
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                fns = []
                for u in part:
                    mod, shape = unit_module(u, self.act)
                    fns.append(prepare(mod, shape, self.runtime, self.threads, seed, self.exporter))
                inner = [calls_per_sample(f, self.target_ms) for f in fns]
                ts = time_functions(fns, warmup=self.warmup, repeats=self.repeats, inner=inner, seed=seed + start)
                for u, t, n in zip(part, ts, inner, strict=True):
                    self.entries[u.key] = {"ms": t.stat(self.stat), "spread": t.spread, "calls": n}
                done += len(part)
                if self.path is not None:
                    self.save()
                bar.advance(len(part))
        return done


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


# --- families ---------------------------------------------------------------------------------------------------------
def family_act(family: Family) -> str:
    """The activation a family's "act" specs stand for (its configuration's ``act``, else the family's default)."""
    return str(family.config().get("act", _FAMILY_ACT.get(family.name, "relu")))


def family_units(
    family: Family, task: Task, archs: Iterable[Mapping[str, Any]], granularity: str = "block"
) -> list[Unit]:
    """The distinct units of the given archs' networks, in first-seen order."""
    seen: dict[str, Unit] = {}
    for a in archs:
        for u in split_units(family.layers(family.space.validate(a), task), granularity):
            seen.setdefault(u.key, u)
    return list(seen.values())


def sample_archs(family: Family, n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [family.space.sample(rng) for _ in range(n)]


def build_table(
    family: Family | str,
    task: Task,
    path: str | Path | None = None,
    *,
    archs: Sequence[Mapping[str, Any]] | None = None,
    n_archs: int = 2000,
    seed: int = 0,
    progress: bool = False,
    chunk: int = 16,
    **settings: Any,
) -> LatencyTable:
    """Build (or resume) the table of ``family``: the units of ``archs`` (default: ``n_archs`` sampled archs, enough
    to cover every unit of the mobilenet space with high probability)."""
    fam = resolve_family(family)
    settings.setdefault("act", family_act(fam))
    table = LatencyTable.open(path, **settings) if path is not None else LatencyTable(**settings)
    if archs is None:
        archs = sample_archs(fam, n_archs, seed) if fam.space.size > n_archs else list(fam.space.grid())
    table.measure(family_units(fam, task, archs, table.granularity), chunk=chunk, seed=seed, progress=progress)
    return table


class LutLatency(LatencyModel):
    """Latency from a lookup table (calibrated LUT sum). ``table``: a ``LatencyTable`` or the path of one.

    ``on_missing="measure"`` measures units the table lacks (and saves them when the table has a file);
    ``"error"`` raises ``LutError``.
    """

    source = "lut"

    def __init__(
        self,
        family: Family | str,
        task: Task,
        table: LatencyTable | str | Path,
        *,
        calibrated: bool = True,
        on_missing: str = "measure",
        metric: str = "latency_ms",
    ) -> None:
        super().__init__(family, task, metric)
        self.table = table
        self.calibrated = calibrated
        self.on_missing = on_missing

    @property
    def lut(self) -> LatencyTable:
        if not isinstance(self.table, LatencyTable):
            self.table = LatencyTable.load(self.table)
        return self.table

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if self.on_missing not in ("measure", "error"):
            raise LutError(f"on_missing must be 'measure' or 'error', got {self.on_missing!r}")
        fam, lut = self.fam, self.lut
        lays = [fam.layers(self.check(a), self.task) for a in archs]
        if self.on_missing == "measure":
            lut.measure([u for lay in lays for u in lut.units(lay)])
        return np.array([lut.predict(lay, self.calibrated) for lay in lays], dtype=float)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "table": str(self.lut.path), "calibrated": self.calibrated}


__all__ = [
    "GRANULARITIES",
    "LatencyTable",
    "LutError",
    "LutLatency",
    "Unit",
    "build_table",
    "family_units",
    "layer_module",
    "split_units",
    "unit_module",
]
