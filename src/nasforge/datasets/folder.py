"""An image folder: one subfolder per class (its name is the class name), images read through Pillow.

    root/cat/001.png  root/dog/002.jpg  ...                      all training data
    root/train/cat/...  root/val/cat/...  root/test/cat/...        with its own validation and test splits

Classes are the training split's subfolders in sorted order; a ``val`` or ``test`` class must also be a training
class. Images are PNG, JPEG, BMP, GIF, TIFF or WebP files (other files are ignored), all of one size; they are read
as 8-bit grayscale when the first training image is grayscale, else as 8-bit RGB (an alpha channel is dropped).
What the folder holds is learned from its listing and one image; a pass over the samples decodes them in chunks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .base import CHUNK, SPLITS, DataSource, Meta

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_GRAY = {"1", "L", "LA", "I", "I;16", "F"}


def _subdirs(p: Path) -> list[str]:
    with os.scandir(p) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _images(p: Path) -> list[str]:
    with os.scandir(p) as it:
        return sorted(e.name for e in it if e.is_file() and os.path.splitext(e.name)[1].lower() in EXTENSIONS)


class FolderSource(DataSource):
    def __init__(self, path: str | os.PathLike, *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.resolve().name
        self._files: dict[str, tuple[list[Path], np.ndarray]] | None = None
        self._classes: tuple[str, ...] | None = None
        self._meta: Meta | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": None, "_meta": None}  # relisted where it lands

    # --- the listing --------------------------------------------------------------------------------------------
    def _list(self) -> dict[str, tuple[list[Path], np.ndarray]]:
        if self._files is not None:
            return self._files
        root = self.path
        if not root.is_dir():
            raise DataError(f"image folder {root} not found")
        top = _subdirs(root)
        roots = {s: root / s for s in SPLITS if s in top} if "train" in top and set(top) <= set(SPLITS) else {}
        if not roots:
            roots = {"train": root}
        classes = _subdirs(roots["train"])
        if not classes:
            raise DataError(f"image folder {roots['train']} holds no class subfolders; put each class's images in a "
                            "subfolder named after the class (e.g. cat/001.png, dog/002.png)")  # fmt: skip
        files: dict[str, tuple[list[Path], np.ndarray]] = {}
        for split, r in roots.items():
            names = _subdirs(r)
            stray = sorted(set(names) - set(classes))
            if stray:
                raise DataError(f"{r / stray[0]} is a class the training split ({roots['train']}) does not have; "
                                "every class needs training images")  # fmt: skip
            paths: list[Path] = []
            labels: list[int] = []
            for label, c in enumerate(classes):
                if c not in names:
                    continue
                imgs = _images(r / c)
                if not imgs and split == "train":
                    raise DataError(f"class folder {r / c} holds no images (PNG, JPEG, ...); add some or remove it")
                paths += [r / c / f for f in imgs]
                labels += [label] * len(imgs)
            files[split] = (paths, np.asarray(labels, dtype=np.int64))
        self._files, self._classes = files, tuple(classes)
        return files

    # --- DataSource ---------------------------------------------------------------------------------------------
    def meta(self) -> Meta:
        if self._meta is None:
            files = self._list()
            first = files["train"][0][0]
            mode, size = self._probe(first)
            self._mode, self._size, self._first = mode, size, first
            shape = (1 if mode == "L" else 3, size[1], size[0])
            sizes = {s: len(files[s][0]) for s in SPLITS if s in files and len(files[s][0])}
            self._meta = Meta(self.name, shape, "NCHW", "uint8", sizes, self._classes)
        return self._meta

    def _probe(self, path: Path) -> tuple[str, tuple[int, int]]:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return ("L" if im.mode in _GRAY else "RGB"), im.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read image {path}: {e}") from None

    def labels(self, split: str) -> np.ndarray:
        return self._list()[split][1]

    def files(self, split: str) -> list[Path]:
        return self._list()[split][0]

    def rows(self, split: str, index: np.ndarray) -> Iterator[np.ndarray]:
        meta = self.meta()
        paths = self._list()[split][0]
        for i in range(0, len(index), CHUNK):
            part = index[i : i + CHUNK]
            out = np.empty((len(part), *meta.input_shape), dtype=np.uint8)
            for j, k in enumerate(part):
                out[j] = self._read(paths[k])
            yield out

    def _read(self, path: Path) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.size != self._size:
                    w, h = im.size
                    raise DataError(f"image {path} is {w}×{h}, the others {self._size[0]}×{self._size[1]} (as "
                                    f"{self._first.name}); resize the images to one size")  # fmt: skip
                a = np.asarray(im.convert(self._mode))
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read image {path}: {e}") from None
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    def spec(self) -> dict[str, Any]:
        n = sum(len(p) for p, _ in self._list().values())
        return {"kind": "folder", "path": str(self.path.resolve()), "files": n}
