"""The tracer on a zoo of models no family builds: parameters against numel(), MACs against FlopCounterMode.

    python benchmarks/bench_zoo.py            # the zoo at full size (ImageNet CNNs, a 6+6-layer Transformer)
    python benchmarks/bench_zoo.py --small    # the sizes tests/test_trace.py checks

Per model: parameters (the tracer's, ``numel()``'s), MACs (the tracer's; ``FlopCounterMode``'s on the default CPU
path, as a user would run it; ``FlopCounterMode``'s on the decomposed path: mkldnn off, the math attention kernel, no
fused attention fast path, where every multiply is an op it has a formula for), and the old tracer (commit e71a5a9) on
the same model, as it was and, for token models, fed token ids (the one change made to it). Times are wall seconds,
median of 3, on a shared machine.

The models are written here (torchvision does not import beside this torch): a MobileNetV2 and a ResNet-18 as
published, an ``nn.Transformer`` encoder-decoder language model, an LSTM language model, a network that reuses one
block and ties two heads' weights, and one made of functional matmuls on raw parameters. ``tests/test_trace.py``
checks the same models at small sizes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from nasforge.cost import costs  # noqa: E402
from nasforge.cost.trace import trace_layers  # noqa: E402
from nasforge.task import Task  # noqa: E402

OLD = "e71a5a9"  # the tracer before issue 8


# --- the zoo ---------------------------------------------------------------------------------------------------------


def _div8(v: float) -> int:  # MobileNetV2's channel rounding
    return max(8, int(v + 4) // 8 * 8)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()]
        layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]  # fmt: skip
        self.conv = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.skip else self.conv(x)


class MobileNetV2(nn.Module):
    """Sandler et al. (2018), Table 2: (expand t, channels c, repeats n, stride s) per stage."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, classes: int = 1000, width: float = 1.0) -> None:
        super().__init__()
        cin, last = _div8(32 * width), _div8(1280 * max(1.0, width))
        layers: list[nn.Module] = [nn.Conv2d(3, cin, 3, 2, 1, bias=False), nn.BatchNorm2d(cin), nn.ReLU6()]
        for t, c, n, s in self.SETTINGS:
            cout = _div8(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += [nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)  # one module called twice per block, as torchvision writes it
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    """He et al. (2016), the 18-layer network: 2 basic blocks per stage."""

    def __init__(self, classes: int = 1000, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))  # fmt: skip
        blocks, cin = [], width
        for i, c in enumerate((width, 2 * width, 4 * width, 8 * width)):
            blocks += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)]
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class TransformerLM(nn.Module):
    """An ``nn.Transformer`` encoder-decoder over token ids (the target is the source, causally masked)."""

    def __init__(self, vocab: int, d: int = 512, heads: int = 8, layers: int = 6, ff: int = 2048) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.transformer = nn.Transformer(d, heads, layers, layers, ff, dropout=0.1)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.emb(tokens).transpose(0, 1) * math.sqrt(self.emb.embedding_dim)  # (L, B, d): batch_first=False
        mask = nn.Transformer.generate_square_subsequent_mask(e.shape[0])
        return self.head(self.transformer(e, e, tgt_mask=mask)).transpose(0, 1)


class LSTMLM(nn.Module):
    """Embedding, a stacked LSTM, a linear layer over the vocabulary (Zaremba et al.'s medium PTB model's shape)."""

    def __init__(self, vocab: int, emb: int = 256, hidden: int = 512, layers: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.emb(tokens))
        return self.out(h)


class SharedNet(nn.Module):
    """One residual block applied ``repeats`` times (one set of weights), and two heads that share one weight."""

    def __init__(self, width: int = 64, repeats: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, padding=1))  # fmt: skip
        self.repeats = repeats
        self.head_a, self.head_b = nn.Linear(width, classes), nn.Linear(width, classes)
        self.head_b.weight = self.head_a.weight  # tied: one parameter, two layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for _ in range(self.repeats):
            x = x + self.block(x)
        x = x.mean((2, 3))
        return self.head_a(x) + self.head_b(x.flip(1))


