"""The named image sets in IDX files (MNIST, Fashion-MNIST), found through the data directory.

Where a data set ``<name>`` is looked for, in order: the ``data_dir`` option, ``$NASFORGE_DATA``, the cache
(``$XDG_CACHE_HOME/nasforge/data`` or ``~/.cache/nasforge/data``), then the standard system location
``/usr/share/datasets``; in each the folder ``<name>/`` with the four IDX files (gzip-compressed or raw). Nothing is
ever downloaded.

IDX format: big-endian; a magic number whose third byte is the element type and fourth byte the number of
dimensions, then one 4-byte size per dimension, then the data. A data set's task comes from the headers alone.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import DataError, UnknownNameError
from .base import DataSource, Meta, stream_rows

SYSTEM_DIR = Path("/usr/share/datasets")

# IDX element types (the third byte of the magic number)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")  # fmt: skip
IMAGE_SETS = {
    "mnist": {"classes": 10, "class_names": tuple(str(i) for i in range(10))},
    "fashion-mnist": {"classes": 10, "class_names": FASHION_CLASSES},
}
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}  # fmt: skip


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for data sets, in order."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("NASFORGE_DATA"):
        dirs.append(Path(os.environ["NASFORGE_DATA"]))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nasforge" / "data"
    dirs += [cache, SYSTEM_DIR]
    return dirs


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding data set ``name``; a ``DataError`` naming every place looked at if there is none."""
    looked = []
    for d in search_dirs(data_dir):
        p = d / name
        if p.is_dir():
            return p
        looked.append(str(p))
    raise DataError(
        f"data set {name!r} not found; looked in {', '.join(looked)}. Put its files in one of these folders "
        "or point --data-dir / NASFORGE_DATA at the folder that holds it"
    )


def idx_file(path: str | os.PathLike) -> Path:
    """``path``, or its gzip-compressed (or raw) twin when only that exists."""
    p = Path(path)
    if not p.exists():
        alt = p.with_name(p.name[:-3]) if p.name.endswith(".gz") else p.with_name(p.name + ".gz")
        if not alt.exists():
            raise DataError(f"IDX file {p} not found (nor {alt.name})")
        p = alt
    return p


def _open(p: Path) -> IO[bytes]:
    return gzip.open(p, "rb") if p.name.endswith(".gz") else open(p, "rb")  # the caller closes it


def _read(p: Path, size: int = -1) -> bytes:
    try:
        with _open(p) as f:
            return f.read(size)
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {p}: {e}") from None


def idx_header(raw: bytes, p: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """(element type, shape, offset of the data) from the first bytes of an IDX file."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{p} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{p} is truncated: its header is incomplete")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.dtype(_IDX_DTYPES[raw[2]]), shape, 4 + 4 * ndim


def idx_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape an IDX file declares, read from its header only (a few bytes, not the data)."""
    p = idx_file(path)
    return idx_header(_read(p, 4 + 4 * 255), p)[1]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw). ``path`` may name either form; the other is tried too."""
    p = idx_file(path)
    raw = _read(p)
    dtype, shape, off = idx_header(raw, p)
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - off != need:
        raise DataError(f"{p} is truncated or corrupt: expected {need} data bytes, found {len(raw) - off}")
    return np.frombuffer(raw, dtype=dtype, offset=off).reshape(shape)


class IdxSource(DataSource):
    """MNIST or Fashion-MNIST: ``train`` (60,000) and ``test`` (10,000) 1×28×28 uint8 images, 10 named classes."""

    def __init__(self, name: str, data_dir: str | os.PathLike | None = None) -> None:
        if name not in IMAGE_SETS:
            raise UnknownNameError(f"unknown data set {name!r}; known: {', '.join(sorted(IMAGE_SETS))}")
        self.name = name
        self.data_dir = str(data_dir) if data_dir else None
        self._meta: Meta | None = None

    def _files(self, split: str) -> tuple[Path, Path]:
        root = find_dataset(self.name, self.data_dir)
        images, labels = FILES[split]
        return idx_file(root / images), idx_file(root / labels)

    def meta(self) -> Meta:
        if self._meta is None:
            sizes = {}
            shape: tuple[int, ...] = ()
            for split in FILES:
                xp, yp = self._files(split)
                xs, ys = idx_shape(xp), idx_shape(yp)
                if len(xs) != 3:
                    raise DataError(f"data set {self.name!r}: {xp.name} should hold N×H×W images, its header says "
                                    f"{xs}")  # fmt: skip
                if ys[:1] != xs[:1]:
                    raise DataError(f"data set {self.name!r}: {xp.name} has {xs[0]} images but {yp.name} "
                                    f"{ys[0] if ys else 0} labels")  # fmt: skip
                shape = shape or (1, *xs[1:])
                sizes[split] = xs[0]
            self._meta = Meta(self.name, shape, "NHW", "uint8", sizes, IMAGE_SETS[self.name]["class_names"])
        return self._meta

    def labels(self, split: str) -> np.ndarray:
        return read_idx(self._files(split)[1]).astype(np.int64)

    def rows(self, split: str, index: np.ndarray) -> Iterator[np.ndarray]:
        p = self._files(split)[0]
        try:
            with _open(p) as f:
                dtype, shape, off = idx_header(f.read(16), p)
                for rows in stream_rows(f, shape, dtype, index, str(p)):
                    yield rows[:, None]
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read {p}: {e}") from None

    def spec(self) -> str:
        return self.name  # the data set's name: it is found through the data directory wherever the study reopens
