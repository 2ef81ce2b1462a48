"""A one-shot search recorded as a study: settings, per-epoch losses and architecture weights, a checkpoint per
epoch (resumable after kill -9), the derived arch, and that arch trained from scratch as an ordinary trial.

``run_oneshot`` is what ``nasforge oneshot`` calls:

1. the study is opened (created if new) under the study's lease, like ``Study.run``; its record gains a ``oneshot``
   section (method, settings, seed, epochs, data and training recipe). Resuming with other settings is refused in
   one line, as a search's is;
2. epoch by epoch the method trains; after each epoch one artifact, ``oneshot.pt`` (the method's whole state, the
   epoch and the history), replaces the last, atomically (a folder store writes and renames; a database store writes
   in one transaction), then ``oneshot.json`` (the history, for reports). A rerun after a kill loads the checkpoint
   and continues from the next epoch: the end state equals an uninterrupted run's (the methods' contract);
3. the derived arch (``derive()``) is recorded, the supernet's weights saved as ``supernet.pt`` (for the
   ``supernet`` evaluator), and, unless ``retrain=False``, the arch is trained from scratch by the given evaluator as
   the study's trial, which ``best``, ``export`` and the report treat like any other.

The one-shot run's files live in the study's artifact store under the reserved slot ``RUN_SLOT`` (a number no trial
reaches, arch key ``oneshot``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .artifacts import ArtifactKey, ArtifactStore, open_store
from .errors import NasforgeError, StorageError
from .evaluators.base import Evaluator
from .evaluators.train import resolve_device
from .lease import Lease
from .oneshot.base import RUN_KEY, OneShot, create_oneshot
from .space import Arch, Space
from .spaces.base import Family
from .storage import check_study_name
from .strategies.base import Strategy
from .study import Study

RUN_NUMBER = 2**31 - 1  # the artifact slot of a study's one-shot run: no trial number reaches it


def run_key(study: str) -> ArtifactKey:
    return ArtifactKey(study, RUN_NUMBER, RUN_KEY)


class _Derived(Strategy):
    """Proposes the one derived arch, once (the retraining trial). Not registered: it serves ``run_oneshot`` only."""

    name = "oneshot-derived"
    max_objectives = None

    def __init__(self, space: Space, arch: Mapping[str, Any], *, seed: int | None = 0) -> None:
        super().__init__(space, seed=seed)
        self.arch = space.validate(arch)

    def hyper(self) -> dict[str, Any]:
        return {"arch": dict(self.arch)}

    def _ask(self, n: int) -> list[Arch]:
        return [] if self.seen(self.arch) else [self.arch]


@dataclass
class OneShotRun:
    """What a one-shot run left: the study, the history (one entry per epoch), the derived arch, its trial."""

    study: Study
    history: list[dict[str, Any]] = field(default_factory=list)
    derived: Arch | None = None
    resumed_from: int = 0

    @property
    def trial(self):
        ts = self.study.trials()
        return ts[0] if ts else None


def run_oneshot(
    study_name: str, storage: str, method: str, family: Family, evaluator: Evaluator, *, epochs: int,
    seed: int = 0, settings: Mapping[str, Any] | None = None, retrain: bool = True, artifacts: str | None = None,
    progress: Callable[[float, float, str], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> OneShotRun:  # fmt: skip
    """Run (or resume) one-shot search ``method`` on ``family`` with the data and recipe of ``evaluator`` (a
    ``TrainEvaluator``: its data set and device; its training recipe is the retraining's). See the module docstring."""
    check_study_name(study_name)
    twice = sorted({"epochs", "seed"} & set(settings or {}))
    if twice:
        raise NasforgeError(
            f"give the one-shot {twice[0]} once, as its own option (--{twice[0]}), not among the settings"
        )
    m: OneShot = create_oneshot(method, family, evaluator.task(), seed=seed, epochs=epochs, **dict(settings or {}))
    record = {
        "method": method, "settings": _jsonable(m.config()), "seed": seed, "epochs": epochs, "family": family.name,
        "family_config": family.config(), "evaluator_config": evaluator.config(),
    }  # fmt: skip
    m.setup(resolve_device(evaluator.device))  # a family with nothing to mix is refused before anything is written
    study = Study.open(study_name, storage)
    spec = study._artifact_spec(artifacts)
    _check_record(study, record)
    if study.id is None:
        study.id = study.storage.study_id(study.name, create=True)
    run = OneShotRun(study)
    with Lease(study.storage, study.id, study.name):
        _check_record(study, record)
        study.storage.set_config(study.id, {**study.config, "oneshot": record, "artifacts": dict(spec),
                                            "family_spec": family.spec(), "task": m.task.to_dict()})  # fmt: skip
        store = open_store(spec, study.storage)
        _train(m, evaluator, store, study_name, epochs, run, progress, on_epoch)
    run.derived = m.derive()
    _put_json(store, study_name, {"history": run.history, "derived": dict(run.derived), "method": method})
    if retrain:
        study.run(family, _Derived(family.space, run.derived, seed=seed), evaluator, budget=1, seed=seed,
                  artifacts=artifacts, progress=progress, extra_config={"oneshot": record})  # fmt: skip
    return run


def _train(m: OneShot, evaluator, store: ArtifactStore, study: str, epochs: int, run: OneShotRun, progress,
           on_epoch) -> None:  # fmt: skip
    import torch

    data = evaluator.data()
    m.attach(data)
    key = run_key(study)
    raw = store.get(key, "oneshot.pt")
    start = 1
    if raw is not None:
        ck = torch.load(io.BytesIO(raw), map_location=data.x_train.device, weights_only=False)
        m.load_state_dict(ck["state"])
        run.history = list(ck["history"])
        start = run.resumed_from = int(ck["epoch"]) + 1
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()

        def step(done: float, total: float, label: str, epoch: int = epoch) -> None:
            if progress is not None:
                progress((epoch - 1) * total + done, epochs * total, label)

        stats = m.train_epoch(data, epoch, step)
        entry = {"epoch": epoch, **stats, "time_s": time.perf_counter() - t0, "probs": m.arch_probs(),
                 "derived": dict(m.derive()) if m.cheap_derive else None}  # fmt: skip
        run.history.append(entry)
        buf = io.BytesIO()
        torch.save({"epoch": epoch, "state": m.state_dict(), "history": run.history}, buf)
        store.put(key, "oneshot.pt", buf.getvalue())  # one write: the checkpoint and the history agree
        _put_json(store, study, {"history": run.history})
        if on_epoch is not None:
            on_epoch(entry)
    if start <= epochs or "supernet.pt" not in store.names(key):
        buf = io.BytesIO()
        torch.save(m.supernet.state_dict(), buf)
        store.put(key, "supernet.pt", buf.getvalue())


def _put_json(store: ArtifactStore, study: str, obj: dict[str, Any]) -> None:
    store.put(run_key(study), "oneshot.json", json.dumps(obj, default=str).encode())


def _check_record(study: Study, record: dict[str, Any]) -> None:
    old = study.config.get("oneshot")
    if study.id is not None and old is None and study.trials():
        raise StorageError(f"study {study.name!r} holds a search, not a one-shot run; use a new --study name")
    if old is not None and old != record:
        diff = [k for k in sorted(set(old) | set(record)) if old.get(k) != record.get(k)]
        k = diff[0]
        raise StorageError(f"study {study.name!r} was created with oneshot {k}={old.get(k)!r} (now {record.get(k)!r});"
                           " rerun with the same settings to resume, or use a new --study name")  # fmt: skip


def load_run(study: Study) -> dict[str, Any] | None:
    """The recorded one-shot run of ``study`` (history and derived arch), or None when it has none."""
    if "oneshot" not in study.config:
        return None
    raw = study.artifacts.get(run_key(study.name), "oneshot.json")
    out = json.loads(raw) if raw else {"history": []}
    return {**out, "record": study.config["oneshot"]}


def _jsonable(obj: Any) -> Any:
    try:
        return json.loads(json.dumps(obj))
    except TypeError as e:
        raise NasforgeError(f"one-shot settings must be plain values (numbers, strings, lists): {e}") from None
