"""How ``nasforge bench nb201`` shows its figures: a ``rich`` table, a plot (PNG) and the JSON file.

The runner (``nasforge.bench.runner``) returns plain JSON-able data; everything here only reads it (and the table,
for the multi-objective plot's background of cells). matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..constraints import Objective
from ..nb201table import load_table


def render(result: Mapping[str, Any]):
    """The result as a ``rich`` table (mean ± std over seeds)."""
    from rich.table import Table

    multi = "true_front" in result
    cps = result["checkpoints"]
    title = f"NAS-Bench-201: {', '.join(result['objectives'])}"
    if result["constraints"]:
        title += f" subject to {', '.join(result['constraints'])} ({result['feasible_cells']} feasible cells)"
    tab = Table(title=title, caption=f"queries: {result['queries']}")
    tab.add_column("strategy")
    tab.add_column("seeds", justify="right")
    for b in cps:
        tab.add_column(f"{'HV ratio' if multi else 'regret'} @{b}", justify="right")
    last = str(cps[-1])
    if multi:
        tab.add_column(f"front cells @{last} (of {result['true_front_size']})", justify="right")
    else:
        if result.get("test_column"):
            tab.add_column(f"test acc @{last}", justify="right")
        tab.add_column(f"optimum found @{last}", justify="right")
    tab.add_column("distinct / infeasible", justify="right")
    tab.add_column("ms/trial", justify="right")
    for label, d in result["contenders"].items():
        row = [label, str(len(d["seeds"]))]
        for b in cps:
            e = d["budgets"][str(b)]
            if multi:
                row.append(f"{e['hv_ratio_mean']:.4f} ± {e['hv_ratio_std']:.4f}")
            else:
                row.append(f"{e['regret_mean']:.2f} ± {e['regret_std']:.2f}")
        e = d["budgets"][last]
        if multi:
            row.append(f"{e['front_found_mean']:.1f} ± {e['front_found_std']:.1f}")
        else:
            if result.get("test_column"):
                row.append("-" if e.get("test_mean") is None else f"{e['test_mean']:.2f} ± {e['test_std']:.2f}")
            row.append(f"{100 * e['found_optimum']:.0f}%")
        row.append(f"{d['distinct_queries_mean']:.0f} / {d['infeasible_queries_mean']:.1f}")
        row.append(f"{d['ms_per_trial']:.2f}")
        tab.add_row(*row)
    return tab


def show(result: Mapping[str, Any], file: IO[str] | None = None) -> None:
    """Print the table to ``file`` (stdout). A terminal wraps it to its width; anywhere else (a pipe, a file, a test)
    the console is as wide as the table, so that no header is cut to 80 columns."""
    from rich.console import Console

    tab = render(result)
    console = Console(file=file)
    if not console.is_terminal:
        console = Console(file=file, width=max(80, Console(width=10_000).measure(tab).maximum))
    console.print(tab)


def plot(result: Mapping[str, Any], path, data_dir: str | None = None) -> None:
    """Regret vs queries with ±std bands, or (multi-objective) the found fronts vs the true front and the
    hypervolume ratio vs queries. Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contenders = result["contenders"]
    if "true_front" not in result:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        top = 0.0
        for label, d in contenders.items():
            m, s = np.asarray(d["curve_mean"]), np.asarray(d["curve_std"])
            q = np.arange(1, len(m) + 1)
            (line,) = ax.plot(q, m, label=label)
            ax.fill_between(q, np.maximum(m - s, 0), m + s, alpha=0.15, color=line.get_color())
            top = max(top, float(m[min(len(m), 20) - 1]))
        ax.set_ylim(0, 1.3 * top or 1)
        ax.set_xlabel("queries")
        ax.set_ylabel(f"regret ({result['objectives'][0]})")
        ax.set_title(f"NAS-Bench-201, {len(result['seeds'])} seeds" + "".join(f", {c}" for c in result["constraints"]))
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        t = load_table(data_dir)
        objs = [Objective.parse(o) for o in result["objectives"]][:2]
        x, y = t.column(objs[1].metric), t.column(objs[0].metric)
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        ok = t.feasible(result["constraints"])
        ax.scatter(x[ok], y[ok], s=2, c="0.8", label="feasible cells")
        f = np.asarray(result["true_front"])
        f = f[np.argsort(x[f])]
        ax.step(x[f], y[f], where="post", c="k", lw=1, label=f"true front ({len(f)})")
        for label, d in contenders.items():
            g = np.asarray(d["median_seed_front"], dtype=int)
            ax.scatter(x[g], y[g], s=14, label=f"{label} (median seed)")
        ax.set_xscale("log")
        ax.set_xlabel(objs[1].metric)
        ax.set_ylabel(objs[0].metric)
        ax.legend(fontsize=8)
        for label, d in contenders.items():
            m, s = np.asarray(d["hv_ratio_curve_mean"]), np.asarray(d["hv_ratio_curve_std"])
            (line,) = ax2.plot(d["grid"], m, label=label)
            ax2.fill_between(d["grid"], m - s, np.minimum(m + s, 1), alpha=0.15, color=line.get_color())
        ax2.set_ylim(0.9, 1.0)
        ax2.set_xlabel("queries")
        ax2.set_ylabel("hypervolume ratio")
        ax2.legend()
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: Mapping[str, Any], out_dir, name: str = "nb201", data_dir: str | None = None) -> dict[str, str]:
    """Write ``<name>.json`` and ``<name>.png`` under ``out_dir``; returns their paths."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    js, png = d / f"{name}.json", d / f"{name}.png"
    js.write_text(json.dumps(result, indent=1))
    plot(result, png, data_dir)
    return {"json": str(js), "png": str(png)}
