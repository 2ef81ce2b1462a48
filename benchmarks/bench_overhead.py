"""Per-trial overhead of the search loop and storage with a trivial evaluator, side by side with Optuna.

    python benchmarks/bench_overhead.py [--trials 1000] [--repeats 3] [--baseline OLD_SRC] [--no-optuna]

nasforge: Study.run with random search on a 6-dim × 5-choice space (15,625 archs, NAS-Bench-201's shape), the trivial
evaluator returning one number; includes ask/tell, canonical form, the cheap-cost check and the storage writes (two
transactions per trial in SQL), in three storages: a SQLite file, in-memory SQLite (``sqlite://``) and ``memory://``.
``nb201 table`` is what the NAS-Bench-201 benchmark runner needs: many short studies (``--studies`` of
``--study-trials`` each) on ``memory://`` with the table evaluator and no analytic costs (skipped without the data).
Optuna: RandomSampler and TPESampler (its default) with the same six categorical parameters, in memory and with RDB
(SQLite) storage.

Every case runs in its own process (so imports and caches do not leak between them), ``--repeats`` times,
interleaved; the figures are medians of wall time and of the process's CPU time (steadier on a loaded machine).
``--baseline`` points at another checkout's ``src`` (an older commit): its
nasforge cases run interleaved with this tree's, and the ratio this/baseline is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

OPS = ["none", "skip", "conv1", "conv3", "pool"]
HERE_SRC = Path(__file__).resolve().parents[1] / "src"
NASFORGE_CASES = {
    "nasforge random, SQLite file": "sqlite-file",
    "nasforge random, in-memory SQLite": "sqlite-memory",
    "nasforge random, memory://": "memory",
    "nasforge nb201 table, memory://, many studies": "nb201",
}
OPTUNA_CASES = {
    "optuna random, in memory": ("random", False),
    "optuna random, SQLite file": ("random", True),
    "optuna TPE, in memory": ("tpe", False),
    "optuna TPE, SQLite file": ("tpe", True),
}


class Clock:
    """Wall and CPU time of a block, in ms per trial. CPU time (this process only) is the steadier figure on a loaded
    machine; both are reported."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def per(self, n: int) -> dict[str, float]:
        return {"wall": self.wall / n * 1e3, "cpu": self.cpu / n * 1e3}


def score(arch) -> float:
    return sum(OPS.index(arch[f"e{i}"]) for i in range(6)) / 10


def toy_family():
    from nasforge.cost.layers import LayerSpec
    from nasforge.space import Space
    from nasforge.spaces.base import Family

    class Toy(Family):
        """Six categorical dims and a one-layer cost list: the loop's cost, not a family's."""

        name = "toy"

        def __init__(self) -> None:
            self._space = Space({f"e{i}": OPS for i in range(6)})

        @property
        def space(self):
            return self._space

        def layers(self, arch, task):
            return [LayerSpec("linear", (64,), (10,))]

        def build(self, arch, task):  # never called
            raise NotImplementedError

    return Toy()


def nasforge_case(case: str, n: int, tmp: str, args) -> dict[str, float] | None:
    """ms per trial of one nasforge case in this process (None: the tree cannot run it)."""
    from nasforge.spaces.base import Task
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    if case == "nb201":
        return nb201_case(args.studies, args.study_trials)
    url = {"sqlite-file": f"sqlite:///{tmp}/nf{os.getpid()}.db", "sqlite-memory": "sqlite://", "memory": "memory://"}
    fam = toy_family()
    try:
        study = Study.open("o", url[case])
        study.trials()
    except Exception:  # an older tree without this storage
        return None
    with Clock() as c:
        study.run(fam, create_strategy("random", fam.space, seed=0), lambda a, c: {"acc": score(a)},
                  task=Task((1, 8, 8), 10), objectives=["maximize acc"], budget=n)  # fmt: skip
    return c.per(n)


