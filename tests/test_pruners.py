"""Pruners: decisions on synthetic curves against hand-worked ones, and the engine around them (a pruned trial is
recorded with its curve; resume replays the same decisions; a process pool works; the CLI refuses bad settings in one
line; every strategy copes with pruned trials)."""

import hashlib

import pytest

from nasforge.config import SearchConfig, build_pruner
from nasforge.errors import NasforgeError, StorageError
from nasforge.evaluators.base import Evaluator
from nasforge.executors import ProcessPool
from nasforge.pruners import PRUNERS, Curve, create_pruner
from nasforge.space import Space
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.strategies import STRATEGIES, create_strategy
from nasforge.study import Study
from nasforge.trial import Result, State


def curve(number, *values, key=None, complete=True, start=1):
    """A finished trial's curve: ``values`` at steps start, start+1, ..."""
    return Curve(number, key or f"k{number}", tuple((start + i, float(v)) for i, v in enumerate(values)), complete)


# --- median: hand-worked --------------------------------------------------------------------------------------------
A, B = curve(0, 10, 20, 30), curve(1, 30, 40, 50)
C = curve(2, 100, complete=False)  # pruned: does not count for the median rule
D = curve(3, 0, 5, 70)


def test_median_hand_worked():
    med = create_pruner("median", n_startup_trials=2)
    # step 1: complete values 10 and 30, median 20 (C, pruned, is left out)
    assert med.should_prune(1, 15.0, [A, B, C]) is True
    assert med.should_prune(1, 20.0, [A, B, C]) is False  # equal to the median: goes on
    assert med.should_prune(1, 25.0, [A, C]) is False  # one complete trial < n_startup_trials = 2
    assert med.should_prune(4, 0.0, [A, B]) is False  # nobody reported step 4
    # step 3 with three complete: 30, 50, 70 -> median 50
    assert med.should_prune(3, 49.0, [A, B, D]) is True
    assert med.should_prune(3, 50.0, [A, B, D]) is False
    # step 2 with two complete: 20, 40 -> median 30 (the mean of the middle two)
    assert med.should_prune(2, 29.0, [A, B]) is True and med.should_prune(2, 31.0, [A, B]) is False


def test_median_warmup_interval_and_min_trials():
    warm = create_pruner("median", n_startup_trials=0, n_warmup_steps=2)
    assert warm.should_prune(1, -1.0, [A, B]) is False  # warming up
    assert warm.should_prune(2, -1.0, [A, B]) is True  # 20, 40 -> 30
    every2 = create_pruner("median", n_startup_trials=0, interval_steps=2)
    assert every2.should_prune(1, -1.0, [A, B]) is False  # steps 0, 2, 4, ... are judged
    assert every2.should_prune(2, -1.0, [A, B]) is True
    two = create_pruner("median", n_startup_trials=0, n_min_trials=3)
    assert two.should_prune(1, -1.0, [A, B]) is False and two.should_prune(1, -1.0, [A, B, D]) is True


# --- ASHA: hand-worked ----------------------------------------------------------------------------------------------
# five finished trials at rung 1 (steps 1, 2, 3 reported by two of them, which reached rung 3)
RUNG = [curve(0, 0.5, 0.5, 0.55), curve(1, 0.7), curve(2, 0.6, complete=False), curve(3, 0.2, complete=False),
        curve(4, 0.9, 0.9, 0.95)]  # fmt: skip


