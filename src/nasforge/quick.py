"""Quick runs: with ``NASFORGE_QUICK=1`` in the environment, the commands that search, train, benchmark or measure
shrink their sizes (budgets, epochs, data subsets, seeds, repeats, sampled archs) to tiny ones, and say so on stderr.

This is how the README's commands and the shipped examples are tested as written, in about a minute: the commands are
the user's, only the sizes shrink. The sizes live here, in ``SIZES``, and nowhere else; a command passes its values
through ``shrink`` (or a search config through ``shrink_config``) and uses what comes back.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

ENV = "NASFORGE_QUICK"

# option -> its quick size; ``None`` for one of CAP_WHEN_NONE ("all the data", "the default") becomes it too
SIZES: dict[str, int] = {
    "budget": 1, "epochs": 1, "train_subset": 32, "test_subset": 16, "val_size": 16,  # search, run
    "seeds": 2,  # bench nb201 (its budget: "budget" above)
    "random": 2, "archs": 6, "calibrate": 3, "repeats": 3, "warmup": 1,  # latency measure, lut
    "n_train": 8, "rounds": 1, "n_test": 4,  # latency predictor
    "n": 40,  # tinynas optimise: archs per sub-space
    "steps": 5,  # hypernet train
}  # fmt: skip
CAP_WHEN_NONE = ("epochs", "train_subset", "test_subset", "val_size")


def enabled() -> bool:
    """Whether quick runs are asked for (``NASFORGE_QUICK`` set to anything but empty or 0)."""
    return os.environ.get(ENV, "").strip() not in ("", "0")


def shrink(command: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every size in ``SIZES`` cut to its quick size when quick runs are on (else unchanged). A size
    already smaller stays; a fraction (a ``val_size`` of 0.1) stays; ``None`` stays, except where it means all the
    data or the default. Says on stderr, once per call, what changed."""
    if not enabled():
        return dict(values)
    out, said = dict(values), []
    for k, v in values.items():
        cap = SIZES.get(k)
        if cap is None or isinstance(v, bool):
            continue
        if v is None:
            new = cap if k in CAP_WHEN_NONE else None
        elif isinstance(v, float) and v < 1:
            new = v
        else:
            new = min(v, cap)
        if new != v:
            out[k] = new
            said.append(f"{k.replace('_', '-')} {'default' if v is None else v}→{new}")
    if said:
        print(f"{ENV} is set: {command} runs tiny ({', '.join(said)}); unset it for the real sizes", file=sys.stderr,
              flush=True)  # fmt: skip
    return out


def shrink_config(cfg: Any, command: str = "search") -> Any:
    """A ``SearchConfig`` with its budget (and, for the train evaluator, its epochs and data subsets) shrunk."""
    if not enabled():
        return cfg
    ev = dict(cfg.evaluator_config)
    sizes = {"budget": cfg.budget}
    if cfg.evaluator == "train":
        sizes.update({k: ev.get(k) for k in ("epochs", "train_subset", "test_subset", "val_size")})
    got = shrink(command, sizes)
    ev.update({k: v for k, v in got.items() if k != "budget" and v is not None})
    return dataclasses.replace(cfg, budget=got["budget"], evaluator_config=ev)
