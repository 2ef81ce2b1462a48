"""One-shot methods: the relaxation against the supernet, DARTS's second-order gradient against autograd,
ProxylessNAS's binary-gate gradient and rescaling against the formulas, derivation, resume, every method by registry."""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nasforge.oneshot.darts  # noqa: F401  (registers)
import nasforge.oneshot.gdas  # noqa: F401
import nasforge.oneshot.proxyless  # noqa: F401
from nasforge.errors import NasforgeError, SpaceError
from nasforge.oneshot.base import ONESHOT
from nasforge.oneshot.darts import hypergradient
from nasforge.oneshot.proxyless import binary_gate_grad, rescale
from nasforge.oneshot.relax import RelaxedNet, single, straight_through, two_path, weighted
from nasforge.spaces.base import create_family
from nasforge.task import Task

GRADIENT_METHODS = ("darts", "gdas", "proxyless")
NB_TASK = Task((1, 16, 16), 10)


def nb201():
    return create_family("nb201", C=4, N=1)


def cell():
    fam = create_family("cell")
    return create_family("cell", **fam.example_config())


def mobilenet():
    return create_family("mobilenet", **create_family("mobilenet").example_config())


def toy_data(n=128, shape=(1, 16, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    return types.SimpleNamespace(x_train=torch.randn(n, *shape, generator=g), y_train=torch.randint(0, 10, (n,),
                                 generator=g))  # fmt: skip


@pytest.mark.parametrize("make, task", [(nb201, NB_TASK), (cell, Task((1, 12, 12), 10)),
                                        (mobilenet, Task((3, 32, 32), 10))])  # fmt: skip
def test_relaxed_single_path_equals_supernet_and_plain_network(make, task):
    fam = make()
    sn = fam.supernet(task)
    net = RelaxedNet(sn).eval()
    rng = np.random.default_rng(1)
    for _ in range(3):
        arch = fam.space.sample(rng)
        x = torch.randn(2, *fam.input_shape(arch, task))
        sn.set_active(arch)
        plain = fam.build(arch, task).eval()
        plain.load_state_dict(sn.extract(arch).state_dict())
        with torch.no_grad():
            out = net(x, arch, single(net.choice_of(arch)))
            assert torch.allclose(out, sn(x), atol=1e-6)
            assert torch.allclose(out, plain(x), atol=1e-5)


def test_units_groups_and_global_dimensions():
    n = RelaxedNet(nb201().supernet(NB_TASK))
    assert [g.dims for g in n.groups] == [(d,) for d in nb201().space.dims]  # six edges shared by every cell
    assert len(n.units) == 6 * 3 and n.global_dims == ()
    c = RelaxedNet(cell().supernet(Task((1, 12, 12), 10)))
    assert c.groups[0].dims == ("l0_in_a", "l0_op_a")  # DARTS's mixed edge: (input, op) pairs
    m = RelaxedNet(mobilenet().supernet(Task((3, 32, 32), 10)))
    assert m.groups[0].dims == ("s0_b0_k", "s0_b0_e") and len(m.groups[0].candidates) == 4
    assert set(m.global_dims) == {"resolution", "width", "s0_d", "s1_d"}
    with pytest.raises(SpaceError, match="searched by the architecture weights"):
        m.check_fixed({"s0_b0_k": 3})
    with pytest.raises(SpaceError, match="not one of its values"):
        m.check_fixed({"width": 0.3})


def test_weighted_mix_is_the_softmax_sum_of_the_candidates():
    fam = nb201()
    net = RelaxedNet(fam.supernet(NB_TASK)).eval()
    x = torch.randn(2, 1, 16, 16)
    # a one-hot weight on candidate c everywhere is candidate c's network
    arch = fam.space.sample(np.random.default_rng(0))
    choice = net.choice_of(arch)
    onehot = [F.one_hot(torch.tensor(c), len(g.candidates)).float() for c, g in zip(choice, net.groups, strict=True)]
    with torch.no_grad():
        assert torch.allclose(net(x, {}, weighted(onehot)), net(x, {}, single(choice)), atol=1e-6)
    # GDAS's straight-through weights equal the single path in value
    hard = [h.clone().requires_grad_() for h in onehot]
    assert torch.allclose(net(x, {}, straight_through(hard, choice)), net(x, {}, single(choice)), atol=1e-6)


def test_second_order_darts_gradient_equals_autograd_double_backward(monkeypatch):
    # a smooth network (softplus for ReLU): a finite difference across a ReLU kink is off by O(1) whatever the step
    # (measured on this network: 0.28 relative error at ε = 0.01, 17 at 1e-5, 1e-11 at 1e-6 where no kink is crossed)
    monkeypatch.setattr(torch.nn.ReLU, "forward", lambda self, x: F.softplus(x))
    torch.manual_seed(0)
    fam = nb201()
    net = RelaxedNet(fam.supernet(Task((1, 8, 8), 10))).double().eval()  # eval: BN uses fixed statistics
    alphas = [torch.randn(len(g.candidates), dtype=torch.float64, requires_grad=True) for g in net.groups]
    xw, yw = torch.randn(8, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
    xa, ya = torch.randn(8, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
    names, weights = zip(*[(n, p) for n, p in net.named_parameters()], strict=True)
    xi = 0.05

    def loss(params, x, y):
        mix = weighted([torch.softmax(a, 0) for a in alphas])
        out = torch.func.functional_call(net, params, (x, {}, mix))
        return F.cross_entropy(out, y)

    # reference: autograd through the virtual step (double backward)
    p0 = dict(zip(names, weights, strict=True))
    gw = torch.autograd.grad(loss(p0, xw, yw), weights, create_graph=True)
    stepped = {n: w - xi * g for n, w, g in zip(names, weights, gw, strict=True)}
    ref = torch.autograd.grad(loss(stepped, xa, ya), alphas)
    got, _ = hypergradient(lambda: loss(p0, xw, yw), lambda: loss(p0, xa, ya), list(weights), alphas, xi)  # ε 0.01
    num = torch.sqrt(sum(((g - r) ** 2).sum() for g, r in zip(got, ref, strict=True)))
    den = torch.sqrt(sum((r**2).sum() for r in ref))
    assert float(num / den) < 1e-2
    # and it differs from the first-order gradient (the correction is really there)
    first = torch.autograd.grad(loss(p0, xa, ya), alphas)
    assert float(torch.sqrt(sum(((f - r) ** 2).sum() for f, r in zip(first, ref, strict=True))) / den) > 1e-3


def test_binary_gate_gradient_over_all_paths_is_the_expected_loss_gradient():
    # toy problem: a linear loss L = <c, y>, y = Σ g_j o_j; then ∂L/∂g_j = <c, o_j> whatever the sampled path
    torch.manual_seed(0)
    n = 5
    outs = [torch.randn(7) for _ in range(n)]
    c = torch.randn(7)
    alpha = torch.randn(n)
    gate = torch.tensor([1.0, 0.0], requires_grad=True)
    y = two_path([(2, 4)], [gate])(0, lambda k: outs[k])
    (c * y).sum().backward()
    assert torch.allclose(gate.grad, torch.stack([c @ outs[2], c @ outs[4]]))
    # the formula over every path equals autograd's gradient of the expected loss Σ p_j L_j
    a = alpha.clone().requires_grad_()
    lj = torch.stack([c @ o for o in outs])
    (torch.softmax(a, 0) * lj).sum().backward()
    assert torch.allclose(binary_gate_grad(alpha, range(n), lj), a.grad, atol=1e-6)


def test_two_path_gradient_points_the_expected_way_in_expectation():
    # at a uniform distribution the two-path estimate, averaged over the sampled pairs, is the full formula times
    # N / (2 (N - 1)) (each pair {i, j} gives p̃_i p̃_j (L_i - L_j) = (L_i - L_j) / 4)
    n = 6
    lj = torch.randn(n, generator=torch.Generator().manual_seed(3))
    alpha = torch.zeros(n)
    full = binary_gate_grad(alpha, range(n), lj)
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(n)
    draws = 4000
    for _ in range(draws):
        i, j = (int(k) for k in torch.multinomial(torch.softmax(alpha, 0), 2, generator=gen))
        total += binary_gate_grad(alpha, (i, j), lj[[i, j]])
    mc = total / draws
    assert torch.allclose(mc, full * n / (2 * (n - 1)), atol=0.02)


def test_rescaling_keeps_the_other_probabilities():
    alpha = torch.randn(6, generator=torch.Generator().manual_seed(1))
    before = alpha.clone()
    p0 = torch.softmax(before, 0)
    alpha[[1, 4]] += torch.tensor([0.7, -0.3])  # an update of the two sampled paths
    rescale(alpha, before, [1, 4])
    p1 = torch.softmax(alpha, 0)
    others = [0, 2, 3, 5]
    assert torch.allclose(p1[others], p0[others], atol=1e-6)
    assert not torch.allclose(p1[[1, 4]], p0[[1, 4]])
    assert torch.isclose(p1[[1, 4]].sum(), p0[[1, 4]].sum(), atol=1e-6)


def test_two_path_arch_step_leaves_unsampled_probabilities_unchanged():
    fam = nb201()
    m = ONESHOT.create("proxyless", fam, NB_TASK, seed=0, batch_size=32)
    m.setup("cpu")
    with torch.no_grad():
        for a in m.alphas:
            a.normal_(generator=torch.Generator().manual_seed(2))
    before = [p.clone() for p in m.probs()]
    d = toy_data(64)
    calls = []
    orig = m._draw

    def spy(p, n=1):
        out = orig(p, n)
        if n == 2:
            calls.append(out)
        return out

    m._draw = spy
    m._two_path((d.x_train[:32], d.y_train[:32]))
    for p0, p1, pair in zip(before, m.probs(), calls, strict=True):
        rest = [k for k in range(len(p0)) if k not in pair]
        assert torch.allclose(p0[rest], p1[rest], atol=1e-6)


def test_derivation_never_picks_none():
    fam = nb201()
    m = ONESHOT.create("darts", fam, NB_TASK, seed=0)
    m.setup("cpu")
    with torch.no_grad():
        for g, a in zip(m.net.groups, m.alphas, strict=True):
            a.zero_()
            a[g.candidates.index(("none",))] = 5.0  # 'none' strongest everywhere
            a[g.candidates.index(("skip_connect",))] = 1.0
    arch = m.derive()
    assert set(arch.values()) == {"skip_connect"}


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_every_method_trains_derives_and_resumes_identically(name):
    fam = nb201()
    d = toy_data(96)
    settings = {"seed": 3, "epochs": 2, "batch_size": 16}

    def fresh():
        m = ONESHOT.create(name, fam, NB_TASK, **settings)
        m.setup("cpu")
        return m

    whole = fresh()
    stats = [whole.train_epoch(d, e) for e in (1, 2)]
    assert all(np.isfinite(v) for s in stats for v in s.values())
    assert fam.space.contains(whole.derive())
    probs = whole.arch_probs()
    assert set(probs) == {g.name for g in whole.net.groups}
    assert all(abs(sum(p.values()) - 1) < 1e-5 for p in probs.values())
    # resume after epoch 1 from a saved state (as after a kill): the same end state, bit for bit
    first = fresh()
    first.train_epoch(d, 1)
    saved = copy.deepcopy(first.state_dict())
    resumed = fresh()
    resumed.load_state_dict(saved)
    resumed.train_epoch(d, 2)
    for a, b in zip(whole.alphas, resumed.alphas, strict=True):
        assert torch.equal(a, b)
    for (k, v), (_, w) in zip(whole.net.state_dict().items(), resumed.net.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    assert whole.derive() == resumed.derive()


def test_proxyless_latency_loss_and_reinforce_search_global_dimensions():
    fam = mobilenet()
    task = Task((3, 32, 32), 10)

    def lat(arch):  # a stand-in latency model: MACs in millions
        return {"latency_ms": sum(s.macs for s in fam.layers(arch, task)) / 1e6}

    m = ONESHOT.create("proxyless", fam, task, seed=0, batch_size=16, latency=lat, latency_weight=1.0)
    m.setup("cpu")
    base, d = m.latency_table()
    # D is exact for an additive cost: the arch with every group at its most expensive candidate
    worst = [int(dg.argmax()) for dg in d]
    assert abs(base + sum(float(dg.max()) for dg in d) - lat(m.net.arch_of(m.fixed, worst))["latency_ms"]) < 1e-6
    e = m.expected_latency()
    e.backward()
    assert all(a.grad is not None and float(a.grad.abs().sum()) > 0 for a in m.alphas)
    r = ONESHOT.create("proxyless", fam, task, seed=0, batch_size=16, estimator="reinforce", latency=lat,
                       latency_weight=1.0)  # fmt: skip
    r.setup("cpu")
    r.train_epoch(toy_data(32, (3, 32, 32)), 1)
    assert "width" in r.arch_probs() and fam.space.contains(r.derive())


def test_bad_settings_are_one_line_errors():
    fam = nb201()
    with pytest.raises(NasforgeError, match="order must be 1 or 2"):
        ONESHOT.create("darts", fam, NB_TASK, order=3)
    with pytest.raises(NasforgeError, match="needs a latency model"):
        ONESHOT.create("proxyless", fam, NB_TASK, latency_weight=0.5)
    with pytest.raises(NasforgeError, match="estimator must be one of"):
        ONESHOT.create("proxyless", fam, NB_TASK, estimator="ppo")
    with pytest.raises(NasforgeError, match="unknown one-shot method 'enas'"):
        ONESHOT.create("enas", fam, NB_TASK)
