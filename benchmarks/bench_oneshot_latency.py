"""ProxylessNAS's latency loss at work (issue 10): sweep ``latency_weight`` and watch the derived arch's latency.

Family: ``mobilenet`` at a small configuration (3 stages of width 24, 32, 48 and strides 1, 2, 2; depth fixed at 2, so
6 searched block slots, each over kernel {3, 5, 7} × expand {3, 6} = 6 candidates; width 1.0; resolution 32, to
which the family resizes Fashion-MNIST's 1×28×28; stem 16, first block 16, head 96). Method: the library's
``proxyless`` with the two-path estimator and its defaults (α Adam lr 1e-3, β1 0), on a Fashion-MNIST subset.

Latency model: a lookup table of this family and task (``latency.lut.build_table`` over sampled archs, 1 thread),
priced by ``LutLatency`` as the raw sum of its units (``calibrated=False``); the loss is the library's
``latency_weight``·E[latency]/reference. The table's linear calibration (``LatencyTable.calibrate`` on 8 networks
measured whole) is fitted and reported but not used: on a loaded machine it can come out with a negative slope (it did
in a first run: a = -1.74), which would invert the latency loss; the raw sum is a monotone model of the units.

Per weight: the derived arch, its LUT latency, its re-measured latency (all derived archs timed together, interleaved,
batch 1, 1 thread: median and IQR of the repeats; and the spread of the median over ``--rounds`` independent rounds),
and its accuracy on 1,000 Fashion-MNIST validation images, supernet-inherited (BN on batch statistics) and, with
``--scratch-epochs`` > 0, trained from scratch on the same subset (``TrainEvaluator``, sgd, seed 0).

Usage:
    python benchmarks/bench_oneshot_latency.py            # weights 0, 0.5, 2, 8, 32; subset 1000 × 4 epochs, batch 32
    python benchmarks/bench_oneshot_latency.py --quick
Writes benchmarks/results/bench_oneshot_latency.json and benchmarks/results/oneshot_latency.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, save  # noqa: E402

import nasforge.oneshot.proxyless  # noqa: E402, F401  (registers)
from nasforge.errors import NasforgeError  # noqa: E402
from nasforge.evaluators.base import Context  # noqa: E402
from nasforge.evaluators.train import TrainEvaluator  # noqa: E402
from nasforge.latency.lut import LutLatency, build_table  # noqa: E402
from nasforge.latency.measured import MeasuredLatency  # noqa: E402
from nasforge.oneshot.base import ONESHOT  # noqa: E402
from nasforge.oneshot.relax import single  # noqa: E402
from nasforge.spaces.base import create_family  # noqa: E402

CONFIG = {"stages": [[24, 1], [32, 2], [48, 2]], "depths": [2], "kernels": [3, 5, 7], "expands": [3, 6],
          "widths": [1.0], "resolutions": [32], "stem": 16, "first": 16, "head": 96}  # fmt: skip


def inherited_acc(m, data, n: int = 1000) -> float:
    arch = m.derive()
    choice = m.net.choice_of(arch)
    m.net.train()  # batch statistics (the supernet's running statistics are of the sampled mixture)
    x, y = data.x_val[:n], data.y_val[:n]
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 250):
            correct += int((m.net(x[i : i + 250], m.fixed, single(choice)).argmax(1) == y[i : i + 250]).sum())
    return 100.0 * correct / len(y)


def lut_model(fam, task, n_archs: int, n_cal: int, repeats: int):
    """A calibrated lookup table for ``fam`` on ``task`` and what it took."""
    t0 = time.perf_counter()
    table = build_table(fam, task, n_archs=n_archs, seed=0)
    rng = np.random.default_rng(1)
    cal = [fam.space.sample(rng) for _ in range(n_cal)]
    ms = MeasuredLatency(fam, task, threads=1, repeats=repeats, cache=False).predict(cal)
    raw = [table.raw_sum(fam.layers(a, task)) for a in cal]
    fit = dict(table.calibrate([fam.layers(a, task) for a in cal], ms))
    info = {"units": len(table), "sampled_archs": n_archs, "calibration_fit_not_used": fit,
            "calibration_points": [{"raw_lut_ms": r, "measured_ms": float(v)} for r, v in zip(raw, ms, strict=True)],
            "build_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    return LutLatency(fam, task, table, calibrated=False), info


def remeasure(fam, task, archs, rounds: int, repeats: int) -> list[dict]:
    """Per arch: median and IQR of the first round's repeats, and the medians of every round (interleaved)."""
    meds: list[list[float]] = [[] for _ in archs]
    first = None
    for r in range(rounds):
        ts = MeasuredLatency(fam, task, threads=1, repeats=repeats, cache=False, seed=r).timings(archs)
        first = first or ts
        for k, t in enumerate(ts):
            meds[k].append(t.median)
    assert first is not None
    return [{"median_ms": statistics.median(m), "round_medians_ms": m, "iqr_ms": t.iqr, "min_ms": t.min,
             "q25_ms": t.quantile(0.25),
             "q75_ms": t.quantile(0.75)} for m, t in zip(meds, first, strict=True)]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run")
    ap.add_argument("--weights", default="0,0.5,2,8,32")
    ap.add_argument("--subset", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--arch-lr", type=float, default=1e-3, help="ProxylessNAS's α learning rate (the authors': 1e-3)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--scratch-epochs", type=int, default=2, help="0: supernet-inherited accuracy only")
    ap.add_argument("--rounds", type=int, default=3, help="re-measurement rounds")
    ap.add_argument("--repeats", type=int, default=100, help="timed calls per network and round")
    ap.add_argument("--lut-archs", type=int, default=300)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.quick:
        a.weights, a.subset, a.epochs, a.batch, a.scratch_epochs = "0,8", 256, 1, 32, 1
        a.rounds, a.repeats, a.lut_archs = 1, 10, 20
    weights = [float(w) for w in a.weights.split(",")]
    fam = create_family("mobilenet", **CONFIG)
    try:
        ev = TrainEvaluator(fam, "fashion-mnist", data_dir=a.data_dir, train_subset=a.subset, val_size=1000,
                            epochs=max(a.scratch_epochs, 1), device="cpu", save_weights=False)  # fmt: skip
        task, data = ev.task(), ev.data()
    except NasforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    lat, lut_info = lut_model(fam, task, a.lut_archs, 3 if a.quick else 8, a.repeats)
    fit = lut_info["calibration_fit_not_used"]
    print(f"LUT: {lut_info['units']} units, calibration fit (not used) a={fit['a']:.3f} b={fit['b']:.3f} ms "
          f"({lut_info['build_s']} s)", flush=True)  # fmt: skip
    rows = []
    for w in weights:
        t0 = time.perf_counter()
        m = ONESHOT.create("proxyless", fam, task, seed=0, epochs=a.epochs, batch_size=a.batch, estimator="two_path",
                           latency=lat, latency_weight=w, arch_lr=a.arch_lr)  # fmt: skip
        m.setup("cpu")
        for e in range(1, a.epochs + 1):
            stats = m.train_epoch(data, e)
        arch = m.derive()
        e_lat = float(m.expected_latency().detach()) if w > 0 else None
        rows.append({"latency_weight": w, "arch": dict(arch), "describe": fam.describe(arch),
                     "lut_ms": float(lat.predict([arch])[0]), "expected_latency_ms_end": e_lat,
                     "inherited_acc": inherited_acc(m, data), "last_epoch": stats,
                     "search_s": round(time.perf_counter() - t0, 1)})  # fmt: skip
        print(f"weight {w:g}: {rows[-1]['describe']}  LUT {rows[-1]['lut_ms']:.3f} ms, inherited "
              f"{rows[-1]['inherited_acc']:.1f}% ({rows[-1]['search_s']} s)", flush=True)  # fmt: skip
    archs = [fam.space.validate(r["arch"]) for r in rows]
    for r, meas in zip(rows, remeasure(fam, task, archs, a.rounds, a.repeats), strict=True):
        r["measured"] = meas
    if a.scratch_epochs > 0:
        for r, arch in zip(rows, archs, strict=True):
            r["scratch"] = {k: v for k, v in ev(arch, Context(seed=0)).items() if k in ("val_acc", "train_time_s")}
    out = {"command": " ".join(["python", *sys.argv]), "family": {"name": "mobilenet", **CONFIG},
           "data": f"fashion-mnist subset {a.subset}, val 1000", "epochs": a.epochs, "batch": a.batch,
           "arch_lr": a.arch_lr,
           "lut": lut_info, "rounds": a.rounds, "repeats": a.repeats, "scratch_epochs": a.scratch_epochs,
           "rows": rows}  # fmt: skip
    path = save("bench_oneshot_latency" + ("_quick" if a.quick else ""), out, threads=1)
    plot(rows, RESULTS / ("oneshot_latency" + ("_quick" if a.quick else "") + ".png"))
    show(rows)
    print(f"wrote {path}")
    return 0


