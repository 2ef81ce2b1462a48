"""Elastic (dynamic) layers: one largest weight, any smaller layer as a slice of it (Once-for-All's protocol).

An elastic layer holds the weight of the largest layer it can become and runs as a smaller one by slicing a *prefix*
of it: the first ``out`` output channels, the first ``in`` input channels (read from the input), and for a smaller
kernel the centre crop of the largest (Once-for-All adds a learned transform of the crop; that belongs to the
Once-for-All trainer). ``extract(...)`` returns a plain torch layer with the slice copied, so a sub-network can be
handed back as an ordinary module whose output equals the elastic layer's.

BatchNorm slices its affine weights and running statistics the same way; in training mode the running statistics of
the active prefix are updated in place (they are views of the full buffers), as Once-for-All's dynamic BN does.
Nothing here mutates a child from a parent's ``forward``: the active sizes are arguments of ``forward``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _crop(w: torch.Tensor, k: int) -> torch.Tensor:
    """The centre ``k``×``k`` crop of a (…, K, K) kernel."""
    big = w.shape[-1]
    if k == big:
        return w
    s = (big - k) // 2
    return w[..., s : s + k, s : s + k]


class ElasticConv2d(nn.Module):
    """A conv of up to ``max_in``→``max_out`` channels and kernel ``max_k``; ``depthwise`` ties groups = channels.

    ``padding=None`` means 'same' for the active kernel (k // 2); an int is used as given.
    """

    def __init__(
        self, max_in: int, max_out: int, max_k: int, stride: int = 1, *, depthwise: bool = False,
        bias: bool = False, padding: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.max_in, self.max_out, self.max_k = max_in, max_out, max_k
        self.stride, self.depthwise, self.padding = stride, depthwise, padding
        ref = nn.Conv2d(max_in, max_out, max_k, stride, groups=max_in if depthwise else 1, bias=bias)
        self.weight = ref.weight
        self.bias = ref.bias

    def _pad(self, k: int) -> int:
        return k // 2 if self.padding is None else self.padding

    def _slices(self, c_in: int, out: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        if self.depthwise:
            out = c_in
        w = _crop(self.weight[:out, : (1 if self.depthwise else c_in)], k)
        b = self.bias[:out] if self.bias is not None else None
        return w, b, (c_in if self.depthwise else 1)

    def forward(self, x: torch.Tensor, out: int | None = None, k: int | None = None) -> torch.Tensor:
        k = k or self.max_k
        w, b, groups = self._slices(x.shape[1], out or self.max_out, k)
        return F.conv2d(x, w, b, self.stride, self._pad(k), 1, groups)

    def extract(self, c_in: int, out: int, k: int) -> nn.Conv2d:
        w, b, groups = self._slices(c_in, out, k)
        m = nn.Conv2d(c_in, w.shape[0], k, self.stride, self._pad(k), groups=groups, bias=b is not None)
        with torch.no_grad():
            m.weight.copy_(w)
            if b is not None:
                m.bias.copy_(b)
        return m

    def extra_repr(self) -> str:
        dw = ", depthwise" if self.depthwise else ""
        return f"max {self.max_in}->{self.max_out}, k<={self.max_k}, stride={self.stride}{dw}"


class ElasticLinear(nn.Module):
    """A linear layer of up to ``max_in``→``max_out`` features; the input's last dimension sets ``in``."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True) -> None:
        super().__init__()
        self.max_in, self.max_out = max_in, max_out
        ref = nn.Linear(max_in, max_out, bias=bias)
        self.weight = ref.weight
        self.bias = ref.bias

    def forward(self, x: torch.Tensor, out: int | None = None) -> torch.Tensor:
        out = out or self.max_out
        b = self.bias[:out] if self.bias is not None else None
        return F.linear(x, self.weight[:out, : x.shape[-1]], b)

    def extract(self, f_in: int, out: int) -> nn.Linear:
        m = nn.Linear(f_in, out, bias=self.bias is not None)
        with torch.no_grad():
            m.weight.copy_(self.weight[:out, :f_in])
            if self.bias is not None:
                m.bias.copy_(self.bias[:out])
        return m

    def extra_repr(self) -> str:
        return f"max {self.max_in}->{self.max_out}"


class ElasticBatchNorm(nn.Module):
    """BatchNorm over the first ``C`` of ``max_c`` channels (``C`` read from the input), 1-d or 2-d."""

    def __init__(self, max_c: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.max_c, self.eps, self.momentum = max_c, eps, momentum
        self.weight = nn.Parameter(torch.ones(max_c))
        self.bias = nn.Parameter(torch.zeros(max_c))
        self.register_buffer("running_mean", torch.zeros(max_c))
        self.register_buffer("running_var", torch.ones(max_c))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(
            x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c], self.training,
            self.momentum, self.eps,
        )  # fmt: skip

    def extract(self, c: int, dims: int = 2) -> nn.Module:
        m = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(c, eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            m.weight.copy_(self.weight[:c])
            m.bias.copy_(self.bias[:c])
            m.running_mean.copy_(self.running_mean[:c])
            m.running_var.copy_(self.running_var[:c])
            m.num_batches_tracked.copy_(self.num_batches_tracked)
        return m

    def extra_repr(self) -> str:
        return f"max {self.max_c}"
