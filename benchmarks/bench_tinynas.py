"""TinyNAS search-space optimisation on the mobilenet family (issue 4): which (width, resolution) sub-space to search.

Task: ImageNet-like, 3×R×R inputs and 1,000 classes (MCUNet's setting: the classifier's weights count towards flash).
Limits at int8 (weights and activations), MCUNet's microcontroller classes:
    small  128 KiB SRAM / 512 KiB flash
    main   256 KiB SRAM /   1 MiB flash   (STM32F412-class; MCUNet's headline board has 320 KB / 1 MB)
    large  512 KiB SRAM /   2 MiB flash
For each limit, 1,000 archs per sub-space (12 sub-spaces), ranked by the mean MACs of the feasible archs; for the main
limits also the median and the 90th percentile as scores, and seeds 0, 1, 2 to show the choice is stable.

Usage (on a shared machine: run it alone, niced):
    nice -n 10 python benchmarks/bench_tinynas.py            # n = 1000
    python benchmarks/bench_tinynas.py --n 100               # a quick look
Writes benchmarks/results/bench_tinynas.json and benchmarks/results/bench_tinynas_cdf.png (main limits, seed 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, save  # noqa: E402

from nasforge.spaces import Task, create_family  # noqa: E402
from nasforge.tinynas import TinyNASResult, optimise_space  # noqa: E402

LIMITS = {
    "small": ["sram<=128KiB", "flash<=512KiB"],
    "main": ["sram<=256KiB", "flash<=1MiB"],
    "large": ["sram<=512KiB", "flash<=2MiB"],
}


def show(name: str, res: TinyNASResult, secs: float) -> None:
    print(f"\n{name}: {', '.join(res.constraints)}  (score {res.score}, n={res.n}, seed={res.seed}, {secs:.1f} s)")
    print(f"{'rank':>4} {'width':>5} {'res':>4} {'feasible':>9} {'mean MACs':>10} {'median':>8} {'max':>8}")
    for r in res.table():
        def m(v: float | None) -> str:
            return "-" if v is None else f"{v / 1e6:.1f}M"

        print(f"{r['rank'] or '-':>4} {r['width']:>5} {r['resolution']:>4} {r['feasible']:>4}/{r['sampled']:<4} "
              f"{m(r['mean_macs']):>10} {m(r['median_macs']):>8} {m(r['max_macs']):>8}")
    print("best:", res.best.label() if res.best else "none feasible")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="archs per sub-space")
    args = ap.parse_args()
    fam = create_family("mobilenet")
    task = Task((3, 224, 224), 1000)  # H×W come from each arch's resolution
    runs: dict[str, dict] = {}
    per_arch: list[float] = []

    def run(name: str, limits: list[str], **kw) -> TinyNASResult:
        t = time.perf_counter()
        res = optimise_space(fam, task, limits, n=args.n, **kw)
        secs = time.perf_counter() - t
        per_arch.append(secs / (args.n * len(res.subspaces)))
        show(name, res, secs)
        runs[name] = {**res.to_dict(), "seconds": secs}
        return res

    main_res = None
    for name, limits in LIMITS.items():
        res = run(name, limits, seed=0)
        if name == "main":
            main_res = res
    for score in ("median", "p90"):
        run(f"main-{score}", LIMITS["main"], seed=0, score=score)
    for seed in (1, 2):
        run(f"main-seed{seed}", LIMITS["main"], seed=seed)

    RESULTS.mkdir(parents=True, exist_ok=True)
    png = main_res.plot(RESULTS / "bench_tinynas_cdf.png",
                        title=f"TinyNAS on mobilenet, 1000 classes, int8: {', '.join(LIMITS['main'])}")
    summary = {name: r["best"] for name, r in runs.items()}
    print("\nchosen sub-space per run:")
    for name, best in summary.items():
        print(f"  {name:12s} {best}")
    ms = 1e3 * sum(per_arch) / len(per_arch)
    print(f"layers + costs per arch: {ms:.2f} ms")
    p = save("bench_tinynas", {
        "command": f"benchmarks/bench_tinynas.py --n {args.n}",
        "family": "mobilenet (defaults)",
        "task": task.to_dict(),
        "ms_per_arch": ms,
        "chosen": summary,
        "runs": runs,
        "plot": str(png.relative_to(RESULTS.parent.parent)),
    })
    print(f"wrote {p} and {png}")


if __name__ == "__main__":
    main()
