"""Shared bits of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "machine": machine(), **data}
    p = RESULTS / f"{name}.json"
    p.write_text(json.dumps(data, indent=2))
    return p
