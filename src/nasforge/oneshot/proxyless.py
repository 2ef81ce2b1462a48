"""ProxylessNAS (Cai et al., 2019): binarised paths, so a step holds one path's activations, and a latency loss.

Weight step (first half of the training data): one candidate per group drawn from p = softmax(α) runs alone.

Architecture step (second half), ``estimator="two_path"``: per group two distinct candidates are drawn from p, and
one of them, drawn from their renormalised probabilities p̃, is active. Binary gates g (1 on the active, 0 on the
other) multiply the two outputs; the inactive path runs without a graph (``relax.two_path``). After backward,
∂L/∂g_j = <∂L/∂y, o_j> and (ProxylessNAS eq. 4 over the two paths)

    ∂L/∂α_i = Σ_j ∂L/∂g_j · p̃_j (δ_ij − p̃_i),

applied by Adam with β1 = 0 (as the authors, so a parameter without gradient does not move), after which the two
updated α are shifted by one constant so that their total probability mass, and so every other candidate's
probability, is what it was (``rescale``).

The latency loss: E[latency] = L₀ + Σ_g Σ_c p_gc·D_gc, where D_gc is the latency change when group g takes candidate
c (every other group at its first candidate), priced once by the given latency model (a lookup table makes this
exact, its sum being additive over layers); the loss adds ``latency_weight``·E[latency]/``latency_ref_ms``, with
``latency_ref_ms`` the expected latency of the uniform distribution unless given. Its gradient reaches every α by
autograd, before the two-path part is added, as in the authors' code.

``estimator="reinforce"``: the REINFORCE variant. One arch per step is drawn from p (global dimensions too, each with
its own α: depth, width and resolution are searched as well), its reward is the authors' accuracy on the batch (0-1)
times (``latency_ref_ms``/latency)^``latency_weight``, and ∇_α = −(R − b)∇ log p(arch) with a moving-average baseline b.

The authors' gradient-mode loss, CE·0.2·(log E[lat]/log ref)^β, is not offered: with latencies under 1 ms (the
CPU-sized networks here) the logarithms are negative and the form inverts; the additive loss is linear in its weight,
which is what a sweep of the weight needs. ``warmup_epochs`` train the weights alone first (the authors warm up before
updating α).

Derivation: the argmax per group (never ``none``); global dimensions are ``fixed`` (two-path) or their argmax
(REINFORCE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NasforgeError
from ..space import Arch
from ..strategies.base import setting
from .base import register_oneshot
from .gradient import GradientOneShot
from .relax import single, two_path

ESTIMATORS = ("two_path", "reinforce")


@register_oneshot("proxyless")
class ProxylessNAS(GradientOneShot):
    """See the module docstring. ``latency``: any latency model (``model(arch) -> {"latency_ms": ms}`` or ``predict``)
    or None (no latency loss)."""

    arch_betas = (0.0, 0.999)

    def __init__(self, family, task, *, estimator: str = "two_path", latency: Any = None,
                 latency_weight: float = 0.0, latency_ref_ms: float | None = None, arch_lr: float = 1e-3,
                 arch_weight_decay: float = 0.0, baseline_decay: float = 0.99, warmup_epochs: int = 0,
                 **settings) -> None:  # fmt: skip
        super().__init__(family, task, arch_lr=arch_lr, arch_weight_decay=arch_weight_decay, **settings)
        if estimator not in ESTIMATORS:
            raise NasforgeError(f"proxyless settings: estimator must be one of {', '.join(ESTIMATORS)}, got "
                                f"{estimator!r}")  # fmt: skip
        who = "proxyless settings"
        self.estimator = estimator
        self.latency = latency
        self.latency_weight = setting(who, "latency_weight", latency_weight, float, 0)
        self.latency_ref_ms = setting(who, "latency_ref_ms", latency_ref_ms, float, 0, lo_open=True, optional=True)
        self.baseline_decay = setting(who, "baseline_decay", baseline_decay, float, 0, 1)
        self.warmup_epochs = setting(who, "warmup_epochs", warmup_epochs, int, 0)
        if self.latency_weight > 0 and latency is None:
            raise NasforgeError("proxyless settings: a latency_weight needs a latency model (--latency)")

    def config(self):
        lat = getattr(self.latency, "config", None)
        return {**super().config(), "estimator": self.estimator, "latency_weight": self.latency_weight,
                "latency_ref_ms": self.latency_ref_ms, "warmup_epochs": self.warmup_epochs,
                "latency": lat() if callable(lat) else None}  # fmt: skip

    # --- setup --------------------------------------------------------------------------------------------------
    def setup(self, device):
        super().setup(device)
        self.baseline: float | None = None
        self._table: tuple[float, list[torch.Tensor]] | None = None

    def more_arch_params(self):
        # REINFORCE also searches the global dimensions, each a categorical of its own
        sp = self.family.space
        self.g_alphas = nn.ParameterList(nn.Parameter(torch.zeros(len(sp.dims[d].values), device=self.device))
                                         for d in self.net.global_dims)  # fmt: skip
        return list(self.g_alphas) if self.estimator == "reinforce" else []

    def _ms(self, archs: list[Arch]) -> list[float]:
        lat = self.latency
        if hasattr(lat, "predict"):
            return [float(v) for v in lat.predict(archs)]
        return [float(lat(a)["latency_ms"]) for a in archs]

    def latency_table(self) -> tuple[float, list[torch.Tensor]]:
        """(L₀, D per group): the latency at every group's first candidate, and each candidate's change from it."""
        if self._table is None:
            zero = [0] * len(self.net.groups)
            archs = [self.net.arch_of(self.fixed, zero)]
            where = []
            for g, grp in enumerate(self.net.groups):
                for c in range(len(grp.candidates)):
                    choice = list(zero)
                    choice[g] = c
                    archs.append(self.net.arch_of(self.fixed, choice))
                    where.append((g, c))
            ms = self._ms(archs)
            d = [torch.zeros(len(grp.candidates), device=self.device) for grp in self.net.groups]
            for (g, c), v in zip(where, ms[1:], strict=True):
                d[g][c] = v - ms[0]
            self._table = (ms[0], d)
        return self._table

    def expected_latency(self) -> torch.Tensor:
        base, d = self.latency_table()
        return base + sum((torch.softmax(a, 0) * dg).sum() for a, dg in zip(self.alphas, d, strict=True))

    def _ref_ms(self) -> float:
        if self.latency_ref_ms is None:
            with torch.no_grad():
                base, d = self.latency_table()
                self.latency_ref_ms = max(base + sum(float(dg.mean()) for dg in d), 1e-6)
        return self.latency_ref_ms

    # --- sampling -----------------------------------------------------------------------------------------------
    def _draw(self, p: torch.Tensor, n: int = 1) -> list[int]:
        return [int(i) for i in torch.multinomial(p.detach().cpu(), n, replacement=False, generator=self.gen)]

    def _sample_global(self) -> dict[str, Any]:
        if self.estimator != "reinforce":
            return self.fixed
        sp = self.family.space
        return {d: sp.dims[d].values[self._draw(torch.softmax(a.detach(), 0))[0]]
                for d, a in zip(self.net.global_dims, self.g_alphas, strict=True)}  # fmt: skip

    # --- steps --------------------------------------------------------------------------------------------------
    def step(self, wb, ab, epoch):
        base = self._sample_global()
        choice = [self._draw(p)[0] for p in self.probs()]
        x, y = wb
        lw = F.cross_entropy(self.net(x, base, single(choice)), y)
        self.weight_step(lw)
        if epoch <= self.warmup_epochs:
            return {"train_loss": float(lw.detach())}
        la = self._reinforce(ab) if self.estimator == "reinforce" else self._two_path(ab)
        return {"train_loss": float(lw.detach()), **la}

    def _two_path(self, ab) -> dict[str, float]:
        x, y = ab
        pairs, gates = [], []
        for p in self.probs():
            two = self._draw(p, 2) if len(p) > 1 else [0, 0]
            pt = p[two] / p[two].sum()
            first = self._draw(pt)[0]  # the active one of the two
            pairs.append((two[first], two[1 - first]))
            gates.append(torch.tensor([1.0, 0.0], device=self.device, requires_grad=True))
        ce = F.cross_entropy(self.net(x, self.fixed, two_path(pairs, gates)), y)
        self.a_opt.zero_grad(set_to_none=True)
        loss = ce
        out = {"arch_loss": float(ce.detach())}
        if self.latency is not None and self.latency_weight > 0:
            e_lat = self.expected_latency()
            loss = ce + self.latency_weight * e_lat / self._ref_ms()
            out["expected_latency_ms"] = float(e_lat.detach())
        loss.backward()
        self.supernet.zero_grad(set_to_none=True)  # the arch step trains no weight
        old = [a.detach().clone() for a in self.alphas]
        for a, (i, j), gate in zip(self.alphas, pairs, gates, strict=True):
            add = binary_gate_grad(a.detach(), (i, j), gate.grad)
            a.grad = add if a.grad is None else a.grad + add
        self.a_opt.step()
        with torch.no_grad():
            for a, a0, (i, j) in zip(self.alphas, old, pairs, strict=True):
                rescale(a, a0, sorted({i, j}))
        return out

    def _reinforce(self, ab) -> dict[str, float]:
        x, y = ab
        sp = self.family.space
        base = self._sample_global()
        choice = [self._draw(p)[0] for p in self.probs()]
        with torch.no_grad():
            acc = float((self.net(x, base, single(choice)).argmax(1) == y).float().mean())
        arch = self.net.arch_of(base, choice)
        reward = acc
        out = {"arch_reward": acc}
        if self.latency is not None and self.latency_weight > 0:
            ms = self._ms([arch])[0]
            reward *= (self._ref_ms() / max(ms, 1e-9)) ** self.latency_weight
            out["latency_ms"] = ms
        self.baseline = reward if self.baseline is None else (
            self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward)  # fmt: skip
        logp = sum(torch.log_softmax(a, 0)[c] for a, c in zip(self.alphas, choice, strict=True))
        for d, a in zip(self.net.global_dims, self.g_alphas, strict=True):
            logp = logp + torch.log_softmax(a, 0)[sp.dims[d].index(arch[d])]
        self.a_opt.zero_grad(set_to_none=True)
        (-(reward - self.baseline) * logp).backward()
        self.a_opt.step()
        return out

    # --- derivation and state -----------------------------------------------------------------------------------
    def arch_probs(self):
        out = super().arch_probs()
        if self.estimator == "reinforce":
            sp = self.family.space
            for d, a in zip(self.net.global_dims, self.g_alphas, strict=True):
                p = torch.softmax(a.detach(), 0)
                out[d] = {str(v): float(p[k]) for k, v in enumerate(sp.dims[d].values)}
        return out

    def derive(self) -> Arch:
        arch = super().derive()
        if self.estimator != "reinforce":
            return arch
        sp = self.family.space
        glob = {d: sp.dims[d].values[int(a.detach().argmax())]
                for d, a in zip(self.net.global_dims, self.g_alphas, strict=True)}  # fmt: skip
        return sp.validate({**arch, **glob})

    def extra_state(self):
        return {"g_alphas": [a.detach().cpu() for a in self.g_alphas], "baseline": self.baseline,
                "latency_ref_ms": self.latency_ref_ms}  # fmt: skip

    def load_extra_state(self, state):
        with torch.no_grad():
            for a, v in zip(self.g_alphas, state["g_alphas"], strict=True):
                a.copy_(v)
        self.baseline = state["baseline"]
        self.latency_ref_ms = state["latency_ref_ms"]


def binary_gate_grad(alpha: torch.Tensor, idx: Sequence[int], gate_grad: torch.Tensor | None) -> torch.Tensor:
    """ProxylessNAS's α gradient from the binary gates of the paths ``idx``: ∂L/∂α_i = Σ_j ∂L/∂g_j p̃_j (δ_ij − p̃_i)
    over ``idx``, p̃ the softmax of their α (all candidates: the paper's formula; two: the two-path mode); zero for
    every other candidate. ``gate_grad[k]`` is ∂L/∂g for ``idx[k]``."""
    out = torch.zeros_like(alpha)
    idx = list(idx)
    if gate_grad is None or len(set(idx)) < 2:
        return out
    pt = torch.softmax(alpha[idx], 0)
    gp = gate_grad.to(pt) * pt
    out[idx] = gp - pt * gp.sum()  # Σ_j g'_j p̃_j δ_ij − p̃_i Σ_j g'_j p̃_j
    return out


def rescale(alpha: torch.Tensor, before: torch.Tensor, idx: list[int]) -> None:
    """Shift ``alpha[idx]`` by one constant so that Σ_{i∈idx} exp(α_i) equals its value ``before`` the update: the
    probabilities of the candidates outside ``idx`` are then unchanged (ProxylessNAS's rescaling)."""
    if len(idx) < 2:
        return
    old = torch.logsumexp(before[idx], 0)
    new = torch.logsumexp(alpha[idx], 0)
    alpha[idx] += old - new
    if not math.isfinite(float(alpha.sum())):
        raise NasforgeError("proxyless: architecture parameters became non-finite; lower the arch learning rate")
