"""Train from scratch: the practice's evaluator.

SGD (lr 0.01, momentum 0.5, batch 64 by default, as in the practice), per-epoch validation on a split held out of the
training files, the best epoch's weights kept (and saved as the trial's artifact), test accuracy of those weights.
The weights go to the study's artifact store (``ctx.artifacts``) as ``model.pt``. All randomness (initialisation,
shuffling) comes from ``ctx.seed``, so a rerun gives the same numbers.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

from ..errors import TrialFailed
from ..space import Arch
from ..spaces.base import Family
from .base import Context, Evaluator, register_evaluator

# one data set per process and configuration: workers load it once, not once per trial
_DATA_CACHE: dict[tuple, Any] = {}


def load_cached(dataset: str, data_dir: str | None, val_size: int, train_subset, test_subset, seed: int):
    from ..data import load_image_dataset

    key = (dataset, data_dir, val_size, train_subset, test_subset, seed)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_image_dataset(
            dataset, data_dir, val_size=val_size, train_subset=train_subset, test_subset=test_subset, seed=seed
        )
    return _DATA_CACHE[key]


def accuracy(model, x, y, batch: int = 1000) -> tuple[float, float]:
    """(accuracy in %, mean cross-entropy) of ``model`` on tensors ``x``, ``y`` in eval mode."""
    import torch
    import torch.nn.functional as F

    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i : i + batch])
            loss += float(F.cross_entropy(out, y[i : i + batch], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch]).sum())
    n = max(len(y), 1)
    return 100.0 * correct / n, loss / n


@register_evaluator("train")
class TrainEvaluator(Evaluator):
    metrics = ("val_acc", "test_acc", "val_loss", "train_loss", "best_epoch", "train_time_s")

    def __init__(
        self,
        family: Family,
        dataset: str = "mnist",
        *,
        data_dir: str | None = None,
        epochs: int = 2,
        lr: float = 0.01,
        momentum: float = 0.5,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        val_size: int = 5000,
        train_subset: int | None = None,
        test_subset: int | None = None,
        threads: int | None = None,
        max_loss: float = 1e3,
        save_weights: bool = True,
    ) -> None:
        self.family = family
        self.dataset = dataset
        self.data_dir = data_dir
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.val_size = val_size
        self.train_subset = train_subset
        self.test_subset = test_subset
        self.threads = threads
        self.max_loss = max_loss
        self.save_weights = save_weights

    def config(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "epochs": self.epochs,
            "lr": self.lr,
            "momentum": self.momentum,
            "batch_size": self.batch_size,
            "weight_decay": self.weight_decay,
            "val_size": self.val_size,
            "train_subset": self.train_subset,
            "test_subset": self.test_subset,
        }

    def data(self):
        return load_cached(self.dataset, self.data_dir, self.val_size, self.train_subset, self.test_subset, 0)

    def task(self):
        """From the data set's metadata (its IDX header): nothing is loaded."""
        from ..data import dataset_task

        return dataset_task(self.dataset, self.data_dir)

    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        if self.threads:
            torch.set_num_threads(self.threads)
        data = self.data()
        torch.manual_seed(ctx.seed)
        gen = torch.Generator().manual_seed(ctx.seed)
        model = self.family.build(arch, data.task())
        opt = torch.optim.SGD(
            model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        n, bs = len(data.y_train), self.batch_size
        steps = math.ceil(n / bs)
        best = (-1.0, math.inf, 0)  # val_acc, val_loss, epoch
        best_state = None
        t0 = time.perf_counter()
        train_loss = math.nan
        for epoch in range(1, self.epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for s in range(steps):
                idx = perm[s * bs : (s + 1) * bs]
                loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
                lv = loss.item()
                if not math.isfinite(lv) or lv > self.max_loss:
                    what = "became NaN" if math.isnan(lv) else f"exploded to {lv:.3g}"
                    raise TrialFailed(f"training loss {what} at epoch {epoch}, step {s + 1} (lr {self.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += lv
                if s % 50 == 0:
                    ctx.update((epoch - 1) * steps + s + 1, self.epochs * steps, f"epoch {epoch}/{self.epochs}")
            train_loss = total / steps
            val_acc, val_loss = accuracy(model, data.x_val, data.y_val)
            ctx.report(epoch, train_loss=train_loss, val_acc=val_acc, val_loss=val_loss)
            if val_acc > best[0]:
                best = (val_acc, val_loss, epoch)
                best_state = copy.deepcopy(model.state_dict())
        ctx.update(self.epochs * steps, self.epochs * steps, "done")
        train_time = time.perf_counter() - t0
        model.load_state_dict(best_state)
        test_acc, _ = accuracy(model, data.x_test, data.y_test)
        if self.save_weights and ctx.artifacts is not None:
            ctx.artifacts.save("model.pt", best_state)
        return {
            "val_acc": best[0],
            "test_acc": test_acc,
            "val_loss": best[1],
            "train_loss": train_loss,
            "best_epoch": best[2],
            "train_time_s": train_time,
        }
