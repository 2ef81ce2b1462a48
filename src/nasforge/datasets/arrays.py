"""Data given in memory: numpy arrays or torch tensors (``ArraySource``), or torch ``Dataset``s (``TorchSource``).

``ArraySource(x_train, y_train, x_val=..., y_val=..., x_test=..., y_test=..., class_names=...)``; samples are images
(N×H×W, N×C×H×W or N×H×W×C: see ``base.infer_layout``) or feature vectors (N×F), labels integers 0…K-1.

Sent to a worker process (pickled with its evaluator for every trial), the arrays travel once, as a temporary
``.npz`` in the cache folder named by their digest, removed when the sending process exits; each job then carries
only that file's name.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .base import CHUNK, SPLITS, DataSource, Meta, check_dtype, infer_layout, sample_shape, to_channel_first


def as_numpy(a: Any, what: str) -> np.ndarray:
    """``a`` (a numpy array, a torch tensor, a list) as a numpy array, or a one-line error naming its type (never
    printing a whole tensor)."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{what} must be an array or a tensor, got a {type(a).__name__} ({why})") from None
    if arr.dtype == object or arr.ndim == 0:
        raise DataError(f"{what} must be an array or a tensor of numbers, got a {type(a).__name__}")
    return arr


_SPILLED: list[Path] = []


def _remove_spilled() -> None:
    for p in _SPILLED:
        p.unlink(missing_ok=True)


def spill_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nasforge" / "spill"


