"""The model card of an exported model (``arch.json`` as data, ``MODEL_CARD.md`` for a person) and its optional int8
twin. Used by ``export.py``; torch-free except for what quantisation needs (onnxruntime)."""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NasforgeError
from .task import Task

if TYPE_CHECKING:
    from .spaces.base import Family
    from .study import Study
    from .trial import Trial

CALIBRATION_SAMPLES = 256
EVAL_SAMPLES = 10000
OUTPUT_MEANING = "unnormalised class scores (softmax gives probabilities); argmax is the class"


def _values(task: Task, source) -> tuple[str, dict[str, Any]]:
    """How to feed the model: a sentence, and what the data stored (type, layout) when it is known."""
    stored: dict[str, Any] = {}
    if source is not None:
        meta = source.meta()
        stored = {"dtype": meta.raw_dtype, "layout": meta.layout}
    raw = stored.get("dtype")
    scale = " (pixels 0-255, not divided by 255)" if raw == "uint8" else ""
    if task.mean is None or task.std is None:
        return "normalised as the evaluator fed the network during the search (no normalisation was recorded)", stored
    what = f"the values as the data stores them{scale}, as float32"
    if stored.get("layout") == "NHWC":
        what += "; the data stored images channel-last (N×H×W×C): transpose them to N×C×H×W"
    return what, stored


def card(study: Study, trial: Trial, family: Family, task: Task, source) -> dict[str, Any]:
    """Everything ``arch.json`` says about an exported trial (the ONNX and int8 parts are added by the export)."""
    values, stored = _values(task, source)
    norm = None
    if task.mean is not None and task.std is not None:
        norm = {"mean": list(task.mean), "std": list(task.std), "inside_model": True,
                "formula": "(x - mean[c]) / std[c], per channel c"}  # fmt: skip
    layout = {3: "NCHW", 1: "NF"}.get(len(task.input_shape), "N" + "?" * len(task.input_shape))
    cfg = study.config
    return {
        "family": family.name,
        "family_config": family.config(),
        "family_spec": family.spec(),
        "arch": dict(trial.arch),
        "arch_key": trial.arch.key,
        "describe": family.describe(trial.arch),
        "task": task.to_dict(),
        "input": {"name": "input", "shape": ["batch", *task.input_shape], "dtype": "float32", "layout": layout,
                  "values": values, "stored_as": stored or None, "normalisation": norm,
                  "class_names": list(task.class_names) if task.class_names else None},  # fmt: skip
        "output": {"name": "logits", "shape": ["batch", task.num_classes], "meaning": OUTPUT_MEANING},
        "training": {"evaluator": cfg.get("evaluator"), **(cfg.get("evaluator_config") or {})},
        "metrics": trial.metrics,
        "costs": trial.costs,
        "study": study.name,
        "trial": trial.number,
        "versions": versions(),
        "files": {"weights": "model.pt"},
    }


class _Calibration:
    """onnxruntime's calibration reader over raw training samples."""

    def __init__(self, x, batch: int = 32) -> None:
        self.batches = [x[i : i + batch] for i in range(0, len(x), batch)]

    def get_next(self):
        return {"input": self.batches.pop(0)} if self.batches else None

    def rewind(self) -> None:  # some onnxruntime versions calibrate twice
        pass


