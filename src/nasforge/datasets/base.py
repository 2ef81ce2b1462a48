"""``DataSource``: where a classification data set's samples come from, and what can be learned without loading them.

Every form a user brings (arrays or tensors in memory, a torch ``Dataset``, an ``.npz`` file, an image folder, the
IDX files of MNIST and Fashion-MNIST) is a ``DataSource`` with one small interface, so that splitting, checking,
normalising and training are written once (``prepare.py``):

- ``meta()`` is cheap: array headers, a folder listing plus one image, an IDX header. It never reads the samples.
- ``labels(split)`` reads one split's labels (small: one integer per sample).
- ``rows(split, index)`` yields the raw samples at ``index`` (sorted) in chunks, channel-first (N, C, H, W) or
  (N, F), in the stored element type: streamed, so that a pass over the data keeps one chunk in memory.
- ``spec()`` is JSON for the study's record; ``open_source(spec)`` (``__init__.py``) reopens a file or a named set.

Splits are named ``train``, ``val`` and ``test``; a source has ``train`` and optionally the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ..errors import DataError

SPLITS = ("train", "val", "test")
CHUNK = 4096  # samples per chunk of a streamed pass: a few MB for small images


@dataclass(frozen=True)
class Meta:
    """What a source says about itself without reading its samples.

    ``input_shape`` is one sample as the network sees it (channel first: C×H×W, or F for feature vectors);
    ``layout`` is how the source stores a batch (``NCHW``, ``NHWC``, ``NHW``: one channel, ``NF``: features);
    ``raw_dtype`` the stored element type (``uint8`` for most images); ``sizes`` the number of samples per split;
    ``class_names`` the names of the classes when the source knows them (folder names, an ``.npz``'s
    ``class_names``), in label order.
    """

    name: str
    input_shape: tuple[int, ...]
    layout: str
    raw_dtype: str
    sizes: dict[str, int] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s in self.sizes)


class DataSource(ABC):
    """A classification data set. Constructors only store (a path, arrays); every method may read.

    Contract: ``meta()`` reads no samples; ``labels(split)`` returns int64 labels of one split (not yet checked:
    ``prepare.check_labels`` does that); ``rows(split, index)`` yields, for sorted unique ``index``, chunks of raw
    samples in channel-first layout whose concatenation is the samples at ``index``, in that order; ``spec()`` is
    JSON that identifies the data in a study's record (a changed file gives a changed spec where that is cheap to
    see). Errors a user can cause are one-line ``DataError``s naming the file.
    """

    name: str = ""

    @abstractmethod
    def meta(self) -> Meta: ...

    @abstractmethod
    def labels(self, split: str) -> np.ndarray: ...

    @abstractmethod
    def rows(self, split: str, index: np.ndarray) -> Iterator[np.ndarray]: ...

    @abstractmethod
    def spec(self) -> str | dict[str, Any]: ...

    def load(self, split: str, index: np.ndarray | None = None) -> np.ndarray:
        """The raw samples of ``split`` at ``index`` (all when None), channel first, as one array."""
        n = self.meta().sizes[split]
        idx = np.arange(n) if index is None else np.asarray(index)
        order = np.argsort(idx, kind="stable")
        parts = list(self.rows(split, idx[order]))
        shape = (0, *self.meta().input_shape)
        out = np.concatenate(parts) if parts else np.zeros(shape, dtype=self.meta().raw_dtype)
        if index is None or np.all(order[:-1] < order[1:]):
            return out
        back = np.empty_like(out)
        back[order] = out  # back into the caller's order
        return back

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


# --- layouts: how a stored batch maps to channel-first samples -------------------------------------------------------
LAYOUTS = ("NCHW", "NHWC", "NHW", "NF")
_CHANNELS = (1, 3, 4)  # grayscale, RGB, RGBA: the channel counts a channel-last image plausibly has


def infer_layout(shape: Sequence[int], layout: str | None, what: str) -> str:
    """The layout of a stored batch of ``shape``: ``layout`` if given (checked), else from the number of dimensions:
    2 → NF, 3 → NHW, 4 → NCHW unless only the last axis looks like channels (1, 3 or 4 of them), then NHWC."""
    nd = len(shape)
    if layout is not None:
        want = {"NCHW": 4, "NHWC": 4, "NHW": 3, "NF": 2}.get(str(layout).upper())
        if want is None:
            raise DataError(f"{what}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if want != nd:
            raise DataError(f"{what}: layout {layout} needs {want}-dimensional data, got shape {tuple(shape)}")
        return str(layout).upper()
    if nd == 2:
        return "NF"
    if nd == 3:
        return "NHW"
    if nd == 4:
        return "NHWC" if shape[1] not in _CHANNELS and shape[3] in _CHANNELS else "NCHW"
    raise DataError(
        f"{what}: samples must be images (N×H×W, N×C×H×W or N×H×W×C) or feature vectors (N×F), got shape "
        f"{tuple(shape)}"
    )


def sample_shape(shape: Sequence[int], layout: str) -> tuple[int, ...]:
    """One sample's channel-first shape for a stored batch ``shape`` in ``layout``."""
    s = tuple(int(v) for v in shape)
    return (s[3], s[1], s[2]) if layout == "NHWC" else (1, *s[1:]) if layout == "NHW" else s[1:]


def to_channel_first(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHWC":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if layout == "NHW":
        return x[:, None]
    return x


def check_dtype(dtype: np.dtype, what: str) -> str:
    """The stored element type as a name, or a one-line error for one that is not a number."""
    dt = np.dtype(dtype)
    if dt.kind not in "buif":
        raise DataError(f"{what}: samples must be numbers (bool, integer or float), got dtype {dt}")
    return dt.name


def stream_rows(
    f: IO[bytes], shape: Sequence[int], dtype: np.dtype, index: np.ndarray, what: str
) -> Iterator[np.ndarray]:
    """The rows at sorted ``index`` of a C-ordered array of ``shape`` whose data ``f`` is positioned at, read
    sequentially a window of ``CHUNK`` rows at a time (a compressed stream cannot seek), yielding the wanted rows of
    each window."""
    n_rows = int(shape[0])
    row = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    start = pos = 0  # the first row of the current window; the next entry of index to deliver
    while pos < len(index):
        n = min(CHUNK, n_rows - start)
        if n <= 0:
            raise IndexError(f"row {index[pos]} asked of {what}, which has {n_rows}")
        buf = f.read(n * row)
        if len(buf) != n * row:
            raise DataError(f"{what} is truncated: it ends in row {start + len(buf) // max(row, 1)} of {n_rows}")
        end = pos + int(np.searchsorted(index[pos:], start + n))
        if end > pos:
            win = np.frombuffer(buf, dtype=dtype).reshape(n, *shape[1:])
            yield win[index[pos:end] - start]
        pos, start = end, start + n
