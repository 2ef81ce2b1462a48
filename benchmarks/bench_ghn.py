"""GHN on nb201 (C=8, N=1) trained on Fashion-MNIST, then judged on the shared reference set: rank correlation of
the accuracy with GHN-predicted weights (no training) against the archs' trained val_acc, and time per arch.

    python benchmarks/bench_ghn.py --reference benchmarks/results/reference_fmnist.json
    python benchmarks/bench_ghn.py --quick          # 20 steps, 6 archs of the reference (a smoke run)

Training stops at ``--steps`` or after ``--minutes``, whichever comes first (the steps reached are recorded; each
step's arch and batch depend only on the seed and the step, so rerunning with ``--steps`` set to them repeats it).
The data settings (train subset, validation size) are the reference's when its file is there at the start, else
the flags'; scoring waits for the reference file (``--wait`` minutes, polled every minute).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import save
from scipy import stats

from nasforge.evaluators.train import TrainEvaluator
from nasforge.hypernet.model import GHN
from nasforge.hypernet.train import Nets, checkpoint, load_ghn, save_ghn, score, train_ghn
from nasforge.spaces import create_family


def wait_for(path: Path, minutes: float) -> dict:
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > minutes * 60:
            raise SystemExit(f"no reference file at {path} after {minutes} minutes")
        print(f"waiting for {path} ...", flush=True)
        time.sleep(60)
    return json.loads(path.read_text())


def train(args, fam, data) -> tuple[GHN, dict]:
    torch.manual_seed(args.seed)
    ghn = GHN(hidden=args.hidden, max_out=32, max_in=32, max_kernel=3, rank=args.rank)
    nets = Nets(fam, data.task())
    t0, step, losses = time.perf_counter(), 0, []
    opt_state = None
    while step < args.steps and time.perf_counter() - t0 < args.minutes * 60:
        n = min(50, args.steps - step)
        r = train_ghn(ghn, nets, data.x_train, data.y_train, steps=n, start=step, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, optimizer_state=opt_state)  # fmt: skip
        step, opt_state = r["step"], r["optimizer"]
        losses += r["losses"]
        print(f"step {step}: loss {np.mean(r['losses']):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return ghn, {"steps": step, "train_s": time.perf_counter() - t0, "opt": opt_state,
                 "loss_curve": [float(np.mean(losses[i : i + 50])) for i in range(0, len(losses), 50)]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=Path(__file__).parent / "results" / "reference_fmnist.json")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--batch-size", type=int, default=32)  # more archs per minute than 64 on 2 shared cores
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--train-subset", type=int, default=2500)
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--wait", type=float, default=20.0, help="minutes to wait for the reference file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-ghn", type=Path, default=None, help="also write the trained GHN checkpoint here")
    ap.add_argument("--ghn", type=Path, default=None, help="score with this checkpoint instead of training one")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.minutes = 20, 2.0
    torch.set_num_threads(1)
    if args.reference.exists():
        s = json.loads(args.reference.read_text())["settings"]
        args.train_subset, args.val_size = s["train_subset"], s["val_size"]
    fam = create_family("nb201", C=8, N=1)
    data = TrainEvaluator(fam, "fashion-mnist", train_subset=args.train_subset, val_size=args.val_size,
                          threads=1).data()  # the reference's data code and split  # fmt: skip
    if args.ghn:  # a GHN trained by an earlier run (its --save-ghn): score only
        ghn, _, _, ck = load_ghn(args.ghn)
        tr = {"steps": ck["step"], "train_s": ck["meta"].get("train_s", float("nan")), "opt": None,
              "loss_curve": ck["meta"].get("loss_curve", []), "from_checkpoint": str(args.ghn)}  # fmt: skip
    else:
        ghn, tr = train(args, fam, data)
    if args.save_ghn and not args.ghn:
        meta = {"bench": "bench_ghn", "train_s": tr["train_s"], "loss_curve": tr["loss_curve"]}
        save_ghn(checkpoint(ghn, fam, data.task(), tr["steps"], tr["opt"], meta), args.save_ghn)
    ref = wait_for(args.reference, args.wait)
    rs = ref["settings"]
    same = (rs["train_subset"], rs["val_size"]) == (args.train_subset, args.val_size)
    archs = ref["archs"][: 6 if args.quick else None]
    nets = Nets(fam, data.task())
    torch.manual_seed(args.seed)  # the trained GHN's starting point: what training it added
    init = GHN(**ghn.config())
    rows = []
    print("\n| # | arch | trained val_acc | GHN val_acc | GHN val_loss | GHN s | train s |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(archs, 1):
        t0 = time.perf_counter()
        acc, loss = score(ghn, nets, r["arch"], data.x_val, data.y_val)
        dt = time.perf_counter() - t0
        init_acc = score(init, nets, r["arch"], data.x_val, data.y_val)[0]
        rows.append({"key": r["key"], "val_acc": r["val_acc"], "ghn_acc": acc, "ghn_loss": loss, "ghn_s": dt,
                     "init_acc": init_acc, "train_time_s": r["train_time_s"]})  # fmt: skip
        print(f"| {i} | {fam.describe(fam.arch(r['arch']))} | {r['val_acc']:.2f} | {acc:.2f} | {loss:.3f} | {dt:.2f} |"
              f" {r['train_time_s']:.1f} |", flush=True)  # fmt: skip
    y = [r["val_acc"] for r in rows]
    corr = {}
    for name, x in (("ghn_acc", [r["ghn_acc"] for r in rows]), ("neg_ghn_loss", [-r["ghn_loss"] for r in rows]),
                    ("untrained_ghn_acc", [r["init_acc"] for r in rows])):  # fmt: skip
        corr[name] = {"spearman": float(stats.spearmanr(x, y)[0]), "kendall": float(stats.kendalltau(x, y)[0])}
    t_ghn = float(np.mean([r["ghn_s"] for r in rows]))
    t_train = float(np.mean([r["train_time_s"] for r in rows]))
    print("\n| score | Spearman | Kendall |\n|---|---|---|")
    for k, v in corr.items():
        print(f"| {k} | {v['spearman']:.3f} | {v['kendall']:.3f} |")
    print(f"\nGHN: {tr['steps']} steps in {tr['train_s']:.0f} s; {t_ghn:.2f} s per arch scored vs {t_train:.1f} s per "
          f"arch trained ({t_train / t_ghn:.0f}x); data settings same as the reference: {same}")  # fmt: skip
    out = {"settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                        "reference_settings": rs, "same_data_settings": same, "ghn": ghn.config()},
           "training": {k: v for k, v in tr.items() if k != "opt"}, "correlation": corr,
           "time_per_arch_s": {"ghn": t_ghn, "train": t_train}, "archs": rows}  # fmt: skip
    print("wrote", save("ghn" + ("_quick" if args.quick else ""), out, threads=1))


if __name__ == "__main__":
    main()
