"""The documentation runs as written: every ```python block of README.md and docs/*.md runs in a fresh process, in an
empty temporary folder, and must exit 0.

A block whose first line is ``# not run`` is skipped (it is there to be read, not run). A block that reads a data set
(it names ``mnist`` or ``nb201`` in quotes) is skipped when that data set is absent, as ``require_data`` does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, require_data

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.M | re.S)
DATASETS = ("mnist", "nb201")


def python_blocks() -> list[tuple[str, str]]:
    """``(id, code)`` for every python block of the README and the docs pages, in file order."""
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = [body for lang, body in FENCE.findall(path.read_text()) if lang == "python"]
        for i, body in enumerate(blocks):
            out.append((f"{path.relative_to(ROOT)}#{i + 1}", body))
    return out


BLOCKS = python_blocks()


def test_there_are_blocks():
    assert any(name.startswith("README.md") for name, _ in BLOCKS)
    for page in ("spaces", "strategies", "costs", "studies", "export"):
        assert f"docs/{page}.md#1" in dict(BLOCKS), f"docs/{page}.md has no python example"


@pytest.mark.parametrize("name,code", BLOCKS, ids=[n for n, _ in BLOCKS])
def test_block_runs(name: str, code: str, tmp_path: Path):
    if code.lstrip().startswith("# not run"):
        pytest.skip(f"{name} is marked '# not run'")
    for ds in DATASETS:
        if f'"{ds}"' in code or f"'{ds}'" in code:
            require_data(ds)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "src"), env.get("PYTHONPATH", "")] if p)
    script = tmp_path / "block.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
