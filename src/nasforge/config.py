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
    pruner: asha                 # optional: stop bad trials early (or {name: hyperband, reduction_factor: 3})

or NAS-Bench-201 by table lookup (the table knows its task; objectives default to ``maximize acc12_cifar10_val``)::

    study: nb201
    family: nb201
    evaluator: table
    strategy: evolution
    constraints: ["lat_ms_fpga<=3"]
    budget: 100

Everything is checked before anything is built, loaded or recorded: the file through a schema (``SearchFile``, pydantic,
strict: ``"3"`` is not a number, ``true`` is not an integer), unknown and duplicate keys refused, every value against
its range, constraints and objectives parsed. Errors are one line naming the key and its line in the file, or the
command-line option (``Where``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConstraintError, NasforgeError
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
    pruner: str = "none"  # stops bad trials early (pruners.py): none, median, asha, hyperband
    pruner_config: dict[str, Any] = field(default_factory=dict)
    artifacts: str | None = None  # a folder, or "database"; None: beside a SQLite file, else in the database
    budget: int | None = None
    seed: int = 0
    workers: int = 1
    threads: int | None = None
    # how errors name this config's settings (its file and lines, or its options); set when it is read or checked
    where: ClassVar[Where | None] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: Where | None = None) -> SearchConfig:
        """A checked config from plain data (a parsed search file); ``{name: x, **options}`` stands for ``x`` and its
        ``x_config``. Errors are one-line ``NasforgeError``s that ``where`` words (default: by key)."""
        where = where or Where()
        if not isinstance(data, Mapping):
            raise NasforgeError(f"{where.prefix(())}a search file must hold a mapping of settings (study, family, "
                                f"strategy, ...), not {type(data).__name__}")  # fmt: skip
        d = _expand(dict(data), where)
        _check(d, where)
        cfg = cls(**d)
        cfg.where = where
        return cfg

    @classmethod
    def from_file(cls, path: str | Path) -> SearchConfig:
        """The config a YAML (or JSON) search file describes."""
        from .textio import read_yaml

        return cls._from_document(read_yaml(path, "search file"), str(path))

    @classmethod
    def from_text(cls, text: str, name: str = "<text>") -> SearchConfig:
        """The config a search file's text describes; ``name`` stands for the file in errors."""
        from .textio import parse_yaml

        return cls._from_document(parse_yaml(text, f"search file {name}"), name)

    @classmethod
    def _from_document(cls, doc: Any, name: str) -> SearchConfig:
        if doc.data is None or doc.data == {}:
            # an empty file once meant "all defaults": a 729-arch training nobody asked for
            raise NasforgeError(f"search file {name} sets nothing; write at least the study and the family, e.g. "
                                "'study: practice' and 'family: lenet' (see `nasforge search --help` for the rest)")
        return cls.from_dict(doc.data, Where(file=name, doc=doc))

    def validated(self, options: Mapping[tuple[str, ...], str] | None = None) -> SearchConfig:
        """This config, checked like a search file; ``options`` names settings by command-line option in errors."""
        self.where = self.where or Where(options=options)  # without options: by key path, as in a file
        _check(asdict(self), self.where)
        return self


# --- the schema ---------------------------------------------------------------------------------------------------
Count = Annotated[int, Field(ge=1)]
Text = Annotated[str, Field(min_length=1)]
Options = dict[str, Any]


