"""Commands that only read (show, list, space, best without --export) do not import torch: a table must not cost
the seconds and hundreds of MB that torch does. Each runs in a fresh process that reports what it imported."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasforge.spaces import create_family
from nasforge.strategies import create_strategy
from nasforge.study import Study

PROBE = """
import sys
from nasforge.cli import main

rc = main(sys.argv[1:])
print("RC", rc, "TORCH", "torch" in sys.modules, flush=True)
"""


def run(args, cwd):
    import nasforge

    src = str(Path(nasforge.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    last = [ln for ln in r.stdout.splitlines() if ln.startswith("RC ")]
    assert last, r.stdout + r.stderr
    return last[-1], r.stdout


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("light")
    fam = create_family("lenet")
    url = f"sqlite:///{tmp}/l.db"
    Study.open("light", url).run(fam, create_strategy("grid", fam.space), lambda arch: {"val_acc": arch["fc1"] / 3},
                                 constraints=["size<=0.05MiB"], budget=40)  # fmt: skip
    return tmp, url


@pytest.mark.parametrize("cmd", ["show", "best", "list", "space"])
def test_read_only_commands_do_not_import_torch(db, cmd):
    tmp, url = db
    args = {"show": ["show", "light", "--storage", url, "--all"], "best": ["best", "light", "--storage", url],
            "list": ["list", "--storage", url], "space": ["space", "lenet"]}[cmd]  # fmt: skip
    status, out = run(args, tmp)
    assert status == "RC 0 TORCH False", out
    assert {"show": "c3k3-c12k3", "best": "best of", "list": "light", "space": "729 archs"}[cmd] in out
