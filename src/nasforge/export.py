"""Hand back a model a user can ship: weights (state_dict), the arch as JSON, and ONNX checked against torch."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from .errors import NasforgeError
from .spaces import Task, create_family
from .storage import Trial


def family_and_task(config: dict[str, Any]):
    """Rebuild the family and task a study was run with, from its recorded configuration."""
    if not config:
        raise NasforgeError("this study has no recorded configuration (it never ran); nothing to export")
    return create_family(config["family"], **config.get("family_config", {})), Task.from_dict(config["task"])


def export_onnx(model, input_shape: tuple[int, ...], path: Path, atol: float = 1e-4, samples: int = 8) -> float:
    """Export ``model`` to ONNX (dynamic batch) and return the largest |onnxruntime − torch| over random inputs.

    Raises ``NasforgeError`` when they differ by more than ``atol``.
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    model.eval()
    x = torch.randn(samples, *input_shape, generator=torch.Generator().manual_seed(0))
    # the exporter narrates its passes on stdout and warns about torchvision ops we never use
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("torch.export").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (x[:1],),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
                verbose=False,
            )
    except Exception as e:
        raise NasforgeError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= atol:
        raise NasforgeError(f"ONNX model disagrees with torch: max |diff| {diff:.3g} > {atol}")
    return diff


def export_trial(config: dict[str, Any], trial: Trial, out_dir: str | Path, onnx: bool = True) -> dict[str, Any]:
    """Write ``model.pt`` (state_dict), ``arch.json`` and ``model.onnx`` for a trained trial into ``out_dir``."""
    import torch

    family, task = family_and_task(config)
    weights = Path(trial.artifact or "") / "model.pt"
    if not trial.artifact or not weights.exists():
        raise NasforgeError(
            f"trial {trial.number} has no saved weights (looked for {weights}); only trials trained by the 'train' "
            "evaluator in this database's folder have them"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = family.build(trial.arch, task)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    torch.save(state, out / "model.pt")
    info: dict[str, Any] = {
        "family": config["family"],
        "family_config": config.get("family_config", {}),
        "arch": dict(trial.arch),
        "arch_key": trial.arch.key,
        "describe": family.describe(trial.arch),
        "task": task.to_dict(),
        "metrics": trial.metrics,
        "costs": trial.costs,
        "trial": trial.number,
        "files": {"weights": "model.pt"},
    }
    if onnx:
        diff = export_onnx(model, task.input_shape, out / "model.onnx")
        info["files"]["onnx"] = "model.onnx"
        info["onnx_max_abs_diff"] = diff
    (out / "arch.json").write_text(json.dumps(info, indent=2))
    return info


def load_exported(out_dir: str | Path):
    """Rebuild the torch model from an export folder (arch.json + model.pt)."""
    import torch

    out = Path(out_dir)
    info = json.loads((out / "arch.json").read_text())
    family = create_family(info["family"], **info.get("family_config", {}))
    model = family.build(family.arch(info["arch"]), Task.from_dict(info["task"]))
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()
