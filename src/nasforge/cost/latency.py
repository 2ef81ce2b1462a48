"""Measured latency on this machine, and the ``LatencyModel`` interface that every latency source shares.

How we time a model (the protocol of ProxylessNAS, OFA and nn-Meter, hardened for a shared, noisy machine):
batch 1, eval mode, ``torch.inference_mode``, a fixed thread count (1 by default: on a shared 2-core machine a second
thread is both slower and noisier), warm-up calls, then many repeats. When several models are measured together the
repeats are *interleaved* (one call of each model per round, in a fresh random order each round), so that a burst of
load from another process spreads over all models instead of spoiling one. ``measure_paired`` alternates A and B
(ABBA order, to cancel linear drift) and reports the per-round ratio, which is what a comparison needs. Every
measurement keeps all samples: the median, the minimum and a low quantile (q10) are the robust statistics; the spread
is IQR / median. The garbage collector is paused while timing, as ``timeit`` does.

Runtimes: ``torch`` (eager) and ``onnxruntime`` (the model exported with ``torch.onnx.export``; its session uses the
same thread count for intra-op parallelism and one inter-op thread).

Results are cached in an SQLite file under the cache directory (``$NASFORGE_CACHE_DIR``, else
``$XDG_CACHE_HOME/nasforge``, else ``~/.cache/nasforge``), keyed by arch key, family and its configuration, task,
machine fingerprint (CPU model, core count, torch/onnxruntime versions, thread count), runtime and protocol.

``LatencyModel``: ``model(arch) -> {"latency_ms": float}`` for one family and task, with three sources behind it
(``measured`` here, ``lut`` in ``cost/lut.py``, ``predictor`` in ``cost/predictor.py``), so that ``"latency_ms<=8"``
is an ordinary constraint. Instances are picklable (they hold only settings, paths and fitted models).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import logging
import math
import os
import platform
import sqlite3
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import NasforgeError
from ..space import Arch

if TYPE_CHECKING:
    from torch import nn

    from ..spaces.base import Family, Task

RUNTIMES = ("torch", "onnxruntime")
STATS = ("median", "min", "q10", "q25", "mean")
DEFAULT_WARMUP = 10
DEFAULT_REPEATS = 50


class LatencyError(NasforgeError, ValueError):
    """A bad latency setting (runtime, thread count, statistic) or an arch a latency model cannot price."""


# --- statistics -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """All samples of one model's repeats, in milliseconds per call, with robust statistics."""

    samples_ms: tuple[float, ...]

    def quantile(self, q: float) -> float:
        return float(np.quantile(np.asarray(self.samples_ms), q))

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    @property
    def min(self) -> float:
        return float(min(self.samples_ms))

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples_ms))

    @property
    def iqr(self) -> float:
        return self.quantile(0.75) - self.quantile(0.25)

    @property
    def spread(self) -> float:
        """IQR / median: a scale-free noise figure (0.05 = the middle half of the samples lies within 5%)."""
        m = self.median
        return self.iqr / m if m > 0 else math.inf

    def stat(self, name: str) -> float:
        if name == "median":
            return self.median
        if name == "min":
            return self.min
        if name == "mean":
            return self.mean
        if name in ("q10", "q25"):
            return self.quantile(int(name[1:]) / 100)
        raise LatencyError(f"unknown latency statistic {name!r}; use one of {', '.join(STATS)}")

    def summary(self) -> dict[str, float]:
        return {
            "median_ms": self.median,
            "min_ms": self.min,
            "q10_ms": self.quantile(0.1),
            "mean_ms": self.mean,
            "iqr_ms": self.iqr,
            "spread": self.spread,
            "repeats": len(self.samples_ms),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"samples_ms": list(self.samples_ms)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Timing:
        return cls(tuple(float(x) for x in d["samples_ms"]))


@dataclass(frozen=True)
class PairedTiming:
    """A and B measured alternately; ``ratios`` holds B/A for each round (A and B adjacent in time)."""

    a: Timing
    b: Timing
    ratios: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios B/A: below 1 means B is faster."""
        return float(np.median(self.ratios))

    @property
    def b_faster_share(self) -> float:
        return float(np.mean(np.asarray(self.ratios) < 1.0))

    def summary(self) -> dict[str, float]:
        r = np.asarray(self.ratios)
        return {
            "a_median_ms": self.a.median,
            "b_median_ms": self.b.median,
            "ratio_b_over_a": self.ratio,
            "ratio_q25": float(np.quantile(r, 0.25)),
            "ratio_q75": float(np.quantile(r, 0.75)),
            "b_faster_share": self.b_faster_share,
        }


# --- threads and runtimes ---------------------------------------------------------------------------------------------
def _check_threads(threads: int) -> int:
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise LatencyError(f"thread count must be a positive integer, got {threads!r}")
    return threads


def _check_stat(stat: str) -> str:
    if stat not in STATS:
        raise LatencyError(f"unknown latency statistic {stat!r}; use one of {', '.join(STATS)}")
    return stat


def _check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise LatencyError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    return runtime


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` and restore the previous count afterwards."""
    import torch

    _check_threads(threads)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def export_onnx(model: nn.Module, input_shape: Sequence[int], exporter: str = "dynamo") -> bytes:
    """The model (eval mode) as serialised ONNX for a batch of one ``input_shape`` input.

    ``exporter="dynamo"`` is torch's default exporter (needs onnxscript, about 1 s per small model);
    ``"legacy"`` is the TorchScript exporter (about 20× faster, deprecated by torch but still present).
    """
    import torch

    if exporter not in ("dynamo", "legacy"):
        raise LatencyError(f"unknown ONNX exporter {exporter!r}; use 'dynamo' or 'legacy'")
    model.eval()
    x = torch.zeros(1, *input_shape)
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)  # the exporter warns about torchvision ops on every call; none of ours use them
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                prog = torch.onnx.export(model, (x,), dynamo=True, verbose=False, optimize=True)
                return prog.model_proto.SerializeToString()
            f = io.BytesIO()
            torch.onnx.export(model, (x,), f, dynamo=False, input_names=["input"], do_constant_folding=True)
            return f.getvalue()
    finally:
        log.setLevel(level)


