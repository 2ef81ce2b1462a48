"""The ``nasforge`` command line. Every error a user can cause ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .commands.output import JsonOpt, one_format, print_whole
from .commands.output import writing as _writing
from .errors import NasforgeError
from .storage import DEFAULT_URL
from .units import human

app = typer.Typer(
    name="nasforge",
    help="Hardware-aware neural architecture search. Start with: nasforge search --help",
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
# a pipe or CI log gets whole lines instead of rich's 80-column default (tables: commands.output.print_whole)
out = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=not sys.stdout.isatty())

StorageOpt = Annotated[str, typer.Option("--storage", help="Database URL (SQLAlchemy); SQLite file by default.")]
StudyArg = Annotated[str, typer.Argument(help="Study name.")]


def _kv(items: list[str] | None, what: str) -> dict:
    from .textio import parse_kv

    return parse_kv(items, what)


@app.command()
def search(
    ctx: typer.Context,
    family: Annotated[str, typer.Option(help="Search-space family: lenet, cell, ... (see `nasforge list`).")] = "lenet",
    dataset: Annotated[
        str, typer.Option(help="Data: mnist, fashion-mnist, an .npz file (x_train, y_train, ...) or an image folder.")
    ] = "mnist",
    strategy: Annotated[str, typer.Option(help="Search strategy: grid, random, ...")] = "grid",
    constraint: Annotated[
        list[str] | None, typer.Option("--constraint", "-c", help="e.g. 'size<=0.05MiB', 'macs<=5M' (repeatable).")
    ] = None,
    objective: Annotated[
        list[str] | None,
        typer.Option("--objective", "-o", help="e.g. 'maximize val_acc' (repeatable); default: the evaluator's."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs per candidate.")] = 2,
    optimizer: Annotated[str, typer.Option(help="Training optimizer: sgd or adamw.")] = "sgd",
    lr: Annotated[float | None, typer.Option(help="Learning rate [default: sgd 0.01, adamw 0.001].")] = None,
    momentum: Annotated[float | None, typer.Option(help="SGD momentum [default: 0.5].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay [default: sgd 0, adamw 0.01].")] = None,
    schedule: Annotated[str, typer.Option(help="Learning-rate schedule: constant or cosine.")] = "constant",
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the training loss.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    device: Annotated[str, typer.Option(help="Training device: auto, cpu, cuda or cuda:N.")] = "auto",
    train_subset: Annotated[int | None, typer.Option(help="Use only N training images (quick runs).")] = None,
    test_subset: Annotated[int | None, typer.Option(help="Use only N test images (quick runs).")] = None,
    val_size: Annotated[
        float | None,
        typer.Option(
            help="Validation held out of the training data: a fraction (0.1) or a count [default: 10%, at most 5000]."
        ),
    ] = None,
    budget: Annotated[int | None, typer.Option(help="Number of trials (all states); default: until exhausted.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the strategy and of every trial.")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel worker processes (1 = in-process).")] = 1,
    threads: Annotated[int | None, typer.Option(help="Torch threads per evaluation.")] = None,
    study: Annotated[str, typer.Option(help="Study name; rerunning the same command resumes it.")] = "default",
    storage: StorageOpt = DEFAULT_URL,
    artifacts: Annotated[
        str | None,
        typer.Option(help="Where trials save weights: a folder, or 'database' (default: beside a SQLite file)."),
    ] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the data sets (else NASFORGE_DATA).")] = None,
    family_opt: Annotated[list[str] | None, typer.Option("--family-opt", help="Family option key=value.")] = None,
    strategy_opt: Annotated[list[str] | None, typer.Option("--strategy-opt", help="Strategy option key=value.")] = None,
    evaluator: Annotated[str, typer.Option(help="Evaluator: train (from scratch), ...")] = "train",
    evaluator_opt: Annotated[list[str] | None, typer.Option("--evaluator-opt", help="Evaluator option k=v.")] = None,
    latency: Annotated[
        str | None, typer.Option(help="Add latency_ms as a cheap metric from: measured, lut, predictor.")
    ] = None,
    latency_opt: Annotated[
        list[str] | None, typer.Option("--latency-opt", help="Latency option k=v, e.g. table=lut.json, threads=1.")
    ] = None,
    pruner: Annotated[
        str, typer.Option(help="Stop bad trials early: none, median, asha, hyperband (watches the first objective).")
    ] = "none",
    pruner_opt: Annotated[
        list[str] | None, typer.Option("--pruner-opt", help="Pruner option k=v, e.g. reduction_factor=3.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-trial lines.")] = False,
) -> None:
    """Search a family under constraints; results go to the study's database (resumable)."""
    from .config import SearchConfig

    ev_cfg = _kv(evaluator_opt, "--evaluator-opt")
    names = {**OPTION_NAMES, **{("evaluator_config", k): f"--evaluator-opt {k}" for k in ev_cfg}}
    training = {
        "epochs": epochs, "optimizer": optimizer, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
        "schedule": schedule, "label_smoothing": label_smoothing, "batch_size": batch_size, "device": device,
        "val_size": val_size, "train_subset": train_subset, "test_subset": test_subset,
    }  # fmt: skip
    if evaluator == "train":
        ev_cfg = {**training, **ev_cfg}
    else:
        ev_cfg = {**_given_training(ctx, evaluator, training), **ev_cfg}
    cfg = SearchConfig(
        study=study,
        storage=storage,
        family=family,
        family_config=_kv(family_opt, "--family-opt"),
        dataset=dataset,
        data_dir=data_dir,
        evaluator=evaluator,
        evaluator_config=ev_cfg,
        strategy=strategy,
        strategy_config=_kv(strategy_opt, "--strategy-opt"),
        constraints=list(constraint or []),
        objectives=list(objective) if objective else None,
        artifacts=artifacts,
        budget=budget,
        seed=seed,
        workers=workers,
        threads=threads,
        cost_models=[{"name": "latency", "source": latency, **_kv(latency_opt, "--latency-opt")}] if latency else [],
        pruner=pruner,
        pruner_config=_kv(pruner_opt, "--pruner-opt"),
    )
    _run(cfg.validated(names), quiet)


