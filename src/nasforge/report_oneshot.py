"""The one-shot part of a study's report: the architecture weights over epochs, the losses, the derived arch and its
costs (``report.write_report`` adds it when the study holds a one-shot run)."""

from __future__ import annotations

import html
import math
from typing import Any

from .oneshot_run import load_run
from .study import Study
from .units import human

MAX_PANELS = 12  # groups drawn candidate by candidate; beyond, one line per group (its derived candidate's weight)


def _prob_plot(history: list[dict[str, Any]]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    groups = list(history[-1]["probs"])
    # every method starts from uniform weights (α = 0): epoch 0
    history = [{"epoch": 0, "probs": {g: {c: 1 / len(p) for c in p} for g, p in history[-1]["probs"].items()}},
               *history]  # fmt: skip
    epochs = [e["epoch"] for e in history]
    if len(groups) <= MAX_PANELS:
        cols = min(3, len(groups))
        rows = math.ceil(len(groups) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.4 * rows), squeeze=False, sharey=True)
        for ax, g in zip(axes.flat, groups, strict=False):
            for cand in history[-1]["probs"][g]:
                ax.plot(epochs, [e["probs"][g].get(cand, math.nan) for e in history], marker=".", label=cand)
            ax.set_title(g, fontsize=8)
            ax.set_ylim(0, 1)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(groups) :]:
            ax.axis("off")
        fig.supxlabel("epoch")
        fig.supylabel("probability")
    else:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for g in groups:
            final = history[-1]["probs"][g]
            top = max(final, key=final.get)
            ax.plot(epochs, [e["probs"][g].get(top, math.nan) for e in history], alpha=0.7)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("probability of the final choice")
        ax.set_title(f"{len(groups)} groups")
    fig.suptitle("architecture weights over epochs")
    return fig


def _loss_plot(history: list[dict[str, Any]]):
    import matplotlib.pyplot as plt

    keys = [k for k, v in history[-1].items() if isinstance(v, float) and k not in ("time_s", "epoch")]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for k in keys:
        ax.plot([e["epoch"] for e in history], [e.get(k, math.nan) for e in history], marker=".", label=k)
    ax.set_xlabel("epoch")
    ax.set_title("one-shot training")
    ax.legend(fontsize=8)
    return fig


def oneshot_section(study: Study, describe, png) -> list[str]:
    """HTML parts for the study's one-shot run (none when it has none); ``png(fig)`` embeds a figure."""
    run = load_run(study)
    if run is None:
        return []
    rec, history = run["record"], run["history"]
    parts = [f"<h2>One-shot run: {html.escape(rec['method'])}</h2>",
             f"<p>{len(history)} of {rec['epochs']} epochs; settings <code>{html.escape(str(rec['settings']))}</code>"
             "</p>"]  # fmt: skip
    derived = run.get("derived") or (history[-1]["derived"] if history else None)
    if derived is not None:
        fam = study.family()
        arch = fam.space.validate(derived)
        costs = fam.costs(arch, study.task())
        parts.append(f"<p>derived arch: <code>{html.escape(describe(arch))}</code><br>costs: "
                     + ", ".join(f"{k} {html.escape(human(k, v))}" for k, v in costs.items()) + "</p>")  # fmt: skip
    if history and history[-1].get("probs"):
        parts.append(f"<img alt='architecture weights' src='data:image/png;base64,{png(_prob_plot(history))}'>")
    if history:
        parts.append(f"<img alt='one-shot losses' src='data:image/png;base64,{png(_loss_plot(history))}'>")
    return parts
