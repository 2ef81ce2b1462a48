"""Where evaluations run: in-process (default) or a local process pool. Ray/Dask fit the same interface.

The strategy and the storage stay with the driver; an executor receives a ``Job`` (everything one evaluation needs,
picklable) and hands back a future of its ``Outcome``. A job writes its artifacts through the study's artifact store
(``job.artifacts``), from whichever process runs it.

Worker processes never outlive their driver: each one asks the kernel to kill it when the driver dies
(``prctl(PR_SET_PDEATHSIG)`` on Linux) and also watches its parent from a thread (everywhere), so kill -9 of the
driver, even while workers start up, leaves none running. Ctrl-C reaches the driver alone (workers ignore SIGINT from
birth); the driver then ``abort``s the pool: what has not started is cancelled and running workers are ended at once.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._worker import init_worker
from .artifacts import TrialArtifacts
from .errors import NasforgeError, TrialFailed, TrialPruned
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
    prune: Callable[[int, Mapping[str, float]], bool] | None = None  # pruners.Watch: pruner and history snapshot

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}  # a callback into the driver's terminal cannot travel


@dataclass
class Outcome:
    """What comes back from one evaluation: metrics or an error, the learning curve, timing, worker, and the names of
    the artifacts it saved (with their bytes in ``pending`` when the worker could not reach the store). ``pruned``:
    the pruner stopped it (``metrics`` are then its last reported ones)."""

    number: int
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    worker: str = ""
    artifacts: list[str] = field(default_factory=list)
    pending: dict[str, bytes] = field(default_factory=dict)
    pruned: bool = False


def run_job(job: Job) -> Outcome:
    """Evaluate one arch. Never raises for a failing trial (except Ctrl-C): the error becomes the outcome."""
    ctx = Context(seed=job.seed, task=job.task, artifacts=job.artifacts, trial=job.number, progress=job.progress,
                  prune=job.prune)  # fmt: skip
    t0 = time.perf_counter()
    out = Outcome(job.number, worker=worker_name())
    try:
        metrics = job.evaluator(job.arch, ctx)
        bad = [k for k, v in metrics.items() if not isinstance(v, int | float) or not math.isfinite(float(v))]
        if bad:
            raise TrialFailed(f"evaluator returned non-finite metrics: {', '.join(bad)}")
        out.metrics = {k: float(v) for k, v in metrics.items()}
    except TrialPruned:
        out.pruned = True
        out.metrics = {k: v for k, v in ctx.curve[-1].items() if k != "step"} if ctx.curve else {}
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
    ``abort()`` (Ctrl-C) cancels what has not started and ends what runs without waiting for it. Registered by name in
    ``EXECUTORS``, so that the conformance tests cover every one."""

    slots: int = 1
    in_process: bool = False

    @abstractmethod
    def submit(self, job: Job) -> Future[Outcome]: ...

    def shutdown(self) -> None:  # noqa: B027 - optional
        pass

    def abort(self) -> None:
        self.shutdown()


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
        # workers are spawned inside submit; spawned while SIGINT is ignored, they ignore it from birth (a Ctrl-C
        # during their start-up would otherwise print their tracebacks): the driver alone handles Ctrl-C
        with _sigint_ignored():
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.slots, mp_context=mp.get_context("spawn"), initializer=init_worker,
                    initargs=(self.threads, os.getpid()),
                )  # fmt: skip
            return self._pool.submit(run_job, job)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Cancel what has not started and end the workers now (their trials stay ``running`` and run again)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())  # 3.14 has terminate_workers(); 3.11 not
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        pool.shutdown(wait=True)


class _sigint_ignored:
    """SIGINT ignored inside the block (main thread only; elsewhere a no-op)."""

    def __enter__(self) -> None:
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def create_executor(workers: int = 1, threads: int = 1) -> Executor:
    """In-process for one worker, else a process pool (the CLI's ``--workers``)."""
    return EXECUTORS.create("serial") if workers <= 1 else EXECUTORS.create("process", workers, threads)
