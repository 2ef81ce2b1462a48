"""``Study``: a named experiment in a database; ``run`` drives strategy, constraints, evaluator and storage.

The loop (DESIGN.md): ask the strategy, compute the cheap costs of each arch (analytic layer costs, the evaluator's
cheap metrics, any cost models), record an arch that fails a cheap constraint as ``infeasible`` without evaluating it,
evaluate the others on the executor, record each outcome and tell the strategy.

Opening an existing study resumes it: the recorded asks and tells are replayed into a fresh strategy (which is seeded,
so it returns the same archs), trials left ``running`` by a dead process are run again, and nothing finished is rerun.
Because each trial's seed derives from the study seed and the arch key, the resumed search ends where an uninterrupted
one would.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from .constraints import Constraint, Objective
from .errors import ConstraintError, StorageError
from .evaluators.base import Evaluator, FunctionEvaluator
from .executors import Executor, Outcome, Serial
from .space import Arch
from .spaces.base import Family, Task
from .storage import DEFAULT_URL, Storage, Trial
from .strategies.base import Strategy
from .trial import Result, State

CostModel = Callable[[Arch], Mapping[str, float]]
# spaces up to this size are enumerated to prove a constraint impossible before anything is trained
EXHAUSTIVE_CHECK = 50_000


def trial_seed(study_seed: int, arch: Arch) -> int:
    return int(hashlib.sha256(f"{study_seed}:{arch.key}".encode()).hexdigest()[:8], 16)


class Study:
    """A named experiment. Use ``Study.open(name, storage)``; the constructor only stores."""

    def __init__(self, name: str, storage: Storage, study_id: int) -> None:
        self.name = name
        self.storage = storage
        self.id = study_id

    @classmethod
    def open(cls, name: str, storage: str | Storage = DEFAULT_URL, *, create: bool = True) -> Study:
        st = storage if isinstance(storage, Storage) else Storage(storage)
        return cls(name, st, st.study_id(name, create=create))

    # --- reading ------------------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.storage.get_config(self.id)

    def trials(self, states: Iterable[State] | None = None) -> list[Trial]:
        ts = self.storage.trials(self.id)
        if states is not None:
            wanted = {State(s) for s in states}
            ts = [t for t in ts if t.state in wanted]
        return ts

    def objectives(self) -> list[Objective]:
        return [Objective.parse(o) for o in self.config.get("objectives", ["maximize val_acc"])]

    def constraints(self) -> list[Constraint]:
        return [Constraint.parse(c) for c in self.config.get("constraints", [])]

    def completed(self) -> list[Trial]:
        """Complete trials that meet every constraint (the candidates for best and Pareto front)."""
        objs = self.objectives()
        return [
            t
            for t in self.trials([State.COMPLETE])
            if t.feasible and all(t.value(o.metric) is not None for o in objs)
        ]

    def best(self) -> Trial | None:
        """The best feasible complete trial by the first objective (ties: the earlier trial)."""
        objs = self.objectives()
        cands = self.completed()
        if not cands:
            return None
        return max(cands, key=lambda t: (objs[0].score(t.values), -t.number))

    def pareto(self) -> list[Trial]:
        """Feasible complete trials that no other one dominates on all objectives."""
        objs = self.objectives()
        cands = self.completed()
        pts = [tuple(o.score(t.values) for o in objs) for t in cands]

        def dominated(p: tuple[float, ...]) -> bool:
            return any(all(a >= b for a, b in zip(q, p, strict=True)) and q != p for q in pts)

        return [t for t, p in zip(cands, pts, strict=True) if not dominated(p)]

    # --- running ------------------------------------------------------------------------------------------------
    def run(
        self,
        family: Family,
        strategy: Strategy,
        evaluator: Evaluator | Callable[..., Mapping[str, float]],
        *,
        task: Task | None = None,
        constraints: Sequence[str | Constraint] = (),
        objectives: Sequence[str | Objective] = ("maximize val_acc",),
        budget: int | None = None,
        executor: Executor | None = None,
        seed: int = 0,
        cost_models: Sequence[CostModel] = (),
        bits: int = 32,
        on_trial: Callable[[Trial], None] | None = None,
        progress: Callable[[float, float, str], None] | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> Study:
        """Run (or resume) the search until ``budget`` trials exist (all states count) or the strategy is exhausted.

        ``on_trial`` is called with every trial as it finishes (for progress bars and tables); ``progress`` is passed
        to in-process evaluations (training progress).
        """
        if not isinstance(evaluator, Evaluator):
            evaluator = FunctionEvaluator(evaluator)
        executor = executor or Serial()
        cons = [Constraint.parse(c) for c in constraints]
        objs = [Objective.parse(o) for o in objectives]
        if not objs:
            raise ConstraintError("a study needs at least one objective, e.g. 'maximize val_acc'")
        if task is None:
            task_fn = getattr(evaluator, "task", None)
            task = task_fn() if task_fn is not None else family.default_task
            if task is None:
                raise ConstraintError("no task given and neither the evaluator nor the family knows one; pass a task")
        space = family.space
        self._check_config(family, strategy, evaluator, cons, objs, seed, task, extra_config)

        cheap_cache: dict[str, dict[str, float]] = {}
        free_cache: dict[str, dict[str, float]] = {}

        def free(arch: Arch) -> dict[str, float]:
            """Analytic costs and the evaluator's cheap metrics: microseconds per arch."""
            c = free_cache.get(arch.key)
            if c is None:
                c = dict(family.costs(arch, task, bits=bits))
                c.update(evaluator.cheap_metrics(arch))
                free_cache[arch.key] = c
            return c

        def cheap(arch: Arch) -> dict[str, float]:
            """``free`` plus the cost models (a latency measurement or prediction may take milliseconds)."""
            c = cheap_cache.get(arch.key)
            if c is None:
                c = dict(free(arch))
                for cm in cost_models:
                    c.update(cm(arch))
                cheap_cache[arch.key] = c
            return c

        # which constraints can be checked before evaluation; unknown metrics are an error now, not after training
        probe = cheap(space.at(0))
        known = set(probe) | set(evaluator.metrics)
        cheap_cons = [c for c in cons if c.metric in probe]
        late_cons = [c for c in cons if c.metric not in probe]
        for what, names in (("constraint", [c.metric for c in cons]), ("objective", [o.metric for o in objs])):
            unknown = [m for m in names if m not in known]
            if unknown and evaluator.metrics:
                raise ConstraintError(
                    f"unknown metric {unknown[0]!r} in {what}; available: {', '.join(sorted(known))}"
                )
        free_cons = [c for c in cheap_cons if c.metric in free(space.at(0))]
        if free_cons:  # proved by enumeration, so only on the metrics that cost nothing to compute
            self._check_possible(family, space, free, free_cons)

        def feasible(arch: Arch) -> bool:
            c = cheap(arch)
            return all(k.ok(c) for k in cheap_cons)

        strategy.set_feasible(feasible if cheap_cons else None)
        trials = {t.number: t for t in self.trials()}
        pending = self._replay(strategy, trials)
        artifacts_root = self.storage.artifacts_root() / self.name
        exhausted = False
        inflight: dict[Future, Trial] = {}

        def result_of(t: Trial) -> Result:
            if t.state != State.COMPLETE:
                return Result(t.state, None, t.metrics, t.costs, t.feasible)
            return Result(t.state, tuple(o.score(t.values) for o in objs), t.metrics, t.costs, t.feasible)

        def submit(t: Trial) -> None:
            t.state, t.started_at = State.RUNNING, time.time()
            art = str(artifacts_root / str(t.number))
            args = (evaluator, t.arch, t.number, trial_seed(seed, t.arch), task, art)
            if executor.passes_progress and progress is not None:
                args = (*args, progress)
            inflight[executor.submit(*args)] = t

        def finish(t: Trial, out: Outcome) -> None:
            t.finished_at = time.time()
            t.duration_s, t.worker, t.curve = out.duration_s, out.worker, out.curve
            if out.error is None:
                missing = [o.metric for o in objs if o.metric not in out.metrics and o.metric not in t.costs]
                if missing:
                    out.error = f"evaluator did not return objective metric {missing[0]!r}"
            if out.error is not None:
                t.state, t.error, t.metrics = State.FAILED, out.error, out.metrics
            else:
                t.state, t.error, t.metrics = State.COMPLETE, None, out.metrics
                t.feasible = all(c.ok(t.values) for c in late_cons)
                if (t.artifact is None) and (artifacts_root / str(t.number)).exists():
                    t.artifact = str(artifacts_root / str(t.number))
            self.storage.record_finish(self.id, t)
            strategy.tell(t.arch, result_of(t))
            if on_trial:
                on_trial(t)

        queue = list(pending)
        try:
            while True:
                while len(inflight) < executor.slots:
                    if queue:
                        submit(queue.pop(0))
                        continue
                    left = math.inf if budget is None else budget - len(trials)
                    if exhausted or left <= 0:
                        break
                    n = int(min(executor.slots - len(inflight), left))
                    archs = strategy.ask(n)
                    new = []
                    for a in archs:
                        c = cheap(a)
                        t = Trial(number=len(trials), arch=a, state=State.RUNNING, costs=c)
                        trials[t.number] = t
                        bad = [k for k in cheap_cons if not k.ok(c)]
                        if bad:
                            t.state, t.feasible, t.finished_at = State.INFEASIBLE, False, time.time()
                            t.error = "violates " + ", ".join(map(str, bad))
                        new.append(t)
                    self.storage.record_ask(self.id, n, new)
                    for t in new:
                        if t.state == State.INFEASIBLE:
                            strategy.tell(t.arch, result_of(t))
                            if on_trial:
                                on_trial(t)
                        else:
                            queue.append(t)
                    if len(archs) < n:
                        exhausted = True
                if not inflight:
                    if not queue:
                        break
                    continue
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for f in done:
                    finish(inflight.pop(f), f.result())
        finally:
            executor.shutdown()
        return self

    # --- helpers ------------------------------------------------------------------------------------------------
    def _check_config(self, family, strategy, evaluator, cons, objs, seed, task, extra) -> None:
        cfg = {
            "family": family.name,
            "family_config": family.config(),
            "strategy": strategy.name or type(strategy).__name__,
            "strategy_hyper": strategy.hyper(),
            "evaluator": evaluator.name or type(evaluator).__name__,
            "evaluator_config": evaluator.config(),
            "constraints": [str(c) for c in cons],
            "objectives": [str(o) for o in objs],
            "seed": seed,
            "strategy_seed": strategy.seed,
            "task": task.to_dict(),
            **dict(extra or {}),
        }
        import json

        cfg = json.loads(json.dumps(cfg))  # tuples -> lists, as the database will hold them
        old = self.config
        if not old:
            self.storage.set_config(self.id, cfg)
            return
        diff = [k for k in sorted(set(old) | set(cfg)) if old.get(k) != cfg.get(k)]
        if diff:
            k = diff[0]
            raise StorageError(
                f"study {self.name!r} was created with {k}={old.get(k)!r}, not {cfg.get(k)!r}; "
                "rerun with the same settings to resume, or use a new --study name"
            )

    @staticmethod
    def _check_possible(family: Family, space, cheap, cons: Sequence[Constraint]) -> None:
        """Refuse, before training anything, a constraint that no arch can meet (proved by enumeration)."""
        if space.size > EXHAUSTIVE_CHECK:
            return
        best, best_v = None, math.inf
        for a in space.grid():
            c = cheap(a)
            v = sum(k.violation(c) / max(abs(k.value), 1e-12) for k in cons)
            if v == 0:
                return
            if v < best_v:
                best, best_v = a, v
        c = cheap(best)
        what = ", ".join(f"{k.metric}={_fmt(k.metric, c.get(k.metric))}" for k in cons)
        raise ConstraintError(
            f"no arch of the {space.size:,} in family {family.name!r} meets {' and '.join(map(str, cons))}; "
            f"the closest, {family.describe(best)}, has {what}: relax the constraint"
        )

    def _replay(self, strategy: Strategy, trials: dict[int, Trial]) -> list[Trial]:
        """Rebuild the strategy from the recorded events; return the trials still to run (asked, never told)."""
        events = self.storage.events(self.id)
        if not events:
            return []
        objs = self.objectives()
        nxt = 0
        told: set[int] = set()
        for kind, value in events:
            if kind == "ask":
                got = strategy.ask(value) if value > 0 else []
                for a in got:
                    t = trials.get(nxt)
                    if t is None or t.arch.key != a.key:
                        raise StorageError(
                            f"study {self.name!r}: the strategy does not replay its recorded trials (trial {nxt}); "
                            "was it created with another seed or version? Use a new --study name"
                        )
                    nxt += 1
            else:
                t = trials[value]
                told.add(value)
                score = (
                    tuple(o.score(t.values) for o in objs)
                    if t.state == State.COMPLETE and all(t.value(o.metric) is not None for o in objs)
                    else None
                )
                strategy.tell(t.arch, Result(t.state, score, t.metrics, t.costs, t.feasible))
        return [t for n, t in sorted(trials.items()) if n not in told]


def _fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    from .units import human

    return human(metric, v)
