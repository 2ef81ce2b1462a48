"""Hand back a model a user can ship, and rebuild it: ``export_trial(study, trial, folder)`` and ``load(folder)``.

The folder holds:

- ``model.pt``: the network's weights (a state dict of tensors, loaded with ``weights_only``: never unpickled code);
- ``model.onnx``: the network *with its data's normalisation inside the graph*, so it takes inputs exactly as the
  data files hold them (pixels 0…255, float32, N×C×H×W, any batch size) and returns logits; checked against torch on
  real samples of the study's data when that data can be found, else on random inputs of the data's scale;
- ``model.int8.onnx`` (``int8=True``): onnxruntime's static int8 quantisation (QDQ, per-channel weights, calibrated
  on training samples), with the test accuracy before and after;
- ``arch.json``: the model card as data: family, arch, metrics and costs; ``input`` (shape, dtype, layout, value
  range, normalisation, class names), ``output``, ``onnx`` (file, opset, how it was checked), library versions;
- ``MODEL_CARD.md``: the same for a person, with the lines that load and run the model.

``load(folder)`` rebuilds the torch module (raw inputs too: ``nasforge.nn.normalize.Normalized`` around the
network) from ``arch.json`` and ``model.pt``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NasforgeError
from .modelcard import raw_samples
from .spaces.base import load_family
from .task import Task
from .trial import State

if TYPE_CHECKING:
    from .study import Study
    from .trial import Trial

CHECK_SAMPLES = 256  # real samples the ONNX model is compared with torch on


# --- weights -------------------------------------------------------------------------------------------------------
def read_state(data: bytes, what: str) -> dict[str, Any]:
    """A state dict from ``torch.save`` bytes, tensors only; a one-line error for anything else (a pickled module,
    a crafted file): nothing but tensors is ever unpickled."""
    import torch

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refusals, truncated files: all say the same to a user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasforgeError(f"{what} is not a plain state dict of tensors, so it is not loaded ({first[:160]}); "
                            "nasforge never unpickles objects: export the model again with `nasforge export`"
                            ) from None  # fmt: skip
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasforgeError(f"{what} holds a {type(state).__name__}, not a state dict of tensors; export the model "
                            "again with `nasforge export`")  # fmt: skip
    return state


def _load_weights(model, state: dict[str, Any], what: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise NasforgeError(f"{what} does not fit the network it was exported with: "
                            f"{' '.join(s.strip() for s in first[:2])[:200]}") from None  # fmt: skip


def with_normalisation(net, task: Task):
    """``net`` behind ``task``'s per-channel normalisation (``Normalized``), or ``net`` itself when none is
    recorded."""
    if task.mean is None or task.std is None:
        return net
    from .nn.normalize import Normalized

    return Normalized(net, task.mean, task.std, sample_dims=len(task.input_shape))


# --- why a trial has nothing to export -------------------------------------------------------------------------------
def no_model_reason(study: Study, trial: Trial) -> str | None:
    """Why ``trial`` has no trained weights, in one line; None when it should have them."""
    head = f"trial {trial.number} of study {study.name!r}"
    if trial.state == State.INFEASIBLE:
        broken = [str(c) for c in study.constraints() if not c.ok(trial.values)]
        why = f" (it breaks {' and '.join(broken)})" if broken else ""
        return f"{head} is infeasible{why}: it was never trained, so it has no weights to export"
    if trial.state == State.FAILED:
        return f"{head} failed ({trial.error or 'no reason recorded'}), so it has no weights to export"
    if trial.state == State.PRUNED:
        return f"{head} was pruned (stopped early), so its weights were not kept"
    if trial.state == State.RUNNING:
        return f"{head} is still running (or its process died); export it once it has completed"
    if trial.artifact is not None and "model.pt" not in trial.artifact.split(","):
        ev = study.config.get("evaluator", "?")
        return f"{head} saved no weights (its evaluator {ev!r} saves {trial.artifact}); only trained trials have them"
    return None


# --- the data, for checks on real samples ---------------------------------------------------------------------------
def study_source(study: Study, data: Any = None):
    """The data source the study trained on (``data`` if given, else reopened from its record), or None when it
    cannot be had (given in memory, moved, or not a training study)."""
    from .datasets import as_source, open_source
    from .errors import DataError

    try:
        if data is not None:
            return as_source(data)
        spec = study.config.get("evaluator_config", {}).get("dataset")
        if spec is None:
            return None
        src = open_source(spec)
        src.meta()
        return src
    except DataError:
        return None


# --- ONNX ------------------------------------------------------------------------------------------------------------
def export_onnx(model, input_shape: tuple[int, ...], path: Path, atol: float = 1e-4, samples: int = 8,
                inputs=None) -> float:  # fmt: skip
    """Export ``model`` to ONNX (dynamic batch) and return the largest |onnxruntime − torch| on ``inputs`` (a float32
    numpy batch; default: ``samples`` standard-normal inputs). ``NasforgeError`` when they differ by more than
    ``atol`` (relative to the outputs' scale when that is above 1)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    model.eval()
    x = (torch.from_numpy(np.ascontiguousarray(inputs)) if inputs is not None else
         torch.randn(samples, *input_shape, generator=torch.Generator().manual_seed(0)))  # fmt: skip
    # the exporter narrates its passes on stdout and warns about torchvision ops we never use
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("torch.export").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (x[:1],), str(path), input_names=["input"], output_names=["logits"], dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False,
            )  # fmt: skip
    except Exception as e:
        raise NasforgeError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"input": x[i : i + 256].numpy()})[0] for i in range(0, len(x), 256)])
    with torch.no_grad():
        want = model(x).numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= atol * max(1.0, float(np.abs(want).max())):
        raise NasforgeError(f"ONNX model disagrees with torch: max |diff| {diff:.3g} > {atol}")
    return diff


