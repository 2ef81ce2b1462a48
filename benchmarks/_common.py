"""Shared bits of the benchmark scripts: the machine a figure was measured on, and result files."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from nasforge.latency.machine import machine_fingerprint

RESULTS = Path(__file__).parent / "results"


def machine(threads: int | None = None) -> dict[str, Any]:
    """The library's machine fingerprint (CPU, cores, system, Python and library versions) with the thread count a
    benchmark runs torch with, plus the load when it starts (a shared machine's figures depend on it)."""
    import torch

    return {
        **machine_fingerprint("torch", threads or torch.get_num_threads()),
        "loadavg_start": os.getloadavg(),
    }


def save(name: str, data: dict, threads: int | None = None) -> Path:
    """Write ``results/<name>.json`` with the date and the machine ahead of ``data``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(threads),
        **data,
    }
    p = RESULTS / f"{name}.json"
    p.write_text(json.dumps(_portable(data), indent=2, default=float))
    return p


ROOT = Path(__file__).resolve().parent.parent


def _portable(obj: Any) -> Any:
    """``obj`` with every absolute path inside this checkout written relative to its root: a result file names
    ``benchmarks/results/x.png``, never the folder it happened to be measured in."""
    if isinstance(obj, dict):
        return {k: _portable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_portable(v) for v in obj]
    if isinstance(obj, Path | str) and os.path.isabs(obj):
        try:
            return str(Path(obj).resolve().relative_to(ROOT))
        except ValueError:
            return str(obj)
    return obj
