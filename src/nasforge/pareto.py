"""Pareto tools in numpy: the non-dominated filter, fast non-dominated sort, crowding distance and hypervolume
(NSGA-II, Deb et al., 2002). The one place that decides what dominates what: strategies, studies and benchmarks use it.

Convention everywhere: rows of ``F`` are points, columns objectives, and *greater is better* in every column (the
orientation of ``Result.score``; a minimised metric is negated before it gets here).
"""

from __future__ import annotations

import numpy as np

from .errors import NasforgeError


def _as_points(F: np.ndarray | list) -> np.ndarray:
    P = np.asarray(F, dtype=float)
    if P.ndim == 1:
        P = P.reshape(-1, 1) if P.size else P.reshape(0, 1)
    if P.ndim != 2:
        raise NasforgeError(f"objective values must be a 2-D array (points × objectives), got shape {P.shape}")
    if P.size and not np.isfinite(P).all():
        raise NasforgeError("objective values must be finite; drop failed trials before ranking them")
    return P


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` Pareto-dominates ``b``: no worse in every objective and better in at least one."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(a >= b) and np.any(a > b))


def domination_matrix(F: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when point i dominates point j. O(m·n²) memory-light broadcasting."""
    P = _as_points(F)
    ge = np.all(P[:, None, :] >= P[None, :, :], axis=2)
    gt = np.any(P[:, None, :] > P[None, :, :], axis=2)
    return ge & gt


def non_dominated_sort(F: np.ndarray) -> list[np.ndarray]:
    """Fast non-dominated sort: the fronts as arrays of row indices, best front first (Deb et al., 2002, §III-A).

    Equal points share a front. Each front's indices are sorted ascending, so the result is deterministic.
    """
    P = _as_points(F)
    n = len(P)
    if n == 0:
        return []
    D = domination_matrix(P)
    count = D.sum(axis=0)  # how many points dominate each point
    fronts: list[np.ndarray] = []
    current = np.flatnonzero(count == 0)
    while current.size:
        fronts.append(current)
        count = count - D[current].sum(axis=0)
        count[current] = -1  # placed: never picked again
        current = np.flatnonzero(count == 0)
    return fronts


def non_dominated(F: np.ndarray, keep_ties: bool = True) -> np.ndarray:
    """Sorted indices of the non-dominated rows of ``F`` (the first front). Rows equal in every objective are all
    kept, or, without ``keep_ties``, only the lowest index of them (one row per point of the front).

    Scan in decreasing lexicographic order: a row can only be dominated by a lexicographically greater one, so a row
    still standing when its turn comes is on the front, and it knocks out what it dominates. Cost O(n·|front|·m) time
    and O(n) memory, where the domination matrix needs O(n²): all 15,625 NAS-Bench-201 cells take milliseconds.
    """
    P = _as_points(F)
    n = len(P)
    alive = np.ones(n, dtype=bool)
    front: list[int] = []
    # decreasing lexicographic order; among equal rows the lowest index first (np.lexsort is stable)
    order = np.lexsort((np.arange(n)[::-1], *P.T[::-1]))[::-1]
    for i in order:
        if not alive[i]:
            continue
        front.append(int(i))
        worse = np.all(P <= P[i], axis=1)
        alive &= ~(worse if not keep_ties else worse & np.any(P < P[i], axis=1))
    return np.sort(np.asarray(front, dtype=int))


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows (the first front; equal points all kept)."""
    P = _as_points(F)
    mask = np.zeros(len(P), dtype=bool)
    mask[non_dominated(P)] = True
    return mask


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """Crowding distance of each point within one front (Deb et al., 2002, §III-B).

    For each objective, points sorted by it get the normalised gap between their two neighbours; the extremes get
    ``inf`` so that boundary solutions always survive. An objective on which all points are equal adds nothing.
    """
    P = _as_points(F)
    n, m = P.shape
    dist = np.zeros(n)
    if n <= 2:
        dist[:] = np.inf
        return dist
    for k in range(m):
        order = np.argsort(P[:, k], kind="stable")
        col = P[order, k]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def rank_and_crowding(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point: its front number (0 = non-dominated) and its crowding distance within that front."""
    P = _as_points(F)
    rank = np.zeros(len(P), dtype=int)
    crowd = np.zeros(len(P))
    for r, front in enumerate(non_dominated_sort(P)):
        rank[front] = r
        crowd[front] = crowding_distance(P[front])
    return rank, crowd


def hypervolume(F: np.ndarray, ref: np.ndarray | list) -> float:
    """Volume dominated by the points and bounded by the reference point ``ref`` (worse than the points in every
    objective). Points that do not strictly beat ``ref`` in every objective add nothing.

    Exact, by slicing along the last objective (HSO, While et al., 2006): O(n log n) in 2-D, O(n^(m-1)) beyond, which
    is plenty for the fronts of a NAS search (tens to a few hundred points).
    """
    P = _as_points(F)
    r = np.asarray(ref, dtype=float).reshape(-1)
    if P.size and P.shape[1] != r.size:
        raise NasforgeError(f"reference point has {r.size} objectives, the points have {P.shape[1]}")
    if P.size == 0:
        return 0.0
    G = P - r  # gains over the reference, positive where a point contributes
    G = G[np.all(G > 0, axis=1)]
    if len(G) == 0:
        return 0.0
    return float(_hv(G[pareto_mask(G)]))


def _hv(G: np.ndarray) -> float:
    """Volume of the union of boxes [0, g] for the rows g of G (all positive, mutually non-dominated)."""
    m = G.shape[1]
    if m == 1:
        return float(G.max())
    if m == 2:
        g = G[np.argsort(-G[:, 0], kind="stable")]  # x descending, so y ascends along a non-dominated set
        ys = np.maximum.accumulate(g[:, 1])
        prev = np.concatenate([[0.0], ys[:-1]])
        return float(np.sum(g[:, 0] * (ys - prev)))
    g = G[np.argsort(-G[:, -1], kind="stable")]
    levels = np.concatenate([g[:, -1], [0.0]])
    total = 0.0
    for k in range(len(g)):
        h = levels[k] - levels[k + 1]
        if h > 0:
            sub = g[: k + 1, :-1]
            total += h * _hv(sub[pareto_mask(sub)])
    return total
