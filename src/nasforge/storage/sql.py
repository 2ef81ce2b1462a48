"""SQL storage: SQLite by default (WAL), any SQLAlchemy URL for a shared server.

Every change is one transaction. A database written by a newer schema, one that is not nasforge's, or a corrupt file is
refused, never changed: it is inspected read-only before anything writes to it (even the switch to WAL mode). Reading
never creates anything: a missing file is a one-line error, and a database is created (and an older schema upgraded,
additively) only when something is written. Creation is serialised by a lock in the database, so two processes that
create one at once both succeed. Faults are one-line errors that say which they are (``errors.py`` beside this file:
read-only, locked, damaged, unreachable, missing). Schema 2 added the artifact table, schema 3 the lease table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from ..errors import StorageError
from ..trial import State, Trial
from . import errors as faults  # the timeouts, read when used (tests shorten them)
from .base import BACKENDS, DEFAULT_URL, Holder, Storage, check_study_name
from .errors import DamagedError, LeaseLost, MissingDatabase, explain
from .schema import (
    ADDED_IN,
    NASFORGE_TABLES,
    SCHEMA_VERSION,
    BadField,
    artifacts_table,
    events_table,
    leases_table,
    meta,
    meta_table,
    row_trial,
    studies_table,
    trial_row,
    trials_table,
)

_DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}  # pip names
_WORKER_STATE: dict[str, tuple[sa.Engine, bool, frozenset[str]]] = {}  # in a worker: one engine per database

@BACKENDS.register("sql")
class SqlStorage(Storage):
    """SQLite (WAL) or any SQLAlchemy database. The first read connects and inspects the schema; the first write
    creates (or upgrades) it."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self._engine: sa.Engine | None = None
        self._writable = False  # schema created or upgraded, WAL on: writes may go
        self._tables: frozenset[str] = frozenset()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}  # a worker process opens its own connection

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a worker receives one copy per job: they share one engine per database and process (one schema check)
        self.__init__(state["url"])
        self._in_worker = True
        if state["url"] in _WORKER_STATE:
            self._engine, self._writable, self._tables = _WORKER_STATE[state["url"]]

    # --- where ------------------------------------------------------------------------------------------------------
    def _url(self) -> sa.URL:
        try:
            return sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            raise StorageError(f"cannot read storage URL {self.url!r}; use e.g. sqlite:///nasforge.db") from None

    def _sqlite_path(self) -> Path | None:
        u = self._url()
        if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
            return Path(u.database)
        return None

    @property
    def db_path(self) -> Path | None:
        try:
            path = self._sqlite_path()
        except StorageError:
            return None
        return None if path is None else path.resolve()

    @property
    def shareable(self) -> bool:
        try:
            return self._url().get_backend_name() != "sqlite" or self._sqlite_path() is not None
        except StorageError:
            return False

    @property
    def where(self) -> str:
        """The database as messages name it: the file, or the URL without its password."""
        try:
            path = self._sqlite_path()
            return str(path) if path is not None else self._url().render_as_string(hide_password=True)
        except StorageError:
            return self.url

    # --- connection and schema ----------------------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        """The engine, ready for writing (the database created or upgraded if need be)."""
        return self._ready(write=True)

    def _ready(self, write: bool) -> sa.Engine:
        if self._engine is None:
            self._engine = self._open(write)
        if write and not self._writable:
            self._prepare_for_writing()
            self._writable = True
        if getattr(self, "_in_worker", False):
            _WORKER_STATE[self.url] = (self._engine, self._writable, self._tables)
        return self._engine

    def _open(self, write: bool) -> sa.Engine:
        """An engine for the database, its schema inspected (read-only: a database nasforge refuses stays as it was).
        Reading a missing file is refused; reading one in a read-only folder falls back to SQLite's immutable mode."""
        url, path = self._url(), self._sqlite_path()
        try:
            url.get_dialect()
        except sa.exc.NoSuchModuleError:
            raise StorageError(
                f"unknown storage kind {url.drivername!r} in {self.where}; use sqlite:///FILE, "
                "postgresql://USER@HOST/DATABASE or memory://"
            ) from None
        except ImportError:
            pass  # a known kind whose driver is missing: _engine_for says which to install
        if path is not None and path.is_dir():
            raise StorageError(f"{path} is a folder, not a database file; name a file in it, e.g. "
                               f"sqlite:///{path / 'nasforge.db'}")  # fmt: skip
        if path is not None and not path.exists():
            if not write:
                raise MissingDatabase(
                    f"there is no database at {path} (nothing was created); check the --storage path, or run a "
                    "search to create one"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = self._engine_for(url, path)
        try:
            self._inspect(engine)
        except sa.exc.SQLAlchemyError as e:
            engine.dispose()
            err = explain(e, self)
            if write or path is None or not _immutable_ok(e, path):
                raise err from None
            engine = self._engine_for(url, path, immutable=True)  # a read-only folder: read the file as it is
            try:
                self._inspect(engine)
            except sa.exc.SQLAlchemyError:
                engine.dispose()
                raise err from None
            self._immutable = True
        except StorageError:
            engine.dispose()
            raise
        return engine

    def _engine_for(self, url: sa.URL, path: Path | None, immutable: bool = False) -> sa.Engine:
        args: dict[str, Any] = {}
        backend = url.get_backend_name()
        if backend == "sqlite" and "timeout" not in url.query:
            args["timeout"] = faults.BUSY_TIMEOUT_S
        elif backend != "sqlite":  # a server that accepts but never answers must not hang us forever
            key = "timeout" if url.get_driver_name() in ("pg8000", "asyncpg") else "connect_timeout"
            if key not in url.query:
                args[key] = faults.CONNECT_TIMEOUT_S
        try:
            if immutable:
                import sqlite3
                from urllib.parse import quote

                uri = f"file:{quote(str(path.resolve()))}?immutable=1"
                engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, **args))
            else:
                engine = sa.create_engine(url, connect_args=args)
        except ImportError as e:
            mod = (e.name or "").split(".")[0]
            raise StorageError(
                f"cannot open {self.where}: the Python driver {mod!r} for {backend} URLs is not installed; install it "
                f"(pip install {_DRIVERS.get(mod, mod)})"
            ) from None
        except Exception as e:  # a bad option in the URL
            raise StorageError(f"cannot open storage {self.where}: {str(e).splitlines()[0]}") from None
        if backend == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def _inspect(self, engine: sa.Engine) -> int | None:
        """Read the schema without writing: refuse a foreign, newer or damaged database; return its version (None for
        an empty database)."""
        with engine.connect() as conn:
            tables = frozenset(sa.inspect(conn).get_table_names())
            if "nasforge_meta" not in tables:
                if tables:
                    raise StorageError(
                        f"{self.where} holds tables that are not nasforge's ({', '.join(sorted(tables)[:5])}); "
                        "refusing to write to it (it was left untouched): choose another --storage"
                    )
                self._tables = frozenset()
                return None
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
        version = int(row[0]) if row and str(row[0]).isdigit() else None
        if version is None:
            raise DamagedError(f"{self.where} has no readable nasforge schema version; refusing to use it")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.where} was written by a newer nasforge (schema {version}, this one reads {SCHEMA_VERSION}); "
                "upgrade nasforge to open it"
            )
        missing = NASFORGE_TABLES - tables
        lacking = sorted(t for t in missing if ADDED_IN.get(t, 0) <= version)
        if lacking:
            raise DamagedError(f"{self.where} lacks nasforge tables {lacking}; it is damaged, refusing to use it")
        self._tables = tables & NASFORGE_TABLES
        return version

    def _prepare_for_writing(self) -> None:
        """Create the schema, or add the tables of a newer one, under a lock in the database (two processes creating
        one database at once: the second waits, then finds it made); then switch SQLite to WAL mode."""
        if getattr(self, "_immutable", False):
            raise explain(_ReadOnlyFolder(), self)
        engine = self._engine
        assert engine is not None
        backend = engine.dialect.name
        try:
            if backend == "sqlite":
                with engine.connect() as c:
                    conn = c.execution_options(isolation_level="AUTOCOMMIT")
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, taken before looking again
                    try:
                        self._create_or_upgrade(conn)
                        conn.exec_driver_sql("COMMIT")
                    except BaseException:
                        conn.exec_driver_sql("ROLLBACK")
                        raise
                    if self._sqlite_path() is not None:
                        # WAL + NORMAL: a commit survives a killed process (not a power cut) without an fsync per trial
                        _to_wal(conn)
            else:
                with engine.begin() as conn:
                    if backend == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7304051)"))  # nasforge's schema lock
                    self._create_or_upgrade(conn)
        except sa.exc.SQLAlchemyError as e:
            raise explain(e, self) from None

    def _create_or_upgrade(self, conn: sa.Connection) -> None:
        tables = frozenset(sa.inspect(conn).get_table_names())
        if "nasforge_meta" not in tables:
            if tables:
                raise StorageError(f"{self.where} holds tables that are not nasforge's; refusing to write to it")
            meta.create_all(conn)
            conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        else:
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
            version = int(row[0]) if row and str(row[0]).isdigit() else SCHEMA_VERSION
            if version < SCHEMA_VERSION:  # additive upgrade: new tables only, existing rows untouched
                added = sorted(t for t in NASFORGE_TABLES - tables if ADDED_IN.get(t, 0) > version)
                meta.create_all(conn, tables=[meta.tables[t] for t in added])
                conn.execute(
                    meta_table.update().where(meta_table.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
                )
        self._tables = NASFORGE_TABLES

    @contextmanager
    def _tx(self, write: bool) -> Iterator[sa.Connection]:
        """A connection (a transaction when writing); database faults become one-line ``StorageError``s."""
        try:
            engine = self._ready(write)
            with engine.begin() if write else engine.connect() as conn:
                yield conn
        except sa.exc.IntegrityError:
            raise  # a race that the caller resolves
        except sa.exc.SQLAlchemyError as e:
            raise explain(e, self) from None

    def close(self) -> None:
        cached = _WORKER_STATE.get(self.url)
        if self._engine is not None and (cached is None or cached[0] is not self._engine):
            self._engine.dispose()
        self._engine, self._writable = None, False

    # --- studies ------------------------------------------------------------------------------------------------
    def _find(self, conn: sa.Connection, name: str) -> int | None:
        row = conn.execute(sa.select(studies_table.c.id).where(studies_table.c.name == name)).first()
        return None if row is None else int(row[0])

    def study_id(self, name: str, create: bool = True) -> int:
        try:
            with self._tx(write=False) as conn:
                sid = self._find(conn, name) if self._tables else None
        except MissingDatabase as e:
            if not create:
                raise MissingDatabase(f"no study {name!r}: {e}") from None
            sid = None
        if sid is not None:
            return sid
        if not create:
            raise self._missing_study(name)
        check_study_name(name)
        for _ in range(3):  # another process may create the same study at the same moment
            try:
                with self._tx(write=True) as conn:
                    sid = self._find(conn, name)
                    if sid is None:
                        row = {"name": name, "created_at": time.time(), "config": "{}"}
                        res = conn.execute(studies_table.insert().values(**row))
                        sid = int(res.inserted_primary_key[0])
                return sid
            except sa.exc.IntegrityError:
                time.sleep(0.05)
        raise StorageError(f"could not create study {name!r} in {self.where}: another process keeps racing for it")

    def study_names(self) -> list[str]:
        with self._tx(write=False) as conn:
            if not self._tables:
                return []
            return [r[0] for r in conn.execute(sa.select(studies_table.c.name).order_by(studies_table.c.id))]

    def get_config(self, study_id: int) -> dict[str, Any]:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(studies_table.c.config).where(studies_table.c.id == study_id)).first()
        if row is None:
            return {}
        try:
            cfg = json.loads(row[0])
            if not isinstance(cfg, dict):
                raise ValueError("not a JSON object")
        except (ValueError, TypeError) as e:
            raise self._damaged(study_id, "the recorded configuration", e) from None
        return cfg

    def set_config(self, study_id: int, config: Mapping[str, Any]) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                studies_table.update().where(studies_table.c.id == study_id).values(config=json.dumps(config))
            )

    # --- trials and events --------------------------------------------------------------------------------------
    def record_ask(self, study_id: int, n: int, trials: Sequence[Trial], owner: str | None = None) -> None:
        try:
            with self._tx(write=True) as conn:
                self._fence(conn, study_id, owner)
                conn.execute(events_table.insert().values(study_id=study_id, kind="ask", value=n))
                if trials:
                    conn.execute(trials_table.insert(), [trial_row(study_id, t) for t in trials])
                tells = [t.number for t in trials if t.state != State.RUNNING]
                if tells:
                    conn.execute(
                        events_table.insert(), [{"study_id": study_id, "kind": "tell", "value": num} for num in tells]
                    )
        except sa.exc.IntegrityError:
            nums = ", ".join(str(t.number) for t in trials)
            raise StorageError(
                f"trials {nums} are already recorded in {self.where}: another driver is writing to this study; "
                "nothing was recorded twice, rerun to resume"
            ) from None

    def record_finish(self, study_id: int, trial: Trial, owner: str | None = None) -> None:
        row = trial_row(study_id, trial)
        with self._tx(write=True) as conn:
            self._fence(conn, study_id, owner)
            conn.execute(
                trials_table.update()
                .where(trials_table.c.study_id == study_id, trials_table.c.number == trial.number)
                .values({k: v for k, v in row.items() if k not in ("study_id", "number", "arch_key", "arch")})
            )
            conn.execute(events_table.insert().values(study_id=study_id, kind="tell", value=trial.number))

    def trials(self, study_id: int) -> list[Trial]:
        c = trials_table.c
        with self._tx(write=False) as conn:
            if not self._tables:
                return []
            rows = conn.execute(sa.select(trials_table).where(c.study_id == study_id).order_by(c.number)).all()
        return [self._trial(study_id, r._mapping) for r in rows]

    def events(self, study_id: int) -> list[tuple[str, int]]:
        c = events_table.c
        with self._tx(write=False) as conn:
            if not self._tables:
                return []
            rows = conn.execute(sa.select(c.id, c.kind, c.value).where(c.study_id == study_id).order_by(c.id)).all()
        bad = next((r for r in rows if r[1] not in ("ask", "tell") or not isinstance(r[2], int)), None)
        if bad is not None:
            raise self._damaged(study_id, f"event row {bad[0]}", ValueError(f"{bad[1]!r} {bad[2]!r}"))
        return [(k, int(v)) for _, k, v in rows]

    def _trial(self, study_id: int, m: Mapping[str, Any]) -> Trial:
        try:
            return row_trial(m)
        except BadField as e:
            raise self._damaged(study_id, f"trial {m.get('number')} ({e.field})", e.cause) from None

    def _damaged(self, study_id: int, what: str, cause: BaseException) -> DamagedError:
        name = next((n for n in self._names_by_id() if n[0] == study_id), (study_id, f"#{study_id}"))[1]
        why = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return DamagedError(
            f"{self.where}: {what} of study {name!r} is damaged ({why}); restore the database from a copy, or repair "
            "or delete that row"
        )

    def _names_by_id(self) -> list[tuple[int, str]]:
        try:
            with self._tx(write=False) as conn:
                return [(int(i), n) for i, n in conn.execute(sa.select(studies_table.c.id, studies_table.c.name))]
        except StorageError:
            return []

    # --- the study's lease (one driver at a time) ---------------------------------------------------------------
    def take_lease(self, study_id: int, owner: str, ttl_s: float, *, replace: str | None = None) -> Holder | None:
        c = leases_table.c
        for _ in range(3):  # two drivers inserting the first lease row at once: the loser looks again
            now = time.time()
            try:
                with self._tx(write=True) as conn:
                    free = sa.or_(c.owner == owner, c.expires_at < now, *([c.owner == replace] if replace else []))
                    res = conn.execute(
                        leases_table.update().where(c.study_id == study_id, free)
                        .values(owner=owner, expires_at=now + ttl_s, ttl_s=ttl_s)
                    )  # fmt: skip
                    if res.rowcount == 1:
                        return None
                    row = conn.execute(sa.select(c.owner, c.expires_at).where(c.study_id == study_id)).first()
                    if row is not None:
                        return Holder(row[0], float(row[1]))
                    row = {"study_id": study_id, "owner": owner, "expires_at": now + ttl_s, "ttl_s": ttl_s}
                    conn.execute(leases_table.insert().values(**row))
                    return None
            except sa.exc.IntegrityError:
                time.sleep(0.05)
        raise StorageError(f"could not take the lease of study #{study_id} in {self.where}: it keeps changing hands")

    def drop_lease(self, study_id: int, owner: str) -> None:
        c = leases_table.c
        with self._tx(write=True) as conn:
            conn.execute(leases_table.delete().where(c.study_id == study_id, c.owner == owner))

    def _fence(self, conn: sa.Connection, study_id: int, owner: str | None) -> None:
        """Renew ``owner``'s lease inside the write's own transaction, or refuse the write: a driver that lost its
        lease (it stalled past the lease and another driver took over) can never record a trial again."""
        if owner is None:
            return
        res = conn.execute(_FENCE, {"f_study": study_id, "f_owner": owner, "f_now": time.time()})
        if res.rowcount != 1:
            raise LeaseLost(f"the lease of study #{study_id} in {self.where} is no longer held by this driver")

    # --- blobs --------------------------------------------------------------------------------------------------
    def put_blob(self, study_id: int, number: int, arch_key: str, name: str, data: bytes) -> None:
        c = artifacts_table.c
        with self._tx(write=True) as conn:  # replace: a trial run again (left running by a dead worker) rewrites
            conn.execute(artifacts_table.delete().where(c.study_id == study_id, c.number == number, c.name == name))
            conn.execute(
                artifacts_table.insert().values(
                    study_id=study_id, number=number, arch_key=arch_key, name=name, data=bytes(data),
                    created_at=time.time(),
                )
            )

    def get_blob(self, study_id: int, number: int, name: str) -> bytes | None:
        c = artifacts_table.c
        with self._tx(write=False) as conn:
            if "nasforge_artifacts" not in self._tables:  # an older schema, read without upgrading
                return None
            row = conn.execute(
                sa.select(c.data).where(c.study_id == study_id, c.number == number, c.name == name)
            ).first()
        return None if row is None else bytes(row[0])

    def blob_names(self, study_id: int, number: int) -> list[str]:
        c = artifacts_table.c
        with self._tx(write=False) as conn:
            if "nasforge_artifacts" not in self._tables:
                return []
            q = sa.select(c.name).where(c.study_id == study_id, c.number == number).order_by(c.name)
            return [r[0] for r in conn.execute(q)]

    def blob_number(self, study_id: int, arch_key: str) -> int | None:
        c = artifacts_table.c
        with self._tx(write=False) as conn:
            if "nasforge_artifacts" not in self._tables:
                return None
            row = conn.execute(sa.select(c.number).where(c.study_id == study_id, c.arch_key == arch_key)).first()
        return None if row is None else int(row[0])


