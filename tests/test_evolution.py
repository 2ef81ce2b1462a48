"""Regularized evolution: aging removes the oldest member (not the worst), tournaments pick the best of a sample,
children differ from their parent in one gene and are never archs asked before."""

from __future__ import annotations

from nasforge.space import Space
from nasforge.strategies import create_strategy
from nasforge.strategies.evolution import RegularizedEvolution, random_unseen
from nasforge.trial import Result, State

SPACE = Space({f"g{i}": list(range(4)) for i in range(4)})  # 256 archs


def score(a) -> float:
    return float(sum(a.values()))


def ok(value: float) -> Result:
    return Result(State.COMPLETE, (value,))


def test_aging_removes_the_oldest_not_the_worst():
    s = RegularizedEvolution(SPACE, seed=0, population=3, sample=3)
    first = s.ask(3)
    values = [100.0, 1.0, 2.0]  # the oldest member is by far the best
    for a, v in zip(first, values, strict=True):
        s.tell(a, ok(v))
    assert [v for _, v in s.population] == values
    child = s.ask(1)[0]
    s.tell(child, ok(0.5))  # a child worse than everyone
    assert [a for a, _ in s.population] == [first[1], first[2], child]
    assert 100.0 not in [v for _, v in s.population]


def test_tournament_parent_is_the_best_of_the_sample_and_child_differs_in_one_gene():
    s = RegularizedEvolution(SPACE, seed=1, population=5, sample=5)  # sample = population: the best is the parent
    archs = s.ask(5)
    for a in archs:
        s.tell(a, ok(score(a)))
    best = max(archs, key=score)
    for _ in range(5):
        child = s.ask(1)[0]
        assert sum(child[k] != best[k] for k in SPACE.names) == 1
        s.tell(child, ok(-1.0))  # keep the best the best
        if best not in [a for a, _ in s.population]:
            break


def test_first_population_is_random_and_failures_stay_out():
    s = RegularizedEvolution(SPACE, seed=2, population=4, sample=2)
    archs = s.ask(4)
    assert len({a.key for a in archs}) == 4
    s.tell(archs[0], Result(State.FAILED))
    s.tell(archs[1], Result(State.INFEASIBLE, feasible=False))
    for a in archs[2:]:
        s.tell(a, ok(1.0))
    assert [a for a, _ in s.population] == archs[2:]


def test_children_are_never_repeats_even_when_the_parent_neighbourhood_is_used_up():
    space = Space({"x": [0, 1], "y": [0, 1, 2]})  # 6 archs: every neighbourhood runs out quickly
    s = create_strategy("evolution", space, seed=0, population=2, sample=2)
    seen = []
    while archs := s.ask(1):
        seen.append(archs[0].key)
        s.tell(archs[0], ok(float(len(seen))))
    assert sorted(seen) == sorted(a.key for a in space.grid())


def test_random_unseen_lists_each_feasible_arch_once():
    s = RegularizedEvolution(SPACE, seed=3)
    s.set_feasible(lambda a: a["g0"] == 0)
    got = []
    while more := random_unseen(s, 7, set()):
        got += more
        s._asked.update(a.key for a in more)
    assert sorted(a.key for a in got) == sorted(a.key for a in SPACE.grid() if a["g0"] == 0)


def test_beats_random_search_on_an_additive_toy_problem():
    # mean best score after 40 queries over 10 seeds: evolution climbs, random search does not
    def run(name: str) -> float:
        total = 0.0
        for seed in range(10):
            hyper = {"population": 8, "sample": 3} if name == "evolution" else {}
            s = create_strategy(name, SPACE, seed=seed, **hyper)
            best = -1.0
            for _ in range(40):
                (a,) = s.ask(1)
                best = max(best, score(a))
                s.tell(a, ok(score(a)))
            total += best
        return total / 10

    assert run("evolution") > run("random")
