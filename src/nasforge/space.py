"""Search spaces as data: ``Choice``, ``Space`` and ``Arch``. No torch here.

A ``Space`` is an ordered mapping of named dimensions, each a finite ``Choice`` of JSON scalar values. An ``Arch`` is a
frozen mapping from every dimension name to one of its values; its ``key`` (a hash of its canonical JSON) is the
identity used for storage and de-duplication.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpaceError

Scalar = int | float | str | bool


def _check_scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, bool | int | float | str) and not (isinstance(value, float) and math.isnan(value)):
        return value
    raise SpaceError(f"{where}: value {value!r} is not a JSON scalar (int, float, str or bool)")


class Arch(Mapping[str, Any]):
    """A frozen, JSON-serialisable assignment of a value to every dimension of a space."""

    __slots__ = ("_d", "_key", "_owner")

    def __init__(self, values: Mapping[str, Any] | None = None, **kw: Any) -> None:
        d = dict(values or {}, **kw)
        for k, v in d.items():
            _check_scalar(v, f"arch dimension {k!r}")
        object.__setattr__(self, "_d", d)
        object.__setattr__(self, "_key", None)
        object.__setattr__(self, "_owner", None)  # the Space that made (and so validated) it, if any

    @classmethod
    def _trusted(cls, d: dict[str, Any], owner: Any) -> Arch:
        """An arch whose values a space took from its own choices: no checks needed."""
        a = object.__new__(cls)
        object.__setattr__(a, "_d", d)
        object.__setattr__(a, "_key", None)
        object.__setattr__(a, "_owner", owner)
        return a

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Arch is frozen")

    def __reduce__(self) -> tuple:
        return (Arch, (self._d,))  # pickle (worker processes) through the constructor, which validates

    def __getitem__(self, k: str) -> Any:
        return self._d[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Arch):
            return self.key == other.key
        if isinstance(other, Mapping):
            return self._d == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._d.items())
        return f"Arch({inner})"

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces. Equal archs give equal strings."""
        return json.dumps(self._d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Arch:
        return cls(json.loads(text))

    @property
    def key(self) -> str:
        """Stable short identity: the first 16 hex digits of the SHA-1 of the canonical JSON."""
        if self._key is None:
            object.__setattr__(self, "_key", hashlib.sha1(self.to_json().encode()).hexdigest()[:16])
        return self._key

    def replace(self, **changes: Any) -> Arch:
        return Arch({**self._d, **changes})


@dataclass(frozen=True)
class Choice:
    """A finite, ordered set of candidate values for one dimension."""

    values: tuple[Scalar, ...]

    def __init__(self, values: Any) -> None:
        if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
            raise SpaceError(f"a choice needs a list of values, got {values!r}")
        vals = tuple(values)
        if not vals:
            raise SpaceError("a choice needs at least one value")
        for v in vals:
            _check_scalar(v, "choice")
        pos = {(isinstance(v, bool), v): i for i, v in enumerate(vals)}
        if len(pos) != len(vals):
            raise SpaceError(f"a choice has repeated values: {list(vals)}")
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "_pos", pos)

    def __len__(self) -> int:
        return len(self.values)

    def index(self, value: Any) -> int:
        # a dict lookup: validation runs for every arch a study sees. True == 1 in Python, so the key carries
        # whether the value is a bool: a bool must not match an int choice or the other way round.
        try:
            return self._pos[(isinstance(value, bool), value)]
        except (KeyError, TypeError):
            raise SpaceError(f"value {value!r} is not one of {list(self.values)}") from None