class FunctionalNet(nn.Module):
    """Attention and an MLP written with raw parameters and functional calls (no nn.Linear anywhere)."""

    def __init__(self, d: int = 256, heads: int = 4, hidden: int = 1024, classes: int = 10) -> None:
        super().__init__()
        self.heads = heads
        self.wq, self.wk, self.wv = (nn.Parameter(torch.randn(d, d) / d**0.5) for _ in range(3))
        self.wo = nn.Parameter(torch.randn(heads, d // heads, d) / d**0.5)
        self.w1, self.b1 = nn.Parameter(torch.randn(hidden, d) / d**0.5), nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.randn(hidden, d) / hidden**0.5)
        self.cls = nn.Parameter(torch.randn(classes, d) / d**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, L, d)
        b, n, d = x.shape
        q = (x @ self.wq).view(b, n, self.heads, -1).transpose(1, 2)
        k = torch.einsum("bld,de->ble", x, self.wk).view(b, n, self.heads, -1).transpose(1, 2)
        v = torch.matmul(x, self.wv).view(b, n, self.heads, -1).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, d/H)
        x = x + torch.einsum("bhld,hde->ble", a, self.wo)
        x = x + torch.bmm(F.relu(F.linear(x, self.w1, self.b1)), self.w2.expand(b, -1, -1))
        return F.linear(x.mean(1), self.cls)


def zoo(small: bool = False) -> dict[str, tuple[Callable[[], nn.Module], Task]]:
    """name -> (model factory, task): full size, or the small sizes the tests check."""
    vocab = 50 if small else 10_000
    if small:
        return {
            "mobilenet_v2": (lambda: MobileNetV2(10, width=0.25), Task((3, 32, 32), 10)),
            "resnet18": (lambda: ResNet18(10, width=8), Task((3, 32, 32), 10)),
            "transformer": (lambda: TransformerLM(vocab, 16, 2, 1, 32), Task((6,), vocab, dtype="int64",
                                                                              vocab_size=vocab)),
            "lstm_lm": (lambda: LSTMLM(vocab, 16, 32, 2), Task((7,), vocab, dtype="int64", vocab_size=vocab)),
            "shared": (lambda: SharedNet(8, 3, 5), Task((3, 8, 8), 5)),
            "functional": (lambda: FunctionalNet(16, 2, 32, 5), Task((6, 16), 5)),
        }  # fmt: skip
    return {
        "mobilenet_v2": (lambda: MobileNetV2(1000), Task((3, 224, 224), 1000)),
        "resnet18": (lambda: ResNet18(1000), Task((3, 224, 224), 1000)),
        "transformer": (lambda: TransformerLM(vocab), Task((32,), vocab, dtype="int64", vocab_size=vocab)),
        "lstm_lm": (lambda: LSTMLM(vocab), Task((35,), vocab, dtype="int64", vocab_size=vocab)),
        "shared": (lambda: SharedNet(64, 4, 10), Task((3, 64, 64), 10)),
        "functional": (lambda: FunctionalNet(256, 4, 1024, 10), Task((64, 256), 10)),
    }


# --- references ------------------------------------------------------------------------------------------------------


