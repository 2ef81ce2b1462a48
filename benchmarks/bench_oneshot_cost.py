"""What a one-shot search costs against training archs from scratch (issue 10).

Definition. One search: first-order DARTS (the library's ``darts``, its default recipe) on the ``nb201`` family
(C=8, N=1) for E epochs over S Fashion-MNIST training images (the library's two halves: S/2 for the weights, S/2 for
α; each step one batch of each). Against it: K random nb201 cells (uniform, seed 0), each trained from scratch by the
library's ``TrainEvaluator`` for the same E epochs over the same S images and batch size, including what that
evaluator does to score an arch (validation on 1,000 images every epoch, test accuracy on 1,000 at the end): the cost
of K black-box trials. Both in the same process, one thread, measured as wall clock and as CPU time (the process's,
which a shared machine disturbs less). The figure: search time / total time of the K archs, and the number of
from-scratch archs one search costs (search time / mean time of one arch).

Usage:
    python benchmarks/bench_oneshot_cost.py            # S 1000, E 3, batch 32, K 10 (~3 min of compute)
    python benchmarks/bench_oneshot_cost.py --quick
Writes benchmarks/results/bench_oneshot_cost.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

import nasforge.oneshot.darts  # noqa: E402, F401  (registers)
from nasforge.errors import NasforgeError  # noqa: E402
from nasforge.evaluators.base import Context  # noqa: E402
from nasforge.evaluators.train import TrainEvaluator  # noqa: E402
from nasforge.oneshot.base import ONESHOT  # noqa: E402
from nasforge.spaces.base import create_family  # noqa: E402


class Clock:
    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run")
    ap.add_argument("--subset", type=int, default=1000, help="S: training images")
    ap.add_argument("--epochs", type=int, default=3, help="E: epochs of the search and of every arch")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--k", type=int, default=10, help="K: random archs trained from scratch")
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.quick:
        a.subset, a.epochs, a.k = 128, 1, 2
    fam = create_family("nb201", C=8, N=1)
    try:
        ev = TrainEvaluator(fam, "fashion-mnist", data_dir=a.data_dir, train_subset=a.subset, val_size=1000,
                            test_subset=1000, epochs=a.epochs, batch_size=a.batch, device="cpu",
                            save_weights=False)  # fmt: skip
        task, data = ev.task(), ev.data()
    except NasforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with Clock() as search:
        m = ONESHOT.create("darts", fam, task, seed=0, epochs=a.epochs, batch_size=a.batch, order=1)
        m.setup("cpu")
        for e in range(1, a.epochs + 1):
            m.train_epoch(data, e)
        derived = fam.describe(m.derive())
    print(f"DARTS search: {search.wall:.1f} s wall, {search.cpu:.1f} s CPU -> {derived}", flush=True)
    rng = np.random.default_rng(0)
    archs = [fam.space.sample(rng) for _ in range(a.k)]
    per_arch = []
    for i, arch in enumerate(archs):
        with Clock() as c:
            res = ev(arch, Context(seed=i))
        per_arch.append({"cell": fam.describe(arch), "wall_s": c.wall, "cpu_s": c.cpu, "val_acc": res["val_acc"]})
        print(f"  arch {i + 1}/{a.k}: {c.wall:.1f} s wall, {c.cpu:.1f} s CPU, val {res['val_acc']:.1f}%", flush=True)
    tot_w, tot_c = sum(r["wall_s"] for r in per_arch), sum(r["cpu_s"] for r in per_arch)
    mean_w, mean_c = statistics.mean(r["wall_s"] for r in per_arch), statistics.mean(r["cpu_s"] for r in per_arch)
    out = {
        "command": " ".join(["python", *sys.argv]),
        "settings": {"family": "nb201 C=8 N=1", "data": "fashion-mnist", "subset": a.subset, "epochs": a.epochs,
                     "batch": a.batch, "k": a.k, "val": 1000, "test": 1000},  # fmt: skip
        "search": {"wall_s": search.wall, "cpu_s": search.cpu, "derived": derived},
        "archs": per_arch,
        "k_archs": {"wall_s": tot_w, "cpu_s": tot_c},
        "ratio_search_over_k_archs": {"wall": search.wall / tot_w, "cpu": search.cpu / tot_c},
        "search_in_archs": {"wall": search.wall / mean_w, "cpu": search.cpu / mean_c},
    }
    path = save("bench_oneshot_cost" + ("_quick" if a.quick else ""), out, threads=1)
    print(f"\nS={a.subset} images, E={a.epochs} epochs, batch {a.batch}, K={a.k}")
    print("| | wall s | CPU s |\n|---|---:|---:|")
    print(f"| one DARTS (1st order) search | {search.wall:.1f} | {search.cpu:.1f} |")
    print(f"| {a.k} random archs from scratch | {tot_w:.1f} | {tot_c:.1f} |")
    print(f"| one arch from scratch (mean) | {mean_w:.1f} | {mean_c:.1f} |")
    r, s = out["ratio_search_over_k_archs"], out["search_in_archs"]
    print(f"| search / {a.k} archs | {r['wall']:.2f} | {r['cpu']:.2f} |")
    print(f"| search in from-scratch archs | {s['wall']:.1f} | {s['cpu']:.1f} |")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