def _given_training(ctx: typer.Context, evaluator: str, training: dict) -> dict:
    """The training options given on the command line, for an evaluator other than ``train`` that takes them (the
    ``inherit`` and ``supernet`` evaluators train or load data too); one it does not take is a usage error."""
    from .evaluators import EVALUATORS

    def typed(k: str) -> bool:  # the option was written, not defaulted (typer's vendored click says so)
        src = ctx.get_parameter_source(k)
        return src is not None and src.name == "COMMANDLINE"

    given = {k: v for k, v in training.items() if typed(k)}
    if not given:
        return {}
    import inspect

    takes = set(EVALUATORS.options(evaluator))
    params = inspect.signature(EVALUATORS.get(evaluator)).parameters.values()
    passes_on = any(p.kind is p.VAR_KEYWORD for p in params)  # hands the rest to a TrainEvaluator (inherit)
    bad = [] if passes_on else [k for k in given if k not in takes]
    if bad:
        raise NasforgeError(f"--{bad[0].replace('_', '-')} does not apply to evaluator {evaluator!r}; its settings "
                            f"(--evaluator-opt key=value): {', '.join(sorted(takes)) or 'none'}")  # fmt: skip
    return given


# how errors name a setting of ``search``: by the option that sets it (SearchConfig key path -> option)
OPTION_NAMES = {
    **{(k,): f"--{k.replace('_', '-')}" for k in ("study", "storage", "family", "dataset", "data_dir", "evaluator",
                                                  "strategy", "artifacts", "budget", "seed", "workers", "threads",
                                                  "pruner")},
    **{("evaluator_config", k): f"--{k.replace('_', '-')}" for k in (
        "epochs", "optimizer", "lr", "momentum", "weight_decay", "schedule", "label_smoothing", "batch_size", "device",
        "train_subset", "test_subset", "val_size")},
    ("family_config",): "--family-opt", ("strategy_config",): "--strategy-opt",
    ("evaluator_config",): "--evaluator-opt", ("constraints",): "--constraint", ("objectives",): "--objective",
    ("cost_models",): "--latency-opt", ("pruner_config",): "--pruner-opt",
}  # fmt: skip


