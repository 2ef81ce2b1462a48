"""Where evaluations run: in-process (default) or a local process pool. Ray/Dask fit the same interface.

The strategy and the storage stay with the driver; an executor only runs ``run_trial`` and hands back futures.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
import traceback
from abc import ABC, abstractmethod
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NasforgeError, TrialFailed
from .evaluators.base import Context, Evaluator
from .space import Arch
from .spaces.base import Task
from .storage import worker_name


@dataclass
class Outcome:
    """What comes back from one evaluation: metrics or an error, the learning curve, timing and worker."""

    number: int
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    worker: str = ""


def run_trial(
    evaluator: Evaluator,
    arch: Arch,
    number: int,
    seed: int,
    task: Task | None,
    artifacts: str | None,
    progress: Any = None,
) -> Outcome:
    """Evaluate one arch. Never raises for a failing trial (except Ctrl-C): the error becomes the outcome."""
    ctx = Context(seed=seed, task=task, artifacts=Path(artifacts) if artifacts else None, trial=number)
    ctx.progress = progress
    t0 = time.perf_counter()
    out = Outcome(number, worker=worker_name())
    try:
        metrics = evaluator(arch, ctx)
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
    out.duration_s = time.perf_counter() - t0
    return out


class Executor(ABC):
    """Runs ``run_trial`` calls. ``slots`` is how many may run at once (the study keeps that many in flight)."""

    slots: int = 1
    passes_progress = False  # whether a progress callback can reach the evaluation (not across processes)

    @abstractmethod
    def submit(self, *args: Any) -> Future: ...

    def shutdown(self) -> None:  # noqa: B027 - optional
        pass


class Serial(Executor):
    """In-process, one trial at a time; the future is already done when ``submit`` returns."""

    slots = 1
    passes_progress = True

    def submit(self, *args: Any) -> Future:
        f: Future = Future()
        f.set_result(run_trial(*args))
        return f


class ProcessPool(Executor):
    """A local pool of ``workers`` processes (spawned, each with ``threads`` torch threads)."""

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        if workers < 1:
            raise NasforgeError(f"--workers must be at least 1, got {workers}")
        self.slots = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, *args: Any) -> Future:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.slots, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(self.threads,)
            )
        return self._pool.submit(run_trial, *args)

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


def create_executor(workers: int = 1, threads: int = 1) -> Executor:
    return Serial() if workers <= 1 else ProcessPool(workers, threads)
