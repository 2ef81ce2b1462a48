"""``nasforge hypernet train``: train a graph hypernetwork on a family and a data set, and save it for the
``hypernet`` evaluator (``--evaluator hypernet --eval-opt ghn=<file>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(name="hypernet", help="Graph hypernetworks (GHN): predict weights to rank archs without training.")


@app.command("train")
def train(
    family: str = typer.Option("nb201", help="family whose archs the GHN learns to predict weights for"),
    family_opt: Annotated[list[str] | None, typer.Option("--family-opt", help="Family option key=value.")] = None,
    dataset: str = typer.Option("fashion-mnist", help="data set name, .npz file or image folder"),
    data_dir: str | None = typer.Option(None, help="where data sets are looked for"),
    train_subset: int | None = typer.Option(None, help="train on this many training images"),
    val_size: int | None = typer.Option(None, help="validation images held out (the evaluator's split)"),
    steps: int = typer.Option(1000, help="training steps (one sampled arch and one mini-batch each)"),
    batch_size: int = typer.Option(64),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    hidden: int = typer.Option(32, help="node state size"),
    max_channels: int = typer.Option(64, help="largest predicted channel count (larger layers tile the prediction)"),
    max_kernel: int = typer.Option(5, help="largest kernel the GHN predicts"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("ghn.pt"), help="checkpoint to write"),
    resume: bool = typer.Option(False, help="continue the checkpoint at --out for --steps more steps"),
) -> None:
    """Train a GHN (sampling an arch per step) and write its checkpoint; ``--resume`` continues one exactly."""
    import torch
    from rich.console import Console
    from rich.progress import Progress

    from ..errors import NasforgeError
    from ..evaluators.train import TrainEvaluator
    from ..hypernet.model import GHN
    from ..hypernet.train import Nets, checkpoint, load_ghn, save_ghn, train_ghn
    from ..quick import shrink
    from ..spaces import create_family
    from ..textio import parse_kv

    err = Console(stderr=True)
    sizes = shrink("hypernet train", {"train_subset": train_subset, "val_size": val_size, "steps": steps})
    steps = sizes["steps"]
    fam = create_family(family, **parse_kv(family_opt, "--family-opt"))
    data = TrainEvaluator(fam, dataset, data_dir=data_dir, train_subset=sizes["train_subset"],
                          val_size=sizes["val_size"], device="cpu").data()  # fmt: skip
    start, opt_state = 0, None
    if resume:
        ghn, old_fam, task, ck = load_ghn(out)
        if old_fam.spec() != fam.spec() or task != data.task():
            raise NasforgeError(f"{out} was trained on {old_fam.spec()} for {task.input_shape}; resume it with the "
                                "same --family, --family-opt and data")  # fmt: skip
        start, opt_state, seed = ck["step"], ck["optimizer"] or None, ck["meta"].get("seed", seed)
    else:
        torch.manual_seed(seed)
        ghn = GHN(hidden=hidden, max_out=max_channels, max_in=max_channels, max_kernel=max_kernel)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        job = bar.add_task("training the GHN", total=steps)

        def tick(done: int, total: int, loss: float) -> None:
            bar.update(job, completed=done, description=f"loss {loss:.3f}")

        r = train_ghn(ghn, Nets(fam, data.task()), data.x_train, data.y_train, steps=steps, start=start,
                      batch_size=batch_size, lr=lr, seed=seed, optimizer_state=opt_state, progress=tick)  # fmt: skip
    meta = {"seed": seed, "dataset": dataset, "train_subset": sizes["train_subset"], "lr": lr, "batch_size": batch_size}
    save_ghn(checkpoint(ghn, fam, data.task(), r["step"], r["optimizer"], meta), out)
    tail = r["losses"][-50:]
    typer.echo(f"GHN trained to step {r['step']} (mean loss of the last {len(tail)} steps "
               f"{sum(tail) / max(len(tail), 1):.3f}); wrote {out}")  # fmt: skip
