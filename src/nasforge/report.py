"""A self-contained HTML report of a study: plots embedded as PNG (matplotlib), readable without a server."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from pathlib import Path

from .constraints import Constraint, Objective
from .metrics import COST_METRICS, direction, metric
from .study import Study
from .trial import State, Trial
from .units import human

# the tables' and the report's columns, in this order: the study's objectives, then these when trials have them
_USUAL = ("val_acc", "test_acc")


def columns(study: Study, trials: list[Trial]) -> tuple[list[str], list[str]]:
    """(cost columns, metric columns) to show for a study: analytic costs present, the metrics of its objectives and
    constraints, and the usual accuracies."""
    objs = study.objectives()
    metrics = [o.metric for o in objs]
    metrics += [m for m in _USUAL if m not in metrics and any(m in t.metrics for t in trials)]
    costs = [m for m in COST_METRICS if any(m in t.costs for t in trials)]
    used = [c.metric for c in study.constraints()] + [o.metric for o in objs]
    costs += [m for m in dict.fromkeys(used) if m not in costs + metrics and any(m in t.costs for t in trials)]
    return costs, metrics


def sort_key(study: Study, sort: str | None = None):
    """Best first by ``sort`` (its direction from the study's objectives, else the metric table), else by the first
    objective; trials without the value last; ties by trial number."""
    objs = study.objectives()
    key_obj = objs[0] if sort is None else next((o for o in objs if o.metric == sort), None)
    if key_obj is None:
        key_obj = Objective(str(sort), direction(str(sort)))

    def k(t: Trial) -> tuple:
        v = t.value(key_obj.metric)
        return (v is None, -key_obj.score(t.values) if v is not None else 0, t.number)

    return k


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def axis(name: str) -> tuple[float, str]:
    """(divisor, axis label) for a metric, by its unit in the metric table."""
    unit = metric(name).unit
    if unit == "bytes":
        return 2**20, f"{name} (MiB)"
    if unit == "count":
        return 1e6, f"{name} (M)"
    if unit in ("ms", "s", "uJ"):
        return 1.0, f"{name} ({unit})"
    if unit == "percent":
        return 1.0, f"{name} (%)"
    return 1.0, name


def _cost_metric(study: Study, trials: list[Trial]) -> str | None:
    """The x axis of the cost plot: the first constraint's cheap metric, else model size, else any analytic cost."""
    have = {m for t in trials for m in t.costs}
    for m in [c.metric for c in study.constraints()] + ["size", *COST_METRICS]:
        if m in have:
            return m
    return None


def _cost_plot(study: Study, trials: list[Trial], done: list[Trial], obj: Objective):
    """Objective vs a cost, with the limit; every arch's cost as a rug (infeasible ones too)."""
    import matplotlib.pyplot as plt

    xm = _cost_metric(study, trials)
    if xm is None:
        return None
    scale, label = axis(xm)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    allx = [t.costs[xm] / scale for t in trials if xm in t.costs]
    ax.plot(allx, [0] * len(allx), "|", color="0.6", ms=12, transform=ax.get_xaxis_transform(), label="every arch")
    for group, style in (([t for t in done if t.feasible], dict(c="tab:blue", label="evaluated")),
                         ([t for t in done if not t.feasible], dict(c="tab:red", marker="x",
                                                                   label="evaluated, infeasible"))):  # fmt: skip
        if group:
            ax.scatter([t.costs.get(xm, math.nan) / scale for t in group], [t.value(obj.metric) for t in group],
                       **style)  # fmt: skip
    best = study.best()
    if best is not None and xm in best.costs:
        ax.scatter([best.costs[xm] / scale], [best.value(obj.metric)], s=160, facecolors="none", edgecolors="k",
                   label="best")  # fmt: skip
    for c in study.constraints():
        if c.metric == xm:
            ax.axvline(c.value / scale, color="tab:red", ls="--", label=f"limit {c}")
    ax.set_xlabel(label)
    ax.set_ylabel(axis(obj.metric)[1])
    ax.set_title(f"{obj.metric} vs {xm}")
    ax.legend(fontsize=8)
    return f"{obj.metric} vs {xm}", _png(fig)


def _progress_plot(trials: list[Trial], done: list[Trial], obj: Objective):
    """Best-so-far over trials (in trial order; infeasible trials count as visited)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    xs, ys, cur = [], [], None
    for t in trials:
        v = t.value(obj.metric) if t.state == State.COMPLETE and t.feasible else None
        if v is not None and (cur is None or obj.better(v, cur)):
            cur = v
        if cur is not None:
            xs.append(t.number + 1)
            ys.append(cur)
    ax.step(xs, ys, where="post")
    ax.scatter([t.number + 1 for t in done], [t.value(obj.metric) for t in done], s=10, c="0.5", label="trial")
    ax.set_xlabel("trials (all states)")
    ax.set_ylabel(f"best {axis(obj.metric)[1]} so far")
    ax.set_title("search progress")
    return "best so far", _png(fig)


def _pareto_plot(study: Study, done: list[Trial], o1: Objective, o2: Objective):
    import matplotlib.pyplot as plt

    (s1, l1), (s2, l2) = axis(o1.metric), axis(o2.metric)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter([t.value(o2.metric) / s2 for t in done], [t.value(o1.metric) / s1 for t in done], s=12, c="0.6",
               label="trials")  # fmt: skip
    front = sorted(study.pareto(), key=lambda t: t.value(o2.metric))
    ax.plot([t.value(o2.metric) / s2 for t in front], [t.value(o1.metric) / s1 for t in front], "o-", c="tab:red",
            label="Pareto front")  # fmt: skip
    ax.set_xlabel(f"{l2} ({o2.direction})")
    ax.set_ylabel(f"{l1} ({o1.direction})")
    ax.legend(fontsize=8)
    return "Pareto front", _png(fig)


def _curves_plot(done: list[Trial], obj: Objective, pruned: list[Trial] = ()):
    """Learning curves of complete trials (solid) and of trials stopped early (dotted, ending where they stopped)."""
    import matplotlib.pyplot as plt

    def has(t: Trial) -> bool:
        return bool(t.curve) and any(obj.metric in p for p in t.curve)

    curves = [t for t in done if has(t)][:40] + [t for t in pruned if has(t)][:40]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for t in curves:
        style = ":" if t.state == State.PRUNED else "-"
        ax.plot([p["step"] for p in t.curve], [p.get(obj.metric, math.nan) for p in t.curve], style, alpha=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel(axis(obj.metric)[1])
    ax.set_title("learning curves (dotted: stopped early)" if any(t.state == State.PRUNED for t in curves) else
                 "learning curves")
    return "learning curves", _png(fig)


def plots(study: Study) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: objective vs cost, best so far, Pareto front (two objectives), learning curves."""
    import matplotlib

    matplotlib.use("Agg")
    trials = study.trials()
    objs = study.objectives()
    obj = objs[0]
    done = [t for t in trials if t.state == State.COMPLETE and t.value(obj.metric) is not None]
    out = [_cost_plot(study, trials, done, obj)]
    if done:
        out.append(_progress_plot(trials, done, obj))
    if len(objs) >= 2:
        both = [t for t in done if t.value(objs[1].metric) is not None]
        if both:
            out.append(_pareto_plot(study, both, objs[0], objs[1]))
    out.append(_curves_plot(done, obj, [t for t in trials if t.state == State.PRUNED]))
    return [p for p in out if p is not None]


def trial_rows(trials: list[Trial], metrics: list[str], describe=None) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ["#", "arch", *metrics, "state", "time (s)", "note"])
    rows = []
    for t in trials:
        cells = [str(t.number), html.escape(describe(t.arch) if describe else t.arch.to_json())]
        cells += [html.escape(human(m, t.value(m))) for m in metrics]
        cells += [t.state.value, f"{t.duration_s:.1f}" if t.duration_s else "-", html.escape(t.error or "")]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


