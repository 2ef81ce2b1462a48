"""Net2Net's function-preserving operations on plain tensors and modules (Chen et al., 2016; REFERENCES.md).

Net2WiderNet widens a layer from n to q units with a mapping ``g``: ``g(j) = j`` for ``j < n`` and a random unit of
``[0, n)`` above (eq. 6 of the paper). Unit ``j`` of the wider layer copies the incoming weights, bias and BatchNorm
parameters and statistics of unit ``g(j)``; each outgoing weight of the next layer is divided by the number of copies
of its source unit, so the next layer's output is unchanged. Optional noise on the copies' incoming weights breaks
the symmetry between a unit and its copies (section 2.3), at the price of a small, bounded change of the output.

Net2DeeperNet inserts a layer that computes the identity: a conv with a centred 1 per own channel, or an identity
matrix, after a ReLU (where the following ReLU is the identity too), and a BatchNorm set to the identity
(γ = √(var + ε), β = mean).

``blueprint`` morphs (``nasforge.morph``) are built from the tensor helpers here; ``net2wider`` and ``net2deeper`` are
the paper's operations on a pair of modules, for use outside a family.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import NasforgeError


class MorphError(NasforgeError):
    """A child network cannot be reached from a parent by function-preserving moves."""


def wider_map(n: int, q: int, rng: np.random.Generator) -> np.ndarray:
    """Net2WiderNet's mapping g: ``g(j) = j`` below n, a uniform random unit of ``[0, n)`` from n to q."""
    if q < n:
        raise MorphError(f"cannot widen {n} units to {q}: Net2WiderNet only grows a layer")
    return np.concatenate([np.arange(n), rng.integers(0, n, size=q - n)]).astype(np.int64)


def copies(g: np.ndarray, n: int) -> np.ndarray:
    """How many units of the wider layer copy each of the ``n`` original units."""
    return np.bincount(g, minlength=n)


def pad_kernel(w: torch.Tensor, k: int) -> torch.Tensor:
    """A k×k kernel holding ``w`` at its centre and zeros around it: with 'same' padding the conv's output is
    unchanged (every extra tap multiplies a zero)."""
    kh = w.shape[-1]
    if k == kh:
        return w
    if k < kh or (k - kh) % 2:
        raise MorphError(f"cannot grow a {kh}×{kh} kernel to {k}×{k}: only a larger kernel of the same parity keeps "
                         "the function")  # fmt: skip
    p = (k - kh) // 2
    return torch.nn.functional.pad(w, (p, p, p, p))


def widen_in(w: torch.Tensor, g_in: np.ndarray, n_in: int) -> torch.Tensor:
    """Outgoing side: input unit i of the wider tensor is a copy of unit g_in(i), so its weights are the original's
    divided by the number of copies (dimension 1 of a conv or linear weight)."""
    idx = torch.as_tensor(g_in)
    scale = torch.as_tensor(1.0 / copies(g_in, n_in)[g_in], dtype=w.dtype)
    shape = [1, len(g_in)] + [1] * (w.dim() - 2)
    return w.index_select(1, idx) * scale.view(shape)


def widen_out(t: torch.Tensor, g_out: np.ndarray, noise: float = 0.0, rng: np.random.Generator | None = None,
              n: int | None = None) -> torch.Tensor:  # fmt: skip
    """Incoming side: unit j copies unit g_out(j) (dimension 0: weights, bias, BN parameters and statistics).
    ``noise`` adds Gaussian noise of that size relative to the tensor's std to the copies (units n and above)."""
    out = t.index_select(0, torch.as_tensor(g_out)).clone()
    if noise > 0 and n is not None and len(g_out) > n and out.is_floating_point():
        assert rng is not None
        std = float(t.std()) if t.numel() > 1 else 1.0
        extra = rng.normal(0.0, noise * std, size=tuple(out[n:].shape))
        out[n:] += torch.as_tensor(extra, dtype=out.dtype)
    return out


