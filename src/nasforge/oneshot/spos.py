"""Single Path One-Shot (SPOS; Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling",
ECCV 2020).

Training: every step samples ONE arch uniformly from ``family.space`` (no architecture parameters), activates its path
in the supernet (``set_active``) and takes one SGD step on a mini-batch of ``x_train``; only that path's weights get
gradients (SGD skips parameters without one, so their momentum and weight decay wait for their next turn). The
paper's recipe is SGD with momentum 0.9 and a decaying learning rate; here lr 0.05 annealed by a cosine over
``epochs`` × steps-per-epoch (or ``schedule="constant"``), weight decay 4e-5 as in the paper, batch 64.

Search: the paper runs evolution over the trained supernet, every candidate inheriting its weights and scored on
validation data after recalibrating its BatchNorm statistics (``recalibrate.py``). That is the ``supernet`` evaluator
(``evaluators/supernet.py``) driven by any black-box strategy (``evolution``), which is the proper pipeline.
``derive()`` is the cheap default: it scores ``n_derive`` distinct random archs the same way on ``x_val`` and returns
the best. It reads the data the last ``train_epoch`` saw (set ``data`` after a resume that trains no further), uses
its own seeded generators and leaves the supernet (weights, BN statistics, active path) as it found it, so calling it
never changes a run.

All randomness comes from ``seed``: the supernet's initial weights, the batch order (a ``torch.Generator``) and the
sampled paths (a ``numpy`` generator); both generators' states, the step count and the optimizer are in
``state_dict``, so a run resumed from any epoch's checkpoint ends bit-identical to an uninterrupted one. As torch's own
state dicts, it holds the live tensors: save it (or copy it) before training on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import NasforgeError
from ..space import Arch
from ..spaces.base import Family
from ..strategies.base import setting
from ..task import Task
from .base import OneShot, Progress, check_loss, register_oneshot

SCHEDULES = ("cosine", "constant")


@register_oneshot("spos")
class SPOS(OneShot):
    """Single-path uniform-sampling supernet training; see the module docstring."""

    cheap_derive = False  # derive() scores n_derive archs on the validation split

    def __init__(
        self,
        family: Family,
        task: Task,
        *,
        seed: int = 0,
        epochs: int = 10,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 4e-5,
        batch_size: int = 64,
        schedule: str = "cosine",
        n_derive: int = 20,
        bn_batches: int = 20,
        bn_batch_size: int = 128,
    ) -> None:
        super().__init__(family, task, seed=seed)
        who = "spos"
        if schedule not in SCHEDULES:
            raise NasforgeError(f"{who}: schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.epochs = setting(who, "epochs", epochs, int, 1)  # the cosine schedule's length
        self.lr = setting(who, "lr", lr, float, 0, lo_open=True)
        self.momentum = setting(who, "momentum", momentum, float, 0, 1)
        self.weight_decay = setting(who, "weight_decay", weight_decay, float, 0)
        self.batch_size = setting(who, "batch_size", batch_size, int, 1)
        self.schedule = schedule
        self.n_derive = setting(who, "n_derive", n_derive, int, 1)
        self.bn_batches = setting(who, "bn_batches", bn_batches, int, 1)
        self.bn_batch_size = setting(who, "bn_batch_size", bn_batch_size, int, 1)
        self.supernet: Any = None
        self.step = 0

    def config(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "schedule": self.schedule, "n_derive": self.n_derive,
                "bn_batches": self.bn_batches, "bn_batch_size": self.bn_batch_size}  # fmt: skip

    # --- training -----------------------------------------------------------------------------------------------
    def setup(self, device: Any) -> None:
        import torch

        with torch.random.fork_rng(devices=[]):  # initial weights from the seed, global RNG untouched
            torch.manual_seed(self.seed)
            self.supernet = self.family.supernet(self.task)
        self.supernet.to(device)
        self.device = device
        # nesterov off, as in the paper's code
        self.opt = torch.optim.SGD(self.supernet.parameters(), lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay)  # fmt: skip
        self.rng = np.random.default_rng(self.seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.step = 0

    def _lr(self, steps_per_epoch: int) -> float:
        if self.schedule == "constant":
            return self.lr
        total = self.epochs * steps_per_epoch
        return 0.5 * self.lr * (1 + math.cos(math.pi * min(self.step, total) / total))

    def train_epoch(self, data: Any, epoch: int, progress: Progress = None) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        if self.supernet is None:
            raise NasforgeError("spos: call setup(device) before train_epoch")
        self.data = data
        net = self.supernet
        net.train()
        n, bs = len(data.y_train), self.batch_size
        steps = math.ceil(n / bs)
        perm = torch.randperm(n, generator=self.gen).to(data.x_train.device)
        loss_sum, correct = 0.0, 0
        for s in range(steps):
            net.set_active(self.family.space.sample(self.rng))
            idx = perm[s * bs : (s + 1) * bs]
            x, y = data.x_train[idx], data.y_train[idx]
            for g in self.opt.param_groups:
                g["lr"] = self._lr(steps)
            out = net(x)
            loss = F.cross_entropy(out, y)
            lv = check_loss(loss.item(), f"epoch {epoch}, step {s + 1}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            loss_sum += lv * len(y)
            correct += int((out.argmax(1) == y).sum())
            if progress is not None and s % 20 == 0:
                progress(s + 1, steps, f"epoch {epoch}")
        if progress is not None:
            progress(steps, steps, f"epoch {epoch}")
        return {"train_loss": loss_sum / n, "train_acc": 100.0 * correct / n}

    # --- search -------------------------------------------------------------------------------------------------
    def candidates(self) -> list[Arch]:
        """The ``n_derive`` distinct archs ``derive`` scores (fewer when the space is smaller), from the seed."""
        rng = np.random.default_rng([self.seed, 1])  # a stream of its own: the training stream is not consumed
        space = self.family.space
        out: dict[str, Arch] = {}
        for _ in range(100 * self.n_derive):
            if len(out) >= min(self.n_derive, space.size):
                break
            a = space.sample(rng)
            out.setdefault(self.family.network_key(a), a)
        return list(out.values())

    def derive(self) -> Arch:
        from .recalibrate import keep_buffers, score_path

        if self.supernet is None or self.data is None:
            raise NasforgeError("spos: derive() scores archs on the data; run train_epoch first (or set .data after "
                                "a resume)")  # fmt: skip
        best: tuple[float, float, Arch] | None = None
        with keep_buffers(self.supernet) as net:
            for a in self.candidates():
                r = score_path(net, a, self.data, bn_batches_n=self.bn_batches, batch_size=self.bn_batch_size,
                               seed=self.seed)  # fmt: skip
                if best is None or (r["val_acc"], -r["val_loss"]) > (best[0], -best[1]):
                    best = (r["val_acc"], r["val_loss"], a)
        assert best is not None
        return best[2]

    # --- state --------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.supernet is None:
            raise NasforgeError("spos: call setup(device) before state_dict")
        return {
            "supernet": self.supernet.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,  # the cosine schedule's position
            "rng": self.rng.bit_generator.state,
            "torch_gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.supernet is None:
            raise NasforgeError("spos: call setup(device) before load_state_dict")
        self.supernet.load_state_dict(state["supernet"])
        self.opt.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["torch_gen"])