class SearchFile(BaseModel):
    """What a search file may hold (after ``{name: x, **options}`` is expanded into ``x`` and ``x_config``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    study: Text = "default"
    storage: Text = DEFAULT_URL
    family: Text = "lenet"
    family_config: Options = {}
    dataset: Text | None = "mnist"
    data_dir: Text | None = None
    evaluator: Text = "train"
    evaluator_config: Options = {}
    strategy: Text = "grid"
    strategy_config: Options = {}
    constraints: list[Text] = []
    objectives: Annotated[list[Text], Field(min_length=1)] | None = None
    cost_models: list[Options] = []
    pruner: Text = "none"
    pruner_config: Options = {}
    artifacts: Text | None = None
    budget: Annotated[int, Field(ge=0)] | None = None
    seed: Annotated[int, Field(ge=0)] = 0  # numpy's generators take no negative seed
    workers: Count = 1
    threads: Count | None = None


class TrainSettings(BaseModel):
    """The ``train`` evaluator's settings and their ranges (checked where given; the evaluator keeps its defaults, and
    the evaluator registry refuses settings it does not take)."""

    model_config = ConfigDict(extra="allow", strict=True)

    epochs: Count = 2
    optimizer: Literal["sgd", "adamw"] = "sgd"
    # None: the optimizer's default (sgd: lr 0.01, momentum 0.5, no weight decay; adamw: lr 0.001, weight decay 0.01)
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    momentum: Annotated[float, Field(ge=0, le=1)] | None = None
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    schedule: Literal["constant", "cosine"] = "constant"
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    batch_size: Count = 64
    device: Text = "auto"
    # a fraction (0.1) or a count (5000) of the training data; None: 10%, at most 5000
    val_size: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    train_subset: Count | None = None
    test_subset: Count | None = None
    threads: Count | None = None
    max_loss: Annotated[float, Field(gt=0)] = 1e3
    save_weights: bool = True


# an evaluator's settings schema by evaluator name; an evaluator not listed checks its own settings
EVALUATOR_SETTINGS: dict[str, type[BaseModel]] = {"train": TrainSettings}
_SHORTHAND = ("family", "strategy", "evaluator", "pruner")
# options that the config passes itself, so a section may not set them again
_TAKEN = {"family_config": {"name"}, "strategy_config": {"name", "space"},
          "evaluator_config": {"name", "family", "dataset", "data_dir"}, "pruner_config": {"name"}}  # fmt: skip
_TAKEN_HINT = {"name": "the name goes in the section's name", "space": "the space is the family's",
               "family": "the family is the top-level setting family", "dataset": "use the top-level setting dataset",
               "data_dir": "use the top-level setting data_dir"}  # fmt: skip


# --- naming settings in errors ------------------------------------------------------------------------------------
@dataclass
class Where:
    """How an error names a setting: by its key path and line in a search file (``file``, ``doc``), or by the
    command-line option that set it (``options``: key path -> option, e.g. ``("evaluator_config", "epochs")`` ->
    ``--epochs``). ``moved`` maps a path of the expanded config back to the file's (``evaluator.epochs``)."""

    file: str | None = None
    doc: Any = None  # textio.Document
    options: Mapping[tuple[str, ...], str] | None = None
    moved: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)

    def name(self, loc: tuple[Any, ...]) -> str:
        loc = tuple(str(x) for x in loc)
        if self.options is not None:
            for n in range(len(loc), 0, -1):
                if loc[:n] in self.options:
                    return " ".join([self.options[loc[:n]], ".".join(loc[n:])]).strip()
            return "--" + loc[0].replace("_", "-") if loc else "the options"
        path = self.moved.get(loc[:2], loc[:2]) + loc[2:]
        return ".".join(path) or "the file"

    def prefix(self, loc: tuple[Any, ...]) -> str:
        """``search file F, line N: `` for a file (nothing for the command line, whose messages quote the input)."""
        if self.file is None:
            return ""
        loc = tuple(str(x) for x in loc)
        line = self.doc.line(self.moved.get(loc[:2], loc[:2]) + loc[2:]) if self.doc is not None else None
        return f"search file {self.file}{f', line {line}' if line else ''}: "

    def fail(self, loc: tuple[Any, ...], what: str) -> NasforgeError:
        return NasforgeError(f"{self.prefix(loc)}{self.name(loc)} {what}")

    @contextmanager
    def within(self, loc: tuple[Any, ...]) -> Iterator[None]:
        """Errors of what the section at ``loc`` builds (its family, strategy, ...) say where the section is."""
        try:
            yield
        except NasforgeError as e:
            if not self.prefix(loc):
                raise
            try:
                located = type(e)(f"{self.prefix(loc)}{e}")
            except TypeError:  # a subclass with another constructor
                located = NasforgeError(f"{self.prefix(loc)}{e}")
            raise located from None


def _expand(d: dict[str, Any], where: Where) -> dict[str, Any]:
    """``family: {name: cell, L: 2}`` -> ``family: cell``, ``family_config: {L: 2}`` (a string stands alone); a single
    constraint or objective may be a string."""
    for key in _SHORTHAND:
        v = d.get(key)
        if not isinstance(v, Mapping):
            continue
        opts = dict(v)
        if "name" not in opts:
            raise where.fail((key,), f"needs a name, e.g. {key}: {{name: ..., option: value}}")
        d[key] = opts.pop("name")
        where.moved[(key,)] = (key, "name")
        cfg_key = f"{key}_config"
        given = d.get(cfg_key, {})
        if isinstance(given, Mapping):
            both = sorted(set(given) & set(opts), key=str)
            if both:
                raise where.fail((cfg_key, both[0]), f"is given both in {key} and in {cfg_key}; give it once")
            d[cfg_key] = {**given, **opts}
        for k in opts:
            where.moved[(cfg_key, str(k))] = (key, str(k))
    for key in ("constraints", "objectives"):
        if isinstance(d.get(key), str):
            d[key] = [d[key]]
    return d


_KNOWN = [f.name for f in fields(SearchConfig)]


