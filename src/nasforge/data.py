"""Data for training: bring your own (arrays, tensors, a torch ``Dataset``, an ``.npz`` file, an image folder) or use
a named IDX set (MNIST, Fashion-MNIST) found through the data directory. The machinery is in ``nasforge.datasets``;
this module is the short door to it::

    from nasforge.data import as_source, load

    source = as_source((x, y))                   # or "data.npz", "images/", {"train": (x, y), "test": ...}, a Dataset
    task = source_task(source)                   # shape, classes, class names, normalisation (one streamed pass)
    splits = load(source, val_size=0.1)          # normalised float32 tensors: x_train, y_train, x_val, ...

Where a named data set ``<name>`` is looked for, in order: the ``data_dir`` option, ``$NASFORGE_DATA``, the cache
(``$XDG_CACHE_HOME/nasforge/data`` or ``~/.cache/nasforge/data``), then ``/usr/share/datasets``; in each the folder
``<name>/``. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from typing import Any

from .datasets import (
    IMAGE_SETS,
    ArraySource,
    DataSource,
    FolderSource,
    IdxSource,
    NpzSource,
    Splits,
    TorchSource,
    as_source,
    find_dataset,
    idx_shape,
    open_source,
    plan,
    prepare,
    read_idx,
    scan,
    search_dirs,
)
from .datasets.idx import SYSTEM_DIR
from .task import Task

__all__ = [
    "IMAGE_SETS", "SYSTEM_DIR", "ArraySource", "DataSource", "FolderSource", "IdxSource", "ImageData", "NpzSource",
    "Splits", "TorchSource", "as_source", "dataset_task", "find_dataset", "idx_shape", "load", "load_image_dataset",
    "open_source", "read_idx", "search_dirs", "source_task",
]  # fmt: skip

ImageData = Splits  # its older name


def dataset_task(name: str, data_dir: str | os.PathLike | None = None) -> Task:
    """The ``Task`` of a data set (a name or a path) from its metadata alone (IDX or ``.npz`` headers, a folder's
    listing and one image), without reading the samples: shape and class names; no normalisation, which needs a pass
    over the data (``source_task``). MNIST gives 1×28×28 inputs and 10 classes."""
    meta = as_source(name, data_dir).meta()
    k = len(meta.class_names) if meta.class_names is not None else None
    if k is None:
        from .datasets import num_classes

        k = num_classes(as_source(name, data_dir))  # labels only
    return Task(meta.input_shape, k, meta.name, class_names=meta.class_names)


def source_task(
    data: Any,
    val_size: int | float | None = None,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> Task:
    """The full ``Task`` of ``data`` split this way, with the training split's per-channel normalisation; checks every
    label and sample on the way (one streamed pass)."""
    source = as_source(data, data_dir)
    return scan(source, plan(source, val_size, train_subset=train_subset, test_subset=test_subset, seed=seed))


def load(
    data: Any,
    val_size: int | float | None = None,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    device: Any = "cpu",
) -> Splits:
    """``data`` split (validation held out of the training data unless it has its own: stratified, ``val_size`` a
    fraction or a count, default 10% up to 5,000), checked and normalised, as tensors on ``device``."""
    source = as_source(data, data_dir)
    parts = plan(source, val_size, train_subset=train_subset, test_subset=test_subset, seed=seed)
    return prepare(source, parts, scan(source, parts), device)


def load_image_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_size: int | float | None = 5000,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
) -> Splits:
    """MNIST or Fashion-MNIST as tensors (``load`` of a named set, with the practice's 5,000 validation images)."""
    if name not in IMAGE_SETS:
        IdxSource(name)  # the one-line unknown-name error
    return load(name, val_size, train_subset=train_subset, test_subset=test_subset, seed=seed, data_dir=data_dir)
