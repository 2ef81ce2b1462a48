"""Training memory of ONE mixed layer as its candidates grow (issue 10): DARTS's weighted sum against ProxylessNAS's
two binarised paths (and GDAS's single sampled path, for reference).

The network: a tiny family declared here (stem 3×3 conv C + BN, then ONE choice node of N candidates, each a 3×3
conv C + BN + ReLU, then global pooling and a linear classifier), relaxed by the library (``oneshot.relax``) and run
with the mixers the methods use: ``weighted(softmax(α))`` (DARTS), ``two_path(pairs, gates)`` (ProxylessNAS's
architecture step), ``straight_through`` (GDAS). One forward and backward on a fixed batch.

The figure: the bytes of the tensors autograd saves for backward (``torch.autograd.graph.saved_tensors_hooks``),
deduplicated by storage (a tensor saved twice, or two views of one storage, count once), parameters left out (they
are held anyway): exact and deterministic. Measured twice: around the mixed layer alone (the mixer wrapped) and
around the whole forward. Besides, the peak RSS growth of a fresh process during one forward+backward (the kernel's
high-water mark reset through /proc/self/clear_refs just before), which includes the backward's own buffers and the
allocator's behaviour, so it is indicative only.

Usage:
    python benchmarks/bench_oneshot_memory.py            # N = 2..8, batch 64, C 16, 28×28 (about a minute)
    python benchmarks/bench_oneshot_memory.py --quick    # N = 2, 3, batch 8
Writes benchmarks/results/bench_oneshot_memory.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from nasforge.blueprint import BN, Act, Blueprint, Conv, Flatten, GlobalPool, Linear  # noqa: E402
from nasforge.oneshot.relax import RelaxedNet, straight_through, two_path, weighted  # noqa: E402
from nasforge.spaces.base import Family  # noqa: E402
from nasforge.task import Task  # noqa: E402

METHODS = ("darts", "proxyless", "gdas")


class OneMixed(Family):
    """Stem, one choice node of ``n`` 3×3 conv-BN-ReLU candidates, pooling, classifier."""

    name = "one_mixed"

    def __init__(self, n: int, c: int = 16) -> None:
        self.n, self.c = n, c

    def config(self):
        return {"n": self.n, "c": self.c}

    @property
    def space(self):
        return self.make_space({"op": tuple(f"conv{i}" for i in range(self.n))})

    def blueprint(self, task: Task) -> Blueprint:
        bp = Blueprint(task.input_shape)
        bp.seq("stem", [Conv(self.c, 3), BN()])
        bp.choice("mixed", "op", {f"conv{i}": [Conv(self.c, 3), BN(), Act("relu")] for i in range(self.n)})
        bp.add("gap", GlobalPool())
        bp.add("flatten", Flatten())
        bp.add("classifier", Linear(task.num_classes))
        return bp


class SavedBytes:
    """Sum of the bytes of the storages autograd saves while active (each storage once; parameters excluded)."""

    def __init__(self, params) -> None:
        self.skip = {p.untyped_storage().data_ptr() for p in params}
        self.seen: dict[int, int] = {}

    def pack(self, t: torch.Tensor):
        s = t.untyped_storage()
        if s.data_ptr() not in self.skip:
            self.seen[s.data_ptr()] = s.nbytes()
        return t

    @property
    def total(self) -> int:
        return sum(self.seen.values())

    def hooks(self, also: SavedBytes | None = None):
        """Record while active; ``also`` records too (an inner hook replaces the outer one, so it must pass on)."""

        def pack(t: torch.Tensor):
            if also is not None:
                also.pack(t)
            return self.pack(t)

        return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)


def make_mixer(method: str, n: int, alpha: torch.Tensor):
    if method == "darts":
        return weighted([torch.softmax(alpha, 0)])
    if method == "proxyless":
        gate = torch.tensor([1.0, 0.0], requires_grad=True)
        return two_path([(0, 1)], [gate])
    soft = torch.softmax(alpha, 0)
    hard = torch.zeros(n).scatter(0, torch.tensor([0]), 1.0) - soft.detach() + soft
    return straight_through([hard], [0])


def setup(n: int, c: int, batch: int):
    torch.manual_seed(0)
    task = Task((1, 28, 28), 10)
    net = RelaxedNet(OneMixed(n, c).supernet(task)).train()
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(1))
    alpha = torch.zeros(n, requires_grad=True)
    return net, x, y, alpha


def saved_bytes(method: str, n: int, c: int, batch: int) -> dict[str, int]:
    """Saved bytes of the mixed layer alone and of the whole forward, for one forward+backward."""
    net, x, y, alpha = setup(n, c, batch)
    layer, whole = SavedBytes(net.parameters()), SavedBytes(net.parameters())
    inner = make_mixer(method, n, alpha)

    def mixer(g, run):
        with layer.hooks(also=whole):
            return inner(g, run)

    with whole.hooks():
        loss = F.cross_entropy(net(x, {}, mixer), y)
    loss.backward()
    return {"layer": layer.total, "whole": whole.total}


def _kib(status_key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(status_key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {status_key} in /proc/self/status")


def child(method: str, n: int, c: int, batch: int) -> None:
    """In a fresh process: peak RSS growth (bytes) of one forward+backward, printed as JSON."""
    torch.set_num_threads(1)
    net, x, y, alpha = setup(n, c, batch)
    mixer = make_mixer(method, n, alpha)
    with torch.no_grad():  # touch the code paths once without keeping a graph
        net(x[:1], {}, make_mixer(method, n, alpha.detach()))
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (VmHWM) to the current RSS
    before = _kib("VmRSS")
    loss = F.cross_entropy(net(x, {}, mixer), y)
    loss.backward()
    print(json.dumps({"rss_growth": (_kib("VmHWM") - before) * 1024}))


def rss_growth(method: str, n: int, c: int, batch: int) -> int | None:
    cmd = [sys.executable, __file__, "--child", method, str(n), str(c), str(batch)]
    with contextlib.suppress(subprocess.CalledProcessError, ValueError, KeyError):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return int(json.loads(out.strip().splitlines()[-1])["rss_growth"])
    return None


def mib(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], *map(int, a.child[1:]))
        return 0
    torch.set_num_threads(1)
    ns = [2, 3] if a.quick else list(range(2, 9))
    batch = 8 if a.quick else a.batch
    t0 = time.perf_counter()
    rows = []
    for n in ns:
        row: dict = {"candidates": n}
        for m in METHODS:
            rss = rss_growth(m, n, a.channels, batch) if m != "gdas" else None  # fresh processes: seconds each
            row[m] = {**saved_bytes(m, n, a.channels, batch), "rss_growth": rss}
        rows.append(row)
        print(f"N={n}: " + ", ".join(f"{m} {mib(row[m]['layer'])} MiB" for m in METHODS), flush=True)
    one = batch * a.channels * 28 * 28 * 4  # one activation of the mixed layer's shape, float32
    last = rows[-1]
    out = {
        "command": " ".join(["python", *sys.argv]),
        "settings": {"batch": batch, "channels": a.channels, "input": [1, 28, 28], "candidate": "conv3x3-BN-ReLU",
                     "one_activation_bytes": one},  # fmt: skip
        "rows": rows,
        "ratio_darts_over_proxyless_layer": last["darts"]["layer"] / last["proxyless"]["layer"],
        "ratio_darts_over_proxyless_whole": last["darts"]["whole"] / last["proxyless"]["whole"],
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    path = save("bench_oneshot_memory" + ("_quick" if a.quick else ""), out, threads=1)
    print(f"\nSaved-for-backward bytes, one forward+backward (batch {batch}, C {a.channels}, 28×28; one activation = "
          f"{mib(one)} MiB); MiB")  # fmt: skip
    print("| candidates | DARTS layer | Proxyless layer | GDAS layer | DARTS whole | Proxyless whole | "
          "DARTS RSS peak growth | Proxyless RSS peak growth |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        d, p, g = r["darts"], r["proxyless"], r["gdas"]
        print(f"| {r['candidates']} | {mib(d['layer'])} | {mib(p['layer'])} | {mib(g['layer'])} | {mib(d['whole'])} | "
              f"{mib(p['whole'])} | {mib(d['rss_growth'])} | {mib(p['rss_growth'])} |")
    print(f"\nratio DARTS/Proxyless at N={last['candidates']}: layer {out['ratio_darts_over_proxyless_layer']:.2f}, "
          f"whole forward {out['ratio_darts_over_proxyless_whole']:.2f}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
