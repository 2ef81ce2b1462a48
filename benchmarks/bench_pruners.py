"""Stopping bad trials early on a Fashion-MNIST search: no pruning vs ASHA vs Hyperband over the same archs.

    python benchmarks/bench_pruners.py [--archs 40] [--epochs 9] [--train 5000] [--val 1000] [--threads 1]
                                       [--workers 1] [--replay] [--quick]

A random search (fixed seed) over the ``lenet`` family proposes the same ``--archs`` archs in every arm (random search
ignores results, so pruning cannot change what it proposes; the script checks it). Each trial trains from scratch on
a ``--train`` subset of Fashion-MNIST's training split, validated on ``--val`` held-out images, for ``--epochs``
epochs (full training), reporting val_acc per epoch; the arms differ only in the pruner:

- ``none``: every trial trains all epochs (the reference);
- ``asha``: min_resource 1, η 3 (rungs at epochs 1, 3, 9, ...; not at the last epoch);
- ``hyperband``: min_resource 1, max_resource = epochs, η 3 (brackets chosen from the arch key).

Targets (issue 11): the best arch found with pruning is the reference's best, or within 0.3 points of its val_acc;
at least 3x fewer training epochs in total. Also checked: a pruned trial's curve is the reference's curve of the same
arch cut short (same seed, same training), so pruning changes what is trained, never the numbers.

``--replay`` (for a loaded machine): only the reference trains; the ASHA and Hyperband arms run real studies with
their real pruners over an evaluator that reports the reference's recorded curve of each arch epoch by epoch. Their
decisions, epochs and best arch are then exactly those of training (which is deterministic per arch and seed: the
non-replayed run checks it, ``curves_not_prefix``); their wall clock is estimated as each trial's reference training
time times the share of its epochs it ran. ``--workers N`` trains the reference in N processes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from nasforge.evaluators.base import Evaluator  # noqa: E402
from nasforge.evaluators.train import TrainEvaluator  # noqa: E402
from nasforge.executors import create_executor  # noqa: E402
from nasforge.pruners import create_pruner  # noqa: E402
from nasforge.spaces import create_family  # noqa: E402
from nasforge.strategies import create_strategy  # noqa: E402
from nasforge.study import Study  # noqa: E402
from nasforge.trial import State  # noqa: E402

# bench_fashion.py's stated recipe (RESULTS.md): SGD, lr 0.05, momentum 0.9, cosine to zero over the epochs
RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "cosine", "batch_size": 64}
ARMS = {"none": {}, "asha": {"min_resource": 1, "reduction_factor": 3},
        "hyperband": {"min_resource": 1, "reduction_factor": 3}}  # fmt: skip


class Replay(Evaluator):
    """Reports a recorded training's val_acc curve epoch by epoch and returns its metrics (``--replay``)."""

    name = "replay"
    metrics = ("val_acc",)

    def __init__(self, ref: dict, epochs: int) -> None:
        self.curves, self.metrics_of, self.epochs = ref["curves"], ref["metrics"], epochs

    def __call__(self, arch, ctx):
        for e, v in enumerate(self.curves[arch.key], 1):
            ctx.report(e, val_acc=v)
        return self.metrics_of[arch.key]


