"""``nasforge rank``: the library against known orderings, the command in-process, bad input in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nasforge.cli import main
from nasforge.errors import NasforgeError, TrialFailed
from nasforge.evaluators import FunctionEvaluator
from nasforge.rank import Reference, correlations, rank, sample_distinct
from nasforge.space import Space
from nasforge.spaces import create_family
from nasforge.spaces.custom import BuilderFamily

NB = ["--family", "nb201", "--family-opt", "C=4", "--family-opt", "N=1"]


def _ops(arch) -> int:
    return sum(v.startswith("nor_conv") for v in arch.values())


def test_rank_against_a_known_order():
    fam = create_family("nb201", C=4, N=1)
    ref = Reference(FunctionEvaluator(lambda a: {"acc": float(_ops(a)) + 0.01 * len(a.key)}, ("acc",)), "acc", "acc")
    good = FunctionEvaluator(lambda a: {"s": float(_ops(a))}, ("s",), ("maximize s",))
    bad = FunctionEvaluator(lambda a: {"s": float(_ops(a))}, ("s",), ("minimize s",))  # smaller s ranks higher
    r = rank(fam, good, ref, 12, seed=1)
    assert r.n == 12 and r.failed == 0 and r.spearman > 0.9 and r.kendall > 0.8
    assert rank(fam, bad, ref, 12, seed=1).spearman == pytest.approx(-r.spearman)
    assert [row["key"] for row in r.rows] == [a.key for a in sample_distinct(fam, 12, seed=1)]
    d = r.to_dict()
    assert d["archs"] == 12 and d["eval_time_s"] >= 0 and json.dumps(d)


def test_a_failed_score_ranks_last_and_a_missing_reference_is_left_out():
    rho, _, tau, _ = correlations([None, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0])
    assert rho == pytest.approx(1.0) and tau == pytest.approx(1.0)
    rho, *_ = correlations([3.0, 1.0, 2.0, 9.0], [3.0, 1.0, 2.0, None])
    assert rho == pytest.approx(1.0)
    assert math.isnan(correlations([1.0, 1.0], [1.0, 2.0])[0])  # a constant score ranks nothing

    def fails_on_none(a):
        if a["e1_0"] == "none":
            raise TrialFailed("no path")
        return {"s": float(_ops(a))}

    fam = create_family("nb201", C=4, N=1)
    ref = Reference(FunctionEvaluator(lambda a: {"acc": 1.0 * _ops(a)}, ("acc",)), "acc", "acc")
    r = rank(fam, FunctionEvaluator(fails_on_none, ("s",), ("maximize s",)), ref, 20, seed=0)
    assert r.failed == sum(row["error"] == "no path" for row in r.rows) > 0 and r.n == 20


def test_sample_distinct_is_seeded_and_says_when_the_space_is_too_small():
    fam = create_family("nb201", C=4, N=1)
    a, b = sample_distinct(fam, 25, seed=3), sample_distinct(fam, 25, seed=3)
    assert a == b and len({fam.network_key(x) for x in a}) == 25
    tiny = BuilderFamily(Space({"w": [1, 2]}), lambda arch, task: None)
    with pytest.raises(NasforgeError, match="fewer than 3 distinct"):
        sample_distinct(tiny, 3)


def test_cli_table_json(nb201, capsys):
    assert main(["rank", *NB, "--evaluator", "synflow", "--archs", "4", "--seed", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["archs"] == 4 and doc["evaluator"] == "synflow" and -1 <= doc["spearman"] <= 1
    assert doc["reference"] == "nb201 table acc12_cifar10_val" and len(doc["rows"]) == 4


def test_cli_train_reference_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.normal(size=(60, 1, 8, 8)).astype("float32"), y_train=np.arange(60) % 3)
    args = ["rank", *NB, "--evaluator", "naswot", "--evaluator-opt", "batch_size=8", "--evaluator-opt", "device=cpu",
            "--archs", "3", "--reference", "train", "--dataset", str(tmp_path / "d.npz"), "--epochs", "1",
            "--reference-opt", "device=cpu"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "rank correlation" in out and "Spearman" in out and "trained val_acc (1 epoch)" in out


@pytest.mark.parametrize("args,msg", [
    (["--evaluator", "nosuch"], "nosuch"),
    (["--archs", "1"], "at least 2"),
    (["--column", "acc12_mars_val"], "no column"),
    (["--reference", "oracle"], "table or train"),
])  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2(nb201, capsys, args, msg):
    assert main(["rank", *NB, *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_cli_table_reference_needs_nb201(capsys):
    assert main(["rank", "--family", "lenet", "--archs", "3"]) == 2
    assert "needs the nb201 family" in capsys.readouterr().err
