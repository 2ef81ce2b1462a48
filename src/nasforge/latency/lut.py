"""The ``lut`` latency source: a family's networks priced from a lookup table of their units.

``build_table`` measures every unit the sampled archs of a family use (resuming a table on disk), and ``LutLatency``
prices an arch as the table's calibrated sum over its layer list (``table.LatencyTable``). Nothing here knows a family
by name: units come from ``family.layers``, and each activation from its own spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LatencyModel, register_source, resolve_family, sample_archs
from .table import LatencyTable
from .units import LutError, Unit, split_units

if TYPE_CHECKING:
    from ..spaces.base import Family
    from ..task import Task


def family_units(
    family: Family, task: Task, archs: Iterable[Mapping[str, Any]], granularity: str = "block"
) -> list[Unit]:
    """The distinct units of the given archs' networks, in first-seen order."""
    seen: dict[str, Unit] = {}
    for a in archs:
        for u in split_units(family.layers(family.space.validate(a), task), granularity):
            seen.setdefault(u.key, u)
    return list(seen.values())


def build_table(
    family: Family | str,
    task: Task,
    path: str | Path | None = None,
    *,
    archs: Sequence[Mapping[str, Any]] | None = None,
    n_archs: int = 2000,
    seed: int = 0,
    progress: bool = False,
    chunk: int = 16,
    **settings: Any,
) -> LatencyTable:
    """Build (or resume) the table of ``family``: the units of ``archs`` (default: ``n_archs`` sampled archs, or the
    whole space when it is smaller). ``settings`` are ``LatencyTable``'s."""
    fam = resolve_family(family)
    table = LatencyTable.open(path, **settings) if path is not None else LatencyTable(**settings)
    if archs is None:
        archs = sample_archs(fam, n_archs, seed) if fam.space.size > n_archs else list(fam.space.grid())
    table.measure(family_units(fam, task, archs, table.granularity), chunk=chunk, seed=seed, progress=progress)
    return table


@register_source("lut")
class LutLatency(LatencyModel):
    """Latency from a lookup table (calibrated LUT sum). ``table``: a ``LatencyTable`` or the path of one.

    ``on_missing="measure"`` measures units the table lacks (and saves them when the table has a file);
    ``"error"`` raises ``LutError``.
    """

    def __init__(
        self,
        family: Family | str | Mapping[str, Any],
        task: Task,
        table: LatencyTable | str | Path,
        *,
        calibrated: bool = True,
        on_missing: str = "measure",
        metric: str = "latency_ms",
    ) -> None:
        super().__init__(family, task, metric)
        self.table = table
        self.calibrated = calibrated
        self.on_missing = on_missing

    @property
    def lut(self) -> LatencyTable:
        if not isinstance(self.table, LatencyTable):
            self.table = LatencyTable.load(self.table)
        return self.table

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if self.on_missing not in ("measure", "error"):
            raise LutError(f"on_missing must be 'measure' or 'error', got {self.on_missing!r}")
        fam, lut = self.fam, self.lut
        lays = [fam.layers(self.check(a), self.task) for a in archs]
        if self.on_missing == "measure":
            lut.measure([u for lay in lays for u in lut.units(lay)])
        return np.array([lut.predict(lay, self.calibrated) for lay in lays], dtype=float)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "table": str(self.lut.path), "calibrated": self.calibrated}