# built once: a write of every trial runs it
_FENCE = (
    leases_table.update()
    .where(leases_table.c.study_id == sa.bindparam("f_study"), leases_table.c.owner == sa.bindparam("f_owner"))
    .values(expires_at=sa.bindparam("f_now", type_=sa.Float) + leases_table.c.ttl_s)
)


class _ReadOnlyFolder(Exception):
    """Stands for SQLite's SQLITE_READONLY_DIRECTORY when a database read in immutable mode is then written."""

    sqlite_errorname = "SQLITE_READONLY_DIRECTORY"


def _immutable_ok(e: Exception, path: Path) -> bool:
    """Whether a database that could not be opened in a read-only folder can be read as an immutable file: only
    when no write-ahead log holds commits that the file itself lacks."""
    name = getattr(getattr(e, "orig", e), "sqlite_errorname", "")
    wal = path.with_name(path.name + "-wal")
    return name in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN") and (not wal.exists() or wal.stat().st_size == 0)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # per connection, and none of them writes to the file (the switch to WAL is made once, after the schema check)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _to_wal(conn: sa.Connection) -> None:
    """Switch a SQLite database to WAL mode without waiting inside SQLite's busy handler: the switch needs the
    exclusive lock, and a process waiting for it while holding its read lock deadlocks with another that holds the
    write lock and waits to commit (both wait out the busy timeout; seen with four processes creating one database).
    So try without waiting, and on a busy database let go and try again until the usual timeout has passed."""
    import time

    waited = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
    deadline = time.monotonic() + max(waited / 1000, faults.BUSY_TIMEOUT_S)
    conn.exec_driver_sql("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                if conn.exec_driver_sql("PRAGMA journal_mode").scalar() != "wal":
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {waited}")
