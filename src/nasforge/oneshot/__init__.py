"""One-shot NAS: SPOS, DARTS, GDAS and ProxylessNAS on the supernets the family blueprints derive.

``base.py`` is the contract and the registry (``ONESHOT``); ``relax.py`` finds where a supernet mixes and runs it
mixed; each method is a module. ``load_methods()`` imports them all (registering them), as the CLI does.
"""

from __future__ import annotations

import importlib

from .base import ONESHOT, OneShot, create_oneshot, register_oneshot

METHOD_MODULES = ("spos", "darts", "gdas", "proxyless")

__all__ = ["METHOD_MODULES", "ONESHOT", "OneShot", "create_oneshot", "load_methods", "register_oneshot"]


def load_methods() -> None:
    """Import every method module (each registers itself)."""
    for m in METHOD_MODULES:
        try:
            importlib.import_module(f"{__name__}.{m}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{m}":
                raise
