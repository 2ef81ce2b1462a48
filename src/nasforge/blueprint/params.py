"""``P``: a block parameter tied to space dimensions. Torch-free.

``P("conv1_ch")`` is the arch's value of dimension ``conv1_ch``; ``P(fn, "width", "s0_b1_e")`` is
``fn(arch["width"], arch["s0_b1_e"])``. A block parameter is either a constant or a ``P``; the dimensions a ``P``
names are exactly the ones it reads, which is what lets generic code find the dimensions an arch's network reads
(its canonical form) and every value a parameter can take over the space (the largest weight of an elastic layer).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import SpaceError
from ..space import Space


class P:
    """A value computed from some dimensions of an arch (see the module docstring). ``fn`` must be pure: its results
    are remembered per combination of the dimensions' values (a study evaluates the same few combinations for every
    arch it prices)."""

    __slots__ = ("fn", "dims", "_get", "_memo")

    def __init__(self, fn: Callable[..., Any] | str, *dims: str) -> None:
        if isinstance(fn, str):
            if dims:
                raise SpaceError(f"P({fn!r}, ...): give a function first when a parameter reads several dimensions")
            self.fn, self.dims = None, (fn,)
        else:
            if not dims or not all(isinstance(d, str) for d in dims):
                raise SpaceError("P(fn, *dims) needs the names of the dimensions fn reads")
            self.fn, self.dims = fn, tuple(dims)
        get = operator.itemgetter(*self.dims)
        self._get = get if len(self.dims) > 1 else (lambda a: (get(a),))
        self._memo: dict[tuple, Any] = {}

    def __call__(self, arch: Mapping[str, Any]) -> Any:
        if self.fn is None:
            return arch[self.dims[0]]
        key = self._get(arch)
        try:
            return self._memo[key]
        except KeyError:
            v = self._memo[key] = self.fn(*key)
            return v

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a blueprint parameter (P) holds a function and is not pickled; rebuild the blueprint")

    def values(self, space: Space) -> list[Any]:
        """Every value this parameter takes over ``space`` (distinct, in order of first appearance)."""
        out: list[Any] = []
        seen: set[Any] = set()
        for combo in itertools.product(*(space.dims[d].values for d in self.dims)):
            v = self(dict(zip(self.dims, combo, strict=True)))
            key = repr(v)
            if key not in seen:
                seen.add(key)
                out.append(v)
        return out

    def __repr__(self) -> str:
        if self.fn is None:
            return f"P({self.dims[0]!r})"
        return f"P({getattr(self.fn, '__name__', 'fn')}, {', '.join(map(repr, self.dims))})"


def resolve(v: Any, arch: Mapping[str, Any]) -> Any:
    """A constant as it is, a ``P`` evaluated on ``arch``."""
    return v(arch) if type(v) is P else v


def dims_of(*values: Any) -> set[str]:
    """The dimensions the given parameters read (constants read none); tuples of (key, value) pairs are searched."""
    out: set[str] = set()
    for v in values:
        if type(v) is P:
            out.update(v.dims)
        elif isinstance(v, tuple | list):
            out |= dims_of(*v)
    return out
