"""A model you can ship: ONNX on raw input equals torch, the card says how to feed it, load() rebuilds it, a crafted
weights file is refused, and a trial without a model says why."""

import json
import pickle

import numpy as np
import pytest
import torch
from conftest import require_data

from nasforge.errors import NasforgeError
from nasforge.evaluators.train import TrainEvaluator
from nasforge.export import export_trial, load, no_model_reason
from nasforge.spaces import create_family
from nasforge.strategies import create_strategy
from nasforge.study import Study
from nasforge.trial import State, Trial

RECIPE = dict(epochs=1, lr=0.05, momentum=0.9, batch_size=16, val_size=100)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A study on an .npz of 600 MNIST training and 200 test images: grid over lenet under params<=27000, so that
    trials 0 and 1 train and trial 2 is infeasible; plus a study whose only trial failed."""
    from nasforge.data import read_idx

    root = require_data("mnist")
    tmp = tmp_path_factory.mktemp("export")
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:600]
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:600]
    xt = read_idx(root / "t10k-images-idx3-ubyte.gz")[:200]
    yt = read_idx(root / "t10k-labels-idx1-ubyte.gz")[:200]
    np.savez(tmp / "digits.npz", x_train=x, y_train=y, x_test=xt, y_test=yt, class_names=np.array(list("0123456789")))
    fam = create_family("lenet")
    db = f"sqlite:///{tmp}/e.db"
    s = Study.open("e", db)
    s.run(fam, create_strategy("grid", fam.space), TrainEvaluator(fam, str(tmp / "digits.npz"), **RECIPE),
          constraints=["params<=27000"], budget=3)  # fmt: skip
    f = Study.open("f", db)
    f.run(fam, create_strategy("grid", fam.space), TrainEvaluator(fam, str(tmp / "digits.npz"), **{**RECIPE,
          "lr": 1e4}), budget=1)  # fmt: skip
    return tmp, s, f, xt.astype(np.float32)[:, None], yt.astype(np.int64)


def test_onnx_takes_raw_input_and_equals_torch(trained):
    import onnxruntime as ort

    tmp, s, _, x_raw, y = trained
    best = s.best()
    info = export_trial(s, best, tmp / "best")
    sess = ort.InferenceSession(str(tmp / "best" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x_raw})[0]
    model = load(tmp / "best")  # the torch module takes raw input too
    with torch.no_grad():
        want = model(torch.from_numpy(x_raw)).numpy()
    assert np.abs(got - want).max() < 1e-4 and (got.argmax(1) == want.argmax(1)).all()
    # raw pixels give the accuracy the trial reported on its normalised test split
    acc = 100.0 * float((got.argmax(1) == y).mean())
    assert acc == pytest.approx(best.metrics["test_acc"], abs=0.51)
    # pixels scaled to 0..1 are not what the model takes: the card says so, and it shows
    assert 100.0 * float((sess.run(None, {"input": x_raw / 255})[0].argmax(1) == y).mean()) < acc - 20
    assert info["onnx"]["checked_on"] == "200 test samples of 'digits'" and info["onnx"]["same_top1"] == 1.0


def test_the_card_says_how_to_feed_the_model(trained):
    tmp, s, _, _, _ = trained
    export_trial(s, s.best(), tmp / "card")
    info = json.loads((tmp / "card" / "arch.json").read_text())
    task = s.task()
    inp = info["input"]
    assert inp["shape"] == ["batch", 1, 28, 28] and inp["dtype"] == "float32" and inp["layout"] == "NCHW"
    assert inp["normalisation"]["mean"] == list(task.mean) and inp["normalisation"]["inside_model"] is True
    assert inp["class_names"] == list("0123456789") and "0-255" in inp["values"]
    assert inp["stored_as"] == {"dtype": "uint8", "layout": "NHW"}
    assert isinstance(info["onnx"]["opset"], int) and info["onnx"]["opset"] >= 17
    assert set(info["versions"]) >= {"torch", "onnx", "onnxruntime", "numpy", "python", "nasforge"}
    assert info["training"]["optimizer"] == "sgd" and info["training"]["lr"] == 0.05
    assert info["onnx_max_abs_diff"] < 1e-4 and info["arch_key"] == s.best().arch.key
    md = (tmp / "card" / "MODEL_CARD.md").read_text()
    assert "do not normalise the inputs yourself" in md and "load(" in md


def test_int8_records_accuracy_before_and_after(trained):
    tmp, s, _, _, _ = trained
    info = export_trial(s, s.best(), tmp / "q", int8=True)
    q = info["int8"]
    assert (tmp / "q" / "model.int8.onnx").exists() and q["bytes_int8"] < q["bytes_fp32"]
    assert q["evaluated_on"] == "200 test samples" and abs(q["accuracy_int8"] - q["accuracy_fp32"]) < 5
    assert q["accuracy_fp32"] == pytest.approx(s.best().metrics["test_acc"], abs=0.51)


def test_a_trial_without_a_model_says_why(trained):
    tmp, s, f, _, _ = trained
    by_state = {t.state: t for t in s.trials()}
    cases = [
        (s, by_state[State.INFEASIBLE], "is infeasible (it breaks params<=27000): it was never trained"),
        (f, f.trials()[0], "failed (training loss"),
        (s, Trial(9, s.trials()[0].arch, State.PRUNED), "was pruned"),
        (s, Trial(9, s.trials()[0].arch, State.RUNNING), "still running"),
    ]
    for study, trial, words in cases:
        with pytest.raises(NasforgeError) as e:
            export_trial(study, trial, tmp / "none")
        assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert no_model_reason(s, by_state[State.COMPLETE]) is None


class Exploit:
    def __reduce__(self):
        return (print, ("code ran while loading",))


@pytest.mark.parametrize("craft", ["module", "exploit", "truncated", "not a dict"])
def test_a_crafted_model_pt_is_refused_in_one_line(trained, craft, capsys):
    tmp, s, _, _, _ = trained
    folder = tmp / f"crafted-{craft.replace(' ', '-')}"
    export_trial(s, s.best(), folder, onnx=False)
    target = folder / "model.pt"
    if craft == "module":
        torch.save(torch.nn.Linear(2, 2), target)
    elif craft == "exploit":
        target.write_bytes(pickle.dumps(Exploit()))
    elif craft == "truncated":
        target.write_bytes(target.read_bytes()[:100])
    else:
        torch.save([torch.zeros(2)], target)
    with pytest.raises(NasforgeError) as e:
        load(folder)
    assert "\n" not in str(e.value) and "state dict" in str(e.value)
    assert "code ran" not in capsys.readouterr().out


def test_weights_of_another_network_are_refused_in_one_line(trained):
    tmp, s, _, _, _ = trained
    export_trial(s, s.best(), tmp / "other", onnx=False)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp / "other" / "model.pt")
    with pytest.raises(NasforgeError, match="does not fit") as e:
        load(tmp / "other")
    assert "\n" not in str(e.value)


def test_data_given_in_memory_is_checked_on_its_scale_and_int8_asks_for_it(trained, tmp_path):
    _, _, _, x_raw, y = trained
    fam = create_family("lenet")
    data = (np.repeat(x_raw[:, 0], 3, axis=0).astype(np.uint8), np.repeat(y, 3))
    s = Study.open("mem", f"sqlite:///{tmp_path}/m.db")
    s.run(fam, create_strategy("grid", fam.space), TrainEvaluator(fam, data, **RECIPE), constraints=["params<=27000"],
          budget=1)  # fmt: skip
    with pytest.raises(NasforgeError, match="pass data=") as e:
        export_trial(s, s.best(), tmp_path / "m", int8=True)
    assert "\n" not in str(e.value) and not (tmp_path / "m").exists()  # refused before anything is written
    info = export_trial(s, s.best(), tmp_path / "m")
    assert "random inputs of the data's scale" in info["onnx"]["checked_on"]
