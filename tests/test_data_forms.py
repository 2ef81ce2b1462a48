"""Every form of data a user brings, end to end on a small real subset (MNIST), and every bad input in one line."""

import pickle

import numpy as np
import pytest
import torch
from conftest import require_data
from PIL import Image

from nasforge.data import (
    ArraySource,
    FolderSource,
    NpzSource,
    TorchSource,
    as_source,
    dataset_task,
    load,
    source_task,
)
from nasforge.datasets import plan, scan
from nasforge.datasets.split import split_indices, stratified_pick, val_count
from nasforge.errors import DataError, SpaceError, UnknownNameError
from nasforge.evaluators import Context
from nasforge.evaluators.train import TrainEvaluator
from nasforge.spaces import create_family
from nasforge.strategies import create_strategy
from nasforge.study import Study
from nasforge.trial import State

ARCH = {"conv1_ch": 6, "conv1_k": 5, "conv2_ch": 12, "conv2_k": 7, "fc1": 64, "fc2": 32}
RECIPE = dict(epochs=2, lr=0.05, momentum=0.9, batch_size=16)


@pytest.fixture(scope="module")
def small():
    """600 training and 200 test MNIST images (uint8, N×28×28) with their labels: a data set under 2,000 samples."""
    from nasforge.data import read_idx

    root = require_data("mnist")
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:600].copy()
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:600].astype(np.int64)
    xt = read_idx(root / "t10k-images-idx3-ubyte.gz")[:200].copy()
    yt = read_idx(root / "t10k-labels-idx1-ubyte.gz")[:200].astype(np.int64)
    return x, y, xt, yt


def write_folder(root, x, y, names=None, ext="png"):
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        d = root / (names[label] if names else str(label))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.{ext}")
    return root


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(self.x[i]), int(self.y[i])


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