def run_arm(name: str, args, evaluator, family, ref: dict | None = None) -> dict:
    strategy = create_strategy("random", family.space, seed=args.seed)
    pruner = create_pruner(name, **ARMS[name])
    replay = ref is not None and name != "none"
    ev = Replay(ref, args.epochs) if replay else evaluator
    workers = args.workers if name == "none" else 1
    t0 = time.perf_counter()
    study = Study.open(f"prune-{name}", "memory://").run(
        family, strategy, ev, budget=args.archs, seed=args.seed, pruner=pruner, artifacts="database",
        executor=create_executor(workers, args.threads),
    )  # fmt: skip
    wall = time.perf_counter() - t0
    trials = study.trials()
    if replay:  # each trial's share of the reference's training time
        wall = sum(ref["durations"][t.arch.key] * len(t.curve) / args.epochs for t in trials)
    best = study.best()
    return {
        "arm": name,
        "pruner": study.config.get("pruner", {"name": "none"}),
        "archs": [t.arch.key for t in trials],
        "curves": {t.arch.key: [p["val_acc"] for p in t.curve] for t in trials},
        "states": {t.arch.key: t.state.value for t in trials},
        "metrics": {t.arch.key: t.metrics for t in trials},
        "durations": {t.arch.key: t.duration_s for t in trials},
        "replayed": replay,
        "pruned": sum(t.state == State.PRUNED for t in trials),
        "epochs": sum(len(t.curve) for t in trials),
        "wall_s": wall,
        # training time summed over trials (replayed arms: estimated), comparable whatever the workers
        "trial_s": wall if replay else sum(t.duration_s or 0.0 for t in trials),
        "best_key": best.arch.key,
        "best_arch": family.describe(best.arch),
        "best_val_acc": best.metrics["val_acc"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="processes training the reference arm")
    ap.add_argument("--replay", action="store_true", help="pruned arms replay the reference's recorded curves")
    ap.add_argument("--quick", action="store_true", help="8 archs, 3 epochs, 1,000 + 300 images (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.archs, args.epochs, args.train, args.val = 8, 3, 1000, 300
    import torch

    torch.set_num_threads(args.threads)
    family = create_family("lenet")
    ev = TrainEvaluator(family, "fashion-mnist", epochs=args.epochs, train_subset=args.train, val_size=args.val,
                        test_subset=1000, threads=args.threads, save_weights=False, **RECIPE)  # fmt: skip
    ev.data()  # loaded once, before the clocks start
    ref = run_arm("none", args, ev, family)
    arms = [ref] + [run_arm(name, args, ev, family, ref if args.replay else None) for name in ARMS if name != "none"]
    rows = []
    for a in arms:
        assert sorted(a["archs"]) == sorted(ref["archs"]), "the arms did not see the same archs"
        cut = [k for k, c in a["curves"].items() if c != ref["curves"][k][: len(c)]]
        ranked = sorted(ref["archs"], key=lambda k: -max(ref["curves"][k]))
        rows.append({
            **{k: a[k] for k in ("arm", "pruner", "pruned", "epochs", "best_arch", "best_val_acc")},
            "wall_s": round(a["wall_s"], 1),
            "same_best": a["best_key"] == ref["best_key"],
            "gap_points": round(ref["best_val_acc"] - a["best_val_acc"], 2),
            "reference_rank_of_best": ranked.index(a["best_key"]) + 1,
            "epochs_saved_x": round(ref["epochs"] / a["epochs"], 2),
            "trial_s": round(a["trial_s"], 1),
            "speedup_x": round(ref["trial_s"] / a["trial_s"], 2),
            "curves_not_prefix": len(cut),
            "replayed": a["replayed"],
        })  # fmt: skip
    settings = {k: getattr(args, k) for k in ("archs", "epochs", "train", "val", "seed", "threads", "workers", "replay",
                                              "quick")}  # fmt: skip
    name = "pruners" + ("-quick" if args.quick else f"-e{args.epochs}")
    path = save(name, {"settings": {**settings, "recipe": RECIPE}, "arms": rows, "trials": arms}, args.threads)
    print(f"settings: {settings}\n")
    cols = ["arm", "pruned", "epochs", "saved", "wall s", "trial s", "speed-up", "best arch", "val_acc", "same best",
            "gap", "ref rank", "curves not prefix"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        cells = [r["arm"], f"{r['pruned']}/{args.archs}", r["epochs"], f"{r['epochs_saved_x']}x", r["wall_s"],
                 r["trial_s"], f"{r['speedup_x']}x", r["best_arch"], f"{r['best_val_acc']:.2f}",
                 "yes" if r["same_best"] else "no", f"{r['gap_points']:.2f}", r["reference_rank_of_best"],
                 r["curves_not_prefix"]]  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    if args.replay:
        print("\n(asha and hyperband replayed the reference's curves; their wall s is estimated, see --help)")
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
