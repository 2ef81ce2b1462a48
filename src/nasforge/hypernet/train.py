"""Running networks on predicted weights, training a GHN, and its checkpoint.

Training follows GHN-1/2: each step samples an architecture (``meta_batch`` of them) from the family's space, predicts
all its weights, runs the network *functionally* on those weights (``torch.func.functional_call`` on
``family.build(arch, task)``, so gradients reach the hypernetwork and the built module's own parameters are never
used) on a mini-batch, and backpropagates the cross-entropy into the GHN (Adam, lr 1e-3, weight decay 1e-5, gradient
norm clipped at 5, as GHN-2). BN always uses batch statistics (training mode), in training and in scoring.

Every step's randomness (its archs and its mini-batch) comes from ``numpy.random.default_rng([seed, step])``, so a
run resumed from a checkpoint at step s continues exactly as the uninterrupted run would (given the same data).
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NasforgeError
from ..spaces.base import Family, load_family
from ..task import Task
from .encode import GraphCode, encode_graph

FORMAT = "nasforge-ghn/1"


class Nets:
    """The built network and graph code of each arch, for one family and task (least recently used, ``size`` kept)."""

    def __init__(self, family: Family, task: Task, size: int = 256) -> None:
        self.family, self.task, self.size = family, task, size
        self._cache: OrderedDict[str, tuple[Any, GraphCode]] = OrderedDict()

    def get(self, arch) -> tuple[Any, GraphCode]:
        arch = self.family.arch(arch)
        hit = self._cache.get(arch.key)
        if hit is None:
            import torch

            with torch.random.fork_rng():  # its initial weights are never used: leave the caller's generator alone
                model = self.family.build(arch, self.task)
            hit = (model, encode_graph(self.family.graph(arch, self.task)))
            self._cache[arch.key] = hit
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(arch.key)
        return hit


def generate(ghn, nets: Nets, arch) -> tuple[Any, dict]:
    """(the built network, every one of its parameters as predicted by ``ghn``), checked name by name and shape."""
    model, code = nets.get(arch)
    pred = ghn(code)
    params = {}
    for name, p in model.named_parameters():
        w = pred.get(name)
        if w is None:
            raise NasforgeError(f"the graph of {nets.family.name} has no node for parameter {name!r} of the built "
                                "network, so the GHN cannot predict it; the family's graph must name every weighted "
                                "module")  # fmt: skip
        if tuple(w.shape) != tuple(p.shape):
            raise NasforgeError(f"the graph says {name!r} has shape {tuple(w.shape)}, the built network "
                                f"{tuple(p.shape)}; the family's graph and build disagree")  # fmt: skip
        params[name] = w
    return model.to(next(iter(params.values())).device) if params else model, params


def run(model, params: dict, x):
    """``model(x)`` on the predicted ``params``, BN on batch statistics."""
    from torch.func import functional_call

    model.train()
    return functional_call(model, params, (x,))


def train_ghn(ghn, nets: Nets, x, y, *, steps: int, start: int = 0, batch_size: int = 64, lr: float = 1e-3,
              weight_decay: float = 1e-5, meta_batch: int = 1, seed: int = 0, clip: float = 5.0,
              optimizer_state: dict | None = None, progress=None) -> dict[str, Any]:  # fmt: skip
    """Train ``ghn`` for ``steps`` steps from step ``start``; returns the per-step ``losses``, the ``optimizer`` state
    and the ``step`` reached (what a checkpoint needs to resume)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(ghn.parameters(), lr=lr, weight_decay=weight_decay)
    if optimizer_state:
        opt.load_state_dict(optimizer_state)
    ghn.train()
    losses: list[float] = []
    n = len(y)
    for step in range(start, start + steps):
        rng = np.random.default_rng([seed, step])
        archs = [nets.family.space.sample(rng) for _ in range(meta_batch)]
        idx = torch.from_numpy(rng.integers(0, n, batch_size)).to(y.device)
        loss = 0.0
        for arch in archs:
            model, params = generate(ghn, nets, arch)
            loss = loss + F.cross_entropy(run(model, params, x[idx]), y[idx]) / meta_batch
        lv = float(loss.detach())  # type: ignore[union-attr]
        if not math.isfinite(lv):
            raise NasforgeError(f"GHN training loss became {lv} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        torch.nn.utils.clip_grad_norm_(ghn.parameters(), clip)
        opt.step()
        losses.append(lv)
        if progress is not None:
            progress(step + 1 - start, steps, lv)
    return {"losses": losses, "optimizer": opt.state_dict(), "step": start + steps}


def score(ghn, nets: Nets, arch, x, y, batch: int = 500) -> tuple[float, float]:
    """(accuracy in %, mean cross-entropy) of ``arch`` with predicted weights on ``x``, ``y`` (batches of ``batch``,
    BN on each batch's statistics); no training."""
    import torch

    from ..scoring import accuracy

    ghn.eval()
    with torch.no_grad():
        model, params = generate(ghn, nets, arch)
    return accuracy(lambda xb: run(model, params, xb), x, y, batch)


# --- checkpoint ---------------------------------------------------------------------------------------------------
def checkpoint(ghn, family: Family, task: Task, step: int = 0, optimizer: dict | None = None,
               meta: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """What ``save_ghn`` writes: the GHN's config and state dict, the family and task it was trained for, the step
    reached and the optimizer state (to resume), and free-form ``meta`` (data, settings)."""
    return {"format": FORMAT, "config": ghn.config(), "state": ghn.state_dict(), "family": family.spec(),
            "task": task.to_dict(), "step": step, "optimizer": optimizer or {}, "meta": meta or {}}  # fmt: skip


def save_ghn(ckpt: dict[str, Any], path: str | Path | None = None) -> bytes:
    """The checkpoint as bytes (for the artifact store), also written to ``path`` when given."""
    import torch

    buf = io.BytesIO()
    torch.save(ckpt, buf)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def load_ghn(src: str | Path | bytes) -> tuple[Any, Family, Task, dict[str, Any]]:
    """(the GHN, its family, its task, the whole checkpoint) from a file or bytes; one-line error if it is not one."""
    import pickle

    import torch

    from .model import GHN

    what = "the given bytes" if isinstance(src, bytes) else str(src)
    try:
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        ck = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except OSError as e:
        raise NasforgeError(f"cannot read the GHN checkpoint {what}: {e.strerror or e}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise NasforgeError(f"{what} is not a GHN checkpoint ({str(e).strip()[:120]})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise NasforgeError(f"{what} is not a GHN checkpoint (no {FORMAT!r} format mark); train one with "
                            "'nasforge hypernet train'")  # fmt: skip
    ghn = GHN(**ck["config"])
    ghn.load_state_dict(ck["state"])
    return ghn, load_family(ck["family"]), Task.from_dict(ck["task"]), ck
