"""One-shot NAS: SPOS, DARTS, GDAS and ProxylessNAS on the supernets the family blueprints derive.

``base.py`` is the contract and the registry (``ONESHOT``); ``relax.py`` finds where a supernet mixes and runs it
mixed; each method is a module. ``load_methods()`` imports them all (registering them), as the CLI does.
"""

from __future__ import annotations

from .._discover import import_submodules
from .base import ONESHOT, OneShot, create_oneshot, register_oneshot

__all__ = ["ONESHOT", "OneShot", "create_oneshot", "load_methods", "register_oneshot"]


def load_methods() -> None:
    """Import every module of the package (each method registers itself)."""
    import_submodules(__name__, __path__)
