"""The SQL schema (version ``SCHEMA_VERSION``) and the conversion of a ``Trial`` to and from its row.

Schema 2 added the artifact table, schema 3 the lease table; a database of an older schema gains them (and nothing
else changes) when nasforge first writes to it. A row whose values cannot be read is a ``_BadField`` naming the
column, which the storage turns into a one-line ``DamagedError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..space import Arch
from ..trial import State, Trial

SCHEMA_VERSION = 3
meta = sa.MetaData()
meta_table = sa.Table(
    "nasforge_meta", meta, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text)
)
studies_table = sa.Table(
    "nasforge_studies",
    meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), unique=True, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("config", sa.Text, nullable=False, default="{}"),
)
trials_table = sa.Table(
    "nasforge_trials",
    meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("nasforge_studies.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("arch_key", sa.String(32), nullable=False),
    sa.Column("arch", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("feasible", sa.Boolean, nullable=False, default=True),
    sa.Column("metrics", sa.Text, nullable=False, default="{}"),
    sa.Column("costs", sa.Text, nullable=False, default="{}"),
    sa.Column("curve", sa.Text, nullable=False, default="[]"),
    sa.Column("error", sa.Text),
    sa.Column("worker", sa.String(200)),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("duration_s", sa.Float),
    sa.Column("artifact", sa.Text),
    sa.UniqueConstraint("study_id", "number"),
    sa.UniqueConstraint("study_id", "arch_key"),
)
events_table = sa.Table(
    "nasforge_events",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("nasforge_studies.id"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # "ask" (value = n requested) or "tell" (value = trial number)
    sa.Column("value", sa.Integer, nullable=False),
)
artifacts_table = sa.Table(  # schema 2: the database artifact store (small models)
    "nasforge_artifacts",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("nasforge_studies.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("arch_key", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("study_id", "number", "name"),
)
leases_table = sa.Table(  # schema 3: which driver runs a study, until when (``lease.py``)
    "nasforge_leases",
    meta,
    sa.Column("study_id", sa.Integer, sa.ForeignKey("nasforge_studies.id"), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("ttl_s", sa.Float, nullable=False),
)
sa.Index("ix_trials_study", trials_table.c.study_id, trials_table.c.number)
sa.Index("ix_events_study", events_table.c.study_id, events_table.c.id)
sa.Index("ix_artifacts_arch", artifacts_table.c.study_id, artifacts_table.c.arch_key)
ADDED_IN = {"nasforge_artifacts": 2, "nasforge_leases": 3}  # tables a database of an older schema gains when written
NASFORGE_TABLES = frozenset(t.name for t in meta.sorted_tables)


def _clean(v: Any) -> Any:
    # NaN/inf are not JSON; store them as null so that other tools can read the database
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), separators=(",", ":"))


def nan_dict(text: str) -> dict[str, float]:
    d = json.loads(text)
    if not isinstance(d, dict) or not all(v is None or isinstance(v, int | float) for v in d.values()):
        raise ValueError("not a JSON object of numbers")
    return {k: (math.nan if v is None else v) for k, v in d.items()}


def trial_row(study_id: int, t: Trial) -> dict[str, Any]:
    return {
        "study_id": study_id,
        "number": t.number,
        "arch_key": t.arch.key,
        "arch": t.arch.to_json(),
        "state": State(t.state).value,
        "feasible": bool(t.feasible),
        "metrics": dumps(t.metrics),
        "costs": dumps(t.costs),
        "curve": dumps(t.curve),
        "error": t.error,
        "worker": t.worker,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "duration_s": t.duration_s,
        "artifact": t.artifact,
    }


class BadField(Exception):
    def __init__(self, field: str, cause: BaseException) -> None:
        super().__init__(field)
        self.field, self.cause = field, cause


def _curve(text: str) -> list[dict[str, float]]:
    c = json.loads(text)
    if not isinstance(c, list) or not all(isinstance(p, dict) for p in c):
        raise ValueError("not a JSON list of objects")
    return c


def _number(v: Any) -> float | None:
    if v is not None and not isinstance(v, int | float):
        raise ValueError(f"{v!r} is not a number")
    return v


_FIELDS: dict[str, Any] = {
    "number": lambda v: int(v) if isinstance(v, int) else _fail(f"{v!r} is not an integer"),
    "arch": Arch.from_json,
    "state": State,
    "feasible": bool,
    "metrics": nan_dict,
    "costs": nan_dict,
    "curve": _curve,
    "error": lambda v: v,
    "worker": lambda v: v,
    "started_at": _number,
    "finished_at": _number,
    "duration_s": _number,
    "artifact": lambda v: v,
}


def _fail(why: str) -> Any:
    raise ValueError(why)


def row_trial(m: Mapping[str, Any]) -> Trial:
    values = {}
    for name, parse in _FIELDS.items():
        try:
            values[name] = parse(m[name])
        except Exception as e:  # any unreadable value is the same fault to the user: a damaged row
            raise BadField(name, e) from None
    return Trial(**values)
