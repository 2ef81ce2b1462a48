"""A search described as data: the CLI's options and a YAML file map to the same ``SearchConfig``.

Example ``search.yaml``::

    study: practice
    storage: sqlite:///nasforge.db
    family: lenet                # or {name: cell, L: 2, M: 5, N: 2}
    dataset: mnist
    strategy: grid               # or {name: random, seed: 1}
    constraints: ["size<=0.05MiB"]
    objectives: ["maximize val_acc"]
    evaluator: {name: train, epochs: 2, lr: 0.01, momentum: 0.5, batch_size: 64}
    budget: 729
    workers: 1
    artifacts: weights           # optional: a folder (or "database") for the trials' weights

or NAS-Bench-201 by table lookup (the table knows its task; objectives default to ``maximize acc12_cifar10_val``)::

    study: nb201
    family: nb201
    evaluator: table
    strategy: evolution
    constraints: ["lat_ms_fpga<=3"]
    budget: 100
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import NasforgeError
from .registry import Registry
from .storage import DEFAULT_URL


@dataclass
class SearchConfig:
    study: str = "default"
    storage: str = DEFAULT_URL
    family: str = "lenet"
    family_config: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = "mnist"
    data_dir: str | None = None
    evaluator: str = "train"
    evaluator_config: dict[str, Any] = field(default_factory=dict)
    strategy: str = "grid"
    strategy_config: dict[str, Any] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)
    objectives: list[str] | None = None  # None: the evaluator's (maximize val_acc for training)
    cost_models: list[dict[str, Any]] = field(default_factory=list)
    artifacts: str | None = None  # a folder, or "database"; None: beside a SQLite file, else in the database
    budget: int | None = None
    seed: int = 0
    workers: int = 1
    threads: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchConfig:
        if not isinstance(data, Mapping):
            raise NasforgeError("a search file must hold a mapping of settings (study, family, strategy, ...)")
        known = {f.name for f in fields(cls)}
        d = dict(data)
        for key in ("family", "strategy", "evaluator"):  # {name: x, **options} shorthand
            if isinstance(d.get(key), Mapping):
                opts = dict(d[key])
                if "name" not in opts:
                    raise NasforgeError(f"search file: {key} needs a name, e.g. {key}: {{name: ...}}")
                d[key] = opts.pop("name")
                d[f"{key}_config"] = {**d.get(f"{key}_config", {}), **opts}
        for key in ("constraints", "objectives"):
            if isinstance(d.get(key), str):
                d[key] = [d[key]]
        unknown = sorted(set(d) - known)
        if unknown:
            raise NasforgeError(f"search file: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> SearchConfig:
        from .textio import load_yaml

        data = load_yaml(path, "search file")
        return cls.from_dict(data or {})


def build(cfg: SearchConfig):
    """Create the family, strategy, evaluator and executor a config describes (nothing runs yet)."""
    from .constraints import Constraint, Objective
    from .evaluators import create_evaluator
    from .executors import create_executor
    from .spaces import create_family
    from .strategies import create_strategy

    # what the user wrote is read before anything is built or loaded, so a typo fails first and alone
    for c in cfg.constraints:
        Constraint.parse(c)
    for o in cfg.objectives or ():
        Objective.parse(o)
    family = create_family(cfg.family, **cfg.family_config)
    strat_cfg = dict(cfg.strategy_config)
    seed = strat_cfg.pop("seed", cfg.seed)
    strategy = create_strategy(cfg.strategy, family.space, seed=seed, **strat_cfg)
    ev_cfg = dict(cfg.evaluator_config)
    if cfg.threads and cfg.workers <= 1 and cfg.evaluator == "train":
        ev_cfg.setdefault("threads", cfg.threads)
    evaluator = create_evaluator(cfg.evaluator, family=family, dataset=cfg.dataset, data_dir=cfg.data_dir, **ev_cfg)
    executor = create_executor(cfg.workers, cfg.threads or 1)
    task = (evaluator.task() or family.default_task) if cfg.cost_models else None  # from metadata: nothing loaded
    cost_models = [_cost_model(family, task, spec) for spec in cfg.cost_models]
    return family, strategy, evaluator, executor, cost_models


# cost models by name: ``factory(family, task, **options) -> callable(arch) -> {metric: value}``; latency sources
# register here, and ``cost_models: [{name: latency, source: lut, path: lut.json}]`` in a search file selects one
COST_MODELS: Registry[Callable[..., Any]] = Registry("cost model")


@COST_MODELS.register("latency")
def _latency(family, task, source: str = "measured", **options: Any):
    """``{name: latency, source: measured|lut|predictor, ...}``: adds ``latency_ms`` (see ``nasforge.latency``)."""
    from .latency import latency_model

    return latency_model(source, family, task, **options)


def _cost_model(family, task, spec: Mapping[str, Any]):
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise NasforgeError(f"a cost model needs a name, e.g. {{name: latency, source: lut}}; got {spec!r}")
    factory = COST_MODELS.get(spec["name"])
    return factory(family, task, **{k: v for k, v in spec.items() if k != "name"})
