"""The practice's LeNet family: two conv layers and three fully connected layers (729 archs).

conv(c1, k1) - ReLU - maxpool 2 - conv(c2, k2) - ReLU - maxpool 2 - fc1 - ReLU - fc2 - ReLU - fc(classes),
no padding, biases everywhere, as the classic PyTorch MNIST LeNet. Under the 0.05 MiB fp32 limit 17 archs fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..cost.layers import LayerSpec, conv_out
from ..errors import SpaceError
from ..space import Space
from .base import MNIST_TASK, Family, Task, register_family

PRACTICE_DIMS: dict[str, Sequence[int]] = {
    "conv1_ch": (3, 6, 9),
    "conv1_k": (3, 5, 7),
    "conv2_ch": (12, 16, 20),
    "conv2_k": (3, 5, 7),
    "fc1": (64, 128, 256),
    "fc2": (32, 84, 120),
}


@register_family("lenet")
class LeNet(Family):
    default_task = MNIST_TASK

    def __init__(self, dims: Mapping[str, Sequence[int]] | None = None) -> None:
        self.dims = dict(PRACTICE_DIMS if dims is None else dims)
        self._space: Space | None = None

    def config(self) -> dict[str, Any]:
        return {} if self.dims == dict(PRACTICE_DIMS) else {"dims": {k: list(v) for k, v in self.dims.items()}}

    @property
    def space(self) -> Space:
        if self._space is None:
            self._space = Space(self.dims)
            if set(self._space.names) != set(PRACTICE_DIMS):
                raise SpaceError(f"lenet dims must be exactly {sorted(PRACTICE_DIMS)}")
        return self._space

    def describe(self, arch: Mapping[str, Any]) -> str:
        a = arch
        return (
            f"c{a['conv1_ch']}k{a['conv1_k']}-c{a['conv2_ch']}k{a['conv2_k']}-fc{a['fc1']}-{a['fc2']}"
        )

    def _shapes(self, arch: Mapping[str, Any], task: Task) -> tuple[int, int, int]:
        c, h, w = task.input_shape
        h1, w1 = conv_out(h, arch["conv1_k"]) // 2, conv_out(w, arch["conv1_k"]) // 2
        h2, w2 = conv_out(h1, arch["conv2_k"]) // 2, conv_out(w1, arch["conv2_k"]) // 2
        if min(h1, w1, h2, w2) < 1:
            raise SpaceError(f"lenet {self.describe(arch)}: input {task.input_shape} is too small for its kernels")
        return h2, w2, arch["conv2_ch"] * h2 * w2

    def layers(self, arch: Mapping[str, Any], task: Task) -> list[LayerSpec]:
        a = arch
        c, h, w = task.input_shape
        self._shapes(a, task)
        c1, k1, c2, k2 = a["conv1_ch"], a["conv1_k"], a["conv2_ch"], a["conv2_k"]
        out: list[LayerSpec] = []
        h1, w1 = conv_out(h, k1), conv_out(w, k1)
        out.append(LayerSpec("conv", (c, h, w), (c1, h1, w1), (k1, k1), bias=True, name="conv1"))
        out.append(LayerSpec("act", (c1, h1, w1), (c1, h1, w1), name="relu1"))
        p1 = (c1, h1 // 2, w1 // 2)
        out.append(LayerSpec("pool", (c1, h1, w1), p1, (2, 2), 2, name="pool1"))
        h2, w2 = conv_out(p1[1], k2), conv_out(p1[2], k2)
        out.append(LayerSpec("conv", p1, (c2, h2, w2), (k2, k2), bias=True, name="conv2"))
        out.append(LayerSpec("act", (c2, h2, w2), (c2, h2, w2), name="relu2"))
        p2 = (c2, h2 // 2, w2 // 2)
        out.append(LayerSpec("pool", (c2, h2, w2), p2, (2, 2), 2, name="pool2"))
        flat = c2 * p2[1] * p2[2]
        out.append(LayerSpec("reshape", p2, (flat,), name="flatten"))
        prev = flat
        for i, n in enumerate((a["fc1"], a["fc2"]), 1):
            out.append(LayerSpec("linear", (prev,), (n,), bias=True, name=f"fc{i}"))
            out.append(LayerSpec("act", (n,), (n,), name=f"relu_fc{i}"))
            prev = n
        out.append(LayerSpec("linear", (prev,), (task.num_classes,), bias=True, name="fc3"))
        return out

    def build(self, arch: Mapping[str, Any], task: Task) -> nn.Module:
        a = self.space.validate(arch)
        _, _, flat = self._shapes(a, task)
        return nn.Sequential(
            nn.Conv2d(task.input_shape[0], a["conv1_ch"], a["conv1_k"]),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(a["conv1_ch"], a["conv2_ch"], a["conv2_k"]),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(flat, a["fc1"]),
            nn.ReLU(),
            nn.Linear(a["fc1"], a["fc2"]),
            nn.ReLU(),
            nn.Linear(a["fc2"], task.num_classes),
        )
