"""``Normalized``: a network that takes raw inputs, its data's normalisation inside it (for export and shipping)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalized(nn.Module):
    """``net((x - mean[c]) / std[c])``: the per-channel normalisation the network was trained behind, as buffers, so
    that the module (and an ONNX graph exported from it) takes inputs as the data files hold them."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], sample_dims: int = 3) -> None:
        super().__init__()
        self.net = net
        shape = (1, len(mean)) + (1,) * (sample_dims - 1)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