def test_asha_hand_worked():
    asha = create_pruner("asha", min_resource=1, reduction_factor=3)  # rungs 1, 3, 9, 27, ...
    # rung 1 with the new value: six values, keep the top 6 // 3 = 2: 0.9 and the best of the rest
    assert asha.should_prune(1, 0.8, RUNG) is False  # 0.9, 0.8 | 0.7 ...
    assert asha.should_prune(1, 0.75, RUNG) is False  # 0.9, 0.75 | 0.7 ...
    assert asha.should_prune(1, 0.65, RUNG) is True  # 0.9, 0.7 | 0.65 ...
    assert asha.should_prune(1, 0.7, RUNG) is False  # tied with 0.7 for second: the running trial goes on
    assert asha.should_prune(2, 0.0, RUNG) is False  # not a rung
    # rung 3: reached by trials 0 (0.55) and 4 (0.95); three values keep 3 // 3 = 1
    assert asha.should_prune(3, 0.9, RUNG) is True
    assert asha.should_prune(3, 0.96, RUNG) is False
    # the first trial at a rung always goes on; the second (n = 2 < η) only if it is the best so far
    assert asha.should_prune(1, 0.0, []) is False
    assert asha.should_prune(1, 0.4, [curve(0, 0.5)]) is True
    assert asha.should_prune(1, 0.5, [curve(0, 0.5)]) is False
    assert asha.should_prune(9, -1.0, []) is False and asha.should_prune(9, -1.0, [curve(0, *[1] * 9)]) is True
    capped = create_pruner("asha", max_resource=9)  # a trial at its full budget is not stopped at its last step
    assert capped.should_prune(9, -1.0, [curve(0, *[1] * 9)]) is False


def test_asha_rungs():
    asha = create_pruner("asha", min_resource=2, reduction_factor=2, min_early_stopping_rate=1)  # rungs 4, 8, 16
    assert [s for s in range(1, 20) if asha.is_rung(s)] == [4, 8, 16]
    assert [s for s in range(1, 30) if create_pruner("asha").is_rung(s)] == [1, 3, 9, 27]
    assert [s for s in range(1, 30) if create_pruner("asha", max_resource=9).is_rung(s)] == [1, 3]


# --- Hyperband: hand-worked -----------------------------------------------------------------------------------------
def test_hyperband_brackets_hand_worked():
    hb = create_pruner("hyperband", min_resource=1, max_resource=9, reduction_factor=3)
    # s_max = 2: brackets b = 0, 1, 2 start at 1, 3, 9 (9 = max: never prunes); weights ⌈3/(s+1)·3^s⌉, s = 2 - b
    assert hb.s_max == 2 and hb.weights() == [9, 5, 3]
    # the bracket comes from a hash of the arch key: fixed for a key
    assert [hb.bracket(str(i)) for i in range(10)] == [0, 0, 2, 2, 0, 1, 2, 0, 0, 2]
    share = [sum(hb.bracket(f"a{i}") == b for i in range(3400)) / 3400 for b in range(3)]
    assert share == pytest.approx([9 / 17, 5 / 17, 3 / 17], abs=0.03)
    # keys "0", "1" in bracket 0 (rungs 1, 3); "5", "11" in bracket 1 (rung 3); "2", "3" in bracket 2 (no rung)
    assert [hb.bracket(k) for k in ("0", "1", "5", "11", "2", "3")] == [0, 0, 1, 1, 2, 2]
    hist = [curve(0, 0.9, 0.9, 0.9, key="1"), curve(1, 0.95, 0.95, 0.95, key="11"),
            curve(2, 0.99, 0.99, 0.99, key="3")]  # fmt: skip
    assert hb.should_prune(1, 0.1, hist, key="0") is True  # against "1" only (0.9): n = 2 keeps 1
    assert hb.should_prune(1, 0.92, hist, key="0") is False  # better than "1"; "11" and "3" are not its peers
    assert hb.should_prune(1, 0.1, hist, key="5") is False  # bracket 1 has no rung at 1
    assert hb.should_prune(3, 0.94, hist, key="5") is True  # against "11" (0.95)
    assert hb.should_prune(3, 0.1, hist, key="2") is False  # bracket 2 never prunes
    assert create_pruner("hyperband").with_steps(9).config() == hb.config()  # the evaluator's epochs fill it


def test_hyperband_needs_max_resource():
    with pytest.raises(NasforgeError, match="max_resource"):
        create_pruner("hyperband").with_steps(None)
    with pytest.raises(NasforgeError, match="at least min_resource"):
        create_pruner("hyperband", min_resource=3, max_resource=2)


def test_none_never_prunes_and_registry():
    assert PRUNERS.names() == ["asha", "hyperband", "median", "none"]
    assert create_pruner("none").should_prune(1, -1e9, [curve(0, 1.0)]) is False


