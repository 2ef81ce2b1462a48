"""Running a model for timing: batch 1, eval mode, a fixed thread count, in torch (eager) or onnxruntime.

The thread count is fixed (1 by default: on a shared 2-core machine a second thread is both slower and noisier) and
restored afterwards. ``torch`` runs the module under ``torch.inference_mode``; ``onnxruntime`` runs the model exported
with ``torch.onnx.export`` in a CPU session with the same number of intra-op threads and one inter-op thread.
``measure_models`` times several models with interleaved repeats; ``measure_paired`` alternates A and B (ABBA) and
reports the per-round ratio, which is what a comparison of two close models needs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .base import LatencyError
from .timing import DEFAULT_REPEATS, DEFAULT_WARMUP, PairedTiming, Timing, time_functions, time_paired

if TYPE_CHECKING:
    from torch import nn

RUNTIMES = ("torch", "onnxruntime")


def check_threads(threads: int) -> int:
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise LatencyError(f"thread count must be a positive integer, got {threads!r}")
    return threads


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise LatencyError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    return runtime


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` and restore the previous count afterwards."""
    import torch

    check_threads(threads)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def export_onnx(model: nn.Module, input_shape: Sequence[int], exporter: str = "dynamo") -> bytes:
    """The model (eval mode) as serialised ONNX for a batch of one ``input_shape`` input.

    ``exporter="dynamo"`` is torch's default exporter (needs onnxscript, and is the slower of the two); ``"legacy"``
    is the TorchScript exporter (deprecated by torch but still present, and much faster for many small models).
    """
    import torch

    if exporter not in ("dynamo", "legacy"):
        raise LatencyError(f"unknown ONNX exporter {exporter!r}; use 'dynamo' or 'legacy'")
    model.eval()
    x = torch.zeros(1, *input_shape)
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)  # the exporter warns about torchvision ops on every call; none of ours use them
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                prog = torch.onnx.export(model, (x,), dynamo=True, verbose=False, optimize=True)
                return prog.model_proto.SerializeToString()
            f = io.BytesIO()
            torch.onnx.export(model, (x,), f, dynamo=False, input_names=["input"], do_constant_folding=True)
            return f.getvalue()
    finally:
        log.setLevel(level)


def onnx_session(onnx: bytes, threads: int = 1) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads, one inter-op thread, all graph optimisations."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = check_threads(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])


def prepare(
    model: nn.Module,
    input_shape: Sequence[int],
    runtime: str = "torch",
    threads: int = 1,
    seed: int = 0,
    exporter: str = "dynamo",
) -> Callable[[], Any]:
    """A zero-argument function that runs one batch-1 inference of ``model`` in ``runtime``.

    The torch runner must be called inside ``torch_threads(threads)`` (``measure_models`` does that).
    """
    import torch

    check_runtime(runtime)
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *input_shape, generator=g)
    if runtime == "torch":

        def run_torch() -> Any:
            with torch.inference_mode():
                return model(x)

        return run_torch
    sess = onnx_session(export_onnx(model, input_shape, exporter), threads)
    feed = {sess.get_inputs()[0].name: x.numpy()}

    def run_ort() -> Any:
        return sess.run(None, feed)

    return run_ort


def _shapes(input_shapes: Sequence[int] | Sequence[Sequence[int]], n: int) -> list[tuple[int, ...]]:
    if input_shapes and isinstance(input_shapes[0], int):
        return [tuple(input_shapes)] * n  # type: ignore[arg-type]
    shapes = [tuple(s) for s in input_shapes]  # type: ignore[arg-type]
    if len(shapes) != n:
        raise LatencyError(f"got {n} models but {len(shapes)} input shapes")
    return shapes


def measure_models(
    models: Sequence[nn.Module],
    input_shapes: Sequence[int] | Sequence[Sequence[int]],
    *,
    runtime: str = "torch",
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    inner: int | Sequence[int] = 1,
    interleave: bool = True,
    seed: int = 0,
    exporter: str = "dynamo",
) -> list[Timing]:
    """Measure several models with interleaved repeats. ``input_shapes``: one shape (without batch) or one per model."""
    shapes = _shapes(input_shapes, len(models))
    with torch_threads(check_threads(threads)):
        fns = [prepare(m, s, runtime, threads, seed, exporter) for m, s in zip(models, shapes, strict=True)]
        return time_functions(fns, warmup=warmup, repeats=repeats, inner=inner, interleave=interleave, seed=seed)


def measure_model(model: nn.Module, input_shape: Sequence[int], **kw: Any) -> Timing:
    """Measure one model; keywords as ``measure_models``."""
    return measure_models([model], [tuple(input_shape)], **kw)[0]


def measure_paired(
    a: nn.Module,
    b: nn.Module,
    input_shapes: Sequence[int] | Sequence[Sequence[int]],
    *,
    runtime: str = "torch",
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    inner: int = 1,
    seed: int = 0,
    exporter: str = "dynamo",
) -> PairedTiming:
    """Measure A and B alternately in ABBA rounds; each round gives one sample of each and one ratio B/A."""
    sa, sb = _shapes(input_shapes, 2)
    with torch_threads(check_threads(threads)):
        fa = prepare(a, sa, runtime, threads, seed, exporter)
        fb = prepare(b, sb, runtime, threads, seed, exporter)
        return time_paired(fa, fb, warmup=warmup, repeats=repeats, inner=inner)
