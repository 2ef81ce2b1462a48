"""Import every module of a registry package, so that a new file registers itself without editing an index."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package: str, path: list[str], skip: tuple[str, ...] = ("base",)) -> None:
    for mod in pkgutil.iter_modules(path):
        if not mod.name.startswith("_") and mod.name not in skip:
            importlib.import_module(f"{package}.{mod.name}")
