"""Zero-cost proxies: how well they rank architectures, and what they cost.

(a) ``synflow`` on NAS-Bench-201 networks at CIFAR shape (3×32×32, 10 classes), data-free, over ``--cells`` table
    cells drawn with ``--seed``, against the table's ``acc12_cifar10_val`` (and ``acc12_cifar10_test``). The published
    0.737 (Abdelfattah et al. 2021) was measured against 200-epoch accuracy; the table holds 12-epoch accuracies only.
    The first 20 cells are timed at ``--C``; if all the cells would take longer than ``--budget-min``, C is halved
    (and said) rather than the count cut.
(b) snip, grad_norm, naswot, jacob_cov and synflow on the shared reference set (``reference_fmnist.py``: nb201 C=8,
    N=1 trained on Fashion-MNIST): Spearman, Kendall, time per arch against the reference's training time.

    python benchmarks/bench_proxies.py            # both parts
    python benchmarks/bench_proxies.py --quick    # 40 cells at C=4, N=1; part (b) on the quick reference set
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import RESULTS, save

from nasforge.evaluators import Context, create_evaluator
from nasforge.nb201table import load_table
from nasforge.rank import correlations, sample_distinct
from nasforge.spaces import create_family

PROXIES = ("synflow", "snip", "grad_norm", "naswot", "jacob_cov")


def part_a(args) -> dict:
    table = load_table()
    idx = np.random.default_rng(args.seed).choice(len(table), size=args.cells, replace=False)
    C, notes = args.C, []
    while True:
        ev = create_evaluator("synflow", family=create_family("nb201", C=C, N=args.N))
        t0 = time.perf_counter()
        for i in idx[:20]:
            ev(table.arch(int(i)), Context(seed=args.seed))
        per = (time.perf_counter() - t0) / min(20, len(idx))
        if per * len(idx) <= 60 * args.budget_min or C <= 2:
            break
        notes.append(f"C={C}: {per:.2f} s/cell, {per * len(idx) / 60:.0f} min for {len(idx)} cells; halved C")
        C //= 2
    scores, times = [], []
    cpu0 = time.process_time()  # CPU time beside wall time: on a shared machine the wall time is mostly waiting
    for i in idx:
        out = ev(table.arch(int(i)), Context(seed=args.seed))
        scores.append(out["synflow"])
        times.append(out["proxy_time_s"])
    res = {"cells": len(idx), "C": C, "N": args.N, "notes": notes, "time_per_cell_s": float(np.mean(times)),
           "cpu_per_cell_s": (time.process_time() - cpu0) / len(idx),
           "zero_scores": int(sum(s == 0 for s in scores))}  # fmt: skip
    for col in ("acc12_cifar10_val", "acc12_cifar10_test"):
        rho, p, tau, _ = correlations(scores, [float(table.columns[col][i]) for i in idx])
        res[col] = {"spearman": rho, "spearman_p": p, "kendall": tau}
    res["has_200_epoch_column"] = any("200" in c for c in table.accuracy_columns)
    return res


def part_b(args) -> dict:
    # the reference set's archs, drawn as reference_fmnist.py draws them, so the proxies can score them while the
    # reference still trains (--wait-min); the keys are checked against the reference file when it is read
    path = RESULTS / f"reference_fmnist{'_quick' if args.quick else ''}.json"
    fam = create_family("nb201", C=8, N=1)
    archs = sample_distinct(fam, 4 if args.quick else 30, seed=0)
    subset = 500 if args.quick else 2500
    out: dict = {}
    scores: dict[str, list] = {}
    for name in PROXIES:
        ev = create_evaluator(name, family=fam, dataset="fashion-mnist", train_subset=subset, device="cpu")
        if name != "synflow":
            ev._batch()  # load the data before timing
        sc, times, failed = [], [], 0
        cpu0 = time.process_time()
        for a in archs:
            try:
                r = ev(a, Context(seed=args.seed))
                sc.append(r[name])
                times.append(r["proxy_time_s"])
            except Exception as e:  # noqa: BLE001 - TrialFailed: ranked last, as nasforge rank does
                sc.append(None)
                failed += 1
                print(f"  {name}: {e}")
        scores[name] = sc
        out[name] = {"failed": failed, "cpu_per_arch_s": (time.process_time() - cpu0) / len(archs),
                     "time_per_arch_s": float(np.mean(times)) if times else None}  # fmt: skip
        print(f"  {name}: scored {len(archs)} archs, {out[name]['time_per_arch_s']} s/arch", flush=True)
    save("bench_proxies_scores" + ("_quick" if args.quick else ""), {"archs": [a.key for a in archs], **scores})
    deadline = time.time() + 60 * args.wait_min
    while not path.exists() and time.time() < deadline:
        time.sleep(10)
    ref = json.loads(path.read_text())
    by_key = {r["key"]: r for r in ref["archs"]}  # a reference cut short (--allow-missing) has fewer archs
    keep = [i for i, a in enumerate(archs) if fam.network_key(a) in by_key]
    truth = [by_key[fam.network_key(archs[i])]["val_acc"] for i in keep]
    scores = {k: [v[i] for i in keep] for k, v in scores.items()}
    out["reference"] = {"archs": len(keep), "settings": ref["settings"],
                        "time_per_arch_s": float(np.mean([r["train_time_s"] for r in ref["archs"]]))}  # fmt: skip
    for name in PROXIES:
        rho, p, tau, _ = correlations(scores[name], truth)
        out[name].update(spearman=rho, spearman_p=p, kendall=tau, scores=scores[name])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--budget-min", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=("a", "b", "both"), default="both")
    ap.add_argument("--wait-min", type=float, default=0.0, help="(b): wait this long for the reference file")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.cells, args.C, args.N = 40, 4, 1
    torch.set_num_threads(1)
    res: dict = {"args": vars(args)}
    if args.part in ("a", "both"):
        a = res["synflow_nb201"] = part_a(args)
        print(f"\n(a) synflow, {a['cells']} NAS-Bench-201 cells at C={a['C']}, N={a['N']}, 3×32×32 ({a['notes']})")
        print(f"CPU time per cell {a['cpu_per_cell_s']:.3f} s")
        print("| against | Spearman | Kendall | published (200-epoch) | s/cell |\n|---|---|---|---|---|")
        for col in ("acc12_cifar10_val", "acc12_cifar10_test"):
            r = a[col]
            print(f"| {col} | {r['spearman']:.3f} | {r['kendall']:.3f} | 0.737 | {a['time_per_cell_s']:.3f} |")
    if args.part in ("b", "both"):
        b = res["fmnist"] = part_b(args)
        print(f"\n(b) against the reference set ({b['reference']['archs']} archs trained on Fashion-MNIST)")
        print("| evaluator | Spearman | Kendall | failed | s/arch |\n|---|---|---|---|---|")
        for name in PROXIES:
            r = b[name]
            t = "-" if r["time_per_arch_s"] is None else f"{r['time_per_arch_s']:.3f}"
            print(f"| {name} | {r['spearman']:.3f} | {r['kendall']:.3f} | {r['failed']} | {t} |")
        print(f"| train (reference) | 1 | 1 | 0 | {b['reference']['time_per_arch_s']:.1f} |")
    name = "bench_proxies" + ("_quick" if args.quick else "") + ("" if args.part == "both" else f"_{args.part}")
    print(f"wrote {save(name, res, threads=1)}")


if __name__ == "__main__":
    main()
