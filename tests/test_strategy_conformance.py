"""The ask/tell contract, checked for every registered strategy (a new strategy is tested for free).

Valid archs only; seeded reproducibility; resume by replay gives the same next ask; the feasibility predicate is
honoured; a space smaller than the budget is exhausted cleanly with no repeats; batch asks work; failed trials do no
harm. The reference is brute force: the small space is enumerated and every proposal checked against it.
"""

from __future__ import annotations

import math

import pytest

from nasforge.space import Arch, Space
from nasforge.strategies import STRATEGIES, create_strategy
from nasforge.trial import Result, State

# a mixed space of 3·2·2·4 = 48 archs, with every scalar type
SPACE = Space({"a": [1, 2, 3], "b": ["x", "y"], "c": [True, False], "d": [0.5, 1.5, 2.5, 3.5]})
# contract checks, not performance: keep the learning strategies' per-trial work small
FAST = {"predictor": {"steps": 40, "warm_steps": 10, "members": 3, "hidden": 16, "initial": 4},
        "reinforce": {"hidden": 16, "sample_batch": 8}, "nsga2": {"population": 8}, "evolution": {"population": 6}}
# grid enumerates everything and lets the study record infeasible archs (documented), so it ignores the predicate
IGNORES_FEASIBLE = {"grid"}
NAMES = STRATEGIES.names()
SMALL = Space({"p": [0, 1, 2], "q": ["u", "v", "w", "z"]})


def make(name: str, seed: int = 0, space: Space = SPACE):
    return create_strategy(name, space, seed=seed, **FAST.get(name, {}))


def objective(arch: Arch) -> tuple[float, float]:
    """Two objectives (greater is better) on any space: a weighted sum of value positions with an interaction between
    the first two dimensions, and a conflicting cost (minus the plain sum of positions)."""
    space = next(sp for sp in (SPACE, SMALL, DEPTH) if set(arch) == set(sp.names))
    pos = [space.dims[k].index(arch[k]) for k in space.names]
    s = sum((i + 1) * p for i, p in enumerate(pos)) + 2.0 * pos[0] * pos[1]
    return float(s), -float(sum(pos))


def result(arch: Arch, i: int) -> Result:
    if i % 7 == 6:  # now and then a trial fails: strategies must carry on
        return Result(State.FAILED)
    return Result(State.COMPLETE, objective(arch))


def drive(strategy, steps: int, n: int = 1) -> list[Arch]:
    """Ask ``n`` at a time, tell in reverse order of asking, until ``steps`` archs or the strategy stops."""
    out: list[Arch] = []
    while len(out) < steps:
        archs = strategy.ask(min(n, steps - len(out)))
        if not archs:
            break
        for a in reversed(archs):
            strategy.tell(a, result(a, len(out)))
            out.append(a)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_valid_archs_and_reproducible(name):
    first = drive(make(name, seed=3), 20)
    assert len(first) == 20 and len({a.key for a in first}) == 20
    assert all(SPACE.contains(a) for a in first)
    assert [a.key for a in drive(make(name, seed=3), 20)] == [a.key for a in first]


@pytest.mark.parametrize("name", NAMES)
def test_resume_by_replay_gives_the_same_next_ask(name):
    original = make(name, seed=5)
    record: list[tuple[list[Arch], list[Result]]] = []
    for step in range(6):
        archs = original.ask(1 + step % 3)
        results = [result(a, 3 * step + j) for j, a in enumerate(archs)]
        for a, r in zip(archs, results, strict=True):
            original.tell(a, r)
        record.append((archs, results))
    resumed = make(name, seed=5)
    for archs, results in record:
        assert resumed.ask(len(archs)) == archs
        for a, r in zip(archs, results, strict=True):
            resumed.tell(a, r)
    assert resumed.ask(2) == original.ask(2)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in IGNORES_FEASIBLE])
def test_feasibility_predicate_is_honoured_to_exhaustion(name):
    def feasible(a: Arch) -> bool:
        return a["a"] != 3 and not (a["b"] == "x" and a["d"] > 3)

    n_feasible = sum(feasible(a) for a in SPACE.grid())
    s = make(name)
    s.set_feasible(feasible)
    archs = drive(s, 100, n=3)
    assert all(feasible(a) for a in archs)
    assert len(archs) == len({a.key for a in archs}) == n_feasible
    assert s.ask(4) == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 5])