def show(rows: list[dict]) -> None:
    print("\n| latency_weight | derived arch | LUT ms | measured ms (median) | IQR ms | min ms | round medians ms | "
          "inherited acc % | scratch acc % |")
    print("|---:|---|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        m = r["measured"]
        sc = f"{r['scratch']['val_acc']:.1f}" if "scratch" in r else "-"
        print(f"| {r['latency_weight']:g} | `{r['describe']}` | {r['lut_ms']:.3f} | {m['median_ms']:.3f} | "
              f"{m['iqr_ms']:.3f} | {m['min_ms']:.3f} | {', '.join(f'{x:.3f}' for x in m['round_medians_ms'])} | "
              f"{r['inherited_acc']:.1f} | {sc} |")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(xs, [r["lut_ms"] for r in rows], "o-", label="LUT latency (raw sum of units)")
    med = [r["measured"]["median_ms"] for r in rows]
    lo = [r["measured"]["median_ms"] - r["measured"]["q25_ms"] for r in rows]
    hi = [r["measured"]["q75_ms"] - r["measured"]["median_ms"] for r in rows]
    ax.errorbar(xs, med, yerr=[lo, hi], fmt="s--", capsize=4, label="measured (median, IQR)")
    ax.set_xticks(xs, [f"{r['latency_weight']:g}" for r in rows])
    ax.set_xlabel("latency_weight")
    ax.set_ylabel("latency, ms (batch 1, 1 thread)")
    ax2 = ax.twinx()
    ax2.plot(xs, [r["inherited_acc"] for r in rows], "^:", color="tab:green", label="accuracy, inherited")
    if all("scratch" in r for r in rows):
        ax2.plot(xs, [r["scratch"]["val_acc"] for r in rows], "v:", color="tab:red", label="accuracy, from scratch")
    ax2.set_ylabel("Fashion-MNIST val accuracy, %")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="best")
    ax.set_title("ProxylessNAS (two-path) on mobilenet, Fashion-MNIST: derived arch vs latency weight", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
