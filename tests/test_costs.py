import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasforge.cost import LayerSpec, costs
from nasforge.spaces import MNIST_TASK, create_family


def flops(model, shape):
    with FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, *shape))
    return fc.get_total_flops()


def test_chapter_formulas_by_hand():
    # linear c_o·c_i; conv c_o·c_i·k_h·k_w·h_o·w_o; grouped /g; depthwise c_o·k·k·h_o·w_o; bias ignored
    assert LayerSpec("linear", (120,), (84,), bias=True).macs == 84 * 120
    assert LayerSpec("linear", (120,), (84,), bias=True).params == 84 * 120 + 84
    conv = LayerSpec("conv", (3, 32, 32), (16, 30, 30), (3, 3))
    assert conv.macs == 16 * 3 * 3 * 3 * 30 * 30 and conv.params == 16 * 3 * 9
    grouped = LayerSpec("conv", (8, 10, 10), (16, 10, 10), (3, 3), groups=4)
    assert grouped.macs == 16 * 8 * 9 * 100 // 4
    dw = LayerSpec("conv", (32, 14, 14), (32, 14, 14), (5, 5), groups=32)
    assert dw.macs == 32 * 25 * 14 * 14
    pw = LayerSpec("conv", (32, 7, 7), (64, 7, 7))
    assert pw.macs == 64 * 32 * 49


def test_lenet_all_729_match_flopcounter_and_numel():
    fam = create_family("lenet")
    for arch in fam.space.grid():
        model = fam.build(arch, MNIST_TASK)
        c = fam.costs(arch, MNIST_TASK)
        assert c["params"] == sum(p.numel() for p in model.parameters())
        assert 2 * c["macs"] == flops(model, (1, 28, 28)), fam.describe(arch)


def test_practice_has_17_archs_under_005mib():
    fam = create_family("lenet")
    fit = [a for a in fam.space.grid() if fam.costs(a, MNIST_TASK)["size"] <= 0.05 * 2**20]
    assert len(fit) == 17
    assert {"conv1_ch": 6, "conv1_k": 5, "conv2_ch": 12, "conv2_k": 7, "fc1": 64, "fc2": 32} in [dict(a) for a in fit]


def test_size_at_bit_width():
    fam = create_family("lenet")
    a = fam.space.at(0)
    c32, c8 = fam.costs(a, MNIST_TASK, bits=32), fam.costs(a, MNIST_TASK, bits=8)
    assert c32["size"] == 4 * c32["params"] and c8["size"] == c8["params"]


def test_cell_space_size_formula():
    for M, N, L in [(5, 2, 5), (3, 1, 2), (8, 3, 1), (2, 2, 4)]:
        fam = create_family("cell", M=M, N=N, L=L)
        assert fam.space.size == 4**L * M ** (2 * L) * N**L
    assert create_family("cell").space.size == 320_000_000_000


def test_cell_builds_and_counts_match():
    fam = create_family("cell", L=2, M=8, N=3, C=8)
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = fam.space.sample(rng)
        model = fam.build(a, MNIST_TASK)
        c = fam.costs(a, MNIST_TASK)
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        assert c["params"] == sum(p.numel() for p in model.parameters())
        assert 2 * c["macs"] == flops(model, (1, 28, 28)), fam.describe(a)


def test_peak_memory_chain_by_hand():
    layers = [LayerSpec("conv", (1, 8, 8), (4, 8, 8), (3, 3)), LayerSpec("linear", (256,), (10,))]
    assert costs(layers)["peak_mem"] == (64 + 256) * 4


def test_lenet_rejects_too_small_input():
    from nasforge.errors import SpaceError
    from nasforge.spaces import Task

    fam = create_family("lenet")
    with pytest.raises(SpaceError, match="too small"):
        fam.costs(fam.space.at(728), Task((1, 12, 12), 10))


def test_builder_family_costs_by_tracing():
    from nasforge.space import Space
    from nasforge.spaces.custom import BuilderFamily
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    def mlp(arch, task):
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, arch["width"]), nn.ReLU(),
                             *[m for _ in range(arch["depth"] - 1) for m in (nn.Linear(arch["width"], arch["width"]),
                                                                             nn.ReLU())],
                             nn.Linear(arch["width"], task.num_classes))  # fmt: skip

    fam = BuilderFamily(Space({"width": [16, 32, 64], "depth": [1, 2, 3]}), mlp, default_task=MNIST_TASK)
    for a in fam.space.grid():
        m = fam.build(a, MNIST_TASK)
        c = fam.costs(a, MNIST_TASK)
        assert c["params"] == sum(p.numel() for p in m.parameters()) and 2 * c["macs"] == flops(m, (1, 28, 28))
    s = Study.open("c", "sqlite://").run(
        fam, create_strategy("grid", fam.space), lambda a, ctx: {"acc": a["width"] + a["depth"]},
        objectives=["maximize acc"], constraints=["params<=30K"],
    )  # fmt: skip
    assert s.best().arch == {"width": 32, "depth": 3}  # 64 wide is over 30K parameters (51K); 32×3 is 27.6K
