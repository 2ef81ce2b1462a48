"""The REINFORCE controller (Zoph & Le, ICLR 2017; ENAS, Pham et al., ICML 2018): an LSTM that proposes archs.

Kept apart from ``strategies/reinforce.py`` so that registering (and listing) strategies does not import torch.
"""

from __future__ import annotations

import torch
from torch import nn


class Controller(nn.Module):
    """An LSTM that emits one decision per dimension of a space, its previous choice embedded and fed back.

    Step t reads the embedding of choice t-1 (a learned start vector at t=0), runs one ``LSTMCell`` step and a head
    for dimension t; logits are shaped as ``c·tanh(l/T)`` (ENAS) so that no choice becomes certain too early.
    """

    def __init__(self, sizes: list[int], hidden: int = 64, tanh_c: float = 2.5, temperature: float = 5.0) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.tanh_c = tanh_c
        self.temperature = temperature
        self.offsets = [0]
        for k in self.sizes[:-1]:
            self.offsets.append(self.offsets[-1] + k)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.Embedding(sum(self.sizes), hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, k) for k in self.sizes)

    def init_(self, gen: torch.Generator, scale: float = 0.1) -> Controller:
        """Uniform(-scale, scale) for every parameter (ENAS), from ``gen``, never the global RNG."""
        with torch.no_grad():
            for p in self.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * scale)
        return self

    def logits(self, t: int, h: torch.Tensor) -> torch.Tensor:
        out = self.heads[t](h)
        return self.tanh_c * torch.tanh(out / self.temperature) if self.tanh_c else out / self.temperature

    def forward(
        self, actions: torch.Tensor | None = None, batch: int = 1, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``batch`` decision sequences (``actions`` None) or score the given ``actions`` (batch × dims).

        Returns the actions, the summed log-probability of each sequence, and the summed per-step entropy.
        """
        if actions is not None:
            batch = actions.shape[0]
        x = self.start.expand(batch, -1)
        state = None
        taken, logp, ent = [], torch.zeros(batch), torch.zeros(batch)
        for t in range(len(self.sizes)):
            state = self.cell(x, state)
            log_probs = torch.log_softmax(self.logits(t, state[0]), dim=-1)
            if actions is None:
                a = torch.multinomial(log_probs.detach().exp(), 1, generator=gen).squeeze(1)
            else:
                a = actions[:, t]
            taken.append(a)
            logp = logp + log_probs.gather(1, a[:, None]).squeeze(1)
            ent = ent - (log_probs.exp() * log_probs).sum(-1)
            x = self.embed(a + self.offsets[t])
        return torch.stack(taken, 1), logp, ent
