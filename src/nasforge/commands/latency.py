"""``nasforge latency``: measure latency on this machine, build a lookup table, train and evaluate predictors.

User errors are ``NasforgeError``s, left to ``nasforge.cli.main``, which prints them as one line and exits with 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..quick import shrink
from .output import JsonOpt, one_format, print_json, print_whole, write_rows

app = typer.Typer(name="latency", help="Latency on this machine: measure, lookup table, learned predictors.")
predictor_app = typer.Typer(name="predictor", help="Train or evaluate a learned latency predictor.")
app.add_typer(predictor_app)

FamilyOpt = Annotated[str, typer.Option(help="Search-space family (lenet, cell, mobilenet, ...).")]
FamilyKV = Annotated[list[str] | None, typer.Option("--family-opt", help="Family option key=value (repeatable).")]
InputOpt = Annotated[str | None, typer.Option(help="Input shape C,H,W of the task (default: the family's usual one; "
                                                   "mobilenet takes H×W from each arch's resolution).")]
ClassesOpt = Annotated[int | None, typer.Option(min=1, help="Classes of the task (default: the family's usual one).")]
RuntimeOpt = Annotated[str, typer.Option(help="torch (eager) or onnxruntime.")]
# counts carry their ranges, so that a bad one is a one-line usage error before anything is measured
ThreadsOpt = Annotated[int, typer.Option(min=1, help="Intra-op threads (1 is the steadiest on a shared machine).")]
RepeatsOpt = Annotated[int, typer.Option(min=1, help="Timed calls per model (after the warm-up).")]
WarmupOpt = Annotated[int, typer.Option(min=0, help="Untimed calls first.")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed for sampling archs and the order of interleaved repeats.")]
CacheOpt = Annotated[Path | None, typer.Option(help="Cache folder (default $NASFORGE_CACHE_DIR, "
                                                    "$XDG_CACHE_HOME/nasforge or ~/.cache/nasforge).")]


def _setup(family: str, family_opt: list[str] | None, input_shape: str | None, classes: int | None) -> tuple[Any, Any]:
    """The family and the task: the family's usual task (3×32×32 images, 10 classes when it has none), with the shape
    and the class count the options give."""
    from ..errors import NasforgeError
    from ..spaces import create_family
    from ..task import CIFAR10_TASK, Task
    from ..textio import parse_kv

    fam = create_family(family, **parse_kv(family_opt, "family"))
    task = fam.default_task or CIFAR10_TASK
    if input_shape is None and classes is None:
        return fam, task
    shape = task.input_shape
    if input_shape is not None:
        try:
            shape = tuple(int(x) for x in input_shape.replace("x", ",").split(","))
        except ValueError:
            raise NasforgeError(f"--input-shape {input_shape!r} must be integers like 3,32,32") from None
    return fam, Task(shape, task.num_classes if classes is None else classes)


def _archs(fam: Any, arch: str | None, random: int | None, seed: int) -> list[Any]:
    from ..errors import NasforgeError
    from ..latency.base import sample_archs

    if (arch is None) == (random is None):
        raise NasforgeError("give exactly one of --arch '<json>' and --random N")
    if arch is not None:
        try:
            values = json.loads(arch)
        except json.JSONDecodeError as e:
            raise NasforgeError(f"--arch is not valid JSON ({e.msg} at character {e.pos})") from None
        if not isinstance(values, dict):
            raise NasforgeError("--arch must be a JSON object {dimension: value, ...}")
        return [fam.arch(values)]
    if random is None or random < 1:
        raise NasforgeError(f"--random needs a positive count, got {random}")
    return sample_archs(fam, random, seed)


@app.command("measure")
def measure(
    family: FamilyOpt = "mobilenet",
    arch: Annotated[str | None, typer.Option(help="One arch as JSON {dimension: value}.")] = None,
    random: Annotated[int | None, typer.Option(help="Measure N archs sampled from the space.")] = None,
    runtime: RuntimeOpt = "torch",
    threads: ThreadsOpt = 1,
    repeats: RepeatsOpt = 50,
    warmup: WarmupOpt = 10,
    seed: SeedOpt = 0,
    family_opt: FamilyKV = None,
    input_shape: InputOpt = None,
    classes: ClassesOpt = None,
    cache_dir: CacheOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Measure again and do not store.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the results as JSON here.")] = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="One CSV row per arch on stdout (values as stored).")] = False,
) -> None:
    """Time archs at batch 1 in eval mode (interleaved repeats); print median, minimum, q10 and spread."""
    from rich.console import Console
    from rich.table import Table

    from ..latency.machine import machine_fingerprint
    from ..latency.measured import MeasuredLatency

    one_format(as_json, as_csv)
    q = shrink("latency measure", {"random": random, "repeats": repeats, "warmup": warmup})
    random, repeats, warmup = q["random"], q["repeats"], q["warmup"]
    fam, task = _setup(family, family_opt, input_shape, classes)
    archs = _archs(fam, arch, random, seed)
    model = MeasuredLatency(fam, task, runtime=runtime, threads=threads, warmup=warmup, repeats=repeats, seed=seed,
                            cache=not no_cache, cache_dir=cache_dir)
    timings = model.timings(archs)
    fp = machine_fingerprint(runtime, threads)
    t = Table(title=f"{family} latency, {runtime}, {threads} thread(s), batch 1, {repeats} repeats ({fp['cpu']})")
    for col in ("arch", "MACs (M)", "median ms", "min ms", "q10 ms", "spread"):
        t.add_column(col, justify="left" if col == "arch" else "right")
    rows = []
    for a, tm in zip(archs, timings, strict=True):
        s = tm.summary()
        macs = fam.costs(a, task)["macs"]
        t.add_row(fam.describe(a), f"{macs / 1e6:.1f}", f"{s['median_ms']:.3f}", f"{s['min_ms']:.3f}",
                  f"{s['q10_ms']:.3f}", f"{s['spread']:.1%}")
        rows.append({"arch": dict(a), "key": a.key, "describe": fam.describe(a), "macs": macs, **s})
    doc = {"machine": fp, "family": family, "runtime": runtime, "threads": threads, "repeats": repeats,
           "results": rows}  # fmt: skip
    if as_json:
        print_json(doc)
    elif as_csv:
        write_rows(rows, ["key", "describe", "macs", *[k for k in rows[0] if k.endswith(("_ms", "spread"))], "arch"])
    else:
        print_whole(Console(), t)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))


@app.command("lut")
def lut(
    family: FamilyOpt = "mobilenet",
    out: Annotated[Path, typer.Option(help="Table file (JSON); an existing one is resumed.")] = Path("lut.json"),
    archs: Annotated[int, typer.Option(min=1, help="Sample this many archs and table every unit they use.")] = 2000,
    granularity: Annotated[str, typer.Option(help="block (whole MBConv blocks) or layer.")] = "block",
    calibrate: Annotated[int, typer.Option(min=0, help="Measure N whole archs, fit a·sum + b to them (0: skip).")] = 10,
    runtime: RuntimeOpt = "torch",
    threads: ThreadsOpt = 1,
    repeats: Annotated[int, typer.Option(min=1, help="Timed samples per unit.")] = 20,
    warmup: WarmupOpt = 5,
    seed: SeedOpt = 0,
    family_opt: FamilyKV = None,
    input_shape: InputOpt = None,
    classes: ClassesOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    recalibrate: Annotated[bool, typer.Option("--recalibrate", help="Calibrate again a resumed table that has a "
                                                                    "calibration (kept by default).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build (or resume) the per-unit latency lookup table of a family, then calibrate it on whole networks (once:
    a resumed table keeps its calibration unless --recalibrate)."""
    from rich.console import Console

    from ..latency.base import sample_archs
    from ..latency.lut import build_table, family_units
    from ..latency.measured import MeasuredLatency

    q = shrink("latency lut", {"archs": archs, "calibrate": calibrate, "repeats": repeats, "warmup": warmup})
    archs, calibrate, repeats, warmup = q["archs"], q["calibrate"], q["repeats"], q["warmup"]
    fam, task = _setup(family, family_opt, input_shape, classes)
    table = build_table(fam, task, out, n_archs=archs, seed=seed, progress=not quiet, granularity=granularity,
                        runtime=runtime, threads=threads, repeats=repeats, warmup=warmup)
    con = Console(soft_wrap=True, stderr=as_json)  # with --json, stdout holds the document alone
    con.print(f"{len(table)} units in {out}")
    if calibrate > 0 and table.calibrated and not recalibrate:
        c = table.calibration
        load = "unknown" if c.get("load_avg") is None else " ".join(map(str, c["load_avg"]))
        con.print(f"kept the calibration of {c.get('calibrated_at', 'an earlier run')} (load average {load}): "
                  f"measured ≈ {c['a']:.3f}·sum + {c['b']:.3f} ms; --recalibrate measures it again", highlight=False)
    elif calibrate > 0:
        cal_archs = sample_archs(fam, calibrate, seed + 1)
        table.measure(family_units(fam, task, cal_archs, table.granularity), seed=seed)  # units the sample missed
        ms = MeasuredLatency(fam, task, runtime=runtime, threads=threads, seed=seed, cache=False).predict(cal_archs)
        c = table.calibrate([fam.layers(a, task) for a in cal_archs], ms)
        table.save()
        con.print(f"calibration on {calibrate} measured archs: measured ≈ {c['a']:.3f}·sum + {c['b']:.3f} ms "
                  f"(rmse {c['rmse_ms']:.3f} ms; {c['calibrated_at']}, load average "
                  f"{'unknown' if c['load_avg'] is None else ' '.join(map(str, c['load_avg']))})", highlight=False)
    if as_json:
        print_json({"file": str(out), "family": family, "units": len(table), "granularity": table.granularity,
                    "calibration": table.calibration if table.calibrated else None})  # fmt: skip


