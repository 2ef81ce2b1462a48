"""Zero-cost proxies: synflow and NASWOT's kernel against hand-computed values; every proxy finite, deterministic for a
seed and picklable; the degenerate network (output ignores the input) as the formulas say."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.errors import TrialFailed
from nasforge.evaluators import Context, create_evaluator
from nasforge.evaluators.proxies import naswot_kernel, synflow_score
from nasforge.space import Space
from nasforge.spaces import Task, create_family
from nasforge.spaces.custom import BuilderFamily

PROXIES = ("synflow", "snip", "grad_norm", "naswot", "jacob_cov")
TINY = Task((1, 8, 8), 3)


def tiny_data(n: int = 48) -> dict:
    rng = np.random.default_rng(0)
    return {"x_train": rng.normal(size=(n, 1, 8, 8)).astype("float32"), "y_train": np.arange(n) % 3}


def _two_linear(arch, task) -> nn.Module:
    """Two bias-free linear layers with fixed weights (signs that synflow must drop) and a BN it must remove."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(),
                        nn.Linear(2, 1, bias=False))  # fmt: skip
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net[4].weight.copy_(torch.tensor([[-1.0, 2.0]]))
        net[2].weight.fill_(7.0)  # a BN that stayed would scale the score
        net[2].running_mean.fill_(0.3)
    return net


def test_synflow_two_linear_layers_by_hand():
    # |W1|·1 = [3, 3.5]; R = |W2|·|W1|·1 = 1·3 + 2·3.5 = 10. Each layer's Σ|θ ⊙ ∂R/∂θ| equals R (synflow's
    # conservation law, Tanaka et al. 2020, Theorem 2): layer 2: 1·3 + 2·3.5; layer 1: 1·(1+2) + 2·(3+0.5)... both 10.
    assert synflow_score(_two_linear(None, None), (2,)) == pytest.approx(20.0)
    fam = BuilderFamily(Space({"w": [1]}), _two_linear, default_task=Task((2,), 1))
    ev = create_evaluator("synflow", family=fam)
    out = ev(fam.space.validate({"w": 1}), Context(seed=0))
    assert out["synflow"] == pytest.approx(20.0) and out["proxy_time_s"] >= 0
    assert ev.metrics == ("synflow", "proxy_time_s") and ev.default_objectives == ("maximize synflow",)


def test_naswot_kernel_by_hand():
    codes = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1]])
    # K = units - Hamming: d(0,1) = 2, d(0,2) = 1, d(1,2) = 3
    K = naswot_kernel(codes)
    assert K.tolist() == [[3, 1, 2], [1, 3, 0], [2, 0, 3]]
    assert float(torch.linalg.slogdet(K)[1]) == pytest.approx(math.log(12))  # 3·9 − 1·3 + 2·(−6)


@pytest.fixture(scope="module")
def nb201():
    return create_family("nb201", C=4, N=1)


def _ev(name, fam, **kw):
    return create_evaluator(name, family=fam, dataset=tiny_data(), batch_size=16, device="cpu", **kw)


@pytest.mark.parametrize("name", PROXIES)
def test_each_proxy_finite_deterministic_picklable(name, nb201):
    ev = _ev(name, nb201)  # synflow takes the data's task (1×8×8) and no batch
    arch = nb201.arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|")
    a = ev(arch, Context(seed=3))
    assert set(a) == {name, "proxy_time_s"} and math.isfinite(a[name])
    assert ev(arch, Context(seed=3))[name] == a[name]
    again = pickle.loads(pickle.dumps(ev))
    assert again(arch, Context(seed=3))[name] == a[name]
    assert ev.config()["proxy"] == name
    assert ev(arch, Context(seed=4))[name] != a[name]  # the seed decides the initialisation


def test_synflow_uses_family_task_without_data(nb201):
    ev = create_evaluator("synflow", family=nb201)
    assert ev.task() == nb201.default_task
    arch = nb201.arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    worse = nb201.arch("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    # more parameterised paths from input to output: a larger synflow (data-free "synaptic flow")
    assert ev(arch, Context(seed=0))["synflow"] > ev(worse, Context(seed=0))["synflow"]


def _constant(arch, task) -> nn.Module:
    """A network whose output ignores its input: every sample gives the same ReLU codes and a zero Jacobian."""

    class Const(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, task.num_classes)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.fc(self.act(torch.ones(x.shape[0], 4) + 0 * x.flatten(1)[:, :1]))

    return Const()


@pytest.mark.parametrize("name,why", [("naswot", "singular"), ("jacob_cov", "constant")])
def test_degenerate_network_fails_in_one_line(name, why):
    fam = BuilderFamily(Space({"w": [1]}), _constant, default_task=TINY)
    ev = create_evaluator(name, family=fam, dataset=tiny_data(), batch_size=8, device="cpu")
    with pytest.raises(TrialFailed, match=why) as e:
        ev(fam.space.validate({"w": 1}), Context(seed=0))
    assert "\n" not in str(e.value)


def test_proxies_finite_on_a_disconnected_cell(nb201):
    # all edges into node 3 are 'none': the cell's output is zero, and the cell's own weights get no gradient
    dead = nb201.arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|")
    for name in ("snip", "grad_norm", "naswot"):  # naswot: the cell's ReLUs still see the input
        assert math.isfinite(_ev(name, nb201)(dead, Context(seed=0))[name])
    assert create_evaluator("synflow", family=nb201)(dead, Context(seed=0))["synflow"] >= 0


def test_bad_batch_size_is_one_line(nb201):
    from nasforge.errors import NasforgeError

    with pytest.raises(NasforgeError, match="batch_size"):
        create_evaluator("snip", family=nb201, dataset=tiny_data(), batch_size=1)
