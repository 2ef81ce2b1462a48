"""What DARTS, GDAS and ProxylessNAS share: architecture parameters per group, the two halves of the training data,
the weight optimiser, the epoch loop, derivation and the saved state.

The data: ``x_train`` is split once into two fixed halves (a seeded permutation): the first trains the weights, the
second the architecture parameters (DARTS's bilevel split; the validation split is left for evaluating the derived
arch). An epoch walks both halves in lockstep, one batch of each per step; a subclass's ``step(w_batch, a_batch)``
does the updates and returns its losses.

The weights: SGD with momentum 0.9, weight decay 3e-4, cosine-annealed from ``lr`` to ``lr_min`` over all steps and
gradients clipped to norm 5 (DARTS's recipe, REFERENCES.md). The architecture parameters: one vector per group of
``RelaxedNet`` (zero at the start: uniform), Adam with ``arch_lr`` and the method's betas and weight decay.

Derivation is the argmax per group, never a candidate holding ``none`` (a zero op contributes nothing; DARTS and
NAS-Bench-201 exclude it). In our spaces every node has its edges fixed (NAS-Bench-201) or picks its two inputs
through a dimension (``cell``, whose branch units mix (input, op) pairs), so DARTS's "top-2 incoming edges" rule is the
argmax of each of the two branch units; global dimensions take their ``fixed`` values.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import NasforgeError
from ..space import Arch
from ..spaces.base import Family
from ..strategies.base import setting
from ..task import Task
from .base import OneShot, Progress, check_loss
from .relax import RelaxedNet


class GradientOneShot(OneShot):
    """Base of the methods with architecture parameters; see the module docstring."""

    arch_betas: tuple[float, float] = (0.5, 0.999)

    def __init__(
        self, family: Family, task: Task, *, seed: int = 0, epochs: int = 10, batch_size: int = 64,
        lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9, weight_decay: float = 3e-4,
        arch_lr: float = 3e-4, arch_weight_decay: float = 1e-3, grad_clip: float = 5.0,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(family, task, seed=seed)
        who = f"{self.name or 'one-shot'} settings"
        self.epochs = setting(who, "epochs", epochs, int, 1)
        self.batch_size = setting(who, "batch_size", batch_size, int, 1)
        self.lr = setting(who, "lr", lr, float, 0, lo_open=True)
        self.lr_min = setting(who, "lr_min", lr_min, float, 0)
        self.momentum = setting(who, "momentum", momentum, float, 0, 1)
        self.weight_decay = setting(who, "weight_decay", weight_decay, float, 0)
        self.arch_lr = setting(who, "arch_lr", arch_lr, float, 0, lo_open=True)
        self.arch_weight_decay = setting(who, "arch_weight_decay", arch_weight_decay, float, 0)
        self.grad_clip = setting(who, "grad_clip", grad_clip, float, 0, lo_open=True)
        self.fixed_setting = dict(fixed or {})

    def config(self) -> dict[str, Any]:
        keys = ("epochs", "batch_size", "lr", "lr_min", "momentum", "weight_decay", "arch_lr", "arch_weight_decay",
                "grad_clip")  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "fixed": self.fixed_setting}

    # --- setup --------------------------------------------------------------------------------------------------
    def setup(self, device: Any) -> None:
        torch.manual_seed(self.seed)  # the supernet's initial weights
        self.device = torch.device(device)
        self.supernet = self.family.supernet(self.task)
        self.net = RelaxedNet(self.supernet).to(self.device)
        self.fixed = self.net.check_fixed(self.fixed_setting)
        self.alphas = nn.ParameterList(
            nn.Parameter(torch.zeros(len(g.candidates), device=self.device)) for g in self.net.groups
        )
        self.weights = list(self.supernet.parameters())
        self.w_opt = torch.optim.SGD(self.weights, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        arch = [*self.alphas.parameters(), *self.more_arch_params()]
        if not arch:
            raise NasforgeError(
                f"{self.name}: family {self.family.name!r} has nothing to mix (no choice node, no block declared as a "
                f"unit; its dimensions are global: {', '.join(self.net.global_dims)}); use spos, or proxyless with "
                "estimator=reinforce"
            )
        self.a_opt = torch.optim.Adam(arch, lr=self.arch_lr, betas=self.arch_betas,
                                      weight_decay=self.arch_weight_decay)  # fmt: skip
        self.gen = torch.Generator().manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.sched: torch.optim.lr_scheduler.LRScheduler | None = None
        self._steps = 0

    def more_arch_params(self) -> list[torch.Tensor]:
        """Architecture parameters besides the groups' α (made here, in ``setup``), trained by the same optimiser."""
        return []

    def _halves(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(data.y_train)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))  # fixed for the whole run
        return perm[: n // 2], perm[n // 2 :]

    # --- the epoch loop -----------------------------------------------------------------------------------------
    def train_epoch(self, data: Any, epoch: int, progress: Progress = None) -> dict[str, float]:
        w_idx, a_idx = self._halves(data)
        bs = self.batch_size
        steps = max(1, min(len(w_idx), len(a_idx)) // bs)
        if self.sched is None:
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, self.epochs * steps, self.lr_min)
        self.net.train()
        pw = w_idx[torch.randperm(len(w_idx), generator=self.gen)]
        pa = a_idx[torch.randperm(len(a_idx), generator=self.gen)]
        dev = data.x_train.device
        totals: dict[str, float] = {}
        for s in range(steps):
            iw, ia = pw[s * bs : (s + 1) * bs].to(dev), pa[s * bs : (s + 1) * bs].to(dev)
            out = self.step((data.x_train[iw], data.y_train[iw]), (data.x_train[ia], data.y_train[ia]), epoch)
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + check_loss(float(v), f"epoch {epoch}, step {s + 1} ({k})")
            self.sched.step()
            if progress is not None and (s % 10 == 0 or s == steps - 1):
                progress(s + 1, steps, f"epoch {epoch}")
        return {k: v / steps for k, v in totals.items()}

    @abstractmethod
    def step(self, wb: tuple[torch.Tensor, torch.Tensor], ab: tuple[torch.Tensor, torch.Tensor],
             epoch: int) -> dict[str, float]: ...  # fmt: skip

    def weight_step(self, loss: torch.Tensor) -> None:
        self.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
        self.w_opt.step()

    # --- the distribution and the derived arch ------------------------------------------------------------------
    def probs(self) -> list[torch.Tensor]:
        return [torch.softmax(a.detach(), 0) for a in self.alphas]

    def arch_probs(self) -> dict[str, dict[str, float]]:
        return {g.name: {g.label(c): float(p[c]) for c in range(len(p))}
                for g, p in zip(self.net.groups, self.probs(), strict=True)}  # fmt: skip

    def derive(self) -> Arch:
        choice = []
        for g, p in zip(self.net.groups, self.probs(), strict=True):
            allowed = [c for c in range(len(p)) if "none" not in g.candidates[c]]
            choice.append(max(allowed or range(len(p)), key=lambda c: float(p[c])))
        return self.net.arch_of(self.fixed, choice)

    # --- state --------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(), "alphas": [a.detach().cpu() for a in self.alphas],
            "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
            "sched": None if self.sched is None else self.sched.state_dict(),
            "gen": self.gen.get_state(), "rng": self.rng.bit_generator.state, "extra": self.extra_state(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            for a, v in zip(self.alphas, state["alphas"], strict=True):
                a.copy_(v)
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        if state["sched"] is not None:
            # the scheduler is made by the first epoch; rebuild it to hold the saved position
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, 1, self.lr_min)
            self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        self.rng.bit_generator.state = state["rng"]
        self.load_extra_state(state["extra"])

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        return None


def entropy(p: torch.Tensor) -> float:
    """Entropy of a distribution in nats (how far an architecture's choice is from decided)."""
    return float(-(p * torch.log(p.clamp_min(1e-12))).sum()) if len(p) else math.nan