def nb201_case(studies: int, trials: int) -> dict[str, float] | None:
    """Many short studies on the NAS-Bench-201 table in memory: the benchmark runner's load."""
    import inspect

    from nasforge.errors import DataError
    from nasforge.evaluators.table import TableEvaluator
    from nasforge.spaces import create_family
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    if "analytic_costs" not in inspect.signature(Study.run).parameters:
        return None
    fam, ev = create_family("nb201"), TableEvaluator()
    try:
        _ = ev.table  # read once, outside the timing, as the runner does
    except DataError:
        return None
    with Clock() as c:
        for s in range(studies):
            Study.open(f"s{s}", "memory://").run(fam, create_strategy("random", fam.space, seed=s), ev,
                                                 budget=trials, analytic_costs=False, constraints=["lat_ms_fpga<=3"])
    return c.per(studies * trials)


def optuna_case(n: int, tmp: str, sampler: str, file: bool) -> dict[str, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.samplers.RandomSampler(seed=0) if sampler == "random" else optuna.samplers.TPESampler(seed=0)
    storage = f"sqlite:///{tmp}/op{os.getpid()}.db" if file else None
    study = optuna.create_study(direction="maximize", sampler=s, storage=storage)

    def obj(trial):
        return score({f"e{i}": trial.suggest_categorical(f"e{i}", OPS) for i in range(6)})

    with Clock() as c:
        study.optimize(obj, n_trials=n)
    return c.per(n)


def worker(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.worker in OPTUNA_CASES:
            sampler, file = OPTUNA_CASES[args.worker]
            v = optuna_case(args.tpe_trials if sampler == "tpe" else args.trials, tmp, sampler, file)
        else:
            v = nasforge_case(NASFORGE_CASES[args.worker], args.trials, tmp, args)
    print(json.dumps(v))


def run_case(name: str, src: Path, args) -> dict[str, float] | None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--worker", name, "--trials", str(args.trials), "--tpe-trials",
           str(args.tpe_trials), "--studies", str(args.studies), "--study-trials", str(args.study_trials)]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tpe-trials", type=int, default=1000)
    ap.add_argument("--studies", type=int, default=50, help="nb201 case: studies")
    ap.add_argument("--study-trials", type=int, default=100, help="nb201 case: trials per study")
    ap.add_argument("--baseline", type=Path, help="another checkout's src folder, run side by side")
    ap.add_argument("--no-optuna", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    trees = {"this": HERE_SRC, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    rows: dict[str, dict[str, list[float]]] = {}

    def add(label: str, v: dict[str, float] | None, r: int) -> None:
        if v is not None:
            for k, x in v.items():
                rows.setdefault(label, {}).setdefault(k, []).append(x)
            print(f"repeat {r}: {label}: {v['wall']:.3f} ms/trial wall, {v['cpu']:.3f} cpu", flush=True)

    for r in range(args.repeats):
        for name in NASFORGE_CASES:
            for tree, src in trees.items():
                add(f"{name} [{tree}]", run_case(name, src, args), r)
        for name in () if args.no_optuna else OPTUNA_CASES:
            add(name, run_case(name, HERE_SRC, args), r)
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in rows.items()}
    print(f"\nmedian ms per trial over {args.repeats} repeats, {args.trials} trials each (wall, cpu):")
    for k, v in med.items():
        print(f"  {k:60s} {v['wall']:8.3f} {v['cpu']:8.3f}")
    ratios = {}
    for name in NASFORGE_CASES:
        a, b = med.get(f"{name} [this]"), med.get(f"{name} [baseline]")
        if a is not None and b is not None:
            ratios[name] = {m: a[m] / b[m] for m in a}
            print(f"this / baseline, {name}: wall {ratios[name]['wall']:.3f}, cpu {ratios[name]['cpu']:.3f}")
    from _common import save

    save("overhead", {"command": "python benchmarks/bench_overhead.py " + " ".join(sys.argv[1:]), "trials": args.trials,
                      "ms_per_trial_median": med, "all": rows, "this_over_baseline": ratios})  # fmt: skip


if __name__ == "__main__":
    main()
