"""Weight-sharing rank quality of SPOS on Fashion-MNIST: does the supernet rank archs as training them does?

1. Train an SPOS supernet (uniform single-path sampling) on a training subset of Fashion-MNIST.
2. Sample ``--archs`` distinct networks of the space with a fixed seed.
3. Score each by weight sharing (the ``supernet`` evaluator: inherited weights, BN recalibrated on 20 training
   batches, validation accuracy), and also at 5 BN batches and without recalibration (the supernet's shared running
   statistics), to show what recalibration is worth.
4. Train each from scratch (``TrainEvaluator``, same data subset and validation split) and take its validation
   accuracy as the reference.
5. Kendall tau (with a bootstrap 95% interval over archs) and Spearman rho between the two, the stand-alone accuracy of
   the supernet's favourite among the archs against the best, and the wall clock of each phase.

Space: the ``cell`` family with C=8, L=2, M=4 (identity, conv3x3, conv5x5, dwconv3x3), N=2 (add, concat): 16,384
archs, networks small enough for 2 shared cores, with real spread between them (an identity-only cell is a linear
model on the stem's features; a conv5x5 pair is not).

Usage (2 shared cores; the data folder from NASFORGE_DATA):
    nice -n 10 python benchmarks/bench_spos_rank.py                 # the recorded run (about 15 minutes)
    python benchmarks/bench_spos_rank.py --quick                    # a smoke run (under a minute)
    ... --supernet-epochs 40 --reference benchmarks/results/spos_rank.json --name spos_rank_e40
                                                  # another supernet recipe against the same stand-alone figures
Writes benchmarks/results/spos_rank.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import save  # beside this script (the script's folder is on sys.path)
from scipy.stats import kendalltau, spearmanr

from nasforge.evaluators import Context
from nasforge.evaluators.supernet import SupernetEvaluator
from nasforge.evaluators.train import TrainEvaluator, accuracy
from nasforge.oneshot.recalibrate import keep_buffers
from nasforge.oneshot.spos import SPOS
from nasforge.spaces import create_family

FAMILY = {"C": 8, "L": 2, "M": 4, "N": 2}
DATASET = "fashion-mnist"


def distinct_archs(family, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out: dict[str, object] = {}
    while len(out) < n:
        a = family.space.sample(rng)
        out.setdefault(family.network_key(a), a)
    return list(out.values())


def bootstrap_tau(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of Kendall tau over archs resampled with replacement."""
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(reps):
        i = rng.integers(len(x), size=len(x))
        t = kendalltau(x[i], y[i]).statistic
        if np.isfinite(t):
            taus.append(t)
    return float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))


def rank_stats(share: list[float], alone: list[float]) -> dict:
    x, y = np.asarray(share), np.asarray(alone)
    lo, hi = bootstrap_tau(x, y)
    return {"kendall_tau": float(kendalltau(x, y).statistic), "tau_ci95": [lo, hi],
            "spearman": float(spearmanr(x, y).statistic),
            "pick_standalone_acc": float(y[int(np.argmax(x))]), "best_standalone_acc": float(y.max())}  # fmt: skip


def train_supernet(family, data, args) -> tuple[SPOS, list[dict], float]:
    m = SPOS(family, data.task(), seed=0, epochs=args.supernet_epochs, lr=0.05, batch_size=64)
    m.setup("cpu")
    t0 = time.perf_counter()
    curve = []
    for e in range(1, args.supernet_epochs + 1):
        curve.append(m.train_epoch(data, e))
        print(f"supernet epoch {e}: {curve[-1]}", flush=True)
    return m, curve, time.perf_counter() - t0


def shared_scores(m: SPOS, family, archs, data_kw, bn_batches: int) -> tuple[list[float], float]:
    ev = SupernetEvaluator(family, DATASET, weights=m.supernet.state_dict(), bn_batches=bn_batches, **data_kw)
    t0 = time.perf_counter()
    accs = [ev(a, Context(seed=i))["val_acc"] for i, a in enumerate(archs)]
    return accs, time.perf_counter() - t0


def unrecalibrated_scores(m: SPOS, archs, data) -> list[float]:
    """The path's accuracy with the supernet's shared running statistics (what recalibration replaces)."""
    out = []
    with keep_buffers(m.supernet) as net:
        for a in archs:
            net.set_active(a)
            out.append(accuracy(net, data.x_val, data.y_val)[0])
    return out


