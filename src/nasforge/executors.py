"""Where evaluations run: in-process (default) or a local process pool. Ray/Dask fit the same interface.

The strategy and the storage stay with the driver; an executor receives a ``Job`` (everything one evaluation needs,
picklable) and hands back a future of its ``Outcome``. A job writes its artifacts through the study's artifact store
(``job.artifacts``), from whichever process runs it.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import TrialArtifacts
from .errors import NasforgeError, TrialFailed
from .evaluators.base import Context, Evaluator
from .registry import Registry
from .space import Arch
from .storage import worker_name
from .task import Task


@dataclass
class Job:
    """One evaluation: the evaluator, the arch, its trial number and seed, the task, and the trial's view of the
    artifact store. ``progress`` (a progress-bar callback) reaches only in-process evaluations."""

    evaluator: Evaluator
    arch: Arch
    number: int
    seed: int
    task: Task | None
    artifacts: TrialArtifacts | None = None
    progress: Callable[[float, float, str], None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}  # a callback into the driver's terminal cannot travel


@dataclass
class Outcome:
    """What comes back from one evaluation: metrics or an error, the learning curve, timing, worker, and the names of
    the artifacts it saved (with their bytes in ``pending`` when the worker could not reach the store)."""

    number: int
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    worker: str = ""
    artifacts: list[str] = field(default_factory=list)
    pending: dict[str, bytes] = field(default_factory=dict)


def run_job(job: Job) -> Outcome:
    """Evaluate one arch. Never raises for a failing trial (except Ctrl-C): the error becomes the outcome."""
    ctx = Context(seed=job.seed, task=job.task, artifacts=job.artifacts, trial=job.number, progress=job.progress)
    t0 = time.perf_counter()
    out = Outcome(job.number, worker=worker_name())
    try:
        metrics = job.evaluator(job.arch, ctx)
        bad = [k for k, v in metrics.items() if not isinstance(v, int | float) or not math.isfinite(float(v))]
        if bad:
            raise TrialFailed(f"evaluator returned non-finite metrics: {', '.join(bad)}")
        out.metrics = {k: float(v) for k, v in metrics.items()}
    except (TrialFailed, NasforgeError) as e:
        out.error = str(e)
    except Exception as e:  # a bug or a resource error in one trial must not end the search
        tb = traceback.extract_tb(e.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        out.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}"
    out.curve = ctx.curve
    if job.artifacts is not None:
        out.artifacts, out.pending = list(job.artifacts.saved), dict(job.artifacts.pending)
    out.duration_s = time.perf_counter() - t0
    return out


class Executor(ABC):
    """Runs jobs. ``slots`` is how many may run at once (the study keeps that many in flight); ``in_process`` says
    whether jobs run in the driver's process (so a progress callback reaches them).

    Contract: ``submit(job)`` returns a future of ``run_job(job)``'s outcome (the same outcome wherever it runs, so
    results do not depend on the executor) and never blocks longer than it takes to hand the job over, except an
    in-process executor, which runs it. ``shutdown()`` waits for or cancels what is in flight; it may be called twice.
    Registered by name in ``EXECUTORS``, so that the conformance tests cover every one."""

    slots: int = 1
    in_process: bool = False

    @abstractmethod
    def submit(self, job: Job) -> Future[Outcome]: ...

    def shutdown(self) -> None:  # noqa: B027 - optional
        pass


EXECUTORS: Registry[type[Executor]] = Registry("executor")


@EXECUTORS.register("serial")
class Serial(Executor):
    """In-process, one trial at a time; the future is already done when ``submit`` returns."""

    slots = 1
    in_process = True

    def submit(self, job: Job) -> Future[Outcome]:
        f: Future[Outcome] = Future()
        f.set_result(run_job(job))
        return f


@EXECUTORS.register("process")
class ProcessPool(Executor):
    """A local pool of ``workers`` processes (spawned, each with ``threads`` torch threads)."""

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        if workers < 1:
            raise NasforgeError(f"--workers must be at least 1, got {workers}")
        self.slots = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, job: Job) -> Future[Outcome]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.slots, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(self.threads,)
            )
        return self._pool.submit(run_job, job)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _init_worker(threads: int) -> None:
    import signal

    import torch

    torch.set_num_threads(threads)
    # Ctrl-C goes to the driver, which shuts the pool down; workers must not print their own tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # several GPUs: one per worker, so that --device auto/cuda spreads the pool over them instead of crowding cuda:0.
    # A pool numbers its processes 1, 2, ... (``_identity``, which multiprocessing also names them by). Asking whether
    # and how many GPUs there are creates no CUDA context; ``set_device`` does, in this worker only.
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpu > 1:
        ident = getattr(mp.current_process(), "_identity", ()) or (1,)
        torch.cuda.set_device((ident[0] - 1) % n_gpu)


def create_executor(workers: int = 1, threads: int = 1) -> Executor:
    """In-process for one worker, else a process pool (the CLI's ``--workers``)."""
    return EXECUTORS.create("serial") if workers <= 1 else EXECUTORS.create("process", workers, threads)
