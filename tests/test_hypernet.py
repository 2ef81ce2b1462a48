"""Graph hypernetwork: predicted shapes against the built network's parameters, the encoder's invariance to node
renumbering, the level schedule against the sequential GHN-1 update, training lowers the loss, seeded determinism,
the checkpoint, and the ``hypernet`` evaluator (scores, pickles, refuses a mismatched GHN)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.evaluators import Context, create_evaluator
from nasforge.graph import OpGraph
from nasforge.hypernet.encode import encode_graph
from nasforge.hypernet.model import GHN
from nasforge.hypernet.train import Nets, checkpoint, generate, load_ghn, run, save_ghn, score, train_ghn
from nasforge.spaces.base import create_family
from nasforge.task import Task

TASK = Task((1, 12, 12), 10)
torch.set_num_threads(1)  # tiny networks: a second thread only adds contention on a shared machine


def nb201():
    return create_family("nb201", C=4, N=1)


def cell():
    return create_family("cell", **create_family("cell").example_config())


def small_ghn(seed=0, **kw):
    torch.manual_seed(seed)
    return GHN(hidden=16, decoder_hidden=32, max_out=16, max_in=16, rank=4, **kw)


def toy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    templates = torch.randn(10, 1, 12, 12, generator=torch.Generator().manual_seed(99))
    x = templates[y] + 0.3 * torch.randn(n, 1, 12, 12, generator=g)  # learnable: one template per class
    return x, y


@pytest.mark.parametrize("make", [nb201, cell])
def test_predicted_shapes_match_every_weighted_layer(make):
    fam = make()
    ghn = small_ghn(max_kernel=5)
    nets = Nets(fam, TASK)
    for s in range(3):
        arch = fam.space.sample(np.random.default_rng(s))
        model, params = generate(ghn, nets, arch)
        own = dict(model.named_parameters())
        assert set(params) == set(own)
        for name, p in own.items():
            assert params[name].shape == p.shape, name
        assert run(model, params, torch.randn(3, 1, 12, 12)).shape == (3, 10)


def test_slicing_takes_the_centre_of_the_kernel_and_tiles_rows():
    ghn = small_ghn(max_kernel=5)
    g = OpGraph()
    g.add_node("input", "input", (20, 4, 4))
    g.add_node("c5", "conv", (20, 4, 4), (20, 20, 5, 5), [0], kernel=5, stride=1)
    g.add_node("c3", "conv", (20, 4, 4), (20, 20, 3, 3), [0], kernel=3, stride=1)
    out = ghn(encode_graph(g))
    assert out["c5.weight"].shape == (20, 20, 5, 5) and out["c3.weight"].shape == (20, 20, 3, 3)
    w = out["c5.weight"]
    assert torch.allclose(w[16:], w[:4] * 1.0, atol=1e-6) and torch.allclose(w[:, 16:], w[:, :4], atol=1e-6)
    g.add_node("c7", "conv", (20, 4, 4), (20, 20, 7, 7), [0], kernel=7, stride=1)
    with pytest.raises(NasforgeError, match="max_kernel"):
        ghn(encode_graph(g))


def _renumbered(g: OpGraph, perm: list[int]) -> OpGraph:
    """``g`` with node ``i`` stored at position ``perm[i]``."""
    inv = sorted(range(len(g)), key=lambda i: perm[i])
    h = OpGraph()
    for old in inv:
        n = g.nodes[old]
        h.add_node(n.name, n.op, n.shape, n.weight, **dict(n.attrs))
    for i, j in g.edges:
        h.add_edge(perm[i], perm[j])
    return h


@pytest.mark.parametrize("make", [nb201, cell])
def test_encoder_gives_the_same_embedding_to_a_renumbered_graph(make):
    fam = make()
    ghn = small_ghn(max_kernel=5, rounds=2)
    g = fam.graph(fam.space.sample(np.random.default_rng(3)), TASK)
    perm = list(np.random.default_rng(0).permutation(len(g)))  # any order: edges may now run backwards in ids
    h = _renumbered(g, perm)
    with torch.no_grad():
        e, f = ghn.embed(encode_graph(g)), ghn.embed(encode_graph(h))
        assert torch.allclose(e, f[perm], atol=1e-5)
        wg, wh = ghn(encode_graph(g)), ghn(encode_graph(h))
    assert all(torch.allclose(wg[k], wh[k], atol=1e-5) for k in wg)


def test_level_schedule_equals_the_sequential_topological_update():
    """GHN-1's update, one node at a time in topological order, written out by hand: the same states."""
    fam = nb201()
    ghn = small_ghn()
    g = fam.graph(fam.space.sample(np.random.default_rng(1)), TASK)
    code = encode_graph(g)
    with torch.no_grad():
        h = ghn.op_embed(torch.tensor(code.ops)) + ghn.shape_embed(torch.tensor(code.shapes))
        states = list(h)
        order = g.topological_order()
        for seq, nbrs, msg in ((order, g.predecessors, ghn.msg_fwd), (order[::-1], g.successors, ghn.msg_bwd)):
            for v in seq:
                if nbrs(v):
                    m = sum(msg(states[u]) for u in nbrs(v))
                    states[v] = ghn.gru(m[None], states[v][None])[0]
        assert torch.allclose(torch.stack(states), ghn.embed(code), atol=1e-5)


