"""Scoring a classifier on tensors: what training from scratch, weight sharing and hypernetworks all report (torch is
imported when it runs, so importing this costs nothing)."""

from __future__ import annotations


def accuracy(model, x, y, batch: int = 1000) -> tuple[float, float]:
    """(accuracy in %, mean cross-entropy) of ``model`` on tensors ``x``, ``y``, without gradients. A module is put in
    eval mode; any other callable (a network run with generated weights) is called as it is."""
    import torch
    import torch.nn.functional as F

    if isinstance(model, torch.nn.Module):
        model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i : i + batch])
            loss += float(F.cross_entropy(out, y[i : i + batch], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch]).sum())
    n = max(len(y), 1)
    return 100.0 * correct / n, loss / n
