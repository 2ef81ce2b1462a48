"""Train from scratch: the practice's evaluator, on any data (``nasforge.datasets``) and any device.

The recipe is part of the evaluator's configuration, so a study records it and refuses to resume with another:
optimizer ``sgd`` (lr 0.01, momentum 0.5: the practice's) or ``adamw`` (lr 1e-3, weight decay 0.01), batch 64,
``schedule`` constant or cosine (annealed to zero over all steps), ``label_smoothing``. Each epoch is validated on a
split held out of the training data (stratified; ``val_size`` a fraction or a count, default 10% up to 5,000) unless
the data has its own; the best epoch's weights are kept, saved to the study's artifact store (``ctx.artifacts``) as
``model.pt``, and their test accuracy reported when the data has a test split.

The data's task (shape, classes, class names, the training split's per-channel mean and std) comes from one
streamed pass in the driver (``task()``), which also checks every label and sample; workers get it with the
evaluator and load the data once per process. All randomness (initialisation, shuffling) comes from ``ctx.seed``, so
a rerun gives the same numbers on the same device.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ..datasets import DataSource, as_source, plan, prepare, resolved_val_size, scan
from ..errors import NasforgeError, TrialFailed
from ..scoring import accuracy
from ..space import Arch
from ..spaces.base import Family
from ..strategies.base import setting
from ..task import Task
from .base import Context, Evaluator, register_evaluator

OPTIMIZERS = {"sgd": {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.0}, "adamw": {"lr": 1e-3, "weight_decay": 0.01}}
SCHEDULES = ("constant", "cosine")

# one data set per process and configuration: workers load it once, not once per trial
_DATA_CACHE: dict[str, Any] = {}


def check_device(device: str) -> str:
    """``device`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (spelling only; see ``resolve_device``)."""
    d = str(device).strip().lower()
    if d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit()):
        return d
    raise NasforgeError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


def resolve_device(device: str):
    """The torch device for a setting: ``auto`` is the current CUDA GPU when torch sees one, else the CPU; asking for
    a GPU torch cannot use is a one-line error."""
    import torch

    d = check_device(device)
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise NasforgeError(f"--device {d}: torch {torch.__version__} sees no CUDA GPU on this machine; use --device "
                            "cpu (or auto, which takes a GPU when there is one)")  # fmt: skip
    if ":" in d and int(d[5:]) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise NasforgeError(f"--device {d}: this machine has {n} CUDA GPU{'s' if n != 1 else ''} (cuda:0 to "
                            f"cuda:{n - 1})")  # fmt: skip
    return torch.device(d)  # plain "cuda" is the current GPU: a worker's own one when a pool spreads them


@register_evaluator("train")
class TrainEvaluator(Evaluator):
    """Train each arch from scratch on ``dataset`` (anything ``nasforge.datasets.as_source`` takes)."""

    default_objectives = ("maximize val_acc",)

    def __init__(
        self,
        family: Family,
        dataset: Any = "mnist",
        *,
        data_dir: str | None = None,
        epochs: int = 2,
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float | None = None,
        weight_decay: float | None = None,
        schedule: str = "constant",
        label_smoothing: float = 0.0,
        batch_size: int = 64,
        val_size: int | float | None = None,
        train_subset: int | None = None,
        test_subset: int | None = None,
        device: str = "auto",
        threads: int | None = None,
        max_loss: float = 1e3,
        save_weights: bool = True,
    ) -> None:
        who = "train evaluator"
        if optimizer not in OPTIMIZERS:
            raise NasforgeError(f"{who}: optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if schedule not in SCHEDULES:
            raise NasforgeError(f"{who}: schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if momentum is not None and optimizer != "sgd":
            raise NasforgeError(f"{who}: momentum is an SGD setting; {optimizer} has none (drop --momentum)")
        base = OPTIMIZERS[optimizer]
        self.family = family
        self.source: DataSource = as_source(dataset, data_dir)  # wraps; reads nothing yet
        self.epochs = setting(who, "epochs", epochs, int, 1)
        self.optimizer = optimizer
        self.lr = setting(who, "lr", base["lr"] if lr is None else lr, float, 0, lo_open=True)
        self.momentum = setting(who, "momentum", base["momentum"] if momentum is None else momentum, float, 0, 1) if (
            optimizer == "sgd") else None  # fmt: skip
        self.weight_decay = setting(who, "weight_decay", base["weight_decay"] if weight_decay is None else
                                    weight_decay, float, 0)  # fmt: skip
        self.schedule = schedule
        self.label_smoothing = setting(who, "label_smoothing", label_smoothing, float, 0, 1)
        self.batch_size = setting(who, "batch_size", batch_size, int, 1)
        self.val_size = val_size
        self.train_subset = setting(who, "train_subset", train_subset, int, 1, optional=True)
        self.test_subset = setting(who, "test_subset", test_subset, int, 1, optional=True)
        self.device = check_device(device)
        self.threads = threads
        self.max_loss = max_loss
        self.save_weights = save_weights
        self._task: Task | None = None

    # --- what the study records ---------------------------------------------------------------------------------
    def recipe(self) -> dict[str, Any]:
        """The training recipe (what decides the weights besides the data and the seed)."""
        r: dict[str, Any] = {"optimizer": self.optimizer, "lr": self.lr}
        if self.optimizer == "sgd":
            r["momentum"] = self.momentum
        r.update(weight_decay=self.weight_decay, schedule=self.schedule, label_smoothing=self.label_smoothing,
                 batch_size=self.batch_size, epochs=self.epochs)  # fmt: skip
        return r

    def config(self) -> dict[str, Any]:
        return {
            "dataset": self.source.spec(),
            **self.recipe(),
            "val_size": resolved_val_size(self.source, self.val_size),
            "train_subset": self.train_subset,
            "test_subset": self.test_subset,
        }

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        test = ("test_acc",) if "test" in self.source.meta().splits else ()
        return ("val_acc", *test, "val_loss", "train_loss", "best_epoch", "train_time_s")

    def _parts(self):
        return plan(self.source, self.val_size, train_subset=self.train_subset, test_subset=self.test_subset, seed=0)

    def task(self) -> Task:
        """The data's task, normalisation included, from one streamed pass that also checks the data (done once; it
        travels to workers with the evaluator). Checks too that the family takes such inputs and that the device
        exists, so that every mistake shows before anything is recorded."""
        if self._task is None:
            task = scan(self.source, self._parts())
            self.family.accepts(task)
            resolve_device(self.device)
            self._task = task
        return self._task

    def data(self):
        """The splits as normalised tensors on this evaluator's device (loaded once per process)."""
        task = self.task()
        device = resolve_device(self.device)
        key = json.dumps([self.source.spec(), self.val_size, self.train_subset, self.test_subset, task.to_dict(),
                          str(device)], default=str)  # fmt: skip
        if key not in _DATA_CACHE:
            _DATA_CACHE.clear()  # one data set at a time: a worker's memory holds one
            _DATA_CACHE[key] = prepare(self.source, self._parts(), task, device)
        return _DATA_CACHE[key]

    # --- training -----------------------------------------------------------------------------------------------
    def _optimizer(self, params):
        import torch

        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        return self.fit(arch, ctx)

    def fit(self, arch: Arch, ctx: Context, init: Any = None, epochs: int | None = None) -> dict[str, float]:
        """Train ``arch`` and return its metrics. ``init`` (a state dict of the arch's network) replaces the fresh
        initialisation, and ``epochs`` this evaluator's epoch count: the hook for evaluators that start from
        inherited weights (``inherit``)."""
        import torch

        epochs = self.epochs if epochs is None else epochs
        if self.threads:
            torch.set_num_threads(self.threads)
        data = self.data()
        device = data.x_train.device
        torch.manual_seed(ctx.seed)
        gen = torch.Generator().manual_seed(ctx.seed)
        model = self.family.build(arch, data.task())
        if init is not None:
            model.load_state_dict(init)
        model = model.to(device)
        opt = self._optimizer(model.parameters())
        steps = math.ceil(len(data.y_train) / self.batch_size)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
                 if self.schedule == "cosine" else None)  # fmt: skip
        best = (-1.0, math.inf, 0)  # val_acc, val_loss, epoch
        best_state: dict[str, Any] = {}
        t0 = time.perf_counter()
        train_loss = math.nan
        for epoch in range(1, epochs + 1):
            train_loss = self._epoch(model, opt, sched, data, gen, epoch, steps, ctx, epochs)
            val_acc, val_loss = accuracy(model, data.x_val, data.y_val)
            ctx.report(epoch, train_loss=train_loss, val_acc=val_acc, val_loss=val_loss)
            if val_acc > best[0]:
                best = (val_acc, val_loss, epoch)
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        ctx.update(epochs * steps, epochs * steps, "done")
        train_time = time.perf_counter() - t0
        model.load_state_dict(best_state)
        out = {"val_acc": best[0]}
        if data.x_test is not None:
            out["test_acc"] = accuracy(model, data.x_test, data.y_test)[0]
        if self.save_weights and ctx.artifacts is not None:
            ctx.artifacts.save("model.pt", best_state)
        return {**out, "val_loss": best[1], "train_loss": train_loss, "best_epoch": best[2], "train_time_s": train_time}

    def _epoch(self, model, opt, sched, data, gen, epoch: int, steps: int, ctx: Context, epochs: int) -> float:
        import torch
        import torch.nn.functional as F

        model.train()
        n, bs = len(data.y_train), self.batch_size
        perm = torch.randperm(n, generator=gen).to(data.x_train.device)
        total = 0.0
        for s in range(steps):
            idx = perm[s * bs : (s + 1) * bs]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx], label_smoothing=self.label_smoothing)
            lv = loss.item()
            if not math.isfinite(lv) or lv > self.max_loss:
                what = "became NaN" if math.isnan(lv) else f"exploded to {lv:.3g}"
                raise TrialFailed(f"training loss {what} at epoch {epoch}, step {s + 1} ({self.optimizer}, lr "
                                  f"{self.lr:g}); lower --lr")  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += lv
            if s % 50 == 0:
                ctx.update((epoch - 1) * steps + s + 1, epochs * steps, f"epoch {epoch}/{epochs}")
        return total / steps
