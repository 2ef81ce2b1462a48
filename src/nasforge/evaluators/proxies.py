"""Zero-cost proxies: score an arch from its network at initialisation, without training (greater = better).

Each proxy is an ordinary evaluator returning its score under its own name and ``proxy_time_s`` (building the network
and scoring it; loading the data once per process is not counted). The network is ``family.build(arch, task)``,
initialised from ``ctx.seed``.

- ``synflow`` (Tanaka et al. 2020; as used by Abdelfattah et al. 2021, "Zero-cost proxies for lightweight NAS"):
  data-free. Every parameter replaced by its absolute value, BatchNorm layers removed (made exact identities, as the
  zero-cost authors' ``get_prunable_copy(bn=False)`` builds the network without BN; Tanaka et al.'s eval-mode BN on a
  fresh network differs from that only by a factor (1+ε)^-1/2 per layer), the network in float64 (the product of |θ|
  over a deep path overflows float32), an all-ones input of the task's shape, R = Σ outputs; score Σ |θ ⊙ ∂R/∂θ|
  over conv and linear weights.
- ``snip`` (Lee et al. 2019): Σ |θ ⊙ ∂L/∂θ| over conv and linear weights, L the cross-entropy of one mini-batch.
- ``grad_norm``: Σ over conv and linear layers of ‖∂L/∂W‖₂ (per-layer norms summed, as the zero-cost code does).
- ``naswot`` (Mellor et al. 2021, "NAS without training", v2): the binary code c of each ReLU's input (> 0) over a
  mini-batch; K = Σ_ReLU c·cᵀ + (1−c)(1−c)ᵀ = N_A − Hamming distance; score log|det K| (slogdet).
- ``jacob_cov`` (the paper's earlier version): J = ∂(Σ outputs)/∂x per sample, Σ_J its correlation matrix over the
  batch, eigenvalues λ; score −Σ log(λ+k) + 1/(λ+k), k = 1e-5.

The data-dependent proxies take one mini-batch (``batch_size``, default 64 as in the zero-cost paper; NASWOT used 128)
from a composed ``TrainEvaluator``'s data. The batch is drawn with ``data_seed``, not ``ctx.seed``, so that every arch
is scored on the same images (as the papers do); the network runs in training mode (BN on batch statistics).

Degenerate networks: when no input reaches the output (nb201 cells whose edges are all ``none``), NASWOT's kernel
is singular (log|det K| = −∞) and jacob_cov's correlations are undefined (J = 0); both raise a one-line
``TrialFailed`` saying so, which ``nasforge rank`` ranks below every scored arch. synflow and the gradient proxies
give such a network 0.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..errors import NasforgeError, TrialFailed
from ..space import Arch
from ..spaces.base import Family
from ..task import Task
from .base import Context, Evaluator, register_evaluator
from .train import TrainEvaluator

__all__ = ["GradNorm", "JacobCov", "Naswot", "Proxy", "Snip", "Synflow", "naswot_kernel", "synflow_score"]


def _weighted(model):
    """Conv and linear layers: the ones whose weights the zero-cost proxies sum over."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)]


def _identity(x):
    return x


def _saliency(model) -> float:
    """Σ |θ ⊙ ∂/∂θ| over conv and linear weights (synflow's and SNIP's sum)."""
    return float(sum((m.weight * m.weight.grad).detach().abs().sum() for m in _weighted(model)
                     if m.weight.grad is not None))  # fmt: skip


