"""Property-based tests (hypothesis) of the readers of what users write: constraints, objectives, spaces, search files.

The contract, for any input: a valid object, or the project's one-line error (a ``NasforgeError`` whose message has no
newline), never another exception. Where a reader has a reference (the units of a constraint, the round trip of an
objective or a space), a valid result is also checked against it.

``NASFORGE_HYPOTHESIS_EXAMPLES`` sets the examples per test (default 200; ``benchmarks/bad_inputs.py`` runs more and
records how many ran per parser).
"""

from __future__ import annotations

import json
import math
import os
import string
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nasforge.config import SearchConfig
from nasforge.constraints import Constraint, Objective
from nasforge.errors import NasforgeError
from nasforge.metrics import METRICS
from nasforge.space import Space
from nasforge.textio import parse_kv, parse_yaml

EXAMPLES = int(os.environ.get("NASFORGE_HYPOTHESIS_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_line(e: NasforgeError) -> None:
    msg = str(e)
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)


# examples per reader: accepted (a valid object) and refused (a one-line error); written as JSON to the file that
# NASFORGE_HYPOTHESIS_TALLY names, for benchmarks/bad_inputs.py
TALLY: dict[str, Counter] = defaultdict(Counter)


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    path = os.environ.get("NASFORGE_HYPOTHESIS_TALLY")
    if path:
        Path(path).write_text(json.dumps({k: dict(v) for k, v in TALLY.items()}, indent=1))


def outcome(parse, value, reader: str):
    """``parse(value)``, or None after checking that the refusal is one line."""
    try:
        got = parse(value)
    except NasforgeError as e:
        one_line(e)
        TALLY[reader]["refused"] += 1
        return None
    TALLY[reader]["accepted"] += 1
    return got


# --- inputs -----------------------------------------------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8) | st.integers(), kids, max_size=4), max_leaves=20)
NAMES = sorted(METRICS) + ["lat_ms_fpga", "acc12_cifar10_val", "top1_acc", "x_bytes", "step_time_s", "nope"]
OPS = ["<=", ">=", "<", ">", "=", "==", "=<", "!="]
UNITS = ["", "K", "k", "M", "G", "T", "B", "KB", "kB", "MB", "GB", "KiB", "MiB", "GiB", "us", "ms", "s", "min", "%",
         "uJ", "mJ", "J", "parsec", "Mib"]  # fmt: skip
numbers = st.one_of(st.integers(-10**6, 10**30).map(str), st.floats(allow_nan=False).map(repr),
                    st.sampled_from(["1e999", "-0", ".5", "5.", "1e-400", "0x10", "1_000", "nan", "inf", "1,5"]))
constraint_like = st.builds(lambda sp1, m, sp2, op, n, u, sp3: f"{sp1}{m}{sp2}{op}{n}{u}{sp3}",
                            st.sampled_from(["", " ", "\t"]), st.sampled_from(NAMES), st.sampled_from(["", " "]),
                            st.sampled_from(OPS), numbers, st.sampled_from(UNITS), st.sampled_from(["", " ", "\n"]))
objective_like = st.builds(lambda d, sep, m: f"{d}{sep}{m}", st.sampled_from(["maximize", "minimize", "max", "min",
                           "+", "-", "", "maximise", "MAX"]), st.sampled_from(["", " ", ":", ": ", "  ", ","]),
                           st.sampled_from(NAMES + ["", "a,b", "val_acc -size", "1x", "é"]))  # fmt: skip
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)


# --- constraints --------------------------------------------------------------------------------------------------
@SETTINGS
@given(st.one_of(constraint_like, constraint_like.map(str.strip), texts, json_values))
def test_constraint_reader(text):
    c = outcome(Constraint.parse, text, "constraint")
    if c is not None:
        assert c.op in ("<=", ">=", "<", ">") and math.isfinite(c.value)
        assert Constraint.parse(c.text) == c  # its text reads back to itself


