import math
import sqlite3

import pytest

from nasforge.errors import ConstraintError, StorageError
from nasforge.executors import ProcessPool
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.storage import Storage
from nasforge.strategies import create_strategy
from nasforge.study import Study
from nasforge.trial import State

LIMIT = ["size<=0.05MiB"]


def fake_acc(arch, ctx=None):
    """A deterministic stand-in for training: a smooth function of the arch."""
    return {"val_acc": 90 + arch["conv1_ch"] / 3 + arch["fc1"] / 100 - arch["conv2_k"] / 10, "test_acc": 90.0}


class Counting:
    def __init__(self, fail_on=None, interrupt_at=None):
        self.calls = []
        self.fail_on = fail_on
        self.interrupt_at = interrupt_at

    def __call__(self, arch, ctx):
        self.calls.append(arch.key)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail_on and arch["conv1_ch"] == self.fail_on:
            from nasforge.errors import TrialFailed

            raise TrialFailed("loss became NaN at epoch 1")
        return fake_acc(arch)


@pytest.fixture
def lenet():
    return create_family("lenet")


def run(study, fam, ev, strategy="grid", **kw):
    kw.setdefault("constraints", LIMIT)
    return study.run(fam, create_strategy(strategy, fam.space, seed=kw.pop("sseed", 0)), ev, task=MNIST_TASK, **kw)


def test_practice_visits_729_and_trains_exactly_17(tmp_path, lenet):
    ev = Counting()
    s = run(Study.open("p", f"sqlite:///{tmp_path}/db.sqlite"), lenet, ev)
    trials = s.trials()
    assert len(trials) == 729 and len({t.arch.key for t in trials}) == 729
    assert len(ev.calls) == 17
    inf = [t for t in trials if t.state == State.INFEASIBLE]
    assert len(inf) == 712 and all(t.costs["size"] > 0.05 * 2**20 and not t.metrics for t in inf)
    best = s.best()
    assert best.metrics["val_acc"] == max(fake_acc(t.arch)["val_acc"] for t in trials if t.state == State.COMPLETE)


def test_failed_trial_is_recorded_and_search_goes_on(tmp_path, lenet):
    s = run(Study.open("p", f"sqlite:///{tmp_path}/db.sqlite"), lenet, Counting(fail_on=9))
    failed = s.trials([State.FAILED])
    assert len(failed) == 2 and all("NaN" in t.error for t in failed)
    assert len(s.trials([State.COMPLETE])) == 15


def test_non_finite_metric_fails_the_trial(tmp_path, lenet):
    s = run(Study.open("p", "sqlite://"), lenet, lambda a, c: {"val_acc": math.nan}, budget=300)
    assert all(t.state == State.FAILED and "non-finite" in t.error for t in s.trials([State.FAILED]))
    assert s.best() is None


def test_resume_after_interrupt_equals_uninterrupted(tmp_path, lenet):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    ev = Counting(interrupt_at=6)
    with pytest.raises(KeyboardInterrupt):
        run(Study.open("p", url), lenet, ev)
    s = Study.open("p", url)
    states = [t.state for t in s.trials()]
    assert states.count(State.COMPLETE) == 5 and states.count(State.RUNNING) == 1
    ev2 = Counting()
    run(Study.open("p", url), lenet, ev2)
    assert len(ev2.calls) == 12  # the running one again + the 11 never started; nothing finished is rerun
    ref = run(Study.open("ref", url), lenet, Counting())
    got = {t.arch.key: (t.state, t.metrics) for t in Study.open("p", url).trials()}
    want = {t.arch.key: (t.state, t.metrics) for t in ref.trials()}
    assert got == want