def _opset(path: Path) -> int | None:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in m.opset_import if o.domain in ("", "ai.onnx")), None)


# --- the export ----------------------------------------------------------------------------------------------------
def export_trial(
    study: Study,
    trial: Trial,
    out_dir: str | Path,
    onnx: bool = True,
    *,
    int8: bool = False,
    data: Any = None,
    check_samples: int = CHECK_SAMPLES,
) -> dict[str, Any]:
    """Write ``model.pt``, ``model.onnx`` (raw input), ``arch.json`` and ``MODEL_CARD.md`` (see the module docstring)
    for a trained trial into ``out_dir``; ``int8`` adds ``model.int8.onnx`` (needs the data: ``data`` or the study's
    recorded data set). The family, task and weights come from the study's record and artifact store, so this works
    in a fresh process, from any working directory. Every reason it cannot is one line."""
    from . import modelcard

    why = no_model_reason(study, trial)
    if why:
        raise NasforgeError(f"cannot export: {why}")
    if int8 and not onnx:
        raise NasforgeError("int8 export quantises the ONNX model: export ONNX too")
    source = study_source(study, data)
    if int8 and source is None:
        raise NasforgeError("int8 export needs the study's data (to calibrate the activations and to measure the "
                            "accuracy before and after) and it cannot be found here; pass data=...")  # fmt: skip
    try:
        family = study.family()
    except NasforgeError as e:
        raise NasforgeError(f"cannot export trial {trial.number} of study {study.name!r}: {e}") from None
    task = study.task()
    blob = study.artifacts.read(study.artifact_key(trial), "model.pt")
    net = family.build(trial.arch, task)
    _load_weights(net, read_state(blob, f"the saved weights of trial {trial.number}"), "the saved weights")
    model = with_normalisation(net, task).eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.pt").write_bytes(blob)
    info = modelcard.card(study, trial, family, task, source)
    if onnx:
        info["onnx"] = _check_onnx(model, task, source, out, check_samples)
        info["onnx_max_abs_diff"] = info["onnx"]["max_abs_diff"]  # where older readers look
        info["files"]["onnx"] = "model.onnx"
    if int8:
        info["int8"] = modelcard.quantize(out / "model.onnx", out / "model.int8.onnx", source)
        info["files"]["int8"] = "model.int8.onnx"
    (out / "arch.json").write_text(json.dumps(info, indent=2))
    (out / "MODEL_CARD.md").write_text(modelcard.markdown(info))
    return info


def _check_onnx(model, task: Task, source, out: Path, n: int) -> dict[str, Any]:
    import numpy as np

    x = None
    if source is not None and tuple(source.meta().input_shape) == tuple(task.input_shape):
        x, _, split = raw_samples(source, n)
        checked = f"{len(x)} {split} samples of {source.meta().name!r}"
    else:  # random inputs of the data's scale: raw values are mean + std · noise
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, *task.input_shape)).astype(np.float32)
        if task.mean is not None and task.std is not None:
            shape = (1, -1) + (1,) * (len(task.input_shape) - 1)
            x = x * np.asarray(task.std, np.float32).reshape(shape) + np.asarray(task.mean, np.float32).reshape(shape)
        checked = "8 random inputs of the data's scale (the data itself could not be found)"
    diff = export_onnx(model, task.input_shape, out / "model.onnx", inputs=x)
    import torch

    with torch.no_grad():
        want = model(torch.from_numpy(x)).argmax(1).numpy()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0].argmax(1)
    return {"file": "model.onnx", "opset": _opset(out / "model.onnx"), "input_name": "input", "output_name": "logits",
            "max_abs_diff": diff, "same_top1": float((got == want).mean()), "checked_on": checked}  # fmt: skip


def load(folder: str | Path):
    """The torch module of an export folder, in eval mode, taking raw inputs like ``model.onnx`` (its data's
    normalisation inside, when one was recorded). Rebuilt from ``arch.json`` (the family and arch) and ``model.pt``
    (weights only: a file holding anything but tensors is refused in one line)."""
    out = Path(folder)
    try:
        info = json.loads((out / "arch.json").read_text())
    except FileNotFoundError:
        raise NasforgeError(f"{out} holds no arch.json: is it a folder written by `nasforge export`?") from None
    except json.JSONDecodeError as e:
        raise NasforgeError(f"{out / 'arch.json'} is not valid JSON: {e}") from None
    family = load_family(info.get("family_spec") or {"name": info["family"], "config": info.get("family_config")})
    task = Task.from_dict(info["task"])
    net = family.build(family.arch(info["arch"]), task)
    try:
        blob = (out / info.get("files", {}).get("weights", "model.pt")).read_bytes()
    except FileNotFoundError:
        raise NasforgeError(f"{out} holds no model.pt (the weights)") from None
    _load_weights(net, read_state(blob, str(out / "model.pt")), str(out / "model.pt"))
    return with_normalisation(net, task).eval()


load_exported = load  # its older name
