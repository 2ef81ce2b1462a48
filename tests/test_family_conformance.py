"""Family conformance, in the spirit of scikit-learn's estimator checks: every registered family, at its
``example_config()``, is checked against references by capability, so that registering a family tests it.

- ``layers`` against the built module: parameters equal ``numel()``, MACs equal ``FlopCounterMode``, and every layer is
  named after a module of the built network;
- the built network maps a batch of inputs to logits of the task's classes;
- ``graph``: a DAG from the single input to the output (the last node) whose node names are module names and whose
  weight shapes are those modules' weights;
- ``create_family(name, **config())`` and ``load_family(spec())`` rebuild the same space; the family pickles;
- ``canonical`` is idempotent and de-duplicates exactly: two archs have one canonical form iff they build one network;
- the supernet: with one path active it equals ``extract(arch)``, which is ``build(arch)`` with copied weights;
- a task the family cannot take (token ids) is a one-line error.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nasforge.errors import NasforgeError
from nasforge.space import Arch
from nasforge.spaces import FAMILIES, Task, create_family, load_family

NAMES = FAMILIES.names()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def family(name: str):
    return create_family(name, **FAMILIES.get(name).example_config())


def task_of(fam) -> Task:
    return fam.probe_task


def archs(fam, n: int = 4, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    sp = fam.space
    first = sp.validate({k: c.values[0] for k, c in sp.dims.items()})
    last = sp.validate({k: c.values[-1] for k, c in sp.dims.items()})
    return [first, last] + [sp.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("name", NAMES)
def test_costs_equal_numel_and_flopcounter(name):
    fam = family(name)
    task = task_of(fam)
    for a in archs(fam):
        model = fam.build(a, task).eval()
        layers = fam.layers(a, task)
        c = fam.costs(a, task)
        assert c["params"] == sum(p.numel() for p in model.parameters()), fam.describe(a)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(torch.zeros(1, *fam.input_shape(a, task)))
        assert c["macs"] == fc.get_total_flops() // 2, fam.describe(a)
        modules = dict(model.named_modules())
        assert all(s.name in modules for s in layers), [s.name for s in layers if s.name not in modules]


@pytest.mark.parametrize("name", NAMES)
def test_built_network_gives_logits(name):
    fam = family(name)
    task = task_of(fam)
    torch.manual_seed(0)
    for a in archs(fam, 2, seed=1):
        y = fam.build(a, task)(torch.randn(2, *fam.input_shape(a, task)))
        assert y.shape == (2, task.num_classes) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_graph_nodes_are_modules(name):
    fam = family(name)
    task = task_of(fam)
    for a in archs(fam, 2, seed=2):
        g = fam.graph(a, task)
        model = fam.build(a, task)
        modules = dict(model.named_modules())
        assert g.topological_order() == list(range(len(g)))
        # one input; the output is the last node (a cell's unread states are sinks too: they run, as in the network)
        assert g.sources == [0] and g.nodes[0].op == "input" and g.sinks[-1] == len(g) - 1
        for node in g.nodes[1:]:
            assert node.name in modules, node.name
            w = getattr(modules[node.name], "weight", None)
            assert node.weight == (None if w is None else tuple(w.shape)), node.name


@pytest.mark.parametrize("name", NAMES)
def test_config_and_spec_rebuild_the_family(name):
    fam = family(name)
    again = create_family(name, **fam.config())
    assert again.space == fam.space and again.config() == fam.config()
    loaded = load_family(fam.spec())
    assert type(loaded) is type(fam) and loaded.space == fam.space
    clone = pickle.loads(pickle.dumps(fam))
    a = archs(fam, 1)[-1]
    assert clone.layers(a, task_of(fam)) == fam.layers(a, task_of(fam))


@pytest.mark.parametrize("name", NAMES)
def test_canonical_form_deduplicates_exactly(name):
    fam = family(name)
    task = task_of(fam)
    rng = np.random.default_rng(3)
    for a in archs(fam, 6, seed=4):
        c = fam.canonical(a)
        assert fam.canonical(c) == c and fam.network_key(a) == c.key
        # change one dimension: the canonical forms agree exactly when the networks (their op graphs) do
        k = fam.space.names[int(rng.integers(len(fam.space.names)))]
        values = fam.space.dims[k].values
        raw = dict(a)
        raw[k] = values[(values.index(a[k]) + 1) % len(values)]
        b = fam.space.validate(raw)
        same_net = fam.graph(a, task).to_dict() == fam.graph(b, task).to_dict()
        assert (fam.network_key(a) == fam.network_key(b)) == same_net, (k, fam.describe(a))
        np.testing.assert_array_equal(fam.features(a), fam.features(fam.canonical(a)))


@pytest.mark.parametrize("name", NAMES)
def test_supernet_path_equals_extracted_network(name):
    fam = family(name)
    task = task_of(fam)
    torch.manual_seed(0)
    sup = fam.supernet(task).eval()
    for a in archs(fam, 3, seed=5):
        sup.set_active(a)
        x = torch.randn(2, *fam.input_shape(a, task))
        sub = sup.extract(a).eval()
        with torch.no_grad():
            torch.testing.assert_close(sup(x), sub(x), rtol=1e-5, atol=1e-5)
        plain = fam.build(a, task)
        plain.load_state_dict(sub.state_dict())  # the same module tree and weight shapes as build(arch)
        with torch.no_grad():
            torch.testing.assert_close(plain.eval()(x), sub(x))


@pytest.mark.parametrize("name", NAMES)
def test_a_task_the_family_cannot_take_is_one_line(name):
    fam = family(name)
    tokens = Task((12,), 5, dtype="int64", vocab_size=100)
    with pytest.raises(NasforgeError) as e:
        fam.accepts(tokens)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", NAMES)
def test_values_normalise_to_the_space_own(name):
    # an int for a float choice (or the reverse) is the same arch with the same key
    fam = family(name)
    a = archs(fam, 1)[-1]
    raw = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in a.items()}
    assert fam.arch(raw).key == a.key
