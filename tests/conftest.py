"""Shared test set-up: library caches kept out of ~, and data sets found the way users find them.

Data sets are looked up like the library does (``--data-dir``, ``$NASFORGE_DATA``, the cache, ``/usr/share/datasets``;
the Makefile sets ``NASFORGE_DATA``). A test that needs one calls ``require_data(name)`` (importable:
``from conftest import require_data``), or takes the ``mnist`` / ``nb201`` fixtures; either skips the test, saying
why, when the data set is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# keep library caches out of ~
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))
os.environ.setdefault("XDG_CACHE_HOME", str(ROOT / ".cache"))


def require_data(name: str) -> Path:
    """The folder of data set ``name``, or skip the calling test with the reason (where it was looked for)."""
    from nasforge.data import find_dataset
    from nasforge.errors import DataError

    try:
        return find_dataset(name)
    except DataError as e:
        pytest.skip(f"data set {name!r} is absent: {e}")


@pytest.fixture
def mnist() -> str:
    require_data("mnist")
    return "mnist"


@pytest.fixture
def nb201() -> Path:
    return require_data("nb201")
