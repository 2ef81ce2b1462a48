"""The practice: grid search over the 729 LeNets on MNIST under 0.05 MiB, 5 epochs per candidate (as the exercise).

    python benchmarks/bench_practice.py [--epochs 5] [--threads 2]

Figures: archs visited, archs trained (must be 17), best validation and test accuracy (target >= 97.5% test), the
median wall time per trained trial and per epoch, and the total wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from nasforge.evaluators.train import TrainEvaluator  # noqa: E402
from nasforge.spaces import create_family  # noqa: E402
from nasforge.strategies import create_strategy  # noqa: E402
from nasforge.study import Study  # noqa: E402
from nasforge.trial import State  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fam = create_family("lenet")
    ev = TrainEvaluator(fam, "mnist", epochs=args.epochs, threads=args.threads)
    t_load = time.perf_counter()
    ev.data()
    t_load = time.perf_counter() - t_load
    with tempfile.TemporaryDirectory() as tmp:
        study = Study.open("practice", f"sqlite:///{tmp}/practice.db")
        t0 = time.perf_counter()
        study.run(fam, create_strategy("grid", fam.space), ev, constraints=["size<=0.05MiB"],
                  objectives=["maximize val_acc"],
                  on_trial=lambda t: t.state == State.COMPLETE and print(
                      f"trial {t.number:3d} {fam.describe(t.arch):22s} val {t.metrics['val_acc']:.2f} "
                      f"test {t.metrics['test_acc']:.2f} {t.duration_s:.1f}s", flush=True))  # fmt: skip
        wall = time.perf_counter() - t0
        trials = study.trials()
        done = study.trials([State.COMPLETE])
        best = study.best()
        top_test = max(done, key=lambda t: t.metrics["test_acc"])
        res = {
            "command": "python benchmarks/bench_practice.py " + " ".join(sys.argv[1:]),
            "epochs": args.epochs,
            "threads": args.threads,
            "visited": len(trials),
            "trained": len(done),
            "infeasible": sum(t.state == State.INFEASIBLE for t in trials),
            "best_by_val": {"arch": fam.describe(best.arch), **best.metrics, "size_bytes": best.costs["size"]},
            "best_test_of_17": {"arch": fam.describe(top_test.arch), "test_acc": top_test.metrics["test_acc"]},
            "median_trial_s": statistics.median(t.duration_s for t in done),
            "median_epoch_s": statistics.median(t.metrics["train_time_s"] / args.epochs for t in done),
            "data_load_s": t_load,
            "total_wall_s": wall,
            "trials": [{"arch": fam.describe(t.arch), **t.metrics} for t in done],
        }
    print(f"visited {res['visited']}, trained {res['trained']}, infeasible {res['infeasible']}")
    b = res["best_by_val"]
    print(f"best by validation: {b['arch']} val {b['val_acc']:.2f}% test {b['test_acc']:.2f}%")
    print(f"median per trial {res['median_trial_s']:.1f}s, per epoch {res['median_epoch_s']:.2f}s, "
          f"total {wall:.0f}s (+{t_load:.1f}s data load)")
    print("written", save("practice", res))


if __name__ == "__main__":
    main()