def quantize(fp32: Path, int8: Path, source, calibration: int = CALIBRATION_SAMPLES,
             evaluate: int = EVAL_SAMPLES) -> dict[str, Any]:  # fmt: skip
    """Static int8 quantisation of ``fp32`` into ``int8`` (QDQ, per-channel int8 weights, int8 activations calibrated
    by min/max on ``calibration`` training samples), and the top-1 accuracy of both on up to ``evaluate`` test (else
    validation) samples."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    meta = source.meta()
    rng = np.random.default_rng(0)
    n = meta.sizes["train"]
    idx = np.sort(rng.choice(n, size=min(calibration, n), replace=False))
    xcal = source.load("train", idx).astype(np.float32)
    reader = _Calibration(xcal)
    CalibrationDataReader.register(_Calibration)
    pre = int8.with_name(int8.stem + ".pre.onnx")
    # onnxruntime logs its advice on the root logger; what it advises (shape inference, folding) is done here
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        quant_pre_process(str(fp32), str(pre))  # shape inference and graph optimisation, as onnxruntime advises
        quantize_static(str(pre), str(int8), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)  # fmt: skip
    except Exception as e:
        raise NasforgeError(f"int8 quantisation failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        root.setLevel(level)
        pre.unlink(missing_ok=True)
    x, y, split = raw_samples(source, evaluate)
    return {
        "file": int8.name,
        "method": "onnxruntime quantize_static: QDQ, int8 weights per channel, int8 activations (min/max)",
        "calibration": f"{len(xcal)} {meta.name} training samples",
        "evaluated_on": f"{len(x)} {split} samples",
        "accuracy_fp32": onnx_accuracy(fp32, x, y),
        "accuracy_int8": onnx_accuracy(int8, x, y),
        "bytes_fp32": fp32.stat().st_size,
        "bytes_int8": int8.stat().st_size,
    }


def markdown(info: dict[str, Any]) -> str:
    """The card for a person: what the model is, how to feed it, how to load it."""
    inp, out = info["input"], info["output"]
    lines = [
        f"# {info['family']} {info['describe']}",
        "",
        f"Trial {info['trial']} of study `{info['study']}`; arch `{info['arch_key']}`.",
        "",
        "## Input",
        f"- `{inp['name']}`: float32, shape {_shape(inp['shape'])} ({inp['layout']}), any batch size",
        f"- values: {inp['values']}",
    ]
    if inp.get("normalisation"):
        n = inp["normalisation"]
        lines.append(f"- normalisation inside the model: (x - mean) / std per channel, mean {_nums(n['mean'])}, std "
                     f"{_nums(n['std'])}: do not normalise the inputs yourself")  # fmt: skip
    if inp.get("class_names"):
        lines.append(f"- classes: {', '.join(inp['class_names'])}")
    lines += ["", "## Output", f"- `{out['name']}`: shape {_shape(out['shape'])}, {out['meaning']}", ""]
    if info.get("metrics"):
        lines += ["## Measured", *[f"- {k}: {v:.4g}" for k, v in info["metrics"].items()], ""]
    if "onnx" in info:
        o = info["onnx"]
        lines += ["## Files", f"- `model.onnx` (opset {o['opset']}): checked against torch on {o['checked_on']}: max "
                  f"|diff| {o['max_abs_diff']:.2g}, same top-1 {100 * o['same_top1']:.1f}%"]  # fmt: skip
    if "int8" in info:
        q = info["int8"]
        lines.append(f"- `{q['file']}`: int8, accuracy {q['accuracy_int8']:.2f}% vs {q['accuracy_fp32']:.2f}% in "
                     f"float32 on {q['evaluated_on']}")  # fmt: skip
    lines += [
        "- `model.pt`: the network's weights (state dict); `arch.json`: this card as data", "",
        "## Use", "```python", "import onnxruntime as ort", "",
        'sess = ort.InferenceSession("model.onnx")',
        'logits = sess.run(None, {"input": x.astype("float32")})[0]   # x: raw samples, ' + _shape(inp["shape"]), "",
        "from nasforge.export import load", "",
        'model = load(".")   # the same network as a torch module, raw inputs too', "```",
        "", "Made with " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".", "",
    ]  # fmt: skip
    return "\n".join(lines)


def _shape(s: list) -> str:
    return "×".join("N" if v == "batch" else str(v) for v in s)


def _nums(v: list[float]) -> str:
    return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"


def raw_samples(source, n: int, prefer: tuple[str, ...] = ("test", "val", "train")):
    """(float32 raw samples, int labels, split name) of up to ``n`` samples of the first split of ``prefer`` the
    source has."""
    import numpy as np

    meta = source.meta()
    split = next(s for s in prefer if s in meta.splits)
    k = min(n, meta.sizes[split])
    idx = np.arange(k)
    return source.load(split, idx).astype(np.float32), np.asarray(source.labels(split))[:k], split


def onnx_accuracy(path: Path, x, y, batch: int = 500) -> float:
    """Top-1 accuracy (%) of the ONNX model at ``path`` on raw samples ``x`` with labels ``y``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    hits = sum(int((sess.run(None, {"input": x[i : i + batch]})[0].argmax(1) == y[i : i + batch]).sum())
               for i in range(0, len(x), batch))  # fmt: skip
    return 100.0 * hits / max(len(y), 1)


def versions() -> dict[str, str]:
    """The versions of what made and runs the exported files."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("nasforge", "torch", "onnx", "onnxruntime", "onnxscript", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