def test_every_form_gives_the_same_task_and_the_same_training(small, tmp_path):
    """numpy arrays, tensors, a dict of splits, a torch Dataset, an .npz file and an image folder holding the same
    samples give the same task (class count, normalisation) and train to exactly the same numbers."""
    x, y, xt, yt = small
    np.savez_compressed(tmp_path / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    write_folder(tmp_path / "img" / "train", x, y)
    write_folder(tmp_path / "img" / "test", xt, yt)
    forms = {
        "numpy": ArraySource(x, y, x_test=xt, y_test=yt),
        "tensors": {"train": (torch.from_numpy(x), torch.from_numpy(y)), "test": (torch.from_numpy(xt), yt)},
        "dataset": {"train": Pairs(x, y), "test": Pairs(xt, yt)},
        "npz": tmp_path / "d.npz",
        "folder": str(tmp_path / "img"),
    }
    fam = create_family("lenet")
    arch = fam.arch(ARCH)
    results, tasks = {}, {}
    for name, data in forms.items():
        ev = TrainEvaluator(fam, data, val_size=0.1, **RECIPE)
        tasks[name] = ev.task()
        r = ev(arch, Context(seed=3))
        r.pop("train_time_s")
        results[name] = r
    # the normalisation is the training split's per-channel mean and std (the 10% held out is not in it)
    train_idx, val_idx = split_indices(y, 60, 0, None)
    ref = x[train_idx].astype(np.float64)
    assert len(val_idx) == 60 and tasks["numpy"].mean == pytest.approx((ref.mean(),), rel=1e-12)
    assert tasks["numpy"].std == pytest.approx((ref.std(),), rel=1e-12)
    assert tasks["numpy"].input_shape == (1, 28, 28) and tasks["numpy"].num_classes == 10
    assert all(t.mean == tasks["numpy"].mean and t.std == tasks["numpy"].std for t in tasks.values())
    assert tasks["folder"].class_names == tuple(str(i) for i in range(10))  # the folder names
    first = results["numpy"]
    assert first["val_acc"] > 30 and first["test_acc"] > 30  # chance is 10%
    assert all(results[k] == first for k in ("tensors", "dataset", "npz")), results
    # a folder lists its samples class by class: the same samples in that order train to the same numbers
    o, ot = np.argsort(y, kind="stable"), np.argsort(yt, kind="stable")
    ev = TrainEvaluator(fam, ArraySource(x[o], y[o], x_test=xt[ot], y_test=yt[ot]), val_size=0.1, **RECIPE)
    r = ev(arch, Context(seed=3))
    r.pop("train_time_s")
    assert results["folder"] == r


def test_a_study_on_your_own_data_records_its_task(small, tmp_path):
    """A study on in-memory arrays with class names records shape, classes, class names and normalisation; its
    evaluator config identifies the data by a digest, so resuming with other data is refused."""
    x, y, xt, yt = small
    names = [f"digit {i}" for i in range(10)]
    fam = create_family("lenet")
    db = f"sqlite:///{tmp_path}/s.db"
    data = {"train": (x, y), "test": (xt, yt), "class_names": names}
    ev = TrainEvaluator(fam, data, val_size=100, **RECIPE)
    s = Study.open("own", db)
    s.run(fam, create_strategy("random", fam.space, seed=0), ev, constraints=["size<=0.05MiB"], budget=2)
    done = s.trials([State.COMPLETE])
    assert len(done) == 2 and all("test_acc" in t.metrics for t in done)
    task = s.task()
    assert task.class_names == tuple(names) and task.mean and task.std and task.input_shape == (1, 28, 28)
    assert s.config["evaluator_config"]["dataset"]["kind"] == "arrays"
    assert s.config["evaluator_config"]["val_size"] == 100
    other = {"train": (x[::-1].copy(), y[::-1].copy()), "test": (xt, yt), "class_names": names}
    with pytest.raises(Exception, match="evaluator_config"):
        s.run(fam, create_strategy("random", fam.space, seed=0), TrainEvaluator(fam, other, val_size=100, **RECIPE),
              constraints=["size<=0.05MiB"], budget=3)  # fmt: skip


def test_no_test_split_reports_no_test_accuracy(small):
    x, y, _, _ = small
    fam = create_family("lenet")
    ev = TrainEvaluator(fam, (x, y), **RECIPE)
    assert "test_acc" not in ev.metrics
    r = ev(fam.arch(ARCH), Context(seed=0))
    assert "test_acc" not in r and set(r) == set(ev.metrics)


def test_npz_with_its_own_validation_split_and_channel_last_images(tmp_path):
    """RGB images stored N×H×W×C are read channel first; a file's own validation split is used as is, and asking
    for a held-out fraction as well is refused."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (90, 12, 12, 3), dtype=np.uint8)
    y = np.arange(90) % 3
    np.savez(tmp_path / "rgb.npz", x_train=x[:60], y_train=y[:60], x_val=x[60:], y_val=y[60:],
             class_names=np.array(["a", "b", "c"]))  # fmt: skip
    src = as_source(str(tmp_path / "rgb.npz"))
    assert isinstance(src, NpzSource)
    task = source_task(src)
    assert task.input_shape == (3, 12, 12) and task.class_names == ("a", "b", "c") and task.num_classes == 3
    ref = x[:60].astype(np.float64)
    assert task.mean == pytest.approx(tuple(ref.mean(axis=(0, 1, 2))), rel=1e-12)
    assert task.std == pytest.approx(tuple(ref.std(axis=(0, 1, 2))), rel=1e-12)
    d = load(src)
    assert d.sizes() == {"train": 60, "val": 30} and d.x_val.shape == (30, 3, 12, 12)
    raw = x[60:].transpose(0, 3, 1, 2).astype(np.float32)
    want = (raw - np.float32(task.mean)[None, :, None, None]) / np.float32(task.std)[None, :, None, None]
    assert np.allclose(d.x_val.numpy(), want, atol=1e-6)
    with pytest.raises(DataError, match="own validation split") as e:
        load(src, val_size=0.2)
    one_line(e)


def test_folder_with_splits_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (24, 10, 10, 3), dtype=np.uint8)
    y = np.arange(24) % 2
    write_folder(tmp_path / "f" / "train", x[:16], y[:16], names=["cat", "dog"], ext="jpg")
    write_folder(tmp_path / "f" / "test", x[16:], y[16:], names=["cat", "dog"])
    src = FolderSource(tmp_path / "f")
    meta = src.meta()
    assert meta.input_shape == (3, 10, 10) and meta.sizes == {"train": 16, "test": 8}
    assert meta.class_names == ("cat", "dog")
    d = load(src, val_size=4)
    assert d.sizes() == {"train": 12, "val": 4, "test": 8} and sorted(d.y_val.tolist()) == [0, 0, 1, 1]


def test_task_from_metadata_reads_no_samples(small, tmp_path, monkeypatch):
    """The task's shape and classes come from an .npz's headers and a folder's listing plus one image: a source
    whose samples cannot be read still gives them."""
    x, y, _, _ = small
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    write_folder(tmp_path / "f", x[:30], y[:30])

    def boom(*a, **k):
        raise AssertionError("samples were read")

    monkeypatch.setattr(NpzSource, "rows", boom)
    monkeypatch.setattr(FolderSource, "_read", boom)
    t = dataset_task(str(tmp_path / "d.npz"))
    assert (t.input_shape, t.num_classes, t.name, t.mean) == ((1, 28, 28), 10, "d", None)
    t = dataset_task(str(tmp_path / "f"))
    assert t.input_shape == (1, 28, 28) and t.num_classes == 10


def test_npz_streams_compressed_and_plain_files_alike(small, tmp_path):
    x, y, _, _ = small
    big = np.concatenate([x] * 15)  # 9,000 samples: more than two chunks of a streamed pass
    np.savez(tmp_path / "a.npz", x_train=big, y_train=np.tile(y, 15))
    np.savez_compressed(tmp_path / "b.npz", x_train=big, y_train=np.tile(y, 15))
    idx = np.array([8999, 0, 5, 4095, 4096, 8192])  # across chunk edges, in no order
    for f in ("a.npz", "b.npz"):
        src = NpzSource(tmp_path / f)
        assert np.array_equal(src.load("train", idx)[:, 0], big[idx])
        assert np.array_equal(src.load("train")[:, 0], big)


def test_stratified_validation_split_and_its_size():
    y = np.repeat(np.arange(3), [50, 30, 20])
    val = stratified_pick(y, 10, np.random.default_rng(0))
    assert np.bincount(y[val]).tolist() == [5, 3, 2]
    assert val_count(None, 60000) == 5000 and val_count(None, 1500) == 150 and val_count(None, 3) == 1
    assert val_count(0.25, 100) == 25 and val_count(30, 100) == 30 and val_count(30.0, 100) == 30
    for bad in (0, 100, 1.5, -0.1, "x", True):
        with pytest.raises(DataError) as e:
            val_count(bad, 100)
        one_line(e)
    tr, va = split_indices(y, 10, 0, 40)
    assert len(va) == 10 and len(tr) == 40 and not set(tr) & set(va)
    assert np.bincount(y[tr]).tolist() == [20, 12, 8]  # a training subset is stratified too


def test_in_memory_data_travels_to_a_worker_once(small, tmp_path, monkeypatch):
    """Pickled for a worker process, arrays are written once to the cache and each job carries only the file name."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    x, y, xt, yt = small
    src = ArraySource(x, y, x_test=xt, y_test=yt, class_names=[str(i) for i in range(10)])
    blob = pickle.dumps(src)
    assert len(blob) < 10_000 and len(pickle.dumps(src)) == len(blob)
    back = pickle.loads(blob)
    assert back.spec() == src.spec() and np.array_equal(back.load("test")[:, 0], xt)
    assert len(list((tmp_path / "nasforge" / "spill").iterdir())) == 1
    ds = TorchSource(Pairs(x[:50], y[:50]))
    assert np.array_equal(pickle.loads(pickle.dumps(ds)).load("train")[:, 0], x[:50])


BAD = {
    "label out of range": (lambda x, y: ArraySource(x, np.where(y == 9, 12, y), class_names=list("abcdefghij")),
                           "out of range"),
    "negative label": (lambda x, y: ArraySource(x, y - 1), "negative"),
    "fractional label": (lambda x, y: ArraySource(x, y + 0.5), "not a class number"),
    "mismatched lengths": (lambda x, y: ArraySource(x, y[:-1]), "equally long"),
    "x without y": (lambda x, y: ArraySource(x, y, x_test=x), "without y_test"),
    "NaN in features": (lambda x, y: ArraySource(np.where(np.arange(x.size).reshape(x.shape) == 4000, np.nan,
                                                          x.astype(np.float32)), y), "NaN"),
    "strings as samples": (lambda x, y: ArraySource(np.array([["a"]] * len(y)), y), "numbers"),
    "5-D samples": (lambda x, y: ArraySource(x[:, None, None], y), "shape"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arrays_are_one_line_errors(small, case):
    x, y, _, _ = small
    make, words = BAD[case]
    with pytest.raises(DataError) as e:
        source_task(make(x, y))
    assert words in one_line(e)


def test_bad_files_and_folders_are_one_line_errors(small, tmp_path):
    x, y, _, _ = small
    (tmp_path / "empty").mkdir()
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    write_folder(tmp_path / "broken", x[:6], y[:6])
    (tmp_path / "broken" / str(y[0]) / "zz.png").write_bytes(b"not a png at all")
    write_folder(tmp_path / "sizes", x[:6], y[:6])
    Image.fromarray(np.zeros((20, 28), np.uint8)).save(tmp_path / "sizes" / str(y[1]) / "zz.png")
    np.savez(tmp_path / "nox.npz", y_train=y)
    np.savez(tmp_path / "len.npz", x_train=x, y_train=y[:10])
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"a": 1}] * 3, dtype=object), y_train=np.zeros(3, int))
    (tmp_path / "text.npz").write_text("hello")
    cases = {
        "empty": "no class subfolders", "noimg": "holds no images", "broken": "cannot read image",
        "sizes": "resize", "nox.npz": "needs arrays x_train and y_train", "len.npz": "equally long",
        "obj.npz": "Python objects", "text.npz": "not an .npz file", "missing.npz": "neither",
    }  # fmt: skip
    for name, words in cases.items():
        with pytest.raises(DataError) as e:
            source_task(str(tmp_path / name))
        assert words in one_line(e), (name, str(e.value))


