"""Experiment storage: SQLite by default, any SQLAlchemy URL for a shared server.

One row per trial (arch, state, metrics, costs, learning curve, timings, error, worker) and an event log of the
strategy's asks and tells, so that a resumed study can replay its strategy exactly. Every change is one transaction,
so a process killed at any point leaves a consistent database: at worst a trial stays ``running`` and is run again.

A database written by a newer schema, one that is not nasforge's, or a corrupt file is refused, never overwritten.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DatabaseError, OperationalError

from .errors import StorageError
from .space import Arch
from .trial import State

SCHEMA_VERSION = 1
DEFAULT_URL = "sqlite:///nasforge.db"

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
sa.Index("ix_trials_study", trials_table.c.study_id, trials_table.c.number)
sa.Index("ix_events_study", events_table.c.study_id, events_table.c.id)


def _dumps(obj: Any) -> str:
    # NaN/inf are not JSON; store them as null so that other tools can read the database
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), separators=(",", ":"))


@dataclass
class Trial:
    """One recorded trial, as plain data."""

    number: int
    arch: Arch
    state: State
    feasible: bool = True
    metrics: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    artifact: str | None = None

    def value(self, metric: str) -> float | None:
        v = self.metrics.get(metric, self.costs.get(metric))
        return None if v is None else float(v)

    @property
    def values(self) -> dict[str, float]:
        return {**self.costs, **self.metrics}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Storage:
    """A database of studies. The constructor only stores the URL; the first use connects and checks the schema."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self._engine: sa.Engine | None = None

    # --- connection and schema ----------------------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = self._connect()
        return self._engine

    def _sqlite_path(self) -> Path | None:
        u = sa.engine.make_url(self.url)
        if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
            return Path(u.database)
        return None

    def _connect(self) -> sa.Engine:
        try:
            url = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            raise StorageError(f"cannot read storage URL {self.url!r}; use e.g. sqlite:///nasforge.db") from None
        path = self._sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = sa.create_engine(url)
        except Exception as e:  # missing driver, bad option
            raise StorageError(f"cannot open storage {self.url!r}: {e}") from None
        if url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            with engine.begin() as conn:
                self._check_schema(conn)
        except (DatabaseError, OperationalError) as e:
            engine.dispose()
            msg = str(e.orig if hasattr(e, "orig") else e).splitlines()[0]
            raise StorageError(
                f"{self.url} is corrupt or not a database ({msg}); it was left untouched: "
                "move it aside or choose another --storage"
            ) from None
        return engine

    def _check_schema(self, conn: sa.Connection) -> None:
        insp = sa.inspect(conn)
        tables = set(insp.get_table_names())
        if "nasforge_meta" not in tables:
            if tables:
                raise StorageError(
                    f"{self.url} holds tables that are not nasforge's ({', '.join(sorted(tables)[:5])}); "
                    "refusing to write to it: choose another --storage"
                )
            meta.create_all(conn)
            conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
        version = int(row[0]) if row and str(row[0]).isdigit() else None
        if version is None:
            raise StorageError(f"{self.url} has no readable nasforge schema version; refusing to use it")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.url} was written by a newer nasforge (schema {version}, this one reads {SCHEMA_VERSION}); "
                "upgrade nasforge to open it"
            )
        missing = {t.name for t in meta.sorted_tables} - tables
        if missing:
            raise StorageError(f"{self.url} lacks nasforge tables {sorted(missing)}; it is damaged, refusing to use it")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # --- studies ------------------------------------------------------------------------------------------------
    def study_id(self, name: str, create: bool = True) -> int:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(studies_table.c.id).where(studies_table.c.name == name)).first()
            if row:
                return int(row[0])
            if not create:
                known = [r[0] for r in conn.execute(sa.select(studies_table.c.name))]
                raise StorageError(
                    f"no study {name!r} in {self.url}; studies there: {', '.join(known) or 'none'}"
                )
            res = conn.execute(studies_table.insert().values(name=name, created_at=time.time(), config="{}"))
            return int(res.inserted_primary_key[0])

    def study_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(studies_table.c.name).order_by(studies_table.c.id))]

    def get_config(self, study_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(studies_table.c.config).where(studies_table.c.id == study_id)).first()
        return json.loads(row[0]) if row else {}

    def set_config(self, study_id: int, config: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                studies_table.update().where(studies_table.c.id == study_id).values(config=json.dumps(config))
            )

    # --- trials and events --------------------------------------------------------------------------------------
    def record_ask(self, study_id: int, n: int, trials: Sequence[Trial]) -> None:
        """One transaction: the ask event and its new trials (running, or already finished if infeasible)."""
        with self.engine.begin() as conn:
            conn.execute(events_table.insert().values(study_id=study_id, kind="ask", value=n))
            if trials:
                conn.execute(trials_table.insert(), [self._row(study_id, t) for t in trials])
            tells = [t.number for t in trials if t.state != State.RUNNING]
            if tells:
                conn.execute(
                    events_table.insert(), [{"study_id": study_id, "kind": "tell", "value": num} for num in tells]
                )

    def record_finish(self, study_id: int, trial: Trial) -> None:
        """One transaction: the trial's outcome and the tell event."""
        row = self._row(study_id, trial)
        with self.engine.begin() as conn:
            conn.execute(
                trials_table.update()
                .where(trials_table.c.study_id == study_id, trials_table.c.number == trial.number)
                .values({k: v for k, v in row.items() if k not in ("study_id", "number", "arch_key", "arch")})
            )
            conn.execute(events_table.insert().values(study_id=study_id, kind="tell", value=trial.number))

    def mark_started(self, study_id: int, number: int, worker: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                trials_table.update()
                .where(trials_table.c.study_id == study_id, trials_table.c.number == number)
                .values(state=State.RUNNING.value, worker=worker, started_at=time.time())
            )

    @staticmethod
    def _row(study_id: int, t: Trial) -> dict[str, Any]:
        return {
            "study_id": study_id,
            "number": t.number,
            "arch_key": t.arch.key,
            "arch": t.arch.to_json(),
            "state": State(t.state).value,
            "feasible": bool(t.feasible),
            "metrics": _dumps(t.metrics),
            "costs": _dumps(t.costs),
            "curve": _dumps(t.curve),
            "error": t.error,
            "worker": t.worker,
            "started_at": t.started_at,
            "finished_at": t.finished_at,
            "duration_s": t.duration_s,
            "artifact": t.artifact,
        }

    def trials(self, study_id: int) -> list[Trial]:
        c = trials_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(trials_table).where(c.study_id == study_id).order_by(c.number)).all()
        out = []
        for r in rows:
            m = r._mapping
            out.append(
                Trial(
                    number=m["number"],
                    arch=Arch.from_json(m["arch"]),
                    state=State(m["state"]),
                    feasible=bool(m["feasible"]),
                    metrics={k: (math.nan if v is None else v) for k, v in json.loads(m["metrics"]).items()},
                    costs={k: (math.nan if v is None else v) for k, v in json.loads(m["costs"]).items()},
                    curve=json.loads(m["curve"]),
                    error=m["error"],
                    worker=m["worker"],
                    started_at=m["started_at"],
                    finished_at=m["finished_at"],
                    duration_s=m["duration_s"],
                    artifact=m["artifact"],
                )
            )
        return out

    def events(self, study_id: int) -> list[tuple[str, int]]:
        c = events_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.kind, c.value).where(c.study_id == study_id).order_by(c.id)).all()
        return [(k, int(v)) for k, v in rows]

    def artifacts_root(self) -> Path:
        """Where trial artifacts (weights) go: beside a SQLite file, else ``./nasforge_artifacts``."""
        path = self._sqlite_path()
        if path is not None:
            return path.parent / f"{path.stem}_artifacts"
        return Path("nasforge_artifacts")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL + NORMAL: a commit survives a killed process (not a power cut) without an fsync per trial
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
