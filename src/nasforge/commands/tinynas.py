"""``nasforge tinynas optimise``: MCUNet's search-space optimisation from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(name="tinynas", help="TinyNAS search-space optimisation under memory limits (MCUNet).")


@app.command("optimise")
def optimise(
    family: str = typer.Option("mobilenet", help="family to split (needs the axes dimensions)"),
    limit: list[str] = typer.Option(["sram<=256KiB", "flash<=1MiB"], "--limit", "-l",
                                    help="a limit on a cost metric; repeat for several"),
    axes: str = typer.Option("width,resolution", help="comma-separated dimensions that define a sub-space"),
    n: int = typer.Option(1000, help="archs sampled per sub-space"),
    seed: int = typer.Option(0),
    score: str = typer.Option("mean", help="rank by 'mean', 'median' or a percentile 'p90' of feasible MACs"),
    classes: int = typer.Option(1000, help="classes of the task (the classifier's size counts towards flash)"),
    channels: int = typer.Option(3, help="input channels of the task"),
    mcu_bits: int = typer.Option(8, help="bit width of weights (flash) and activations (sram)"),
    plot: Path | None = typer.Option(None, help="also write the MACs CDF plot (PNG) here"),
    out: Path | None = typer.Option(None, help="also write the ranked table as JSON here"),
) -> None:
    """Rank (width, resolution) sub-spaces by the MACs their archs reach within the memory limits.

    User errors are ``NasforgeError``s, left to ``nasforge.cli.main`` (one line on stderr, exit 2); the table goes to
    stdout, the progress bar and notes of what was written to stderr; files are written only where asked.
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ..errors import NasforgeError
    from ..quick import shrink
    from ..spaces import Task, create_family
    from ..tinynas import optimise_space
    from .output import print_whole, writing

    err = Console(stderr=True)
    n = shrink("tinynas optimise", {"n": n})["n"]
    fam = create_family(family)
    task = Task((channels, 224, 224), classes)  # H×W come from each arch's resolution
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        job = bar.add_task("sampling sub-spaces", total=None)
        res = optimise_space(fam, task, limit, axes=[a.strip() for a in axes.split(",") if a.strip()], n=n,
                             seed=seed, score=score, mcu_bits=mcu_bits,
                             progress=lambda d, t: bar.update(job, completed=d, total=t))
    t = Table(title=f"TinyNAS sub-spaces under {', '.join(res.constraints)} (score: {score} feasible MACs)")
    for col in ("rank", *res.subspaces[0].values, "feasible", "mean MACs (M)", "median MACs (M)", "max MACs (M)"):
        t.add_column(str(col), justify="right")
    for row in res.table():
        def m(v: float | None) -> str:
            return "-" if v is None else f"{v / 1e6:.1f}"

        t.add_row(str(row["rank"] or "-"), *(str(row[k]) for k in res.subspaces[0].values),
                  f"{row['feasible']}/{row['sampled']}", m(row["mean_macs"]), m(row["median_macs"]),
                  m(row["max_macs"]))
    print_whole(Console(), t)
    if plot is not None:
        with writing(plot):
            res.plot(plot)
        err.print(f"wrote the CDF plot to {plot}", highlight=False, soft_wrap=True)
    if out is not None:
        with writing(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(res.to_dict(), indent=2))
        err.print(f"wrote the ranked table to {out}", highlight=False, soft_wrap=True)
    if res.best is None:
        raise NasforgeError("no sub-space has a feasible arch; loosen the limits or add smaller choices")
    Console().print(f"best sub-space: {res.best.label()}", highlight=False)
