import gzip
import struct

import numpy as np
import pytest
import torch

from nasforge.artifacts import ArtifactKey, FolderStore, TrialArtifacts
from nasforge.data import dataset_task, find_dataset, idx_shape, load_image_dataset, read_idx
from nasforge.errors import DataError, NasforgeError, TrialFailed, UnknownNameError
from nasforge.evaluators import Context
from nasforge.evaluators.train import TrainEvaluator, accuracy
from nasforge.spaces import create_family

QUICK = dict(train_subset=2000, test_subset=1000, val_size=1000)
ARCH = {"conv1_ch": 6, "conv1_k": 5, "conv2_ch": 12, "conv2_k": 7, "fc1": 64, "fc2": 32}


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()


def test_idx_reader_raw_and_gzip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x-idx3-ubyte").write_bytes(idx_bytes(a))
    with gzip.open(tmp_path / "y-idx3-ubyte.gz", "wb") as f:
        f.write(idx_bytes(a))
    assert (read_idx(tmp_path / "x-idx3-ubyte") == a).all()
    assert (read_idx(tmp_path / "y-idx3-ubyte.gz") == a).all()
    assert (read_idx(tmp_path / "x-idx3-ubyte.gz") == a).all()  # falls back to the raw file


def test_idx_reader_rejects_bad_files(tmp_path):
    (tmp_path / "t").write_bytes(idx_bytes(np.zeros((4, 4), np.uint8))[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t")
    (tmp_path / "m").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "m")
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "none")


def test_missing_dataset_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("NASFORGE_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as e:
        find_dataset("mnist", tmp_path / "opt")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "opt" / "mnist") in msg and str(tmp_path / "env" / "mnist") in msg
    assert "/usr/share/datasets/mnist" in msg
    with pytest.raises(UnknownNameError):
        load_image_dataset("imagenet")