def identity_bn_(bn: nn.modules.batchnorm._BatchNorm) -> nn.modules.batchnorm._BatchNorm:
    """Set a BatchNorm to the identity in eval mode: γ = √(var + ε), β = mean (Net2DeeperNet with BN)."""
    with torch.no_grad():
        bn.weight.copy_(torch.sqrt(bn.running_var + bn.eps))
        bn.bias.copy_(bn.running_mean)
    return bn


def identity_conv(channels: int, k: int = 3) -> nn.Conv2d:
    """A k×k 'same' conv that returns its input: a centred 1 from each channel to itself."""
    conv = nn.Conv2d(channels, channels, k, padding=k // 2, bias=True)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[range(channels), range(channels), k // 2, k // 2] = 1.0
        conv.bias.zero_()
    return conv


def identity_linear(units: int) -> nn.Linear:
    lin = nn.Linear(units, units)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(units))
        lin.bias.zero_()
    return lin


def net2deeper(layer: nn.Conv2d | nn.Linear, *, bn: bool = True, k: int = 3) -> nn.Sequential:
    """Net2DeeperNet: the block to insert after ``layer``'s ReLU: an identity conv (or linear), an identity BatchNorm
    and a ReLU. On post-ReLU (non-negative) inputs it returns its input exactly."""
    if isinstance(layer, nn.Conv2d):
        c = layer.out_channels
        mods: list[nn.Module] = [identity_conv(c, k)] + ([identity_bn_(nn.BatchNorm2d(c))] if bn else [])
    elif isinstance(layer, nn.Linear):
        c = layer.out_features
        mods = [identity_linear(c)] + ([identity_bn_(nn.BatchNorm1d(c))] if bn else [])
    else:
        raise MorphError(f"Net2DeeperNet deepens after a conv or linear layer, got {type(layer).__name__}")
    return nn.Sequential(*mods, nn.ReLU())


def net2wider(layer: nn.Conv2d | nn.Linear, nxt: nn.Conv2d | nn.Linear, q: int, *,
              bn: nn.modules.batchnorm._BatchNorm | None = None, noise: float = 0.0,
              rng: np.random.Generator | None = None):  # fmt: skip
    """Net2WiderNet on a pair of layers (``layer`` then, after element-wise ops and ``bn``, ``nxt``): ``layer`` gets
    q output units, ``nxt`` q input units. Returns the new (layer, nxt, bn)."""
    rng = rng or np.random.default_rng(0)
    n = layer.weight.shape[0]
    g = wider_map(n, q, rng)
    new = _like(layer, out=q)
    new_next = _like(nxt, inp=q)
    with torch.no_grad():
        new.weight.copy_(widen_out(layer.weight, g, noise, rng, n))
        if layer.bias is not None:
            new.bias.copy_(widen_out(layer.bias, g))
        new_next.weight.copy_(widen_in(nxt.weight, g, n))
        if nxt.bias is not None:
            new_next.bias.copy_(nxt.bias)
    new_bn = None
    if bn is not None:
        new_bn = type(bn)(q, eps=bn.eps, momentum=bn.momentum)
        sd = {k: (widen_out(v, g) if v.dim() else v) for k, v in bn.state_dict().items()}
        new_bn.load_state_dict(sd)
    return new, new_next, new_bn


def _like(m: nn.Module, out: int | None = None, inp: int | None = None) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        if m.groups != 1:
            raise MorphError("net2wider widens plain convs; a depthwise conv follows its input (see nasforge.morph)")
        return nn.Conv2d(inp or m.in_channels, out or m.out_channels, m.kernel_size, m.stride, m.padding,
                         bias=m.bias is not None)  # fmt: skip
    if isinstance(m, nn.Linear):
        return nn.Linear(inp or m.in_features, out or m.out_features, bias=m.bias is not None)
    raise MorphError(f"Net2WiderNet widens conv and linear layers, got {type(m).__name__}")
