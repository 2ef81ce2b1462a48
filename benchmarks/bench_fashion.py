"""Fashion-MNIST from an image folder gives what it gives from its IDX files; a stated recipe gets the best feasible
LeNet (size <= 0.05 MiB) to >= 88% validation accuracy in 2 epochs.

    python benchmarks/bench_fashion.py [--epochs 2] [--threads 2] [--archs 17] [--workdir DIR]

1. Writes the IDX files as an image folder (``train/<class>/*.png``, ``test/<class>/*.png``: 70,000 PNGs) unless
   ``--workdir`` already holds it; times the writing.
2. Reads the task of both (shape, classes, per-channel normalisation) and times the driver's pass and the load.
3. Trains the 17 LeNets under size <= 0.05 MiB (of the 729; ``--archs N``: the N of them with the most MACs) with
   the recipe below, each with the seed a study would give it, once on the IDX files and once on the folder, and
   compares the two arch by arch. The folder lists its images class by class, so the two see the same samples in
   another order: equal up to that order's noise, not bit for bit.

The recipe (stated, chosen on one arch before the run; see RESULTS.md): SGD, lr 0.05, momentum 0.9, cosine schedule
to zero over the 2 epochs, batch 64, no weight decay or label smoothing; the chapter's recipe (lr 0.01, momentum 0.5)
stays the library's default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from nasforge.data import find_dataset, read_idx  # noqa: E402
from nasforge.datasets.idx import FASHION_CLASSES  # noqa: E402
from nasforge.evaluators import Context  # noqa: E402
from nasforge.evaluators.train import TrainEvaluator  # noqa: E402
from nasforge.loop import trial_seed  # noqa: E402
from nasforge.spaces import create_family  # noqa: E402

RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "cosine", "batch_size": 64}


def write_folder(root: Path) -> float:
    """Fashion-MNIST's IDX files as PNGs under ``root`` (train/ and test/, one folder per class); seconds taken."""
    from PIL import Image

    if (root / "done").exists():
        return 0.0
    t0 = time.perf_counter()
    src = find_dataset("fashion-mnist")
    names = [c.replace("/", "-") for c in FASHION_CLASSES]  # "T-shirt/top" cannot be a folder name
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(src / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(src / f"{prefix}-labels-idx1-ubyte.gz")
        for c in names:
            (root / split / c).mkdir(parents=True, exist_ok=True)
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            Image.fromarray(img).save(root / split / names[label] / f"{i:05d}.png")
    (root / "done").write_text("ok")
    return time.perf_counter() - t0


def feasible_archs(n: int | None) -> list:
    """The LeNets under 0.05 MiB (17 of 729), the ``n`` with the most MACs first (all when ``n`` is None)."""
    fam = create_family("lenet")
    ok = [a for a in fam.space.grid() if fam.costs(a)["size"] <= 0.05 * 2**20]
    return sorted(ok, key=lambda a: -fam.costs(a)["macs"])[:n]


def train_all(name: str, data, archs: list, epochs: int, threads: int) -> tuple:
    """Train each arch as a study's trial would be (seed from the study seed 0 and the arch key); the task, the
    seconds of the driver's pass and of loading, and ``{arch key: metrics}``."""
    fam = create_family("lenet")
    ev = TrainEvaluator(fam, data, epochs=epochs, threads=threads, **RECIPE)
    t0 = time.perf_counter()
    task = ev.task()
    t_task = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev.data()
    t_load = time.perf_counter() - t0
    out = {}
    for a in archs:
        m = ev(a, Context(seed=trial_seed(0, a)))
        out[a.key] = m
        print(f"{name:6s} {fam.describe(a):22s} val {m['val_acc']:.2f} test {m['test_acc']:.2f} "
              f"{m['train_time_s']:.0f}s", flush=True)  # fmt: skip
    return task, t_task, t_load, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--archs", type=int, default=None, help="train only the N feasible archs with the most MACs")
    ap.add_argument("--workdir", default=None, help="keep the image folder here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        folder = work / "fashion-folder"
        t_write = write_folder(folder)
        print(f"image folder: {folder} ({sum(1 for _ in folder.rglob('*.png'))} PNGs, written in {t_write:.0f}s)")
        archs = feasible_archs(args.archs)
        fam = create_family("lenet")
        t_idx, tt_idx, tl_idx, idx = train_all("idx", "fashion-mnist", archs, args.epochs, args.threads)
        t_f, tt_f, tl_f, fold = train_all("folder", str(folder), archs, args.epochs, args.threads)
        diff = {m: [abs(idx[a.key][m] - fold[a.key][m]) for a in archs] for m in ("val_acc", "test_acc")}
        best = max(archs, key=lambda a: idx[a.key]["val_acc"])
        res = {
            "command": "python benchmarks/bench_fashion.py " + " ".join(sys.argv[1:]),
            "recipe": {**RECIPE, "epochs": args.epochs},
            "archs": "all 17 feasible" if args.archs is None else f"the {len(archs)} feasible with the most MACs",
            "folder_write_s": t_write,
            "task_equal": t_idx.mean == t_f.mean and t_idx.std == t_f.std and t_idx.input_shape == t_f.input_shape,
            "normalisation": {"idx": [t_idx.mean, t_idx.std], "folder": [t_f.mean, t_f.std]},
            "class_names": {"idx": t_idx.class_names, "folder": t_f.class_names},
            "driver_pass_s": {"idx": tt_idx, "folder": tt_f},
            "load_s": {"idx": tl_idx, "folder": tl_f},
            "best_feasible_by_val": {"arch": fam.describe(best), **idx[best.key], "size": fam.costs(best)["size"]},
            "over_88_val": sum(m["val_acc"] >= 88 for m in idx.values()),
            "same_arch_abs_diff": {m: {"median": statistics.median(v), "max": max(v)} for m, v in diff.items()},
            "pairs": [{"arch": fam.describe(a), "idx": idx[a.key], "folder": fold[a.key]} for a in archs],
        }  # fmt: skip
    print(f"task equal: {res['task_equal']}; driver pass idx {tt_idx:.1f}s folder {tt_f:.1f}s; "
          f"load idx {tl_idx:.1f}s folder {tl_f:.1f}s")
    b = res["best_feasible_by_val"]
    print(f"best feasible by val: {b['arch']} val {b['val_acc']:.2f}% test {b['test_acc']:.2f}% "
          f"({res['over_88_val']} of {len(archs)} at >= 88%)")
    d = res["same_arch_abs_diff"]
    print(f"idx vs folder, same arch ({len(archs)}): |val diff| median {d['val_acc']['median']:.2f} max "
          f"{d['val_acc']['max']:.2f}; |test diff| median {d['test_acc']['median']:.2f} max {d['test_acc']['max']:.2f}")
    print("written", save("fashion", res, args.threads))


if __name__ == "__main__":
    main()