def _remove_bn(model) -> None:
    """Make every BatchNorm the identity, in place. Set, not replaced: a network may hold its modules in more places
    than its children (a blueprint net's run list), so swapping children would leave the old BN running."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, nn.modules.batchnorm._BatchNorm):
                continue
            if m.track_running_stats and m.running_var is not None:
                # eval mode: (x - 0) / sqrt((1 - eps) + eps) * 1 + 0 = x exactly
                m.eval()
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
            else:  # batch statistics in every mode: nothing to set, so skip the layer
                m.forward = _identity


def synflow_score(model, input_shape: tuple[int, ...]) -> float:
    """Σ |θ ⊙ ∂R/∂θ| over conv/linear weights of ``model`` (changed in place: |θ|, no BN, float64), R = Σ f(1)."""
    import torch

    model.double().eval()
    with torch.no_grad():
        for p in model.state_dict().values():
            if p.is_floating_point():
                p.abs_()
    _remove_bn(model)  # after |θ|: the identity needs its exact values
    model.zero_grad(set_to_none=True)
    out = model(torch.ones((1, *input_shape), dtype=torch.float64))
    out.sum().backward()
    return _saliency(model)


def naswot_kernel(codes) -> Any:
    """K = c·cᵀ + (1−c)(1−c)ᵀ for binary codes ``codes`` (batch × units): K[i, j] = units − Hamming(c_i, c_j)."""
    c = codes.double()
    return c @ c.T + (1 - c) @ (1 - c).T


class Proxy(Evaluator):
    """Common part: settings, the mini-batch, timing. A subclass gives ``name`` and ``score(model, x, y)``."""

    data_free = False
    default_batch = 64  # the zero-cost paper's

    def __init__(self, family: Family, dataset: Any = "mnist", *, data_dir: str | None = None,
                 batch_size: int | None = None, data_seed: int = 0, train_subset: int | None = None,
                 device: str = "auto", threads: int | None = None) -> None:  # fmt: skip
        self.family = family
        self.batch_size = int(self.default_batch if batch_size is None else batch_size)
        if self.batch_size < 2:
            raise NasforgeError(f"{self.name}: batch_size must be at least 2, got {batch_size!r}")
        self.data_seed = int(data_seed)
        self.threads = threads
        # data through the practice's evaluator: one loader, one normalisation, one cache (never a copy of its code)
        self.trainer = None if dataset is None else TrainEvaluator(
            family, dataset, data_dir=data_dir, train_subset=train_subset, device=device, save_weights=False)

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.name, "proxy_time_s")

    @property
    def default_objectives(self) -> tuple[str, ...]:  # type: ignore[override]
        return (f"maximize {self.name}",)

    def task(self) -> Task | None:
        if self.trainer is None:
            return self.family.task_or_default(None)
        return self.trainer.task()

    def config(self) -> dict[str, Any]:
        c: dict[str, Any] = {"proxy": self.name}
        if self.trainer is not None:
            c.update(dataset=self.trainer.source.spec(), train_subset=self.trainer.train_subset)
        if not self.data_free:
            c.update(batch_size=self.batch_size, data_seed=self.data_seed)
        return c

    def _batch(self):
        import torch

        if self.trainer is None:
            raise NasforgeError(f"{self.name} needs data: give a dataset (it scores one mini-batch)")
        data = self.trainer.data()
        n = len(data.y_train)
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(self.data_seed))[: self.batch_size]
        return data.x_train[idx.to(data.x_train.device)], data.y_train[idx.to(data.x_train.device)], data.task()

    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        x, y, task = (None, None, self.task()) if self.data_free else self._batch()
        t0 = time.perf_counter()
        torch.manual_seed(ctx.seed)
        model = self.family.build(arch, task)
        if x is not None:
            model = model.to(x.device).train()
        s = self.score(model, x, y, task)
        if not math.isfinite(s):
            raise TrialFailed(f"{self.name} score is {s} (overflow or a degenerate network)")
        return {self.name: s, "proxy_time_s": time.perf_counter() - t0}

    def score(self, model, x, y, task: Task) -> float:
        raise NotImplementedError


@register_evaluator("synflow")
class Synflow(Proxy):
    """Data-free: needs only the task's input shape (the family's default task unless a dataset is given)."""

    name = "synflow"
    data_free = True

    def __init__(self, family: Family, dataset: Any = None, **kw: Any) -> None:
        super().__init__(family, dataset, **kw)

    def score(self, model, x, y, task: Task) -> float:
        return synflow_score(model, task.input_shape)


def _loss_backward(model, x, y) -> None:
    import torch.nn.functional as F

    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


@register_evaluator("snip")
class Snip(Proxy):
    name = "snip"

    def score(self, model, x, y, task: Task) -> float:
        _loss_backward(model, x, y)
        # |∂L/∂mask| at mask = 1 is |θ ⊙ ∂L/∂θ| (the SNIP paper's connection sensitivity)
        return _saliency(model)


@register_evaluator("grad_norm")
class GradNorm(Proxy):
    name = "grad_norm"

    def score(self, model, x, y, task: Task) -> float:
        _loss_backward(model, x, y)
        return float(sum(m.weight.grad.detach().norm() for m in _weighted(model) if m.weight.grad is not None))


@register_evaluator("naswot")
class Naswot(Proxy):
    name = "naswot"
    default_batch = 128  # Mellor et al.'s

    def score(self, model, x, y, task: Task) -> float:
        import torch
        from torch import nn

        n = len(x)
        K = torch.zeros((n, n), dtype=torch.float64)

        def hook(_m, inp):  # a pre-hook: the ReLU may be in place and overwrite its input
            nonlocal K
            K = K + naswot_kernel((inp[0].detach().reshape(n, -1) > 0).cpu())

        handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
        if not handles:
            raise TrialFailed("naswot needs ReLU modules (binary activation codes) and the network has none")
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        sign, logdet = torch.linalg.slogdet(K)
        if sign == 0 or not math.isfinite(float(logdet)):
            raise TrialFailed("naswot kernel is singular (log|det K| = -inf): samples share activation codes, e.g. the "
                              "output ignores the input")  # fmt: skip
        return float(logdet)


@register_evaluator("jacob_cov")
class JacobCov(Proxy):
    name = "jacob_cov"

    def score(self, model, x, y, task: Task) -> float:
        import torch

        x = x.clone().requires_grad_(True)
        model(x).sum().backward()
        J = x.grad.detach().reshape(len(x), -1).double()
        J = J - J.mean(1, keepdim=True)
        norm = J.norm(dim=1)
        if bool((norm == 0).any()):
            raise TrialFailed("jacob_cov: an input Jacobian is constant, so its correlations are undefined (the output "
                              "ignores the input)")  # fmt: skip
        J = J / norm[:, None]
        lam = torch.linalg.eigvalsh(J @ J.T).clamp_min(0)  # round-off can leave -1e-16 on a PSD matrix
        k = 1e-5
        return float(-(torch.log(lam + k) + 1.0 / (lam + k)).sum())