@app.command("run")
def run_file(
    path: Annotated[Path, typer.Argument(help="A YAML (or JSON) search file.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run (or resume) a search described in a YAML file."""
    from .config import SearchConfig

    _run(SearchConfig.from_file(path), quiet)


def _run(cfg, quiet: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .config import build, build_pruner
    from .quick import shrink_config
    from .study import Study

    cfg = shrink_config(cfg)
    pruner = build_pruner(cfg.validated())  # no I/O: a bad pruner name or option fails first
    family, strategy, evaluator, executor, cost_models = build(cfg)
    study = Study.open(cfg.study, cfg.storage)
    before = study.trials()
    total = cfg.budget or family.space.size
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet, transient=False,
    )  # fmt: skip
    search_task = bar.add_task("search", total=total, completed=sum(1 for t in before if t.finished_at))
    train_task = bar.add_task("trial", total=1, visible=False)
    shown: list[str] = []

    def started() -> None:
        # the bar (and the resume note) appear once the run is accepted: a refused run prints its error line alone
        if not shown:
            if before:
                console.print(f"resuming study [b]{escape(cfg.study)}[/b]: {len(before)} trials recorded")
            bar.start()
            # the objectives are recorded once the run has started
            shown.extend(dict.fromkeys([o.metric for o in study.objectives()] + ["val_acc", "test_acc"]))

    def on_trial(t) -> None:
        started()
        bar.advance(search_task)
        bar.update(train_task, visible=False)
        if t.state.value != "infeasible" and not quiet:
            vals = " ".join(f"{k}={human(k, t.metrics[k])}" for k in shown if k in t.metrics)
            msg = f"trial {t.number} {family.describe(t.arch)} {t.state.value} {vals} {t.error or ''}"
            bar.console.print(escape(msg.rstrip()), highlight=False)

    def progress(done: float, tot: float, label: str) -> None:
        started()
        bar.update(train_task, completed=done, total=tot, description=f"  train {label}", visible=True)

    try:
        study.run(
            family, strategy, evaluator, constraints=cfg.constraints, objectives=cfg.objectives, budget=cfg.budget,
            executor=executor, seed=cfg.seed, cost_models=cost_models, on_trial=on_trial, progress=progress,
            extra_config={"cost_models": cfg.cost_models} if cfg.cost_models else None, artifacts=cfg.artifacts,
            pruner=pruner,
        )  # fmt: skip
    finally:
        bar.stop()
    _summary(study, family.describe)
    if not study.trials() and (cfg.constraints or cfg.budget != 0):
        # nothing was ever proposed: every arch the strategy looked at broke a constraint it checks before training
        raise NasforgeError(
            f"no arch was tried: none that the strategy found meets {' and '.join(cfg.constraints) or 'the settings'}; "
            "relax the constraints (see `nasforge space` and the costs of `nasforge show --all`)"
        )
    _no_result(study, family.describe)


def _no_result(study, describe) -> None:
    """A run that ends without a feasible complete trial exits non-zero, saying why: every evaluation failed (a
    setting that breaks training), or no trial meets the constraints (naming the closest one)."""
    from .trial import State

    trials = study.trials()
    if not trials or study.best() is not None:
        return
    done = [t for t in trials if t.state == State.COMPLETE]
    failed = [t for t in trials if t.state == State.FAILED]
    if failed and not done:
        raise NasforgeError(
            f"all {len(failed)} evaluated trials failed, the first with: {failed[0].error or 'no message'}; fix the "
            "cause and run again under a new --study name (failed trials are recorded, not retried)"
        )
    cons = study.constraints()
    pool = done or [t for t in trials if t.state == State.INFEASIBLE]
    if not cons or not pool:
        return

    def distance(t) -> float:
        return sum(c.violation(t.values) / max(abs(c.value), 1e-12) for c in cons)

    near = min(pool, key=lambda t: (distance(t), t.number))
    has = ", ".join(f"{c.metric}={human(c.metric, near.value(c.metric))}" for c in cons)
    raise NasforgeError(
        f"no trial of {len(trials)} meets {' and '.join(map(str, cons))}; the closest, trial {near.number} "
        f"{describe(near.arch)}, has {has}: relax the constraints, or raise --budget to look further"
    )


def _summary(study, describe) -> None:
    from collections import Counter

    ts = study.trials()
    c = Counter(t.state.value for t in ts)
    out.print(f"study [b]{study.name}[/b]: {len(ts)} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items())))
    _table(study, describe, limit=10)
    best = study.best()
    if best is None:
        out.print("no feasible trial completed")
    else:
        from .report import columns

        shown = columns(study, [best])[1]
        out.print(f"best: trial {best.number} {describe(best.arch)} " +
                  " ".join(f"{k}={human(k, best.value(k))}" for k in shown))


def _describer(study):
    """The study's family's ``describe``, or the arch as JSON when the family cannot be rebuilt here (said once)."""
    try:
        return study.family().describe
    except NasforgeError as e:
        console.print(f"note: showing archs as JSON: {escape(str(e))}", highlight=False, soft_wrap=True)
        return lambda arch: arch.to_json()


def _shown(study, limit: int | None = None, show_all: bool = False, sort: str | None = None) -> tuple[list, list]:
    """(all trials, the rows a table shows): feasible ones unless ``show_all``, best first, at most ``limit``."""
    from .report import sort_key
    from .trial import State

    trials = study.trials()
    shown = trials if show_all else [t for t in trials if t.state != State.INFEASIBLE]
    return trials, sorted(shown, key=sort_key(study, sort))[:limit or None]


def _table(study, describe, limit: int | None = None, show_all: bool = False, sort: str | None = None) -> None:
    from .report import columns
    from .trial import State

    trials, shown = _shown(study, limit, show_all, sort)
    costs, metrics = columns(study, trials)
    tab = Table(title=f"{study.name}: {len(shown)} of {len(trials)} trials", show_lines=False)
    for col in ["#", "arch", *costs, *metrics, "state", "time s"]:
        tab.add_column(col, justify="left" if col in ("arch", "state") else "right")
    for t in shown:
        tab.add_row(
            str(t.number), describe(t.arch), *(human(m, t.costs.get(m)) for m in costs),
            *(human(m, t.value(m)) for m in metrics), t.state.value,
            f"{t.duration_s:.1f}" if t.duration_s else "-",
        )  # fmt: skip
    print_whole(out, tab)
    n_inf = sum(1 for t in trials if t.state == State.INFEASIBLE)
    if n_inf and not show_all:
        out.print(f"{n_inf} infeasible archs (recorded with their costs, never evaluated) hidden; --all shows them")


@app.command()
def show(
    name: StudyArg,
    storage: StorageOpt = DEFAULT_URL,
    show_all: Annotated[bool, typer.Option("--all", help="Include infeasible archs.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most N rows.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by this metric (default: the first objective).")] = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="The table as CSV on stdout (values as stored).")] = False,
) -> None:
    """Table of a study's trials: arch, params, MACs, size, accuracy, state, time."""
    from .commands.output import print_json, trial_record, write_csv
    from .report import columns
    from .study import Study

    one_format(as_json, as_csv)
    study = Study.open(name, storage, create=False)
    known = sorted({k for t in study.trials() for k in t.values})
    if sort is not None and known and sort not in known:
        raise NasforgeError(f"--sort {sort!r}: no trial of study {name!r} has that metric; sort by one of: "
                            f"{', '.join(known)}")  # fmt: skip
    describe = _describer(study)
    if not (as_json or as_csv):
        _table(study, describe, limit=limit, show_all=show_all, sort=sort)
        return
    trials, shown = _shown(study, limit, show_all, sort)
    if as_csv:
        costs, metrics = columns(study, trials)
        write_csv(shown, describe, costs + metrics)
        return
    print_json({"study": study.name, "trials_total": len(trials), "objectives": [str(o) for o in study.objectives()],
                "constraints": [str(c) for c in study.constraints()],
                "trials": [trial_record(t, describe) for t in shown]})  # fmt: skip


@app.command()
def best(
    name: StudyArg,
    storage: StorageOpt = DEFAULT_URL,
    export: Annotated[Path | None, typer.Option(help="Write weights, arch JSON and ONNX into this folder.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The best feasible trial; with --export, the model ready to ship."""
    from .commands.output import print_json, trial_record
    from .study import Study

    study = Study.open(name, storage, create=False)
    describe = _describer(study)
    b = study.best()
    if b is None:
        raise NasforgeError(f"study {name!r} has no feasible completed trial yet")
    if as_json:
        doc = {"study": study.name, "best": trial_record(b, describe)}
        if export is not None:
            doc["export"] = _export(study, b, export, say=False)
        print_json(doc)
        return
    out.print(f"best of [b]{name}[/b]: trial {b.number} {describe(b.arch)}")
    for k, v in {**b.costs, **b.metrics}.items():
        out.print(f"  {k:>14}: {human(k, v)}")
    out.print(f"  arch: {b.arch.to_json()}")
    if export is not None:
        _export(study, b, export)


@app.command("export")
def export_cmd(
    name: StudyArg,
    out_dir: Annotated[Path, typer.Argument(help="Folder to write into.")],
    storage: StorageOpt = DEFAULT_URL,
    trial: Annotated[int | None, typer.Option(help="Trial number (default: the best).")] = None,
) -> None:
    """Export a trial's model: model.pt (state_dict), arch.json, model.onnx (checked against torch)."""
    from .study import Study

    study = Study.open(name, storage, create=False)
    if trial is None:
        t = study.best()
        if t is None:
            raise NasforgeError(f"study {name!r} has no feasible completed trial yet")
    else:
        t = next((x for x in study.trials() if x.number == trial), None)
        if t is None:
            raise NasforgeError(f"study {name!r} has no trial {trial}")
    _export(study, t, out_dir)


def _export(study, trial, out_dir: Path, say: bool = True) -> dict:
    """Export a trial into ``out_dir``; says (or, for ``--json``, returns) every file written there."""
    from .export import export_trial

    with _writing(out_dir):
        info = export_trial(study, trial, out_dir)
    files = [*info["files"].values(), "arch.json", "MODEL_CARD.md"]
    written = [f for f in dict.fromkeys(files) if (out_dir / f).is_file()]
    if say:
        diff = info.get("onnx_max_abs_diff")
        out.print(f"exported trial {trial.number} to {out_dir}: " + ", ".join(written) +
                  (f" (ONNX vs torch max |diff| {diff:.2e})" if diff is not None else ""))
    return {"trial": trial.number, "folder": str(out_dir), "files": written, "onnx_max_abs_diff": info.get(
        "onnx_max_abs_diff")}


@app.command()
def report(
    name: StudyArg,
    storage: StorageOpt = DEFAULT_URL,
    out_path: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Write a self-contained HTML report with plots (accuracy vs cost with the limit, best-so-far, Pareto front)."""
    from .report import write_report
    from .study import Study

    study = Study.open(name, storage, create=False)
    with _writing(out_path):
        p = write_report(study, out_path, describe=_describer(study))
    out.print(f"report written to {p}")


@app.command("list")
def list_cmd(
    storage: Annotated[str | None, typer.Option(help="Also list the studies in this database.")] = None,
    as_json: JsonOpt = False,
):
    """Registered families, strategies, evaluators and data sets (and the studies in a database)."""
    from .commands.output import print_json
    from .data import IMAGE_SETS
    from .evaluators import EVALUATORS
    from .spaces import FAMILIES, create_family
    from .strategies import STRATEGIES

    families: dict[str, dict] = {}
    for fam in FAMILIES.names():
        try:
            families[fam] = {"size": create_family(fam).space.size}
        except NasforgeError as e:
            families[fam] = {"size": None, "error": str(e)}
    doc = {"families": families, "strategies": list(STRATEGIES.names()), "evaluators": list(EVALUATORS.names()),
           "datasets": sorted(IMAGE_SETS)}  # fmt: skip
    if storage:
        from .storage import Storage

        doc["studies"] = list(Storage(storage).study_names())
    if as_json:
        print_json(doc)
        return
    for fam, d in families.items():
        size = d["error"] if d["size"] is None else f"{d['size']:,} archs"
        out.print(f"family    {fam:<12} {size}")
    out.print("strategy  " + ", ".join(doc["strategies"]))
    out.print("evaluator " + ", ".join(doc["evaluators"]))
    out.print("data set  " + ", ".join(doc["datasets"]))
    if storage:
        out.print("studies   " + (", ".join(doc["studies"]) or "none"))


@app.command()
def space(
    family: Annotated[str, typer.Argument(help="Family name.")],
    family_opt: Annotated[list[str] | None, typer.Option("--family-opt", help="Family option key=value.")] = None,
) -> None:
    """Describe a family's search space: its dimensions and exact size."""
    from .spaces import create_family

    fam = create_family(family, **_kv(family_opt, "--family-opt"))
    sp = fam.space
    out.print(f"family {family}: {len(sp.dims)} dimensions, {sp.size:,} archs (exactly {sp.size})")
    for k, c in sp.dims.items():
        out.print(f"  {k}: {list(c.values)}")


def _mount_subcommands() -> None:
    from . import commands

    for mod in pkgutil.iter_modules(commands.__path__):
        m = importlib.import_module(f"{commands.__name__}.{mod.name}")
        sub = getattr(m, "app", None)
        # once: main() may run many times in one process (tests, notebooks), and each mount would add the group again
        if isinstance(sub, typer.Typer) and all(g.typer_instance is not sub for g in app.registered_groups):
            app.add_typer(sub)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"nasforge {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Hardware-aware neural architecture search. Start with: nasforge search --help"""


INTERRUPTED = "interrupted: finished trials are saved; rerun the same command to resume"


def usage_line(e: typer.TyperException) -> str:
    """One line for a usage error of the command-line framework (typer's own copy of click): what is wrong, with the
    commands a group offers when none was given, and where its help is."""
    msg = " ".join(e.format_message().split()).rstrip(".")
    ctx = getattr(e, "ctx", None)
    path = getattr(ctx, "command_path", "") or "nasforge"
    cmd = getattr(ctx, "command", None)
    if msg.startswith("Missing command") and hasattr(cmd, "list_commands"):
        msg = f"{path} needs a command: one of {', '.join(cmd.list_commands(ctx))}"
    return f"{msg[:1].lower()}{msg[1:]} (see '{path} --help')"


def _bug_line() -> str:
    try:  # a project URL from the installed metadata, when the package declares one
        from importlib.metadata import metadata

        urls = [u.split(",", 1)[-1].strip() for u in metadata("nasforge").get_all("Project-URL") or []]
    except Exception:  # noqa: BLE001 - the bug line must never fail itself
        urls = []
    where = urls[0] if urls else "the nasforge issue tracker"
    return f"nasforge bug: an unexpected error (traceback above); please report it, with the command that caused it, " \
           f"to {where}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app; every user error (a ``NasforgeError``, or a usage error of the command-line framework)
    becomes one line on stderr and exit status 2; Ctrl-C prints how to resume (130); anything else is a bug, shown
    with its traceback and a line that says so (1)."""
    try:
        _mount_subcommands()
        # standalone_mode=False: errors come back here instead of ending the process inside typer
        rc = app(args=argv, prog_name="nasforge", standalone_mode=False)
        if rc == 130:  # typer turns KeyboardInterrupt into Exit(130) before it reaches us; nothing else returns 130
            raise KeyboardInterrupt
        if isinstance(rc, int) and rc:
            return rc
    except NasforgeError as e:
        console.print(f"[red]error:[/red] {escape(' '.join(str(e).split()))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print(INTERRUPTED, highlight=False)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        console.print("aborted", highlight=False)
        return 1
    except typer.TyperException as e:  # usage errors: no command, unknown option, --budget abc, a missing argument
        console.print(f"[red]error:[/red] {escape(usage_line(e))}", highlight=False, soft_wrap=True)
        return 2
    except Exception:
        import traceback

        traceback.print_exc()
        console.print(escape(_bug_line()), highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
