"""The graph hypernetwork: op DAG in, every weight of the network out (GHN-1, Zhang et al., 2019; GHN-2, Knyazev et
al., 2021).

Encoder: a node's initial state is the embedding of its op token plus a linear map of its shape encoding (GHN-2,
Sec. 3.2). Gated graph propagation (Li et al., 2016, as used by GHN-1, Eq. 3): in each round, nodes are updated in
topological order by ONE GRU cell shared by every node and both directions, with message = the sum of a
direction-specific MLP of the predecessors' states (forward pass), then of the successors' states (backward pass).

Decoder: an MLP maps each weighted node's final state to a low-rank factorisation of a weight at the maximum shape
``(max_out, max_in, max_kernel, max_kernel)``: ``W[o, i] = sum_r A[o, r] B[i, r] K[r]`` (``rank`` terms), plus a
bias of ``max_out``. The node's real weight is its slice: the first ``O`` rows of ``A``, the first ``I`` of ``B`` and
the centred ``kh x kw`` window of ``K`` (the centre, as Once-for-All slices elastic kernels, so a 3x3 conv sees the
middle of the 5x5 prediction). A dimension larger than the maximum is tiled, as GHN-2 tiles its predicted tensors;
a kernel larger than ``max_kernel`` is an error. A linear layer takes ``A @ B.T`` (the kernel's centre pixel).

GHN-2's parameter normalisation (Sec. 3.3) keeps predicted weights at the scale a trained network expects: here each
predicted tensor is divided by its RMS and multiplied by the He scale ``sqrt(2 / fan_in)`` (``sqrt(1 / fan_in)`` for
linear layers) and by a learned gain per kind, so the scale is right from the first step whatever the decoder emits.

Batch norm: the affine weight and bias of every BN layer are kept at identity (1, 0) and not predicted; GHN-2 notes
that BN in training mode (batch statistics) is what makes predicted weights usable, and the affine part then only
rescales what the next layer's predicted weight can rescale itself.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from ..errors import NasforgeError
from .encode import N_SHAPE, OPS, GraphCode, Weighted, to_tensors

KIND_GAIN = {"conv": 0, "linear": 1}


class GHN(nn.Module):
    """A graph hypernetwork. ``config()`` rebuilds an equal (untrained) one; ``state_dict`` holds what it learned."""

    def __init__(self, hidden: int = 32, max_out: int = 64, max_in: int = 64, max_kernel: int = 5, rank: int = 8,
                 rounds: int = 1, decoder_hidden: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.hidden, self.max_out, self.max_in, self.max_kernel = hidden, max_out, max_in, max_kernel
        self.rank, self.rounds, self.decoder_hidden = rank, rounds, decoder_hidden
        self.op_embed = nn.Embedding(len(OPS), hidden)
        self.shape_embed = nn.Linear(N_SHAPE, hidden)
        self.msg_fwd = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.msg_bwd = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.gru = nn.GRUCell(hidden, hidden)  # the one cell shared by all nodes and both passes
        self.sizes = (max_out * rank, max_in * rank, rank * max_kernel * max_kernel, max_out)
        self.decoder = nn.Sequential(nn.Linear(hidden + N_SHAPE, decoder_hidden), nn.ReLU(),
                                     nn.Linear(decoder_hidden, sum(self.sizes)))  # fmt: skip
        self.log_gain = nn.Parameter(torch.zeros(len(KIND_GAIN)))

    def config(self) -> dict[str, int]:
        return {"hidden": self.hidden, "max_out": self.max_out, "max_in": self.max_in, "max_kernel": self.max_kernel,
                "rank": self.rank, "rounds": self.rounds, "decoder_hidden": self.decoder_hidden}  # fmt: skip

    # --- encoder ------------------------------------------------------------------------------------------------
    def embed(self, code: GraphCode | dict[str, Any]) -> torch.Tensor:
        """Every node's final state, (nodes, hidden), in node-id order."""
        t = to_tensors(code, self.op_embed.weight.device) if isinstance(code, GraphCode) else code
        h = self.op_embed(t["ops"]) + self.shape_embed(t["shapes"])
        for _ in range(self.rounds):
            h = self._propagate(h, t["fwd"], self.msg_fwd)
            h = self._propagate(h, t["bwd"], self.msg_bwd)
        return h

    def _propagate(self, h: torch.Tensor, levels, msg: nn.Module) -> torch.Tensor:
        for nodes, src, dst in levels:
            m = torch.zeros(len(nodes), self.hidden, dtype=h.dtype, device=h.device).index_add(0, dst, msg(h[src]))
            h = h.index_copy(0, nodes, self.gru(m, h[nodes]))  # out of place: earlier states stay in the graph
        return h

    # --- decoder ------------------------------------------------------------------------------------------------
    def forward(self, code: GraphCode) -> dict[str, torch.Tensor]:
        """The predicted weights: ``{module_name.weight: tensor}`` (and ``.bias`` for every conv and linear node;
        the caller drops those its modules lack), BN weights and biases at identity."""
        t = to_tensors(code, self.op_embed.weight.device)
        h = self.embed(t)
        w_nodes = [w for w in code.weighted if w.kind != "bn"]
        out: dict[str, torch.Tensor] = {}
        if w_nodes:
            idx = torch.tensor([w.node for w in w_nodes], device=h.device)
            raw = self.decoder(torch.cat([h[idx], t["shapes"][idx]], 1))
            for w, r in zip(w_nodes, raw, strict=True):
                out[w.name + ".weight"], out[w.name + ".bias"] = self._decode(w, r)
        for w in code.weighted:
            if w.kind == "bn":
                out[w.name + ".weight"] = torch.ones(w.shape, device=h.device)
                out[w.name + ".bias"] = torch.zeros(w.shape, device=h.device)
        return out

    def _decode(self, w: Weighted, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r, k = self.rank, self.max_kernel
        a, b, kern, bias = torch.split(raw, self.sizes)
        o, i = w.shape[0], w.shape[1]
        a = _rows(a.view(self.max_out, r), o)
        b = _rows(b.view(self.max_in, r), i)
        kern = kern.view(r, k, k)
        if w.kind == "linear":
            weight = a @ (b * kern[:, k // 2, k // 2]).T
            fan_in, gain = i, 1.0
        else:
            kh, kw = w.shape[2], w.shape[3]
            if kh > k or kw > k:
                raise NasforgeError(f"node {w.name!r} has a {kh}x{kw} kernel, larger than this GHN's max_kernel {k}; "
                                    f"train a GHN with max_kernel >= {max(kh, kw)}")  # fmt: skip
            top, left = (k - kh) // 2, (k - kw) // 2
            weight = torch.einsum("or,ir,rhw->oihw", a, b, kern[:, top : top + kh, left : left + kw])
            fan_in, gain = i * kh * kw, 2.0
        # GHN-2's parameter normalisation: He scale, whatever the decoder's output scale (see the module docstring)
        rms = weight.pow(2).mean().add(1e-8).sqrt()
        scale = math.sqrt(gain / fan_in) * self.log_gain[KIND_GAIN[w.kind]].exp()
        return weight / rms * scale, _rows(bias.view(-1, 1), o).view(o) * 0.1


def _rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of ``x``, tiling ``x`` when it has fewer (GHN-2 tiles predictions that are too small)."""
    if n > len(x):
        x = x.repeat(math.ceil(n / len(x)), *([1] * (x.dim() - 1)))
    return x[:n]
