"""From a ``DataSource`` to training tensors, in three steps written once for every form of data.

1. ``plan(source, ...)``: which samples form the training, validation and test splits (the validation split held out
   of the training data, stratified and seeded, unless the data brings its own). Reads labels only.
2. ``scan(source, parts)``: one streamed pass over every sample, keeping one chunk in memory: it checks the labels and
   the samples (a NaN, an unreadable image, a label out of range is a one-line ``DataError`` before anything trains)
   and measures the per-channel mean and standard deviation of the training split. The result is the ``Task``:
   input shape, classes, class names and that normalisation, which the study records.
3. ``prepare(source, parts, task)``: the splits as float32 tensors, normalised with the task's mean and std, on a
   device. Only this step holds the data in memory; a worker process runs it once per process.

The samples are normalised as ``(x - mean[c]) / std[c]`` of the *stored* values (pixels 0…255 stay 0…255 before
that), so that an exported model that normalises inside itself takes exactly what the data files hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import DataError
from ..task import Task
from .base import DataSource
from .split import split_indices, val_count

Parts = dict[str, tuple[str, np.ndarray]]  # split name → (the source's split it is drawn from, positions in it)


def plan(
    source: DataSource,
    val_size: int | float | None = None,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
) -> Parts:
    """The training, validation and (when the data has one) test positions. ``val_size``: a fraction or a count of
    the training data to hold out (None: 10%, at most 5,000), and only when the data has no validation split."""
    meta = source.meta()
    y = source.labels("train")
    if "val" in meta.splits:
        if val_size is not None:
            raise DataError(f"data set {meta.name!r} brings its own validation split; drop val_size ({val_size!r})")
        train, _ = split_indices(y, None, seed, train_subset)
        parts: Parts = {"train": ("train", train), "val": ("val", np.arange(meta.sizes["val"]))}
    else:
        train, val = split_indices(y, val_count(val_size, len(y)), seed, train_subset)
        parts = {"train": ("train", train), "val": ("train", val)}
    if "test" in meta.splits:
        n = meta.sizes["test"] if not test_subset else min(test_subset, meta.sizes["test"])
        parts["test"] = ("test", np.arange(n))
    return parts


def resolved_val_size(source: DataSource, val_size: int | float | None) -> int | None:
    """The number of samples held out for validation (None when the data brings its own validation split)."""
    meta = source.meta()
    return None if "val" in meta.splits else val_count(val_size, meta.sizes["train"])


def num_classes(source: DataSource) -> int:
    """The number of classes, after checking every split's labels: whole numbers from 0, below the number of class
    names when the data names its classes (else the largest label + 1)."""
    meta = source.meta()
    labels = {s: np.asarray(source.labels(s)) for s in meta.splits}
    for s, y in labels.items():
        if y.ndim != 1 or len(y) != meta.sizes[s]:
            raise DataError(f"data set {meta.name!r}: {meta.sizes[s]} {s} samples but {y.size} labels")
        if y.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
            if len(bad):
                raise DataError(f"data set {meta.name!r}: {s} label {y[bad[0]]} (sample {bad[0]}) is not a class "
                                "number; labels must be whole numbers 0, 1, ..., K-1")  # fmt: skip
        elif y.dtype.kind not in "iub":
            raise DataError(f"data set {meta.name!r}: {s} labels must be integers, got dtype {y.dtype}")
        if len(y) and y.min() < 0:
            i = int(np.argmin(y))
            raise DataError(f"data set {meta.name!r}: {s} label {y[i]} (sample {i}) is negative; labels must be "
                            "0, 1, ..., K-1")  # fmt: skip
    if meta.class_names is not None:
        k = len(meta.class_names)
    else:
        k = 1 + max(int(y.max()) for y in labels.values() if len(y))
    for s, y in labels.items():
        if len(y) and y.max() >= k:
            i = int(np.argmax(y))
            raise DataError(f"data set {meta.name!r}: {s} label {int(y[i])} (sample {i}) is out of range: it names "
                            f"{k} classes, so labels must be 0 to {k - 1}")  # fmt: skip
    return k


class ChannelStats:
    """Per-channel mean and standard deviation over chunks of samples (N, C, ...), in one pass.

    Pixels (unsigned integers up to 16 bits) are summed exactly as integers, which is also several times faster;
    anything else is merged chunk by chunk in float64 (Chan et al., 1979), so that a long pass does not lose
    precision. A constant channel gets std 1, so that normalising never divides by zero.
    """

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.sums = [[0, 0] for _ in range(channels)]  # exact: sum and sum of squares per channel
        self.mean = np.zeros(channels)  # float: running mean and sum of squared deviations
        self.m2 = np.zeros(channels)

    def add(self, x: np.ndarray) -> None:
        if not len(x):
            return
        v = x.swapaxes(0, 1).reshape(x.shape[1], -1)
        nb = v.shape[1]
        if x.dtype.kind in "bu" and x.dtype.itemsize <= 2:
            w = v.astype(np.int64)  # a chunk's sums fit in int64; the totals are Python integers
            for c, (s, q) in enumerate(zip(w.sum(axis=1), np.einsum("ij,ij->i", w, w), strict=True)):
                self.sums[c][0] += int(s)
                self.sums[c][1] += int(q)
        else:
            f = v.astype(np.float64)
            mb = f.mean(axis=1)
            m2b = ((f - mb[:, None]) ** 2).sum(axis=1)
            d = mb - self.mean
            n = self.n + nb
            self.mean = self.mean + d * (nb / n)
            self.m2 = self.m2 + m2b + d**2 * (self.n * nb / n)
        self.n += nb

    def result(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        n = max(self.n, 1)
        if any(s or q for s, q in self.sums):
            mean = np.array([float(Fraction(s, n)) for s, _ in self.sums])
            var = np.array([float(Fraction(q * n - s * s, n * n)) for s, q in self.sums])
        else:
            mean, var = self.mean, self.m2 / n
        std = np.sqrt(var)
        std[std == 0] = 1.0
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def scan(source: DataSource, parts: Mapping[str, tuple[str, np.ndarray]]) -> Task:
    """Check every label and sample and measure the training split's normalisation, in one streamed pass; the
    ``Task`` of the data (see the module docstring)."""
    meta = source.meta()
    classes = num_classes(source)
    stats = ChannelStats(meta.input_shape[0])
    train_split, train_pos = parts["train"]
    in_train = np.zeros(meta.sizes[train_split], dtype=bool)
    in_train[train_pos] = True
    floating = np.dtype(meta.raw_dtype).kind == "f"
    for split in meta.splits:
        start = 0
        for x in source.rows(split, np.arange(meta.sizes[split])):
            if floating:
                bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
                if bad.any():
                    i = start + int(np.argmax(bad))
                    raise DataError(f"data set {meta.name!r}: {split} sample {i} holds NaN or infinite values; "
                                    "remove or repair it")  # fmt: skip
            if split == train_split:
                stats.add(x[in_train[start : start + len(x)]])
            start += len(x)
    mean, std = stats.result()
    return Task(meta.input_shape, classes, meta.name, "float32", None, meta.class_names, mean, std)


@dataclass
class Splits:
    """A classification data set as float32 tensors (N, C, H, W) or (N, F), normalised with the training split's
    per-channel statistics (``task.mean``/``task.std``). The validation split is held out of the training data
    (never the test set): select on ``val``, report ``test``. ``x_test`` is None when the data has no test split."""

    name: str
    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    num_classes: int
    task_: Task | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def task(self) -> Task:
        return self.task_ or Task(self.input_shape, self.num_classes, self.name)

    def sizes(self) -> dict[str, int]:
        out = {"train": len(self.y_train), "val": len(self.y_val)}
        if self.y_test is not None:
            out["test"] = len(self.y_test)
        return out


def normalise(x: np.ndarray, task: Task):
    """Raw samples → the float32 tensor a network trains on: ``(x - mean[c]) / std[c]``."""
    import torch

    t = torch.from_numpy(np.asarray(x, dtype=np.float32))
    if task.mean is None or task.std is None:
        return t.contiguous()
    shape = (1, -1) + (1,) * (t.dim() - 2)
    mean = torch.tensor(task.mean, dtype=torch.float32).reshape(shape)
    std = torch.tensor(task.std, dtype=torch.float32).reshape(shape)
    return ((t - mean) / std).contiguous()


def prepare(source: DataSource, parts: Mapping[str, tuple[str, np.ndarray]], task: Task, device: Any = "cpu") -> Splits:
    """The splits of ``parts`` as normalised tensors on ``device`` (reads the samples once per source split)."""
    import torch

    wanted: dict[str, list[str]] = {}
    for name, (split, _) in parts.items():
        wanted.setdefault(split, []).append(name)
    out: dict[str, Any] = {}
    for split, names in wanted.items():
        union = np.unique(np.concatenate([parts[n][1] for n in names]))
        raw = source.load(split, union)
        labels = np.asarray(source.labels(split)).astype(np.int64)
        for n in names:
            pos = parts[n][1]
            x = normalise(raw[np.searchsorted(union, pos)], task)
            y = torch.from_numpy(labels[pos])
            out[n] = (x.to(device), y.to(device))
    test = out.get("test", (None, None))
    return Splits(task.name, *out["train"], *out["val"], *test, task.num_classes, task)