def test_small_space_is_exhausted_cleanly(name, batch):
    space = SMALL
    s = make(name, space=space)
    archs = drive(s, 3 * space.size, n=batch)
    assert len(archs) == space.size and len({a.key for a in archs}) == space.size
    assert s.ask(1) == [] and s.ask(3) == []


@pytest.mark.parametrize("name", NAMES)
def test_batch_ask_returns_distinct_unseen_archs(name):
    s = make(name, seed=1)
    seen: set[str] = set()
    for _ in range(4):
        archs = s.ask(6)
        keys = [a.key for a in archs]
        assert len(archs) == 6 and len(set(keys)) == 6 and not seen & set(keys)
        seen |= set(keys)
        for i, a in enumerate(archs):
            s.tell(a, result(a, i))


@pytest.mark.parametrize("name", NAMES)
def test_hyper_is_plain_data(name):
    h = make(name).hyper()
    assert isinstance(h, dict)
    for v in h.values():
        assert v is None or isinstance(v, bool | int | float | str | list)
        assert not (isinstance(v, float) and math.isnan(v))


def test_every_strategy_of_issue_3_is_registered():
    assert {"evolution", "nsga2", "reinforce", "predictor"} <= set(NAMES)


def _depth_canonical(arch: Arch) -> Arch:
    """A toy canonical form: slot k1 is unread when depth is 1 (mobilenet's unused block slots, in miniature)."""
    return DEPTH.validate(dict(arch, k1=3)) if arch["d"] == 1 and arch["k1"] != 3 else arch


DEPTH = Space({"d": [1, 2], "k0": [3, 5], "k1": [3, 5], "w": ["a", "b"]}, canonical=_depth_canonical)
N_NETWORKS = 2 * 2 + 2 * 2 * 2  # depth 1: k0 × w; depth 2: k0 × k1 × w


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 3])
def test_one_network_is_proposed_once(name, batch):
    # a space with a canonical form: every proposal is canonical, no network twice, and the strategy stops after
    # the last network although the space holds more archs than networks
    s = make(name, space=DEPTH)
    archs = drive(s, 3 * DEPTH.size, n=batch)
    assert all(_depth_canonical(a) is a or _depth_canonical(a) == a for a in archs)
    assert len(archs) == len({a.key for a in archs}) == N_NETWORKS
    assert s.ask(2) == []


def test_canonical_space_operators_return_canonical_archs():
    import numpy as np

    rng = np.random.default_rng(0)
    shallow = DEPTH.validate({"d": 1, "k0": 5, "k1": 5, "w": "a"})
    assert dict(shallow) == {"d": 1, "k0": 5, "k1": 3, "w": "a"}
    for a in [DEPTH.sample(rng) for _ in range(20)] + list(DEPTH.grid()) + DEPTH.neighbours(shallow):
        assert a == _depth_canonical(a)
    assert len({a.key for a in DEPTH.grid()}) == N_NETWORKS
    for _ in range(10):
        m = DEPTH.mutate(shallow, rng)
        assert m == _depth_canonical(m)


@pytest.mark.parametrize("name", NAMES)
def test_bad_settings_are_one_line_errors(name):
    from nasforge.errors import NasforgeError

    for key, value in make(name).hyper().items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        for bad in ("abc", -1, float("nan"), True):
            try:
                create_strategy(name, SPACE, **{key: bad})
            except NasforgeError as e:
                assert "\n" not in str(e) and key in str(e)
            else:
                assert bad == -1 and key in NEGATIVE_OK.get(name, ()), (name, key, bad)


# settings where a negative value means something (none today); listed so that the check above stays honest
NEGATIVE_OK: dict[str, tuple[str, ...]] = {}


def test_objective_capacity_is_declared():
    assert STRATEGIES.get("evolution").max_objectives == 1 and STRATEGIES.get("nsga2").max_objectives is None
    assert STRATEGIES.get("grid").max_objectives is None and STRATEGIES.get("predictor").max_objectives == 1
