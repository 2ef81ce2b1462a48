"""The tracer: costs of a user's own model equal numel() and FlopCounterMode, or are loudly unknown (NaN)."""

import importlib.util
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasforge.constraints import Constraint
from nasforge.cost import costs
from nasforge.cost.trace import EXTRA_FORMULAS, TraceError, UncountedWarning, trace_layers
from nasforge.task import Task


def _load_zoo():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_zoo.py"
    spec = importlib.util.spec_from_file_location("bench_zoo", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_zoo"] = mod  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(mod)
    return mod


ZOO = _load_zoo()


def numel(model):
    return sum(p.numel() for p in model.parameters())


def flops(model, *xs, custom=None):
    """FlopCounterMode's MACs on the path this CPU runs (with ``custom`` formulas added)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as fc:
        model(*xs)
    return fc.get_total_flops() // 2


def traced(model, inp):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedWarning)  # nothing here may be uncounted
        layers = trace_layers(model, inp)
    return layers, costs(layers)


@pytest.mark.parametrize("name", list(ZOO.zoo(small=True)))
def test_zoo_counts_equal_numel_and_flopcounter(name):
    make, task = ZOO.zoo(small=True)[name]
    torch.manual_seed(0)
    model = make()
    x = task.example(1)
    layers, c = traced(model, task)
    assert c["params"] == numel(model)
    # the reference where every multiply is an op FlopCounterMode has a formula for; and the default CPU path with
    # the tracer's extra formulas (the LSTM's mkldnn kernel, the CPU attention kernel)
    assert c["macs"] == ZOO.flops_decomposed(model, x) == flops(model, x, custom=EXTRA_FORMULAS)
    assert all(math.isfinite(v) for v in c.values())


def test_training_mode_and_fast_path_restored():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    fast = torch.backends.mha.get_fastpath_enabled()
    trace_layers(model, (4,))
    assert model.training and torch.backends.mha.get_fastpath_enabled() == fast
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_tracer_on_a_user_model():  # moved from test_costs.py
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 3, groups=8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5), nn.LayerNorm(5),
    )  # fmt: skip
    layers, c = traced(model, (3, 16, 16))
    assert c["params"] == numel(model)
    assert c["macs"] == flops(model, torch.zeros(1, 3, 16, 16))
    assert [lay.kind for lay in layers] == ["conv", "bn", "act", "conv", "pool", "reshape", "linear", "ln"]
    assert ("act", "relu6") in layers[2].extra and ("pool", "avg") in layers[4].extra
    assert layers[3].groups == 8 and layers[3].kernel == (3, 3) and layers[4].kernel == (14, 14)
    assert layers[0].in_shape == (3, 16, 16) and layers[0].out_shape == (8, 16, 16)


def test_tracer_handles_unknown_modules():  # moved from test_costs.py
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4, 4))

        def forward(self, x):
            return x @ self.w

    model = nn.Sequential(nn.Linear(3, 4), Scale())
    layers, c = traced(model, (3,))
    assert c["params"] == 12 + 4 + 16 and c["macs"] == flops(model, torch.zeros(1, 3)) == 12 + 16
    assert [lay.kind for lay in layers] == ["linear", "other"]


def test_shared_parameters_once_reused_module_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.out = nn.Linear(8, 3)
            self.tied = nn.Linear(8, 3)
            self.tied.weight = self.out.weight  # one parameter in two modules

        def forward(self, x):
            h = self.fc(F.relu(self.fc(x)))
            return self.out(h) + self.tied(h)

    model = Twice()
    layers, c = traced(model, (8,))
    assert c["params"] == numel(model) == 72 + 24 + 3 + 3  # torch counts the tied weight once, and so do we
    assert c["macs"] == flops(model, torch.zeros(1, 8)) == 2 * 64 + 2 * 24
    fc = [lay for lay in layers if lay.name.startswith("fc")]
    assert [(lay.name, lay.kind, lay.params, lay.macs) for lay in fc] == [("fc", "linear", 72, 64),
                                                                          ("fc#2", "linear", 0, 64)]  # fmt: skip
    assert fc[0].key() == fc[1].key()  # the same layer for a latency table: it runs twice


def test_keyword_calls_several_inputs_tuple_outputs():
    class Pair(nn.Module):  # two tensor inputs, a tuple out
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 5))

        def forward(self, a, b):
            return a @ self.w, b.sum(-1)

    class Add(nn.Module):  # a leaf without MACs: one layer all the same
        def forward(self, x, y):
            return x + y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)
            self.pair = Pair()
            self.lstm = nn.LSTM(5, 7)
            self.add = Add()

        def forward(self, x):
            h = self.fc(input=x)
            y, _ = self.pair(h, b=h)
            out, (hn, cn) = self.lstm(y.unsqueeze(0))
            return self.add(out.squeeze(0), y=y.flip(-1).repeat(1, 2)[..., :7])

    model = Net()
    layers, c = traced(model, (4,))
    assert c["params"] == numel(model)
    assert c["macs"] == flops(model, torch.zeros(1, 4), custom=EXTRA_FORMULAS) == 24 + 30 + 4 * 7 * (5 + 7)
    assert [(lay.kind, lay.name) for lay in layers] == [("linear", "fc"), ("other", "pair:mm"), ("rnn", "lstm"),
                                                        ("other", "add")]  # fmt: skip
    assert layers[1].in_shape == (6,) and layers[1].out_shape == (5,) and layers[1].live == 0  # a weight is not live
    assert layers[3].in_shape == layers[3].out_shape == (7,) and layers[3].live == 7  # the second input is held


@pytest.mark.parametrize("rnn", [
    nn.LSTM(6, 8, 2), nn.LSTM(6, 8, batch_first=True, bidirectional=True), nn.LSTM(6, 8, proj_size=3),
    nn.GRU(6, 8, 2, bidirectional=True), nn.RNN(6, 8, nonlinearity="relu"), nn.LSTMCell(6, 8), nn.GRUCell(6, 8),
])  # fmt: skip
def test_recurrent_layers_exact(rnn):
    layers, c = traced(rnn, (5, 6) if not isinstance(rnn, nn.RNNCellBase) else (6,))
    x = torch.zeros(5, 1, 6) if not isinstance(rnn, nn.RNNCellBase) else torch.zeros(1, 6)
    assert c["params"] == numel(rnn)
    assert c["macs"] == ZOO.flops_decomposed(rnn, x) > 0
    assert [lay.kind for lay in layers] == ["rnn"]


def test_lstm_is_counted_where_flopcounter_sees_nothing():
    lstm = nn.LSTM(16, 32)
    _, c = traced(lstm, (10, 16))
    assert flops(lstm, torch.zeros(10, 1, 16)) == 0  # mkldnn_rnn_layer: FlopCounterMode has no formula
    assert c["macs"] == 10 * 4 * 32 * (16 + 32)  # T · gates · H · (I + H)


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_self_and_cross(batch_first):
    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = nn.MultiheadAttention(8, 2, batch_first=batch_first)
            self.cross = nn.MultiheadAttention(8, 2, kdim=4, vdim=6, batch_first=batch_first)

        def forward(self, x):
            seq = 1 if batch_first else 0
            mem_k, mem_v = x[..., :4].repeat_interleave(3, seq), x[..., 2:].repeat_interleave(3, seq)
            y = self.self_attn(x, x, x)[0]
            return self.cross(query=y, key=mem_k, value=mem_v, need_weights=False)[0]

    model = Cross().eval()
    x = torch.randn(1, 5, 8) if batch_first else torch.randn(5, 1, 8)
    layers, c = traced(model, [x])
    assert c["params"] == numel(model)
    assert c["macs"] == ZOO.flops_decomposed(model, x)
    attn = [lay for lay in layers if lay.kind == "attention"]
    assert [a.name for a in attn] == ["self_attn", "cross"] and attn[0].params + attn[1].params == numel(model)
    assert attn[1].live == 15 * 4 + 15 * 6  # the memory's keys and values stay while the cross-attention runs
    assert attn[0].in_shape == (5, 8)  # without the batch, wherever it stands


def test_transformer_encoder_fast_path_is_counted():
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(1, 6, 16)
    assert flops(enc, x) == 0  # eval + no grad + batch_first: one fused op FlopCounterMode cannot see into
    _, c = traced(enc, [x])
    assert c["params"] == numel(enc) and c["macs"] == ZOO.flops_decomposed(enc, x) > 0


def test_norms_over_several_dims_and_groups():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LayerNorm([8, 6, 6]), nn.GroupNorm(2, 8),
                          nn.InstanceNorm2d(8), nn.LayerNorm(6, elementwise_affine=False), nn.RMSNorm(6))  # fmt: skip
    layers, c = traced(model, (3, 6, 6))
    assert c["params"] == numel(model) == 224 + 576 + 16 + 0 + 0 + 6
    assert [(lay.kind, lay.params) for lay in layers[1:]] == [("ln", 576), ("gn", 16), ("gn", 0), ("ln", 0), ("ln", 6)]
    assert layers[2].groups == 2


def test_functional_matmuls_on_raw_parameters():
    model = ZOO.FunctionalNet(16, 2, 32, 5)
    layers, c = traced(model, (6, 16))
    assert c["params"] == numel(model)
    assert c["macs"] == ZOO.flops_decomposed(model, torch.randn(1, 6, 16))
    assert all(lay.kind == "other" and ":" in lay.name for lay in layers)  # one layer per op that multiplies
    assert {lay.name.split(":")[1] for lay in layers} >= {"mm", "bmm", "_scaled_dot_product_flash_attention_for_cpu"}


def test_matrix_vector_products_are_counted():
    class MV(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 4))
            self.v = nn.Parameter(torch.randn(5))

        def forward(self, x):
            return self.v @ (self.w @ x[0])  # mv then dot: FlopCounterMode has no formula for either

    model = MV()
    _, c = traced(model, (4,))
    assert c["params"] == 25 and c["macs"] == 20 + 5 and flops(model, torch.zeros(1, 4)) == 0


def test_token_inputs_from_the_task():
    model = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(12, 2))
    task = Task((3,), 2, dtype="int64", vocab_size=20)
    layers, c = traced(model, task)
    assert c["params"] == numel(model) and c["macs"] == 24
    assert layers[0].kind == "embedding" and layers[0].in_shape == (3,) and layers[0].out_shape == (3, 4)
    assert ("vocab", 20) in layers[0].extra
    with pytest.raises(TraceError, match="dtype 'int64' and its vocab_size"):
        trace_layers(model, (3,))  # float input to an embedding: one line that says how to mend it


def test_failing_forward_is_one_line_and_leaves_no_hooks():
    model = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(TraceError, match=r"cannot trace Sequential on an input of \(1, 5\) float32") as e:
        trace_layers(model, (5,))
    assert "\n" not in str(e.value)
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks
    with pytest.raises(TraceError, match="Task, an input shape or example tensors"):
        trace_layers(model, "3x4")


class _NumpyMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        return torch.from_numpy(x.detach().numpy() @ w.detach().numpy())  # compute torch never sees

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class _NumpyLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        return _NumpyMatmul.apply(x, self.w)


def test_uncountable_module_warns_names_it_and_gives_nan():
    model = nn.Sequential(nn.Linear(4, 4), _NumpyLinear(), nn.ReLU())
    with pytest.warns(UncountedWarning, match=r"module '1' \(_NumpyLinear\).*custom autograd Function"):
        layers = trace_layers(model, (4,))
    c = costs(layers)
    assert math.isnan(c["macs"]) and math.isnan(c["energy_uj"])  # unknown, never a lower number
    assert c["params"] == numel(model) and c["peak_mem"] > 0  # what is known stays known
    assert math.isnan(layers[1].macs) and layers[0].macs == 16
    assert not Constraint.parse("macs<=1G").ok(c) and Constraint.parse("params<=1K").ok(c)


def test_ops_without_a_formula_and_custom_ops_are_loud():
    class Dist(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Parameter(torch.randn(5, 4))

        def forward(self, x):
            return torch.cdist(x.unsqueeze(0), self.c.unsqueeze(0)).squeeze(0)

    with pytest.warns(UncountedWarning, match=r"the model \(Dist\): aten::_cdist_forward has no FLOP formula"):
        c = costs(trace_layers(Dist(), (4,)))
    assert math.isnan(c["macs"]) and c["params"] == 20
    with pytest.warns(UncountedWarning, match="_trilinear"):
        c = costs(trace_layers(nn.Bilinear(3, 4, 2), [torch.randn(1, 3), torch.randn(1, 4)]))
    assert math.isnan(c["macs"]) and c["params"] == 26
    lib = torch.library.Library("nasforge_test", "DEF")  # noqa: F841 (keeps the op defined)
    lib.define("mymm(Tensor a, Tensor b) -> Tensor")
    lib.impl("mymm", lambda a, b: a @ b, "CPU")

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return torch.relu(torch.ops.nasforge_test.mymm(x, self.w))

    with pytest.warns(UncountedWarning, match="nasforge_test::mymm is not a torch operator"):
        c = costs(trace_layers(nn.Sequential(nn.Linear(4, 4), Custom()), (4,)))
    assert math.isnan(c["macs"]) and c["params"] == 36


def test_constants_in_a_custom_function_are_not_compute():
    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * torch.tensor(2.0)

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(Double.apply(x))

    _, c = traced(Net(), (4,))
    assert c["macs"] == 8


def test_unused_parameters_still_count():
    class Spare(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(4, 2), nn.Linear(4, 100)
            self.scale = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.used(x) * self.scale

    model = Spare()
    layers, c = traced(model, (4,))
    assert c["params"] == numel(model) == 10 + 500 + 2
    assert layers[-1].name == "(unused parameters)" and layers[-1].params == 500 and layers[-1].in_numel == 1


def test_builder_family_over_an_lstm_gives_exact_params():
    from nasforge.space import Space
    from nasforge.spaces.custom import BuilderFamily
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    task = Task((12,), 10, dtype="int64", vocab_size=30)

    def lm(arch, task):
        return ZOO.LSTMLM(task.vocab_size, 8, arch["hidden"], arch["layers"])

    fam = BuilderFamily(Space({"hidden": [8, 16, 48], "layers": [1, 2]}), lm, default_task=task)
    for a in fam.space.grid():
        m = fam.build(a, task)
        c = fam.costs(a, task)
        assert c["params"] == numel(m) and c["macs"] == flops(m, task.example(1), custom=EXTRA_FORMULAS)
    s = Study.open("lstm", "sqlite://").run(
        fam, create_strategy("grid", fam.space), lambda a, ctx: {"acc": a["hidden"] + a["layers"]},
        objectives=["maximize acc"], constraints=["params<=5K"],
    )  # fmt: skip
    # 48 hidden units are over 5K parameters (the old tracer dropped the LSTM's and let them pass)
    assert s.best().arch == {"hidden": 16, "layers": 2}


class _Dist(nn.Module):
    """A distance layer torch's FLOP counter has no formula for (its MACs are unknown), width from the arch."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.randn(width, 4))
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        return self.head(torch.cdist(x.unsqueeze(0), self.c.unsqueeze(0)).squeeze(0))


def test_a_constraint_on_an_unknown_metric_refuses_to_run(tmp_path):
    import warnings

    from nasforge.errors import ConstraintError
    from nasforge.space import Space
    from nasforge.spaces.custom import BuilderFamily
    from nasforge.strategies import create_strategy
    from nasforge.study import Study
    from nasforge.task import Task

    fam = BuilderFamily(Space({"width": [2, 3, 5]}), lambda a, t: _Dist(a["width"]), default_task=Task((4,), 3))
    study = Study.open("u", f"sqlite:///{tmp_path}/u.db")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedWarning)
        with pytest.raises(ConstraintError, match=r"'macs<=1K' cannot be checked: macs of .* is unknown") as e:
            study.run(fam, create_strategy("grid", fam.space), lambda arch: {"val_acc": 1.0},
                      constraints=["macs<=1K"], objectives=["maximize val_acc"])
        assert "\n" not in str(e.value)
        # a constraint on what is known still works: parameters are exact
        study = Study.open("k", f"sqlite:///{tmp_path}/u.db")
        study.run(fam, create_strategy("grid", fam.space), lambda arch: {"val_acc": 1.0},
                  constraints=["params<=30"], objectives=["maximize val_acc"])
    assert [t.state.value for t in study.trials()] == ["complete", "complete", "infeasible"]