def onnx_session(onnx: bytes, threads: int = 1) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads, one inter-op thread, all graph optimisations."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = _check_threads(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])


def prepare(
    model: nn.Module,
    input_shape: Sequence[int],
    runtime: str = "torch",
    threads: int = 1,
    seed: int = 0,
    exporter: str = "dynamo",
) -> Callable[[], Any]:
    """A zero-argument function that runs one batch-1 inference of ``model`` in ``runtime``.

    The torch runner must be called inside ``torch_threads(threads)`` (``measure_models`` does that).
    """
    import torch

    _check_runtime(runtime)
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *input_shape, generator=g)
    if runtime == "torch":

        def run_torch() -> Any:
            with torch.inference_mode():
                return model(x)

        return run_torch
    sess = onnx_session(export_onnx(model, input_shape, exporter), threads)
    feed = {sess.get_inputs()[0].name: x.numpy()}

    def run_ort() -> Any:
        return sess.run(None, feed)

    return run_ort


# --- timing loops -----------------------------------------------------------------------------------------------------
def _once(fn: Callable[[], Any], inner: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(inner):
        fn()
    return (time.perf_counter_ns() - t0) / inner / 1e6


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def time_functions(
    fns: Sequence[Callable[[], Any]],
    *,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    inner: int | Sequence[int] = 1,
    interleave: bool = True,
    seed: int = 0,
) -> list[Timing]:
    """Time each function ``repeats`` times (each sample the mean of ``inner`` back-to-back calls; ``inner`` may be
    one count per function, so that microsecond layers are timed over enough calls to rise above the timer's cost).

    Interleaved: every round calls each function once, in a random order drawn from ``seed``.
    """
    inners = [inner] * len(fns) if isinstance(inner, int) else [int(i) for i in inner]
    if repeats < 1 or warmup < 0 or len(inners) != len(fns) or any(i < 1 for i in inners):
        raise LatencyError(f"need repeats >= 1, warmup >= 0 and inner >= 1 per function; got {repeats}, {warmup}, "
                           f"{inner}")
    rng = np.random.default_rng(seed)
    samples: list[list[float]] = [[] for _ in fns]
    with _no_gc():
        for fn in fns:
            for _ in range(warmup):
                fn()
        if interleave:
            order = np.arange(len(fns))
            for _ in range(repeats):
                rng.shuffle(order)
                for i in order:
                    samples[i].append(_once(fns[i], inners[i]))
        else:
            for i, fn in enumerate(fns):
                samples[i] = [_once(fn, inners[i]) for _ in range(repeats)]
    return [Timing(tuple(s)) for s in samples]


def calls_per_sample(fn: Callable[[], Any], target_ms: float = 0.2, max_calls: int = 100) -> int:
    """How many back-to-back calls of ``fn`` last about ``target_ms`` (at least 1): a sample of a microsecond layer
    must be long enough for the timer's own cost and jitter to vanish in it."""
    fn()
    t = min(_once(fn, 1) for _ in range(3))
    return int(min(max_calls, max(1, math.ceil(target_ms / max(t, 1e-6)))))


def _shapes(input_shapes: Sequence[int] | Sequence[Sequence[int]], n: int) -> list[tuple[int, ...]]:
    if input_shapes and isinstance(input_shapes[0], int):
        return [tuple(input_shapes)] * n  # type: ignore[arg-type]
    shapes = [tuple(s) for s in input_shapes]  # type: ignore[arg-type]
    if len(shapes) != n:
        raise LatencyError(f"got {n} models but {len(shapes)} input shapes")
    return shapes


def measure_models(
    models: Sequence[nn.Module],
    input_shapes: Sequence[int] | Sequence[Sequence[int]],
    *,
    runtime: str = "torch",
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    inner: int | Sequence[int] = 1,
    interleave: bool = True,
    seed: int = 0,
    exporter: str = "dynamo",
) -> list[Timing]:
    """Measure several models with interleaved repeats. ``input_shapes``: one shape (without batch) or one per model."""
    shapes = _shapes(input_shapes, len(models))
    with torch_threads(_check_threads(threads)):
        fns = [prepare(m, s, runtime, threads, seed, exporter) for m, s in zip(models, shapes, strict=True)]
        return time_functions(fns, warmup=warmup, repeats=repeats, inner=inner, interleave=interleave, seed=seed)


def measure_model(model: nn.Module, input_shape: Sequence[int], **kw: Any) -> Timing:
    """Measure one model; keywords as ``measure_models``."""
    return measure_models([model], [tuple(input_shape)], **kw)[0]


def measure_paired(
    a: nn.Module,
    b: nn.Module,
    input_shapes: Sequence[int] | Sequence[Sequence[int]],
    *,
    runtime: str = "torch",
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    inner: int = 1,
    seed: int = 0,
    exporter: str = "dynamo",
) -> PairedTiming:
    """Measure A and B alternately in ABBA rounds; each round gives one sample of each and one ratio B/A."""
    sa, sb = _shapes(input_shapes, 2)
    ta: list[float] = []
    tb: list[float] = []
    with torch_threads(_check_threads(threads)):
        fa = prepare(a, sa, runtime, threads, seed, exporter)
        fb = prepare(b, sb, runtime, threads, seed, exporter)
        with _no_gc():
            for _ in range(warmup):
                fa()
                fb()
            for r in range(repeats):
                # ABBA: alternating which goes first cancels a linear drift within each pair of rounds
                if r % 2 == 0:
                    ta.append(_once(fa, inner))
                    tb.append(_once(fb, inner))
                else:
                    tb.append(_once(fb, inner))
                    ta.append(_once(fa, inner))
    ratios = tuple(y / x for x, y in zip(ta, tb, strict=True))
    return PairedTiming(Timing(tuple(ta)), Timing(tuple(tb)), ratios)


# --- machine fingerprint and cache ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fingerprint(runtime: str = "torch", threads: int = 1) -> dict[str, Any]:
    """What a latency depends on besides the model: CPU model, core count, library versions, threads, runtime."""
    import torch

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        ort_version = "none"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "system": platform.system(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "threads": _check_threads(threads),
        "runtime": _check_runtime(runtime),
    }


def _hash(obj: Any, n: int = 20) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def default_cache_dir() -> Path:
    """``$NASFORGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/nasforge``, else ``~/.cache/nasforge``."""
    if os.environ.get("NASFORGE_CACHE_DIR"):
        return Path(os.environ["NASFORGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasforge"


class LatencyCache:
    """Timings by key in ``<cache_dir>/latency.sqlite`` (one row per key; safe for several processes)."""

    FILE = "latency.sqlite"

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    @property
    def path(self) -> Path:
        return (self.cache_dir or default_cache_dir()) / self.FILE

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=30)
            con.execute("CREATE TABLE IF NOT EXISTS latency (key TEXT PRIMARY KEY, timing TEXT, info TEXT, at REAL)")
        except (OSError, sqlite3.Error) as e:
            msg = f"cannot use the latency cache {self.path}: {e}; set --cache-dir or NASFORGE_CACHE_DIR"
            raise LatencyError(msg) from None
        return con

    def get(self, key: str) -> Timing | None:
        con = self._connect()
        try:
            row = con.execute("SELECT timing FROM latency WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else Timing.from_dict(json.loads(row[0]))

    def put(self, key: str, timing: Timing, info: Mapping[str, Any] | None = None) -> None:
        con = self._connect()
        try:
            with con:
                con.execute(
                    "INSERT OR REPLACE INTO latency VALUES (?, ?, ?, ?)",
                    (key, json.dumps(timing.to_dict()), json.dumps(dict(info or {}), default=str), time.time()),
                )
        finally:
            con.close()

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        con = self._connect()
        try:
            return int(con.execute("SELECT COUNT(*) FROM latency").fetchone()[0])
        finally:
            con.close()


# --- the LatencyModel interface ---------------------------------------------------------------------------------------
def resolve_family(family: Family | str) -> Family:
    if isinstance(family, str):
        from ..spaces import create_family

        return create_family(family)
    return family


def network_input_shape(family: Family, arch: Mapping[str, Any], task: Task) -> tuple[int, ...]:
    """The input shape (without batch) of the network built for ``arch``.

    A family whose resolution is an arch dimension (mobilenet) may say so with ``input_shape(arch, task)``; otherwise
    the first layer of the layer list consumes the network input, so its ``in_shape`` is the answer.
    """
    fn = getattr(family, "input_shape", None)
    if callable(fn):
        return tuple(fn(arch, task))
    lays = family.layers(arch, task)
    return tuple(lays[0].in_shape) if lays else tuple(task.input_shape)


class LatencyModel(ABC):
    """A latency source for one family and task: ``model(arch) -> {metric: milliseconds}``.

    Contract: ``predict(archs)`` returns one latency in ms per arch (a float array); an arch outside the family's space
    raises ``LatencyError`` saying which family the model serves. ``__call__`` is what a study uses as a cost model.
    Instances are picklable and hold no open files or sessions.
    """

    source: ClassVar[str] = ""

    def __init__(self, family: Family | str, task: Task, metric: str = "latency_ms") -> None:
        self.family = family
        self.task = task
        self.metric = metric

    @property
    def fam(self) -> Family:
        return resolve_family(self.family)

    def check(self, arch: Mapping[str, Any]) -> Arch:
        fam = self.fam
        try:
            return fam.space.validate(arch)
        except NasforgeError as e:
            raise LatencyError(
                f"this {self.source or 'latency'} model serves family {fam.name!r}, and the arch does not belong to "
                f"it ({e}); use a latency model built for the arch's family"
            ) from None

    @abstractmethod
    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        return {self.metric: float(self.predict([arch])[0])}

    def config(self) -> dict[str, Any]:
        fam = self.fam
        return {"source": self.source, "family": fam.name, "task": self.task.to_dict(), "metric": self.metric}


class MeasuredLatency(LatencyModel):
    """Latency measured on this machine (and cached), as the ``stat`` of ``repeats`` interleaved calls."""

    source = "measured"

    def __init__(
        self,
        family: Family | str,
        task: Task,
        *,
        runtime: str = "torch",
        threads: int = 1,
        stat: str = "median",
        warmup: int = DEFAULT_WARMUP,
        repeats: int = DEFAULT_REPEATS,
        inner: int = 1,
        seed: int = 0,
        exporter: str = "dynamo",
        cache: bool = True,
        cache_dir: str | Path | None = None,
        metric: str = "latency_ms",
    ) -> None:
        super().__init__(family, task, metric)
        self.runtime, self.threads, self.stat = runtime, threads, stat
        self.warmup, self.repeats, self.inner, self.seed, self.exporter = warmup, repeats, inner, seed, exporter
        self.cache, self.cache_dir = cache, cache_dir

    def key(self, arch: Arch) -> str:
        fam = self.fam
        return _hash(
            {
                "arch": arch.key,
                "family": fam.name,
                "family_config": fam.config(),
                "task": self.task.to_dict(),
                "machine": machine_fingerprint(self.runtime, self.threads),
                "protocol": [self.warmup, self.repeats, self.inner, self.exporter if self.runtime != "torch" else ""],
            }
        )

    def timings(self, archs: Sequence[Mapping[str, Any]], refresh: bool = False) -> list[Timing]:
        """Timings of every arch: cached ones read, the others measured together (interleaved) and stored."""
        _check_stat(self.stat)
        checked = [self.check(a) for a in archs]
        store = LatencyCache(self.cache_dir) if self.cache else None
        keys = [self.key(a) for a in checked]
        out: list[Timing | None] = [None] * len(checked)
        if store is not None and not refresh:
            out = [store.get(k) for k in keys]
        todo = [i for i, t in enumerate(out) if t is None]
        if todo:
            fam = self.fam
            todo_archs = [checked[i] for i in todo]
            models = [fam.build(a, self.task) for a in todo_archs]
            shapes = [network_input_shape(fam, a, self.task) for a in todo_archs]
            new = measure_models(
                models,
                shapes,
                runtime=self.runtime,
                threads=self.threads,
                warmup=self.warmup,
                repeats=self.repeats,
                inner=self.inner,
                seed=self.seed,
                exporter=self.exporter,
            )
            for i, t in zip(todo, new, strict=True):
                out[i] = t
                if store is not None:
                    store.put(keys[i], t, {"arch": checked[i].to_json(), "family": fam.name, "runtime": self.runtime})
        return [t for t in out if t is not None]

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array([t.stat(self.stat) for t in self.timings(archs)], dtype=float)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "runtime": self.runtime,
            "threads": self.threads,
            "stat": self.stat,
            "warmup": self.warmup,
            "repeats": self.repeats,
        }


SOURCES = ("measured", "lut", "predictor")


def latency_model(source: str, family: Family | str, task: Task, **kw: Any) -> LatencyModel:
    """The latency model for ``source``: ``measured`` (keywords of ``MeasuredLatency``), ``lut`` (``table=`` a
    ``LatencyTable`` or a path) or ``predictor`` (``predictor=`` a fitted predictor or a path)."""
    if source == "measured":
        return MeasuredLatency(family, task, **kw)
    if source == "lut":
        from .lut import LutLatency

        return LutLatency(family, task, **kw)
    if source == "predictor":
        from .predictor import PredictorLatency

        return PredictorLatency(family, task, **kw)
    raise LatencyError(f"unknown latency source {source!r}; use one of {', '.join(SOURCES)}")