def reference(path: str, archs, args) -> tuple[list[float], float]:
    """The stand-alone accuracies and wall clock of an earlier run of this script on the same archs and data."""
    old = json.loads(Path(path).read_text())
    same = [dict(a) for a in archs] == [r["arch"] for r in old["archs"]] and all(
        old["args"][k] == getattr(args, k) for k in ("train_subset", "val_size", "standalone_epochs")
    )
    if not same:
        raise SystemExit(f"{path}: other archs, data sizes or stand-alone epochs; run without --reference")
    return [r["standalone_acc"] for r in old["archs"]], old["wall_s"]["standalone_training"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--train-subset", type=int, default=8000)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--supernet-epochs", type=int, default=20)
    ap.add_argument("--standalone-epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--reference", help="take the stand-alone accuracies from this earlier result (same archs and data)"
    )
    ap.add_argument("--name", default="spos_rank", help="result file name (benchmarks/results/<name>.json)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, figures meaningless")
    args = ap.parse_args()
    if args.quick:
        args.archs, args.train_subset, args.val_size, args.supernet_epochs, args.standalone_epochs = 6, 600, 200, 2, 1
    torch.set_num_threads(args.threads)
    family = create_family("cell", **FAMILY)
    data_kw = {"train_subset": args.train_subset, "val_size": args.val_size, "device": "cpu"}
    train = TrainEvaluator(family, DATASET, epochs=args.standalone_epochs, lr=0.05, momentum=0.9, schedule="cosine",
                           test_subset=1000, save_weights=False, **data_kw)  # fmt: skip
    data = train.data()
    archs = distinct_archs(family, args.archs, seed=2026)

    m, curve, t_super = train_supernet(family, data, args)
    share20, t_share = shared_scores(m, family, archs, data_kw, 20)
    share5, _ = shared_scores(m, family, archs, data_kw, 5)
    raw = unrecalibrated_scores(m, archs, data)

    if args.reference:
        alone, t_alone = reference(args.reference, archs, args)
    else:
        alone, t0 = [], time.perf_counter()
        for i, a in enumerate(archs):
            r = train(a, Context(seed=i))
            alone.append(r["val_acc"])
            print(f"stand-alone {i + 1}/{len(archs)}: {r['val_acc']:.2f}  supernet {share20[i]:.2f}  "
                  f"{family.describe(a)}", flush=True)  # fmt: skip
        t_alone = time.perf_counter() - t0

    ranks = {"bn20": rank_stats(share20, alone), "bn5": rank_stats(share5, alone), "no_recal": rank_stats(raw, alone)}
    result = {
        "family": {"name": "cell", **FAMILY, "space_size": family.space.size},
        "dataset": DATASET, "sizes": data.sizes(), "args": vars(args),
        "spos": m.config(), "supernet_curve": curve,
        "archs": [{"arch": dict(a), "describe": family.describe(a), "supernet_acc_bn20": s20, "supernet_acc_bn5": s5,
                   "supernet_acc_no_recal": r0, "standalone_acc": al}
                  for a, s20, s5, r0, al in zip(archs, share20, share5, raw, alone, strict=True)],
        "rank": ranks,
        "wall_s": {"supernet_training": t_super, "supernet_scoring_bn20": t_share, "standalone_training": t_alone},
    }  # fmt: skip
    path = save(f"{args.name}_quick" if args.quick else args.name, result, threads=args.threads)
    print(f"\n{len(archs)} archs, {data.sizes()} on {DATASET}; results in {path}\n")
    print("| scoring | Kendall tau [95% CI] | Spearman | stand-alone acc of its pick / best |")
    print("|---|---|---|---|")
    for k, r in ranks.items():
        print(f"| {k} | {r['kendall_tau']:.3f} [{r['tau_ci95'][0]:.2f}, {r['tau_ci95'][1]:.2f}] | {r['spearman']:.3f} "
              f"| {r['pick_standalone_acc']:.2f} / {r['best_standalone_acc']:.2f} |")  # fmt: skip
    print(
        f"\nwall clock: supernet training {t_super:.0f} s ({args.supernet_epochs} epochs), scoring {len(archs)} "
        f"archs {t_share:.0f} s, stand-alone training {t_alone:.0f} s ({args.standalone_epochs} epochs each)"
    )


if __name__ == "__main__":
    main()
