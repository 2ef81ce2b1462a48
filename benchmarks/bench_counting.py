"""Cost counting speed: the analytic layer-list counter against FlopCounterMode, on the same 729 LeNet archs.

    python benchmarks/bench_counting.py

Both paths are timed in the same run, interleaved over 5 rounds, in CPU time of this process (``time.process_time``:
the machine is shared, and CPU time does not count the time other processes hold the cores; wall time is reported too).
The figure is the ratio of medians (target >= 100x).
FlopCounterMode needs the model built and run once; the analytic path needs neither. Counts must agree exactly.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from nasforge.spaces import MNIST_TASK, create_family  # noqa: E402


def analytic(fam, archs):
    return [fam.costs(a, MNIST_TASK)["macs"] for a in archs]


def measured(fam, archs):
    out = []
    x = torch.zeros(1, 1, 28, 28)
    for a in archs:
        m = fam.build(a, MNIST_TASK)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            m(x)
        out.append(fc.get_total_flops() // 2)
    return out


def main() -> None:
    torch.set_num_threads(1)
    fam = create_family("lenet")
    archs = list(fam.space.grid())
    ta, tm, wa, wm = [], [], [], []
    for _ in range(5):
        w, t = time.perf_counter(), time.process_time()
        a = analytic(fam, archs)
        ta.append(time.process_time() - t)
        wa.append(time.perf_counter() - w)
        w, t = time.perf_counter(), time.process_time()
        m = measured(fam, archs)
        tm.append(time.process_time() - t)
        wm.append(time.perf_counter() - w)
        assert a == m, "analytic MACs disagree with FlopCounterMode"
    ra, rm = len(archs) / statistics.median(ta), len(archs) / statistics.median(tm)
    wall_ratio = statistics.median(wm) / statistics.median(wa)
    res = {
        "command": "python benchmarks/bench_counting.py",
        "archs": len(archs),
        "analytic_archs_per_s": ra,
        "flopcounter_archs_per_s": rm,
        "speedup_cpu_time": ra / rm,
        "speedup_wall_time": wall_ratio,
        "loadavg_end": os.getloadavg(),
        "agree": True,
    }
    print(f"analytic {ra:,.0f} archs/s, FlopCounterMode (build + forward) {rm:,.0f} archs/s (CPU time): "
          f"speedup {ra / rm:.0f}x (wall time {wall_ratio:.0f}x); all 729 MAC counts equal")
    print("written", save("counting", res))


if __name__ == "__main__":
    main()
