from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# keep library caches out of ~ and find the workplace's data sets
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))
os.environ.setdefault("XDG_CACHE_HOME", str(ROOT / ".cache"))
if "NASFORGE_DATA" not in os.environ and SHARED.is_dir():
    os.environ["NASFORGE_DATA"] = str(SHARED)


def _have(name: str) -> bool:
    from nasforge.data import find_dataset
    from nasforge.errors import DataError

    try:
        find_dataset(name)
    except DataError:
        return False
    return True


@pytest.fixture
def mnist():
    if not _have("mnist"):
        pytest.skip("MNIST not found: set NASFORGE_DATA to the folder holding mnist/")
    return "mnist"
