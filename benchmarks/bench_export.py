"""The exported model, fed raw test images, classifies like the torch model it came from; and its int8 twin.

    python benchmarks/bench_export.py [--dataset fashion-mnist] [--arch '{"conv1_ch": 9, ...}'] [--epochs 2]

Trains one LeNet in a study (the recipe of bench_fashion.py), exports it (``export_trial(..., int8=True)``) and
measures on the whole test split: the trial's test accuracy (torch, on the normalised tensors it trained on), the
exported torch module (``load(folder)``) and ``model.onnx`` on raw pixels (0..255, float32), their largest logit
difference and top-1 agreement, ``model.int8.onnx``, and, to show why the card says what to feed, ``model.onnx`` on
pixels divided by 255.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402
from bench_fashion import RECIPE  # noqa: E402

ARCH = {"conv1_ch": 9, "conv1_k": 7, "conv2_ch": 12, "conv2_k": 5, "fc1": 64, "fc2": 32}


def main() -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    from nasforge.datasets import as_source
    from nasforge.evaluators.train import TrainEvaluator
    from nasforge.export import export_trial, load
    from nasforge.space import Space
    from nasforge.spaces import create_family
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--arch", default=json.dumps(ARCH))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fam = create_family("lenet")
    arch = fam.arch(json.loads(args.arch))
    with tempfile.TemporaryDirectory() as tmp:
        study = Study.open("one", f"sqlite:///{tmp}/e.db")
        ev = TrainEvaluator(fam, args.dataset, epochs=args.epochs, threads=args.threads, **RECIPE)
        one = Space({k: [v] for k, v in arch.items()})  # a grid of one: train exactly this arch
        study.run(fam, create_strategy("grid", one), ev, budget=1)
        trial = study.best()
        t0 = time.perf_counter()
        info = export_trial(study, trial, Path(tmp) / "model", int8=True)
        t_export = time.perf_counter() - t0
        src = as_source(args.dataset)
        x = src.load("test").astype(np.float32)
        y = np.asarray(src.labels("test"))
        sess = ort.InferenceSession(str(Path(tmp) / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
        logits_onnx = np.concatenate([sess.run(None, {"input": x[i : i + 1000]})[0] for i in range(0, len(x), 1000)])
        model = load(Path(tmp) / "model")
        with torch.no_grad():
            logits_torch = torch.cat([model(torch.from_numpy(x[i : i + 1000])) for i in range(0, len(x), 1000)])
        logits_torch = logits_torch.numpy()
        scaled = np.concatenate([sess.run(None, {"input": x[i : i + 1000] / 255})[0] for i in range(0, len(x), 1000)])
        acc = lambda logits: 100.0 * float((logits.argmax(1) == y).mean())  # noqa: E731
        res = {
            "command": "python benchmarks/bench_export.py " + " ".join(sys.argv[1:]),
            "dataset": args.dataset,
            "arch": fam.describe(trial.arch),
            "recipe": {**RECIPE, "epochs": args.epochs},
            "test_samples": len(y),
            "trial_test_acc_torch_normalised": trial.metrics["test_acc"],
            "exported_torch_raw_acc": acc(logits_torch),
            "onnx_raw_acc": acc(logits_onnx),
            "onnx_minus_torch_points": acc(logits_onnx) - trial.metrics["test_acc"],
            "max_abs_logit_diff": float(np.abs(logits_onnx - logits_torch).max()),
            "same_top1": float((logits_onnx.argmax(1) == logits_torch.argmax(1)).mean()),
            "onnx_pixels_over_255_acc": acc(scaled),
            "int8": info["int8"],
            "onnx_check_in_card": info["onnx"],
            "export_s": t_export,
        }
    print(f"{res['arch']} on {len(y)} raw {args.dataset} test images: torch (trial) "
          f"{res['trial_test_acc_torch_normalised']:.2f}%, exported torch {res['exported_torch_raw_acc']:.2f}%, "
          f"ONNX {res['onnx_raw_acc']:.2f}% "
          f"(diff {res['onnx_minus_torch_points']:+.2f} points, max |logit diff| {res['max_abs_logit_diff']:.2g}); "
          f"int8 {info['int8']['accuracy_int8']:.2f}% vs {info['int8']['accuracy_fp32']:.2f}%; pixels/255: "
          f"{res['onnx_pixels_over_255_acc']:.2f}%")  # fmt: skip
    print("written", save("export", res, args.threads))


if __name__ == "__main__":
    main()
