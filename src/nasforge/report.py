"""A self-contained HTML report of a study: plots embedded as PNG (matplotlib), readable without a server."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from pathlib import Path

from .constraints import Constraint
from .cost.counts import COST_METRICS
from .storage import Trial
from .study import Study
from .trial import State
from .units import human


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _axis_scale(metric: str) -> tuple[float, str]:
    if metric in ("size", "peak_mem", "flash") or metric.endswith("_bytes"):
        return 2**20, f"{metric} (MiB)"
    if metric in ("params", "macs"):
        return 1e6, f"{metric} (M)"
    return 1.0, metric


def plots(study: Study) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = study.trials()
    objs = study.objectives()
    cons = study.constraints()
    obj = objs[0]
    done = [t for t in trials if t.state == State.COMPLETE and t.value(obj.metric) is not None]
    out: list[tuple[str, str]] = []

    # 1. objective vs the (first) cost constraint's metric, with the limit; every arch's cost as a rug
    xm = next((c.metric for c in cons if c.metric in COST_METRICS), "size")
    scale, label = _axis_scale(xm)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    allx = [t.costs[xm] / scale for t in trials if xm in t.costs]
    if allx:
        ax.plot(allx, [0] * len(allx), "|", color="0.6", ms=12, transform=ax.get_xaxis_transform(), label="every arch")
    ok = [t for t in done if t.feasible]
    bad = [t for t in done if not t.feasible]
    if ok:
        ax.scatter([t.costs.get(xm, math.nan) / scale for t in ok], [t.value(obj.metric) for t in ok],
                   c="tab:blue", label="trained")
    if bad:
        ax.scatter([t.costs.get(xm, math.nan) / scale for t in bad], [t.value(obj.metric) for t in bad],
                   c="tab:red", marker="x", label="trained, infeasible")
    best = study.best()
    if best is not None and xm in best.costs:
        ax.scatter([best.costs[xm] / scale], [best.value(obj.metric)], s=160, facecolors="none",
                   edgecolors="k", label="best")
    for c in cons:
        if c.metric == xm:
            ax.axvline(c.value / scale, color="tab:red", ls="--", label=f"limit {c}")
    ax.set_xlabel(label)
    ax.set_ylabel(obj.metric)
    ax.set_title(f"{obj.metric} vs {xm}")
    ax.legend(fontsize=8)
    out.append((f"{obj.metric} vs {xm}", _png(fig)))

    # 2. best-so-far over trials (in trial order; infeasible trials count as visited)
    if done:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        xs, ys, cur = [], [], None
        for t in trials:
            if t.state == State.COMPLETE and t.feasible and t.value(obj.metric) is not None:
                v = t.value(obj.metric)
                cur = v if cur is None or obj.better(v, cur) else cur
            if cur is not None:
                xs.append(t.number + 1)
                ys.append(cur)
        ax.step(xs, ys, where="post")
        ax.scatter([t.number + 1 for t in done], [t.value(obj.metric) for t in done], s=10, c="0.5", label="trial")
        ax.set_xlabel("trials (all states)")
        ax.set_ylabel(f"best {obj.metric} so far")
        ax.set_title("search progress")
        out.append(("best so far", _png(fig)))

    # 3. Pareto front for two objectives
    if len(objs) >= 2 and done:
        o1, o2 = objs[0], objs[1]
        fig, ax = plt.subplots(figsize=(6, 4.2))
        ax.scatter([t.value(o2.metric) for t in done], [t.value(o1.metric) for t in done], s=12, c="0.6",
                   label="trials")
        front = sorted(study.pareto(), key=lambda t: t.value(o2.metric))
        ax.plot([t.value(o2.metric) for t in front], [t.value(o1.metric) for t in front], "o-", c="tab:red",
                label="Pareto front")
        ax.set_xlabel(f"{o2.metric} ({o2.direction})")
        ax.set_ylabel(f"{o1.metric} ({o1.direction})")
        ax.legend(fontsize=8)
        out.append(("Pareto front", _png(fig)))

    # 4. learning curves
    curves = [t for t in done if t.curve and any(obj.metric in p for p in t.curve)]
    if curves:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for t in curves[:40]:
            ax.plot([p["step"] for p in t.curve], [p.get(obj.metric, math.nan) for p in t.curve], alpha=0.6)
        ax.set_xlabel("epoch")
        ax.set_ylabel(obj.metric)
        ax.set_title("learning curves")
        out.append(("learning curves", _png(fig)))
    return out


def trial_rows(trials: list[Trial], metrics: list[str]) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ["#", "arch", *metrics, "state", "time (s)", "note"])
    rows = []
    for t in trials:
        cells = [str(t.number), html.escape(t.arch.to_json())]
        cells += [html.escape(human(m, t.value(m))) for m in metrics]
        cells += [t.state.value, f"{t.duration_s:.1f}" if t.duration_s else "-", html.escape(t.error or "")]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(study: Study, path: str | Path, describe=None) -> Path:
    """Write the report; ``describe(arch) -> str`` gives readable arch names (the family's)."""
    cfg = study.config
    trials = study.trials()
    objs = study.objectives()
    counts = Counter(t.state.value for t in trials)
    best = study.best()
    metrics = [o.metric for o in objs]
    extra = [m for m in ("val_acc", "test_acc") if m not in metrics and any(m in t.metrics for t in trials)]
    metrics += extra + [m for m in COST_METRICS if any(m in t.costs for t in trials)]
    shown = sorted(
        [t for t in trials if t.state != State.INFEASIBLE],
        key=lambda t: (t.state != State.COMPLETE, -(objs[0].score(t.values) if t.value(objs[0].metric) is not None
                                                     else -math.inf)),
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>nasforge report: {html.escape(study.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "th{background:#f0f0f0}img{max-width:100%}code{background:#f4f4f4;padding:1px 4px}</style></head><body>",
        f"<h1>Study <code>{html.escape(study.name)}</code></h1>",
        "<p>" + ", ".join(f"{html.escape(k)}: <b>{v}</b>" for k, v in sorted(counts.items())) +
        f" &mdash; {len(trials)} trials</p>",
        "<ul>",
        *(f"<li>{html.escape(k)}: <code>{html.escape(str(cfg.get(k)))}</code></li>"
          for k in ("family", "family_config", "strategy", "strategy_hyper", "evaluator", "evaluator_config",
                    "constraints", "objectives", "seed") if k in cfg),
        "</ul>",
    ]
    if best is not None:
        name = describe(best.arch) if describe else best.arch.to_json()
        vals = ", ".join(f"{m} {human(m, best.value(m))}" for m in metrics if best.value(m) is not None)
        parts.append(f"<h2>Best</h2><p>trial {best.number}: <code>{html.escape(name)}</code> &mdash; {vals}</p>")
    else:
        parts.append("<h2>Best</h2><p>No feasible trial has completed yet.</p>")
    for title, png in plots(study):
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")
    n_inf = counts.get("infeasible", 0)
    parts.append(f"<h2>Trials</h2><p>{n_inf} infeasible archs (never trained) are not listed.</p>")
    parts.append(trial_rows(shown, metrics))
    for c in (Constraint.parse(c) for c in cfg.get("constraints", [])):
        parts.append(f"<p>constraint <code>{html.escape(str(c))}</code> = {c.metric} {c.op} {c.value:g}</p>")
    parts.append("</body></html>")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(parts))
    return p
