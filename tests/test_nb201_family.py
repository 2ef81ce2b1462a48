"""The nb201 family: cell strings, the network builder against torch's own counts, and the op graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nasforge.blueprint import Blueprint, Identity
from nasforge.blueprint.net import build
from nasforge.cost import costs
from nasforge.errors import NasforgeError, SpaceError
from nasforge.graph import OpGraph
from nasforge.spaces import Task, create_family
from nasforge.spaces.nb201 import DIMS, OPS, _cell, from_string, to_string

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
TINY = Task((3, 16, 16), 7, "tiny")


def test_space_has_the_benchmark_size_and_names():
    fam = create_family("nb201")
    assert fam.space.size == 15_625
    assert fam.space.names == ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")
    assert all(fam.space.dims[d].values == OPS for d in DIMS)


def test_string_round_trip_for_every_cell():
    fam = create_family("nb201")
    strings = set()
    for arch in fam.space.grid():
        s = fam.describe(arch)
        assert from_string(s) == arch
        strings.add(s)
    assert len(strings) == 15_625


def test_from_string_reads_edges_in_the_standard_order():
    a = from_string(BEST)
    assert dict(a) == {
        "e1_0": "nor_conv_3x3",
        "e2_0": "nor_conv_3x3",
        "e2_1": "nor_conv_3x3",
        "e3_0": "skip_connect",
        "e3_1": "nor_conv_1x1",
        "e3_2": "nor_conv_3x3",
    }
    assert create_family("nb201").arch(BEST) == a == create_family("nb201").from_string(" " + BEST + "\n")
    # the inputs of a node may be listed in any order
    assert from_string("|none~0|+|none~1|skip_connect~0|+|none~2|none~0|none~1|")["e2_0"] == "skip_connect"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|nor_conv_3x3~0|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",
        "|conv9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|",
        "|none0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    ],
)
def test_malformed_strings_raise_a_one_line_error(bad):
    with pytest.raises(SpaceError) as e:
        from_string(bad)
    assert "\n" not in str(e.value) and "NAS-Bench-201" in str(e.value)


def _one_cell(arch: dict) -> torch.nn.Module:
    """The network of a single cell on 4×5×5 inputs, declared with the family's own cell."""
    bp = Blueprint((4, 5, 5))
    bp.add("x", Identity())
    _cell(bp, "cell", 4)
    return build(bp.freeze(create_family("nb201").space), arch).eval()


def test_cell_sums_its_incoming_edges():
    # all skip: n1 = x, n2 = x + n1 = 2x, n3 = x + n1 + n2 = 4x (hand computation of the cell's definition)
    x = torch.randn(2, 4, 5, 5)
    skip = _one_cell({d: "skip_connect" for d in DIMS})
    assert torch.allclose(skip(x), 4 * x)
    # avg pool then zeros: n1 = pool(x), n2 = 0, n3 = n1 + pool(n1) + x
    arch = dict.fromkeys(DIMS, "none") | {"e1_0": "avg_pool_3x3", "e3_0": "skip_connect", "e3_1": "skip_connect"}
    pool = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    assert torch.allclose(_one_cell(arch)(x), pool + x)
    assert torch.count_nonzero(_one_cell(dict.fromkeys(DIMS, "none"))(x)) == 0


def _sample(fam, n, seed=0):
    rng = np.random.default_rng(seed)
    archs = [fam.space.sample(rng) for _ in range(n)]
    return archs + [fam.arch(BEST), fam.arch(dict.fromkeys(DIMS, "none"))]


def test_params_and_macs_equal_torch_counts_on_a_tiny_network():
    fam = create_family("nb201", N=1, C=4)
    for arch in _sample(fam, 4):
        model = fam.build(arch, TINY)
        c = costs(fam.layers(arch, TINY))
        assert c["params"] == sum(p.numel() for p in model.parameters())
        with FlopCounterMode(display=False) as fc:
            y = model(torch.randn(2, *TINY.input_shape))
        assert y.shape == (2, 7)
        assert 2 * c["macs"] == fc.get_total_flops() // 2  # batch of 2; a MAC is 2 flops


def test_full_network_matches_torch_and_the_paper_for_the_largest_cell():
    fam = create_family("nb201")
    arch = fam.arch(dict.fromkeys(DIMS, "nor_conv_3x3"))
    model = fam.build(arch)
    c = fam.costs(arch, Task((3, 32, 32), 10))
    assert c["params"] == sum(p.numel() for p in model.parameters()) == 1_531_546  # paper: 1.53 MB at most
    with FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, 3, 32, 32))
    assert c["macs"] == fc.get_total_flops() // 2 == 220_119_680  # paper: 220 MFLOPs at most (multiply-adds)


def test_build_rejects_inputs_the_reductions_cannot_halve():
    with pytest.raises(SpaceError, match="divisible by 4"):
        create_family("nb201", N=1, C=4).build(from_string(BEST), Task((3, 30, 30), 10))


def test_graph_names_the_modules_that_hold_each_weight():
    fam = create_family("nb201", N=1, C=4)
    for arch in _sample(fam, 2, seed=1):
        g = fam.graph(arch, TINY)
        model = fam.build(arch, TINY)
        assert g.topological_order() == list(range(len(g)))
        assert g.sources == [0] and g.sinks == [g.id("classifier")]
        weighted = {n.name: n.weight for n in g if n.weight is not None}
        modules = {
            name: tuple(m.weight.shape)
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.BatchNorm2d | torch.nn.Linear)
        }
        assert weighted == modules
        assert OpGraph.from_dict(g.to_dict()).to_dict() == g.to_dict()


def test_graph_contract_joins_around_identities():
    fam = create_family("nb201", N=1, C=4)
    arch = fam.arch(dict.fromkeys(DIMS, "skip_connect"))
    g = fam.graph(arch, TINY)
    h = g.contract("identity")
    assert "identity" in g.ops() and "identity" not in h.ops()
    assert len(h) == len(g) - 3 * 6
    # the first cell's node 1 now reads the stem's BN directly
    assert h.predecessors(h.id("cells.0.node1")) == [h.id("stem.1")]


def test_graph_rejects_cycles_and_duplicate_names():
    g = OpGraph()
    a = g.add_node("a", "conv", (1,))
    b = g.add_node("b", "relu", (1,), inputs=[a])
    g.add_edge(b, a)
    with pytest.raises(NasforgeError, match="cycle"):
        g.topological_order()
    with pytest.raises(NasforgeError, match="twice"):
        g.add_node("a", "conv", (1,))


def test_describe_is_the_standard_string():
    fam = create_family("nb201")
    assert fam.describe(fam.arch(BEST)) == to_string(from_string(BEST)) == BEST
