"""REINFORCE with an LSTM controller (Zoph & Le, ICLR 2017; ENAS, Pham et al., ICML 2018) over any Space."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..space import Arch, Space
from ..trial import Result
from .base import Strategy, register_strategy, setting
from .evolution import random_unseen

if TYPE_CHECKING:  # torch is imported on first use, so that registering (and listing) strategies stays light
    import torch

    from ..nn.controller import Controller


def __getattr__(name: str):
    if name == "Controller":  # its old home
        from ..nn.controller import Controller

        return Controller
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@register_strategy("reinforce")
class Reinforce(Strategy):
    """Policy-gradient search: each told result is one REINFORCE step on the controller that proposes archs.

    Loss per told arch a: ``-log π(a) · (R - b)`` with R = ``score[0]`` + ``entropy_weight`` · H(π at a) (the entropy
    bonus added to the reward, as in ENAS), and b an exponential moving average of past R (decay ``baseline_decay``,
    started at the first reward, updated after the step). A failed or infeasible result gets the lowest reward seen so
    far (none yet: no step), so the controller learns to avoid it without an arbitrary scale. Adam, lr
    ``lr``. Rewards are divided by a running standard deviation when ``normalize`` is set, so that one learning rate
    suits accuracies in % and losses alike.

    ``ask`` samples ``sample_batch`` sequences at a time and keeps the unseen feasible ones; after ``resample``
    sequences without a new one it falls back to random unseen archs, so no arch is ever queried twice. All randomness
    comes from a ``torch.Generator`` and a numpy Generator seeded from ``seed``.
    """

    def __init__(self, space: Space, *, seed: int | None = 0, hidden: int = 64, lr: float = 3.5e-3,
                 baseline_decay: float = 0.95, entropy_weight: float = 1e-4, tanh_c: float = 2.5,
                 temperature: float = 5.0, normalize: bool = True, resample: int = 256, sample_batch: int = 32) -> None:
        super().__init__(space, seed=seed)
        who = "reinforce"
        self.hidden = setting(who, "hidden", hidden, int, 1)
        self.lr = setting(who, "lr", lr, float, 0, lo_open=True)
        self.baseline_decay = setting(who, "baseline_decay", baseline_decay, float, 0, 1)
        self.entropy_weight = setting(who, "entropy_weight", entropy_weight, float, 0)
        self.tanh_c = setting(who, "tanh_c", tanh_c, float, 0, lo_open=True)
        self.temperature = setting(who, "temperature", temperature, float, 0, lo_open=True)
        self.normalize = setting(who, "normalize", normalize, bool)
        self.resample = setting(who, "resample", resample, int, 1)
        self.sample_batch = setting(who, "sample_batch", sample_batch, int, 1)
        self.baseline: float | None = None
        self._controller: Controller | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._gen: torch.Generator | None = None
        self._worst: float | None = None
        self._n = 0  # running mean/variance of rewards (Welford), for normalisation
        self._mean = 0.0
        self._m2 = 0.0

    def hyper(self) -> dict[str, Any]:
        keys = ("hidden", "lr", "baseline_decay", "entropy_weight", "tanh_c", "temperature", "normalize",
                "resample", "sample_batch")
        return {k: getattr(self, k) for k in keys}

    @property
    def controller(self) -> Controller:
        if self._controller is None:  # built on first use: constructors only store
            import torch

            from ..nn.controller import Controller

            self._gen = torch.Generator().manual_seed(int(self.rng.integers(2**62)))
            sizes = [len(c) for c in self.space.dims.values()]
            self._controller = Controller(sizes, self.hidden, self.tanh_c, self.temperature).init_(self._gen)
            self._opt = torch.optim.Adam(self._controller.parameters(), lr=self.lr, foreach=True)
        return self._controller

    # --- proposing ----------------------------------------------------------------------------------------------
    def _to_arch(self, row: list[int]) -> Arch:
        return self.space.validate({k: c.values[i] for (k, c), i in zip(self.space.dims.items(), row, strict=True)})

    def _ask(self, n: int) -> list[Arch]:
        from ..surrogate import one_thread

        with one_thread():
            return self._ask_controller(n)

    def _ask_controller(self, n: int) -> list[Arch]:
        import torch

        ctrl = self.controller
        out: list[Arch] = []
        batch: set[str] = set()
        tried = 0
        while len(out) < n and tried < self.resample:
            with torch.no_grad():
                actions, _, _ = ctrl(batch=self.sample_batch, gen=self._gen)
            tried += self.sample_batch
            for row in actions.tolist():
                a = self._to_arch(row)
                if a.key not in batch and not self.seen(a) and self.feasible(a):
                    out.append(a)
                    batch.add(a.key)
                    tried = 0
                    if len(out) == n:
                        break
        if len(out) < n:
            out += random_unseen(self, n - len(out), batch)
        return out

    # --- learning -----------------------------------------------------------------------------------------------
    def _actions(self, arch: Arch) -> torch.Tensor:
        import torch

        return torch.tensor([[c.index(arch[k]) for k, c in self.space.dims.items()]])

    def reward(self, result: Result) -> float | None:
        """The raw reward of a result (before the entropy bonus): ``score[0]`` when it completed and met every
        constraint, else the lowest reward seen so far; None when there is nothing to learn from yet."""
        if result.ok and result.score:
            return float(result.score[0])
        return self._worst

    def loss(self, arch: Arch, reward: float) -> tuple[torch.Tensor, float]:
        """The REINFORCE loss for one told arch, and the reward with its entropy bonus (for the baseline)."""
        _, logp, ent = self.controller(self._actions(arch))
        r = reward + self.entropy_weight * float(ent.detach())
        b = r if self.baseline is None else self.baseline
        scale = math.sqrt(self._m2 / (self._n - 1)) if self.normalize and self._n > 1 else 1.0
        adv = (r - b) / scale if scale > 0 else 0.0
        return -(logp.sum() * adv), r

    def _tell(self, arch: Arch, result: Result) -> None:
        raw = self.reward(result)
        if raw is None or not math.isfinite(raw):
            return
        self._worst = raw if self._worst is None else min(self._worst, raw)
        self._n += 1  # Welford update of the reward spread
        delta = raw - self._mean
        self._mean += delta / self._n
        self._m2 += delta * (raw - self._mean)
        from ..surrogate import one_thread

        with one_thread():
            loss, r = self.loss(arch, raw)
            self._opt.zero_grad()
            loss.backward()
            self._opt.step()
        d = self.baseline_decay
        self.baseline = r if self.baseline is None else d * self.baseline + (1 - d) * r
