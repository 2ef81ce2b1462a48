"""``nasforge bench nb201``: registered search strategies over many seeds on the NAS-Bench-201 table.

Each seeded run is a study on an in-memory store, run by the same engine as ``nasforge search``. Peers (Optuna's TPE
and NSGA-II) are not here: Optuna is a benchmark extra, so they run from ``benchmarks/bench_nb201.py``.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(name="bench", help="Benchmark search strategies on tabular data (NAS-Bench-201).")


@app.callback()
def _group() -> None:
    """Benchmark search strategies on tabular data (NAS-Bench-201)."""
    # a callback keeps ``bench`` a command group even while it holds one command, so ``bench nb201`` parses alike
    # when this app runs alone (tests) and when the CLI mounts it


def _split(values: list[str]) -> list[str]:
    """Repeated options and comma lists alike; an item with ``:`` carries its own comma-separated settings."""
    out: list[str] = []
    for v in values:
        out += [v] if ":" in v else [x.strip() for x in v.split(",") if x.strip()]
    return out


@app.command("nb201")
def nb201(
    strategy: list[str] = typer.Option(
        ["evolution"],
        "--strategy",
        "-s",
        help="registered strategy, optionally with settings: 'evolution:population=20,sample=5'; repeat or "
        "comma-separate for several",
    ),
    budget: int = typer.Option(300, help="queries per run"),
    seeds: int = typer.Option(50, help="seeded runs per strategy (seeds first-seed .. first-seed+seeds-1)"),
    first_seed: int = typer.Option(0, help="the first seed"),
    objective: str = typer.Option("acc12_cifar10_val", help="table column to maximise ('-col' to minimise)"),
    objectives: str | None = typer.Option(
        None, help="several objectives for a multi-objective run, e.g. 'acc12_cifar10_val,-lat_ms_fpga'"
    ),
    constraint: list[str] = typer.Option([], "--constraint", "-c", help="limit on a column, e.g. 'lat_ms_fpga<=3'"),
    budgets: str | None = typer.Option(None, help="checkpoints, e.g. '25,50,100,200,300' (default depends on mode)"),
    out: Path | None = typer.Option(None, help="also write nb201.json and nb201.png into this folder"),
    data_dir: Path | None = typer.Option(None, help="folder that holds nb201/ (default: NASFORGE_DATA, ...)"),
    as_json: bool = typer.Option(False, "--json", help="The results as one JSON document on stdout (as nb201.json)."),
    as_csv: bool = typer.Option(False, "--csv", help="One CSV row per strategy and budget on stdout."),
) -> None:
    """Mean ± std regret at each budget (or hypervolume ratio and true-front cells found), a plot and a JSON file."""
    import torch
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..bench.runner import Contender, problem, run_benchmark
    from ..errors import NasforgeError
    from ..quick import shrink
    from .bench_render import show, write
    from .output import one_format, print_json, write_rows

    sizes = shrink("bench nb201", {"budget": budget, "seeds": seeds})
    budget, seeds = sizes["budget"], sizes["seeds"]
    torch.set_num_threads(1)  # strategies' tensors are tiny: extra threads only contend (this process is ours)
    err = Console(stderr=True)
    try:
        one_format(as_json, as_csv)
        objs = [o.strip() for o in (objectives or objective).split(",") if o.strip()]
        contenders = list({c.label: c for c in map(Contender.parse, _split(strategy))}.values())  # '-s a -s a': once
        if seeds < 1 or budget < 1:
            raise NasforgeError(f"--seeds and --budget must be at least 1, got {seeds} and {budget}")
        seed_list = list(range(first_seed, first_seed + seeds))
        try:
            cps = [int(b) for b in budgets.split(",")] if budgets else None
        except ValueError:
            raise NasforgeError(f"--budgets must be comma-separated integers, got {budgets!r}") from None
        dd = str(data_dir) if data_dir else None
        problem(objs, constraint, dd)  # unknown columns and impossible constraints fail here, before any run
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            jobs: dict[str, int] = {}

            def progress(label: str, done: int, total: int) -> None:
                if label not in jobs:
                    jobs[label] = bar.add_task(f"{label} seeds", total=total)
                bar.update(jobs[label], completed=done)

            result = run_benchmark(contenders, objs, constraint, budget, seed_list, cps, dd, progress=progress)
        paths = write(result, out, data_dir=dd) if out is not None else None  # files only where asked
    except NasforgeError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print_json(result)
    elif as_csv:
        rows = [{"strategy": label, "seeds": len(c["seeds"]), "budget": int(b), **v}
                for label, c in result["contenders"].items() for b, v in c["budgets"].items()]  # fmt: skip
        keys = sorted({k for r in rows for k in r} - {"strategy", "seeds", "budget"})
        write_rows(rows, ["strategy", "seeds", "budget", *keys])
    else:
        show(result)
    if paths is not None:
        typer.echo(f"wrote {paths['json']} and {paths['png']}", err=as_json or as_csv)
