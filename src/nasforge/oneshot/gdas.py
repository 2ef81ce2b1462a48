"""GDAS (Dong & Yang, 2019): one candidate per unit and step, drawn by Gumbel-softmax, differentiable by the
straight-through trick.

Per step and group: h = softmax((α + g) / τ) with Gumbel noise g; the forward runs only argmax(h), weighted by the
hard one-hot whose gradient is the soft h's (``relax.straight_through``), so a step costs one path while every α
receives a gradient. τ anneals linearly from ``tau_max`` (10) to ``tau_min`` (0.1) over the epochs, as the authors'
NAS-Bench-201 runs. Weights and α alternate on the two halves of the training data (first order), as in DARTS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..strategies.base import setting
from .base import register_oneshot
from .gradient import GradientOneShot
from .relax import straight_through


@register_oneshot("gdas")
class GDAS(GradientOneShot):
    """Gradient-based search with differentiable sampling; see the module docstring."""

    def __init__(self, family, task, *, tau_max: float = 10.0, tau_min: float = 0.1, **settings) -> None:
        super().__init__(family, task, **settings)
        self.tau_max = setting("gdas settings", "tau_max", tau_max, float, 0, lo_open=True)
        self.tau_min = setting("gdas settings", "tau_min", tau_min, float, 0, lo_open=True)

    def config(self):
        return {**super().config(), "tau_max": self.tau_max, "tau_min": self.tau_min}

    def tau(self, epoch: int) -> float:
        frac = (epoch - 1) / max(self.epochs - 1, 1)
        return self.tau_max - (self.tau_max - self.tau_min) * frac

    def sample(self, tau: float) -> tuple[list[torch.Tensor], list[int]]:
        """Hard one-hot weights (straight-through) and the drawn index, per group, from this run's generator."""
        hard, index = [], []
        for a in self.alphas:
            u = torch.rand(a.shape, generator=self.gen).clamp(1e-10, 1 - 1e-10).to(a.device)
            soft = torch.softmax((a - torch.log(-torch.log(u))) / tau, 0)
            k = int(soft.argmax())
            one = torch.zeros_like(soft)
            one[k] = 1.0
            hard.append(one - soft.detach() + soft)
            index.append(k)
        return hard, index

    def loss(self, batch, tau: float) -> torch.Tensor:
        x, y = batch
        hard, index = self.sample(tau)
        return F.cross_entropy(self.net(x, self.fixed, straight_through(hard, index)), y)

    def step(self, wb, ab, epoch):
        tau = self.tau(epoch)
        lw = self.loss(wb, tau)
        self.weight_step(lw)
        self.a_opt.zero_grad(set_to_none=True)
        la = self.loss(ab, tau)
        la.backward()
        self.a_opt.step()
        return {"train_loss": float(lw.detach()), "arch_loss": float(la.detach())}
