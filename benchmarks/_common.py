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
    p.write_text(json.dumps(data, indent=2, default=float))
    return p
