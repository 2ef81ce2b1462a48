"""Layer lists for any ``nn.Module``: run one forward pass with hooks on the leaf modules.

This is how costs work for a user's own model. Leaf modules that the tracer does not know, but that hold parameters,
are recorded as kind ``other`` with their parameter count and the MACs that ``FlopCounterMode`` measures for them.
Functional calls outside modules (``torch.flatten``, ``x + y``) carry no parameters or MACs and are not recorded.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import LayerSpec

_ACT = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LeakyReLU)
_POOL = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape[1:])


def _spec(name: str, m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LayerSpec:
    i, o = _shape(x), _shape(y)
    if isinstance(m, nn.Conv2d):
        return LayerSpec("conv", i, o, tuple(m.kernel_size), m.stride[0], m.groups, m.bias is not None, name)
    if isinstance(m, nn.Linear):
        return LayerSpec("linear", i, o, bias=m.bias is not None, name=name)
    if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) and m.affine:
        return LayerSpec("bn", i, o, name=name)
    if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
        return LayerSpec("ln", i, o, name=name)
    if isinstance(m, _ACT):
        return LayerSpec("act", i, o, name=name)
    if isinstance(m, _POOL):
        k = getattr(m, "kernel_size", 1)
        k = (k, k) if isinstance(k, int) else tuple(k)
        s = getattr(m, "stride", 1)
        return LayerSpec("pool", i, o, k, s if isinstance(s, int) else s[0], name=name)
    if isinstance(m, nn.Flatten | nn.Identity | nn.Dropout):
        return LayerSpec("reshape", i, o, name=name)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        m.forward(x)  # forward, not __call__: calling the module would re-enter this hook
    n = sum(p.numel() for p in m.parameters(recurse=False))
    return LayerSpec("other", i, o, name=name, extra=(("params", n), ("macs", fc.get_total_flops() // 2)))


def trace_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerSpec]:
    """The layer list of ``model`` for one input of ``input_shape`` (without batch), in execution order."""
    records: list[LayerSpec] = []
    hooks = []

    def hook(name: str):
        def fn(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
                records.append(_spec(name, m, args[0], out))

        return fn

    for name, m in model.named_modules():
        if not any(True for _ in m.children()):
            hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return records
