"""SQL storage: SQLite by default (WAL), any SQLAlchemy URL for a shared server.

Every change is one transaction. A database written by a newer schema, one that is not nasforge's, or a corrupt file is
refused, never overwritten. Schema 2 added the artifact table; a schema-1 database gains it when opened (nothing else
changes).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DatabaseError, OperationalError

from ..errors import StorageError
from ..space import Arch
from ..trial import State, Trial
from .base import BACKENDS, DEFAULT_URL, Storage, check_study_name

SCHEMA_VERSION = 2
_WORKER_ENGINES: dict[str, sa.Engine] = {}  # in a worker process: one engine per database

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
sa.Index("ix_trials_study", trials_table.c.study_id, trials_table.c.number)
sa.Index("ix_events_study", events_table.c.study_id, events_table.c.id)
sa.Index("ix_artifacts_arch", artifacts_table.c.study_id, artifacts_table.c.arch_key)
_ADDED_IN = {"nasforge_artifacts": 2}  # tables a database of an older schema gains when opened


def _clean(v: Any) -> Any:
    # NaN/inf are not JSON; store them as null so that other tools can read the database
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), separators=(",", ":"))


def _nan_dict(text: str) -> dict[str, float]:
    return {k: (math.nan if v is None else v) for k, v in json.loads(text).items()}


@BACKENDS.register("sql")
class SqlStorage(Storage):
    """SQLite (WAL) or any SQLAlchemy database. The first use connects and checks (or upgrades) the schema."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self._engine: sa.Engine | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}  # a worker process opens its own connection

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a worker receives one copy per job: they share one engine per database and process (one schema check)
        self.url, self._engine, self._in_worker = state["url"], _WORKER_ENGINES.get(state["url"]), True

    # --- connection and schema ----------------------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = self._connect()
            if getattr(self, "_in_worker", False):
                _WORKER_ENGINES[self.url] = self._engine
        return self._engine

    def _sqlite_path(self) -> Path | None:
        u = sa.engine.make_url(self.url)
        if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
            return Path(u.database)
        return None

    @property
    def db_path(self) -> Path | None:
        try:
            path = self._sqlite_path()
        except sa.exc.ArgumentError:
            return None
        return None if path is None else path.resolve()

    @property
    def shareable(self) -> bool:
        try:
            u = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            return False
        return u.get_backend_name() != "sqlite" or self._sqlite_path() is not None

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
        tables = set(sa.inspect(conn).get_table_names())
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
        added = {t for t in missing if _ADDED_IN.get(t, 0) > version}
        if missing - added:
            raise StorageError(
                f"{self.url} lacks nasforge tables {sorted(missing - added)}; it is damaged, refusing to use it"
            )
        if version < SCHEMA_VERSION:  # additive upgrade: new tables only, existing rows untouched
            meta.create_all(conn, tables=[meta.tables[t] for t in sorted(added)])
            conn.execute(
                meta_table.update().where(meta_table.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
            )

    def close(self) -> None:
        if self._engine is not None and self._engine is not _WORKER_ENGINES.get(self.url):
            self._engine.dispose()
            self._engine = None

    # --- studies ------------------------------------------------------------------------------------------------
    def study_id(self, name: str, create: bool = True) -> int:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(studies_table.c.id).where(studies_table.c.name == name)).first()
            if row:
                return int(row[0])
            if not create:
                raise self._missing_study(name)
            check_study_name(name)
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
        with self.engine.begin() as conn:
            conn.execute(events_table.insert().values(study_id=study_id, kind="ask", value=n))
            if trials:
                conn.execute(trials_table.insert(), [_row(study_id, t) for t in trials])
            tells = [t.number for t in trials if t.state != State.RUNNING]
            if tells:
                conn.execute(
                    events_table.insert(), [{"study_id": study_id, "kind": "tell", "value": num} for num in tells]
                )

    def record_finish(self, study_id: int, trial: Trial) -> None:
        row = _row(study_id, trial)
        with self.engine.begin() as conn:
            conn.execute(
                trials_table.update()
                .where(trials_table.c.study_id == study_id, trials_table.c.number == trial.number)
                .values({k: v for k, v in row.items() if k not in ("study_id", "number", "arch_key", "arch")})
            )
            conn.execute(events_table.insert().values(study_id=study_id, kind="tell", value=trial.number))

    def trials(self, study_id: int) -> list[Trial]:
        c = trials_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(trials_table).where(c.study_id == study_id).order_by(c.number)).all()
        return [_trial(r._mapping) for r in rows]

    def events(self, study_id: int) -> list[tuple[str, int]]:
        c = events_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.kind, c.value).where(c.study_id == study_id).order_by(c.id)).all()
        return [(k, int(v)) for k, v in rows]

    # --- blobs --------------------------------------------------------------------------------------------------
    def put_blob(self, study_id: int, number: int, arch_key: str, name: str, data: bytes) -> None:
        c = artifacts_table.c
        with self.engine.begin() as conn:  # replace: a trial run again (left running by a dead worker) rewrites
            conn.execute(artifacts_table.delete().where(c.study_id == study_id, c.number == number, c.name == name))
            conn.execute(
                artifacts_table.insert().values(
                    study_id=study_id, number=number, arch_key=arch_key, name=name, data=bytes(data),
                    created_at=time.time(),
                )
            )

    def get_blob(self, study_id: int, number: int, name: str) -> bytes | None:
        c = artifacts_table.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(c.data).where(c.study_id == study_id, c.number == number, c.name == name)
            ).first()
        return None if row is None else bytes(row[0])

    def blob_names(self, study_id: int, number: int) -> list[str]:
        c = artifacts_table.c
        with self.engine.connect() as conn:
            q = sa.select(c.name).where(c.study_id == study_id, c.number == number).order_by(c.name)
            return [r[0] for r in conn.execute(q)]

    def blob_number(self, study_id: int, arch_key: str) -> int | None:
        c = artifacts_table.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(c.number).where(c.study_id == study_id, c.arch_key == arch_key)).first()
        return None if row is None else int(row[0])


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


def _trial(m: Mapping[str, Any]) -> Trial:
    return Trial(
        number=m["number"],
        arch=Arch.from_json(m["arch"]),
        state=State(m["state"]),
        feasible=bool(m["feasible"]),
        metrics=_nan_dict(m["metrics"]),
        costs=_nan_dict(m["costs"]),
        curve=json.loads(m["curve"]),
        error=m["error"],
        worker=m["worker"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        duration_s=m["duration_s"],
        artifact=m["artifact"],
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL + NORMAL: a commit survives a killed process (not a power cut) without an fsync per trial
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()

