"""Hand back a model a user can ship: weights (state_dict), the arch as JSON, and ONNX checked against torch."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NasforgeError
from .spaces.base import load_family
from .task import Task

if TYPE_CHECKING:
    from .study import Study
    from .trial import Trial


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


def export_trial(study: Study, trial: Trial, out_dir: str | Path, onnx: bool = True) -> dict[str, Any]:
    """Write ``model.pt`` (state_dict), ``arch.json`` and ``model.onnx`` for a trained trial into ``out_dir``.

    The family and task come from the study's record and the weights from its artifact store, so this works in a
    fresh process, from any working directory. Every reason it cannot is one line.
    """
    import torch

    try:
        family = study.family()
    except NasforgeError as e:
        raise NasforgeError(f"cannot export trial {trial.number} of study {study.name!r}: {e}") from None
    task = study.task()
    data = study.artifacts.read(study.artifact_key(trial), "model.pt")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = family.build(trial.arch, task)
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    (out / "model.pt").write_bytes(data)
    info: dict[str, Any] = {
        "family": family.name,
        "family_config": family.config(),
        "family_spec": family.spec(),
        "arch": dict(trial.arch),
        "arch_key": trial.arch.key,
        "describe": family.describe(trial.arch),
        "task": task.to_dict(),
        "metrics": trial.metrics,
        "costs": trial.costs,
        "study": study.name,
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
    family = load_family(info.get("family_spec") or {"name": info["family"], "config": info.get("family_config")})
    model = family.build(family.arch(info["arch"]), Task.from_dict(info["task"]))
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()
