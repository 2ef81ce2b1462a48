"""SPOS (single-path one-shot), BN recalibration and the supernet evaluator, against references: the plain network
``family.build`` makes, a hand computation of BN statistics, an uninterrupted run."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from conftest import require_data
from torch import nn

from nasforge.artifacts import ArtifactKey, FolderStore, TrialArtifacts
from nasforge.datasets.prepare import Splits
from nasforge.errors import NasforgeError
from nasforge.evaluators import EVALUATORS, Context, create_evaluator
from nasforge.evaluators.supernet import SupernetEvaluator
from nasforge.evaluators.train import TrainEvaluator
from nasforge.nn.elastic import ElasticBatchNorm
from nasforge.oneshot.base import ONESHOT, OneShot
from nasforge.oneshot.recalibrate import bn_batches, recalibrate_bn
from nasforge.oneshot.spos import SPOS
from nasforge.spaces import FAMILIES, create_family
from nasforge.task import Task

CELL = {"C": 8, "L": 2, "M": 3, "N": 2}  # 5,184 archs, trains in a fraction of a second per epoch
SUBSET = {"train_subset": 400, "val_size": 100, "device": "cpu"}


def fake_splits(task: Task, n: int = 96, seed: int = 0) -> Splits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *task.input_shape, generator=g)
    y = torch.randint(task.num_classes, (n,), generator=g)
    return Splits("fake", x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :], None, None, task.num_classes, task)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they give on shared cores
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cell_data():
    require_data("mnist")
    fam = create_family("cell", **CELL)
    return fam, TrainEvaluator(fam, "mnist", **SUBSET).data()


@pytest.fixture(scope="module")
def trained(cell_data):
    fam, data = cell_data
    m = SPOS(fam, data.task(), seed=0, epochs=5, batch_size=32, lr=0.1, n_derive=4, bn_batches=2, bn_batch_size=32)
    m.setup("cpu")
    losses = [m.train_epoch(data, e)["train_loss"] for e in range(1, 6)]
    return m, losses


@pytest.mark.parametrize("name", ["cell", "nb201", "mobilenet"])
def test_one_path_equals_the_plain_network(name):
    fam = create_family(name, **FAMILIES.get(name).example_config())
    task = Task((1, 28, 28), 10, "t") if name == "cell" else Task((3, 32, 32), 10, "t")
    data = fake_splits(task)
    m = SPOS(fam, task, seed=1, epochs=1, batch_size=16, n_derive=2, bn_batches=2, bn_batch_size=16)
    m.setup("cpu")
    calls = []
    stats = m.train_epoch(data, 1, lambda done, total, label: calls.append((done, total)))
    assert np.isfinite(stats["train_loss"]) and 0 <= stats["train_acc"] <= 100
    assert calls[-1] == (3, 3)  # 48 samples in batches of 16
    arch = m.derive()
    assert fam.space.contains(arch)
    net = m.supernet
    net.set_active(arch)
    recalibrate_bn(net, bn_batches(data.x_train, 2, 16, torch.Generator().manual_seed(0)))  # non-trivial BN stats
    plain = fam.build(arch, task)
    plain.load_state_dict(net.extract(arch).state_dict())
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(data.x_val), plain(data.x_val), rtol=1e-5, atol=1e-5)


def test_training_lowers_the_loss(trained):
    _, losses = trained
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.05, losses


class _Net(nn.Module):
    def __init__(self, bn: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = bn

    def forward(self, x):
        return self.bn(self.conv(x))


@pytest.mark.parametrize("bn", [lambda: nn.BatchNorm2d(4), lambda: ElasticBatchNorm(6)])
def test_recalibration_is_the_mean_of_the_batch_statistics(bn):
    torch.manual_seed(0)
    net = _Net(bn())
    net.bn.running_mean.fill_(5.0)  # stale statistics, to be replaced
    batches = [torch.randn(8, 2, 6, 6) * (k + 1) + k for k in range(3)]
    with torch.no_grad():
        feats = [net.conv(x) for x in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats]).mean(0)
    assert recalibrate_bn(net, batches) == 3
    assert not net.training and net.bn.momentum == 0.1  # eval mode, momentum restored
    torch.testing.assert_close(net.bn.running_mean[:4], mean)
    torch.testing.assert_close(net.bn.running_var[:4], var)
    if isinstance(net.bn, ElasticBatchNorm):  # channels beyond the active prefix are reset, not stale
        assert net.bn.running_mean[4:].eq(0).all() and net.bn.running_var[4:].eq(1).all()


def _train(m: OneShot, data, epochs) -> list[float]:
    return [m.train_epoch(data, e)["train_loss"] for e in epochs]


def test_resume_from_a_checkpoint_is_bit_identical(cell_data):
    fam, data = cell_data
    kw = {"seed": 3, "epochs": 2, "batch_size": 64, "n_derive": 3, "bn_batches": 1, "bn_batch_size": 64}
    full = SPOS(fam, data.task(), **kw)
    full.setup("cpu")
    losses = _train(full, data, [1, 2])

    first = SPOS(fam, data.task(), **kw)
    first.setup("cpu")
    _train(first, data, [1])
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)  # through a file, as the runner checkpoints
    resumed = SPOS(fam, data.task(), **kw)
    resumed.setup("cpu")
    resumed.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert _train(resumed, data, [2]) == losses[1:]

    a, b = full.state_dict(), resumed.state_dict()
    assert a["step"] == b["step"] and a["rng"] == b["rng"] and torch.equal(a["torch_gen"], b["torch_gen"])
    for k, v in a["supernet"].items():
        assert torch.equal(v, b["supernet"][k]), k
    for k, st in a["optimizer"]["state"].items():
        assert torch.equal(st["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])
    assert full.derive() == resumed.derive()


def test_derive_leaves_the_supernet_as_it_was(trained):
    m, _ = trained
    before = {k: v.clone() for k, v in m.supernet.state_dict().items()}
    rng = m.rng.bit_generator.state
    arch = m.derive()
    assert m.family.space.contains(arch) and len(m.candidates()) == 4
    assert m.rng.bit_generator.state == rng
    assert all(torch.equal(v, before[k]) for k, v in m.supernet.state_dict().items())
    assert m.derive() == arch


def test_supernet_evaluator_scores_archs_from_every_source(trained, mnist, tmp_path):
    m, _ = trained
    fam = m.family
    kw = {"bn_batches": 2, "batch_size": 32, **SUBSET}
    arch = fam.space.sample(np.random.default_rng(5))
    mem = SupernetEvaluator(fam, mnist, weights=m.state_dict(), **kw)
    r = mem(arch, Context(seed=7))
    assert set(r) == set(mem.metrics) and 0 <= r["val_acc"] <= 100 and np.isfinite(r["val_loss"])

    again = pickle.loads(pickle.dumps(mem))  # a worker process gets it without the loaded network
    assert again._net is None and again(arch, Context(seed=7))["val_acc"] == r["val_acc"]

    path = tmp_path / "supernet.pt"
    torch.save(m.supernet.state_dict(), path)
    from_file = SupernetEvaluator(fam, mnist, weights=path, **kw)
    assert from_file(arch, Context(seed=7))["val_loss"] == r["val_loss"]
    assert len(from_file.config()["weights"]["sha256"]) == 64 and from_file.config()["bn_batches"] == 2

    store = FolderStore(tmp_path / "store")
    store.put(ArtifactKey("spos-run", 0, "abc"), "supernet.pt", path.read_bytes())
    ctx = Context(seed=7, artifacts=TrialArtifacts(store, ArtifactKey("search", 1, arch.key)))
    from_store = SupernetEvaluator(fam, mnist, study="spos-run", arch_key="abc", **kw)
    assert from_store(arch, ctx)["val_acc"] == r["val_acc"]
    with pytest.raises(NasforgeError, match="outside a study"):
        SupernetEvaluator(fam, mnist, study="spos-run", arch_key="abc", **kw)(arch, Context(seed=7))


def test_supernet_evaluator_errors_are_one_line(trained, mnist, tmp_path):
    fam = trained[0].family
    with pytest.raises(NasforgeError, match="say where"):
        SupernetEvaluator(fam, mnist)
    assert SupernetEvaluator(fam, mnist, study="s").arch_key == "oneshot"  # a one-shot run's supernet
    with pytest.raises(NasforgeError, match="not both"):
        SupernetEvaluator(fam, mnist, weights={}, study="s", arch_key="k")
    with pytest.raises(NasforgeError, match="does not exist"):
        SupernetEvaluator(fam, mnist, weights=tmp_path / "none.pt").config()
    other = create_family("cell", C=4, L=2, M=3, N=2)
    wrong = SupernetEvaluator(other, mnist, weights=trained[0].state_dict(), **SUBSET)
    with pytest.raises(NasforgeError, match="do not fit"):
        wrong(other.space.sample(np.random.default_rng(0)), Context())


def test_registries():
    fam = create_family("cell", **CELL)
    m = ONESHOT.create("spos", fam, fam.default_task, seed=2, lr=0.1, n_derive=5)
    assert isinstance(m, SPOS) and m.name == "spos" and "spos" in ONESHOT.names()
    assert m.config()["lr"] == 0.1 and m.config()["n_derive"] == 5 and m.arch_probs() == {}
    with pytest.raises(NasforgeError):
        ONESHOT.create("spos", fam, fam.default_task, temperature=1.0)
    with pytest.raises(NasforgeError, match="schedule"):
        SPOS(fam, fam.default_task, schedule="step")
    assert EVALUATORS.get("supernet") is SupernetEvaluator
    ev = create_evaluator("supernet", family=fam, dataset="mnist", weights={"x": torch.zeros(1)})
    assert isinstance(ev, SupernetEvaluator) and ev.config()["weights"]["sha256"]


def test_cumulative_momentum_reference():
    """The 1/(k+1) momentum trick equals torch's own momentum=None cumulative average."""
    torch.manual_seed(1)
    xs = [torch.randn(5, 3, 4, 4) for _ in range(4)]
    ref = nn.BatchNorm2d(3, momentum=None).train()
    for x in xs:
        ref(x)
    ours = nn.Sequential(nn.BatchNorm2d(3))
    recalibrate_bn(ours, xs)
    torch.testing.assert_close(ours[0].running_mean, ref.running_mean)
    torch.testing.assert_close(ours[0].running_var, ref.running_var)
