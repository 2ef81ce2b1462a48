"""The ``nasforge`` command line. Every error a user can cause ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import NasforgeError
from .storage import DEFAULT_URL
from .units import human

app = typer.Typer(
    name="nasforge",
    help="Hardware-aware neural architecture search. Start with: nasforge search --help",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
# a pipe or CI log gets wide lines instead of rich's 80-column default, so tables stay readable
out = Console(width=None if sys.stdout.isatty() else 160)

StorageOpt = Annotated[str, typer.Option("--storage", help="Database URL (SQLAlchemy); SQLite file by default.")]
StudyArg = Annotated[str, typer.Argument(help="Study name.")]


def _kv(items: list[str] | None, what: str) -> dict:
    from .textio import parse_kv

    return parse_kv(items, what)


@app.command()
def search(
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-trial lines.")] = False,
) -> None:
    """Search a family under constraints; results go to the study's database (resumable)."""
    from .config import SearchConfig

    ev_cfg = _kv(evaluator_opt, "--evaluator-opt")
    if evaluator == "train":
        ev_cfg = {
            "epochs": epochs, "optimizer": optimizer, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
            "schedule": schedule, "label_smoothing": label_smoothing, "batch_size": batch_size, "device": device,
            "val_size": val_size, "train_subset": train_subset, "test_subset": test_subset, **ev_cfg,
        }  # fmt: skip
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
    )
    _run(cfg, quiet)


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

    from .config import build
    from .study import Study

    family, strategy, evaluator, executor, cost_models = build(cfg)
    study = Study.open(cfg.study, cfg.storage)
    before = len(study.trials())
    total = cfg.budget or family.space.size
    if before:
        console.print(f"resuming study [b]{cfg.study}[/b]: {before} trials recorded")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet, transient=False,
    ) as bar:  # fmt: skip
        search_task = bar.add_task("search", total=total, completed=sum(1 for t in study.trials() if t.finished_at))
        train_task = bar.add_task("trial", total=1, visible=False)

        shown: list[str] = []

        def on_trial(t) -> None:
            bar.advance(search_task)
            bar.update(train_task, visible=False)
            if t.state.value != "infeasible" and not quiet:
                if not shown:  # the objectives are recorded once the run has started
                    shown.extend(dict.fromkeys([o.metric for o in study.objectives()] + ["val_acc", "test_acc"]))
                vals = " ".join(f"{k}={human(k, t.metrics[k])}" for k in shown if k in t.metrics)
                msg = f"trial {t.number} {family.describe(t.arch)} {t.state.value} {vals} {t.error or ''}"
                bar.console.print(msg.rstrip())

        def progress(done: float, tot: float, label: str) -> None:
            bar.update(train_task, completed=done, total=tot, description=f"  train {label}", visible=True)

        study.run(
            family, strategy, evaluator, constraints=cfg.constraints, objectives=cfg.objectives, budget=cfg.budget,
            executor=executor, seed=cfg.seed, cost_models=cost_models, on_trial=on_trial, progress=progress,
            extra_config={"cost_models": cfg.cost_models} if cfg.cost_models else None, artifacts=cfg.artifacts,
        )  # fmt: skip
    _summary(study, family.describe)
    if not study.trials() and (cfg.constraints or cfg.budget != 0):
        # nothing was ever proposed: every arch the strategy looked at broke a constraint it checks before training
        raise NasforgeError(
            f"no arch was tried: none that the strategy found meets {' and '.join(cfg.constraints) or 'the settings'}; "
            "relax the constraints (see `nasforge space` and the costs of `nasforge show --all`)"
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
        console.print(f"note: showing archs as JSON: {e}", highlight=False, soft_wrap=True)
        return lambda arch: arch.to_json()


def _table(study, describe, limit: int | None = None, show_all: bool = False, sort: str | None = None) -> None:
    from .report import columns, sort_key
    from .trial import State

    trials = study.trials()
    shown = trials if show_all else [t for t in trials if t.state != State.INFEASIBLE]
    shown = sorted(shown, key=sort_key(study, sort))[:limit or None]
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
    out.print(tab)
    n_inf = sum(1 for t in trials if t.state == State.INFEASIBLE)
    if n_inf and not show_all:
        out.print(f"{n_inf} infeasible archs (recorded with their costs, never evaluated) hidden; --all shows them")


@app.command()
def show(
    name: StudyArg,
    storage: StorageOpt = DEFAULT_URL,
    show_all: Annotated[bool, typer.Option("--all", help="Include infeasible archs.")] = False,
    limit: Annotated[int | None, typer.Option(help="Show at most N rows.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by this metric (default: the first objective).")] = None,
) -> None:
    """Table of a study's trials: arch, params, MACs, size, accuracy, state, time."""
    from .study import Study

    study = Study.open(name, storage, create=False)
    _table(study, _describer(study), limit=limit, show_all=show_all, sort=sort)


@app.command()
def best(
    name: StudyArg,
    storage: StorageOpt = DEFAULT_URL,
    export: Annotated[Path | None, typer.Option(help="Write weights, arch JSON and ONNX into this folder.")] = None,
) -> None:
    """The best feasible trial; with --export, the model ready to ship."""
    from .study import Study

    study = Study.open(name, storage, create=False)
    describe = _describer(study)
    b = study.best()
    if b is None:
        raise NasforgeError(f"study {name!r} has no feasible completed trial yet")
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


def _export(study, trial, out_dir: Path) -> None:
    from .export import export_trial

    info = export_trial(study, trial, out_dir)
    out.print(f"exported trial {trial.number} to {out_dir}: " + ", ".join(info["files"].values()) +
              (f" (ONNX vs torch max |diff| {info['onnx_max_abs_diff']:.2e})" if "onnx_max_abs_diff" in info else ""))


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
    p = write_report(study, out_path, describe=_describer(study))
    out.print(f"report written to {p}")


@app.command("list")
def list_cmd(storage: Annotated[str | None, typer.Option(help="Also list the studies in this database.")] = None):
    """Registered families, strategies, evaluators and data sets (and the studies in a database)."""
    from .data import IMAGE_SETS
    from .evaluators import EVALUATORS
    from .spaces import FAMILIES, create_family
    from .strategies import STRATEGIES

    for fam in FAMILIES.names():
        try:
            size = f"{create_family(fam).space.size:,} archs"
        except NasforgeError as e:
            size = str(e)
        out.print(f"family    {fam:<12} {size}")
    out.print("strategy  " + ", ".join(STRATEGIES.names()))
    out.print("evaluator " + ", ".join(EVALUATORS.names()))
    out.print("data set  " + ", ".join(sorted(IMAGE_SETS)))
    if storage:
        from .storage import Storage

        out.print("studies   " + (", ".join(Storage(storage).study_names()) or "none"))


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
        if isinstance(sub, typer.Typer):
            app.add_typer(sub)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns user errors into one line and an exit status."""
    try:
        _mount_subcommands()
        rc = app(args=argv, standalone_mode=False)  # a command's typer.Exit(code) comes back as its return value
        if isinstance(rc, int) and rc:
            return rc
    except NasforgeError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted: finished trials are saved; rerun the same command to resume", highlight=False)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        console.print("aborted")
        return 1
    except Exception as e:  # click's usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
