"""``nasforge oneshot spos|darts|gdas|proxyless``: a one-shot search on a family's supernet, recorded as a study.

One command per method, with the same options: the data and the training recipe of the retraining are a search's
(``--dataset``, ``--train-subset``, ``--retrain-epochs``...), the one-shot run's own settings are ``--epochs``,
``--batch-size``, ``--lr`` and ``--opt key=value`` for anything else a method takes (``--opt order=2`` for second-order
DARTS, ``--opt estimator=reinforce`` for ProxylessNAS's REINFORCE variant). ``--fix width=1.0`` holds a global
dimension; ``--latency lut --latency-opt table=lut.json --opt latency_weight=1`` gives ProxylessNAS its latency loss.
Rerunning the same command resumes the study from its last finished epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

app = typer.Typer(name="oneshot", help="One-shot NAS on a family's supernet: spos, darts, gdas, proxyless.")

METHODS = {
    "spos": "Single-path one-shot: uniform path sampling, then the best of the sampled archs by inherited weights.",
    "darts": "DARTS: softmax-mixed candidates, bilevel optimisation (--opt order=2 for second order).",
    "gdas": "GDAS: one Gumbel-sampled candidate per unit and step, straight-through gradients.",
    "proxyless": "ProxylessNAS: binarised paths, two-path gradients, a latency loss (--latency ... --opt "
    "latency_weight=...).",
}


def _command(method: str) -> Callable[..., None]:
    def cmd(
        family: Annotated[str, typer.Option(help="Family with a supernet: nb201, cell, mobilenet, ...")] = "nb201",
        dataset: Annotated[str, typer.Option(help="Data: mnist, fashion-mnist, an .npz file or an image folder.")] = (
            "fashion-mnist"
        ),
        epochs: Annotated[int, typer.Option(help="Epochs of one-shot training.")] = 10,
        batch_size: Annotated[int, typer.Option(help="Batch size of one-shot training.")] = 64,
        lr: Annotated[float | None, typer.Option(help="Weight learning rate [default: the method's].")] = None,
        opt: Annotated[list[str] | None, typer.Option("--opt", help="Method setting key=value (repeatable).")] = None,
        fix: Annotated[list[str] | None, typer.Option("--fix", help="Hold a global dimension: key=value.")] = None,
        latency: Annotated[
            str | None, typer.Option(help="Latency model for the latency loss: lut, predictor, measured.")
        ] = None,  # fmt: skip
        latency_opt: Annotated[list[str] | None, typer.Option("--latency-opt", help="Latency option k=v.")] = None,
        retrain_epochs: Annotated[int, typer.Option(help="Epochs of training the derived arch from scratch.")] = 2,
        no_retrain: Annotated[bool, typer.Option("--no-retrain", help="Stop after deriving the arch.")] = False,
        train_subset: Annotated[int | None, typer.Option(help="Use only N training images.")] = None,
        val_size: Annotated[float | None, typer.Option(help="Validation held out: a fraction or a count.")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
        seed: Annotated[int, typer.Option(help="Seed of the run and of the retraining.")] = 0,
        study: Annotated[str, typer.Option(help="Study name; rerunning the same command resumes it.")] = f"{method}",
        storage: Annotated[str, typer.Option(help="Database URL; SQLite file by default.")] = "sqlite:///nasforge.db",
        artifacts: Annotated[str | None, typer.Option(help="Where files go: a folder, or 'database'.")] = None,
        data_dir: Annotated[str | None, typer.Option(help="Folder holding the data sets.")] = None,
        family_opt: Annotated[list[str] | None, typer.Option("--family-opt", help="Family option k=v.")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-epoch lines.")] = False,
    ) -> None:
        _run(method, locals())

    cmd.__doc__ = METHODS[method] + " Results go to the study's database (resumable)."
    return cmd


for _m in METHODS:
    app.command(_m)(_command(_m))


def _settings(method: str, o: dict, family, evaluator) -> dict:
    from ..textio import parse_kv

    settings = {"batch_size": o["batch_size"], **parse_kv(o["opt"], "--opt")}
    if o["lr"] is not None:
        settings["lr"] = o["lr"]
    fixed = parse_kv(o["fix"], "--fix")
    if fixed:
        settings["fixed"] = fixed
    if o["latency"]:
        from ..latency import latency_model

        settings["latency"] = latency_model(o["latency"], family, evaluator.task(),
                                            **parse_kv(o["latency_opt"], "--latency-opt"))  # fmt: skip
    return settings


def _run(method: str, o: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..evaluators.train import TrainEvaluator
    from ..oneshot import load_methods
    from ..oneshot_run import run_oneshot
    from ..quick import shrink
    from ..spaces import create_family
    from ..textio import parse_kv
    from ..units import human

    load_methods()
    err = Console(stderr=True)
    sizes = shrink(f"oneshot {method}", {k: o[k] for k in ("epochs", "train_subset", "val_size")})
    retrain = shrink(f"oneshot {method} (retraining)", {"epochs": o["retrain_epochs"]})["epochs"]
    fam = create_family(o["family"], **parse_kv(o["family_opt"], "--family-opt"))
    ev = TrainEvaluator(fam, o["dataset"], data_dir=o["data_dir"], epochs=retrain, device=o["device"],
                        train_subset=sizes["train_subset"], val_size=sizes["val_size"])  # fmt: skip
    ev.task()  # a missing data set or a family that cannot take it fails here, before anything is recorded
    settings = _settings(method, o, fam, ev)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                   disable=o["quiet"], transient=False)  # fmt: skip
    job = bar.add_task(f"{method}", total=1)

    def progress(done: float, total: float, label: str) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(job, completed=done, total=total, description=f"{method} {label}")

    def on_epoch(e: dict) -> None:
        if not o["quiet"]:
            vals = " ".join(f"{k}={v:.4g}" for k, v in e.items() if isinstance(v, float) and k != "time_s")
            derived = f" derived {fam.describe(e['derived'])}" if e.get("derived") else ""
            bar.console.print(escape(f"epoch {e['epoch']} {vals}{derived}"),
                              highlight=False, soft_wrap=True)  # fmt: skip

    try:
        run = run_oneshot(o["study"], o["storage"], method, fam, ev, epochs=sizes["epochs"], seed=o["seed"],
                          settings=settings, retrain=not o["no_retrain"], artifacts=o["artifacts"],
                          progress=progress, on_epoch=on_epoch)  # fmt: skip
    finally:
        bar.stop()
    out = Console(soft_wrap=True)
    if run.resumed_from > 1:
        err.print(f"resumed study {escape(o['study'])} after epoch {run.resumed_from - 1}", highlight=False)
    costs = fam.costs(run.derived, ev.task())
    out.print(f"derived arch: {escape(fam.describe(run.derived))}", highlight=False)
    out.print("costs: " + ", ".join(f"{k}={human(k, v)}" for k, v in costs.items()), highlight=False)
    t = run.trial
    if t is not None:
        vals = ", ".join(f"{k}={human(k, t.metrics[k])}" for k in ("val_acc", "test_acc") if k in t.metrics)
        out.print(f"retrained from scratch ({ev.epochs} epochs): trial {t.number} {t.state.value} {vals} "
                  f"{t.error or ''}".rstrip(), highlight=False)  # fmt: skip
        if t.state.value != "complete":
            from ..errors import NasforgeError

            raise NasforgeError(f"the derived arch's retraining {t.state.value}: {t.error or 'see the study'}")
