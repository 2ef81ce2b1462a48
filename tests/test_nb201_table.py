"""The NAS-Bench-201 table and its evaluator, against the data's README and brute force."""

from __future__ import annotations

import csv
import gzip
import itertools
import pickle

import numpy as np
import pytest
from conftest import require_data

from nasforge import pareto
from nasforge.errors import DataError, SpaceError, UnknownNameError
from nasforge.evaluators import EVALUATORS, Context
from nasforge.nb201table import load_table, non_dominated
from nasforge.spaces.nb201 import from_string

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.fixture
def data_dir() -> str:
    return str(require_data("nb201").parent)  # the data folder that holds nb201/; skips when it is absent


@pytest.fixture
def table(data_dir, monkeypatch):
    monkeypatch.setenv("NASFORGE_DATA", data_dir)
    return load_table()


def test_rows_match_the_file(table, data_dir):
    with gzip.open(f"{data_dir}/nb201/nb201.csv.gz", "rt") as f:
        rows = list(itertools.islice(csv.DictReader(f), 3))
    assert len(table) == 15_625
    for r in rows:
        got = table.row(r["arch"])
        assert got["index"] == int(r["index"]) and got["arch"] == r["arch"]
        assert got["acc12_cifar10_val"] == float(r["acc12_cifar10_val"])
        assert got["lat_ms_fpga"] == float(r["lat_ms_fpga"])


def test_lookups_agree_on_every_form_of_a_cell(table):
    i = table.index_of(BEST)
    assert table.index_of(from_string(BEST)) == table.index_of(dict(from_string(BEST))) == table.index_of(i) == i
    assert table.strings[i] == BEST and table.arch(i) == from_string(BEST)
    with pytest.raises(SpaceError):
        table.index_of("|nor_conv_3x3~0|")
    with pytest.raises(UnknownNameError, match="no column 'acc200'"):
        table.column("acc200")


def test_best_cell_is_the_readme_optimum(table):
    best = table.best("acc12_cifar10_val")
    assert round(best["acc12_cifar10_val"], 2) == 84.89 and best["arch"] == BEST
    assert np.sum(table.column("acc12_cifar10_val") >= 84.89 - 0.5) == 16  # README: 16 cells within 0.5 points
    assert table.best("-lat_ms_fpga")["lat_ms_fpga"] == table.column("lat_ms_fpga").min()


def test_constrained_best_is_the_brute_force_best_feasible_cell(table):
    best = table.best("acc12_cifar10_val", "lat_ms_fpga<=3")
    lat, acc = table.column("lat_ms_fpga"), table.column("acc12_cifar10_val")
    assert best["lat_ms_fpga"] <= 3
    assert best["acc12_cifar10_val"] == acc[lat <= 3].max() < acc.max()
    mask = table.feasible(["lat_ms_fpga<=3", "lat_ms_pixel3<10"])
    assert np.array_equal(mask, (lat <= 3) & (table.column("lat_ms_pixel3") < 10))


def test_true_front_has_37_points(table):
    front = table.pareto_front(["acc12_cifar10_val", "-lat_ms_pixel3"])
    assert len(front) == 37  # README; the two disconnected cells 1852 and 7001 tie and count once
    assert len(table.pareto_front(["acc12_cifar10_val", "lat_ms_pixel3"], ["max", "min"], keep_ties=True)) == 38
    # brute force: nothing in the table dominates a front cell
    acc, lat = table.column("acc12_cifar10_val"), table.column("lat_ms_pixel3")
    for i in front:
        assert not np.any((acc >= acc[i]) & (lat <= lat[i]) & ((acc > acc[i]) | (lat < lat[i])))
    assert table.index_of(BEST) in front


def test_non_dominated_matches_brute_force():
    assert non_dominated is pareto.non_dominated  # one filter for the table, the benchmark, studies and strategies
    rng = np.random.default_rng(0)
    F = rng.integers(0, 6, size=(300, 3)).astype(float)  # small integers: many ties
    brute = [i for i in range(len(F)) if not any(np.all(F[j] >= F[i]) and np.any(F[j] > F[i]) for j in range(len(F)))]
    assert non_dominated(F).tolist() == brute
    distinct = non_dominated(F, keep_ties=False)
    assert len({tuple(F[i]) for i in brute}) == len(distinct) and set(distinct) <= set(brute)
    assert np.flatnonzero(pareto.pareto_mask(F)).tolist() == brute
    assert non_dominated(np.zeros((0, 2))).tolist() == [] and non_dominated([[1.0, 2.0]]).tolist() == [0]


def test_table_evaluator(table, data_dir):
    ev = EVALUATORS.get("table")(data_dir=data_dir)
    arch = from_string(BEST)
    out = ev(arch, Context())
    assert out["acc12_cifar10_val"] == table.best("acc12_cifar10_val")["acc12_cifar10_val"]
    assert set(ev.cheap_metrics(arch)) == set(table.latency_columns) and len(table.latency_columns) == 27
    assert set(ev.metrics) >= {"acc12_cifar10_test", "lat_ms_fpga"}
    clone = pickle.loads(pickle.dumps(ev))  # workers get the settings, not the table
    assert len(pickle.dumps(ev)) < 1000 and clone(arch, Context()) == out


def test_table_is_read_once(table):
    assert load_table() is table


def test_missing_data_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("NASFORGE_DATA", str(tmp_path))
    (tmp_path / "nb201").mkdir()
    with pytest.raises(DataError, match="nb201.csv.gz"):
        load_table(tmp_path)
