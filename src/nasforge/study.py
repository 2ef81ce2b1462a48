"""``Study``: a named experiment in a database; ``run`` drives strategy, constraints, evaluator and storage.

The loop (``loop.py``, DESIGN.md): ask the strategy, take each arch's canonical form, price it (``pricing.py``),
record an arch that fails a cheap constraint as ``infeasible`` without evaluating it (``gate.py``), evaluate the
others on the executor, record each outcome and tell the strategy.

Opening an existing study resumes it: the recorded asks and tells are replayed into a fresh strategy (which is seeded,
so it returns the same archs), trials left ``running`` by a dead process are run again, and nothing finished is rerun.
Because each trial's seed derives from the study seed and the arch key, the resumed search ends where an uninterrupted
one would. A changed configuration is refused.

One driver runs a study at a time: ``run`` holds the study's lease in the database (``lease.py``), and a second driver
is refused in one line until the first finishes or dies.

A study records what it needs to come back in a fresh process: its family (``family.spec()``: a registered name and
configuration, or an import path), its task, its objectives and constraints, and where its artifacts are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .artifacts import ArtifactKey, ArtifactStore, open_store, store_spec
from .constraints import Constraint, Objective
from .errors import ConstraintError, NasforgeError, StorageError
from .evaluators.base import Evaluator, FunctionEvaluator
from .executors import Executor, Serial
from .gate import EXHAUSTIVE_CHECK, Gate
from .lease import LEASE_S, Lease
from .loop import Loop, Plan, StrategyError, trial_seed
from .pricing import CostModel, Pricer
from .pruners import Pruner
from .spaces.base import Family, load_family
from .storage import DEFAULT_URL, MissingDatabase, Storage, check_study_name
from .strategies.base import Strategy
from .task import Task
from .trial import State, Trial

__all__ = ["EXHAUSTIVE_CHECK", "Study", "StrategyError", "trial_seed"]

# recorded for reading the study back, not deciding its results: a resumed study may add them to an older record
_DESCRIPTIVE = ("family_spec", "artifacts", "oneshot")  # the one-shot runner checks its own record


class Study:
    """A named experiment. Use ``Study.open(name, storage)``; the constructor only stores."""

    def __init__(self, name: str, storage: Storage, study_id: int | None) -> None:
        self.name = name
        self.storage = storage
        self.id = study_id  # None: a new study, written (database and all) once a run of it is accepted

    @classmethod
    def open(cls, name: str, storage: str | Storage = DEFAULT_URL, *, create: bool = True) -> Study:
        """Open study ``name`` in ``storage`` (a URL: ``sqlite:///file.db``, ``memory://``, any SQLAlchemy URL).

        Opening writes nothing. With ``create=False`` a missing database or study is a one-line error; otherwise a
        missing study is new: it (and its database) is written when ``run`` has checked and accepted a run of it, so
        a refused run leaves no trace. A new study's name must be a plain name (it names a folder)."""
        st = storage if isinstance(storage, Storage) else Storage(storage)
        if not create:
            return cls(name, st, st.study_id(name, create=False))
        check_study_name(name)
        try:
            known = name in st.study_names()
        except MissingDatabase:
            known = False
        return cls(name, st, st.study_id(name, create=False) if known else None)

    # --- reading ------------------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return {} if self.id is None else self.storage.get_config(self.id)

    def trials(self, states: Iterable[State] | None = None) -> list[Trial]:
        """The recorded trials in trial-number order (the order they were asked), optionally of some states only."""
        ts = [] if self.id is None else self.storage.trials(self.id)
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
        return [t for t in self.trials([State.COMPLETE]) if t.feasible and t.scored(objs)]

    def best(self) -> Trial | None:
        """The best feasible complete trial by the first objective (ties: the earlier trial)."""
        objs = self.objectives()
        cands = self.completed()
        if not cands:
            return None
        return max(cands, key=lambda t: (objs[0].score(t.values), -t.number))

    def pareto(self) -> list[Trial]:
        """Feasible complete trials that no other one dominates on all objectives (equal points all kept)."""
        from .pareto import pareto_mask

        objs = self.objectives()
        cands = self.completed()
        if not cands:
            return []
        mask = pareto_mask(np.array([[o.score(t.values) for o in objs] for t in cands]))
        return [t for t, keep in zip(cands, mask, strict=True) if keep]

    def family(self) -> Family:
        """The study's family, rebuilt from its record (a one-line ``NasforgeError`` if it cannot be)."""
        cfg = self.config
        if not cfg:
            raise NasforgeError(f"study {self.name!r} has no recorded configuration (it never ran)")
        spec = cfg.get("family_spec") or {"name": cfg["family"], "config": cfg.get("family_config", {})}
        return load_family(spec)

    def task(self) -> Task:
        """The task the study was run for, from its record."""
        if "task" not in self.config:
            raise NasforgeError(f"study {self.name!r} has no recorded task (it never ran)")
        return Task.from_dict(self.config["task"])

    @property
    def artifacts(self) -> ArtifactStore:
        """Where this study's artifacts are (as recorded; the default for a study recorded before there was a
        setting)."""
        return open_store(self.config.get("artifacts") or store_spec(None, self.storage), self.storage)

    def artifact_key(self, trial: Trial) -> ArtifactKey:
        return ArtifactKey(self.name, trial.number, trial.arch.key)

    # --- running ------------------------------------------------------------------------------------------------
    def run(
        self,
        family: Family,
        strategy: Strategy,
        evaluator: Evaluator | Callable[..., Mapping[str, float]],
        *,
        task: Task | None = None,
        constraints: Sequence[str | Constraint] = (),
        objectives: Sequence[str | Objective] | None = None,
        budget: int | None = None,
        executor: Executor | None = None,
        seed: int = 0,
        cost_models: Sequence[CostModel] = (),
        bits: int = 32,
        on_trial: Callable[[Trial], None] | None = None,
        progress: Callable[[float, float, str], None] | None = None,
        extra_config: Mapping[str, Any] | None = None,
        analytic_costs: bool = True,
        artifacts: str | Mapping[str, Any] | None = None,
        lease_s: float = LEASE_S,
        pruner: Pruner | None = None,
    ) -> Study:
        """Run (or resume) the search until ``budget`` trials exist (all states count) or the strategy is exhausted.

        ``objectives`` default to the evaluator's (``maximize val_acc`` for training). ``task`` defaults to the
        evaluator's, else the family's. ``cost_models`` declare their metrics (``metrics``). ``analytic_costs=False``
        skips the family's analytic costs (constraints and objectives on them are then refused). ``artifacts`` is
        where trials save files: a folder, or ``"database"`` (default: beside a SQLite file, else in the database).
        ``on_trial`` is called with every trial as it finishes; ``progress`` is passed to in-process evaluations.
        While it runs, the study's lease (``lease_s`` seconds, renewed) keeps other drivers off it. ``pruner``
        (``pruners.py``) stops trials early from the curve they report, watching the first objective; a pruner's
        settings left to the full trial's steps default to the evaluator's ``epochs``. It is part of the study's
        record: a study is resumed with the same pruner or refused.
        """
        check_study_name(self.name)
        ev = evaluator if isinstance(evaluator, Evaluator) else FunctionEvaluator(evaluator)
        objs = [Objective.parse(o) for o in (ev.default_objectives if objectives is None else objectives)]
        if not objs:
            raise ConstraintError("a study needs at least one objective, e.g. 'maximize val_acc'")
        dup = [o.metric for i, o in enumerate(objs) if o.metric in [x.metric for x in objs[:i]]]
        if dup:
            raise ConstraintError(f"objective {dup[0]!r} is given twice; give each metric once")
        most = strategy.max_objectives
        if most is not None and len(objs) > most:
            raise ConstraintError(
                f"strategy {strategy.name or type(strategy).__name__!r} optimises {most} objective"
                f"{'s' if most != 1 else ''}, not {len(objs)} ({', '.join(map(str, objs))}); use a multi-objective "
                "strategy such as nsga2, or constrain the other metrics instead"
            )
        task = task or ev.task() or family.default_task
        if task is None:
            raise ConstraintError("no task given and neither the evaluator nor the family knows one; pass a task")
        pricer = Pricer(family, task, ev, cost_models, bits=bits, analytic=analytic_costs)
        gate = Gate([Constraint.parse(c) for c in constraints], pricer)
        if pruner is not None:
            pruner = pruner.with_steps(getattr(ev, "epochs", None))
        cfg = _config(family, strategy, ev, gate, objs, seed, task, extra_config, bits, analytic_costs, pruner)
        spec = self._artifact_spec(artifacts)
        self._check_config(cfg)
        gate.check_names(objs, ev.metrics)
        gate.prove_possible(family)
        if self.id is None:  # accepted: now the study (and its database) is written
            self.id = self.storage.study_id(self.name, create=True)
        with Lease(self.storage, self.id, self.name, lease_s) as lease:
            self._check_config(cfg)  # again: a driver that ran meanwhile may have recorded its settings
            self._artifact_spec(artifacts)
            self._record_config(cfg, spec)
            strategy.set_feasible(gate.feasible_predicate())
            Loop(Plan(
                self.name, self.id, self.storage, family, strategy, ev, task, objs, pricer, gate,
                executor or Serial(), open_store(spec, self.storage), seed, budget, on_trial, progress, lease, pruner,
            )).run()  # fmt: skip
        return self

    # --- configuration ------------------------------------------------------------------------------------------
    def _artifact_spec(self, setting: str | Mapping[str, Any] | None) -> dict[str, Any]:
        old = self.config.get("artifacts")
        if setting is None:
            return old or store_spec(None, self.storage)
        spec = store_spec(setting, self.storage)
        if old and old != spec:
            raise StorageError(
                f"study {self.name!r} keeps its artifacts in {old}, not {spec}; resume it without --artifacts, or "
                "use a new --study name"
            )
        return spec

    def _check_config(self, cfg: Mapping[str, Any]) -> None:
        old = self.config
        if "strategy" not in old:  # no run was ever accepted (new, or holding a one-shot run's record only)
            return
        keys = [k for k in sorted(set(old) | set(cfg)) if k not in _DESCRIPTIVE]
        diff = [k for k in keys if old.get(k) != cfg.get(k)]
        if diff:
            k = diff[0]
            what = ", ".join(f"{p}={a!r} (now {b!r})" for p, a, b in _differences(k, old.get(k), cfg.get(k))[:3])
            raise StorageError(
                f"study {self.name!r} was created with {what}; "
                "rerun with the same settings to resume, or use a new --study name"
            )

    def _record_config(self, cfg: Mapping[str, Any], artifacts: Mapping[str, Any]) -> None:
        old = self.config
        new = {**cfg, "artifacts": dict(artifacts)}
        if old != new:  # a new study, or an older record gaining the descriptive entries
            self.storage.set_config(self.id, {**old, **new})


def _differences(path: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """The settings that differ between two recorded values, named inside their sections (``evaluator_config.lr``)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [(path, a, b)]
    return [d for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) for d in _differences(f"{path}.{k}", a.get(k),
                                                                                          b.get(k))]  # fmt: skip


def _config(family, strategy, evaluator, gate, objs, seed, task, extra, bits, analytic, pruner=None) -> dict[str, Any]:
    """What decides a study's results (plus how to rebuild its family), as the database will hold it."""
    cfg = {
        "family": family.name,
        "family_config": family.config(),
        "family_spec": family.spec(),
        "strategy": strategy.name or type(strategy).__name__,
        "strategy_hyper": strategy.hyper(),
        "evaluator": evaluator.name or type(evaluator).__name__,
        "evaluator_config": evaluator.config(),
        "constraints": [str(c) for c in gate.constraints],
        "objectives": [str(o) for o in objs],
        "seed": seed,
        "strategy_seed": strategy.seed,
        "task": task.to_dict(),
        **dict(extra or {}),
    }
    if bits != 32:  # recorded only when not the default, so that older studies compare equal
        cfg["bits"] = bits
    if not analytic:
        cfg["analytic_costs"] = False
    if pruner is not None and pruner.active:  # recorded only when one prunes, so that older studies compare equal
        cfg["pruner"] = {"name": pruner.name, **pruner.config()}
    return json.loads(json.dumps(cfg))  # tuples -> lists, as the database will hold them
