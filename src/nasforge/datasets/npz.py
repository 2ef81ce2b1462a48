"""An ``.npz`` file: arrays ``x_train``, ``y_train``, optional ``x_val``/``y_val`` and ``x_test``/``y_test``, optional
``class_names`` (strings, in label order). Written with ``numpy.savez`` or ``numpy.savez_compressed``.

What the file holds is learned from the headers of its ``.npy`` members (shape and type, a few hundred bytes each),
so that a study learns its task without reading the samples; a pass over the samples streams each member in chunks,
compressed or not. Pickled objects inside the file are refused (``allow_pickle`` is never set).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import DataError
from .base import (
    CHUNK,
    SPLITS,
    DataSource,
    Meta,
    check_dtype,
    infer_layout,
    sample_shape,
    stream_rows,
    to_channel_first,
)


class NpzSource(DataSource):
    def __init__(self, path: str | os.PathLike, *, layout: str | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        self.layout = layout
        self.name = name or self.path.stem
        self._meta: Meta | None = None
        self._headers: dict[str, tuple[tuple[int, ...], bool, np.dtype]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_headers": None, "_meta": None}  # reread where it lands

    # --- the file -----------------------------------------------------------------------------------------------
    def _zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise DataError(f"data file {self.path} not found") from None
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{self.path} is not an .npz file (a zip of .npy arrays): {e}") from None

    def headers(self) -> dict[str, tuple[tuple[int, ...], bool, np.dtype]]:
        """(shape, Fortran order, dtype) of every array in the file, from the member headers alone."""
        if self._headers is None:
            out = {}
            with self._zip() as zf:
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    with zf.open(info) as f:
                        out[info.filename[:-4]] = _header(f, f"{self.path}:{info.filename}")
            self._headers = out
        return self._headers

    def _array(self, key: str) -> np.ndarray:
        """One (small) member in full: labels, class names."""
        with self._zip() as zf, zf.open(f"{key}.npy") as f:
            try:
                return np.lib.format.read_array(f, allow_pickle=False)
            except ValueError as e:
                raise DataError(f"{self.path}: {key} cannot be read without unpickling Python objects ({e}); "
                                "store plain numeric or string arrays") from None  # fmt: skip

    # --- DataSource ---------------------------------------------------------------------------------------------
    def meta(self) -> Meta:
        if self._meta is None:
            h = self.headers()
            have = ", ".join(sorted(h)) or "no arrays"
            if "x_train" not in h or "y_train" not in h:
                raise DataError(f"{self.path} needs arrays x_train and y_train (and optionally x_val, y_val, x_test, "
                                f"y_test, class_names); it holds {have}")  # fmt: skip
            for s in SPLITS:
                if (f"x_{s}" in h) != (f"y_{s}" in h):
                    one = f"x_{s}" if f"x_{s}" in h else f"y_{s}"
                    raise DataError(f"{self.path} has {one} without its partner; give x_{s} and y_{s} together")
            xshape = h["x_train"][0]
            layout = infer_layout(xshape, self.layout, str(self.path))
            shape = sample_shape(xshape, layout)
            sizes = {}
            for s in SPLITS:
                if f"x_{s}" not in h:
                    continue
                xs, ys = h[f"x_{s}"][0], h[f"y_{s}"][0]
                check_dtype(h[f"x_{s}"][2], f"{self.path}: x_{s}")
                if len(ys) != 1:
                    raise DataError(f"{self.path}: y_{s} must hold one label per sample (shape N), got shape {ys}")
                if xs[0] != ys[0]:
                    raise DataError(f"{self.path}: x_{s} has {xs[0]} samples but y_{s} has {ys[0]} labels; they "
                                    "must be equally long")  # fmt: skip
                if len(xs) != len(xshape) or sample_shape(xs, layout) != shape:
                    raise DataError(f"{self.path}: x_{s} samples have shape {xs[1:]}, x_train's {xshape[1:]}; every "
                                    "split must hold samples of one shape")  # fmt: skip
                sizes[s] = xs[0]
            names = None
            if "class_names" in h:
                names = tuple(str(c) for c in self._array("class_names").reshape(-1))
            self._meta = Meta(self.name, shape, layout, np.dtype(h["x_train"][2]).name, sizes, names)
        return self._meta

    def labels(self, split: str) -> np.ndarray:
        return self._array(f"y_{split}")

    def rows(self, split: str, index: np.ndarray) -> Iterator[np.ndarray]:
        shape, fortran, dtype = self.headers()[f"x_{split}"]
        layout = self.meta().layout
        if fortran:  # column-major data cannot be streamed by rows: read it whole (rare: numpy writes C order)
            x = self._array(f"x_{split}")
            for i in range(0, len(index), CHUNK):
                yield to_channel_first(np.ascontiguousarray(x[index[i : i + CHUNK]]), layout)
            return
        with self._zip() as zf, zf.open(f"x_{split}.npy") as f:
            _header(f, str(self.path))
            for rows in stream_rows(f, shape, dtype, index, f"{self.path}: x_{split}"):
                yield to_channel_first(rows, layout)

    def spec(self) -> dict[str, Any]:
        try:
            size = self.path.stat().st_size
        except OSError:
            raise DataError(f"data file {self.path} not found") from None
        return {"kind": "npz", "path": str(self.path.resolve()), "bytes": size}


def _header(f: IO[bytes], what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{what} is not a readable .npy array: {e}") from None
    if dtype.hasobject:
        raise DataError(f"{what} holds Python objects (it would need unpickling); store plain numeric arrays")
    return tuple(int(s) for s in shape), bool(fortran), dtype
