"""``memory://``: a storage of plain dictionaries, for studies that need not outlive the process.

Built for drivers that run thousands of short studies (the NAS-Bench-201 benchmark runs every strategy over many
seeds): creating one costs nothing and a trial costs microseconds where SQL costs about a millisecond. It honours the
``Storage`` contract (copies in, copies out, so a caller's later changes never leak in) but nothing survives the
process, and worker processes cannot reach it (artifacts they save come back with their outcome).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..trial import State, Trial
from .base import BACKENDS, MEMORY_URL, Holder, Storage, check_study_name
from .errors import LeaseLost


def _copy(t: Trial) -> Trial:
    return replace(t, metrics=dict(t.metrics), costs=dict(t.costs), curve=[dict(p) for p in t.curve])


@BACKENDS.register("memory")
class MemoryStorage(Storage):
    """Studies in dictionaries. Each instance is its own empty database."""

    def __init__(self, url: str = MEMORY_URL) -> None:
        self.url = url
        self._names: dict[str, int] = {}
        self._config: dict[int, dict[str, Any]] = {}
        self._trials: dict[int, list[Trial]] = {}
        self._events: dict[int, list[tuple[str, int]]] = {}
        self._keys: dict[int, set[str]] = {}
        self._blobs: dict[tuple[int, int], dict[str, bytes]] = {}
        self._blob_keys: dict[tuple[int, str], int] = {}
        self._leases: dict[int, tuple[str, float, float]] = {}  # study id -> (owner, expires at, ttl)

    def __getstate__(self) -> dict[str, Any]:
        from ..errors import StorageError

        raise StorageError("a memory:// study lives in one process and cannot be sent to another; use a SQLite file")

    # --- studies ------------------------------------------------------------------------------------------------
    def study_id(self, name: str, create: bool = True) -> int:
        sid = self._names.get(name)
        if sid is not None:
            return sid
        if not create:
            raise self._missing_study(name)
        check_study_name(name)
        sid = self._names[name] = len(self._names) + 1
        self._config[sid], self._trials[sid], self._events[sid], self._keys[sid] = {}, [], [], set()
        return sid

    def study_names(self) -> list[str]:
        return list(self._names)

    def get_config(self, study_id: int) -> dict[str, Any]:
        return copy.deepcopy(self._config.get(study_id, {}))

    def set_config(self, study_id: int, config: Mapping[str, Any]) -> None:
        self._config[study_id] = copy.deepcopy(dict(config))

    # --- trials and events --------------------------------------------------------------------------------------
    def record_ask(self, study_id: int, n: int, trials: Sequence[Trial], owner: str | None = None) -> None:
        self._fence(study_id, owner)
        rows, events, keys = self._trials[study_id], self._events[study_id], self._keys[study_id]
        for t in trials:  # the same refusals as the SQL schema's unique constraints
            if t.number != len(rows) or t.arch.key in keys:
                from ..errors import StorageError

                raise StorageError(f"trial {t.number} ({t.arch.key}) is already recorded")
            rows.append(_copy(t))
            keys.add(t.arch.key)
        events.append(("ask", n))
        events.extend(("tell", t.number) for t in trials if t.state != State.RUNNING)

    def record_finish(self, study_id: int, trial: Trial, owner: str | None = None) -> None:
        self._fence(study_id, owner)
        self._trials[study_id][trial.number] = _copy(trial)
        self._events[study_id].append(("tell", trial.number))

    def trials(self, study_id: int) -> list[Trial]:
        return [_copy(t) for t in self._trials.get(study_id, [])]

    def events(self, study_id: int) -> list[tuple[str, int]]:
        return list(self._events.get(study_id, []))

    # --- the study's lease ----------------------------------------------------------------------------------------
    def take_lease(self, study_id: int, owner: str, ttl_s: float, *, replace: str | None = None) -> Holder | None:
        now = time.time()
        held = self._leases.get(study_id)
        if held is None or held[0] in (owner, replace) or held[1] < now:
            self._leases[study_id] = (owner, now + ttl_s, ttl_s)
            return None
        return Holder(held[0], held[1])

    def drop_lease(self, study_id: int, owner: str) -> None:
        if self._leases.get(study_id, ("",))[0] == owner:
            del self._leases[study_id]

    def _fence(self, study_id: int, owner: str | None) -> None:
        if owner is None:
            return
        held = self._leases.get(study_id)
        if held is None or held[0] != owner:
            raise LeaseLost(f"the lease of study #{study_id} in {self.url} is no longer held by this driver")
        self._leases[study_id] = (owner, time.time() + held[2], held[2])

    # --- blobs --------------------------------------------------------------------------------------------------
    def put_blob(self, study_id: int, number: int, arch_key: str, name: str, data: bytes) -> None:
        self._blobs.setdefault((study_id, number), {})[name] = bytes(data)
        self._blob_keys[(study_id, arch_key)] = number

    def get_blob(self, study_id: int, number: int, name: str) -> bytes | None:
        return self._blobs.get((study_id, number), {}).get(name)

    def blob_names(self, study_id: int, number: int) -> list[str]:
        return sorted(self._blobs.get((study_id, number), {}))

    def blob_number(self, study_id: int, arch_key: str) -> int | None:
        return self._blob_keys.get((study_id, arch_key))