def _reason(err: Mapping[str, Any]) -> str:
    """Pydantic's message as the rest of a sentence that starts with the setting's name."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "is not a setting"
    if kind in ("too_short", "string_too_short") and (err.get("ctx") or {}).get("min_length") == 1:
        return "must not be empty" + ("; leave it out for the evaluator's default" if err["loc"] == ("objectives",)
                                      else "")
    msg = re.sub(r"^\w+ should", "must", msg)
    got = err.get("input")
    return f"{msg[:1].lower()}{msg[1:]}, got {got!r}" if not isinstance(got, dict | list) else msg


def _raise(e: ValidationError, where: Where, base: tuple[str, ...] = ()) -> None:
    err = e.errors()[0]
    loc = base + tuple(x for x in err["loc"] if x != "[key]")
    if err["type"] == "invalid_key" or err["loc"][-1:] == ("[key]",):
        raise NasforgeError(f"{where.prefix(loc)}key {loc[-1]!r} is not text; settings and options are named by "
                            "text such as budget or epochs") from None
    if err["type"] == "extra_forbidden" and not base:
        key = str(loc[0])
        near = difflib.get_close_matches(key, _KNOWN, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise NasforgeError(f"{where.prefix(loc)}unknown setting {key!r}; {hint}known: {', '.join(_KNOWN)}") from None
    raise where.fail(loc, _reason(err)) from None


def _check(d: Mapping[str, Any], where: Where) -> None:
    """Refuse, in one line, anything the schema, an evaluator's settings, or the constraint and objective readers
    refuse."""
    from .constraints import Constraint, Objective

    try:
        cfg = SearchFile.model_validate(d)
    except ValidationError as e:
        _raise(e, where)
    for key, taken in _TAKEN.items():  # set by the config itself: given again, the call would get it twice
        clash = sorted(set(getattr(cfg, key)) & taken)
        if clash:
            raise where.fail((key, clash[0]), f"cannot be set here; {_TAKEN_HINT[clash[0]]}")
    seed = cfg.strategy_config.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise where.fail(("strategy_config", "seed"), f"must be an integer >= 0, got {seed!r}")
    schema = EVALUATOR_SETTINGS.get(cfg.evaluator)
    if schema is not None:
        try:
            schema.model_validate(cfg.evaluator_config)
        except ValidationError as e:
            _raise(e, where, ("evaluator_config",))
    for key, parse in (("constraints", Constraint.parse), ("objectives", Objective.parse)):
        for i, text in enumerate(getattr(cfg, key) or ()):
            try:
                parse(text)
            except ConstraintError as e:
                raise NasforgeError(f"{where.prefix((key, i))}{e}") from None
    for i, spec in enumerate(cfg.cost_models):
        if not isinstance(spec.get("name"), str):
            raise where.fail(("cost_models", i), "needs a name, e.g. {name: latency, source: lut}")


def build(cfg: SearchConfig):
    """Create the family, strategy, evaluator and executor a config describes (nothing runs yet)."""
    from .evaluators import create_evaluator
    from .executors import create_executor
    from .spaces import create_family
    from .strategies import create_strategy

    # what the user wrote is read before anything is built or loaded, so a typo fails first and alone
    where = cfg.validated().where
    with where.within(("family",)):
        family = create_family(cfg.family, **cfg.family_config)
    strat_cfg = dict(cfg.strategy_config)
    seed = strat_cfg.pop("seed", cfg.seed)
    with where.within(("strategy",)):
        strategy = create_strategy(cfg.strategy, family.space, seed=seed, **strat_cfg)
    ev_cfg = dict(cfg.evaluator_config)
    if cfg.threads and cfg.workers <= 1 and cfg.evaluator == "train":
        ev_cfg.setdefault("threads", cfg.threads)
    with where.within(("evaluator",)):
        evaluator = create_evaluator(cfg.evaluator, family=family, dataset=cfg.dataset, data_dir=cfg.data_dir,
                                     **ev_cfg)  # fmt: skip
    executor = create_executor(cfg.workers, cfg.threads or 1)
    with where.within(("dataset",)):  # a missing or unknown data set fails here, before the study is opened
        task = evaluator.task() or family.default_task  # from metadata: nothing is loaded
    with where.within(("cost_models",)):
        cost_models = [_cost_model(family, task, spec) for spec in cfg.cost_models]
    return family, strategy, evaluator, executor, cost_models


def build_pruner(cfg: SearchConfig):
    """The pruner a config describes (``none``: one that never prunes); an unknown name or option is one line."""
    from .pruners import create_pruner

    where = cfg.where or Where()
    with where.within(("pruner",)):
        return create_pruner(cfg.pruner, **cfg.pruner_config)


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
