import math
import os
import sqlite3

import pytest

from nasforge.errors import ConstraintError, NasforgeError, StorageError
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
    st = Storage(url)
    st.study_id("p")  # creates the database and the study
    st.close()
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
    Storage(url).study_id("exists")
    with pytest.raises(StorageError, match="no study 'nope'.*exists"):
        Study.open("nope", url, create=False)


def test_process_pool_gives_serial_results(tmp_path, lenet):
    serial = run(Study.open("s", "sqlite://"), lenet, fake_acc)
    pooled = run(Study.open("p", f"sqlite:///{tmp_path}/db.sqlite"), lenet, fake_acc, executor=ProcessPool(2))
    assert {t.arch.key: t.metrics for t in serial.trials()} == {t.arch.key: t.metrics for t in pooled.trials()}
    assert len({t.worker for t in pooled.trials([State.COMPLETE])}) >= 1


def test_storage_lists_studies(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    for name in ("a", "b"):
        Storage(url).study_id(name)
    assert Storage(url).study_names() == ["a", "b"]


def test_opening_a_new_study_writes_nothing_until_a_run_is_accepted(tmp_path, lenet):
    url = f"sqlite:///{tmp_path}/sub/db.sqlite"
    s = Study.open("a", url)
    assert s.trials() == [] and s.config == {} and not (tmp_path / "sub").exists()
    with pytest.raises(NasforgeError, match="no arch of the 729"):
        run(s, lenet, fake_acc, constraints=["size<=0.001MiB"])  # refused: nothing can meet it
    assert not (tmp_path / "sub").exists()
    run(s, lenet, fake_acc)
    assert Storage(url).study_names() == ["a"] and Study.open("a", url, create=False).trials()


@pytest.mark.parametrize("kw", [{"objectives": ["maximize accuracy"]}, {"constraints": ["flops<=1"]}])
def test_a_name_an_undeclaring_evaluator_never_returns_stops_the_run_at_the_first_result(kw, lenet):
    """A plain function declares no metrics, so the name cannot be checked up front; its first result shows it."""
    s = Study.open("u", "memory://")
    with pytest.raises(NasforgeError, match="unknown metric '(accuracy|flops)'.*this run has .*val_acc"):
        run(s, lenet, fake_acc, strategy="random", budget=50, **kw)
    assert len(s.trials()) == 1  # the one evaluation is kept


# --- study names, storage backends ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a/b", "..", "../x", "", "  ", "x\ny", "a\\b"])
def test_bad_study_names_refused_in_one_line(name, tmp_path):
    with pytest.raises(StorageError, match="is not allowed") as e:
        Study.open(name, f"sqlite:///{tmp_path}/db.sqlite")
    assert "\n" not in str(e.value)
    with pytest.raises(StorageError, match="is not allowed"):
        Study.open(name, "memory://")


def test_memory_storage_gives_sqlite_results_and_resumes(lenet):
    sql = run(Study.open("p", "sqlite://"), lenet, fake_acc, strategy="random", budget=60, sseed=2)
    mem = Storage("memory://")
    run(Study.open("p", mem), lenet, fake_acc, strategy="random", budget=25, sseed=2)
    got = run(Study.open("p", mem), lenet, fake_acc, strategy="random", budget=60, sseed=2)  # resumed: replayed
    assert [(t.arch.key, t.state, t.metrics, t.costs) for t in got.trials()] == [
        (t.arch.key, t.state, t.metrics, t.costs) for t in sql.trials()
    ]
    assert got.best().number == sql.best().number and Storage("memory://").study_names() == []
    got.trials()[0].metrics["val_acc"] = -1.0  # callers get copies
    assert got.trials()[0].metrics["val_acc"] != -1.0
    with pytest.raises(StorageError, match="one process"):
        import pickle

        pickle.dumps(mem)


# --- the staged loop's pieces -----------------------------------------------------------------------------------
class Folded(type(create_family("lenet"))):
    """LeNet pretending fc2 is not read: archs differing only in fc2 are one network (canonical fc2 = 32)."""

    def canonical(self, arch):
        return self.space.validate({**self.space.validate(arch), "fc2": 32})


def test_every_trial_is_canonical_and_a_repeated_network_is_a_strategy_error(lenet):
    from nasforge.study import StrategyError

    fam = Folded()
    s = Study.open("p", "sqlite://")
    with pytest.raises(StrategyError, match=r"proposed .*the same network as trial \d+") as e:
        run(s, fam, fake_acc, strategy="random", constraints=[], budget=300)
    assert "\n" not in str(e.value)
    trials = s.trials()
    assert trials and all(t.arch["fc2"] == 32 for t in trials) and len({t.arch.key for t in trials}) == len(trials)


def test_pricer_declares_prices_once_and_checks_declarations(lenet):
    from nasforge.evaluators import FunctionEvaluator
    from nasforge.metrics import COST_METRICS
    from nasforge.pricing import Pricer, cost_model

    calls = []

    def lat(arch):
        calls.append(arch.key)
        return {"lat": arch["fc1"] / 100}

    ev = FunctionEvaluator(fake_acc, metrics=("val_acc",))
    p = Pricer(lenet, MNIST_TASK, ev, [cost_model(lat, ("lat",))])
    assert p.cheap_names == set(COST_METRICS) | {"lat"} and p.free_names == set(COST_METRICS)
    a = lenet.space.at(5)
    assert p.cheap(a)["lat"] == a["fc1"] / 100 and p.cheap(a) is p.cheap(a) and calls == [a.key]
    assert set(p.only(lenet.space.at(6), ["size"])) == set(COST_METRICS) and calls == [a.key]
    with pytest.raises(ConstraintError, match="does not declare the metrics"):
        Pricer(lenet, MNIST_TASK, ev, [lat])
    with pytest.raises(NasforgeError, match="lack 'energy'"):
        Pricer(lenet, MNIST_TASK, ev, [cost_model(lat, ("lat", "energy"))]).cheap(a)


def test_gate_splits_constraints_by_when_they_can_be_checked(lenet):
    from nasforge.constraints import Constraint
    from nasforge.evaluators import FunctionEvaluator
    from nasforge.gate import Gate
    from nasforge.pricing import Pricer, cost_model

    p = Pricer(lenet, MNIST_TASK, FunctionEvaluator(fake_acc), [cost_model(lambda a: {"lat": 1.0}, ["lat"])])
    g = Gate([Constraint.parse(c) for c in ("size<=0.05MiB", "lat<=2", "val_acc>=90")], p)
    assert [str(c) for c in g.cheap] == ["size<=0.05MiB", "lat<=2"] and [str(c) for c in g.free] == ["size<=0.05MiB"]
    assert [str(c) for c in g.late] == ["val_acc>=90"] and g.late_ok({"val_acc": 91}) and not g.late_ok({})
    big = lenet.space.at(lenet.space.size - 1)
    assert [str(c) for c in g.violated(p.cheap(big))] == ["size<=0.05MiB"] and not g.feasible_predicate()(big)
    assert Gate([Constraint.parse("val_acc>=90")], p).feasible_predicate() is None


def test_without_analytic_costs_the_family_is_never_priced(lenet):
    from nasforge.pricing import cost_model

    class Unpriced(type(lenet)):
        def costs(self, arch, task, bits=32):
            raise AssertionError("analytic costs computed")

    fam = Unpriced()
    lat = cost_model(lambda a: {"latency_ms": a["fc1"] / 64}, ["latency_ms"])
    s = run(Study.open("p", "sqlite://"), fam, fake_acc, strategy="random", budget=20, analytic_costs=False,
            constraints=["latency_ms<=2"], cost_models=[lat])  # fmt: skip
    done = s.trials()
    assert len(done) == 20 and all(set(t.costs) == {"latency_ms"} and t.costs["latency_ms"] <= 2 for t in done)
    assert s.config["analytic_costs"] is False
    for cons, objs in ((["params<=1M"], None), ([], ["minimize macs"])):
        with pytest.raises(ConstraintError, match="analytic costs.*analytic_costs=False"):
            run(Study.open("q", "sqlite://"), fam, fake_acc, analytic_costs=False, constraints=cons,
                objectives=objs or ["maximize val_acc"])  # fmt: skip


def test_trial_result_is_the_one_rule():
    from nasforge.constraints import Objective
    from nasforge.space import Arch
    from nasforge.trial import Trial

    objs = [Objective.parse("maximize val_acc"), Objective.parse("minimize params")]
    t = Trial(0, Arch(x=1), State.COMPLETE, metrics={"val_acc": 90.0}, costs={"params": 10.0})
    assert t.result(objs).score == (90.0, -10.0) and t.result(objs).ok
    t.feasible = False
    assert t.result(objs).score == (90.0, -10.0) and not t.result(objs).ok
    assert Trial(0, Arch(x=1), State.COMPLETE, metrics={}, costs={"params": 1.0}).result(objs).score is None
    assert Trial(0, Arch(x=1), State.FAILED, metrics={"val_acc": 1.0}).result(objs[:1]).score is None


def test_jobs_travel_without_the_progress_callback_and_failures_become_outcomes():
    import pickle

    from nasforge.evaluators import FunctionEvaluator
    from nasforge.executors import Job, run_job
    from nasforge.space import Arch

    def boom(arch, ctx):
        raise ValueError("bad width")

    job = Job(FunctionEvaluator(fake_acc), Arch(conv1_ch=3, fc1=64, conv2_k=3), 4, 11, MNIST_TASK,
              progress=lambda *a: None)  # fmt: skip
    back = pickle.loads(pickle.dumps(job))
    assert back.progress is None and back.number == 4 and back.arch == job.arch
    assert run_job(job).metrics["val_acc"] == fake_acc(job.arch)["val_acc"]
    out = run_job(Job(FunctionEvaluator(boom), job.arch, 4, 11, MNIST_TASK))
    assert out.error.startswith("ValueError: bad width (test_study.py:") and out.metrics == {}


def test_objectives_default_to_the_evaluators(lenet):
    from nasforge.evaluators import FunctionEvaluator

    ev = FunctionEvaluator(lambda a: {"loss": a["fc1"] / 10}, metrics=("loss",), default_objectives=("minimize loss",))
    s = Study.open("p", "sqlite://").run(lenet, create_strategy("random", lenet.space), ev, task=MNIST_TASK, budget=5)
    assert s.config["objectives"] == ["minimize loss"] and s.best().metrics["loss"] == min(
        t.metrics["loss"] for t in s.trials()
    )


def test_study_records_how_to_come_back(tmp_path, lenet):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    s = run(Study.open("p", url), lenet, fake_acc, budget=3, constraints=[])
    cfg = s.config
    assert cfg["family_spec"] == {"name": "lenet", "config": {}} and cfg["task"]["input_shape"] == [1, 28, 28]
    assert cfg["artifacts"] == {"kind": "folder", "root": "db_artifacts"}
    again = Study.open("p", url)
    assert again.family().space.size == 729 and again.task() == MNIST_TASK
    with pytest.raises(StorageError, match="keeps its artifacts in"):
        run(Study.open("p", url), lenet, fake_acc, budget=3, constraints=[], artifacts=tmp_path / "elsewhere")
    # a record written before family_spec and artifacts existed is resumed, and gains them
    old = {k: v for k, v in cfg.items() if k not in ("family_spec", "artifacts")}
    s.storage.set_config(s.id, old)
    run(Study.open("p", url), lenet, fake_acc, budget=4, constraints=[])
    assert Study.open("p", url).config == cfg and len(Study.open("p", url).trials()) == 4


def test_a_single_objective_strategy_refuses_two_objectives(tmp_path):
    from nasforge.errors import ConstraintError
    from nasforge.space import Space
    from nasforge.spaces.custom import BuilderFamily
    from nasforge.strategies import create_strategy
    from nasforge.task import Task

    fam = BuilderFamily(Space({"w": [1, 2]}), lambda a, t: None, default_task=Task((1,), 2))
    study = Study.open("two", f"sqlite:///{tmp_path}/t.db")
    fn = lambda arch: {"a": 1.0, "b": 2.0}  # noqa: E731
    with pytest.raises(ConstraintError, match="optimises 1 objective, not 2") as e:
        study.run(fam, create_strategy("evolution", fam.space), fn, objectives=["max:a", "min:b"],
                  analytic_costs=False)
    assert "\n" not in str(e.value) and study.trials() == [] and study.config == {}  # refused: nothing recorded
    with pytest.raises(ConstraintError, match="given twice"):
        study.run(fam, create_strategy("nsga2", fam.space), fn, objectives=["max:a", "min:a"], analytic_costs=False)
    study.run(fam, create_strategy("nsga2", fam.space), fn, objectives=["max:a", "min:b"], analytic_costs=False)
    assert len(study.trials()) == 2


# --- names and files that could reach outside -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "/tmp/nasforge-abs-study", "..", "a/../../b"])
def test_study_names_cannot_leave_the_artifact_root(name, tmp_path, lenet):
    from nasforge.artifacts import ArtifactKey, FolderStore

    url = f"sqlite:///{tmp_path}/db/nasforge.db"
    with pytest.raises(StorageError, match="is not allowed") as e:
        run(Study.open(name, url), lenet, fake_acc)
    assert "\n" not in str(e.value)
    store = FolderStore(tmp_path / "db" / "art")
    with pytest.raises(NasforgeError):
        store.put(ArtifactKey(name, 0, "abc"), "model.pt", b"w")
    with pytest.raises(NasforgeError):
        store.get(ArtifactKey(name, 0, "abc"), "model.pt")
    with pytest.raises(NasforgeError):
        store.find("s", "../../*")
    # a study of that name in a database written by hand (or by an older version) is refused before it writes
    Storage(url).study_id("ok")
    con = sqlite3.connect(tmp_path / "db" / "nasforge.db")
    con.execute("INSERT INTO nasforge_studies (name, created_at, config) VALUES (?, 0, '{}')", (name,))
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="is not allowed"):
        run(Study.open(name, url, create=False), lenet, fake_acc)
    assert not (tmp_path / "x").exists() and not os.path.exists("/tmp/nasforge-abs-study")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]


def test_a_crafted_weights_file_is_a_one_line_refusal(tmp_path):
    import pickle

    from nasforge.artifacts import ArtifactKey, FolderStore, TrialArtifacts

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    store = FolderStore(tmp_path / "art")
    view = TrialArtifacts(store, ArtifactKey("s", 0, "abc"))
    view.put("model.pt", pickle.dumps(Boom()))
    with pytest.raises(NasforgeError, match="is not a weights file that nasforge loads") as e:
        view.load("model.pt")
    assert "\n" not in str(e.value) and not (tmp_path / "pwned").exists()
