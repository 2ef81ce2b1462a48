"""BatchNorm recalibration and the score of one path of a trained supernet.

A supernet's shared BN running statistics are an average over every path that ran through them, so they are wrong for
any single path (SPOS, Guo et al. 2020, section 3.3; Once-for-All does the same). Before a path is scored its
statistics are recomputed on a few training batches: every BN is reset and the batches are forwarded in train mode
without gradients, averaging the batch statistics *cumulatively* (each batch weighs the same), which is what torch's
``momentum=None`` does. ``ElasticBatchNorm`` calls ``F.batch_norm`` with its own ``momentum`` and has no ``None``
form, so both kinds are given momentum ``1/(k+1)`` for the k-th batch (0-based): after batch k the running value is
``(k·old + new)/(k+1)``, the mean of the k+1 batch statistics (the variance unbiased per batch, as torch keeps it).

Torch enters only inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def batchnorms(net) -> list[Any]:
    """Every BatchNorm of ``net`` with running statistics: torch's ``nn.BatchNorm*`` and ``ElasticBatchNorm``."""
    from torch import nn

    from ..nn.elastic import ElasticBatchNorm

    def tracked(m) -> bool:
        return isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None

    return [m for m in net.modules() if tracked(m) or isinstance(m, ElasticBatchNorm)]


def recalibrate_bn(net, batches: Iterable[Any]) -> int:
    """Reset every BN of ``net`` and set its running statistics to the cumulative average over ``batches`` (inputs
    forwarded in train mode, no gradients); ``net`` is left in eval mode. Returns how many batches ran (0 leaves the
    reset statistics: mean 0, variance 1)."""
    import torch

    bns = batchnorms(net)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
        m.num_batches_tracked.zero_()
    net.train()
    k = 0
    try:
        with torch.no_grad():
            for k, x in enumerate(batches, start=1):  # noqa: B007 - k is the count afterwards
                for m in bns:
                    m.momentum = 1.0 / k
                net(x)
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        net.eval()
    return k


def bn_batches(x, n_batches: int, batch_size: int, gen) -> list[Any]:
    """``n_batches`` disjoint random batches of ``batch_size`` rows of ``x`` (fewer when ``x`` is short), drawn with
    the ``torch.Generator`` ``gen``."""
    import torch

    perm = torch.randperm(len(x), generator=gen)[: n_batches * batch_size].to(x.device)
    return [x[perm[i : i + batch_size]] for i in range(0, len(perm), batch_size)]


def score_path(supernet, arch: Mapping[str, Any], data, *, bn_batches_n: int, batch_size: int, seed: int) -> dict:
    """Validation accuracy (%) and loss of ``arch``'s path of ``supernet`` on ``data`` (``datasets.Splits``) after
    recalibrating its BN on ``bn_batches_n`` training batches drawn with ``seed``. Changes the supernet's BN buffers
    and active path (callers that must not, save and restore them: ``keep_buffers``)."""
    import torch

    from ..scoring import accuracy

    supernet.set_active(arch)
    gen = torch.Generator().manual_seed(int(seed))
    recalibrate_bn(supernet, bn_batches(data.x_train, bn_batches_n, batch_size, gen))
    acc, loss = accuracy(supernet, data.x_val, data.y_val)
    return {"val_acc": acc, "val_loss": loss}


class keep_buffers:
    """Context manager: the module's buffers (BN statistics), active path and train/eval mode as they were on entry
    are restored on exit, so that scoring paths leaves a supernet exactly as it was."""

    def __init__(self, net) -> None:
        self.net = net

    def __enter__(self):
        self.buffers = {k: v.clone() for k, v in self.net.named_buffers()}
        self.training = self.net.training
        self.active = getattr(self.net, "active", None)
        return self.net

    def __exit__(self, *exc: object) -> None:
        import torch

        with torch.no_grad():
            for k, v in self.net.named_buffers():
                v.copy_(self.buffers[k])
        if self.active is not None:
            self.net.set_active(self.active)
        self.net.train(self.training)
