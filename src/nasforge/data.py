"""Data sets held as tensors in memory, found through a data directory.

Where a data set ``<name>`` is looked for, in order: the ``data_dir`` option, ``$NASFORGE_DATA``, the cache
(``$XDG_CACHE_HOME/nasforge/data`` or ``~/.cache/nasforge/data``), then the standard system location
``/usr/share/datasets``; in each the folder ``<name>/``. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, UnknownNameError

SYSTEM_DIR = Path("/usr/share/datasets")

# IDX element types (the third byte of the magic number)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

IMAGE_SETS = {
    "mnist": {"classes": 10},
    "fashion-mnist": {"classes": 10},
}


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


def _idx_file(path: str | os.PathLike) -> Path:
    """``path``, or its gzip-compressed (or raw) twin when only that exists."""
    p = Path(path)
    if not p.exists():
        alt = p.with_name(p.name[:-3]) if p.name.endswith(".gz") else p.with_name(p.name + ".gz")
        if not alt.exists():
            raise DataError(f"IDX file {p} not found (nor {alt.name})")
        p = alt
    return p


def _read(p: Path, size: int = -1) -> bytes:
    opener = gzip.open if p.name.endswith(".gz") else open
    try:
        with opener(p, "rb") as f:
            return f.read(size)
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {p}: {e}") from None


def _idx_header(raw: bytes, p: Path) -> tuple[np.dtype, tuple[int, ...], int]:
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
    p = _idx_file(path)
    return _idx_header(_read(p, 4 + 4 * 255), p)[1]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw). ``path`` may name either form; the other is tried too."""
    p = _idx_file(path)
    raw = _read(p)
    dtype, shape, off = _idx_header(raw, p)
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - off != need:
        raise DataError(f"{p} is truncated or corrupt: expected {need} data bytes, found {len(raw) - off}")
    return np.frombuffer(raw, dtype=dtype, offset=off).reshape(shape)


def dataset_task(name: str, data_dir: str | os.PathLike | None = None):
    """The ``Task`` of an image data set from its metadata (the IDX header of its training images), without loading
    it: MNIST gives 1×28×28 inputs and 10 classes."""
    from .task import Task

    if name not in IMAGE_SETS:
        raise UnknownNameError(f"unknown data set {name!r}; known: {', '.join(sorted(IMAGE_SETS))}")
    shape = idx_shape(find_dataset(name, data_dir) / "train-images-idx3-ubyte.gz")
    if len(shape) != 3:
        raise DataError(f"data set {name!r}: training images should be N×H×W, the IDX header says {shape}")
    return Task((1, *shape[1:]), IMAGE_SETS[name]["classes"], name)


@dataclass
class ImageData:
    """A classification data set as float tensors (N, C, H, W), normalised with the training split's statistics.

    The validation split is held out of the training files (never the test set): select on ``val``, report ``test``.
    """

    name: str
    x_train: object
    y_train: object
    x_val: object
    y_val: object
    x_test: object
    y_test: object
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def task(self):
        from .task import Task

        return Task(self.input_shape, self.num_classes, self.name)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def load_image_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_size: int = 5000,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Load MNIST or Fashion-MNIST (IDX files) as tensors.

    ``val_size`` images are held out of the training files by a seeded permutation; ``train_subset`` and
    ``test_subset`` keep only the first N of the (shuffled) training remainder and of the test set, for quick runs.
    """
    import torch

    if name not in IMAGE_SETS:
        raise UnknownNameError(f"unknown data set {name!r}; known: {', '.join(sorted(IMAGE_SETS))}")
    root = find_dataset(name, data_dir)
    xtr = read_idx(root / "train-images-idx3-ubyte.gz")
    ytr = read_idx(root / "train-labels-idx1-ubyte.gz")
    xte = read_idx(root / "t10k-images-idx3-ubyte.gz")
    yte = read_idx(root / "t10k-labels-idx1-ubyte.gz")
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(f"{root}: image and label files disagree in length")
    if not 0 <= val_size < len(xtr):
        raise DataError(f"val_size must be between 0 and {len(xtr) - 1}, got {val_size}")
    perm = np.random.default_rng(seed).permutation(len(xtr))
    val_idx, tr_idx = perm[:val_size], perm[val_size:]
    if train_subset:
        tr_idx = tr_idx[:train_subset]
    if test_subset:
        xte, yte = xte[:test_subset], yte[:test_subset]
    x = xtr[tr_idx].astype(np.float32) / 255.0
    mean, std = float(x.mean()), float(x.std())

    def prep(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a.astype(np.float32) / 255.0)
        return ((t - mean) / std).unsqueeze(1).contiguous()

    def lab(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return ImageData(
        name,
        prep(xtr[tr_idx]),
        lab(ytr[tr_idx]),
        prep(xtr[val_idx]),
        lab(ytr[val_idx]),
        prep(xte),
        lab(yte),
        IMAGE_SETS[name]["classes"],
    )
