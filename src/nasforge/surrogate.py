"""A general surrogate: an ensemble regressor from feature vectors (``Space.encode``) to a score, with mean and spread.

It knows nothing of any benchmark or family: model-based search fits it to (encode(arch), score) pairs, and
Once-for-All uses it as its accuracy predictor. Members are small MLPs trained together as one batched network
(``members`` × weights), each from its own initialisation and, with ``bootstrap``, its own resample of the data,
so their disagreement is the epistemic spread (Lakshminarayanan et al., 2017; BANANAS, White et al., 2021).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .errors import NasforgeError


@contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny tensors on one intra-op thread, restoring the caller's setting afterwards.

    A parallel region costs more than it saves on tensors this small, and on a busy machine waking the other threads
    takes milliseconds (measured: 25 ms per 64-unit ``lstm_cell`` call with 2 threads on a loaded 2-core box, 0.2 ms
    with one). One thread also makes results independent of ``torch.set_num_threads``.
    """
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


class Surrogate:
    """Ensemble of ``members`` MLPs (``layers`` hidden layers of ``hidden`` ReLU units), full-batch Adam.

    Contract: ``fit(X, y)`` with ``X`` of shape (n, d) and finite ``y`` of shape (n,), n ≥ 2; then ``predict(X)``
    returns the ensemble mean and standard deviation (in the units of ``y``) for each row. Deterministic for a given
    ``seed`` and data. ``fit(..., warm=True)`` continues from the current weights for ``warm_steps`` steps (cheap refits
    when a few points were added); the target scaling is recomputed each time. ``prior`` > 0 adds to each member a
    fixed random network scaled to that spread (in target standard deviations) on the first training inputs
    (randomized prior functions), which keeps members apart where there is no data.

    The defaults are what won as the model-based strategy's surrogate on NAS-Bench-201; Once-for-All's accuracy
    predictor (an MLP 3×400 on one-hot codes) is ``Surrogate(members=1, hidden=400, layers=3)``.
    """

    def __init__(self, *, members: int = 5, hidden: int = 64, layers: int = 1, steps: int = 200,
                 warm_steps: int = 30, lr: float = 1e-2, weight_decay: float = 1e-4, bootstrap: bool = False,
                 prior: float = 0.0, seed: int | None = 0) -> None:
        self.members = members
        self.hidden = hidden
        self.layers = layers
        self.steps = steps
        self.warm_steps = warm_steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.bootstrap = bootstrap
        self.prior = prior
        self.seed = seed
        self._params: list[torch.Tensor] | None = None
        self._prior: list[torch.Tensor] = []
        self._prior_scale: torch.Tensor | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._gen: torch.Generator | None = None
        self._scale = (0.0, 1.0)
        self.n_fit = 0

    def config(self) -> dict[str, Any]:
        keys = ("members", "hidden", "layers", "steps", "warm_steps", "lr", "weight_decay", "bootstrap", "prior",
                "seed")
        return {k: getattr(self, k) for k in keys}

    # --- model --------------------------------------------------------------------------------------------------
    def _draw(self, d: int) -> list[torch.Tensor]:
        sizes = [d] + [self.hidden] * self.layers + [1]
        params = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1 / math.sqrt(a)  # PyTorch's default Linear initialisation, one draw per member
            params.append((torch.rand(self.members, a, b, generator=self._gen) * 2 - 1) * bound)
            params.append((torch.rand(self.members, 1, b, generator=self._gen) * 2 - 1) * bound)
        return params

    def _init(self, X: torch.Tensor) -> None:
        self._gen = torch.Generator().manual_seed(int(np.random.default_rng(self.seed).integers(2**62)))
        self._params = [p.requires_grad_() for p in self._draw(X.shape[1])]
        self._opt = torch.optim.Adam(self._params, lr=self.lr, weight_decay=self.weight_decay, foreach=True)
        self._prior, self._prior_scale = [], None
        if self.prior > 0:  # a fixed random network per member, scaled to spread ``prior`` (in target sd) on X
            self._prior = self._draw(X.shape[1])
            with torch.no_grad():
                spread = self._net(X, self._prior).std(dim=1)
            self._prior_scale = (self.prior / spread.clamp_min(1e-6))[:, None]

    @staticmethod
    def _net(X: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        """(n, d) -> (members, n). The first layer of all members is one (n, d) @ (d, members·hidden) product."""
        W, b = params[0], params[1]
        m, d, h = W.shape
        z = (X @ W.permute(1, 0, 2).reshape(d, m * h)).reshape(len(X), m, h).transpose(0, 1)
        z = torch.relu(z + b)
        for i in range(2, len(params) - 2, 2):
            z = torch.relu(torch.bmm(z, params[i]) + params[i + 1])
        return (torch.bmm(z, params[-2]) + params[-1])[..., 0]

    def _forward(self, X: torch.Tensor) -> torch.Tensor:
        out = self._net(X, self._params)
        if self._prior_scale is not None:  # randomized prior functions (Osband et al., NeurIPS 2018)
            out = out + self._prior_scale * self._net(X, self._prior)
        return out

    # --- public -------------------------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, *, warm: bool = False) -> Surrogate:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or len(X) != len(y) or len(y) < 2:
            raise NasforgeError(f"surrogate: need n ≥ 2 rows of features and n targets, got {X.shape} and {y.shape}")
        if not np.isfinite(y).all():
            raise NasforgeError("surrogate: targets must be finite; leave out failed trials")
        with one_thread():
            fresh = self._params is None or not warm or self._params[0].shape[1] != X.shape[1]
            Xt = torch.from_numpy(X)
            if fresh:
                self._init(Xt)
            mu, sd = float(y.mean()), float(y.std())
            self._scale = (mu, sd if sd > 0 else 1.0)
            yt = torch.from_numpy(((y - mu) / self._scale[1]).astype(np.float32))
            if self.bootstrap:  # one resample per member, as weights (a row drawn k times counts k times)
                idx = torch.randint(len(y), (self.members, len(y)), generator=self._gen)
                w = torch.zeros(self.members, len(y)).scatter_add_(1, idx, torch.ones(self.members, len(y)))
            else:
                w = torch.ones(self.members, len(y))
            w = w / w.sum(1, keepdim=True)
            for _ in range(self.steps if fresh else self.warm_steps):
                self._opt.zero_grad()
                loss = (w * (self._forward(Xt) - yt) ** 2).sum()
                loss.backward()
                self._opt.step()
        self.n_fit = len(y)
        return self

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Each member's prediction, shape (members, n), in the units of ``y``."""
        if self._params is None:
            raise NasforgeError("surrogate: call fit() before predict()")
        X = np.asarray(X, dtype=np.float32)
        with one_thread(), torch.no_grad():
            out = self._forward(torch.from_numpy(X)).numpy().astype(np.float64)
        return out * self._scale[1] + self._scale[0]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and standard deviation for each row of ``X``."""
        P = self.predict_members(X)
        return P.mean(0), P.std(0)