# --- the engine -----------------------------------------------------------------------------------------------------
def quality(arch) -> float:
    return 90 + arch["conv1_ch"] / 3 + arch["fc1"] / 100 - arch["conv2_k"] / 10


class Curves(Evaluator):
    """A deterministic stand-in for training: per epoch, the arch's quality (plus a little noise fixed by the arch, so
    that no two archs tie) minus a shrinking gap; the ranks never change between epochs. ``interrupt_at`` raises
    Ctrl-C inside that call."""

    name = "curves"
    metrics = ("val_acc",)

    def __init__(self, epochs=9, interrupt_at=None):
        self.epochs, self.interrupt_at, self.calls = epochs, interrupt_at, []

    def __call__(self, arch, ctx):
        self.calls.append(arch.key)
        v = 0.0
        for e in range(1, self.epochs + 1):
            if self.interrupt_at is not None and len(self.calls) == self.interrupt_at and e == 2:
                raise KeyboardInterrupt
            noise = int(hashlib.sha256(arch.key.encode()).hexdigest()[:4], 16) / 65536 - 0.5
            v = quality(arch) - 20 / e + noise
            ctx.report(e, val_acc=v)
        return {"val_acc": v}

    def config(self):
        return {"epochs": self.epochs}


@pytest.fixture
def lenet():
    return create_family("lenet")


def run(url, name, fam, ev, pruner="asha", budget=30, **kw):
    strategy = create_strategy("random", fam.space, seed=1)
    p = None if pruner is None else create_pruner(pruner)
    return Study.open(name, url).run(fam, strategy, ev, task=MNIST_TASK, budget=budget, pruner=p, **kw)


def outcome(study):
    return {t.arch.key: (t.state, t.metrics, t.curve) for t in study.trials()}


def test_pruned_trial_recorded_with_curve_and_told(tmp_path, lenet):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    full = run(url, "full", lenet, Curves(), pruner=None)
    s = run(url, "asha", lenet, Curves())
    pruned = s.trials([State.PRUNED])
    assert 10 <= len(pruned) < 30 and s.config["pruner"] == {"name": "asha", "min_resource": 1,
                                                              "reduction_factor": 3, "min_early_stopping_rate": 0,
                                                              "max_resource": 9}  # fmt: skip
    for t in pruned:
        last = t.curve[-1]
        assert last["step"] in (1, 3) and t.metrics == {"val_acc": last["val_acc"]} and t.error is None
        assert t.curve == full_curve(full, t)[: len(t.curve)]  # the same training, cut short
        r = t.result(s.objectives())
        assert r.state == State.PRUNED and not r.ok and r.score is None and r.metrics == t.metrics
    # ranks never change between epochs, so the best survives every rung
    assert s.best().arch.key == full.best().arch.key
    spent = sum(len(t.curve) for t in s.trials())
    assert spent < sum(len(t.curve) for t in full.trials()) / 2
    # the report draws the stopped trials' curves too (dotted): with no complete trial they are the whole plot
    from nasforge.report import _curves_plot

    assert _curves_plot([], s.objectives()[0]) is None and _curves_plot([], s.objectives()[0], pruned) is not None


def full_curve(full, t):
    return next(x.curve for x in full.trials() if x.arch.key == t.arch.key)


@pytest.mark.parametrize("pruner", ["asha", "hyperband", "median"])
def test_resume_replays_the_same_decisions(tmp_path, lenet, pruner):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run(url, "cut", lenet, Curves(interrupt_at=12), pruner=pruner)
    assert [t.state for t in Study.open("cut", url).trials()].count(State.RUNNING) == 1
    resumed = run(url, "cut", lenet, Curves(), pruner=pruner)
    whole = run(url, "whole", lenet, Curves(), pruner=pruner)
    assert outcome(resumed) == outcome(whole)
    assert resumed.best().arch.key == whole.best().arch.key and len(whole.trials([State.PRUNED])) > 0


