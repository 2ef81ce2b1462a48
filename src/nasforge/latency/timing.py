"""Timing plain functions robustly, and the statistics of the samples. No torch here.

How we time (the protocol of ProxylessNAS, OFA and nn-Meter, hardened for a shared, noisy machine): warm-up calls,
then many repeats. When several functions are timed together the repeats are *interleaved* (one call of each per
round, in a fresh random order each round), so that a burst of load from another process spreads over all of them
instead of spoiling one. Every measurement keeps all samples: the median, the minimum and a low quantile (q10) are the
robust statistics; the spread is IQR / median. The garbage collector is paused while timing, as ``timeit`` does.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import LatencyError

STATS = ("median", "min", "q10", "q25", "mean")
DEFAULT_WARMUP = 10
DEFAULT_REPEATS = 50


def check_stat(stat: str) -> str:
    if stat not in STATS:
        raise LatencyError(f"unknown latency statistic {stat!r}; use one of {', '.join(STATS)}")
    return stat


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
        check_stat(name)
        if name == "min":
            return self.min
        if name == "mean":
            return self.mean
        return self.median if name == "median" else self.quantile(int(name[1:]) / 100)

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


# --- timing loops -----------------------------------------------------------------------------------------------------
def once(fn: Callable[[], Any], inner: int = 1) -> float:
    """Milliseconds per call of ``inner`` back-to-back calls of ``fn``."""
    t0 = time.perf_counter_ns()
    for _ in range(inner):
        fn()
    return (time.perf_counter_ns() - t0) / inner / 1e6


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the garbage collector (a collection in the middle of a sample would be timed with it)."""
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
    with no_gc():
        for fn in fns:
            for _ in range(warmup):
                fn()
        if interleave:
            order = np.arange(len(fns))
            for _ in range(repeats):
                rng.shuffle(order)
                for i in order:
                    samples[i].append(once(fns[i], inners[i]))
        else:
            for i, fn in enumerate(fns):
                samples[i] = [once(fn, inners[i]) for _ in range(repeats)]
    return [Timing(tuple(s)) for s in samples]


def time_paired(
    fa: Callable[[], Any], fb: Callable[[], Any], *, warmup: int, repeats: int, inner: int = 1
) -> PairedTiming:
    """Time A and B alternately in ABBA rounds; each round gives one sample of each and one ratio B/A."""
    ta: list[float] = []
    tb: list[float] = []
    with no_gc():
        for _ in range(warmup):
            fa()
            fb()
        for r in range(repeats):
            # ABBA: alternating which goes first cancels a linear drift within each pair of rounds
            if r % 2 == 0:
                ta.append(once(fa, inner))
                tb.append(once(fb, inner))
            else:
                tb.append(once(fb, inner))
                ta.append(once(fa, inner))
    ratios = tuple(y / x for x, y in zip(ta, tb, strict=True))
    return PairedTiming(Timing(tuple(ta)), Timing(tuple(tb)), ratios)


def calls_per_sample(fn: Callable[[], Any], target_ms: float = 0.2, max_calls: int = 100) -> int:
    """How many back-to-back calls of ``fn`` last about ``target_ms`` (at least 1): a sample of a microsecond layer
    must be long enough for the timer's own cost and jitter to vanish in it."""
    fn()
    t = min(once(fn, 1) for _ in range(3))
    return int(min(max_calls, max(1, math.ceil(target_ms / max(t, 1e-6)))))
