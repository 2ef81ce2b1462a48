"""Model-based search: vectorised encoding equals Space.encode, expected improvement equals its integral, the refit
schedule, both candidate modes (whole pool, sampled), every acquisition rule, and a toy problem it solves quickly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from nasforge.errors import NasforgeError
from nasforge.space import Space
from nasforge.strategies import create_strategy
from nasforge.strategies.predictor import ACQUISITIONS, PredictorSearch, encode_indices, expected_improvement, ranked
from nasforge.trial import Result, State

SPACE = Space({f"g{i}": list(range(4)) for i in range(5)})  # 1,024 archs
FAST = {"steps": 100, "warm_steps": 30, "members": 4, "hidden": 32, "initial": 8}


def score(a) -> float:
    g = np.array([a[k] for k in SPACE.names], float)
    return float(g @ [1, 2, 3, 2, 1] + 2 * (g[0] == g[1]))  # optimum 29 at (3, 3, 3, 3, 3)


def test_encode_indices_equals_space_encode():
    space = Space({"a": [1, 2, 3], "b": ["x", "y"], "c": [True, False], "d": [0.5, 1.5]})
    idx = np.arange(space.size)
    assert np.array_equal(encode_indices(space, idx), np.stack([space.encode(space.at(int(i))) for i in idx]))


@pytest.mark.parametrize(("mu", "sd", "best"), [(1.0, 0.5, 1.2), (0.0, 2.0, -1.0), (3.0, 0.1, 0.0)])
def test_expected_improvement_equals_its_integral(mu, sd, best):
    ref, _ = integrate.quad(lambda v: max(v - best, 0.0) * stats.norm.pdf(v, mu, sd), mu - 12 * sd, mu + 12 * sd,
                            points=[best], limit=200)
    assert expected_improvement(np.array([mu]), np.array([sd]), best)[0] == pytest.approx(ref, rel=1e-6, abs=1e-9)


def run(name: str, seed: int, budget: int, **hyper) -> float:
    s = create_strategy(name, SPACE, seed=seed, **hyper)
    best = -np.inf
    for _ in range(budget):
        (a,) = s.ask(1)
        best = max(best, score(a))
        s.tell(a, Result(State.COMPLETE, (score(a),)))
    return best


def test_finds_the_optimum_of_a_toy_problem_faster_than_random():
    ours = [run("predictor", seed, 30, **FAST) for seed in range(3)]
    rand = [run("random", seed, 30) for seed in range(3)]
    assert np.mean(ours) > np.mean(rand)
    assert max(ours) == 29


@pytest.mark.parametrize("acquisition", ACQUISITIONS)
def test_every_acquisition_and_the_sampled_candidate_mode(acquisition):
    # pool_limit=0 forces the large-space mode: mutations of the best archs plus random samples
    s = PredictorSearch(SPACE, seed=1, acquisition=acquisition, pool_limit=0, randoms=50, mutants=10, **FAST)
    s.set_feasible(lambda a: a["g4"] != 0)
    asked = []
    for _ in range(5):
        archs = s.ask(3)
        assert len(archs) == 3
        asked += archs
        for a in archs:
            s.tell(a, Result(State.COMPLETE, (score(a),)))
    assert all(a["g4"] != 0 for a in asked) and len({a.key for a in asked}) == 15


def test_refits_only_when_the_history_has_grown_enough():
    s = PredictorSearch(SPACE, seed=2, refit=0.5, **FAST)
    fits = []
    for _ in range(40):
        (a,) = s.ask(1)
        s.tell(a, Result(State.COMPLETE, (score(a),)))
        fits.append(s.surrogate.n_fit if s.surrogate else 0)
    # fitted at 8 results, then when the growth since the last fit reaches half the history: 15 (7 >= 7), 29 (14 >= 14)
    assert sorted(set(fits)) == [0, 8, 15, 29]


def test_unknown_acquisition_is_a_user_error():
    with pytest.raises(NasforgeError):
        PredictorSearch(SPACE, acquisition="pi")


def test_balanced_design_gives_every_value_an_equal_share():
    s = PredictorSearch(SPACE, seed=4, **{**FAST, "initial": 8, "design": "balanced"})
    first = s.ask(8)
    assert len({a.key for a in first}) == 8
    for k in SPACE.names:
        assert sorted(a[k] for a in first) == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(NasforgeError):
        PredictorSearch(SPACE, design="sobol")


@pytest.mark.parametrize("k", [1, 3, 7, 50])
def test_ranked_is_a_lazy_stable_argsort(k):
    rng = np.random.default_rng(k)
    values = rng.integers(0, 5, size=40).astype(float)  # many ties
    assert list(ranked(values, k)) == np.argsort(-values, kind="stable").tolist()
