"""The NAS-Bench-201 table: 12-epoch accuracies and 24 devices' latencies for all 15,625 cells.

``load_table()`` reads ``nb201/nb201.csv.gz`` (see its README) once per process, with the standard library's csv and
gzip and numpy only. Rows are kept in the file's order, which is the NAS-Bench-201 index order (checked on load).
Lookups accept an ``Arch`` of the ``nb201`` family, any mapping with its six edge dimensions, or the cell string.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .constraints import Constraint, Objective
from .data import find_dataset
from .errors import DataError, NasforgeError, UnknownNameError
from .pareto import non_dominated
from .space import Arch
from .spaces.nb201 import DIMS, from_string, to_string

__all__ = ["FILE", "N_CELLS", "NB201Table", "load_table", "non_dominated"]  # non_dominated: from nasforge.pareto

FILE = "nb201.csv.gz"
N_CELLS = 15_625
_CACHE: dict[Path, NB201Table] = {}

CellRef = Arch | Mapping[str, Any] | str | int


@dataclass
class NB201Table:
    """The table in memory. ``strings[i]`` is the cell string of row i (= NAS-Bench-201 index i); ``columns`` holds
    every numeric column (``index``, ``acc12_*``, ``lat_ms_*``) as float64 arrays of length 15,625."""

    strings: tuple[str, ...]
    columns: dict[str, np.ndarray]
    path: Path | None = None
    _pos: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._pos:
            self._pos = {s: i for i, s in enumerate(self.strings)}

    def __len__(self) -> int:
        return len(self.strings)

    # --- names --------------------------------------------------------------------------------------------------
    @cached_property
    def accuracy_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c.startswith("acc"))

    @cached_property
    def latency_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c.startswith("lat_ms_"))

    def column(self, name: str) -> np.ndarray:
        """One numeric column; ``UnknownNameError`` listing the columns if there is none by that name."""
        try:
            return self.columns[name]
        except KeyError:
            known = ", ".join(c for c in self.columns if c != "index")
            raise UnknownNameError(f"nb201 table has no column {name!r}; columns: {known}") from None

    # --- lookups ------------------------------------------------------------------------------------------------
    def index_of(self, cell: CellRef) -> int:
        """Row (= NAS-Bench-201 index) of a cell given as an arch, a mapping of its edge ops, a string or an index."""
        if isinstance(cell, int | np.integer):
            if not 0 <= cell < len(self):
                raise NasforgeError(f"nb201 index {cell} is outside 0..{len(self) - 1}")
            return int(cell)
        if isinstance(cell, str):
            text = cell.strip()
            if text not in self._pos:
                text = to_string(from_string(text))  # raises a clear SpaceError if malformed
            return self._pos[text]
        try:
            return self._pos[to_string(cell)]
        except KeyError:
            need = ", ".join(DIMS)
            raise NasforgeError(f"{cell!r} is not a NAS-Bench-201 cell (it needs the edges {need})") from None

    def arch(self, index: int) -> Arch:
        return from_string(self.strings[self.index_of(index)])

    def row(self, cell: CellRef) -> dict[str, Any]:
        """Every column of one cell: ``index`` (int), ``arch`` (the string) and the numeric columns (floats)."""
        i = self.index_of(cell)
        out: dict[str, Any] = {"index": i, "arch": self.strings[i]}
        out.update({k: float(v[i]) for k, v in self.columns.items() if k != "index"})
        return out

    # --- whole-table queries ------------------------------------------------------------------------------------
    def feasible(self, constraints: str | Constraint | Sequence[str | Constraint] | None = None) -> np.ndarray:
        """Boolean mask of the rows that meet every constraint (on any column)."""
        mask = np.ones(len(self), dtype=bool)
        for c in _constraints(constraints):
            mask &= _OPS[c.op](self.column(c.metric), c.value)
        return mask

    def best(self, column: str | Objective, constraint: Any = None) -> dict[str, Any]:
        """The row that is best in ``column`` among the feasible ones. ``column`` may carry a direction
        (``"-lat_ms_fpga"``, ``"minimize lat_ms_fpga"``); a bare name is maximised. Ties go to the lowest index."""
        obj = Objective.parse(column)
        v = self.column(obj.metric)
        ok = self.feasible(constraint)
        if not ok.any():
            raise NasforgeError(f"no NAS-Bench-201 cell meets {_text(constraint)}; loosen the constraint")
        score = np.where(ok, v if obj.direction == "maximize" else -v, -np.inf)
        return self.row(int(np.argmax(score)))

    def scores(self, objectives: Sequence[str | Objective]) -> np.ndarray:
        """Rows × objectives, each oriented so that greater is better (a minimised column negated)."""
        objs = [Objective.parse(o) for o in objectives]
        return np.stack([self.column(o.metric) * (1 if o.direction == "maximize" else -1) for o in objs], axis=1)

    def pareto_front(
        self,
        columns: Sequence[str | Objective],
        directions: Sequence[str] | None = None,
        constraint: Any = None,
        keep_ties: bool = False,
    ) -> np.ndarray:
        """Indices of the non-dominated feasible rows, in increasing order.

        ``columns`` are column names, optionally with a direction (``"-lat_ms_pixel3"``); ``directions`` (``"max"`` /
        ``"min"`` per column) overrides them. Cells equal in every column are one point of the front, represented by
        the lowest index, unless ``keep_ties`` (the two disconnected cells 1852 and 7001, say, share 9.712 % and
        0.00328 ms on pixel3: the acc12_cifar10_val/lat_ms_pixel3 front has 37 points and 38 cells).
        """
        cols = list(columns)
        if directions is not None:
            if len(directions) != len(cols):
                raise NasforgeError(f"pareto_front: {len(cols)} columns but {len(directions)} directions")
            cols = [f"{d} {Objective.parse(c).metric}" for c, d in zip(cols, directions, strict=True)]
        F = self.scores(cols)
        rows = np.flatnonzero(self.feasible(constraint))
        return rows[non_dominated(F[rows], keep_ties=keep_ties)]



_OPS = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater}


def _constraints(c: Any) -> list[Constraint]:
    if c is None:
        return []
    if isinstance(c, str | Constraint):
        c = [c]
    return [Constraint.parse(x) for x in c]


def _text(c: Any) -> str:
    return ", ".join(str(x) for x in _constraints(c)) or "no constraint"


def load_table(data_dir: str | os.PathLike | None = None) -> NB201Table:
    """The NAS-Bench-201 table, read once per process and per file. ``DataError`` if it is missing or malformed."""
    path = (find_dataset("nb201", data_dir) / FILE).resolve()
    if path in _CACHE:
        return _CACHE[path]
    if not path.is_file():
        raise DataError(f"{path} not found; the nb201 folder must hold {FILE} (see its README)")
    try:
        with gzip.open(path, "rt", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, EOFError, csv.Error) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if not rows or "arch" not in rows[0] or "index" not in rows[0]:
        raise DataError(f"{path} is not the NAS-Bench-201 table: its header lacks 'index' and 'arch'")
    header, body = rows[0], rows[1:]
    if len(body) != N_CELLS or any(len(r) != len(header) for r in body):
        raise DataError(f"{path} is truncated or corrupt: expected {N_CELLS} rows of {len(header)} fields")
    a = header.index("arch")
    strings = tuple(r[a] for r in body)
    num = [k for k, h in enumerate(header) if k != a]
    try:
        values = np.array([[float(r[k]) for k in num] for r in body], dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{path} has a non-numeric value: {e}") from None
    columns = {header[k]: values[:, t].copy() for t, k in enumerate(num)}
    if not np.array_equal(columns["index"], np.arange(N_CELLS)):
        raise DataError(f"{path}: rows are not in NAS-Bench-201 index order 0..{N_CELLS - 1}")
    table = NB201Table(strings, columns, path)
    if len(table._pos) != N_CELLS:
        raise DataError(f"{path}: cell strings are not unique")
    _CACHE[path] = table
    return table
