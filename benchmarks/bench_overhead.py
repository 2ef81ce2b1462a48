"""Per-trial overhead of the search loop and storage with a trivial evaluator, side by side with Optuna.

    python benchmarks/bench_overhead.py [--trials 1000] [--repeats 3]

nasforge: Study.run with random search on a 6-dim × 5-choice space (15,625 archs, NAS-Bench-201's shape), the trivial
evaluator returning one number; includes ask/tell, the cheap-cost check and the storage writes (two transactions per
trial). Optuna: RandomSampler and TPESampler (its default) with the same six categorical parameters, in memory and
with RDB (SQLite) storage. Each configuration runs ``--repeats`` times, interleaved; the figure is the median.
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

from nasforge.cost.layers import LayerSpec  # noqa: E402
from nasforge.space import Space  # noqa: E402
from nasforge.spaces.base import Family, Task  # noqa: E402
from nasforge.strategies import create_strategy  # noqa: E402
from nasforge.study import Study  # noqa: E402

OPS = ["none", "skip", "conv1", "conv3", "pool"]
TASK = Task((1, 8, 8), 10)


class Toy(Family):
    """Six categorical dims and a one-layer cost list: the loop's cost, not a family's."""

    name = "toy"

    @property
    def space(self) -> Space:
        return Space({f"e{i}": OPS for i in range(6)})

    def layers(self, arch, task):
        return [LayerSpec("linear", (64,), (10,))]

    def build(self, arch, task):  # never called
        raise NotImplementedError


def score(arch) -> float:
    return sum(OPS.index(arch[f"e{i}"]) for i in range(6)) / 10


def nasforge_run(n: int, url: str, strategy: str = "random") -> float:
    fam = Toy()
    study = Study.open("o", url)
    t = time.perf_counter()
    study.run(fam, create_strategy(strategy, fam.space, seed=0), lambda a, c: {"acc": score(a)}, task=TASK,
              objectives=["maximize acc"], budget=n)  # fmt: skip
    return (time.perf_counter() - t) / n * 1e3


def optuna_run(n: int, storage: str | None, sampler: str) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.samplers.RandomSampler(seed=0) if sampler == "random" else optuna.samplers.TPESampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=s, storage=storage)

    def obj(trial):
        return score({f"e{i}": trial.suggest_categorical(f"e{i}", OPS) for i in range(6)})

    t = time.perf_counter()
    study.optimize(obj, n_trials=n)
    return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tpe-trials", type=int, default=1000)
    args = ap.parse_args()
    n = args.trials
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            cases = {
                "nasforge random, in-memory SQLite": lambda: nasforge_run(n, "sqlite://"),
                "nasforge random, SQLite file": lambda r=r: nasforge_run(n, f"sqlite:///{tmp}/nf{r}.db"),
                "optuna random, in memory": lambda: optuna_run(n, None, "random"),
                "optuna random, SQLite file": lambda r=r: optuna_run(n, f"sqlite:///{tmp}/op{r}.db", "random"),
                "optuna TPE, in memory": lambda: optuna_run(args.tpe_trials, None, "tpe"),
                "optuna TPE, SQLite file": lambda r=r: optuna_run(args.tpe_trials, f"sqlite:///{tmp}/tp{r}.db", "tpe"),
            }
            for name, fn in cases.items():
                rows.setdefault(name, []).append(fn())
                print(f"repeat {r}: {name}: {rows[name][-1]:.2f} ms/trial", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"\nmedian ms per trial over {args.repeats} repeats, {n} trials each:")
    for k, v in med.items():
        print(f"  {k:38s} {v:8.2f}")
    ratio = med["optuna random, SQLite file"] / med["nasforge random, SQLite file"]
    print(f"Optuna (random, SQLite) / nasforge (random, SQLite): {ratio:.1f}x")
    save("overhead", {"command": "python benchmarks/bench_overhead.py " + " ".join(sys.argv[1:]), "trials": n,
                      "ms_per_trial_median": med, "all": rows, "optuna_over_nasforge_sqlite": ratio})  # fmt: skip


if __name__ == "__main__":
    main()
