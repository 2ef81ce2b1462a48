"""FLOPs of every aten op a forward pass runs: ``FlopCounterMode``'s formulas, what it misses on a CPU, and what
cannot be counted at all. The tracer (``cost/trace.py``) attributes the ops to module calls.

``OpCounter`` is a ``TorchDispatchMode`` that hands each op to a sink as ``sink.op(func, args, kwargs, out, flops,
why)``: its FLOPs (2 per multiply-accumulate) from ``FlopCounterMode``'s table, applied as ``FlopCounterMode`` applies
it (an op that decomposes is counted by its parts), and ``why``, a reason when the op does compute that no formula
counts (else None):

- an aten op without a formula whose name says it multiplies (``_cdist_forward``, ``linalg_*``, ``_trilinear``
  behind ``nn.Bilinear``, the fused attention fast paths);
- an op of another namespace: a custom C++ or Triton op, whose kernel torch cannot see into;
- data made outside torch's operators inside a custom autograd Function (NumPy, a C++ extension called directly):
  torch turns grad off inside a Function's ``forward``, so a pass run with grad enabled tells such data (lifted into
  a tensor there) from a constant made in a model's own ``forward``. A 0-d constant counts as a constant anywhere.

``EXTRA_FORMULAS``, what ``FlopCounterMode`` counts as 0 on a CPU: ``nn.LSTM`` runs as ``mkldnn_rnn_layer`` and
``F.scaled_dot_product_attention`` as ``_scaled_dot_product_flash_attention_for_cpu``; the formulas give what
``FlopCounterMode`` counts on the decomposed path (mkldnn off, the math attention kernel). Matrix-vector products
(``mv``, ``addmv``, ``dot``, ``vdot``) it counts 0 on every path; here they count rows × columns, the textbook count.
``FlopCounterMode(custom_mapping=EXTRA_FORMULAS)`` counts as the tracer does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["EXTRA_FORMULAS", "OpCounter", "OpSink"]

aten = torch.ops.aten


# FLOP formulas for ops FlopCounterMode has none for (FLOPs = 2 × MACs; shapes in, as its table takes them)


def _rnn_flop(inp: Sequence[int], w_ih: Sequence[int], w_hh: Sequence[int], *args: Any, **kwargs: Any) -> int:
    # one layer, one direction: each step multiplies its input by W_ih (gates·H × I) and the state by W_hh (gates·H × H)
    return 2 * math.prod(inp[:-1]) * (math.prod(w_ih) + math.prod(w_hh))


def _sdpa_flop(q: Sequence[int], k: Sequence[int], v: Sequence[int], *args: Any, **kwargs: Any) -> int:
    # scores q·kᵀ and the weighted sum of v per (batch, head), as FlopCounterMode counts sdpa (k, v: maybe fewer heads)
    return 2 * math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def _mv_flop(mat: Sequence[int], vec: Sequence[int], *args: Any, **kwargs: Any) -> int:
    return 2 * math.prod(mat)


def _addmv_flop(bias: Sequence[int], mat: Sequence[int], vec: Sequence[int], *args: Any, **kwargs: Any) -> int:
    return 2 * math.prod(mat)


def _dot_flop(a: Sequence[int], b: Sequence[int], *args: Any, **kwargs: Any) -> int:
    return 2 * math.prod(a)


def _addmm_act_flop(bias: Sequence[int], a: Sequence[int], b: Sequence[int], *args: Any, **kwargs: Any) -> int:
    return 2 * a[0] * a[1] * b[1]


def _extra_formulas() -> dict[Any, Callable[..., int]]:
    named = {"mkldnn_rnn_layer": _rnn_flop, "_scaled_dot_product_flash_attention_for_cpu": _sdpa_flop,
             "mv": _mv_flop, "addmv": _addmv_flop, "dot": _dot_flop, "vdot": _dot_flop,
             "_addmm_activation": _addmm_act_flop}  # fmt: skip
    return {getattr(aten, n): f for n, f in named.items() if hasattr(aten, n)}


# pass as ``FlopCounterMode(custom_mapping=EXTRA_FORMULAS)`` to count as the tracer does
EXTRA_FORMULAS = _extra_formulas()
_FORMULAS = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS).flop_registry  # shapes in, as it applies them


def _overload(ns: str, name: str, overload: str = "default") -> Any:
    return getattr(getattr(getattr(torch.ops, ns), name, None), overload, None)


# queries FlopCounterMode leaves to the default handling (they do no compute)
_QUERIES = frozenset(_overload("aten", *q.split(".")) for q in (
    "sym_is_contiguous", "is_contiguous", "is_contiguous.memory_format", "is_strides_like_format",
    "is_non_overlapping_and_dense", "size", "sym_size", "stride", "sym_stride", "storage_offset", "sym_storage_offset",
    "numel", "sym_numel", "dim")) | {_overload("prim", "layout")}  # fmt: skip
_TORCH_NAMESPACES = frozenset({"aten", "prim", "prims", "profiler"})
# words of an aten op's name that say it multiplies (an op with one of them and no formula cannot be counted)
_MULTIPLIES = frozenset(
    "mm mv bmm addmm addmv addbmm baddbmm addr smm spmm hspmm sspaddmm dot vdot matmul einsum tensordot bilinear "
    "trilinear linear conv conv1d conv2d conv3d convolution attention rnn lstm gru transformer cdist pdist linalg "
    "cholesky svd solve inverse det slogdet logdet lu qr eig eigh fft ifft rfft irfft stft kron".split()
)


def _uncountable(func: Any) -> str | None:
    """Why an op without a FLOP formula cannot be counted, or None when it does no multiply-accumulates."""
    name = func._overloadpacket.__name__
    if func.namespace not in _TORCH_NAMESPACES:
        return f"{func.namespace}::{name} is not a torch operator"
    words = name.strip("_").split("_")
    if any(w in _MULTIPLIES for w in words):
        return f"aten::{name} has no FLOP formula"
    return None


class OpSink(Protocol):
    def op(self, func: Any, args: tuple, kwargs: dict, out: Any, flops: int, why: str | None) -> None: ...


class OpCounter(TorchDispatchMode):
    """Hands every aten op run under it, with its FLOPs and why it cannot be counted, to ``sink``."""

    def __init__(self, sink: OpSink) -> None:
        super().__init__()
        self.sink = sink

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _QUERIES:
            return NotImplemented
        packet = func._overloadpacket
        if packet not in EXTRA_FORMULAS and func is not torch.ops.prim.device.default:
            with self:  # as FlopCounterMode: an op that decomposes is counted by its parts
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        out = func(*args, **kwargs)
        formula = _FORMULAS.get(packet)
        if formula is not None:
            self.sink.op(func, args, kwargs, out, formula(*args, **kwargs, out_val=out), None)
        elif packet is aten.lift_fresh and not torch.is_grad_enabled() and args[0].dim() > 0:
            # grad is off inside a custom autograd Function's forward: data lifted there was computed outside torch
            self.sink.op(func, args, kwargs, out, 0, "a custom autograd Function made data outside torch's operators")
        else:
            self.sink.op(func, args, kwargs, out, 0, _uncountable(func))
        return out
