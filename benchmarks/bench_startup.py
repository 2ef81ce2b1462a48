"""Start-up of the read-only commands: `nasforge show` (and list, space, best) on a study of 1,000 trials, before and
after they stopped importing torch.

    python benchmarks/bench_startup.py [--before 0acf088] [--repeats 7]

A study of 1,000 nb201 trials (random search, a cheap stand-in score) is written once; then each command runs in a
fresh process, alternately with the sources of commit ``--before`` (exported with ``git archive``) and with this
tree, ``--repeats`` times each. Figures: median CPU time (the primary figure on a shared machine) and wall time, median
peak resident memory (the child's ``VmHWM``), whether torch was imported, and the ratios before/after. ``show``
prints all 1,000 rows (rich's rendering of them dominates); ``show-20`` the first 20 (start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# the child reports its own peak memory: VmHWM is per address space, so it starts afresh at exec, unlike the ru_maxrss
# a parent reads from wait4, which keeps the pre-exec peak of the forked parent (hundreds of MB when that holds torch)
PROBE = """
import re, sys
from nasforge.cli import main
rc = main(sys.argv[1:])
hwm = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)
sys.stderr.write(f"TORCH {'torch' in sys.modules} HWM {hwm}\\n")
sys.exit(rc)
"""


def make_study(url: str, n: int) -> None:
    from nasforge.spaces import create_family
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    fam = create_family("nb201")
    score = lambda arch: {"val_acc": float(sum(len(str(v)) for v in arch.values()) % 17)}  # noqa: E731
    Study.open("thousand", url).run(fam, create_strategy("random", fam.space, seed=0), score, budget=n)


def sources(commit: str, into: Path) -> Path:
    """The ``src`` folder of ``commit``, unpacked into ``into``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as t:
        t.extractall(into, filter="data")
    return into / "src"


def run_once(src: Path, args: list[str], cwd: Path) -> tuple[float, float, float, bool]:
    """(CPU seconds, wall seconds, peak RSS MiB, torch imported) of one fresh process running ``nasforge <args>``."""
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "200"}
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"nasforge {' '.join(args)} failed with {src}: {err[-500:]}")
    hwm = int(err.rsplit("HWM ", 1)[1].split()[0])
    return usage.ru_utime + usage.ru_stime, wall, hwm / 1024, "TORCH True" in err


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="0acf088")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--trials", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"before": sources(args.before, tmp / "before"), "after": ROOT / "src"}
        urls = {}
        for which, src in trees.items():  # each tree reads the database its own code writes (the schema moved on)
            urls[which] = f"sqlite:///{tmp}/{which}.db"
            subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(src)!r}, {str(HERE)!r}]\n"
                            f"from bench_startup import make_study; make_study({urls[which]!r}, {args.trials})"],
                           check=True, cwd=tmp)  # fmt: skip
        commands = {
            "show": lambda url: ["show", "thousand", "--storage", url],
            "show-20": lambda url: ["show", "thousand", "--storage", url, "--limit", "20"],
            "best": lambda url: ["best", "thousand", "--storage", url],
            "list": lambda url: ["list"],
            "space": lambda url: ["space", "lenet"],
        }
        res: dict[str, dict] = {}
        for name, cmd in commands.items():
            runs: dict[str, list] = {"before": [], "after": []}
            for _ in range(args.repeats):  # alternate, so that a change in the machine's load hits both alike
                for which, src in trees.items():
                    runs[which].append(run_once(src, cmd(urls[which]), tmp))
            res[name] = {
                which: {"median_cpu_s": statistics.median(r[0] for r in rs),
                        "median_wall_s": statistics.median(r[1] for r in rs),
                        "median_peak_mib": statistics.median(r[2] for r in rs), "imports_torch": rs[0][3]}
                for which, rs in runs.items()
            }  # fmt: skip
            b, a = res[name]["before"], res[name]["after"]
            for k in ("cpu", "wall"):
                res[name][f"{k}_ratio"] = b[f"median_{k}_s"] / a[f"median_{k}_s"]
            res[name]["memory_ratio"] = b["median_peak_mib"] / a["median_peak_mib"]
            print(f"{name:10s} before {b['median_cpu_s']:.2f}s CPU ({b['median_wall_s']:.2f}s wall) "
                  f"{b['median_peak_mib']:.0f} MiB torch={b['imports_torch']}  after {a['median_cpu_s']:.2f}s CPU "
                  f"({a['median_wall_s']:.2f}s wall) {a['median_peak_mib']:.0f} MiB torch={a['imports_torch']}  "
                  f"{res[name]['cpu_ratio']:.1f}x less CPU, {res[name]['memory_ratio']:.1f}x less memory", flush=True)
    out = {"command": "python benchmarks/bench_startup.py " + " ".join(sys.argv[1:]), "before": args.before,
           "trials": args.trials, "repeats": args.repeats, "results": res}  # fmt: skip
    print("written", save("startup", out))


if __name__ == "__main__":
    main()
