"""Layer lists for any ``nn.Module``, counted exactly or marked unknown: how costs work for a user's own model.

``trace_layers(model, task)`` runs the model once on the task's example input (batch 1, eval mode) under
``cost.opcount.OpCounter``, which sees every aten op with its FLOPs (``FlopCounterMode``'s formulas, applied as it
applies them, plus what it misses on a CPU), and with hooks on every submodule to know which module call is running.
So ``macs`` equals ``FlopCounterMode``'s total // 2 on the same input (with ``EXTRA_FORMULAS`` for an LSTM or
``F.scaled_dot_product_attention`` on a CPU, which it counts as 0).

What becomes a layer (a ``MeasuredSpec``: kind and shapes for memory and latency, counts as measured):

- a call of a module of a known kind (``_KINDS``): ``conv``, ``linear``, ``bn``, ``ln``, ``gn``, ``act``, ``pool``,
  ``reshape``, ``embedding``, ``attention`` (``nn.MultiheadAttention``), ``rnn`` (LSTM, GRU, RNN and their cells).
  Every op inside it is its own, even on its children's weights. A module called twice is two layers (``name``,
  ``name#2``).
- in any other module's own ``forward`` (a composite's, or a user's leaf module), each op that does MACs
  (``x @ self.w``, ``torch.einsum``, ``F.linear``, ``F.scaled_dot_product_attention``) or that cannot be counted: an
  ``other`` layer named ``module:op`` with the op's shapes. Element-wise and shape ops there (``x + y``, ``F.relu``,
  ``flatten``) carry no parameters or MACs and are not recorded, except that a user's leaf module that does no MACs
  at all is one ``other`` layer (a custom activation, a sum of two inputs), so that memory sees it.

Shapes are without the batch (of 1), wherever it stands (``batch_first=False`` modules take (L, 1, E)); the first
input that is not a weight is ``in_shape``, other inputs held while the layer runs are ``live`` (a cross-attention's
memory, an RNN's state).

Parameters are counted once each, at the first layer that owns or uses them (a module of a known kind owns its
children's too); parameters that no call used come last as one ``other`` layer. So ``params`` equals
``sum(p.numel() for p in model.parameters())``, which counts a shared parameter once, and a module called twice costs
twice its MACs but its parameters once.

Loud, never low: a layer that does compute the tracer cannot count (``cost/opcount.py`` says which) has unknown MACs,
``macs`` reads NaN and so do the sums ``costs`` makes of it (``macs``, ``energy_uj``), and an ``UncountedWarning``
names the module. The fused fast paths of ``nn.MultiheadAttention`` and the Transformer layers (one opaque op each)
are switched off while tracing, and the pass runs with grad enabled (see ``opcount``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import NasforgeError
from ..task import Task
from .layers import LayerSpec, MeasuredSpec
from .opcount import EXTRA_FORMULAS, OpCounter

__all__ = ["EXTRA_FORMULAS", "TraceError", "UncountedWarning", "trace_layers"]


class TraceError(NasforgeError):
    """A model that cannot be traced: its forward fails on the example input, or the input is not one."""


class UncountedWarning(UserWarning):
    """A module does compute that cannot be counted: its MACs are reported as unknown (NaN)."""


# --- what a module call is


_ACTS = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hswish", nn.Hardsigmoid: "hsigmoid", nn.GELU: "gelu",
         nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu",
         nn.Mish: "mish", nn.PReLU: "prelu", nn.Hardtanh: "hardtanh", nn.Softmax: "softmax",
         nn.LogSoftmax: "log_softmax"}  # fmt: skip
_POOLS = {nn.MaxPool2d: "max", nn.AdaptiveMaxPool2d: "max", nn.AvgPool2d: "avg", nn.AdaptiveAvgPool2d: "avg"}
_VIEWS = (nn.Flatten, nn.Unflatten, nn.Identity, nn.modules.dropout._DropoutNd)


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def _conv(m: nn.Conv2d, i: tuple, o: tuple) -> tuple[str, dict[str, Any]] | None:
    if len(i) != 3 or len(o) != 3:
        return None
    bias = m.bias is not None
    return "conv", {"kernel": tuple(m.kernel_size), "stride": m.stride[0], "groups": m.groups, "bias": bias}


def _pool(m: nn.Module, i: tuple, o: tuple) -> tuple[str, dict[str, Any]] | None:
    if len(i) != 3 or len(o) != 3:
        return None
    how = next(v for t, v in _POOLS.items() if isinstance(m, t))
    if hasattr(m, "output_size"):  # adaptive: a window of in/out (the whole map for a global pool, as blueprints write)
        k, s = (i[1] // o[1], i[2] // o[2]), i[1] // o[1]
    else:
        k, s = _pair(m.kernel_size), _pair(m.stride)[0]
    return "pool", {"kernel": k, "stride": s, "extra": (("pool", how),)}


def _rnn(m: nn.Module, i: tuple, o: tuple) -> tuple[str, dict[str, Any]]:
    if isinstance(m, nn.RNNBase):
        facts = (("cell", m.mode.lower()), ("hidden", m.hidden_size), ("layers", m.num_layers),
                 ("bidirectional", m.bidirectional))  # fmt: skip
    else:
        facts = (("cell", type(m).__name__.lower()), ("hidden", m.hidden_size), ("layers", 1))
    return "rnn", {"extra": facts}


# module type -> its LayerSpec kind and fields (kernel, stride, groups, bias, extra); None: nothing better than "other"
_KINDS: tuple[tuple[Any, Callable[[Any, tuple, tuple], tuple[str, dict[str, Any]] | None]], ...] = (
    (nn.Conv2d, _conv),
    (nn.Linear, lambda m, i, o: ("linear", {"bias": m.bias is not None})),
    (nn.modules.batchnorm._BatchNorm, lambda m, i, o: ("bn", {})),
    (nn.RMSNorm, lambda m, i, o: ("ln", {"extra": (("norm", "rms"),)})),
    (nn.LayerNorm, lambda m, i, o: ("ln", {})),
    (nn.GroupNorm, lambda m, i, o: ("gn", {"groups": m.num_groups})),
    (nn.modules.instancenorm._InstanceNorm, lambda m, i, o: ("gn", {"groups": m.num_features})),
    (tuple(_POOLS), _pool),
    (_VIEWS, lambda m, i, o: ("reshape", {})),
    ((nn.Embedding, nn.EmbeddingBag), lambda m, i, o: ("embedding", {"extra": (("vocab", m.num_embeddings),)})),
    (nn.MultiheadAttention, lambda m, i, o: ("attention", {"extra": (("heads", m.num_heads),)})),
    ((nn.RNNBase, nn.RNNCellBase), _rnn),
)


def _is_atomic(m: nn.Module) -> bool:
    """A module of a known kind: one layer, whatever it calls inside."""
    return type(m) in _ACTS or any(isinstance(m, types) for types, _ in _KINDS)


def _describe(m: nn.Module, i: tuple[int, ...], o: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """The LayerSpec kind of module ``m`` and its fields."""
    if type(m) in _ACTS:  # the exact type: ReLU6 is a Hardtanh, and a user's subclass may do anything
        return "act", {"extra": (("act", _ACTS[type(m)]),)}
    for types, kind in _KINDS:
        if isinstance(m, types):
            return kind(m, i, o) or ("other", {})
    return "other", {}


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    """A traced tensor's shape without its batch dimension: the first of size 1 (the batch is 1, and it need not lead:
    ``batch_first=False`` modules take (L, 1, E))."""
    s = tuple(int(d) for d in t.shape)
    return s[: s.index(1)] + s[s.index(1) + 1 :] if 1 in s else s


def _tensors(*trees: Any) -> Iterator[torch.Tensor]:
    """The tensors in nested tuples, lists and dicts, in order (pytree's flatten costs three times as much)."""
    for x in trees:
        if isinstance(x, torch.Tensor):
            yield x
        elif isinstance(x, tuple | list):
            yield from _tensors(*x)
        elif isinstance(x, dict):
            yield from _tensors(*x.values())


# --- the tracer


@dataclass(eq=False)
class _Call:
    """One module call on the stack. ``owner`` is the atomic call that its ops belong to (itself when it is atomic,
    None for a composite's own ops)."""

    name: str
    module: nn.Module
    owner: _Call | None = None
    params: int = 0  # parameters first counted in this call
    flops: int = 0
    why: str | None = None  # why its MACs cannot be counted
    pending: int = 0  # not atomic: parameters first used by an op without MACs, given to its next recorded op
    leaf: bool = False  # a module without children, of a type the tracer does not know
    recorded: int = 0  # not atomic: layers recorded for its own ops


class _Tracer:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {id(m): n for n, m in model.named_modules()}
        self.params = {id(p): p for p in model.parameters()}  # de-duplicated, as model.parameters() is
        # weights and what is made of weights alone (a transposed weight, a buffer's slice): not activations
        self.weights = set(self.params) | {id(b) for b in model.buffers()}
        self.keep: list[torch.Tensor] = []  # holds weight-made tensors while their ids stand for them
        self.counted: set[int] = set()
        self.calls: dict[int, int] = {}
        self.stack: list[_Call] = [_Call("", model)]  # ops outside every module call (a user's hook) are the model's
        self.layers: list[LayerSpec] = []
        self.uncounted: list[tuple[_Call, str]] = []  # (call, why) of layers whose MACs are unknown

    def claim(self, tensors: Iterable[torch.Tensor]) -> int:
        """Count the parameters among ``tensors`` that no layer has counted yet; their number of elements."""
        n = 0
        for t in tensors:
            k = id(t)
            if k in self.params and k not in self.counted:
                self.counted.add(k)
                n += t.numel()
        return n

    def enter(self, m: nn.Module, args: tuple, kwargs: dict) -> None:
        top = self.stack[-1]
        if top.owner is not None:  # inside an atomic call: everything here is that call's
            self.stack.append(_Call(top.name, m, top.owner))
            return
        k = self.calls[id(m)] = self.calls.get(id(m), 0) + 1
        name = self.names.get(id(m), type(m).__name__)
        call = _Call(name if k == 1 else f"{name}#{k}", m)
        if _is_atomic(m):
            call.owner = call
            call.params = self.claim(m.parameters())  # its children's too (a MultiheadAttention's out_proj)
        else:
            call.leaf = next(m.children(), None) is None
        self.stack.append(call)

    def exit(self, m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        call = self.stack.pop()
        if call.owner is call:
            self.record(call, call.name, list(_tensors(args, kwargs)), out, call.params, call.flops, call.why)
        elif call.owner is None:
            n = call.pending + self.claim(m.parameters(recurse=False))  # its own parameters that no op used
            if call.leaf and not call.recorded:  # a leaf without MACs is still a layer (memory sees it)
                self.record(call, call.name, list(_tensors(args, kwargs)), out, n, 0, None)
            elif n:
                self.layers.append(MeasuredSpec("other", (), (), name=call.name or type(m).__name__, n_params=n))

    def op(self, func: Any, args: tuple, kwargs: dict, out: Any, flops: int, why: str | None) -> None:
        top = self.stack[-1]
        ts = list(_tensors(args, kwargs))
        new = self.claim(ts)
        if ts and all(id(t) in self.weights for t in ts):
            for t in _tensors(out):
                self.weights.add(id(t))
                self.keep.append(t)
        call = top.owner
        if call is not None:
            call.params += new
            call.flops += flops
            call.why = call.why or why
            return
        if not flops and why is None:
            top.pending += new
            return
        label = top.name or type(top.module).__name__
        self.record(top, f"{label}:{func._overloadpacket.__name__}", ts, out, new + top.pending, flops, why)
        top.pending = 0
        top.recorded += 1

    def record(self, call: _Call, name: str, ins: list, out: Any, params: int, flops: int, why: str | None) -> None:
        ins = [t for t in ins if id(t) not in self.weights]
        i = _shape(ins[0]) if ins else ()
        outs = list(_tensors(out))
        o = _shape(outs[0]) if outs else ()
        seen = {id(ins[0])} if ins else set()
        live = 0  # other inputs held while this layer runs (a cross-attention's memory, an RNN's state)
        for t in ins[1:]:
            if id(t) not in seen:
                seen.add(id(t))
                live += t.numel()
        kind, fields = _describe(call.module, i, o) if call.owner is call else ("other", {})
        macs = None if why else flops // 2
        self.layers.append(MeasuredSpec(kind, i, o, name=name, live=live, n_params=params, n_macs=macs, **fields))
        if why:
            self.uncounted.append((call, why))

    def finish(self) -> list[LayerSpec]:
        root = self.stack[0]
        n = root.pending + self.claim(iter(self.params.values()))
        if n:  # parameters that no call used still count, as numel() counts them
            self.layers.append(MeasuredSpec("other", (), (), name="(unused parameters)", n_params=n))
        return self.layers


def _inputs(x: Task | Sequence[int] | torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    if isinstance(x, Task):
        return (x.example(1),)
    if isinstance(x, torch.Tensor):
        return (x,)
    if isinstance(x, Sequence) and x and all(isinstance(t, torch.Tensor) for t in x):
        return tuple(x)
    try:
        shape = tuple(int(s) for s in x)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TraceError(f"trace a model with a Task, an input shape or example tensors, not {x!r}") from None
    return (Task(shape, 1).example(1),)


def trace_layers(model: nn.Module, task_or_shape: Task | Sequence[int] | torch.Tensor | Sequence[torch.Tensor]
                 ) -> list[LayerSpec]:  # fmt: skip
    """The layer list of ``model`` for one input (batch 1), in execution order (see the module docstring).

    ``task_or_shape``: a ``Task`` (its dtype and vocabulary give token inputs), an input shape without the batch
    (float inputs), or example tensors of batch 1 to call the model with. Raises ``TraceError`` when the forward
    fails; warns ``UncountedWarning`` for each module whose MACs cannot be counted (its ``macs`` are NaN).
    """
    inputs = _inputs(task_or_shape)
    tracer = _Tracer(model)
    hooks = []
    for m in model.modules():
        hooks.append(m.register_forward_pre_hook(tracer.enter, with_kwargs=True))
        hooks.append(m.register_forward_hook(tracer.exit, with_kwargs=True))
    was_training, fast = model.training, torch.backends.mha.get_fastpath_enabled()
    try:
        model.eval()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused fast paths are one opaque op each
        with torch.enable_grad(), OpCounter(tracer):
            model(*inputs)
    except NasforgeError:
        raise
    except Exception as e:
        raise TraceError(_failure(model, inputs, e)) from e
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
        torch.backends.mha.set_fastpath_enabled(fast)
    once = {(id(call.module), why): (call, why) for call, why in reversed(tracer.uncounted)}  # however often it ran
    for call, why in reversed(once.values()):
        cls = type(call.module).__name__
        what = f"module {call.name!r} ({cls})" if call.name else f"the model ({cls})"
        warnings.warn(f"cannot count the MACs of {what}: {why}; its macs (and energy) are unknown (NaN), so a "
                      "constraint on them cannot be checked", UncountedWarning, stacklevel=2)  # fmt: skip
    return tracer.finish()


def _failure(model: nn.Module, inputs: tuple[torch.Tensor, ...], e: Exception) -> str:
    shapes = ", ".join(f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}" for x in inputs)
    msg = (str(e).strip().splitlines() or [""])[0]
    hint = ""
    if any(x.is_floating_point() for x in inputs) and any(isinstance(m, nn.Embedding | nn.EmbeddingBag)
                                                          for m in model.modules()):  # fmt: skip
        hint = "; a model of token ids is traced with a Task of dtype 'int64' and its vocab_size"
    return f"cannot trace {type(model).__name__} on an input of {shapes}: {type(e).__name__}: {msg}{hint}"