def test_training_lowers_the_loss_on_held_out_archs():
    fam = nb201()
    x, y = toy()
    nets = Nets(fam, TASK)
    held_out = [fam.space.sample(np.random.default_rng(100 + s)) for s in range(3)]
    ghn = small_ghn(seed=1)
    before = np.mean([score(ghn, nets, a, x, y)[1] for a in held_out])
    train_ghn(ghn, nets, x, y, steps=15, batch_size=32, lr=3e-3, seed=7)
    after = np.mean([score(ghn, nets, a, x, y)[1] for a in held_out])
    assert after < before - 0.2


def test_training_is_seeded():
    fam = nb201()
    x, y = toy()
    runs = []
    for _ in range(2):
        ghn = small_ghn(seed=1)
        r = train_ghn(ghn, Nets(fam, TASK), x, y, steps=3, batch_size=16, seed=7)
        runs.append((r["losses"], ghn.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_resume_from_a_checkpoint_continues_the_same_run(tmp_path):
    fam = nb201()
    x, y = toy()
    whole = small_ghn(seed=2)
    train_ghn(whole, Nets(fam, TASK), x, y, steps=6, batch_size=16, seed=3)
    half = small_ghn(seed=2)
    r = train_ghn(half, Nets(fam, TASK), x, y, steps=3, batch_size=16, seed=3)
    save_ghn(checkpoint(half, fam, TASK, r["step"], r["optimizer"]), tmp_path / "g.pt")
    again, fam2, task2, ck = load_ghn(tmp_path / "g.pt")
    assert fam2.config() == fam.config() and task2 == TASK and ck["step"] == 3
    train_ghn(again, Nets(fam2, task2), x, y, steps=3, start=ck["step"], batch_size=16, seed=3,
              optimizer_state=ck["optimizer"])  # fmt: skip
    for k, v in whole.state_dict().items():
        assert torch.allclose(v, again.state_dict()[k], atol=1e-6), k


def test_load_refuses_what_is_not_a_ghn(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(NasforgeError, match="not a GHN checkpoint"):
        load_ghn(p)
    with pytest.raises(NasforgeError, match="cannot read"):
        load_ghn(tmp_path / "missing.pt")


def _saved_ghn(tmp_path, fam):
    x, y = toy()
    ghn = small_ghn(seed=0)
    train_ghn(ghn, Nets(fam, TASK), x, y, steps=5, batch_size=16)
    path = tmp_path / "ghn.pt"
    save_ghn(checkpoint(ghn, fam, TASK), path)
    return path


def test_evaluator_scores_archs_is_picklable_and_deterministic(tmp_path):
    fam = nb201()
    path = _saved_ghn(tmp_path, fam)
    x, y = toy(120, seed=5)
    ev = create_evaluator("hypernet", family=fam, dataset=(x.numpy(), y.numpy()), ghn=str(path), val_size=40)
    ev2 = pickle.loads(pickle.dumps(ev))
    for s in range(3):
        arch = fam.space.sample(np.random.default_rng(s))
        r = ev(arch, Context(seed=s))
        assert set(r) == set(ev.metrics) and 0 <= r["val_acc"] <= 100 and np.isfinite(r["val_loss"])
        r2 = ev2(arch, Context(seed=s + 1))
        assert (r2["val_acc"], r2["val_loss"]) == pytest.approx((r["val_acc"], r["val_loss"]))
    ghn, _, _, _ = load_ghn(path)
    data = ev._data.data()
    assert score(ghn, Nets(fam, TASK), arch, data.x_val, data.y_val)[0] == pytest.approx(r["val_acc"])


def test_evaluator_refuses_a_ghn_for_other_inputs(tmp_path):
    fam = nb201()
    path = _saved_ghn(tmp_path, fam)
    x = np.random.default_rng(0).normal(size=(60, 1, 16, 16)).astype("float32")
    y = np.arange(60) % 10
    ev = create_evaluator("hypernet", family=fam, dataset=(x, y), ghn=str(path), val_size=20)
    with pytest.raises(NasforgeError, match="trained for inputs"):
        ev(fam.space.sample(np.random.default_rng(0)), Context())
    with pytest.raises(NasforgeError, match="ghn="):
        create_evaluator("hypernet", family=fam, dataset=(x, y))


def test_cli_trains_resumes_and_the_evaluator_reads_the_checkpoint(tmp_path):
    from nasforge.cli import main

    x, y = toy(80, seed=3)
    np.savez(tmp_path / "d.npz", x_train=x.numpy(), y_train=y.numpy())
    out = tmp_path / "ghn.pt"
    common = ["--family", "nb201", "--family-opt", "C=4", "--family-opt", "N=1", "--dataset", str(tmp_path / "d.npz"),
              "--val-size", "20", "--batch-size", "8", "--out", str(out)]  # fmt: skip
    assert main(["hypernet", "train", *common, "--steps", "2", "--max-channels", "16"]) in (0, None)
    assert main(["hypernet", "train", *common, "--steps", "1", "--resume"]) in (0, None)
    assert load_ghn(out)[3]["step"] == 3
    fam = nb201()
    ev = create_evaluator("hypernet", family=fam, dataset=str(tmp_path / "d.npz"), ghn=str(out), val_size=20)
    assert 0 <= ev(fam.space.sample(np.random.default_rng(0)), Context())["val_acc"] <= 100


def test_untrained_ghn_is_a_seeded_baseline():
    fam = nb201()
    x, y = toy(60, seed=4)
    ev = create_evaluator("hypernet", family=fam, dataset=(x.numpy(), y.numpy()), ghn="untrained", val_size=20)
    arch = fam.space.sample(np.random.default_rng(2))
    state = torch.random.get_rng_state()
    r = ev(arch, Context())
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's generator is left alone
    assert pickle.loads(pickle.dumps(ev))(arch, Context()) == r
