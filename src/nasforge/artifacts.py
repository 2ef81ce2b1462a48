"""The artifact store: a trial's files (weights), found by study and trial number, or by arch key. No torch here.

One API over two backends:

- ``FolderStore(root)``: ``<root>/<study>/<number>-<arch key>/<name>``, written atomically. Any process that sees the
  folder (a worker, another machine on a shared file system, ``best --export`` run from anywhere) finds the files.
- ``DatabaseStore(storage)``: blobs in the study's own database (small models; a server database reaches every
  worker without a shared file system; a ``memory://`` or in-memory SQLite study keeps them in memory).

A study records where its artifacts go (``Study.run(..., artifacts=...)``, ``--artifacts``) as ``{"kind": "folder",
"root": ...}`` or ``{"kind": "database"}``. A folder root is recorded relative to the database file when it lies
beside or below it, else absolute; never relative to the working directory. Without a setting, a study in a SQLite
file keeps its artifacts in the folder ``<db stem>_artifacts`` beside it and any other study in its database.

Evaluators see one trial's view, ``TrialArtifacts`` (``ctx.artifacts``): ``put``/``get`` bytes, ``save``/``load``
torch objects, and ``parent(arch_key)`` to read another trial of the same study (a parent's weights for Net2Net).
Sent to a worker process that cannot reach the store (an in-memory database), it keeps what the evaluator saves and
hands it back with the outcome, and the driver writes it.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import NasforgeError, StorageError

if TYPE_CHECKING:
    from .storage import Storage

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_ARCH_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # Arch.key is hexadecimal; never a path or a pattern


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise NasforgeError(f"artifact name {name!r} must be a plain file name (letters, digits, '.', '-', '_')")
    return name


@dataclass(frozen=True)
class ArtifactKey:
    """Which trial an artifact belongs to: study name, trial number and the trial's arch key."""

    study: str
    number: int
    arch_key: str


class ArtifactStore(ABC):
    """Contract: ``put`` replaces what a trial stored under a name (a trial run again writes again); ``get`` returns
    the bytes or None; ``find(study, arch_key)`` returns the key of the trial of that arch in that study, if it saved
    anything; ``spec(storage)`` is the JSON the study records to reopen the store with ``open_store``."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def put(self, key: ArtifactKey, name: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: ArtifactKey, name: str) -> bytes | None: ...

    @abstractmethod
    def names(self, key: ArtifactKey) -> list[str]: ...

    @abstractmethod
    def find(self, study: str, arch_key: str) -> ArtifactKey | None: ...

    @abstractmethod
    def spec(self, storage: Storage) -> dict[str, Any]: ...

    @property
    def shareable(self) -> bool:
        """Whether a worker process can open this store itself (else its artifacts travel back with the outcome)."""
        return True

    def read(self, key: ArtifactKey, name: str) -> bytes:
        """``get``, or a one-line error saying what is missing and where it was looked for."""
        data = self.get(key, check_name(name))
        if data is None:
            raise NasforgeError(
                f"trial {key.number} of study {key.study!r} has no saved {name!r} in {self}; only trials whose "
                "evaluator saves weights (the 'train' evaluator) have them"
            )
        return data


class FolderStore(ArtifactStore):
    kind = "folder"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"the folder {self.root}"

    def _dir(self, key: ArtifactKey) -> Path:
        return self._study_dir(key.study) / f"{_number(key.number)}-{_arch_key(key.arch_key)}"

    def _study_dir(self, study: str) -> Path:
        """The study's folder, which never lies outside the root: a study name is a plain name (no separator, no
        '..', not absolute), and the joined path is checked again, lexically (a symlink the user made is honoured)."""
        from .storage import check_study_name

        check_study_name(study)
        d = self.root / study
        root = os.path.normpath(os.path.abspath(self.root))
        if os.path.dirname(os.path.normpath(os.path.abspath(d))) != root:
            raise StorageError(f"study name {study!r} would leave the artifact folder {self.root}; use a plain name")
        return d

    def put(self, key: ArtifactKey, name: str, data: bytes) -> None:
        d = self._dir(key)
        d.mkdir(parents=True, exist_ok=True)
        # write then rename: a reader (or a worker killed mid-write) never sees half a file
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{check_name(name)}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, d / name)

    def get(self, key: ArtifactKey, name: str) -> bytes | None:
        check_name(name)
        legacy = self._study_dir(key.study) / str(_number(key.number)) / name  # the layout before schema 2
        for p in (self._dir(key) / name, legacy):
            if p.is_file():
                return p.read_bytes()
        return None

    def names(self, key: ArtifactKey) -> list[str]:
        d = self._dir(key)
        return sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []

    def find(self, study: str, arch_key: str) -> ArtifactKey | None:
        for d in sorted(self._study_dir(study).glob(f"*-{_arch_key(arch_key)}")):
            number = d.name.split("-", 1)[0]
            if number.isdigit():
                return ArtifactKey(study, int(number), arch_key)
        return None

    def spec(self, storage: Storage) -> dict[str, Any]:
        return {"kind": "folder", "root": _record_root(self.root, storage)}


def _number(n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise NasforgeError(f"trial number {n!r} must be a non-negative integer")
    return n


def _arch_key(k: object) -> str:
    if not isinstance(k, str) or not _ARCH_KEY.match(k):
        raise NasforgeError(f"arch key {k!r} must be an arch key (letters and digits, as Arch.key)")
    return k


class DatabaseStore(ArtifactStore):
    kind = "database"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._ids: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"the database {self.storage.url}"

    def __getstate__(self) -> dict[str, Any]:
        return {"storage": self.storage, "_ids": {}}

    @property
    def shareable(self) -> bool:
        return self.storage.shareable

    def _id(self, study: str) -> int:
        if study not in self._ids:
            self._ids[study] = self.storage.study_id(study, create=False)
        return self._ids[study]

    def put(self, key: ArtifactKey, name: str, data: bytes) -> None:
        self.storage.put_blob(self._id(key.study), key.number, key.arch_key, check_name(name), data)

    def get(self, key: ArtifactKey, name: str) -> bytes | None:
        return self.storage.get_blob(self._id(key.study), key.number, name)

    def names(self, key: ArtifactKey) -> list[str]:
        return self.storage.blob_names(self._id(key.study), key.number)

    def find(self, study: str, arch_key: str) -> ArtifactKey | None:
        number = self.storage.blob_number(self._id(study), arch_key)
        return None if number is None else ArtifactKey(study, number, arch_key)

    def spec(self, storage: Storage) -> dict[str, Any]:
        return {"kind": "database"}


# --- where a study's artifacts go ---------------------------------------------------------------------------------
def _record_root(root: Path, storage: Storage) -> str:
    """A folder as the study records it: relative to the database file's folder when inside it, else absolute."""
    root = Path(root).resolve()
    db = storage.db_path
    if db is not None and root.is_relative_to(db.parent):
        return root.relative_to(db.parent).as_posix() or "."
    return str(root)


def store_spec(setting: str | os.PathLike | Mapping[str, Any] | None, storage: Storage) -> dict[str, Any]:
    """What a study records for the user's ``artifacts`` setting: ``None`` (the default), ``"database"``, or a
    folder (a path as the user typed it: relative to the working directory *now*, recorded against the database)."""
    if isinstance(setting, Mapping):
        return dict(setting)
    if setting is None:
        db = storage.db_path
        if db is None:
            return {"kind": "database"}
        return {"kind": "folder", "root": f"{db.stem}_artifacts"}
    if str(setting) in ("database", "db"):
        return {"kind": "database"}
    return {"kind": "folder", "root": _record_root(Path(setting), storage)}


def open_store(spec: Mapping[str, Any], storage: Storage) -> ArtifactStore:
    """The store a recorded spec names, for a study in ``storage``."""
    kind = spec.get("kind")
    if kind == "database":
        return DatabaseStore(storage)
    if kind == "folder" and isinstance(spec.get("root"), str):
        root = Path(spec["root"])
        if not root.is_absolute():
            db = storage.db_path
            if db is None:
                raise StorageError(
                    f"artifact folder {spec['root']!r} is recorded relative to a database file, and {storage.url} is "
                    "not a file; open the study from its database file"
                )
            root = db.parent / root
        return FolderStore(root)
    raise StorageError(f"unknown artifact store {dict(spec)!r}; expected a folder or 'database'")


class TrialArtifacts:
    """One trial's view of the artifact store, handed to its evaluator as ``ctx.artifacts``."""

    def __init__(self, store: ArtifactStore | None, key: ArtifactKey) -> None:
        self.store = store
        self.key = key
        self.saved: list[str] = []
        self.pending: dict[str, bytes] = {}  # kept for the driver when the store is out of this process's reach

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.store is not None and not self.store.shareable:
            state["store"] = None
        return state

    def put(self, name: str, data: bytes) -> None:
        check_name(name)
        if self.store is None:
            self.pending[name] = bytes(data)
        else:
            self.store.put(self.key, name, data)
        if name not in self.saved:
            self.saved.append(name)

    def get(self, name: str) -> bytes:
        if name in self.pending:
            return self.pending[name]
        return self._store().read(self.key, name)

    def parent(self, arch_key: str, name: str = "model.pt", study: str | None = None) -> bytes:
        """``name`` as saved by the trial of ``arch_key`` in this study (or in ``study``, kept in the same store):
        a parent's weights. One-line error if there is none."""
        store = self._store()
        key = store.find(study or self.key.study, arch_key)
        if key is None:
            raise NasforgeError(f"study {study or self.key.study!r} has no saved artifacts for arch {arch_key}")
        return store.read(key, name)

    def save(self, name: str, obj: Any) -> None:
        """``torch.save`` of ``obj`` (a state dict) under ``name``."""
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        self.put(name, buf.getvalue())

    def load(self, name: str, arch_key: str | None = None, study: str | None = None) -> Any:
        """``torch.load`` of ``name`` of this trial, or of the trial of ``arch_key`` (tensors only, on the CPU)."""
        import pickle

        import torch

        data = self.get(name) if arch_key is None else self.parent(arch_key, name, study)
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError) as e:
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NasforgeError(
                f"{name!r} of trial {self.key.number if arch_key is None else arch_key} is not a weights file that "
                f"nasforge loads (tensors only: {why[:160]}); it was not run: train the trial again"
            ) from None

    def _store(self) -> ArtifactStore:
        if self.store is None:
            raise NasforgeError(
                "this worker process cannot reach the study's artifact store (an in-memory database); use a SQLite "
                "file or an --artifacts folder to read other trials' artifacts from workers"
            )
        return self.store