def test_what_cannot_be_data_says_what_can(small):
    x, y, _, _ = small
    for bad, words in ((torch.zeros(3, 4), "no labels"), ({"x": 1}, "unknown data entry"), (42, "cannot use a int"),
                       ({"test": (x, y)}, "needs a 'train'"), (None, "cannot use a NoneType")):  # fmt: skip
        with pytest.raises(DataError) as e:
            as_source(bad)
        assert words in one_line(e)
    with pytest.raises(UnknownNameError):
        as_source("imagenet")


def test_a_family_that_cannot_take_the_inputs_says_so_before_training(small):
    x, y, _, _ = small
    ev = TrainEvaluator(create_family("lenet"), (x.reshape(600, -1), y), **RECIPE)  # feature vectors, not images
    with pytest.raises(SpaceError) as e:
        ev.task()
    assert "image" in one_line(e)


def test_plan_holds_out_validation_from_training_only(small):
    x, y, xt, yt = small
    src = ArraySource(x, y, x_test=xt, y_test=yt)
    parts = plan(src, 0.2, train_subset=100, test_subset=50)
    assert parts["val"][0] == "train" and len(parts["val"][1]) == 120 and len(parts["train"][1]) == 100
    assert not set(parts["val"][1]) & set(parts["train"][1]) and len(parts["test"][1]) == 50
    assert scan(src, parts).num_classes == 10
