"""DARTS and GDAS on the NAS-Bench-201 cell space (issue 10): does DARTS collapse to skip_connect, and where do the
derived cells fall in the NAS-Bench-201 table?

Search: the library's ``darts`` (first order; second order on a smaller budget) and ``gdas`` on the ``nb201`` family at
a CPU size (C=8 stem channels, N=1 cell per stage: 3 searched cells sharing the 6 edge α, as the benchmark's DARTS and
GDAS baselines) trained on a Fashion-MNIST subset (1×28×28; the library's two fixed halves of the training subset,
one for the weights, one for α; the methods' default recipes, α Adam lr 3e-4). A CPU budget is a few hundred steps
where the paper's NAS-Bench-201 runs take ~20,000, so α barely moves at 3e-4 (at most ~lr per Adam step): each method
runs also with α's learning rate ×10 (``--arch-lr-boost``), and second-order DARTS only so. Every epoch: the derived
cell (argmax per edge, never ``none``), its share of ``skip_connect`` edges (of 6) and the α softmax per edge.

The derived cell's row of the shared NAS-Bench-201 table (12-epoch accuracies on CIFAR-10, CIFAR-100 and
ImageNet16-120; the table has no 200-epoch columns) beside the distribution of a uniformly random cell, which is the
table itself (all 15,625 cells: exact, no sampling): mean, median, and the derived cell's percentile. Also the
derived cell's accuracy on 1,000 Fashion-MNIST validation images with the supernet's weights (BN on batch statistics:
the supernet's running statistics are of the mixture), which says what the search saw.

Usage:
    python benchmarks/bench_oneshot_nb201.py            # subset 1000 × 10 epochs, batch 32; 2nd order × 5 (~8 min)
    python benchmarks/bench_oneshot_nb201.py --quick    # a smoke run
    python benchmarks/bench_oneshot_nb201.py --no-second-order
Needs NASFORGE_DATA (or --data-dir) with fashion-mnist/ and nb201/. Writes benchmarks/results/bench_oneshot_nb201.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

import nasforge.oneshot.darts  # noqa: E402, F401  (registers)
import nasforge.oneshot.gdas  # noqa: E402, F401
from nasforge.errors import NasforgeError  # noqa: E402
from nasforge.evaluators.train import TrainEvaluator  # noqa: E402
from nasforge.nb201table import load_table  # noqa: E402
from nasforge.oneshot.base import ONESHOT  # noqa: E402
from nasforge.oneshot.relax import single  # noqa: E402
from nasforge.spaces.base import create_family  # noqa: E402

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def inherited_acc(m, data, n: int = 1000) -> float:
    """Accuracy (%) of the derived arch's path through the trained supernet on ``n`` validation images, BN on batch
    statistics (batches of 250), no weight changed."""
    arch = m.derive()
    net = m.net
    choice = net.choice_of(arch)
    net.train()  # batch statistics; running statistics are updated but nothing reads them afterwards
    correct = 0
    x, y = data.x_val[:n], data.y_val[:n]
    with torch.no_grad():
        for i in range(0, len(y), 250):
            correct += int((net(x[i : i + 250], m.fixed, single(choice)).argmax(1) == y[i : i + 250]).sum())
    return 100.0 * correct / len(y)


def search(label: str, method: str, settings: dict, fam, subset: int, epochs: int, batch: int, data_dir) -> dict:
    ev = TrainEvaluator(fam, "fashion-mnist", data_dir=data_dir, train_subset=subset, val_size=1000, device="cpu")
    task, data = ev.task(), ev.data()
    m = ONESHOT.create(method, fam, task, seed=0, epochs=epochs, batch_size=batch, **settings)
    m.setup("cpu")
    per_epoch = []
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        stats = m.train_epoch(data, e)
        arch = m.derive()
        skip = sum(arch[d] == "skip_connect" for d in fam.space.dims)
        probs = m.arch_probs()
        per_epoch.append({"epoch": e, **stats, "cell": fam.describe(arch), "skip_share": skip / 6,
                          "mean_p_skip": float(np.mean([p["skip_connect"] for p in probs.values()])),
                          "arch_probs": probs, "wall_s": round(time.perf_counter() - t0, 1)})  # fmt: skip
        print(f"  {label} epoch {e}: skip {skip}/6, mean p(skip) {per_epoch[-1]['mean_p_skip']:.3f}, "
              f"{fam.describe(arch)} ({per_epoch[-1]['wall_s']} s)", flush=True)  # fmt: skip
    return {"method": method, "settings": {**m.config(), "train_subset": subset, "halves": subset // 2},
            "epochs": per_epoch, "derived": fam.describe(m.derive()), "search_s": round(time.perf_counter() - t0, 1),
            "fashion_val_acc_inherited": inherited_acc(m, data)}  # fmt: skip


def place(table, cell: str) -> dict:
    """The cell's accuracies and, per column, its percentile among all cells and the cells' mean and median."""
    row = table.row(cell)
    out = {}
    for c in table.accuracy_columns:
        v = table.column(c)
        x = row[c]
        pct = 100.0 * (np.sum(v < x) + 0.5 * np.sum(v == x)) / len(v)
        out[c] = {"cell": x, "percentile": float(pct), "random_mean": float(v.mean()),
                  "random_median": float(np.median(v))}  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (tiny subset, 2 epochs)")
    ap.add_argument("--subset", type=int, default=1000, help="training images (halved: weights / α)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--subset2", type=int, default=1000, help="second-order DARTS: training images")
    ap.add_argument("--epochs2", type=int, default=5, help="second-order DARTS: epochs")
    ap.add_argument("--no-second-order", action="store_true")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--arch-lr-boost", type=float, default=10.0,
                    help="the boosted runs' α learning rate over the recipe's 3e-4 (few steps on a CPU)")
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--data-dir", default=None, help="folder with fashion-mnist/ and nb201/ (default NASFORGE_DATA)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.quick:
        a.subset, a.epochs, a.subset2, a.epochs2, a.batch = 256, 2, 128, 1, 32
    fam = create_family("nb201", C=a.C, N=a.N)
    boost = {"arch_lr": 3e-4 * a.arch_lr_boost}
    tag = f"α lr ×{a.arch_lr_boost:g}"
    runs = [("darts-1st", "darts", {"order": 1}, a.subset, a.epochs),
            (f"darts-1st, {tag}", "darts", {"order": 1, **boost}, a.subset, a.epochs),
            ("gdas", "gdas", {}, a.subset, a.epochs), (f"gdas, {tag}", "gdas", boost, a.subset, a.epochs)]
    if not a.no_second_order:
        runs.append((f"darts-2nd, {tag}", "darts", {"order": 2, **boost}, a.subset2, a.epochs2))
    try:
        table = load_table(a.data_dir)
        res = {}
        for label, method, settings, subset, epochs in runs:
            res[label] = search(label, method, settings, fam, subset, epochs, a.batch, a.data_dir)
            res[label]["table"] = place(table, res[label]["derived"])
    except NasforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    skip_all = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    out = {"command": " ".join(["python", *sys.argv]), "family": {"name": "nb201", "C": a.C, "N": a.N},
           "data": "fashion-mnist (1x28x28), val 1000", "runs": res,
           "reference_all_skip": place(table, skip_all)}  # fmt: skip
    path = save("bench_oneshot_nb201" + ("_quick" if a.quick else ""), out, threads=1)
    show(res, out["reference_all_skip"])
    print(f"wrote {path}")
    return 0


def show(res: dict, ref: dict) -> None:
    print("\nPer epoch: skip_connect edges of 6 in the derived cell (mean α-softmax of skip over the 6 edges)")
    n = max(len(r["epochs"]) for r in res.values())
    print("| epoch | " + " | ".join(res) + " |")
    print("|---:|" + "---:|" * len(res))
    for e in range(n):
        cells = [f"{round(r['epochs'][e]['skip_share'] * 6)}/6 ({r['epochs'][e]['mean_p_skip']:.3f})"
                 if e < len(r["epochs"]) else "" for r in res.values()]  # fmt: skip
        print(f"| {e + 1} | " + " | ".join(cells) + " |")
    print("\nDerived cells in the NAS-Bench-201 table (12-epoch accuracy %, percentile among all 15,625 cells)")
    print("| run | cell | search s | Fashion val (inherited) | C10 val | C10 test | C100 test | IN16 test |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    cols = ("acc12_cifar10_val", "acc12_cifar10_test", "acc12_cifar100_test", "acc12_imagenet16_test")
    for label, r in res.items():
        t = r["table"]
        print(f"| {label} | `{r['derived']}` | {r['search_s']} | {r['fashion_val_acc_inherited']:.1f} | "
              + " | ".join(f"{t[c]['cell']:.2f} (p{t[c]['percentile']:.0f})" for c in cols) + " |")
    print("| all skip_connect | | | | " + " | ".join(f"{ref[c]['cell']:.2f} (p{ref[c]['percentile']:.0f})"
                                                    for c in cols) + " |")  # fmt: skip
    print("| random cell: mean / median | | | | " + " | ".join(
        f"{ref[c]['random_mean']:.2f} / {ref[c]['random_median']:.2f}" for c in cols) + " |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
