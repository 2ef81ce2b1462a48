"""Output for programs and pipes: a trial as plain data (``--json``), a table of trials as CSV (``--csv``), and rich
tables that a pipe or a file receives whole instead of cut to 80 columns.

Values are the stored ones (bytes, counts, fractions; never humanised), so that a program reads what the database
holds; a value that JSON cannot hold (NaN, infinity) becomes null.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console

# the --json option every command that has one shares
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout (values as stored), for programs.")]


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def trial_record(t: Any, describe: Callable[[Any], str]) -> dict[str, Any]:
    """One trial as plain data: its number, arch key, arch (a mapping), its readable form, state, costs, metrics,
    timing and error, as stored."""
    return _plain({
        "number": t.number, "key": t.arch.key, "arch": dict(t.arch), "describe": describe(t.arch),
        "state": t.state.value, "feasible": t.feasible, "costs": dict(t.costs), "metrics": dict(t.metrics),
        "duration_s": t.duration_s, "started_at": t.started_at, "finished_at": t.finished_at, "error": t.error,
        "worker": t.worker,
    })  # fmt: skip


def print_json(doc: Any, file: IO[str] | None = None) -> None:
    """One JSON document on stdout (and nothing else there)."""
    f = file or sys.stdout
    f.write(json.dumps(_plain(doc), indent=1, allow_nan=False) + "\n")
    f.flush()


def write_csv(trials: Iterable[Any], describe: Callable[[Any], str], columns: list[str],
              file: IO[str] | None = None) -> None:
    """The trials as CSV with a header: number, key, arch (readable), state, feasible, the given value columns
    (costs and metrics, as stored; empty when absent), duration_s, error and the arch as JSON."""
    w = csv.writer(file or sys.stdout, lineterminator="\n")
    w.writerow(["number", "key", "arch", "state", "feasible", *columns, "duration_s", "error", "arch_json"])
    for t in trials:
        vals = [t.value(c) for c in columns]
        w.writerow([t.number, t.arch.key, describe(t.arch), t.state.value, t.feasible,
                    *("" if v is None else repr(v) for v in vals),
                    "" if t.duration_s is None else repr(t.duration_s), t.error or "", t.arch.to_json()])


def write_rows(rows: Iterable[Mapping[str, Any]], columns: list[str], file: IO[str] | None = None) -> None:
    """Rows of plain values as CSV with a header (``columns``; a missing or null value is empty; a mapping or list is
    written as JSON)."""
    w = csv.writer(file or sys.stdout, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        cells = []
        for c in columns:
            v = _plain(r.get(c))
            cells.append("" if v is None else json.dumps(v) if isinstance(v, dict | list) else repr(v)
                         if isinstance(v, float) else v)  # fmt: skip
        w.writerow(cells)


def one_format(as_json: bool, as_csv: bool) -> None:
    """``--json`` and ``--csv`` exclude each other (a one-line usage error)."""
    if as_json and as_csv:
        from ..errors import NasforgeError

        raise NasforgeError("give at most one of --json and --csv")


def print_whole(console: Console, renderable: Any) -> None:
    """Print a table: to a terminal at its width; anywhere else (a pipe, a file, a test) on a console as wide as the
    table, so that no header and no arch is cut."""
    if console.is_terminal:
        console.print(renderable)
        return
    width = max(80, Console(width=100_000).measure(renderable).maximum)
    Console(file=console.file, width=width, highlight=False).print(renderable)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """A file or folder that cannot be written where the user asked (no such folder, a file in the way, no
    permission, a full disk) is the user's to mend: one line, not a traceback."""
    from ..errors import NasforgeError

    try:
        yield
    except OSError as e:
        where = e.filename or path
        raise NasforgeError(f"cannot write {where}: {e.strerror or e}; choose another place") from None
