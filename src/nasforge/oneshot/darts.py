"""DARTS (Liu et al., 2019): a softmax-weighted sum of every candidate at every unit, and bilevel optimisation.

Weights minimise the loss on the first half of the training data, the architecture parameters α the loss on the
second half, one step of each per batch pair. ``order=1`` differentiates the second-half loss at the current weights
(first-order DARTS). ``order=2`` differentiates it at the weights after one virtual SGD step,
w' = w − ξ∇_w L_train(w, α), which gives (DARTS eq. 7-8)

    ∇_α L_val(w', α) − ξ · [∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)] / (2ε),   w± = w ± ε∇_{w'} L_val(w', α),

with ε = ``fd_eps`` / ‖∇_{w'} L_val(w', α)‖ (the authors' 0.01): the Hessian-vector product by finite differences.
On a ReLU network a step that crosses a kink is off by O(1) whatever its size, so the product is an estimate; on a
smooth network it matches autograd's double backward (the tests check it so). ξ is the weights' current
learning rate, as the authors set it; the virtual step is plain gradient descent (their code adds momentum and weight
decay to it; the difference vanishes as ξ does). ``hypergradient`` is the computation on its own, so that it can be
checked against autograd's double backward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import NasforgeError
from ..strategies.base import setting
from .base import register_oneshot
from .gradient import GradientOneShot
from .relax import weighted


def hypergradient(
    loss_w: Callable[[], torch.Tensor], loss_a: Callable[[], torch.Tensor], weights: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor], xi: float, eps: float = 0.01,
) -> tuple[list[torch.Tensor], torch.Tensor]:  # fmt: skip
    """Second-order DARTS gradient of ``loss_a`` with respect to ``alphas`` (module docstring), and ``loss_a`` at w'.

    ``loss_w()`` / ``loss_a()`` compute the two halves' losses with the current values of ``weights`` (which this
    function changes in place and restores)."""
    saved = [w.detach().clone() for w in weights]
    gw = torch.autograd.grad(loss_w(), weights, allow_unused=True)
    try:
        with torch.no_grad():
            for w, g in zip(weights, gw, strict=True):
                if g is not None:
                    w.sub_(xi * g)
        la = loss_a()
        grads = _grads(la, [*alphas, *weights])
        d_alpha, d_w = grads[: len(alphas)], grads[len(alphas) :]
        r = eps / torch.sqrt(sum((d * d).sum() for d in d_w)).clamp_min(1e-12)
        hvp = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, d in zip(weights, saved, d_w, strict=True):
                    w.copy_(w0 + sign * r * d)
            hvp.append(_grads(loss_w(), list(alphas)))
        out = [da - xi * (p - n) / (2 * r) for da, p, n in zip(d_alpha, hvp[0], hvp[1], strict=True)]
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, saved, strict=True):
                w.copy_(w0)
    return out, la.detach()


def _grads(loss: torch.Tensor, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    gs = torch.autograd.grad(loss, xs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs, strict=True)]


@register_oneshot("darts")
class DARTS(GradientOneShot):
    """Differentiable architecture search; ``order`` 1 or 2 (see the module docstring)."""

    def __init__(self, family, task, *, order: int = 1, fd_eps: float = 0.01, **settings) -> None:
        super().__init__(family, task, **settings)
        if order not in (1, 2):
            raise NasforgeError(f"darts settings: order must be 1 or 2, got {order!r}")
        self.order = order
        self.fd_eps = setting("darts settings", "fd_eps", fd_eps, float, 0, lo_open=True)

    def config(self):
        return {**super().config(), "order": self.order, "fd_eps": self.fd_eps}

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        w = [torch.softmax(a, 0) for a in self.alphas]
        return F.cross_entropy(self.net(x, self.fixed, weighted(w)), y)

    def step(self, wb, ab, epoch):
        alphas = list(self.alphas)
        self.a_opt.zero_grad(set_to_none=True)
        if self.order == 1:
            la = self.loss(ab)
            grads = _grads(la, alphas)
        else:
            xi = self.w_opt.param_groups[0]["lr"]
            grads, la = hypergradient(lambda: self.loss(wb), lambda: self.loss(ab), self.weights, alphas, xi,
                                      self.fd_eps)  # fmt: skip
        for a, g in zip(alphas, grads, strict=True):
            a.grad = g.detach()
        self.a_opt.step()
        lw = self.loss(wb)
        self.weight_step(lw)
        return {"train_loss": float(lw.detach()), "arch_loss": float(la.detach())}