_HEAD = (
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}"
    "th{background:#f0f0f0}img{max-width:100%}code{background:#f4f4f4;padding:1px 4px}</style></head><body>"
)
_SETTINGS = ("family", "family_config", "task", "strategy", "strategy_hyper", "evaluator", "evaluator_config",
             "constraints", "objectives", "seed")  # fmt: skip


def write_report(study: Study, path: str | Path, describe=None) -> Path:
    """Write the report; ``describe(arch) -> str`` gives readable arch names (the family's; else arch JSON)."""
    cfg = study.config
    trials = study.trials()
    counts = Counter(t.state.value for t in trials)
    best = study.best()
    costs, metrics = columns(study, trials)
    metrics += costs
    name = describe or (lambda a: a.to_json())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>nasforge report: {html.escape(study.name)}</title>",
        _HEAD,
        f"<h1>Study <code>{html.escape(study.name)}</code></h1>",
        "<p>" + ", ".join(f"{html.escape(k)}: <b>{v}</b>" for k, v in sorted(counts.items())) +
        f" &mdash; {len(trials)} trials</p>",
        "<ul>",
        *(f"<li>{html.escape(k)}: <code>{html.escape(str(cfg.get(k)))}</code></li>" for k in _SETTINGS if k in cfg),
        "</ul>",
    ]
    if best is not None:
        vals = ", ".join(f"{m} {human(m, best.value(m))}" for m in metrics if best.value(m) is not None)
        parts.append(f"<h2>Best</h2><p>trial {best.number}: <code>{html.escape(name(best.arch))}</code> "
                     f"&mdash; {vals}</p>")  # fmt: skip
    else:
        parts.append("<h2>Best</h2><p>No feasible trial has completed yet.</p>")
    from .report_oneshot import oneshot_section

    parts += oneshot_section(study, name, _png)
    for title, png in plots(study):
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")
    shown = sorted([t for t in trials if t.state != State.INFEASIBLE], key=sort_key(study))
    parts.append(f"<h2>Trials</h2><p>{counts.get('infeasible', 0)} infeasible archs (never evaluated) are not "
                 "listed.</p>")  # fmt: skip
    parts.append(trial_rows(shown, metrics, name))
    for c in (Constraint.parse(c) for c in cfg.get("constraints", [])):
        parts.append(f"<p>constraint <code>{html.escape(str(c))}</code> = {c.metric} {c.op} {c.value:g}</p>")
    parts.append("</body></html>")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(parts))
    return p
