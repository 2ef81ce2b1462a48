"""Your own data: a small image set in memory (here 1,500 synthetic 16×16 images of three shapes), searched with your
recipe, the best model exported to take raw pixels, and loaded back.

    python examples/own_data.py
    nasforge show own-data --storage sqlite:///out/own.db

The same data from the command line: save it with ``numpy.savez("shapes.npz", x_train=x, y_train=y,
class_names=names)`` and run ``nasforge search --dataset shapes.npz ...``, or write one folder of PNGs per class and
pass the folder.
"""

from __future__ import annotations

import numpy as np
import torch

from nasforge.evaluators.train import TrainEvaluator
from nasforge.export import export_trial, load
from nasforge.spaces import create_family
from nasforge.strategies import create_strategy
from nasforge.study import Study


def shapes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy 16×16 uint8 images of a square (0), a cross (1) or a ring (2) at random places."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, (n, 16, 16)).astype(np.uint8)
    y = rng.integers(0, 3, n)
    yy, xx = np.mgrid[:7, :7]
    stamps = [np.ones((7, 7), bool), (yy == 3) | (xx == 3), np.abs(np.hypot(yy - 3, xx - 3) - 2.5) < 0.8]
    for img, label, (r, c) in zip(x, y, rng.integers(0, 10, (n, 2)), strict=True):
        img[r : r + 7, c : c + 7][stamps[label]] = 230
    return x, y


def main() -> None:
    x, y = shapes(1500)
    xt, yt = shapes(300, seed=1)
    data = {"train": (x, y), "test": (xt, yt), "class_names": ["square", "cross", "ring"]}
    dims = {"conv1_ch": [6, 9], "conv1_k": [3, 5], "conv2_ch": [12, 16], "conv2_k": [3], "fc1": [64], "fc2": [32, 84]}
    family = create_family("lenet", dims=dims)  # kernels that fit 16×16 images
    evaluator = TrainEvaluator(family, data, epochs=3, optimizer="adamw", lr=3e-3, schedule="cosine", val_size=0.2)
    study = Study.open("own-data", storage="sqlite:///out/own.db")
    study.run(family, create_strategy("random", family.space, seed=0), evaluator, constraints=["params<=20K"], budget=6)
    best = study.best()
    print(f"task: {study.task()}")
    print(f"best: {family.describe(best.arch)} val {best.metrics['val_acc']:.1f}% test {best.metrics['test_acc']:.1f}%")
    export_trial(study, best, "out/own-best", data=data)  # data=: checked on real images (it was given in memory)
    model = load("out/own-best")  # takes raw pixels, like out/own-best/model.onnx
    with torch.no_grad():
        guess = model(torch.from_numpy(xt[:8, None].astype(np.float32))).argmax(1)
    print(f"exported to out/own-best; on raw test images it says {guess.tolist()}, the labels are {yt[:8].tolist()}")


if __name__ == "__main__":
    main()
