"""Holding out a validation split: its size (a fraction or a count) and a stratified, seeded choice of samples.

Stratified: each class gives the validation split its share of the samples (largest remainders settle the rounding),
so that a small data set's validation accuracy is not skewed by a class that happened to be left out.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

AUTO_FRACTION = 0.1
AUTO_MAX = 5000  # MNIST's 60,000 training images give the practice's 5,000


def val_count(val_size: int | float | None, n: int) -> int:
    """The number of samples to hold out of ``n`` training samples.

    ``None`` (automatic): 10% of them, at most 5,000, at least 1. A float in (0, 1) is a fraction; an int ≥ 1 a
    count. At least one sample must stay for training and one go to validation (the best epoch is chosen on it).
    """
    if n < 2:
        raise DataError(f"the training split has {n} sample{'s' if n != 1 else ''}; at least 2 are needed "
                        "(one to train on and one to validate on)")  # fmt: skip
    if val_size is None:
        return max(1, min(AUTO_MAX, round(AUTO_FRACTION * n)))
    bad = DataError(f"val_size must be a fraction in (0, 1) or a count of samples, got {val_size!r}")
    if isinstance(val_size, bool) or not isinstance(val_size, int | float):
        raise bad
    if isinstance(val_size, float) and not val_size.is_integer():
        if not 0 < val_size < 1:
            raise bad
        return min(max(round(val_size * n), 1), n - 1)
    k = int(val_size)  # a count (5000.0 from a command line is a count too)
    if not 1 <= k <= n - 1:
        raise DataError(f"val_size {k} does not fit a training split of {n} samples; give 1 to {n - 1}, or a fraction "
                        "such as 0.1")  # fmt: skip
    return k


def stratified_pick(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``k`` of ``labels``' entries, each class represented in proportion (largest remainders), chosen
    at random within each class. Sorted."""
    n = len(labels)
    if k >= n:
        return np.arange(n)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (k / n)
    take = np.floor(quota).astype(np.int64)
    rest = k - int(take.sum())
    if rest:
        # largest fractional parts first; ties broken at random, so that no class is always favoured
        frac = quota - take
        order = np.lexsort((rng.random(len(classes)), -frac))
        take[order[:rest]] += 1
    picked = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        picked.append(rng.choice(members, size=int(take[c]), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def split_indices(
    labels: np.ndarray, val_size: int | float | None, seed: int, train_subset: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(training positions, validation positions or None) for a training split with ``labels``.

    ``val_size`` is None only when the data brings its own validation split and nothing is held out; otherwise it
    has been resolved to a count. The training positions are in a seeded random order (a ``train_subset`` keeps a
    stratified choice of that many); the validation positions are sorted.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    val = None
    train = np.arange(n)
    if val_size is not None:
        val = stratified_pick(labels, int(val_size), rng)
        train = np.setdiff1d(train, val, assume_unique=True)
    if train_subset is not None and train_subset < len(train):
        train = train[stratified_pick(labels[train], int(train_subset), rng)]
    return rng.permutation(train), val