def flops_default(model: nn.Module, x: torch.Tensor) -> int:
    """MACs as ``FlopCounterMode`` counts them on the path this CPU runs (eval, no grad)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops() // 2


def flops_decomposed(model: nn.Module, x: torch.Tensor) -> int:
    """MACs as ``FlopCounterMode`` counts them when every multiply runs as an op it has a formula for: LSTMs without
    mkldnn, attention by the math kernel, no fused attention fast path."""
    model.eval()
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with (torch.backends.mkldnn.flags(enabled=False), sdpa_kernel(SDPBackend.MATH), torch.no_grad(),
              FlopCounterMode(display=False) as fc):  # fmt: skip
            model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return fc.get_total_flops() // 2


def old_tracer(root: Path) -> types.ModuleType | None:
    """``trace_layers`` as of commit ``OLD``, its one change: ``INPUT_DTYPE`` (float32, or int64 for token models)."""
    try:
        src = subprocess.run(["git", "show", f"{OLD}:src/nasforge/cost/trace.py"], cwd=root, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    src = src.replace("from .layers import LayerSpec", "from nasforge.cost.layers import LayerSpec")
    src = src.replace("model(torch.zeros(1, *input_shape))", "model(torch.zeros(1, *input_shape, dtype=INPUT_DTYPE))")
    mod = types.ModuleType("old_trace")
    mod.INPUT_DTYPE = torch.float32
    exec(compile(src, f"{OLD}:trace.py", "exec"), mod.__dict__)
    return mod


# --- the run ---------------------------------------------------------------------------------------------------------


def _timed(f: Callable[[], object], reps: int = 3) -> tuple[object, float]:
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def _old(old: types.ModuleType, model: nn.Module, task: Task, dtype: torch.dtype) -> dict:
    old.INPUT_DTYPE = dtype
    try:
        layers, t = _timed(lambda: old.trace_layers(model, task.input_shape))
    except Exception as e:  # the old tracer's failures are part of the figure
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"}
    c = costs(layers)
    return {"params": c["params"], "macs": c["macs"], "s": t}


def measure(name: str, make: Callable[[], nn.Module], task: Task, old: types.ModuleType | None) -> dict:
    torch.manual_seed(0)
    model = make().eval()
    x = task.example(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers, t_trace = _timed(lambda: trace_layers(model, task))
    c = costs(layers)
    _, t_fc = _timed(lambda: flops_default(model, x))
    row = {
        "model": name, "input": f"{tuple(task.input_shape)} {task.dtype}", "layers": len(layers),
        "params": c["params"], "numel": sum(p.numel() for p in model.parameters()),
        "macs": c["macs"], "fc_default": flops_default(model, x), "fc_decomposed": flops_decomposed(model, x),
        "trace_s": t_trace, "flopcounter_s": t_fc, "warnings": sorted({str(w.message) for w in caught
                                                                         if "nasforge" in w.filename}),
    }  # fmt: skip
    if old is not None:
        row["old"] = _old(old, model, task, torch.float32)
        if task.is_tokens:
            row["old_tokens"] = _old(old, model, task, torch.int64)
    return row


def _pct(a: float, b: float) -> str:
    if a == b:
        return "exact"
    return f"{(a - b) / b:+.1%}" if b else "vs 0"


def _old_cell(r: dict | None, numel: int, macs: int) -> str:
    if r is None:
        return "n/a"
    if "error" in r:
        return f"fails ({r['error'][:60]}...)"
    return f"{r['params']:,} ({_pct(r['params'], numel)}) / {r['macs']:,} ({_pct(r['macs'], macs)})"


def _old_s(r: dict) -> str:
    s = r.get("old_tokens", r.get("old", {})).get("s")
    return "-" if s is None else f"{s:.3f}"


def table(rows: list[dict]) -> str:
    """Markdown: percentages are against numel (parameters) and FlopCounterMode on the decomposed path (MACs)."""
    out = ["| model | input | params: tracer / numel | MACs: tracer / FlopCounterMode decomposed | FlopCounterMode, "
           "default CPU path | old tracer: params / MACs | seconds: tracer / old / FlopCounterMode |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        old = _old_cell(r.get("old"), r["numel"], r["fc_decomposed"])
        if "old_tokens" in r:
            old = f"{old}; fed token ids: {_old_cell(r['old_tokens'], r['numel'], r['fc_decomposed'])}"
        ref = r["fc_decomposed"]
        out.append(
            f"| {r['model']} | {r['input']} | {r['params']:,} / {r['numel']:,} ({_pct(r['params'], r['numel'])}) | "
            f"{r['macs']:,} / {ref:,} ({_pct(r['macs'], ref)}) | {r['fc_default']:,} ({_pct(r['fc_default'], ref)}) | "
            f"{old} | {r['trace_s']:.3f} / {_old_s(r)} / {r['flopcounter_s']:.3f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the small sizes the tests check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    old = old_tracer(Path(__file__).resolve().parents[1])
    rows = []
    for name, (make, task) in zoo(args.small).items():
        rows.append(measure(name, make, task, old))
        print(f"{name}: done", file=sys.stderr)
    print(table(rows))
    for r in rows:
        for w in r["warnings"]:
            print(f"{r['model']}: warning: {w}")
    if not args.small:  # the small sizes are the tests' business
        print(f"saved {save('zoo', {'old_commit': OLD, 'rows': rows})}")


if __name__ == "__main__":
    main()
