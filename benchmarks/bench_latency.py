"""Latency predictors on held-out mobilenet archs, beside the noise ceiling measured in the same run.

Protocol (issue 4): torch eager, batch 1, 1 thread, eval mode, interleaved repeats. The held-out archs are measured in
two separate passes (A and B); the *noise ceiling* is how well pass A predicts pass B (±10% accuracy, RMSE, Spearman).
Every predictor is scored against pass B the same way, for three statistics of the samples (median, min, q10), raw
and corrected for the machine's drift between passes (4 fixed reference archs are measured in every pass; a pass's
latencies are divided by the median ratio of the references' latencies in it to those in pass A):

- MACs only: a line latency ≈ a·MACs + b fitted on the training archs;
- the lookup table (whole MBConv blocks, and single layers), calibrated on the training archs (a·sum + b);
- nn-Meter's kernel-level predictor (random forests per fused kernel type, adaptive sampling, calibrated sum);
- model-level regressors (gradient boosting, random forest, ridge) on the OFA encoding + analytic costs, with
  adaptive sampling (mutated neighbours of badly predicted training archs are measured and added).

Also: 1 vs 2 threads, torch eager vs onnxruntime (same archs, two passes each), and paired (ABBA) vs unpaired
comparisons of archs of close latency. The machine load is recorded (os.getloadavg) before, during and after.

    nice -n 0 python benchmarks/bench_latency.py            # the full run: run it alone (RESULTS.md says how long)
    python benchmarks/bench_latency.py --quick               # a smoke run with tiny settings

Writes benchmarks/results/latency.json (or latency_quick.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, save  # noqa: E402

from nasforge.latency.kernel_level import KernelPredictor  # noqa: E402
from nasforge.latency.lut import family_units  # noqa: E402
from nasforge.latency.model_level import ModelPredictor, adaptive_fit  # noqa: E402
from nasforge.latency.predictor import accuracy_report  # noqa: E402
from nasforge.latency.runtime import measure_models, measure_paired, prepare, torch_threads  # noqa: E402
from nasforge.latency.table import LatencyTable  # noqa: E402
from nasforge.latency.timing import Timing, time_functions  # noqa: E402
from nasforge.spaces import Task, create_family  # noqa: E402

STATS = ("median", "min", "q10")
LOAD: list[tuple[str, tuple[float, float, float]]] = []


def load(label: str) -> None:
    LOAD.append((label, os.getloadavg()))
    print(f"  [load {label}: {' '.join(f'{x:.2f}' for x in LOAD[-1][1])}]", flush=True)


def sample(fam, n, rng, exclude=()):
    """``n`` archs of distinct networks, none of them a network of ``exclude``."""
    banned = {fam.network_key(a) for a in exclude}
    out = []
    while len(out) < n:
        a = fam.space.sample(rng)
        if fam.network_key(a) not in banned:
            banned.add(fam.network_key(a))
            out.append(a)
    return out


def timings(fam, task, archs, *, runtime="torch", threads=1, repeats=20, warmup=3, seed=0, exporter="dynamo"):
    models = [fam.build(a, task) for a in archs]
    shapes = [fam.input_shape(a, task) for a in archs]
    return measure_models(models, shapes, runtime=runtime, threads=threads, repeats=repeats, warmup=warmup,
                          seed=seed, exporter=exporter)


REFS: list = []  # a few fixed archs measured (interleaved) in every pass, to see the machine's drift between passes
REF_T: list[list[Timing]] = []


def timed_pass(fam, task, archs, **kw):
    """``timings`` of archs + the reference archs; returns the archs' timings and records the references'."""
    ts = timings(fam, task, list(archs) + REFS, **kw)
    REF_T.append(ts[len(archs):])
    return ts[: len(archs)], len(REF_T) - 1


def drift(p: int, s: str) -> float:
    """How much slower the machine ran in pass ``p`` than in pass 0 (A): the median ratio over the references."""
    return float(np.median(stat(REF_T[p], s) / stat(REF_T[0], s)))


def stat(ts: list[Timing], s: str) -> np.ndarray:
    return np.array([t.stat(s) for t in ts])


def fmt(r: dict) -> str:
    return f"±10% {r['acc10']:6.1%}   RMSE {r['rmse_ms']:6.3f} ms   Spearman {r['spearman']:.3f}"


def constrained_search(fam, task, archs, ms, test, test_ms, ceiling, args) -> dict:
    """Regularized evolution maximising MACs under ``latency_ms <= L`` priced by the model-level predictor (min
    statistic), L the 30th percentile of the held-out latencies; the top 10 are re-measured."""
    import tempfile

    from nasforge.latency.predictor import PredictorLatency
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    limit = float(np.quantile(test_ms, 0.3))
    pred = ModelPredictor(fam, task, "gbr", seed=args.seed).fit(archs, ms)
    budget = 60 if args.quick else 400
    with tempfile.TemporaryDirectory() as tmp:
        study = Study.open("latency-constrained", storage=f"sqlite:///{tmp}/s.db")
        study.run(fam, create_strategy("evolution", fam.space, seed=args.seed), lambda arch: {}, task=task,
                  constraints=[f"latency_ms<={limit:.4f}"], objectives=["maximize macs"], budget=budget,
                  cost_models=[PredictorLatency(fam, task, pred)])
        done = [t for t in study.trials() if t.state == "complete" and t.feasible]
        done.sort(key=lambda t: -t.costs["macs"])
        firsts = {}
        for t in done:  # archs that differ only in unused block slots are one network: count it once
            firsts.setdefault(fam.network_key(t.arch), t)
        best = list(firsts.values())[:10]
        top = [t.arch for t in best]
        predicted = [t.costs["latency_ms"] for t in best]
        n_trials, n_infeasible = len(study.trials()), sum(t.state == "infeasible" for t in study.trials())
    ts, _ = timed_pass(fam, task, top, repeats=args.repeats, seed=11)
    measured = stat(ts, "min")
    band = float(ceiling["mape"])  # the typical disagreement of one measurement with another, same protocol
    meets = int(np.sum(measured <= limit))
    within = int(np.sum(measured <= limit * (1 + band)))
    print(f"search: {n_trials} trials ({n_infeasible} infeasible by predicted latency), limit {limit:.2f} ms (min); "
          f"top {len(top)} by MACs re-measured: {meets} meet the limit, {within} within the noise band "
          f"(+{band:.0%}); predicted {np.round(predicted, 2).tolist()}, measured {np.round(measured, 2).tolist()}")
    return {"limit_ms": limit, "trials": n_trials, "infeasible": n_infeasible, "top": len(top), "meet": meets,
            "within_noise_band": within, "band": band, "predicted_ms": predicted, "measured_ms": measured.tolist(),
            "macs": [float(fam.costs(a, task)["macs"]) for a in top]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings, a smoke run")
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=25, help="timed calls per arch and pass")
    ap.add_argument("--side", type=int, default=20, help="archs for the threads and runtime comparisons")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.repeats, args.side = 30, 12, 5, 4
    t0 = time.time()
    fam = create_family("mobilenet")
    task = Task((3, 32, 32), 10)  # channels and classes; H×W is each arch's resolution (96-160)
    rng = np.random.default_rng(args.seed)
    test = sample(fam, args.n_test, rng)
    train = sample(fam, args.n_train, rng, exclude=test)
    REFS[:] = sample(fam, 4, rng, exclude=test + train)
    print(f"mobilenet: {args.n_train} training and {args.n_test} held-out archs (distinct networks), "
          f"torch eager, batch 1, 1 thread, {args.repeats} interleaved repeats per pass")
    print(f"machine: {machine()}")
    load("start")

    # --- the noise ceiling: the held-out archs measured twice --------------------------------------------------------
    pass_a, pa = timed_pass(fam, task, test, repeats=args.repeats, seed=1)
    load("after pass A")
    train_t, pt = timed_pass(fam, task, train, repeats=args.repeats, seed=3)  # between the passes: minutes apart
    load("after training archs")
    pass_b, pb = timed_pass(fam, task, test, repeats=args.repeats, seed=2)
    load("after pass B")
    spread = float(np.median([t.spread for t in pass_a + pass_b]))
    print(f"median spread (IQR/median) of one arch's repeats: {spread:.1%}")
    print("machine drift against pass A (reference archs, median): training pass "
          f"{drift(pt, 'median'):.3f}, pass B {drift(pb, 'median'):.3f}")

    # variants: the raw statistic, and the statistic divided by the pass's drift (the same for every arch in a pass)
    variants = [(s, corr) for s in STATS for corr in (False, True)]

    def y(ts, p, s, corr):
        return stat(ts, s) / (drift(p, s) if corr else 1.0)

    def vname(s, corr):
        return f"{s}{', drift-corrected' if corr else ''}"

    ceiling = {vname(s, c): accuracy_report(y(pass_a, pa, s, c), y(pass_b, pb, s, c)) for s, c in variants}
    for k, r in ceiling.items():
        print(f"noise ceiling ({k:25s}): {fmt(r)}")

    # --- predictors --------------------------------------------------------------------------------------------------
    results: dict[str, dict[str, dict]] = {k: {"ceiling (pass A)": r} for k, r in ceiling.items()}
    y_tr = {vname(s, c): y(train_t, pt, s, c) for s, c in variants}
    y_b = {vname(s, c): y(pass_b, pb, s, c) for s, c in variants}
    lay_tr = [fam.layers(a, task) for a in train]
    lay_te = [fam.layers(a, task) for a in test]

    macs_tr = np.array([fam.costs(a, task)["macs"] for a in train], dtype=float)
    macs_te = np.array([fam.costs(a, task)["macs"] for a in test], dtype=float)
    for s in results:
        a, b = np.polyfit(macs_tr, y_tr[s], 1)
        results[s]["MACs only (linear)"] = accuracy_report(a * macs_te + b, y_b[s])

    t1 = time.time()
    luts = {}
    for gran in ("block", "layer"):
        table = LatencyTable(granularity=gran, warmup=3, repeats=10)
        table.measure(family_units(fam, task, train + test, gran), seed=args.seed)
        luts[gran] = table
        raw_te = np.array([table.raw_sum(lay) for lay in lay_te])
        for s in results:
            table.calibrate(lay_tr, y_tr[s])
            results[s][f"LUT sum, {gran}s, calibrated"] = accuracy_report(
                np.array([table.predict(lay) for lay in lay_te]), y_b[s])
        results["median"][f"LUT sum, {gran}s, raw"] = accuracy_report(raw_te, y_b["median"])
        print(f"LUT ({gran}s): {len(table)} units measured; raw sum / measured median = "
              f"{float(np.median(raw_te / y_b['median'])):.2f}")
    lut_s = time.time() - t1
    load("after LUTs")

    t1 = time.time()
    kp = KernelPredictor(fam, task, LatencyTable(granularity="layer", warmup=3, repeats=10),
                         n_estimators=100, seed=args.seed)
    n_k = min(len(train), 40)
    kp.fit(train[:n_k], y_tr["median"][:n_k], rounds=3, per_bad=20, max_new=150, probe_archs=8)
    print(f"kernel-level: {len(kp.kernel_table)} kernels measured; adaptive sampling {kp.history}")
    sums_tr = np.array([kp.raw_sum(a) for a in train])
    sums_te = np.array([kp.raw_sum(a) for a in test])
    for s in results:
        a, b = np.polyfit(sums_tr, y_tr[s], 1)
        results[s]["kernel-level (nn-Meter), calibrated"] = accuracy_report(a * sums_te + b, y_b[s])
    kernel_s = time.time() - t1
    load("after kernel predictor")

    # model-level with adaptive sampling; the archs it adds are measured in the same way as the training set
    t1 = time.time()
    added: list = []
    added_t: list[Timing] = []

    added_p: list[int] = []

    def measure_new(new):
        ts, p = timed_pass(fam, task, new, repeats=args.repeats, seed=4 + len(added))
        added.extend(new)
        added_t.extend(ts)
        added_p.extend([p] * len(new))
        return stat(ts, "median")

    p0 = ModelPredictor(fam, task, "gbr", seed=args.seed)
    _, pool, _, hist = adaptive_fit(p0, train, y_tr["median"], measure_new, rounds=2, per_bad=2,
                                    max_new=max(4, args.n_train // 5))
    print(f"model-level adaptive sampling: {hist}; {len(added)} archs added")
    for s, c in variants:
        k = vname(s, c)
        y_all = np.concatenate([y_tr[k], [y([t], p, s, c)[0] for t, p in zip(added_t, added_p, strict=True)]])
        s = k
        for reg, feats in (("gbr", "both"), ("rf", "both"), ("ridge", "both"), ("ridge", "analytic")):
            name = f"model-level {reg}" + (" (costs only)" if feats == "analytic" else "")
            p = ModelPredictor(fam, task, reg, seed=args.seed, features=feats).fit(train, y_tr[s])
            results[s][name] = accuracy_report(p.predict(test), y_b[s])
            p = ModelPredictor(fam, task, reg, seed=args.seed, features=feats).fit(pool, y_all)
            results[s][f"{name} + adaptive"] = accuracy_report(p.predict(test), y_b[s])
    model_s = time.time() - t1
    load("after model-level predictors")

    print()
    verdict = {}
    for s in results:
        print(f"--- statistic: {s} (scored against pass B of the held-out archs) ---")
        for name, r in results[s].items():
            print(f"{name:40s} {fmt(r)}")
        preds = {k: v for k, v in results[s].items() if not k.startswith("ceiling")}
        best_acc = max(preds, key=lambda k: preds[k]["acc10"])
        best_rho = max(preds, key=lambda k: preds[k]["spearman"])
        c = ceiling[s]
        verdict[s] = {
            "best_acc10": best_acc,
            "acc10_gap_points": 100 * (c["acc10"] - preds[best_acc]["acc10"]),
            "best_spearman": best_rho,
            "spearman_ratio": preds[best_rho]["spearman"] / c["spearman"],
            "target_met": bool(100 * (c["acc10"] - preds[best_acc]["acc10"]) <= 5
                               and preds[best_rho]["spearman"] >= 0.9 * c["spearman"]),
        }
        print(f"best ±10%: {best_acc} ({verdict[s]['acc10_gap_points']:+.1f} points below the ceiling); best "
              f"Spearman: {best_rho} ({verdict[s]['spearman_ratio']:.2f} of the ceiling); target met: "
              f"{verdict[s]['target_met']}")
        print()

    # --- threads and runtimes ----------------------------------------------------------------------------------------
    side = test[: args.side]
    t1 = time.time()
    th2_a = timings(fam, task, side, threads=2, repeats=args.repeats, seed=5)
    th2_b = timings(fam, task, side, threads=2, repeats=args.repeats, seed=6)
    load("after 2 threads")
    with torch_threads(1):  # export once, time the same sessions in two passes
        sessions = [prepare(fam.build(a, task), fam.input_shape(a, task), "onnxruntime", 1) for a in side]
        ort_a = time_functions(sessions, warmup=3, repeats=args.repeats, seed=7)
        ort_b = time_functions(sessions, warmup=3, repeats=args.repeats, seed=8)
    load("after onnxruntime")
    n = len(side)
    stability = {}
    for s in STATS:
        stability[s] = {
            "torch 1 thread": accuracy_report(stat(pass_a[:n], s), stat(pass_b[:n], s)),
            "torch 2 threads": accuracy_report(stat(th2_a, s), stat(th2_b, s)),
            "onnxruntime 1 thread": accuracy_report(stat(ort_a, s), stat(ort_b, s)),
        }
    ratios = {
        "2 threads / 1 thread (median latency)": float(np.median(stat(th2_a + th2_b, "median")
                                                                 / stat(pass_a[:n] + pass_b[:n], "median"))),
        "onnxruntime / torch (median latency)": float(np.median(stat(ort_a + ort_b, "median")
                                                                / stat(pass_a[:n] + pass_b[:n], "median"))),
    }
    spreads = {
        "torch 1 thread": float(np.median([t.spread for t in pass_a[:n] + pass_b[:n]])),
        "torch 2 threads": float(np.median([t.spread for t in th2_a + th2_b])),
        "onnxruntime 1 thread": float(np.median([t.spread for t in ort_a + ort_b])),
    }
    print(f"--- stability on {n} held-out archs (pass A vs pass B) ---")
    for s in STATS:
        for name, r in stability[s].items():
            print(f"{s:6s} {name:22s} {fmt(r)}   spread {spreads[name]:.1%}")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    side_s = time.time() - t1

    # --- paired vs unpaired comparisons ------------------------------------------------------------------------------
    order = np.argsort(stat(pass_a, "median"))
    pairs = [(int(order[i]), int(order[i + 1])) for i in range(0, min(len(order) - 1, 2 * args.side), 2)]
    agree_paired, agree_unpaired = [], []
    for i, j in pairs[: max(2, args.side // 2)]:
        mi, mj = fam.build(test[i], task), fam.build(test[j], task)
        shapes = [fam.input_shape(test[i], task), fam.input_shape(test[j], task)]
        r1 = measure_paired(mi, mj, shapes, repeats=args.repeats, warmup=3, seed=9).ratio
        r2 = measure_paired(mi, mj, shapes, repeats=args.repeats, warmup=3, seed=10).ratio
        agree_paired.append((r1 < 1) == (r2 < 1))
        agree_unpaired.append((pass_a[j].median < pass_a[i].median) == (pass_b[j].median < pass_b[i].median))
    paired = {"pairs": len(agree_paired), "paired_runs_agree": float(np.mean(agree_paired)),
              "unpaired_passes_agree": float(np.mean(agree_unpaired))}
    print(f"which of two close archs is faster, asked twice ({len(agree_paired)} neighbouring pairs by latency): "
          f"paired ABBA runs agree {paired['paired_runs_agree']:.0%}, unpaired passes agree "
          f"{paired['unpaired_passes_agree']:.0%}")
    load("after paired")

    # --- a search under a latency constraint, priced by the predictor, checked by re-measuring -----------------------
    search = constrained_search(fam, task, pool, np.concatenate([y_tr["min"], stat(added_t, "min")]), test,
                                stat(pass_b, "min"), ceiling["min"], args)
    load("end")

    out = {
        "benchmark": "latency_predictors_mobilenet",
        "command": "nice -n 0 python benchmarks/bench_latency.py" + (" --quick" if args.quick else ""),
        "settings": {**vars(args), "runtime": "torch eager", "batch": 1, "threads": 1,
                     "family": "mobilenet (default config: resolutions 96-160, widths 0.5-1.0)"},
        "load": LOAD,
        "median_spread": spread,
        "ceiling": ceiling,
        "drift": {s: {"training": drift(pt, s), "pass_b": drift(pb, s)} for s in STATS},
        "results": results,
        "verdict": verdict,
        "stability": stability,
        "stability_spread": spreads,
        "ratios": ratios,
        "paired": paired,
        "constrained_search": search,
        "lut_units": {g: len(t) for g, t in luts.items()},
        "kernel_history": kp.history,
        "model_adaptive_history": hist,
        "seconds": {"total": time.time() - t0, "lut": lut_s, "kernel": kernel_s, "model": model_s,
                    "threads_runtimes": side_s},
    }
    path = save("latency_quick" if args.quick else "latency", out, threads=1)
    print(f"wrote {path} in {out['seconds']['total']:.0f} s")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
