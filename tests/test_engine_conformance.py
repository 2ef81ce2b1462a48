"""Conformance of every registered evaluator and executor, driven by the registries: registering one tests it."""

import json
import math
import pickle

import pytest
from conftest import require_data

from nasforge.constraints import Objective
from nasforge.evaluators import EVALUATORS, Context, FunctionEvaluator, create_evaluator
from nasforge.executors import EXECUTORS, Job, run_job
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.task import Task

# untrained supernet weights meet the evaluator contract as well as trained ones (made once, at collection)
LENET_SUPERNET = create_family("lenet").supernet(MNIST_TASK).state_dict()
# how to build each registered evaluator cheaply: (family, data set it needs, options)
BUILD = {
    "train": ("lenet", "mnist", dict(dataset="mnist", epochs=1, train_subset=256, test_subset=128, val_size=128)),
    "table": ("nb201", "nb201", {}),
    "supernet": ("lenet", "mnist", dict(dataset="mnist", train_subset=256, val_size=128, weights=LENET_SUPERNET)),
    "inherit": ("lenet", "mnist", dict(dataset="mnist", epochs=1, scratch_epochs=1, train_subset=256, test_subset=128,
                                       val_size=128)),
    "synflow": ("lenet", "mnist", {}),
    "hypernet": ("nb201", "fashion-mnist", dict(dataset="fashion-mnist", ghn="untrained", train_subset=256,
                                                 val_size=128)),
    **{p: ("lenet", "mnist", dict(dataset="mnist", train_subset=256, batch_size=16))
       for p in ("snip", "grad_norm", "naswot", "jacob_cov")},
}
UNTIMED = ("train_time_s", "eval_time_s", "proxy_time_s")  # wall times differ between two runs of the same trial


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_evaluator_contract(name):
    if name not in BUILD:
        pytest.fail(f"evaluator {name!r} is registered but BUILD does not say how to make a cheap one")
    family, data, options = BUILD[name]
    require_data(data)
    fam = create_family(family)
    ev = create_evaluator(name, family=fam, **options)
    # declared before anything runs
    assert ev.metrics and set(ev.cheap_metric_names) <= set(ev.metrics)
    assert all(Objective.parse(o).metric in ev.metrics for o in ev.default_objectives)
    task = ev.task()
    assert isinstance(task, Task)
    json.dumps(ev.config())
    # returns what it declares, finite, reproducible from the seed, the same after pickling (a worker's copy)
    arch = fam.space.at(123 % fam.space.size)
    out = ev(arch, Context(seed=3, task=task))
    assert set(out) == set(ev.metrics) and all(math.isfinite(v) for v in out.values())
    again = pickle.loads(pickle.dumps(ev))(arch, Context(seed=3, task=task))
    assert {k: v for k, v in again.items() if k not in UNTIMED} == {k: v for k, v in out.items() if k not in UNTIMED}
    cheap = ev.cheap_metrics(arch)
    assert set(cheap) == set(ev.cheap_metric_names) and all(cheap[k] == out[k] for k in cheap)


def score(arch, ctx):
    if arch["fc1"] == 256:
        raise ValueError("no")
    return {"val_acc": arch["fc1"] + ctx.seed % 7}


@pytest.mark.parametrize("name", EXECUTORS.names())
def test_executor_contract(name):
    ex = EXECUTORS.create(name)
    assert ex.slots >= 1
    fam = create_family("lenet")
    jobs = [Job(FunctionEvaluator(score), fam.space.at(i * 7), i, 1000 + i, MNIST_TASK) for i in range(6)]
    try:
        got = [f.result(timeout=120) for f in [ex.submit(j) for j in jobs]]
    finally:
        ex.shutdown()
        ex.shutdown()
    want = [run_job(j) for j in jobs]
    assert [(o.number, o.metrics, o.error) for o in got] == [(o.number, o.metrics, o.error) for o in want]
    assert any(o.error for o in got) and any(o.metrics for o in got)
