"""Your own model and space: a Space, a builder, costs by tracing, random search under a parameter limit.

    python examples/custom_space.py
    PYTHONPATH=examples nasforge show custom --storage sqlite:///out/custom.db

``ref="custom_space:family"`` is where the family can be imported from again: with it, ``nasforge show``, ``report``
and ``export`` rebuild the family in a fresh process (the module must be importable there, hence PYTHONPATH).
"""

from __future__ import annotations

from torch import nn

from nasforge.space import Space
from nasforge.spaces import MNIST_TASK
from nasforge.spaces.custom import BuilderFamily
from nasforge.strategies import create_strategy
from nasforge.study import Study


def mlp(arch, task):
    layers = [nn.Flatten(), nn.Linear(28 * 28, arch["width"]), nn.ReLU()]
    for _ in range(arch["depth"] - 1):
        layers += [nn.Linear(arch["width"], arch["width"]), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(arch["width"], task.num_classes))


family = BuilderFamily(Space({"width": [16, 32, 64, 128], "depth": [1, 2, 3]}), mlp, default_task=MNIST_TASK,
                       ref="custom_space:family")  # fmt: skip


def main() -> None:
    # a stand-in score; use TrainEvaluator(family, "mnist") to train for real
    study = Study.open("custom", storage="sqlite:///out/custom.db").run(
        family, create_strategy("random", family.space, seed=0), lambda arch, ctx: {"score": arch["width"]},
        objectives=["maximize score"], constraints=["params<=60K"],
    )  # fmt: skip
    for t in study.trials():
        print(t.number, dict(t.arch), t.state.value, int(t.costs["params"]))


if __name__ == "__main__":
    main()
