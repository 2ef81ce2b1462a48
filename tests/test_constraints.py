import pytest

from nasforge.constraints import Constraint, Objective
from nasforge.errors import ConstraintError


@pytest.mark.parametrize(
    "text,metric,op,value",
    [
        ("size<=0.05MiB", "size", "<=", 0.05 * 2**20),
        ("size <= 52KB", "size", "<=", 52_000),
        ("macs<=300M", "macs", "<=", 300e6),
        ("params<50K", "params", "<", 50e3),
        ("latency_ms<=5", "latency_ms", "<=", 5.0),
        ("latency_ms<=500us", "latency_ms", "<=", 0.5),
        ("lat_ms_fpga<=3", "lat_ms_fpga", "<=", 3.0),
        ("peak_mem<=256KiB", "peak_mem", "<=", 256 * 1024),
        ("val_acc>=97.5", "val_acc", ">=", 97.5),
        ("macs<=1e6", "macs", "<=", 1e6),
    ],
)
def test_parse(text, metric, op, value):
    c = Constraint.parse(text)
    assert (c.metric, c.op) == (metric, op) and c.value == pytest.approx(value)


@pytest.mark.parametrize("bad", ["size<=abc", "size", "<=5", "size<=5parsecs", "macs<=5MiB", "size=5", "lat_ms<=3KiB"])
def test_malformed(bad):
    with pytest.raises(ConstraintError):
        Constraint.parse(bad)


def test_ok_and_violation():
    c = Constraint.parse("size<=0.05MiB")
    assert c.ok({"size": 52428.8}) and not c.ok({"size": 52429})
    assert not c.ok({}) and c.violation({"size": 52528.8}) == pytest.approx(100)


@pytest.mark.parametrize(
    "text,metric,direction",
    [
        ("maximize val_acc", "val_acc", "maximize"),
        ("minimize latency_ms", "latency_ms", "minimize"),
        ("max:acc", "acc", "maximize"),
        ("-lat_ms_fpga", "lat_ms_fpga", "minimize"),
        ("acc12_cifar10_val", "acc12_cifar10_val", "maximize"),
    ],
)
def test_objectives(text, metric, direction):
    o = Objective.parse(text)
    assert (o.metric, o.direction) == (metric, direction)
    assert o.score({metric: 2.0}) == (2.0 if direction == "maximize" else -2.0)


def test_bad_objective():
    with pytest.raises(ConstraintError):
        Objective.parse("make it good")
