"""The ``measured`` latency source: build the network, time it on this machine, cache the timing.

Batch 1, eval mode, a fixed thread count, warm-up then interleaved repeats (``runtime.measure_models``); the latency
is a robust statistic of the samples (the median by default). Timings are cached under a key made of the network
(its canonical arch: two archs that build one network share a measurement), the family and its configuration, the
task, the machine's fingerprint and the protocol, so a latency is measured once per machine and setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..space import Arch
from .base import LatencyModel, register_source
from .machine import LatencyCache, digest, machine_fingerprint
from .runtime import measure_models
from .timing import DEFAULT_REPEATS, DEFAULT_WARMUP, Timing, check_stat

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task


@register_source("measured")
class MeasuredLatency(LatencyModel):
    """Latency measured on this machine (and cached), as the ``stat`` of ``repeats`` interleaved calls."""

    def __init__(
        self,
        family: Family | str | Mapping[str, Any],
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
        return digest(
            {
                "network": fam.network_key(arch),
                "family": fam.name,
                "family_config": fam.config(),
                "task": self.task.to_dict(),
                "machine": machine_fingerprint(self.runtime, self.threads),
                "protocol": [self.warmup, self.repeats, self.inner, self.exporter if self.runtime != "torch" else ""],
            }
        )

    def timings(self, archs: Sequence[Mapping[str, Any]], refresh: bool = False) -> list[Timing]:
        """Timings of every arch: cached ones read, the others measured together (interleaved) and stored."""
        check_stat(self.stat)
        checked = [self.check(a) for a in archs]
        store = LatencyCache(self.cache_dir) if self.cache else None
        keys = [self.key(a) for a in checked]
        out: list[Timing | None] = [None] * len(checked)
        if store is not None and not refresh:
            out = [store.get(k) for k in keys]
        todo: dict[str, Arch] = {}  # one measurement per network, however often it is asked for
        for k, a, t in zip(keys, checked, out, strict=True):
            if t is None:
                todo.setdefault(k, a)
        if todo:
            fam = self.fam
            new = measure_models(
                [fam.build(a, self.task) for a in todo.values()],
                [fam.input_shape(a, self.task) for a in todo.values()],
                runtime=self.runtime,
                threads=self.threads,
                warmup=self.warmup,
                repeats=self.repeats,
                inner=self.inner,
                seed=self.seed,
                exporter=self.exporter,
            )
            got = dict(zip(todo, new, strict=True))
            if store is not None:
                for k, a in todo.items():
                    store.put(k, got[k], {"arch": a.to_json(), "family": fam.name, "runtime": self.runtime})
            out = [got[k] if t is None else t for k, t in zip(keys, out, strict=True)]
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