def test_resume_with_another_pruner_is_refused(tmp_path, lenet):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    run(url, "p", lenet, Curves(), budget=5)
    for other in ("median", None):
        with pytest.raises(StorageError, match="pruner"):
            run(url, "p", lenet, Curves(), pruner=other, budget=6)
    run(url, "q", lenet, Curves(), pruner=None, budget=3)
    with pytest.raises(StorageError, match="pruner"):
        run(url, "q", lenet, Curves(), budget=4)
    assert "pruner" not in Study.open("q", url).config  # a study without one records nothing (older ones compare)


def test_process_pool(tmp_path, lenet):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    serial = run(url, "s", lenet, Curves(epochs=3), budget=12)
    pooled = run(url, "p", lenet, Curves(epochs=3), budget=12, executor=ProcessPool(2))
    assert pooled.trials([State.PRUNED]) and all(t.curve for t in pooled.trials())
    assert pooled.best().arch.key == serial.best().arch.key  # the best leads at every rung, whatever the timing


# --- strategies and the command line --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_copes_with_pruned_trials(name):
    space = Space({"a": [1, 2, 3], "b": ["x", "y"], "c": [0.5, 1.5, 2.5, 3.5]})
    fast = {"predictor": {"steps": 20, "warm_steps": 5, "members": 2, "hidden": 8, "initial": 3},
            "reinforce": {"hidden": 8, "sample_batch": 4}, "nsga2": {"population": 4}, "evolution": {"population": 4}}
    st = create_strategy(name, space, seed=0, **fast.get(name, {}))
    seen = []
    for i in range(16):
        (a,) = st.ask(1)
        seen.append(a.key)
        pruned = i % 2 == 0
        st.tell(a, Result(State.PRUNED, None, {"val_acc": 1.0}) if pruned else Result(State.COMPLETE, (float(i),)))
    assert len(set(seen)) == 16


def test_cli_bad_pruner_is_one_line(tmp_path, capsys):
    from nasforge.cli import main

    base = ["search", "--family", "lenet", "--budget", "1", "--storage", f"sqlite:///{tmp_path}/db.sqlite", "-q"]
    for extra, msg in (
        (["--pruner", "nope"], "unknown pruner 'nope'; known: asha, hyperband, median, none"),
        (["--pruner", "asha", "--pruner-opt", "eta=3"], "pruner 'asha' has no option 'eta'"),
        (["--pruner", "asha", "--pruner-opt", "reduction_factor=1"], "reduction_factor must be an integer >= 2"),
    ):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "db.sqlite").exists()


def test_search_file_pruner():
    cfg = SearchConfig.from_text("study: s\nfamily: lenet\npruner: {name: asha, reduction_factor: 2}\n")
    assert (cfg.pruner, cfg.pruner_config) == ("asha", {"reduction_factor": 2})
    assert build_pruner(cfg).config()["reduction_factor"] == 2
    bad = SearchConfig.from_text("study: s\nfamily: lenet\npruner:\n  name: asha\n  eta: 2\n", "s.yaml")
    with pytest.raises(NasforgeError, match=r"s.yaml.*has no option 'eta'"):
        build_pruner(bad)


def test_cli_search_with_pruner_and_resume(mnist, tmp_path, capsys):
    from nasforge.cli import main

    db = f"sqlite:///{tmp_path}/db.sqlite"
    args = ["search", "--family", "lenet", "--dataset", mnist, "--strategy", "random", "--budget", "4", "--epochs", "3",
            "--train-subset", "200", "--val-size", "100", "--test-subset", "50", "--threads", "1", "--study", "p",
            "--storage", db, "-q"]  # fmt: skip
    assert main([*args, "--pruner", "asha", "--pruner-opt", "reduction_factor=2"]) == 0
    s = Study.open("p", db)
    assert s.config["pruner"]["reduction_factor"] == 2 and s.config["pruner"]["max_resource"] == 3
    assert all(t.curve for t in s.trials()) and {t.state for t in s.trials()} <= {State.COMPLETE, State.PRUNED}
    capsys.readouterr()
    assert main([*args, "--pruner", "median"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pruner" in err and len(err.splitlines()) == 1, err
