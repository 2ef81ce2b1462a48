"""TinyNAS search-space optimisation on a toy mobilenet whose answer is known (and checked by brute force)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from nasforge.constraints import Constraint
from nasforge.cost.counts import costs
from nasforge.errors import ConstraintError, NasforgeError, SpaceError
from nasforge.spaces import Task, create_family
from nasforge.tinynas import optimise_space

TASK = Task((3, 32, 32), 10)


@pytest.fixture(scope="module")
def toy():
    # 4,096 archs (1,600 networks) in 4 sub-spaces: width {0.5, 1.0} x resolution {32, 64}
    return create_family("mobilenet", stages=[[8, 2], [16, 2]], depths=[1, 2], kernels=[3, 5], expands=[3, 6],
                         widths=[0.5, 1.0], resolutions=[32, 64], stem=8, first=8, head=32)


def brute_force(fam, limits):
    """Exact mean MACs of the feasible archs of every sub-space, over the whole grid."""
    cons = [Constraint.parse(c) for c in limits]
    feas = defaultdict(list)
    for a in fam.space.grid():
        c = costs(fam.layers(a, TASK))
        key = (a["width"], a["resolution"])
        feas[key]
        if all(k.ok(c) for k in cons):
            feas[key].append(c["macs"])
    return {k: (np.mean(v) if v else None) for k, v in feas.items()}


@pytest.mark.parametrize(
    "limits,best,empty",
    [
        # SRAM rules out resolution 64 (its smallest arch holds 32 KiB); at 32, the wider nets compute more
        (["sram<=30000B", "flash<=1MiB"], (1.0, 32), {(0.5, 64), (1.0, 64)}),
        # flash rules out width 1.0 (its smallest arch has 2,938 weights); at 0.5, the larger resolution wins
        (["sram<=1MiB", "flash<=2900B"], (0.5, 64), {(1.0, 32), (1.0, 64)}),
    ],
)
def test_picks_the_known_subspace(toy, limits, best, empty):
    res = optimise_space(toy, TASK, limits, n=150, seed=0)
    exact = brute_force(toy, limits)
    ranked = max((k for k, v in exact.items() if v is not None), key=lambda k: exact[k])
    assert ranked == best
    assert res.best is not None and (res.best.values["width"], res.best.values["resolution"]) == best
    got_empty = {(s.values["width"], s.values["resolution"]) for s in res.subspaces if not s.feasible}
    assert got_empty == empty == {k for k, v in exact.items() if v is None}
    # unranked sub-spaces come last and say so
    table = res.table()
    assert [r["rank"] for r in table] == [1, 2, None, None]
    assert all(r["feasible"] == 0 and r["score"] is None for r in table[2:])
    assert table[0]["mean_macs"] >= table[1]["mean_macs"]


def test_deterministic_and_common_random_numbers(toy):
    a = optimise_space(toy, TASK, ["sram<=1MiB"], n=40, seed=3)
    b = optimise_space(toy, TASK, ["sram<=1MiB"], n=40, seed=3)
    assert a.to_dict() == b.to_dict()
    # everything feasible: with the same block draws, width 1.0 never computes less than width 0.5
    by = {(s.values["width"], s.values["resolution"]): s for s in a.subspaces}
    assert (by[(1.0, 64)].macs >= by[(0.5, 64)].macs).all()
    assert by[(1.0, 64)].fraction == 1.0


def test_scores_and_plot(toy, tmp_path):
    res = optimise_space(toy, TASK, ["sram<=30000B"], n=30, score="p90")
    assert res.score == "p90" and res.best.score == pytest.approx(np.percentile(res.best.macs, 90))
    png = res.plot(tmp_path / "cdf.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(res.to_dict())
    assert optimise_space(toy, TASK, ["sram<=1B"], n=5).best is None  # nothing fits: reported, not raised
    assert optimise_space(toy, TASK, ["sram<=1B"], n=5).plot(tmp_path / "empty.png").exists()


def test_bad_input(toy):
    with pytest.raises(ConstraintError, match="cost metrics"):
        optimise_space(toy, TASK, ["latency_ms<=5"], n=5)
    with pytest.raises(ConstraintError, match="at least one limit"):
        optimise_space(toy, TASK, [], n=5)
    with pytest.raises(NasforgeError, match="unknown TinyNAS score"):
        optimise_space(toy, TASK, ["sram<=1MiB"], n=5, score="best")
    with pytest.raises(SpaceError, match="no dimension"):
        optimise_space(create_family("lenet"), TASK, ["sram<=1MiB"], n=5)


def test_cli(tmp_path, monkeypatch, capsys):
    from nasforge.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "t.json"
    cmd = ["tinynas", "optimise"]
    assert main([*cmd, "--n", "8", "--plot", str(tmp_path / "p.png"), "--out", str(out)]) == 0
    r = capsys.readouterr()
    assert "best sub-space" in r.out and (tmp_path / "p.png").exists()
    assert f"wrote the CDF plot to {tmp_path / 'p.png'}" in r.err and f"wrote the ranked table to {out}" in r.err
    assert json.loads(out.read_text())["constraints"] == ["sram<=256KiB", "flash<=1MiB"]
    # no plot unless asked: the working folder gets nothing
    assert main([*cmd, "--n", "4"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "t.json"]
    capsys.readouterr()
    # errors: one line on stderr in the shared form, exit 2, nothing of them on stdout
    assert main([*cmd, "--n", "2", "--limit", "sram<=1B"]) == 2
    r = capsys.readouterr()
    assert r.err.startswith("error: no sub-space") and r.err.count("\n") == 1 and "error" not in r.out
    assert main([*cmd, "--limit", "accuracy>=3"]) == 2
    r = capsys.readouterr()
    assert r.out == "" and r.err.startswith("error: ") and "cost metrics" in r.err and r.err.count("\n") == 1
    assert main([*cmd, "--n", "2", "--plot", str(tmp_path / "t.json" / "p.png")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot write")
