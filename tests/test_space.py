import json

import numpy as np
import pytest

from nasforge.errors import SpaceError
from nasforge.space import Arch, Choice, Space


@pytest.fixture
def sp():
    return Space({"a": [1, 2, 3], "b": ["x", "y"], "c": [0.5]})


def test_size_is_exact_int(sp):
    assert sp.size == 6 and isinstance(sp.size, int)
    big = Space({f"d{i}": list(range(10)) for i in range(30)})
    assert big.size == 10**30 and isinstance(big.size, int)


def test_grid_is_lexicographic_and_complete(sp):
    g = list(sp.grid())
    assert [(a["a"], a["b"]) for a in g] == [(1, "x"), (1, "y"), (2, "x"), (2, "y"), (3, "x"), (3, "y")]
    assert len({a.key for a in g}) == 6
    for i, a in enumerate(g):
        assert sp.index(a) == i and sp.at(i) == a


def test_sample_is_seeded(sp):
    a = [sp.sample(np.random.default_rng(3)) for _ in range(5)]
    b = [sp.sample(np.random.default_rng(3)) for _ in range(5)]
    assert a == b and all(sp.contains(x) for x in a)


def test_contains_and_validate(sp):
    assert sp.contains({"a": 1, "b": "x", "c": 0.5})
    assert not sp.contains({"a": 4, "b": "x", "c": 0.5})
    assert not sp.contains({"a": 1, "b": "x"})
    assert not sp.contains({"a": True, "b": "x", "c": 0.5})  # True == 1, but a bool is not an int choice
    with pytest.raises(SpaceError, match="missing"):
        sp.validate({"a": 1})


def test_mutate_changes_exactly_n(sp):
    rng = np.random.default_rng(0)
    big = Space({f"d{i}": [0, 1, 2] for i in range(8)})
    a = big.sample(rng)
    for n in (1, 2, 5):
        m = big.mutate(a, rng, n)
        assert sum(a[k] != m[k] for k in big.names) == n and big.contains(m)
    with pytest.raises(SpaceError):
        sp.mutate(sp.at(0), rng, n=3)  # only two dims have more than one value


def test_crossover_takes_genes_from_parents():
    big = Space({f"d{i}": [0, 1] for i in range(16)})
    a, b = Arch({f"d{i}": 0 for i in range(16)}), Arch({f"d{i}": 1 for i in range(16)})
    c = big.crossover(a, b, np.random.default_rng(1))
    assert 0 < sum(c.values()) < 16


def test_encode_one_hot(sp):
    v = sp.encode({"a": 2, "b": "y", "c": 0.5})
    assert v.tolist() == [0, 1, 0, 0, 1, 1] and sp.encoding_size == 6


def test_arch_key_stable_and_frozen():
    a = Arch({"x": 1, "y": "z"})
    assert a.key == Arch({"y": "z", "x": 1}).key  # canonical JSON: order does not matter
    assert a.key == "70e373e62f084118"  # fixed across runs and machines: the identity in every database
    assert Arch.from_json(a.to_json()) == a
    with pytest.raises(AttributeError):
        a.foo = 1
    with pytest.raises(TypeError):
        a["x"] = 2  # type: ignore[index]


def test_space_from_yaml_and_json(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("dims:\n  depth: [2, 3]\n  kernel: [3, 5, 7]\n")
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"depth": [2, 3], "kernel": [3, 5, 7]}))
    assert Space.from_file(y) == Space.from_file(j) and Space.from_file(y).size == 6


@pytest.mark.parametrize(
    "bad", [{}, {"a": []}, {"a": [1, 1]}, {"a": "abc"}, {"a": [[1, 2]]}, {"": [1]}, {"a": [float("nan")]}]
)
def test_malformed_spaces_rejected(bad):
    with pytest.raises(SpaceError):
        Space(bad)


def test_malformed_space_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("dims: [1, 2")
    with pytest.raises(SpaceError, match="not valid"):
        Space.from_file(p)
    with pytest.raises(SpaceError, match="does not exist"):
        Space.from_file(tmp_path / "missing.yaml")


def test_choice_rejects_non_scalars():
    with pytest.raises(SpaceError):
        Choice([{"a": 1}])
