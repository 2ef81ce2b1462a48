"""The practice from Python: grid search over LeNets on MNIST under 0.05 MiB, then export the best model.

    NASFORGE_DATA=/path/to/data python examples/practice.py
"""

from __future__ import annotations

from nasforge import quick
from nasforge.evaluators.train import TrainEvaluator
from nasforge.export import export_trial
from nasforge.spaces import create_family
from nasforge.strategies import create_strategy
from nasforge.study import Study


def main() -> None:
    family = create_family("lenet")
    # quick sizes (drop the subsets for real); NASFORGE_QUICK=1 shrinks them further, as it does for the CLI
    sizes = {"epochs": 1, "train_subset": 5000, "test_subset": None, "val_size": None}
    sizes = quick.shrink("examples/practice.py", sizes)
    evaluator = TrainEvaluator(family, "mnist", **sizes)
    study = Study.open("practice-example", storage="sqlite:///out/example.db")
    study.run(family, create_strategy("grid", family.space), evaluator,
              constraints=["size<=0.05MiB"], objectives=["maximize val_acc"])  # fmt: skip
    best = study.best()
    print(f"best: {family.describe(best.arch)} val {best.metrics['val_acc']:.2f}% test {best.metrics['test_acc']:.2f}%")
    export_trial(study, best, "out/example-best")


if __name__ == "__main__":
    main()
