"""The search loop, in stages: propose (ask, canonical form, price, gate, record), dispatch, record, tell.

    strategy.ask ─▶ family.canonical ─▶ Pricer.cheap ─▶ Gate.violated ─┬─▶ infeasible: recorded, told, never evaluated
                                                                        └─▶ Job ─▶ executor ─▶ Outcome ─▶ record ─▶ tell

A resumed study first replays its recorded events into the fresh (seeded) strategy: every recorded ask is asked
again and must give the recorded archs, every recorded tell is told again from the stored trial (``Trial.result``,
the same as a live tell), and trials asked but never told (left running by a dead process) are run again.
"""

from __future__ import annotations

import hashlib
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass

from .artifacts import ArtifactKey, ArtifactStore, TrialArtifacts
from .constraints import Objective
from .errors import ConstraintError, NasforgeError, StorageError
from .evaluators.base import Evaluator
from .executors import Executor, Job, Outcome
from .gate import Gate
from .lease import Lease
from .pricing import Pricer
from .pruners import Pruner, Watch
from .space import Arch
from .spaces.base import Family
from .storage import LeaseLost, Storage
from .strategies.base import Strategy
from .task import Task
from .trial import State, Trial


def trial_seed(study_seed: int, arch: Arch) -> int:
    """A trial's seed: from the study seed and the arch key, so it does not depend on the order trials run in."""
    return int(hashlib.sha256(f"{study_seed}:{arch.key}".encode()).hexdigest()[:8], 16)


class StrategyError(NasforgeError):
    """A strategy broke its contract (it proposed one network twice)."""


@dataclass
class Plan:
    """Everything one run of a study uses, resolved and checked by ``Study.run``."""

    study: str
    study_id: int
    storage: Storage
    family: Family
    strategy: Strategy
    evaluator: Evaluator
    task: Task
    objectives: list[Objective]
    pricer: Pricer
    gate: Gate
    executor: Executor
    store: ArtifactStore
    seed: int = 0
    budget: int | None = None
    on_trial: Callable[[Trial], None] | None = None
    progress: Callable[[float, float, str], None] | None = None
    lease: Lease | None = None  # the study's lease: every write is fenced by it
    pruner: Pruner | None = None  # stops trials early from their reported curves (pruners.py)


