"""``nasforge rank``: how well a cheap evaluator ranks N sampled archs against a reference (``nasforge.rank``).

    nasforge rank --family nb201 --evaluator synflow --archs 100 --reference table
    nasforge rank --family nb201 --family-opt C=8 --family-opt N=1 --evaluator naswot --dataset fashion-mnist \\
        --reference train --epochs 3 --train-subset 5000 --archs 30

The progress bar goes to stderr, the table (or ``--json``) to stdout; bad input is one line and exit status 2.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .output import JsonOpt

app = typer.Typer(name="rank", help="Rank correlation of a cheap evaluator (proxy, hypernet, ...) with a reference.")


@app.callback(invoke_without_command=True)
def rank(
    family: Annotated[str, typer.Option(help="Search-space family: nb201, cell, lenet, ...")] = "nb201",
    evaluator: Annotated[str, typer.Option(help="Evaluator to judge: synflow, snip, grad_norm, naswot, ...")] = (
        "synflow"
    ),
    archs: Annotated[int, typer.Option(help="Distinct archs sampled and scored.")] = 100,
    reference: Annotated[str, typer.Option(help="table (nb201's NAS-Bench-201 table) or train (from scratch).")] = (
        "table"
    ),
    column: Annotated[str, typer.Option(help="Table column of the reference.")] = "acc12_cifar10_val",
    dataset: Annotated[str | None, typer.Option(help="Data of the evaluator (if it takes data) and of train.")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs of the train reference.")] = 1,
    train_subset: Annotated[int | None, typer.Option(help="Training images of the train reference.")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric to rank by [default: the evaluator's objective].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of every evaluation.")] = 0,
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the data sets.")] = None,
    family_opt: Annotated[list[str] | None, typer.Option("--family-opt", help="Family option k=v.")] = None,
    evaluator_opt: Annotated[list[str] | None, typer.Option("--evaluator-opt", help="Evaluator option k=v.")] = None,
    reference_opt: Annotated[list[str] | None, typer.Option("--reference-opt", help="Train option k=v.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score --archs sampled archs with --evaluator and the reference; print Spearman, Kendall and time per arch."""
    from rich.console import Console
    from rich.progress import Progress

    from ..errors import NasforgeError
    from ..evaluators import create_evaluator
    from ..quick import shrink
    from ..rank import rank as run_rank
    from ..rank import table_reference, train_reference
    from ..spaces import create_family
    from ..textio import parse_kv
    from .output import print_json

    q = shrink("rank", {"archs": archs, "epochs": epochs, "train_subset": train_subset})
    archs, epochs, train_subset = q["archs"], q["epochs"], q["train_subset"]
    if archs < 2:
        raise NasforgeError(f"--archs must be at least 2 to rank anything, got {archs}")
    fam = create_family(family, **parse_kv(family_opt, "--family-opt"))
    data = {} if dataset is None else {"dataset": dataset}
    ev = create_evaluator(evaluator, family=fam, data_dir=data_dir, **data, **parse_kv(evaluator_opt,
                                                                                        "--evaluator-opt"))
    if reference == "table":
        ref = table_reference(fam, column, data_dir)
    elif reference == "train":
        ref = train_reference(fam, dataset or "mnist", data_dir=data_dir, epochs=epochs, train_subset=train_subset,
                              **parse_kv(reference_opt, "--reference-opt"))  # fmt: skip
    else:
        raise NasforgeError(f"--reference must be table or train, got {reference!r}")
    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        job = bar.add_task(f"ranking with {evaluator}", total=archs)
        res = run_rank(fam, ev, ref, archs, seed=seed, metric=metric,
                       progress=lambda d, t: bar.update(job, completed=d, total=t))
    if as_json:
        print_json(res.to_dict())
        return
    _print(res, Console())


def _print(res, console) -> None:
    from rich.table import Table

    from .output import print_whole

    def f(v, spec: str) -> str:
        return "-" if v is None or v != v else format(v, spec)

    t = Table(title=f"{res.evaluator} ({res.metric}) against {res.reference}")
    for c in ("#", "arch", res.metric, "reference", "eval s", "ref s", "note"):
        t.add_column(c, justify="left" if c in ("arch", "note") else "right")
    for i, r in enumerate(res.rows, 1):
        t.add_row(str(i), r["describe"], f(r["score"], ".4g"), f(r["reference"], ".2f"), f(r["eval_time_s"], ".3f"),
                  f(r["ref_time_s"], ".3f"), r["error"] or "")
    print_whole(console, t)
    s = Table(title="rank correlation")
    for c in ("archs", "failed", "Spearman", "Kendall", "eval s/arch", "reference s/arch"):
        s.add_column(c, justify="right")
    s.add_row(str(res.n), str(res.failed), f(res.spearman, ".3f"), f(res.kendall, ".3f"),
              f(res.mean_time("eval"), ".4f"), f(res.mean_time("ref"), ".4f"))
    print_whole(console, s)
