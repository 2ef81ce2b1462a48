"""The practice's LeNet family: two conv layers and three fully connected layers (729 archs).

conv(c1, k1) - ReLU - maxpool 2 - conv(c2, k2) - ReLU - maxpool 2 - fc1 - ReLU - fc2 - ReLU - fc(classes),
no padding, biases everywhere, as the classic PyTorch MNIST LeNet. Under the 0.05 MiB fp32 limit 17 archs fit.
Module names: conv1, relu1, pool1, conv2, relu2, pool2, flatten, fc1, relu_fc1, fc2, relu_fc2, fc3. An input too
small for an arch's kernels is a one-line error naming the layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..blueprint import Act, Blueprint, Conv, Flatten, Linear, P, Pool
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
            self._space = self.make_space(self.dims)
            if set(self._space.names) != set(PRACTICE_DIMS):
                raise SpaceError(f"lenet dims must be exactly {sorted(PRACTICE_DIMS)}")
        return self._space

    def describe(self, arch: Mapping[str, Any]) -> str:
        a = arch
        return f"c{a['conv1_ch']}k{a['conv1_k']}-c{a['conv2_ch']}k{a['conv2_k']}-fc{a['fc1']}-{a['fc2']}"

    def blueprint(self, task: Task) -> Blueprint:
        if not task.is_image:
            raise SpaceError(f"lenet needs image inputs (C, H, W), got input shape {task.input_shape} ({task.dtype})")
        bp = Blueprint(task.input_shape)
        bp.add("conv1", Conv(P("conv1_ch"), P("conv1_k"), pad=0, bias=True))
        bp.add("relu1", Act("relu"))
        bp.add("pool1", Pool("max", 2))
        bp.add("conv2", Conv(P("conv2_ch"), P("conv2_k"), pad=0, bias=True))
        bp.add("relu2", Act("relu"))
        bp.add("pool2", Pool("max", 2))
        bp.add("flatten", Flatten())
        bp.add("fc1", Linear(P("fc1")))
        bp.add("relu_fc1", Act("relu"))
        bp.add("fc2", Linear(P("fc2")))
        bp.add("relu_fc2", Act("relu"))
        bp.add("fc3", Linear(task.num_classes))
        return bp