class ArraySource(DataSource):
    """Arrays or tensors in memory. ``layout`` overrides the guess of the images' layout (``NCHW`` or ``NHWC``)."""

    def __init__(
        self,
        x_train: Any,
        y_train: Any,
        x_val: Any = None,
        y_val: Any = None,
        x_test: Any = None,
        y_test: Any = None,
        *,
        class_names: Sequence[str] | None = None,
        name: str = "arrays",
        layout: str | None = None,
    ) -> None:
        self._given = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
        self.class_names = tuple(str(c) for c in class_names) if class_names is not None else None
        self.name = name
        self.layout = layout
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._meta: Meta | None = None
        self._digest: str | None = None
        self._spilled: Path | None = None

    # --- reading ------------------------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._data is None:
            if self._spilled is not None:
                self._data = _read_spilled(self._spilled)
            else:
                self._data = self._convert(self._given)
        return self._data

    def _convert(self, given: dict[str, tuple[Any, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for split, (x, y) in given.items():
            if x is None and y is None:
                continue
            if x is None or y is None:
                have, lack = (f"x_{split}", f"y_{split}") if y is None else (f"y_{split}", f"x_{split}")
                raise DataError(f"data set {self.name!r}: {have} is given without {lack}; give both or neither")
            xa, ya = as_numpy(x, f"x_{split}"), as_numpy(y, f"y_{split}")
            if ya.ndim != 1:
                raise DataError(f"y_{split} must hold one integer label per sample (shape N), got shape {ya.shape}")
            if len(xa) != len(ya):
                raise DataError(f"data set {self.name!r}: x_{split} has {len(xa)} samples but y_{split} has {len(ya)} "
                                "labels; they must be equally long")  # fmt: skip
            out[split] = (xa, ya)
        if "train" not in out:
            raise DataError(f"data set {self.name!r} needs training data (x_train, y_train)")
        return out

    def meta(self) -> Meta:
        if self._meta is None:
            data = self._arrays()
            x = data["train"][0]
            layout = infer_layout(x.shape, self.layout, f"x_train of {self.name!r}")
            shape = sample_shape(x.shape, layout)
            for split, (xs, _) in data.items():
                if split != "train" and sample_shape((0, *xs.shape[1:]), layout) != shape:
                    raise DataError(f"data set {self.name!r}: x_{split} samples have shape {xs.shape[1:]}, x_train's "
                                    f"{x.shape[1:]}; every split must hold samples of one shape")  # fmt: skip
                check_dtype(xs.dtype, f"x_{split} of {self.name!r}")
            self._meta = Meta(
                self.name, shape, layout, check_dtype(x.dtype, f"x_train of {self.name!r}"),
                {s: len(data[s][1]) for s in SPLITS if s in data}, self.class_names,
            )  # fmt: skip
        return self._meta

    def labels(self, split: str) -> np.ndarray:
        return self._arrays()[split][1]

    def rows(self, split: str, index: np.ndarray) -> Iterator[np.ndarray]:
        x = self._arrays()[split][0]
        layout = self.meta().layout
        for i in range(0, len(index), CHUNK):
            yield to_channel_first(x[index[i : i + CHUNK]], layout)

    def spec(self) -> dict[str, Any]:
        """The arrays' identity: their name, sizes and a digest of their contents (so that a resumed study notices
        other data)."""
        return {"kind": "arrays", "name": self.name, "sizes": self.meta().sizes, "digest": self.digest()}

    def digest(self) -> str:
        if self._digest is None:
            h = hashlib.blake2b(digest_size=10)
            for split, (x, y) in self._arrays().items():
                for a in (x, y):
                    h.update(f"{split}{a.shape}{a.dtype}".encode())
                    h.update(np.ascontiguousarray(a).data)
            h.update(repr(self.class_names).encode())
            self._digest = h.hexdigest()
        return self._digest

    # --- travelling to a worker process -------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        if self._spilled is None:
            self._spilled = self._spill()
        state = {k: v for k, v in self.__dict__.items() if k not in ("_given", "_data")}
        return {**state, "_given": None, "_data": None}

    def _spill(self) -> Path:
        path = spill_dir() / f"{self.digest()}.npz"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {f"{a}_{split}": v for split, (x, y) in self._arrays().items() for a, v in (("x", x), ("y", y))}
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)  # atomic: a worker never sees half a file
            if not _SPILLED:
                atexit.register(_remove_spilled)
            _SPILLED.append(path)
        return path


def _read_spilled(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        with np.load(path) as z:
            return {s: (z[f"x_{s}"], z[f"y_{s}"]) for s in SPLITS if f"x_{s}" in z.files}
    except OSError as e:
        raise DataError(f"the in-memory data sent to this worker ({path}) cannot be read: {e}") from None


class TorchSource(ArraySource):
    """torch ``Dataset``s (``train``, optional ``val`` and ``test``) whose items are ``(sample, label)``. They are read
    once, item by item, into memory (so they must fit there); ``class_names`` default to the training set's
    ``classes`` attribute when it has one (torchvision's convention)."""

    def __init__(self, train: Any, val: Any = None, test: Any = None, *, class_names: Sequence[str] | None = None,
                 name: str = "dataset", layout: str | None = None) -> None:  # fmt: skip
        names = class_names if class_names is not None else getattr(train, "classes", None)
        super().__init__(None, None, class_names=names, name=name, layout=layout)
        self._datasets = {"train": train, "val": val, "test": test}

    def _convert(self, given: dict[str, tuple[Any, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return super()._convert({s: _materialise(ds, s) for s, ds in self._datasets.items()})

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, "_datasets": None}


def _materialise(ds: Any, split: str) -> tuple[Any, Any]:
    if ds is None:
        return None, None
    if not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__"):
        raise DataError(f"the {split} data must be a torch Dataset (with __len__ and __getitem__), got a "
                        f"{type(ds).__name__}")  # fmt: skip
    xs, ys = [], []
    for i in range(len(ds)):
        item = ds[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(f"item {i} of the {split} Dataset is a {type(item).__name__}, not a (sample, label) pair")
        xs.append(as_numpy(item[0], f"sample {i} of the {split} Dataset"))
        ys.append(_label(item[1], i, split))
    if not xs:
        raise DataError(f"the {split} Dataset is empty")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise DataError(f"the {split} Dataset's samples differ in shape ({', '.join(map(str, sorted(shapes)[:3]))}); "
                        "give samples of one shape (resize or crop them in the Dataset)")  # fmt: skip
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def _label(v: Any, i: int, split: str) -> int:
    try:
        f = float(v)  # an int, a numpy integer or a one-element tensor
    except (TypeError, ValueError):
        raise DataError(f"label {i} of the {split} Dataset is a {type(v).__name__}, not a class number") from None
    if not f.is_integer():
        raise DataError(f"label {i} of the {split} Dataset is {f}, not a whole class number")
    return int(f)