@predictor_app.command("train")
def predictor_train(
    family: FamilyOpt = "mobilenet",
    out: Annotated[Path, typer.Option(help="Where to save the trained predictor (JSON).")] = Path("predictor.json"),
    kind: Annotated[str, typer.Option(help="model (architecture features) or kernel (nn-Meter).")] = "model",
    regressor: Annotated[str, typer.Option(help="Model-level regressor: gbr, rf or ridge.")] = "gbr",
    n_train: Annotated[int, typer.Option(min=5, help="Archs to measure for training (5 at least: errors are "
                                                     "estimated five-fold).")] = 200,
    rounds: Annotated[int, typer.Option(min=0, help="Adaptive-sampling rounds.")] = 2,
    runtime: RuntimeOpt = "torch",
    threads: ThreadsOpt = 1,
    repeats: RepeatsOpt = 20,
    warmup: WarmupOpt = 5,
    stat: Annotated[str, typer.Option(help="Statistic to learn: median, min, q10, ...")] = "median",
    seed: SeedOpt = 0,
    family_opt: FamilyKV = None,
    input_shape: InputOpt = None,
    classes: ClassesOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure archs on this machine and train a latency predictor on them (with adaptive sampling)."""
    from rich.console import Console

    from ..latency.base import sample_archs
    from ..latency.kernel_level import KernelPredictor
    from ..latency.measured import MeasuredLatency
    from ..latency.model_level import ModelPredictor, adaptive_fit
    from ..latency.predictor import PredictorError
    from ..latency.table import LatencyTable

    q = shrink("latency predictor train", {"n_train": n_train, "rounds": rounds, "repeats": repeats, "warmup": warmup})
    n_train, rounds, repeats, warmup = q["n_train"], q["rounds"], q["repeats"], q["warmup"]
    fam, task = _setup(family, family_opt, input_shape, classes)
    meas = MeasuredLatency(fam, task, runtime=runtime, threads=threads, warmup=warmup, repeats=repeats, stat=stat,
                           seed=seed, cache_dir=cache_dir)
    archs = sample_archs(fam, n_train, seed)
    ms = meas.predict(archs)
    con = Console(soft_wrap=True, stderr=as_json)
    if kind == "model":
        p, pool, _, hist = adaptive_fit(ModelPredictor(fam, task, regressor, seed), archs, ms,
                                        lambda new: meas.predict(new), rounds=rounds)
        con.print(f"trained on {len(pool)} archs ({len(pool) - len(archs)} added by adaptive sampling): {hist}")
    elif kind == "kernel":
        kt = LatencyTable(granularity="layer", runtime=runtime, threads=threads)
        p = KernelPredictor(fam, task, kt, seed=seed).fit(archs, ms, rounds=rounds)
        con.print(f"{len(kt)} kernels measured; adaptive sampling: {p.history}")
    else:
        raise PredictorError(f"unknown predictor kind {kind!r}; use model or kernel")
    p.save(out)
    con.print(f"saved {p.kind} predictor for {family} to {out}")
    if as_json:
        print_json({"file": str(out), "kind": p.kind, "family": family, "measured": len(archs)})


@predictor_app.command("evaluate")
def predictor_evaluate(
    predictor: Annotated[Path, typer.Option(help="A saved predictor (JSON).")] = Path("predictor.json"),
    n_test: Annotated[int, typer.Option(min=2, help="Held-out archs to measure and predict.")] = 40,
    repeats: RepeatsOpt = 20,
    warmup: WarmupOpt = 5,
    stat: Annotated[str, typer.Option(help="Statistic the predictor learned.")] = "median",
    runtime: RuntimeOpt = "torch",
    threads: ThreadsOpt = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the held-out sample (not training's).")] = 12345,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure held-out archs and report ±10% accuracy, RMSE and Spearman of a saved predictor."""
    from rich.console import Console

    from ..latency.base import sample_archs
    from ..latency.measured import MeasuredLatency
    from ..latency.predictor import LatencyPredictor

    q = shrink("latency predictor evaluate", {"n_test": n_test, "repeats": repeats, "warmup": warmup})
    n_test, repeats, warmup = q["n_test"], q["repeats"], q["warmup"]
    p = LatencyPredictor.load(predictor)
    fam, task = p.fam, p.task
    archs = sample_archs(fam, n_test, seed)
    ms = MeasuredLatency(fam, task, runtime=runtime, threads=threads, warmup=warmup, repeats=repeats, stat=stat,
                         seed=seed, cache_dir=cache_dir).predict(archs)
    r = p.evaluate(archs, ms)
    if as_json:
        print_json({"file": str(predictor), "kind": p.kind, "family": fam.name, **r})
        return
    Console(soft_wrap=True).print(f"{p.kind} predictor on {r['n']} held-out {fam.name} archs: ±10% accuracy "
                                  f"{r['acc10']:.1%}, RMSE {r['rmse_ms']:.3f} ms, Spearman {r['spearman']:.3f}")
