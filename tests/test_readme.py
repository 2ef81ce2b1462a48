"""The README runs as written: every ``nasforge ...`` line of its command blocks, in order, in one fresh folder (with
the shipped ``examples/`` beside it, as in a clone), each in its own process, with ``NASFORGE_QUICK=1`` shrinking
budgets, epochs and data to tiny sizes. A command that fails there fails here, so the README cannot drift from the code.

Each command's time is printed (``pytest -s``); ``NASFORGE_README_TIMES=<file>`` also writes them there as a table.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, require_data

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.M | re.S)


def readme_commands(text: str) -> list[str]:
    """The ``nasforge`` command lines of the README's shell blocks (fences without a language, or bash/sh/console):
    continuation lines joined, comments dropped."""
    cmds = []
    for lang, body in FENCE.findall(text):
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line.strip().removeprefix("$ "), comments=True)
            if words and words[0] == "nasforge":
                cmds.append(shlex.join(words))
    return cmds


def quick_env() -> dict[str, str]:
    import nasforge

    src = str(Path(nasforge.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "NASFORGE_QUICK": "1", "COLUMNS": "120"}


def run_nasforge(cmd: str, cwd: Path, env: dict[str, str], timeout: int = 600) -> float:
    """Run one ``nasforge ...`` line as a user would (a process of its own); its time in seconds."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "nasforge.cli", *shlex.split(cmd)[1:]], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)  # fmt: skip
    took = time.perf_counter() - t0
    assert r.returncode == 0, f"`{cmd}` exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return took


def test_readme_commands_are_found():
    cmds = readme_commands((ROOT / "README.md").read_text())
    assert len(cmds) >= 12 and cmds[0].startswith("nasforge search --family lenet")
    # the lookup table is built before the search that reads it
    lut = next(i for i, c in enumerate(cmds) if c.startswith("nasforge latency lut"))
    assert lut < next(i for i, c in enumerate(cmds) if "table=lut.json" in c)
    assert not any("#" in c or "\\" in c for c in cmds)


def test_readme_runs_as_written(tmp_path):
    require_data("mnist")
    require_data("nb201")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = quick_env()
    times = []
    for cmd in readme_commands((ROOT / "README.md").read_text()):
        took = run_nasforge(cmd, tmp_path, env)
        times.append((cmd, took))
        print(f"{took:7.1f} s  {cmd}")
    assert (tmp_path / "out" / "model.onnx").is_file() and (tmp_path / "report.html").is_file()
    if os.environ.get("NASFORGE_README_TIMES"):
        rows = [f"| `{c}` | {t:.1f} |" for c, t in times]
        Path(os.environ["NASFORGE_README_TIMES"]).write_text("| command | s |\n|---|---:|\n" + "\n".join(rows) + "\n")
