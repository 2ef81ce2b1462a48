import gzip
import struct

import numpy as np
import pytest
import torch

from nasforge.artifacts import ArtifactKey, FolderStore, TrialArtifacts
from nasforge.data import dataset_task, find_dataset, idx_shape, load_image_dataset, read_idx
from nasforge.errors import DataError, TrialFailed, UnknownNameError
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


def test_task_from_idx_header_without_loading(tmp_path, monkeypatch):
    """A data set's task comes from its IDX header: a file whose data is cut short still gives its shape."""
    from nasforge.evaluators import train

    root = tmp_path / "mnist"
    root.mkdir()
    header = idx_bytes(np.zeros((3, 20, 24), np.uint8))[:16]  # the header alone: no image data at all
    with gzip.open(root / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header)
    assert idx_shape(root / "train-images-idx3-ubyte.gz") == (3, 20, 24)
    with pytest.raises(DataError, match="truncated"):
        read_idx(root / "train-images-idx3-ubyte.gz")
    task = dataset_task("mnist", tmp_path)
    assert (task.input_shape, task.num_classes, task.name) == ((1, 20, 24), 10, "mnist")
    monkeypatch.setattr(train, "_DATA_CACHE", {})
    ev = TrainEvaluator(create_family("lenet"), "mnist", data_dir=str(tmp_path))
    assert ev.task() == task and train._DATA_CACHE == {}  # nothing was loaded
    with pytest.raises(UnknownNameError):
        dataset_task("imagenet")
