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
    plot: Path = typer.Option(Path("tinynas_cdf.png"), help="where to write the MACs CDF plot"),
    out: Path | None = typer.Option(None, help="also write the ranked table as JSON here"),
) -> None:
    """Rank (width, resolution) sub-spaces by the MACs their archs reach within the memory limits."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    from ..errors import NasforgeError
    from ..spaces import Task, create_family
    from ..tinynas import optimise_space

    console, err = Console(), Console(stderr=True)
    try:
        fam = create_family(family)
        task = Task((channels, 224, 224), classes)  # H×W come from each arch's resolution
        with Progress(console=console, transient=True) as bar:
            job = bar.add_task("sampling sub-spaces", total=None)
            res = optimise_space(fam, task, limit, axes=[a.strip() for a in axes.split(",") if a.strip()], n=n,
                                 seed=seed, score=score, mcu_bits=mcu_bits,
                                 progress=lambda d, t: bar.update(job, completed=d, total=t))
    except NasforgeError as e:  # one line on stderr and exit 2, like nasforge.cli.main (this app also runs alone)
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    t = Table(title=f"TinyNAS sub-spaces under {', '.join(res.constraints)} (score: {score} feasible MACs)")
    for col in ("rank", *res.subspaces[0].values, "feasible", "mean MACs (M)", "median MACs (M)", "max MACs (M)"):
        t.add_column(str(col), justify="right")
    for row in res.table():
        def m(v: float | None) -> str:
            return "-" if v is None else f"{v / 1e6:.1f}"

        t.add_row(str(row["rank"] or "-"), *(str(row[k]) for k in res.subspaces[0].values),
                  f"{row['feasible']}/{row['sampled']}", m(row["mean_macs"]), m(row["median_macs"]),
                  m(row["max_macs"]))
    console.print(t)
    res.plot(plot)
    console.print(f"CDF plot: {plot}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res.to_dict(), indent=2))
    if res.best is None:
        err.print("[red]error:[/red] no sub-space has a feasible arch; loosen the limits or add smaller choices")
        raise typer.Exit(2)
    console.print(f"best sub-space: {res.best.label()}")
