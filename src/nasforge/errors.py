"""User-facing errors.

Every error a user can cause (bad input, missing data, a corrupt database) is a ``NasforgeError``: its message is one
line that says what is wrong and how to mend it. The CLI prints it without a traceback and exits non-zero.
"""

from __future__ import annotations


class NasforgeError(Exception):
    """Base of all errors caused by the user's input or environment."""


class UnknownNameError(NasforgeError, LookupError):
    """A family, strategy, data set, op or metric name that is not registered."""


class SpaceError(NasforgeError, ValueError):
    """A malformed search space or an arch that does not belong to its space."""


class ConstraintError(NasforgeError, ValueError):
    """A malformed constraint or objective, or one that no arch can meet."""


class DataError(NasforgeError, FileNotFoundError):
    """A data set that cannot be found or read."""


class StorageError(NasforgeError):
    """A database that cannot be used safely (corrupt, foreign, newer schema, mismatched study)."""


class TrialFailed(NasforgeError):
    """Raised by an evaluator when one trial cannot finish (NaN loss, divergence); the search goes on."""


class TrialPruned(Exception):  # noqa: N818 - Optuna's name for the same signal
    """Raised by ``Context.report`` when the study's pruner stops the trial; the evaluator lets it pass, and the
    trial is recorded as ``pruned`` with its curve. A signal, not an error, hence not a ``NasforgeError``."""

    def __init__(self, step: int) -> None:
        super().__init__(f"pruned at step {step}")
        self.step = step
