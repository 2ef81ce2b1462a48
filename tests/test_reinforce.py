"""REINFORCE: the update is -(R - b)·∇log π(a), checked against a separate autograd computation of log π, and Adam
applies exactly that gradient; the controller learns a toy problem; failures get the lowest reward seen."""

from __future__ import annotations

import copy

import torch

from nasforge.space import Space
from nasforge.strategies.reinforce import Controller, Reinforce
from nasforge.trial import Result, State

SPACE = Space({"a": [0, 1, 2], "b": ["x", "y"], "c": [0.5, 1.5, 2.5, 3.5]})


def ok(v: float) -> Result:
    return Result(State.COMPLETE, (v,))


def reference_log_prob_and_entropy(ctrl: Controller, actions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """log π(a) and the summed entropy, written out step by step (an independent path through the same weights)."""
    x, state, logp, ent, offset = ctrl.start, None, torch.zeros(()), torch.zeros(()), 0
    for t, a in enumerate(actions):
        h, c = ctrl.cell(x, state)
        state = (h, c)
        z = ctrl.tanh_c * torch.tanh((h @ ctrl.heads[t].weight.T + ctrl.heads[t].bias) / ctrl.temperature)
        p = torch.exp(z) / torch.exp(z).sum()
        logp = logp + torch.log(p[0, a])
        ent = ent - (p * torch.log(p)).sum()
        x = ctrl.embed.weight[offset + a][None]
        offset += ctrl.sizes[t]
    return logp, ent


def test_gradient_is_minus_advantage_times_grad_log_prob_and_adam_applies_it():
    s = Reinforce(SPACE, seed=0, hidden=8, normalize=False, entropy_weight=0.1, lr=0.01)
    first, second = s.ask(2)
    s.tell(first, ok(50.0))  # the first reward starts the baseline (no advantage yet)
    assert s.baseline is not None
    b = s.baseline
    ctrl = s.controller
    actions = [SPACE.dims[k].index(second[k]) for k in SPACE.names]

    # reference: -(R + β·H - b)·∇log π(a), by autograd through the step-by-step computation
    logp, ent = reference_log_prob_and_entropy(ctrl, actions)
    R = 60.0 + 0.1 * float(ent.detach())
    expected = torch.autograd.grad(logp, list(ctrl.parameters()))
    expected = [-(R - b) * g for g in expected]

    loss, r = s.loss(second, 60.0)
    assert abs(r - R) < 1e-5
    ctrl.zero_grad()
    loss.backward()
    for p, g in zip(ctrl.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)

    # and tell() takes one Adam step with that gradient, then moves the baseline towards R
    twin, twin_opt = copy.deepcopy((ctrl, s._opt))
    for p, g in zip(twin.parameters(), expected, strict=True):
        p.grad = g.clone()
    twin_opt.step()
    s.tell(second, ok(60.0))
    for p, q in zip(ctrl.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert abs(s.baseline - (0.95 * b + 0.05 * R)) < 1e-4


def test_failures_get_the_lowest_reward_seen_and_nothing_before_any_success():
    s = Reinforce(SPACE, seed=1)
    archs = s.ask(4)
    before = [p.detach().clone() for p in s.controller.parameters()]
    s.tell(archs[0], Result(State.FAILED))  # nothing to compare with yet: no step
    assert all(torch.equal(p, q) for p, q in zip(before, s.controller.parameters(), strict=True))
    s.tell(archs[1], ok(70.0))
    s.tell(archs[2], ok(40.0))
    assert s.reward(Result(State.INFEASIBLE, feasible=False)) == 40.0


def test_controller_learns_a_toy_problem():
    space = Space({f"d{i}": list(range(4)) for i in range(4)})  # reward: how many dims chose 3
    s = Reinforce(space, seed=0, hidden=16, lr=0.05, sample_batch=4)
    target = torch.tensor([[3, 3, 3, 3]])
    with torch.no_grad():
        start = float(s.controller(target)[1])
    for _ in range(40):
        (a,) = s.ask(1)
        s.tell(a, ok(float(sum(v == 3 for v in a.values()))))
    with torch.no_grad():
        end = float(s.controller(target)[1])
    assert end > start + 1.0  # log π of the best arch rose by more than a factor e


def test_same_seed_same_controller_and_proposals():
    a, b = Reinforce(SPACE, seed=7), Reinforce(SPACE, seed=7)
    assert a.ask(3) == b.ask(3)
    for p, q in zip(a.controller.parameters(), b.controller.parameters(), strict=True):
        assert torch.equal(p, q)
