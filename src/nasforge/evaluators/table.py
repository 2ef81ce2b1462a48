"""Table lookup as an evaluator: NAS-Bench-201 results for a cell in about a microsecond, no training.

``__call__`` returns the accuracy columns (``acc12_<dataset>_<split>``, in %) and the latency columns; the latency
columns (``lat_ms_<device>``) are also the evaluator's ``cheap_metrics``, so a constraint such as ``lat_ms_fpga<=3``
is checked before a query and an infeasible cell is recorded as such without one. The table's networks were trained
on 3×32×32 images with 10 classes (CIFAR-10, whose columns are the default objective), which is the task it reports.
"""

from __future__ import annotations

import os
from typing import Any

from ..space import Arch
from ..task import CIFAR10_TASK, Task
from .base import Context, Evaluator, register_evaluator


@register_evaluator("table")
class TableEvaluator(Evaluator):
    """Looks up an arch of the ``nb201`` family in the NAS-Bench-201 table (read once per process)."""

    default_objectives = ("maximize acc12_cifar10_val",)

    def __init__(self, data_dir: str | os.PathLike | None = None, benchmark: str = "nb201") -> None:
        self.data_dir = data_dir
        self.benchmark = benchmark
        self._table = None

    @property
    def table(self):
        if self._table is None:  # kept on the instance: finding the file on every query would cost ~100 µs
            from ..errors import UnknownNameError
            from ..nb201table import load_table

            if self.benchmark != "nb201":
                raise UnknownNameError(f"unknown table benchmark {self.benchmark!r}; known: nb201")
            self._table = load_table(self.data_dir)
        return self._table

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_table": None}  # a worker process reads the table itself, once

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        t = self.table
        return t.accuracy_columns + t.latency_columns

    @property
    def cheap_metric_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.table.latency_columns

    def task(self) -> Task:
        return CIFAR10_TASK

    def config(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark}  # the data folder does not change the results, so it is not recorded

    def __call__(self, arch: Arch, ctx: Context | None = None) -> dict[str, float]:
        t = self.table
        i = t.index_of(arch)
        return {c: float(t.columns[c][i]) for c in t.accuracy_columns + t.latency_columns}

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        t = self.table
        i = t.index_of(arch)
        return {c: float(t.columns[c][i]) for c in t.latency_columns}