@SETTINGS
@given(st.sampled_from(NAMES), st.sampled_from(["<=", ">=", "<", ">"]), st.floats(0, 1e12), st.sampled_from(UNITS))
def test_constraint_units_against_the_table(name, op, number, unit):
    """A limit written with a unit is the number times the unit's scale, in the metric's base unit."""
    from nasforge.metrics import unit as metric_unit

    scales = {"bytes": {"": 1, "B": 1, "KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2,
                        "GiB": 1024**3},
              "ms": {"": 1, "us": 1e-3, "ms": 1, "s": 1e3, "min": 6e4},
              "s": {"": 1, "us": 1e-6, "ms": 1e-3, "s": 1, "min": 60},
              "percent": {"": 1, "%": 1}, "uJ": {"": 1, "uJ": 1, "mJ": 1e3, "J": 1e6}}  # fmt: skip
    count = {"": 1, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    table = scales.get(metric_unit(name), count)
    c = outcome(Constraint.parse, f"{name}{op}{number!r}{unit}", "constraint units")
    if unit in table:
        assert c is not None and c.metric == name and c.op == op
        assert math.isclose(c.value, number * table[unit], rel_tol=1e-12)
    else:
        assert c is None


# --- objectives ---------------------------------------------------------------------------------------------------
@SETTINGS
@given(st.one_of(objective_like, texts, json_values))
def test_objective_reader(text):
    o = outcome(Objective.parse, text, "objective")
    if o is not None:
        assert o.direction in ("maximize", "minimize") and o.metric.isidentifier()
        assert o.metric not in ("maximize", "minimize", "max", "min")
        assert Objective.parse(str(o)) == o  # 'maximize val_acc' reads back to itself


# --- spaces ---------------------------------------------------------------------------------------------------------
space_like = st.dictionaries(st.text(max_size=6) | st.integers(), st.lists(json_scalars, max_size=5) | json_values,
                             max_size=4)  # fmt: skip
# mostly valid: names to short lists of distinct scalars (an empty list, a NaN or a repeat here and there)
choices = st.lists(st.integers(-3, 300) | st.sampled_from(["conv3", "skip", "none"]) | st.booleans()
                   | st.floats(0, 2, allow_nan=False), min_size=1, max_size=4, unique_by=lambda v: (type(v), v))
space_valid = st.dictionaries(st.text(string.ascii_lowercase + "_", min_size=1, max_size=6), choices, min_size=1,
                              max_size=5)  # fmt: skip


@SETTINGS
@given(st.one_of(space_like, space_like.map(lambda d: {"dims": d}), json_values, space_valid,
                 space_valid.map(lambda d: {"dims": d})))
@example({"dims": {"_": [0], "dims": [0]}})  # a dimension called dims: once read as the wrapper
def test_space_reader(data):
    sp = outcome(Space.from_dict, data, "space")
    if sp is not None:
        assert sp.size == math.prod(len(c) for c in sp.dims.values()) and sp.size >= 1
        assert Space.from_dict(sp.to_dict()) == sp
        a = sp.sample(np.random.default_rng(0))
        assert sp.contains(a) and sp.validate(dict(a)).key == a.key


# --- search files ---------------------------------------------------------------------------------------------------
KEYS = ["study", "storage", "family", "family_config", "dataset", "data_dir", "evaluator", "evaluator_config",
        "strategy", "strategy_config", "constraints", "objectives", "cost_models", "artifacts", "budget", "seed",
        "workers", "threads", "bugdet", "name"]  # fmt: skip
SETTING_KEYS = ["name", "epochs", "lr", "momentum", "batch_size", "val_size", "train_subset", "population", "seed",
                "dataset", "space", "L", "colour"]  # fmt: skip
values = st.one_of(json_values, st.integers(-3, 3), st.sampled_from(["lenet", "train", "evolution", "size<=1M",
                   "maximize val_acc", "a,b", "", "-1"]))  # fmt: skip
sections = st.dictionaries(st.sampled_from(SETTING_KEYS), values, max_size=4)
search_like = st.dictionaries(st.sampled_from(KEYS), st.one_of(values, sections, st.lists(values, max_size=3)),
                              max_size=6)  # fmt: skip
# mostly valid files: the right keys with values of the right kind, each near its range's edge
train = st.fixed_dictionaries({"name": st.just("train")}, optional={
    "epochs": st.integers(-1, 3), "lr": st.floats(-0.1, 1) | st.just(0), "batch_size": st.integers(-1, 64),
    "momentum": st.floats(-0.5, 1.5), "val_size": st.integers(-1, 10), "train_subset": st.none() | st.integers(0, 9),
    "dataset": st.just("mnist"), "colour": st.just("red")})
search_valid = st.fixed_dictionaries({"study": st.sampled_from(["s", "a-b", "", "x y"])}, optional={
    "family": st.sampled_from(["lenet", "cell", {"name": "cell", "L": 2}, {"L": 2}]),
    "strategy": st.sampled_from(["grid", "random", {"name": "evolution", "population": 4},
                                 {"name": "random", "seed": -1}, {"name": "nsga2", "space": 1}]),
    "evaluator": st.sampled_from(["train", "table"]) | train,
    "constraints": st.lists(constraint_like, max_size=2) | constraint_like,
    "objectives": st.lists(objective_like, max_size=2), "budget": st.none() | st.integers(-2, 5),
    "seed": st.integers(-1, 3), "workers": st.integers(0, 3), "threads": st.none() | st.integers(-1, 2),
    "cost_models": st.lists(st.sampled_from([{"name": "latency", "source": "lut"}, {"source": "lut"}]), max_size=1),
})  # fmt: skip


def _yaml(data) -> str:
    try:
        return yaml.safe_dump(data, default_flow_style=False, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return str(data)


def check_search_config(cfg: SearchConfig) -> None:
    """What a config that the reader accepted guarantees to the code that builds the search."""
    assert isinstance(cfg.study, str) and cfg.study and isinstance(cfg.family, str) and isinstance(cfg.strategy, str)
    assert cfg.budget is None or (isinstance(cfg.budget, int) and cfg.budget >= 0)
    assert isinstance(cfg.seed, int) and cfg.seed >= 0 and cfg.workers >= 1
    for c in cfg.constraints:
        Constraint.parse(c)
    for o in cfg.objectives or ():
        Objective.parse(o)
    ev = cfg.evaluator_config
    if cfg.evaluator == "train":
        assert all(isinstance(ev.get(k, 1), int) and ev.get(k, 1) >= 1 for k in ("epochs", "batch_size", "val_size"))
        assert isinstance(ev.get("lr", 1.0), int | float) and ev.get("lr", 1.0) > 0
    assert not {"name", "space"} & set(cfg.strategy_config) and not {"dataset", "family"} & set(ev)


@SETTINGS
@given(st.one_of(search_like.map(_yaml), texts, st.text(alphabet=string.printable, max_size=80)))
def test_search_file_reader(text):
    cfg = outcome(SearchConfig.from_text, text, "search file (text)")
    if cfg is not None:
        check_search_config(cfg)


@SETTINGS
@given(st.one_of(search_like, search_valid))
def test_search_file_reader_on_structured_settings(data):
    """Settings as a search file holds them (maps, lists, numbers of every type), read through the same schema."""
    cfg = outcome(lambda d: SearchConfig.from_text(_yaml(d), "s.yaml"), data, "search file (settings)")
    if cfg is not None:
        check_search_config(cfg)


@SETTINGS
@given(texts)
def test_yaml_reader(text):
    doc = outcome(lambda t: parse_yaml(t, "file"), text, "yaml")
    if doc is not None:
        assert all(isinstance(v, int) and v >= 1 for v in doc.lines.values())


kv_like = st.builds(lambda k, eq, v: f"{k}{eq}{v}", st.sampled_from(["epochs", " lr ", "", "a b", "population"]),
                    st.sampled_from(["=", "==", ":", ""]), st.sampled_from(["3", "0.1", "[1, 2]", "true", "x=y", "",
                                                                            "NaN", "{", '"s"']))  # fmt: skip


@SETTINGS
@given(st.lists(texts | kv_like, max_size=4))
def test_key_value_reader(items):
    kv = outcome(lambda i: parse_kv(i, "--strategy-opt"), items, "key=value")
    if kv is not None:
        assert len(kv) == len(items) and all(k and k == k.strip() for k in kv)


def test_valid_search_file_reads_as_written():
    """The reference: a complete file reads into exactly the settings it holds (shorthands expanded)."""
    text = ("study: s\nfamily: {name: cell, L: 2}\nstrategy: {name: evolution, population: 8, seed: 3}\n"
            "evaluator: {name: train, epochs: 1, lr: 0.05}\nconstraints: size<=0.05MiB\n"
            "objectives: [maximize val_acc]\nbudget: 4\nworkers: 2\n")  # fmt: skip
    cfg = SearchConfig.from_text(text)
    assert (cfg.family, cfg.family_config, cfg.strategy, cfg.strategy_config) == ("cell", {"L": 2}, "evolution",
                                                                                 {"population": 8, "seed": 3})
    assert cfg.evaluator_config == {"epochs": 1, "lr": 0.05} and cfg.constraints == ["size<=0.05MiB"]
    assert (cfg.objectives, cfg.budget, cfg.workers) == (["maximize val_acc"], 4, 2)
