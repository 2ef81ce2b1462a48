"""Net2Net on our families: (a) function preservation of the blueprint morphs, (b) training from inherited weights
against training from scratch on Fashion-MNIST (issue 11; Chen et al., 2016).

(a) For random parents and children one to four growth steps larger (lenet: wider conv/fc layers; mobilenet
example_config: width, expand, depth, kernel), the largest |output difference| in eval mode, float32, without noise,
on random inputs, with BatchNorm statistics settled first. Target < 1e-5.

(b) A parent is trained ``--parent-epochs`` epochs; the grown child is trained ``--epochs`` epochs from the morphed
weights (noise 0.01) and, separately, from scratch, with the same recipe, data order and seed. Reported: validation
accuracy per epoch of both (epoch 0 = before training), and the epochs the inherited child needs to reach the
from-scratch child's final accuracy. Curves: benchmarks/results/net2net_curves.png.

    python benchmarks/bench_net2net.py            # ~10 min with 1 thread on an idle core
    python benchmarks/bench_net2net.py --quick    # ~1 min
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import RESULTS, save

from nasforge.evaluators import Context, create_evaluator
from nasforge.evaluators.train import accuracy
from nasforge.morph import morph
from nasforge.spaces import create_family
from nasforge.strategies.morph_evolution import step
from nasforge.task import Task

LENET_GROW = ("conv1_ch", "conv2_ch", "fc1", "fc2")
LENET_PARENT = dict(conv1_ch=3, conv1_k=5, conv2_ch=12, conv2_k=5, fc1=64, fc2=32)
LENET_CHILD = dict(LENET_PARENT, conv1_ch=9, conv2_ch=20, fc1=256, fc2=120)


def mobilenet():
    return create_family("mobilenet", **create_family("mobilenet").example_config())


def mb(fam, **kw):
    base = {k: c.values[0] for k, c in fam.space.dims.items()}
    return fam.space.validate({**base, "resolution": 32, **kw})


def grow(fam, arch, dims, rng, steps):
    """``arch`` grown by up to ``steps`` random growth steps along ``dims``."""
    a = dict(arch)
    for _ in range(steps):
        options = [k for k in dims if step(fam.space.dims[k].values, a[k], 1) is not None]
        if not options:
            break
        k = options[int(rng.integers(len(options)))]
        a[k] = step(fam.space.dims[k].values, a[k], 1)
    return fam.space.validate(a)


def preservation(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    lenet = create_family("lenet")
    mbn = mobilenet()
    mb_dims = [k for k in mbn.space.names if k != "resolution"]
    cases = [("lenet", lenet, Task((1, 28, 28), 10), LENET_GROW), ("mobilenet", mbn, Task((3, 32, 32), 10), mb_dims)]
    for name, fam, task, dims in cases:
        worst, t_morph = 0.0, 0.0
        for i in range(n):
            small = {k: fam.space.dims[k].values[0] for k in dims}
            parent = fam.space.validate({**fam.space.sample(rng), **small, **({"resolution": 32} if
                                         name == "mobilenet" else {"conv1_k": 5, "conv2_k": 5})})  # fmt: skip
            parent = grow(fam, parent, dims, rng, int(rng.integers(0, 3)))
            child = grow(fam, parent, dims, rng, int(rng.integers(1, 5)))
            torch.manual_seed(i)
            net = fam.build(parent, task).train()
            with torch.no_grad():  # settle BatchNorm statistics away from 0 / 1
                for _ in range(2):
                    net(torch.randn(16, *task.input_shape) * 2 + 0.5)
            net.eval()
            t0 = time.perf_counter()
            grown = morph(fam, parent, net.state_dict(), child, task, seed=i).eval()
            t_morph += time.perf_counter() - t0
            x = torch.randn(8, *task.input_shape)
            with torch.no_grad():
                worst = max(worst, float((net(x) - grown(x)).abs().max()))
        rows.append({"family": name, "pairs": n, "max_abs_diff": worst, "ms_per_morph": 1e3 * t_morph / n})
    return rows


def curves(fam, parent, child, args, train: int, val: int) -> dict:
    ev = create_evaluator("train", family=fam, dataset="fashion-mnist", epochs=args.epochs, optimizer="adamw",
                          lr=args.lr, train_subset=train, val_size=val, test_subset=val, threads=1,
                          save_weights=False)  # fmt: skip
    task = ev.task()
    data = ev.data()
    t0 = time.perf_counter()
    pctx = Context(seed=1, artifacts=Capture())  # type: ignore[arg-type]
    ev.save_weights = True  # the parent's best-epoch weights, as the study's artifact store would hold them
    pres = ev.fit(parent, pctx, epochs=args.parent_epochs)
    ev.save_weights = False
    pstate = Capture.state
    t_parent = time.perf_counter() - t0
    out = {"parent": fam.describe(parent), "child": fam.describe(child), "parent_val_acc": pres["val_acc"],
           "parent_curve": [c["val_acc"] for c in pctx.curve], "parent_time_s": t_parent}  # fmt: skip
    for how in ("inherited", "scratch"):
        ctx = Context(seed=2)
        if how == "inherited":
            init = morph(fam, parent, pstate, child, task, seed=2, noise=0.01).state_dict()
        else:
            torch.manual_seed(2)
            init = fam.build(child, task).state_dict()
        start = fam.build(child, task)
        start.load_state_dict(init)
        acc0 = accuracy(start, data.x_val, data.y_val)[0]
        t0 = time.perf_counter()
        ev.fit(child, ctx, init=init, epochs=args.epochs)
        out[how] = [acc0] + [c["val_acc"] for c in ctx.curve]
        out[f"{how}_time_s"] = time.perf_counter() - t0
    target = out["scratch"][-1]
    out["scratch_final"] = target
    out["epochs_to_scratch_final"] = next((e for e, a in enumerate(out["inherited"]) if a >= target), None)
    return out


class Capture:
    """A stand-in for ``ctx.artifacts`` that keeps what ``fit`` saves."""

    state = None

    def save(self, name, obj):
        Capture.state = obj


def plot(results: dict, tag: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4))
    for ax, (name, r) in zip(np.atleast_1d(axes), results.items(), strict=True):
        e = range(len(r["scratch"]))
        ax.plot(e, r["inherited"], "o-", label="child from inherited (Net2Net) weights")
        ax.plot(e, r["scratch"], "s-", label="child from scratch")
        ax.axhline(r["scratch_final"], ls="--", c="grey", lw=0.8)
        ax.set(title=f"{name}: {r['parent']} → {r['child']}", xlabel="child training epochs",
               ylabel="val accuracy (%)")  # fmt: skip
        ax.title.set_fontsize(8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    p = RESULTS / f"net2net_curves{tag}.png"
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(p, dpi=110)
    return str(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (~1 min)")
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--mb-train", type=int, default=2000, help="mobilenet's training subset (slower per sample)")
    ap.add_argument("--mb-val", type=int, default=500)
    ap.add_argument("--parent-epochs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--families", default="lenet,mobilenet", help="which curves to train (comma-separated)")
    ap.add_argument("--tag", default="", help="suffix of the result and plot file names (a variant run)")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.train, args.val, args.parent_epochs, args.epochs = 5, 1000, 300, 2, 3
        args.mb_train, args.mb_val = 500, 200
    torch.set_num_threads(1)
    pres = preservation(args.pairs)
    print("| family | pairs | max abs output diff (no noise) | ms per morph |\n|---|---|---|---|")
    for r in pres:
        print(f"| {r['family']} | {r['pairs']} | {r['max_abs_diff']:.2e} | {r['ms_per_morph']:.1f} |")
    mbn = mobilenet()
    runs = {
        "lenet": (create_family("lenet"), LENET_PARENT, LENET_CHILD),
        "mobilenet": (mbn, dict(mb(mbn)), dict(mb(mbn, width=1.0, s0_d=2, s1_d=2, s0_b0_e=4, s1_b0_e=4))),
    }
    res = {}
    for name, (fam, p, c) in runs.items():
        if name not in args.families.split(","):
            continue
        sizes = (args.train, args.val) if name == "lenet" else (args.mb_train, args.mb_val)
        res[name] = curves(fam, fam.space.validate(p), fam.space.validate(c), args, *sizes)
        res[name]["train_subset"], res[name]["val_size"] = sizes
    print("\n| family | parent → child | parent acc | scratch final | inherited at epoch 0 / 1 / final | "
          "epochs to scratch final (inherited) | time inherited / scratch (s) |\n|---|---|---|---|---|---|---|")
    for name, r in res.items():
        inh = r["inherited"]
        print(f"| {name} | {r['parent']} → {r['child']} | {r['parent_val_acc']:.1f} | {r['scratch_final']:.1f} | "
              f"{inh[0]:.1f} / {inh[1]:.1f} / {inh[-1]:.1f} | {r['epochs_to_scratch_final']} of {args.epochs} | "
              f"{r['inherited_time_s']:.0f} / {r['scratch_time_s']:.0f} |")
    png = plot(res, args.tag)
    name = "bench_net2net" + ("_quick" if args.quick else "") + args.tag
    path = save(name, {"args": vars(args), "preservation": pres, "curves": res, "plot": png}, threads=1)
    print(f"\nsaved {path} and {png}")


if __name__ == "__main__":
    main()
