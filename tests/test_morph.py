"""Net2Net morphisms against the unmodified network's outputs (the reference), the inherit evaluator in a real tiny
study, and evolution by growth moves.

Function preservation is checked in eval mode on random inputs, float32, max |Δ| < 1e-5, with BatchNorm statistics
made non-trivial first (a BN at its initial statistics would hide a wrong copy of running mean or variance).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.morph import morph
from nasforge.nn.morph import MorphError, net2deeper, net2wider, wider_map
from nasforge.space import Arch
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.strategies import create_strategy
from nasforge.task import Task
from nasforge.trial import Result, State

TOL = 1e-5
TASK = Task((3, 32, 32), 10)


def settle(model: nn.Module, shape, steps: int = 3) -> nn.Module:
    """Run a few training-mode batches so that BatchNorm statistics are not at their initial 0 / 1, then eval."""
    torch.manual_seed(7)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(16, *shape) * 2 + 0.5)
    return model.eval()


def diff(a: nn.Module, b: nn.Module, shape) -> float:
    x = torch.randn(8, *shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return float((a.eval()(x) - b.eval()(x)).abs().max())


# --- the paper's operations on plain modules -----------------------------------------------------------------------
def test_wider_map_is_identity_below_n_and_in_range_above():
    g = wider_map(5, 12, np.random.default_rng(0))
    assert list(g[:5]) == list(range(5)) and len(g) == 12 and g.min() >= 0 and g.max() < 5
    with pytest.raises(MorphError):
        wider_map(5, 4, np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_net2wider_with_bn_preserves_the_function(kind):
    torch.manual_seed(0)
    if kind == "conv":
        a, bn, b, shape = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 5, 3, padding=1), (3, 8, 8)
    else:
        a, bn, b, shape = nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 5), (6,)
    net = settle(nn.Sequential(a, bn, nn.ReLU(), b), shape)
    a2, b2, bn2 = net2wider(a, b, 11, bn=bn, rng=np.random.default_rng(1))
    wide = nn.Sequential(a2, bn2, nn.ReLU(), b2).eval()
    assert a2.weight.shape[0] == 11 and diff(net, wide, shape) < TOL
    # noise on the copies breaks symmetry: a small, bounded change
    a3, b3, bn3 = net2wider(a, b, 11, bn=bn, noise=0.05, rng=np.random.default_rng(1))
    d = diff(net, nn.Sequential(a3, bn3, nn.ReLU(), b3), shape)
    assert 0 < d < 0.5


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_net2deeper_after_relu_is_the_identity(kind):
    torch.manual_seed(0)
    first, shape = (nn.Conv2d(3, 4, 3, padding=1), (3, 8, 8)) if kind == "conv" else (nn.Linear(6, 4), (6,))
    net = nn.Sequential(first, nn.ReLU()).eval()
    deeper = nn.Sequential(first, nn.ReLU(), net2deeper(first)).eval()
    assert diff(net, deeper, shape) < TOL


# --- morphs derived from the blueprint -----------------------------------------------------------------------------
LENET_SMALL = dict(conv1_ch=3, conv1_k=5, conv2_ch=12, conv2_k=5, fc1=64, fc2=32)


def test_lenet_widening_every_layer_preserves_the_function():
    fam = create_family("lenet")
    parent = fam.space.validate(LENET_SMALL)
    child = fam.space.validate(dict(LENET_SMALL, conv1_ch=9, conv2_ch=20, fc1=256, fc2=120))
    torch.manual_seed(0)
    net = fam.build(parent).eval()
    wide = morph(fam, parent, net.state_dict(), child)
    assert wide.conv1.weight.shape[0] == 9 and wide.fc1.weight.shape == (256, 20 * 4 * 4)  # flatten widened too
    assert diff(net, wide, MNIST_TASK.input_shape) < TOL


def mobilenet():
    return create_family("mobilenet", **create_family("mobilenet").example_config())


def mb_arch(fam, **kw) -> Arch:
    base = {k: c.values[0] for k, c in fam.space.dims.items()}
    return fam.space.validate({**base, "resolution": 32, **kw})


@pytest.mark.parametrize("change", [
    {"width": 1.0},  # every layer wider; residual adds on both branches
    {"s0_b0_e": 4},  # a wider expand conv: depthwise follows, project divides
    {"s1_d": 2},  # a deeper stage: the new MBConv is the identity through its residual
    {"s0_b0_k": 5},  # a larger depthwise kernel, zero-padded
    {"width": 1.0, "s0_d": 2, "s1_d": 2, "s1_b0_e": 4, "s1_b1_k": 5},
])  # fmt: skip
def test_mobilenet_morphs_preserve_the_function(change):
    fam = mobilenet()
    parent, child = mb_arch(fam), mb_arch(fam, **change)
    torch.manual_seed(0)
    net = settle(fam.build(parent, TASK), (3, 32, 32))
    grown = morph(fam, parent, net.state_dict(), child, TASK, seed=1)
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in net.parameters())
    assert diff(net, grown, (3, 32, 32)) < TOL
    if "s1_d" in change:  # the zeroed projection BN of the new block: gamma = beta = 0
        assert float(grown.get_submodule("stages.1.1.project.1").weight.detach().abs().sum()) == 0.0


def test_noise_changes_the_output_slightly_and_boundedly():
    fam = mobilenet()
    parent, child = mb_arch(fam), mb_arch(fam, width=1.0)
    torch.manual_seed(0)
    net = settle(fam.build(parent, TASK), (3, 32, 32))
    noisy = morph(fam, parent, net.state_dict(), child, TASK, noise=0.01)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        d, scale = float((net(x) - noisy.eval()(x)).abs().max()), float(net(x).abs().max())
    assert 0 < d < 0.1 * scale


@pytest.mark.parametrize("fam_name,parent,child", [
    ("lenet", LENET_SMALL, dict(LENET_SMALL, conv1_ch=6, conv2_k=7)),  # spatial size changes
    ("lenet", dict(LENET_SMALL, fc1=128), LENET_SMALL),  # narrower
    ("mobilenet", {}, {"resolution": 48}),  # another input
    ("mobilenet", {"s1_d": 2}, {}),  # the child drops a block
])  # fmt: skip
def test_moves_that_change_the_function_are_refused(fam_name, parent, child):
    if fam_name == "lenet":
        fam, task = create_family("lenet"), MNIST_TASK
        p, c = fam.space.validate(parent), fam.space.validate(child)
    else:
        fam, task = mobilenet(), TASK
        p, c = mb_arch(fam, **parent), mb_arch(fam, **child)
    with pytest.raises(MorphError) as e:
        morph(fam, p, fam.build(p, task).state_dict(), c, task)
    assert "\n" not in str(e.value) and isinstance(e.value, NasforgeError)


# --- evolution by growth -------------------------------------------------------------------------------------------
def test_morph_evolution_children_are_one_growth_step_from_a_told_arch():
    fam = create_family("lenet")
    grow = ["conv1_ch", "conv2_ch", "fc1", "fc2"]
    s = create_strategy("morph-evolution", fam.space, seed=0, population=4, grow=grow)
    told: list[Arch] = []
    grown = 0
    for i in range(20):
        can_grow = any(s.open_moves(m, set()) for m, _ in s.population)
        (a,) = s.ask()
        if i >= 4 and can_grow:  # else (every member at the top) a random unseen arch, by design
            # some told arch is the child less one growth step of a growable dimension
            assert any(sum(t[k] != a[k] for k in fam.space.names) == 1 and all(t[k] <= a[k] for k in grow)
                       for t in told)  # fmt: skip
            grown += 1
        s.tell(a, Result(State.COMPLETE, (float(a["fc1"] + a["conv2_ch"]),)))
        told.append(a)
    assert grown >= 10
    with pytest.raises(NasforgeError):
        create_strategy("morph-evolution", fam.space, grow=["depth"])


def test_inherit_candidates_are_nearest_first():
    from nasforge.evaluators import create_evaluator

    fam = create_family("lenet")
    ev = create_evaluator("inherit", family=fam, dataset="mnist", max_distance=2)
    child = fam.space.validate(dict(LENET_SMALL, conv1_ch=9, fc1=128))
    cands = list(ev.candidates(child))
    dist = [sum(fam.space.dims[k].index(child[k]) - fam.space.dims[k].index(c[k]) for k in fam.space.names)
            for c in cands]  # fmt: skip
    assert dist == sorted(dist) and dist[0] == 1 and max(dist) == 2 and len({c.key for c in cands}) == len(cands)


# --- the inherit evaluator in a real study -------------------------------------------------------------------------
def test_inherit_finds_the_parent_in_a_study_and_starts_from_its_weights(tmp_path, mnist):
    from nasforge.evaluators import create_evaluator
    from nasforge.study import Study

    fam = create_family("lenet")
    data = dict(train_subset=64, val_size=32, test_subset=32, batch_size=16, optimizer="adamw", lr=3e-3, threads=1)
    ev = create_evaluator("inherit", family=fam, dataset=mnist, epochs=1, scratch_epochs=10, noise=0.0, **data)
    grow = ["conv1_ch", "conv2_ch", "fc1", "fc2"]
    strat = create_strategy("morph-evolution", fam.space, seed=1, population=1, grow=grow)
    study = Study.open("n2n", f"sqlite:///{tmp_path}/db.sqlite").run(fam, strat, ev, budget=3)
    trials = sorted(study.trials(), key=lambda t: t.number)
    assert [t.state for t in trials] == [State.COMPLETE] * 3
    first, later = trials[0], trials[1:]
    assert first.metrics["inherited_from"] == -1
    by_number = {t.number: t for t in trials}
    for t in later:
        parent = by_number[int(t.metrics["inherited_from"])]
        assert sum(parent.arch[k] != t.arch[k] for k in fam.space.names) == 1
        # noise 0: the child starts with its parent's function, so with its (best-epoch) validation accuracy
        assert t.metrics["start_val_acc"] == pytest.approx(parent.metrics["val_acc"])
        # training continues from the parent's loss, not from a fresh network's ~ln(10)
        scratch_first = first.curve[0]["train_loss"]
        assert t.curve[0]["train_loss"] < 0.5 * scratch_first
        assert abs(t.curve[0]["train_loss"] - parent.curve[-1]["train_loss"]) < 0.5 * scratch_first
