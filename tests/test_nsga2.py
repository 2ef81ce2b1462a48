"""NSGA-II: elitist survival front by front with the last front cut by crowding (hand-made case), hypervolume per
generation, the Pareto front against brute force, and a toy problem where it beats random search."""

from __future__ import annotations

import numpy as np
import pytest

from nasforge.pareto import hypervolume, pareto_mask
from nasforge.space import Space
from nasforge.strategies import create_strategy
from nasforge.strategies.nsga2 import NSGA2
from nasforge.trial import Result, State

SPACE = Space({f"g{i}": list(range(4)) for i in range(4)})


def ok(*score: float) -> Result:
    return Result(State.COMPLETE, tuple(float(v) for v in score))


def test_survival_fills_front_by_front_and_cuts_the_last_by_crowding():
    s = NSGA2(SPACE, seed=0, population=5)
    gen0 = {"A": (5, 1), "B": (1, 5), "C": (3, 3), "D": (0, 0), "J": (0.5, 4.5)}
    kids = {"E": (6, 2), "F": (2, 2), "G": (0.5, 0.5), "H": (4, 4), "K": (0.1, 0.1)}
    names = {}
    for a, (name, v) in zip(s.ask(5), gen0.items(), strict=True):
        names[a.key] = name
        s.tell(a, ok(*v))
    assert s.generation == 1 and len(s.parents) == 5  # generation 0 (random) is complete and ranked
    children = s.ask(5)
    for a, (name, v) in zip(children, kids.items(), strict=True):
        names[a.key] = name
        s.tell(a, ok(*v))
    # fronts of the merged 10: {E, B, H}, then {A, C, J}: two places left, the extremes A and J (infinite crowding)
    # survive and C, in the middle, does not
    assert s.generation == 2
    assert sorted(names[a.key] for a, _ in s.parents) == ["A", "B", "E", "H", "J"]
    # default reference: worst of generation 0 less 10% of its range, in each objective
    assert s.ref_point == pytest.approx([0 - 0.5, 0 - 0.5])
    assert s.hypervolumes == pytest.approx(
        [hypervolume([[5, 1], [1, 5], [3, 3]], [-0.5, -0.5]), hypervolume([[6, 2], [1, 5], [4, 4]], [-0.5, -0.5])]
    )


def test_failed_children_take_no_part_and_late_children_join_the_next_merge():
    s = NSGA2(SPACE, seed=1, population=3)
    for a in s.ask(3):
        s.tell(a, ok(*np.random.default_rng(0).random(2)))
    kids = s.ask(5)  # more asks than a generation: extra children from the same parents
    assert len({a.key for a in kids}) == 5
    s.tell(kids[0], Result(State.FAILED))
    for a in kids[1:4]:
        s.tell(a, ok(1, 1))
    assert s.generation == 2  # three completed children make a generation; the failed one did not count
    s.tell(kids[4], ok(2, 2))
    assert len(s._pool) == 1


def test_pareto_front_matches_brute_force_and_hypervolume_never_drops():
    rng = np.random.default_rng(0)
    table = {a.key: rng.random(2) for a in SPACE.grid()}
    s = create_strategy("nsga2", SPACE, seed=2, population=10)
    for _ in range(12):
        for a in s.ask(5):
            s.tell(a, ok(*table[a.key]))
    archs, F = s.pareto_front()
    told = np.array([table[a.key] for a, _ in s.history])
    assert sorted(map(tuple, F)) == sorted(map(tuple, told[pareto_mask(told)]))
    assert all(np.allclose(table[a.key], f) for a, f in zip(archs, F, strict=True))
    assert len(s.hypervolumes) == s.generation >= 4
    assert np.all(np.diff(s.hypervolumes) >= 0)
    assert s.hypervolume() == pytest.approx(hypervolume(F, s.ref_point))


def test_three_objectives_and_an_explicit_reference_point():
    s = NSGA2(SPACE, seed=3, population=6, ref_point=[0, 0, 0])
    for _ in range(4):
        for a in s.ask(6):
            g = np.array([a[k] for k in SPACE.names], float)
            s.tell(a, ok(g[0] + g[1], g[2] + 1, 7 - g.sum()))
    assert s.ref_point == [0, 0, 0] and len(s.hypervolumes) == 4


def test_beats_random_search_on_a_toy_front():
    w = np.array([1.0, 2.0, 3.0, 4.0])

    def objectives(a) -> tuple[float, float]:
        g = np.array([a[k] for k in SPACE.names], float)
        return float(g @ w), float((3 - g) @ w[::-1])  # conflicting

    F = np.array([objectives(a) for a in SPACE.grid()])
    ref = F.min(0) - 1

    def hv(name: str) -> float:
        total = 0.0
        for seed in range(4):
            s = create_strategy(name, SPACE, seed=seed, **({"population": 12} if name == "nsga2" else {}))
            got = []
            for _ in range(6):
                for a in s.ask(12):
                    got.append(objectives(a))
                    s.tell(a, ok(*got[-1]))
            total += hypervolume(np.array(got), ref)
        return total

    assert hv("nsga2") > hv("random")
