"""Your own data, in any of the forms it usually comes in, as one ``DataSource``; see ``base.py`` for the contract.

``as_source(data)`` takes:

- a data set name (``"mnist"``, ``"fashion-mnist"``: IDX files found through the data directory);
- a path to an ``.npz`` file (``x_train``, ``y_train``, optional ``x_val``/``y_val``, ``x_test``/``y_test``,
  ``class_names``) or to an image folder (one subfolder per class, optional ``train/``, ``val/``, ``test/``);
- ``(x, y)`` arrays or tensors, or a dict of splits ``{"train": (x, y), "val": (x, y), "test": (x, y)}`` (or
  ``{"x_train": ..., "y_train": ..., ...}``, an optional ``"class_names"`` entry), or torch ``Dataset``s as the
  splits;
- a torch ``Dataset`` of ``(sample, label)`` pairs;
- a ``DataSource`` (``ArraySource``, ``TorchSource``, ``NpzSource``, ``FolderSource``, ``IdxSource``), as is.

Anything else is a one-line ``DataError`` naming its type (a tensor is never printed).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError, UnknownNameError
from .arrays import ArraySource, TorchSource
from .base import SPLITS, DataSource, Meta
from .folder import FolderSource
from .idx import IMAGE_SETS, IdxSource, find_dataset, idx_shape, read_idx, search_dirs
from .npz import NpzSource
from .prepare import Splits, num_classes, plan, prepare, resolved_val_size, scan

__all__ = [
    "IMAGE_SETS", "ArraySource", "DataSource", "FolderSource", "IdxSource", "Meta", "NpzSource", "Splits",
    "TorchSource", "as_source", "find_dataset", "idx_shape", "num_classes", "open_source", "plan", "prepare",
    "read_idx", "resolved_val_size", "scan", "search_dirs",
]  # fmt: skip

FORMS = ("a data set name (" + ", ".join(sorted(IMAGE_SETS)) + "), an .npz file, an image folder, (x, y) arrays or "
         "tensors, a dict of splits, or a torch Dataset")  # fmt: skip


class UnknownDataError(DataError, UnknownNameError):
    """A data set name that is not known and not a path to data either."""


def _is_dataset(obj: Any) -> bool:
    """A torch ``Dataset`` (or anything indexable with a length that is not an array)."""
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not hasattr(obj, "shape") and not isinstance(
        obj, str | bytes | tuple | list | Mapping)  # fmt: skip


def as_source(data: Any, data_dir: str | os.PathLike | None = None) -> DataSource:
    """The ``DataSource`` for ``data`` (see the module docstring). Only a name or a path is looked at on disk."""
    if isinstance(data, DataSource):
        return data
    if isinstance(data, str | os.PathLike):
        return _from_path(data, data_dir)
    if isinstance(data, Mapping):
        return _from_mapping(data)
    if isinstance(data, tuple | list) and len(data) == 2:
        return ArraySource(data[0], data[1])
    if hasattr(data, "shape"):
        raise DataError(f"a {type(data).__name__} alone has no labels; give (x, y), e.g. as_source((x, y))")
    if _is_dataset(data):
        return TorchSource(data)
    raise DataError(f"cannot use a {type(data).__name__} as data; give {FORMS}")


def _from_path(data: str | os.PathLike, data_dir: str | os.PathLike | None) -> DataSource:
    s = str(data)
    if s in IMAGE_SETS and isinstance(data, str):
        return IdxSource(s, data_dir)
    p = Path(s).expanduser()
    if p.is_dir():
        return FolderSource(p)
    if p.is_file():
        if p.suffix.lower() == ".npz" or zipfile.is_zipfile(p):
            return NpzSource(p)
        raise DataError(f"{p} is neither an .npz file nor an image folder")
    known = ", ".join(sorted(IMAGE_SETS))
    raise UnknownDataError(f"data set {s!r} is neither a known name ({known}) nor an .npz file or image folder")


def _from_mapping(data: Mapping[str, Any]) -> DataSource:
    names = data.get("class_names")
    flat = {f"{a}_{s}" for a in "xy" for s in SPLITS}
    unknown = sorted(set(data) - flat - set(SPLITS) - {"class_names"})
    if unknown:
        raise DataError(f"unknown data entry {unknown[0]!r}; give train, val, test (each (x, y) or a Dataset) or "
                        "x_train, y_train, ..., and optionally class_names")  # fmt: skip
    if set(data) & flat:
        return ArraySource(**{k: data[k] for k in flat if k in data}, class_names=names)
    if "train" not in data:
        raise DataError("a dict of data needs a 'train' entry: {'train': (x, y), 'test': (x, y)}")
    splits = {s: data.get(s) for s in SPLITS}
    if any(_is_dataset(v) for v in splits.values() if v is not None):
        return TorchSource(splits["train"], splits["val"], splits["test"], class_names=names)
    arrays: dict[str, Any] = {}
    for s, v in splits.items():
        if v is None:
            continue
        if not isinstance(v, tuple | list) or len(v) != 2:
            raise DataError(f"data entry {s!r} must be an (x, y) pair or a torch Dataset, got a {type(v).__name__}")
        arrays[f"x_{s}"], arrays[f"y_{s}"] = v
    return ArraySource(**arrays, class_names=names)


def open_source(spec: str | Mapping[str, Any], data_dir: str | os.PathLike | None = None) -> DataSource:
    """Reopen the data a study recorded (``DataSource.spec()``): a name, an ``.npz`` file or an image folder. Data
    that was given in memory cannot be reopened: a one-line ``DataError`` says so."""
    if isinstance(spec, str):
        return as_source(spec, data_dir)
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind == "npz":
        return NpzSource(spec["path"])
    if kind == "folder":
        return FolderSource(spec["path"])
    if kind == "arrays":
        raise DataError(f"the data ({spec.get('name')!r}) was given in memory, so it cannot be reopened here; pass it "
                        "again")  # fmt: skip
    raise DataError(f"unknown data record {spec!r}")
