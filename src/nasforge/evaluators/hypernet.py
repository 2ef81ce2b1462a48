"""Score an arch with weights predicted by a trained graph hypernetwork, without training it (GHN-2, Knyazev et al.,
2021: rank many unseen archs by their accuracy with predicted weights, then train the best few).

The GHN is a checkpoint written by ``nasforge hypernet train`` (or ``nasforge.hypernet.train.save_ghn``), given as a
file path, or as ``artifact:<study>/<arch_key>/<name>`` to read it from the study's artifact store, or ``untrained``
(a GHN at its seed-0 initialisation: the baseline that says what training the GHN adds). It is loaded lazily, once
per process, so the evaluator pickles small and a worker loads it on its first trial.

The data comes from a ``TrainEvaluator`` with the same data settings (one data-loading code): the scores are
``val_acc`` and ``val_loss`` on its validation split. BN runs on batch statistics (training mode) over validation
batches of ``batch_size`` (default 500), as the GHN was trained; no recalibration, no running statistics.
"""

from __future__ import annotations

from typing import Any

from ..errors import NasforgeError
from ..space import Arch
from ..spaces.base import Family
from ..task import Task
from .base import Context, Evaluator, register_evaluator
from .train import TrainEvaluator, resolve_device

_GHN_CACHE: dict[str, Any] = {}  # one loaded GHN per process and source


@register_evaluator("hypernet")
class HypernetEvaluator(Evaluator):
    """``val_acc`` / ``val_loss`` of ``arch`` with GHN-predicted weights (``ghn``: a checkpoint path or artifact)."""

    metrics = ("val_acc", "val_loss")
    default_objectives = ("maximize val_acc",)

    def __init__(
        self,
        family: Family,
        dataset: Any = "fashion-mnist",
        *,
        ghn: str = "",
        data_dir: str | None = None,
        val_size: int | float | None = None,
        train_subset: int | None = None,
        batch_size: int = 500,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if not ghn:
            raise NasforgeError("hypernet evaluator: give ghn=<checkpoint file> (train one with 'nasforge hypernet "
                                "train') or ghn=artifact:<study>/<arch_key>/<name>")  # fmt: skip
        self.family = family
        self.ghn = str(ghn)
        self.batch_size = int(batch_size)
        self.threads = threads
        self._data = TrainEvaluator(family, dataset, data_dir=data_dir, val_size=val_size, train_subset=train_subset,
                                    device=device, save_weights=False)  # fmt: skip

    def config(self) -> dict[str, Any]:
        d = self._data.config()
        return {"dataset": d["dataset"], "val_size": d["val_size"], "train_subset": d["train_subset"],
                "ghn": self.ghn, "batch_size": self.batch_size, "bn": "batch statistics"}  # fmt: skip

    def task(self) -> Task:
        return self._data.task()

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)  # the GHN itself lives in the process cache, never in the pickle

    def _load(self, ctx: Context):
        from ..hypernet.train import Nets, load_ghn

        hit = _GHN_CACHE.get(self.ghn)
        if hit is None:
            if self.ghn == "untrained":
                ghn, task = _untrained(), self.task()
            elif self.ghn.startswith("artifact:"):
                study, _, rest = self.ghn[len("artifact:") :].partition("/")
                key, _, name = rest.partition("/")
                if not (study and key and name) or ctx.artifacts is None:
                    raise NasforgeError(f"hypernet evaluator: {self.ghn!r} must be artifact:<study>/<arch_key>/<name>"
                                        " and needs a study's artifact store")  # fmt: skip
                src: Any = ctx.artifacts.parent(key, name, study)
                ghn, _, task, _ = load_ghn(src)
            else:
                ghn, _, task, _ = load_ghn(self.ghn)
            if tuple(task.input_shape) != tuple(self.task().input_shape) or task.num_classes != self.task().num_classes:
                raise NasforgeError(f"the GHN {self.ghn} was trained for inputs {task.input_shape} and "
                                    f"{task.num_classes} classes, the data has {self.task().input_shape} and "
                                    f"{self.task().num_classes}")  # fmt: skip
            ghn.to(resolve_device(self._data.device))
            _GHN_CACHE.clear()
            hit = _GHN_CACHE[self.ghn] = (ghn, {})
        ghn, nets_by_family = hit
        fkey = repr(self.family.spec())
        if fkey not in nets_by_family:
            nets_by_family[fkey] = Nets(self.family, self.task())
        return ghn, nets_by_family[fkey]

    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        import torch

        from ..hypernet.train import score

        if self.threads:
            torch.set_num_threads(self.threads)
        ghn, nets = self._load(ctx)
        data = self._data.data()
        acc, loss = score(ghn, nets, arch, data.x_val, data.y_val, self.batch_size)
        return {"val_acc": acc, "val_loss": loss}


def _untrained():
    import torch

    from ..hypernet.model import GHN

    with torch.random.fork_rng():  # seeded without touching the caller's global generator
        torch.manual_seed(0)
        return GHN()
