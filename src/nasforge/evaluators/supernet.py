"""Weight sharing: score an arch by the weights it inherits from a trained supernet (SPOS's search step).

Each arch's path is activated in the supernet, its BatchNorm statistics are recomputed on ``bn_batches`` training
batches (``oneshot/recalibrate.py``: the shared running statistics are wrong for any single path), and it is scored on
the validation split. Nothing is trained, so any black-box strategy (``evolution``, as in the SPOS paper) searches the
supernet at the cost of a few forward passes per arch.

Default ``bn_batches=20`` of ``batch_size=128`` (2,560 images): the SPOS paper recalibrates on 20,000 ImageNet images
and Once-for-All on 2,000; a per-channel mean or variance estimated from n images errs by about 1/sqrt(n) of its
spread, so past a couple of thousand images the estimate is settled and more batches only cost time
(``benchmarks/bench_spos_rank.py`` measures the rank quality at 5 and 20 batches, and without recalibration).

The weights come from one of: ``weights``, a file path (a supernet state dict, or a one-shot checkpoint holding one
under ``"supernet"``) or an in-memory state dict (library use); or ``study`` and ``arch_key`` (with ``name``, default
``supernet.pt``): a file another trial of a study saved in the artifact store, read through ``ctx.artifacts``; a
``study`` alone is a one-shot run's (``nasforge oneshot spos --study NAME`` saves its ``supernet.pt`` there), so
``nasforge search --evaluator supernet --evaluator-opt study=NAME --strategy evolution`` is SPOS's search step. The data
comes from a composed ``TrainEvaluator`` (same data sets, splits, subsets and device settings; loaded once per
process). The evaluator pickles without the loaded network: each worker process loads the weights once, lazily.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import NasforgeError
from ..oneshot.base import RUN_KEY
from ..space import Arch
from ..spaces.base import Family
from ..strategies.base import setting
from ..task import Task
from .base import Context, Evaluator, register_evaluator
from .train import TrainEvaluator


@register_evaluator("supernet")
class SupernetEvaluator(Evaluator):
    """Score archs with weights inherited from a trained supernet, BN recalibrated; see the module docstring."""

    metrics = ("val_acc", "val_loss", "eval_time_s")
    default_objectives = ("maximize val_acc",)

    def __init__(
        self,
        family: Family,
        dataset: Any = "mnist",
        *,
        weights: str | os.PathLike | Mapping[str, Any] | None = None,
        study: str | None = None,
        arch_key: str | None = None,
        name: str = "supernet.pt",
        data_dir: str | None = None,
        bn_batches: int = 20,
        batch_size: int = 128,
        val_size: int | float | None = None,
        train_subset: int | None = None,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        who = "supernet evaluator"
        if weights is not None and (study is not None or arch_key is not None):
            raise NasforgeError(f"{who}: give the weights either as a file or state dict (weights) or by the study and "
                                "arch_key of the trial that saved them, not both")  # fmt: skip
        if weights is None and study is not None and arch_key is None:
            arch_key = RUN_KEY  # the slot where `nasforge oneshot` saves a run's supernet.pt
        if weights is None and study is None:
            raise NasforgeError(f"{who}: say where the trained supernet's weights are: weights (a file or a state "
                                "dict), or the study of a one-shot run (study=NAME), or study and arch_key of the "
                                "trial that saved them")  # fmt: skip
        self.family = family
        self.weights = str(weights) if isinstance(weights, os.PathLike) else weights
        self.study, self.arch_key, self.name_in_store = study, arch_key, name
        self.bn_batches = setting(who, "bn_batches", bn_batches, int, 1)
        self.batch_size = setting(who, "batch_size", batch_size, int, 1)
        self.threads = threads
        # the data and its task, exactly as training from scratch sees them (composed, not copied)
        self.train = TrainEvaluator(family, dataset, data_dir=data_dir, val_size=val_size, train_subset=train_subset,
                                    device=device, threads=threads, save_weights=False)  # fmt: skip
        self._digest: str | None = None
        self._net: Any = None  # per process, never pickled

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_net": None}

    # --- what the study records ---------------------------------------------------------------------------------
    def weights_identity(self) -> dict[str, Any]:
        """What identifies the weights: a sha256 of the file or state dict, or where in the artifact store they are."""
        if self.weights is None:
            return {"study": self.study, "arch_key": self.arch_key, "name": self.name_in_store}
        if self._digest is None:
            self._digest = _sha256(self.weights)
        return {"sha256": self._digest}

    def config(self) -> dict[str, Any]:
        tc = self.train.config()
        return {"dataset": tc["dataset"], "val_size": tc["val_size"], "train_subset": tc["train_subset"],
                "weights": self.weights_identity(), "bn_batches": self.bn_batches,
                "batch_size": self.batch_size}  # fmt: skip

    def task(self) -> Task:
        return self.train.task()

    # --- scoring ------------------------------------------------------------------------------------------------
    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        import torch

        from ..oneshot.recalibrate import score_path

        if self.threads:
            torch.set_num_threads(self.threads)
        data = self.train.data()
        net = self.supernet(data, ctx)
        t0 = time.perf_counter()
        out = score_path(net, arch, data, bn_batches_n=self.bn_batches, batch_size=self.batch_size, seed=ctx.seed)
        return {**out, "eval_time_s": time.perf_counter() - t0}

    def supernet(self, data: Any, ctx: Context | None = None) -> Any:
        """The trained supernet on the data's device (built and loaded once per process)."""
        if self._net is None:
            import torch

            state = self._state(ctx)
            with torch.random.fork_rng(devices=[]):  # its initial weights are replaced: leave the global RNG alone
                net = self.family.supernet(data.task())
            try:
                net.load_state_dict(state)
            except RuntimeError as e:
                first = str(e).strip().splitlines()[0]
                raise NasforgeError(f"supernet evaluator: the weights do not fit {self.family.name}'s supernet for "
                                    f"this data ({first[:160]}); train the supernet with the same family and data"
                                    ) from None  # fmt: skip
            self._net = net.to(data.x_train.device).eval()
        return self._net

    def _state(self, ctx: Context | None) -> Mapping[str, Any]:
        if isinstance(self.weights, Mapping):
            state: Any = self.weights
        elif self.weights is not None:
            state = _load_file(self.weights)
        else:
            if ctx is None or ctx.artifacts is None:
                raise NasforgeError(
                    f"supernet evaluator: weights of study {self.study!r} are read through the study's "
                    "artifact store, and this evaluation runs outside a study; give a weights file"
                )
            state = ctx.artifacts.load(self.name_in_store, arch_key=self.arch_key, study=self.study)
        inner = state.get("supernet") if isinstance(state, Mapping) else None
        return inner if isinstance(inner, Mapping) else state  # a one-shot checkpoint holds it under "supernet"


def _load_file(path: str) -> Any:
    import pickle

    import torch

    if not Path(path).is_file():
        raise NasforgeError(f"supernet evaluator: weights file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasforgeError(f"supernet evaluator: {path} is not a weights file nasforge loads ({why[:160]})") from None


def _sha256(weights: str | Mapping[str, Any]) -> str:
    """sha256 of a weights file's bytes, or of a state dict's names, dtypes, shapes and values in key order."""
    h = hashlib.sha256()
    if isinstance(weights, Mapping):
        _hash_state(h, weights)
        return h.hexdigest()
    if not Path(weights).is_file():
        raise NasforgeError(f"supernet evaluator: weights file {weights} does not exist")
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_state(h: Any, state: Mapping[str, Any]) -> None:
    import torch

    for k in sorted(state):
        v = state[k]
        h.update(str(k).encode())
        if isinstance(v, Mapping):
            _hash_state(h, v)
        elif hasattr(v, "detach"):
            t = v.detach().to("cpu").contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(v).encode())