@pytest.mark.parametrize("strategy", ["random", "grid"])
def test_resume_replays_strategy(tmp_path, lenet, strategy):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    run(Study.open("a", url), lenet, fake_acc, strategy=strategy, budget=40, constraints=[], sseed=3)
    run(Study.open("a", url), lenet, fake_acc, strategy=strategy, budget=90, constraints=[], sseed=3)
    run(Study.open("b", url), lenet, fake_acc, strategy=strategy, budget=90, constraints=[], sseed=3)
    a = [t.arch.key for t in Study.open("a", url).trials()]
    b = [t.arch.key for t in Study.open("b", url).trials()]
    assert a == b and len(set(a)) == 90


def test_resume_with_other_settings_is_refused(tmp_path, lenet):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    run(Study.open("p", url), lenet, fake_acc, budget=10)
    with pytest.raises(StorageError, match="constraints"):
        run(Study.open("p", url), lenet, fake_acc, budget=10, constraints=["size<=0.06MiB"])
    assert len(Study.open("p", url).trials()) == 10


def test_impossible_constraint_refused_before_training(lenet):
    ev = Counting()
    with pytest.raises(ConstraintError, match=r"no arch of the 729 .* closest, c3k7-c12k7-fc64-32, has size=29.2 KiB"):
        run(Study.open("p", "sqlite://"), lenet, ev, constraints=["size<=0.001MiB"])
    assert ev.calls == []


def test_unknown_metric_refused(lenet):
    from nasforge.evaluators import FunctionEvaluator

    ev = FunctionEvaluator(fake_acc, metrics=("val_acc", "test_acc"))
    with pytest.raises(ConstraintError, match="unknown metric 'latency'"):
        run(Study.open("p", "sqlite://"), lenet, ev, constraints=["latency<=3"])


def test_constraint_on_measured_metric_marks_trial_infeasible(lenet):
    s = run(Study.open("p", "sqlite://"), lenet, fake_acc, constraints=["size<=0.05MiB", "val_acc<=92"])
    done = s.trials([State.COMPLETE])
    assert any(not t.feasible for t in done) and all(t.feasible == (t.metrics["val_acc"] <= 92) for t in done)
    assert s.best().metrics["val_acc"] <= 92


def test_pareto_two_objectives(lenet):
    s = run(Study.open("p", "sqlite://"), lenet, fake_acc, constraints=[], budget=200, strategy="random",
            objectives=["maximize val_acc", "minimize params"])  # fmt: skip
    front = s.pareto()
    done = s.completed()
    assert front
    for f in front:  # nothing strictly better on both
        assert not any(t.metrics["val_acc"] > f.metrics["val_acc"] and t.costs["params"] < f.costs["params"]
                       for t in done)  # fmt: skip


def test_corrupt_database_is_refused_and_untouched(tmp_path):
    p = tmp_path / "bad.db"
    p.write_bytes(b"this is not sqlite" * 100)
    before = p.read_bytes()
    with pytest.raises(StorageError, match="corrupt or not a database"):
        Study.open("p", f"sqlite:///{p}")
    assert p.read_bytes() == before


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    Study.open("p", url).storage.close()
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("UPDATE nasforge_meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="newer nasforge"):
        Study.open("p", url)


def test_foreign_database_is_refused(tmp_path):
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="not nasforge's"):
        Study.open("p", f"sqlite:///{tmp_path}/other.db")


def test_missing_study_for_reading(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    Study.open("exists", url)
    with pytest.raises(StorageError, match="no study 'nope'.*exists"):
        Study.open("nope", url, create=False)


def test_process_pool_gives_serial_results(tmp_path, lenet):
    serial = run(Study.open("s", "sqlite://"), lenet, fake_acc)
    pooled = run(Study.open("p", f"sqlite:///{tmp_path}/db.sqlite"), lenet, fake_acc, executor=ProcessPool(2))
    assert {t.arch.key: t.metrics for t in serial.trials()} == {t.arch.key: t.metrics for t in pooled.trials()}
    assert len({t.worker for t in pooled.trials([State.COMPLETE])}) >= 1


def test_storage_lists_studies(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    Study.open("a", url)
    Study.open("b", url)
    assert Storage(url).study_names() == ["a", "b"]
