"""The shipped search files (``examples/*.yaml``) and Python examples (``examples/*.py``) run as their comments say,
with ``NASFORGE_QUICK=1`` sizes, from a folder that holds them as a clone does; and the quick sizes themselves."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, require_data
from test_readme import quick_env, run_nasforge

from nasforge import quick
from nasforge.study import Study
from nasforge.trial import State

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))
PY_EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


def test_there_is_an_example_per_capability():
    assert {"practice.yaml", "nb201.yaml", "mobilenet.yaml"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_search_file_runs(name, tmp_path):
    spec = yaml.safe_load((ROOT / "examples" / name).read_text())
    require_data("nb201" if spec["family"] == "nb201" else spec.get("dataset", "mnist"))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = quick_env()
    if any(c.get("source") == "lut" for c in spec.get("cost_models", [])):
        # the table the file reads, built by the command its comment gives
        cmd = next(ln.strip("# ").strip() for ln in (ROOT / "examples" / name).read_text().splitlines()
                   if "nasforge latency lut" in ln)  # fmt: skip
        run_nasforge(cmd, tmp_path, env)
    run_nasforge(f"nasforge run examples/{name} -q", tmp_path, env)
    study = Study.open(spec["study"], f"sqlite:///{tmp_path}/nasforge.db", create=False)
    assert study.best() is not None and study.best().state == State.COMPLETE


def test_quick_shrinks_sizes_and_says_so(monkeypatch, capsys):
    monkeypatch.delenv(quick.ENV, raising=False)
    assert quick.shrink("x", {"budget": 50, "epochs": 3}) == {"budget": 50, "epochs": 3}
    monkeypatch.setenv(quick.ENV, "0")
    assert not quick.enabled()
    monkeypatch.setenv(quick.ENV, "1")
    got = quick.shrink("search", {"budget": 50, "epochs": None, "train_subset": 10, "val_size": 0.1, "seed": 7})
    assert got == {"budget": quick.SIZES["budget"], "epochs": quick.SIZES["epochs"], "train_subset": 10,
                   "val_size": 0.1, "seed": 7}  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NASFORGE_QUICK is set: search runs tiny (budget 50→" in err
    assert quick.shrink("search", {"budget": None}) == {"budget": None}  # a grid that runs to the end stays so
    assert capsys.readouterr().err == ""  # nothing changed: nothing said


@pytest.mark.parametrize("name", PY_EXAMPLES)
def test_python_example_runs(name, tmp_path):
    text = (ROOT / "examples" / name).read_text()
    if '"mnist"' in text:
        require_data("mnist")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=tmp_path, env=quick_env(),
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