def test_mnist_splits(mnist):
    d = load_image_dataset("mnist", val_size=5000)
    assert d.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert abs(float(d.x_train.mean())) < 1e-3 and abs(float(d.x_train.std()) - 1) < 1e-3
    # the canonical test label counts (data README)
    assert torch.bincount(d.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_training_learns_and_is_reproducible(mnist, tmp_path):
    fam = create_family("lenet")
    ev = TrainEvaluator(fam, "mnist", epochs=2, lr=0.05, momentum=0.9, **QUICK)
    a = fam.arch(ARCH)
    key = ArtifactKey("s", 0, a.key)
    r1 = ev(a, Context(seed=7, artifacts=TrialArtifacts(FolderStore(tmp_path), key)))
    r2 = ev(a, Context(seed=7))
    r1.pop("train_time_s"), r2.pop("train_time_s")
    assert r1 == r2
    assert r1["val_acc"] > 50 and r1["test_acc"] > 50  # chance is 10%; 2 epochs on 2,000 images give ~65%
    # the saved weights are the best epoch's: they reproduce the reported validation and test accuracy
    model = fam.build(a, ev.task())
    model.load_state_dict(TrialArtifacts(FolderStore(tmp_path), key).load("model.pt"))
    data = ev.data()
    assert accuracy(model, data.x_val, data.y_val)[0] == pytest.approx(r1["val_acc"])
    assert accuracy(model, data.x_test, data.y_test)[0] == pytest.approx(r1["test_acc"])


def test_exploding_loss_fails_the_trial(mnist):
    fam = create_family("lenet")
    ev = TrainEvaluator(fam, "mnist", epochs=1, lr=1e4, momentum=0.9, **QUICK)
    with pytest.raises(TrialFailed, match="loss (became NaN|exploded)"):
        ev(fam.arch(ARCH), Context(seed=0))


def test_curve_reported_per_epoch(mnist):
    fam = create_family("lenet")
    ev = TrainEvaluator(fam, "mnist", epochs=2, **QUICK)
    ctx = Context(seed=0)
    ev(fam.arch(ARCH), ctx)
    assert [p["step"] for p in ctx.curve] == [1, 2] and all("val_acc" in p for p in ctx.curve)


def test_task_from_idx_headers_without_loading(tmp_path, monkeypatch):
    """A named data set's shape and classes come from its IDX headers: files cut right after their headers still
    give them. The evaluator's task reads the data (its normalisation needs it), so there a cut file is caught."""
    from nasforge.evaluators import train

    root = tmp_path / "mnist"
    root.mkdir()
    for name, shape in (("train-images-idx3-ubyte.gz", (3, 20, 24)), ("train-labels-idx1-ubyte.gz", (3,)),
                        ("t10k-images-idx3-ubyte.gz", (2, 20, 24)), ("t10k-labels-idx1-ubyte.gz", (2,))):  # fmt: skip
        with gzip.open(root / name, "wb") as f:
            f.write(idx_bytes(np.zeros(shape, np.uint8))[: 4 + 4 * len(shape)])  # the header alone: no data
    assert idx_shape(root / "train-images-idx3-ubyte.gz") == (3, 20, 24)
    with pytest.raises(DataError, match="truncated"):
        read_idx(root / "train-images-idx3-ubyte.gz")
    task = dataset_task("mnist", tmp_path)
    assert (task.input_shape, task.num_classes, task.name) == ((1, 20, 24), 10, "mnist")
    assert task.class_names == tuple("0123456789") and task.mean is None
    monkeypatch.setattr(train, "_DATA_CACHE", {})
    ev = TrainEvaluator(create_family("lenet"), "mnist", data_dir=str(tmp_path))
    assert ev.source.meta().input_shape == (1, 20, 24) and train._DATA_CACHE == {}  # nothing was loaded
    with pytest.raises(DataError, match="truncated"):
        ev.task()
    with pytest.raises(UnknownNameError):
        dataset_task("imagenet")


def test_the_recipe_changes_training_and_is_recorded(mnist, tmp_path):
    """adamw, a cosine schedule and label smoothing each change the weights; the recipe is the evaluator's config, so
    a study records it and refuses to resume with another."""
    fam = create_family("lenet")
    a = fam.arch(ARCH)
    base = dict(epochs=1, train_subset=500, test_subset=100, val_size=200)
    runs = {
        "sgd": TrainEvaluator(fam, "mnist", **base),
        "adamw": TrainEvaluator(fam, "mnist", optimizer="adamw", **base),
        "cosine": TrainEvaluator(fam, "mnist", schedule="cosine", **base),
        "smooth": TrainEvaluator(fam, "mnist", label_smoothing=0.1, **base),
    }
    losses = {k: ev(a, Context(seed=1))["train_loss"] for k, ev in runs.items()}
    assert len(set(losses.values())) == 4, losses
    assert runs["sgd"].recipe() == {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5, "weight_decay": 0.0,
                                    "schedule": "constant", "label_smoothing": 0.0, "batch_size": 64, "epochs": 1}
    assert runs["adamw"].recipe()["lr"] == 1e-3 and "momentum" not in runs["adamw"].recipe()
    assert runs["adamw"].recipe()["weight_decay"] == 0.01
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    db = f"sqlite:///{tmp_path}/r.db"
    Study.open("r", db).run(fam, create_strategy("grid", fam.space), runs["sgd"], budget=0)
    cfg = Study.open("r", db).config["evaluator_config"]
    assert cfg["optimizer"] == "sgd" and cfg["lr"] == 0.01 and cfg["momentum"] == 0.5 and cfg["dataset"] == "mnist"
    with pytest.raises(NasforgeError, match="evaluator_config") as e:
        Study.open("r", db).run(fam, create_strategy("grid", fam.space), runs["adamw"], budget=0)
    assert "\n" not in str(e.value) and "adamw" in str(e.value)


def test_bad_recipes_are_one_line_errors():
    fam = create_family("lenet")
    for kw, words in ((dict(optimizer="adam"), "optimizer must be one of sgd, adamw"),
                      (dict(schedule="step"), "schedule must be"), (dict(optimizer="adamw", momentum=0.9), "momentum"),
                      (dict(lr=0), "lr must be"), (dict(label_smoothing=1.5), "label_smoothing"),
                      (dict(device="gpu"), "auto, cpu, cuda")):  # fmt: skip
        with pytest.raises(NasforgeError, match=words) as e:
            TrainEvaluator(fam, "mnist", **kw)
        assert "\n" not in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_one_line(mnist, tmp_path, capsys):
    from nasforge.cli import main

    ev = TrainEvaluator(create_family("lenet"), "mnist", device="cuda", **QUICK)
    with pytest.raises(NasforgeError, match="sees no CUDA GPU") as e:
        ev.task()
    assert "\n" not in str(e.value)
    rc = main(["search", "--device", "cuda:1", "--budget", "1", "--storage", f"sqlite:///{tmp_path}/c.db", "-q",
               "--train-subset", "100", "--val-size", "50"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no CUDA GPU" in err[0]
    assert TrainEvaluator(create_family("lenet"), "mnist", device="auto").task()  # auto falls back to the CPU


def test_practice_defaults_stay(mnist):
    """The chapter's recipe is the default: SGD lr 0.01, momentum 0.5, batch 64; MNIST holds out 5,000 images."""
    ev = TrainEvaluator(create_family("lenet"), "mnist")
    assert (ev.optimizer, ev.lr, ev.momentum, ev.batch_size, ev.schedule) == ("sgd", 0.01, 0.5, 64, "constant")
    assert ev.config()["val_size"] == 5000
