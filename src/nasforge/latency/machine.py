"""This machine: its fingerprint, and the cache of latencies measured on it, keyed by that fingerprint.

A latency depends on the model and on the machine that runs it: the CPU model, its core count, the library versions,
the thread count and the runtime. ``machine_fingerprint`` is that description (the one used everywhere: by the cache,
the lookup table's header and the benchmarks' result files), so that a latency measured elsewhere is never read back
as this machine's. Results live in an SQLite file under the cache directory (``$NASFORGE_CACHE_DIR``, else
``$XDG_CACHE_HOME/nasforge``, else ``~/.cache/nasforge``); several processes may share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from .base import LatencyError
from .runtime import check_runtime, check_threads
from .timing import Timing


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fingerprint(runtime: str = "torch", threads: int = 1) -> dict[str, Any]:
    """What a latency depends on besides the model: CPU model, core count, system, Python and library versions,
    threads, runtime. (Python counts: eager torch spends a good part of a small network's time in the interpreter.)"""
    import torch

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        ort_version = "none"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "system": platform.system(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "threads": check_threads(threads),
        "runtime": check_runtime(runtime),
    }


def digest(obj: Any, n: int = 20) -> str:
    """A short stable hash of a JSON-able object (a cache key)."""
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