class Loop:
    """One run of a study. ``run()`` replays, then asks, evaluates and records until the budget or the space ends."""

    def __init__(self, plan: Plan) -> None:
        self.p = plan
        self.trials: dict[int, Trial] = {t.number: t for t in plan.storage.trials(plan.study_id)}
        # recorded archs are canonical; the canonical form is taken again for records older than that rule
        self.networks = {plan.family.canonical(t.arch).key: t.number for t in self.trials.values()}
        self.asked: dict[int, Arch] = {}  # the arch the strategy proposed for each trial (told back as proposed)
        self.inflight: dict[Future[Outcome], Trial] = {}
        self.exhausted = False

    def run(self) -> None:
        queue = deque(self.replay())
        try:
            while True:
                self._fill(queue)
                if not self.inflight:
                    break
                done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
                for f in sorted(done, key=lambda f: self.inflight[f].number):  # several done: in trial order
                    t = self.inflight.pop(f)
                    self.record(t, _outcome(f, t))
                    self.tell(t)
        except BaseException:
            # Ctrl-C, a lost lease, a database fault: keep what finished, stop what runs (it stays ``running`` and
            # runs again on resume) and drop what has not started, at once rather than after the running trainings
            self._save_finished()
            self.p.executor.abort()
            raise
        finally:
            self.p.executor.shutdown()

    def _save_finished(self) -> None:
        for f, t in list(self.inflight.items()):
            if f.done() and not f.cancelled() and f.exception() is None:
                try:
                    self.record(t, f.result())
                except Exception:  # the database is what failed: what is left runs again on resume
                    return
                del self.inflight[f]

    def _fill(self, queue: deque[Trial]) -> None:
        """Keep every executor slot busy: trials to run again first, then new proposals."""
        slots = self.p.executor.slots
        while len(self.inflight) < slots:
            if queue:
                self.dispatch(queue.popleft())
                continue
            left = math.inf if self.p.budget is None else self.p.budget - len(self.trials)
            if self.exhausted or left <= 0:
                return
            queue.extend(self.propose(int(min(slots - len(self.inflight), left))))

    # --- stages -------------------------------------------------------------------------------------------------
    def propose(self, n: int) -> list[Trial]:
        """Ask for ``n`` archs; record them (infeasible ones as such, and tell those at once); return those to run."""
        archs = self.p.strategy.ask(n)
        if len(archs) < n:
            self.exhausted = True
        new = [self._new_trial(a) for a in archs]
        self._write(self.p.storage.record_ask, n, new)
        for t in new:
            if t.state == State.INFEASIBLE:
                self.tell(t)
        return [t for t in new if t.state == State.RUNNING]

    def _new_trial(self, asked: Arch) -> Trial:
        arch = self.p.family.canonical(asked)
        number = len(self.trials)
        if arch.key in self.networks:
            raise StrategyError(
                f"strategy {self.p.strategy.name or type(self.p.strategy).__name__!r} proposed "
                f"{self.p.family.describe(asked)}, the same network as trial {self.networks[arch.key]}; a strategy "
                "must propose each network once (in the family's canonical form)"
            )
        costs = self.p.pricer.cheap(arch)
        t = Trial(number=number, arch=arch, state=State.RUNNING, costs=dict(costs))
        bad = self.p.gate.violated(costs, arch)
        if bad:
            t.state, t.feasible, t.finished_at = State.INFEASIBLE, False, time.time()
            t.error = "violates " + ", ".join(map(str, bad))
        self.trials[number], self.networks[arch.key], self.asked[number] = t, number, asked
        return t

    def dispatch(self, t: Trial) -> None:
        p = self.p
        t.state, t.started_at = State.RUNNING, time.time()
        job = Job(
            p.evaluator, t.arch, t.number, trial_seed(p.seed, t.arch), p.task,
            TrialArtifacts(p.store, ArtifactKey(p.study, t.number, t.arch.key)),
            p.progress if p.executor.in_process else None, self._watch(t),
        )  # fmt: skip
        self.inflight[p.executor.submit(job)] = t

    def _watch(self, t: Trial) -> Watch | None:
        """The pruner bound to trial ``t``, judging it against the trials finished now (a snapshot: with one worker
        that is every earlier trial, so a rerun of ``t`` on resume is judged against the same curves)."""
        pruner = self.p.pruner
        if pruner is None or not pruner.active:
            return None
        return Watch.of(pruner, self.p.objectives[0], self.trials.values(), t.arch.key)

    def record(self, t: Trial, out: Outcome) -> None:
        """Store an outcome: the trial complete (feasible or not on the measured constraints), pruned or failed."""
        t.finished_at = time.time()
        t.duration_s, t.worker, t.curve = out.duration_s, out.worker, out.curve
        for name, data in out.pending.items():  # saved in a worker that could not reach the store
            self.p.store.put(ArtifactKey(self.p.study, t.number, t.arch.key), name, data)
        t.artifact = ",".join(out.artifacts) or None
        error, absent = out.error, []
        if out.pruned:  # stopped by the pruner: its curve and last reported metrics are what it has
            t.metrics, t.state, t.error = out.metrics, State.PRUNED, None
            self._write(self.p.storage.record_finish, t)
            return
        if error is None:
            names = [o.metric for o in self.p.objectives] + [c.metric for c in self.p.gate.late]
            absent = [m for m in dict.fromkeys(names) if m not in out.metrics and m not in t.costs]
            if absent:
                error = f"evaluator did not return {absent[0]!r}"
        t.metrics = out.metrics
        if error is not None:
            t.state, t.error = State.FAILED, error
        else:
            t.state, t.error = State.COMPLETE, None
            t.feasible = self.p.gate.late_ok(t.values)
        self._write(self.p.storage.record_finish, t)
        if absent and not self.p.evaluator.metrics:
            # an evaluator that declares no metrics: the first result shows the name can never be met; stop now
            # rather than fail (or judge infeasible) every trial of the run
            have = ", ".join(sorted({*out.metrics, *t.costs})) or "nothing"
            raise ConstraintError(
                f"unknown metric {absent[0]!r} in an objective or constraint: the evaluator returned none (this run "
                f"has {have}); fix the name and rerun under a new study name"
            )

    def _write(self, method: Callable[..., None], *args: object) -> None:
        """A write of the study's trials, fenced by its lease (refused once another driver has taken it over)."""
        lease = self.p.lease
        if lease is not None and lease.lost:
            raise lease.lost_error()
        try:
            with _no_ctrl_c_inside():
                method(self.p.study_id, *args, owner=None if lease is None else lease.owner)
        except LeaseLost:
            if lease is None:
                raise
            raise lease.lost_error() from None

    def tell(self, t: Trial) -> None:
        self.p.strategy.tell(self.asked.get(t.number, t.arch), t.result(self.p.objectives))
        if self.p.on_trial:
            self.p.on_trial(t)

    # --- resuming -----------------------------------------------------------------------------------------------
    def replay(self) -> list[Trial]:
        """Rebuild the strategy from the recorded events; return the trials still to run (asked, never told)."""
        strategy, told, nxt = self.p.strategy, set(), 0
        for kind, value in self.p.storage.events(self.p.study_id):
            if kind == "ask":
                for a in strategy.ask(value) if value > 0 else []:
                    t = self.trials.get(nxt)
                    if t is None or self.networks.get(self.p.family.canonical(a).key) != nxt:
                        raise StorageError(
                            f"study {self.p.study!r}: the strategy does not replay its recorded trials (trial {nxt}); "
                            "was it created with another seed or version? Use a new --study name"
                        )
                    self.asked[nxt] = a
                    nxt += 1
            else:
                told.add(value)
                t = self.trials[value]
                strategy.tell(self.asked.get(value, t.arch), t.result(self.p.objectives))
        return [t for n, t in sorted(self.trials.items()) if n not in told]


class WorkerDied(NasforgeError):
    """A worker process ended without handing back its trial's outcome (killed, out of memory)."""


def _outcome(f: Future[Outcome], t: Trial) -> Outcome:
    exc = f.exception()
    if exc is not None:
        raise WorkerDied(
            f"the worker running trial {t.number} ended without an outcome ({type(exc).__name__}: {exc}); finished "
            "trials are saved: rerun to resume (the trial runs again)"
        ) from None
    return f.result()


@contextmanager
def _no_ctrl_c_inside() -> Iterator[None]:
    """Ctrl-C never lands inside a database write: SIGINT is held while the write runs and raised right after it, so
    the driver never goes on to record and close with a connection interrupted half-way. Main thread only (the only
    one Python delivers SIGINT to), and only where Ctrl-C is Python's default KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, _frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt
