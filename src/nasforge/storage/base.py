"""Experiment storage: the interface every backend honours, and the backend for a URL.

``Storage(url)`` picks the backend registered for the URL's scheme: ``memory://`` is ``MemoryStorage`` (``memory.py``:
plain dictionaries, about a hundred times cheaper per trial than SQL, gone with the process); anything else is
``SqlStorage`` (``sql.py``: SQLite by default, any SQLAlchemy URL for a shared server). Backends register like
families and strategies do (``BACKENDS``), so a new one is a new module in this package.

A storage holds studies: one row per trial (arch, state, metrics, costs, learning curve, timings, error, worker), an
event log of the strategy's asks and tells (so that a resumed study replays its strategy exactly) and blobs (the
database artifact store, for small models). Every change is atomic, so a process killed at any point leaves a
consistent database: at worst a trial stays ``running`` and is run again.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StorageError
from ..registry import Registry
from ..trial import Trial

__all__ = ["BACKENDS", "DEFAULT_URL", "MEMORY_URL", "Holder", "Storage", "Trial", "check_study_name", "worker_name"]

DEFAULT_URL = "sqlite:///nasforge.db"
MEMORY_URL = "memory://"
# storage backends by kind ("memory", "sql"); the package registers every module in it
BACKENDS: Registry[type] = Registry("storage backend")


def check_study_name(name: object) -> str:
    """``name`` if it can name a study (it becomes a folder of the artifact store), else a one-line ``StorageError``."""
    why = None
    if not isinstance(name, str) or not name.strip():
        why = "it is empty"
    elif "/" in name or "\\" in name or os.sep in name:
        why = "it holds a path separator"
    elif ".." in name or name.strip() == ".":
        why = "it holds '..' or is '.'"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        why = "it holds a control character"
    elif len(name) > 200 or name != name.strip():
        why = "it is longer than 200 characters or starts or ends with a space"
    if why:
        raise StorageError(f"study name {name!r} is not allowed ({why}); use letters, digits, '-', '_' and '.'")
    return name


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Holder:
    """Who holds a study's lease (``lease.owner_id()`` of its driver) and until when (``time.time()`` seconds)."""

    owner: str
    expires_at: float


class Storage(ABC):
    """A database of studies. ``Storage(url)`` returns the backend for ``url``; constructors only store the URL.

    Contract: ``record_ask`` and ``record_finish`` are each atomic; ``trials`` returns copies in trial-number order;
    ``events`` returns the asks and tells in the order they were recorded. Blobs are the database artifact store.
    Reading never creates anything (a missing database is a one-line error). A study's lease says which driver runs
    it (``lease.py``): ``take_lease`` is an atomic compare-and-set, and a write given an ``owner`` renews that
    owner's lease in its own transaction, or is refused (``LeaseLost``) when the owner no longer holds it.
    """

    url: str

    def __new__(cls, url: str = DEFAULT_URL) -> Storage:
        if cls is Storage:
            cls = BACKENDS.get("memory" if str(url).startswith(MEMORY_URL) else "sql")
        return super().__new__(cls)

    # --- where ------------------------------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path | None:
        """The database file, as an absolute path (relative artifact roots are recorded against its folder), or None
        for a database that is not a file."""
        return None

    @property
    def shareable(self) -> bool:
        """Whether another process can open this database by its URL (workers writing artifacts into it)."""
        return False

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        pass

    # --- studies ------------------------------------------------------------------------------------------------
    @abstractmethod
    def study_id(self, name: str, create: bool = True) -> int: ...

    @abstractmethod
    def study_names(self) -> list[str]: ...

    @abstractmethod
    def get_config(self, study_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def set_config(self, study_id: int, config: Mapping[str, Any]) -> None: ...

    # --- trials and events --------------------------------------------------------------------------------------
    @abstractmethod
    def record_ask(self, study_id: int, n: int, trials: Sequence[Trial], owner: str | None = None) -> None:
        """One transaction: the ask event and its new trials (running, or already told if infeasible); with ``owner``,
        only while that owner holds the study's lease (else ``LeaseLost``, nothing written)."""

    @abstractmethod
    def record_finish(self, study_id: int, trial: Trial, owner: str | None = None) -> None:
        """One transaction: the trial's outcome and the tell event (with ``owner``: as ``record_ask``)."""

    @abstractmethod
    def trials(self, study_id: int) -> list[Trial]: ...

    @abstractmethod
    def events(self, study_id: int) -> list[tuple[str, int]]: ...

    # --- the study's lease ----------------------------------------------------------------------------------------
    @abstractmethod
    def take_lease(self, study_id: int, owner: str, ttl_s: float, *, replace: str | None = None) -> Holder | None:
        """Take or renew the study's lease for ``owner`` until ``ttl_s`` seconds from now, if it is free, expired,
        already ``owner``'s or held by ``replace`` (a driver known to be dead): None. Otherwise the holder."""

    @abstractmethod
    def drop_lease(self, study_id: int, owner: str) -> None:
        """Give the lease back (nothing happens when ``owner`` does not hold it)."""

    # --- blobs (the database artifact store) --------------------------------------------------------------------
    @abstractmethod
    def put_blob(self, study_id: int, number: int, arch_key: str, name: str, data: bytes) -> None: ...

    @abstractmethod
    def get_blob(self, study_id: int, number: int, name: str) -> bytes | None: ...

    @abstractmethod
    def blob_names(self, study_id: int, number: int) -> list[str]: ...

    @abstractmethod
    def blob_number(self, study_id: int, arch_key: str) -> int | None:
        """The trial number whose blobs carry ``arch_key``, or None."""

    def _missing_study(self, name: str) -> StorageError:
        known = ", ".join(self.study_names()) or "none"
        return StorageError(f"no study {name!r} in {self.url}; studies there: {known}")