class Space:
    """An ordered mapping of named dimensions (``Choice``), with exact integer ``size``.

    ``canonical`` (optional) maps an arch to the representative of its network, for spaces where several archs build
    the same network (a dimension that a shallower arch never reads). Given one, every arch the space makes (``grid``,
    ``at``, ``sample``, ``mutate``, ``crossover``, ``neighbours``, ``validate``) is canonical, so strategies, which
    never propose an arch twice, never propose a network twice either. ``size`` still counts archs, not networks.
    """

    def __init__(
        self, dims: Mapping[str, Any], canonical: Callable[[Arch], Arch] | None = None, name: str = ""
    ) -> None:
        if not isinstance(dims, Mapping) or not dims:
            raise SpaceError("a space needs at least one dimension, given as a mapping name -> list of values")
        out: dict[str, Choice] = {}
        for dim, choice in dims.items():
            if not isinstance(dim, str) or not dim:
                raise SpaceError(f"dimension names must be non-empty strings, got {dim!r}")
            try:
                out[dim] = choice if isinstance(choice, Choice) else Choice(choice)
            except SpaceError as e:
                raise SpaceError(f"dimension {dim!r}: {e}") from None
        self.dims: dict[str, Choice] = out
        self._names = tuple(out)
        self._radix = tuple(len(c) for c in out.values())
        self._canonical = canonical
        self.name = name  # the family's, for error messages

    def _make(self, d: dict[str, Any]) -> Arch:
        """An arch of values taken from this space's own choices (trusted), in canonical form if the space has one."""
        a = Arch._trusted(d, self)
        return a if self._canonical is None else self._canonical(a)

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """The representative of ``arch``'s network (``arch`` itself when the space has no canonical form)."""
        return self.validate(arch)

    def __getstate__(self) -> dict[str, Any]:
        # the canonical form is a family's method; a pickled space (in a worker) keeps only the dimensions
        return {**self.__dict__, "_canonical": None}

    # --- description -------------------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def size(self) -> int:
        """Exact number of archs (a Python int, never a float)."""
        return math.prod(self._radix)

    def __len__(self) -> int:
        return len(self.dims)

    def __repr__(self) -> str:
        return f"Space({len(self.dims)} dims, size={self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, list[Scalar]]:
        return {k: list(c.values) for k, c in self.dims.items()}

    def to_json(self) -> str:
        return json.dumps({"dims": self.to_dict()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        """Accepts ``{"dims": {name: [values]}}`` or the bare ``{name: [values]}`` (where a dimension may itself be
        called ``dims``: only a lone ``dims`` key holding a mapping is the wrapper)."""
        if not isinstance(data, Mapping):
            raise SpaceError(f"a space must be a mapping, got {type(data).__name__}")
        dims = data["dims"] if list(data) == ["dims"] and isinstance(data["dims"], Mapping) else data
        return cls(dims)

    @classmethod
    def from_file(cls, path: str | Path) -> Space:
        """Read a space from a YAML or JSON file."""
        from .textio import load_yaml

        data = load_yaml(path, "space file", SpaceError)
        return cls.from_dict(data)

    # --- membership ---------------------------------------------------------------------------------------------
    def validate(self, arch: Mapping[str, Any]) -> Arch:
        """Return ``arch`` as an ``Arch`` of this space, or raise ``SpaceError`` saying what does not fit."""
        if isinstance(arch, Arch) and arch._owner is self:
            return arch  # made by this space from its own choices: costs are computed for every arch a study meets
        what = f"{self.name} " if self.name else ""
        if not isinstance(arch, Mapping):
            raise SpaceError(f"a {what}arch must be a mapping of dimension values, got {type(arch).__name__}")
        missing = [k for k in self._names if k not in arch]
        extra = [k for k in arch if k not in self.dims]
        if missing or extra:
            why = f"unknown dimensions {extra[:4]}" if extra else f"missing dimensions {missing[:4]}"
            raise SpaceError(f"not a {what}arch ({why}); build it with family.arch(...) or sample it from the space")
        d = {}
        for k in self._names:
            c = self.dims[k]
            try:
                # the choice's own value, so that width=1 and width=1.0 are one arch with one key
                d[k] = c.values[c.index(arch[k])]
            except SpaceError:
                raise SpaceError(f"{what}{k}={arch[k]!r} is not one of {list(c.values)}") from None
        return self._make(d)

    def contains(self, arch: Mapping[str, Any]) -> bool:
        try:
            self.validate(arch)
        except SpaceError:
            return False
        return True

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, Mapping) and self.contains(arch)

    # --- enumeration --------------------------------------------------------------------------------------------
    def grid(self) -> Iterator[Arch]:
        """Every arch in lexicographic order of the dimensions (the last dimension changes fastest)."""
        for combo in itertools.product(*(c.values for c in self.dims.values())):
            yield self._make(dict(zip(self._names, combo, strict=True)))

    def index(self, arch: Mapping[str, Any]) -> int:
        """Position of ``arch`` in ``grid()`` order."""
        i = 0
        for name, r in zip(self._names, self._radix, strict=True):
            i = i * r + self.dims[name].index(arch[name])
        return i

    def at(self, index: int) -> Arch:
        """The arch at ``index`` in ``grid()`` order (inverse of ``index``)."""
        if not 0 <= index < self.size:
            raise SpaceError(f"index {index} is outside the space (size {self.size})")
        idx = []
        for r in reversed(self._radix):
            index, j = divmod(index, r)
            idx.append(j)
        idx.reverse()
        return self._make({n: self.dims[n].values[j] for n, j in zip(self._names, idx, strict=True)})

    # --- random operators ---------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Arch:
        return self._make({n: c.values[int(rng.integers(len(c)))] for n, c in self.dims.items()})

    def mutate(self, arch: Mapping[str, Any], rng: np.random.Generator, n: int = 1) -> Arch:
        """Change exactly ``n`` dimensions (chosen among those with more than one value) to a different value."""
        free = [k for k in self._names if len(self.dims[k]) > 1]
        if n > len(free):
            raise SpaceError(f"cannot change {n} dimensions: only {len(free)} have more than one value")
        out = dict(self.validate(arch))
        for k in rng.choice(free, size=n, replace=False):
            vals = self.dims[k].values
            cur = self.dims[k].index(out[k])
            j = int(rng.integers(len(vals) - 1))
            out[k] = vals[j if j < cur else j + 1]
        return self._make({k: out[k] for k in self._names})

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: np.random.Generator) -> Arch:
        """Uniform crossover: each dimension from ``a`` or ``b`` with probability 1/2."""
        pick = rng.random(len(self._names)) < 0.5
        return self.validate({k: (a[k] if p else b[k]) for k, p in zip(self._names, pick, strict=True)})

    def neighbours(self, arch: Mapping[str, Any]) -> list[Arch]:
        """All archs that differ from ``arch`` in exactly one dimension."""
        out = []
        for k in self._names:
            for v in self.dims[k].values:
                if v != arch[k]:
                    out.append(self.validate({n: (v if n == k else arch[n]) for n in self._names}))
        return list({a.key: a for a in out}.values())  # canonical forms may coincide

    # --- encoding -----------------------------------------------------------------------------------------------
    @property
    def encoding_size(self) -> int:
        return sum(self._radix)

    def encode(self, arch: Mapping[str, Any]) -> np.ndarray:
        """Fixed-length float32 vector: the concatenated one-hot codes of the dimensions."""
        v = np.zeros(self.encoding_size, dtype=np.float32)
        off = 0
        for name, r in zip(self._names, self._radix, strict=True):
            v[off + self.dims[name].index(arch[name])] = 1.0
            off += r
        return v

    def encode_many(self, archs: list[Mapping[str, Any]]) -> np.ndarray:
        if not archs:
            return np.zeros((0, self.encoding_size), dtype=np.float32)
        return np.stack([self.encode(a) for a in archs])
