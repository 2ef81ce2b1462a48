"""Pareto tools against hand-computed fronts, crowding distances and hypervolumes, and brute-force counting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nasforge.errors import NasforgeError
from nasforge.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_mask,
    rank_and_crowding,
)


def test_dominates_is_strict_in_one_objective():
    assert dominates([2, 2], [1, 2])
    assert not dominates([2, 2], [2, 2])
    assert not dominates([3, 1], [1, 3])


def test_non_dominated_sort_hand_made():
    # greater is better in both columns
    F = np.array([[4, 1], [3, 3], [1, 4], [2, 2], [1, 1], [3, 3], [0, 0], [2, 0.5]])
    fronts = non_dominated_sort(F)
    assert [f.tolist() for f in fronts] == [[0, 1, 2, 5], [3], [4, 7], [6]]
    assert pareto_mask(F).tolist() == [True, True, True, False, False, True, False, False]


def test_non_dominated_sort_matches_brute_force():
    rng = np.random.default_rng(0)
    F = rng.integers(0, 6, size=(40, 3)).astype(float)
    rank = np.empty(len(F), int)
    for r, front in enumerate(non_dominated_sort(F)):
        rank[front] = r
    for i, j in itertools.product(range(len(F)), repeat=2):
        if dominates(F[i], F[j]):
            assert rank[i] < rank[j]
    # every point of front r > 0 is dominated by some point of front r - 1
    for i in range(len(F)):
        if rank[i]:
            assert any(dominates(F[j], F[i]) for j in np.flatnonzero(rank == rank[i] - 1))


def test_crowding_distance_hand_made():
    # one front sorted along x: (0,4) (1,3) (3,1) (4,0); ranges 4 and 4
    F = np.array([[1, 3], [4, 0], [0, 4], [3, 1]])
    d = crowding_distance(F)
    assert np.isinf(d[1]) and np.isinf(d[2])
    # (1,3): neighbours (0,4) and (3,1): (3-0)/4 + (4-1)/4 = 1.5 ; (3,1): neighbours (1,3),(4,0): 3/4 + 3/4
    assert d[0] == pytest.approx(1.5) and d[3] == pytest.approx(1.5)
    assert np.isinf(crowding_distance(F[:2])).all()


def test_crowding_distance_constant_objective_adds_nothing():
    F = np.array([[0.0, 5], [1.0, 5], [3.0, 5]])
    d = crowding_distance(F)
    assert np.isinf(d[[0, 2]]).all() and d[1] == pytest.approx(1.0)


def test_rank_and_crowding():
    F = np.array([[2, 2], [1, 1], [0, 3], [3, 0]])
    rank, crowd = rank_and_crowding(F)
    assert rank.tolist() == [0, 1, 0, 0]
    assert np.isinf(crowd[1])  # alone in its front


def test_hypervolume_2d_hand_computed():
    # staircase from reference (0, 0): 3·1 + 2·1 + 1·1
    F = np.array([[3, 1], [2, 2], [1, 3]])
    assert hypervolume(F, [0, 0]) == pytest.approx(6.0)
    # a dominated point and a point not better than the reference change nothing
    assert hypervolume(np.vstack([F, [[1, 1], [5, -1]]]), [0, 0]) == pytest.approx(6.0)
    # reference shifted to (-1, -0.5): 4·1.5 + 3·1 + 2·1
    assert hypervolume(F, [-1, -0.5]) == pytest.approx(11.0)


def test_hypervolume_3d_hand_computed():
    # three boxes of volume 2 pairwise overlapping in the unit cube: 3·2 − 3·1 + 1
    F = np.array([[2, 1, 1], [1, 2, 1], [1, 1, 2]])
    assert hypervolume(F, [0, 0, 0]) == pytest.approx(4.0)
    assert hypervolume([[1, 1, 1]], [0, 0, 0]) == pytest.approx(1.0)
    assert hypervolume(np.zeros((0, 3)), [0, 0, 0]) == 0.0


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_counting_unit_cells(m):
    rng = np.random.default_rng(m)
    F = rng.integers(1, 6, size=(12, m))
    cells = np.array(list(itertools.product(range(6), repeat=m)))  # lower corners of unit cells
    covered = (cells[:, None, :] + 1 <= F[None, :, :]).all(axis=2).any(axis=1)
    assert hypervolume(F, np.zeros(m)) == pytest.approx(covered.sum())


def test_bad_input_is_a_user_error():
    with pytest.raises(NasforgeError):
        hypervolume([[1, 2]], [0, 0, 0])
    with pytest.raises(NasforgeError):
        non_dominated_sort([[1, np.nan]])
