"""What can go wrong with a database, each fault its own ``StorageError`` with a one-line message saying which it is.

``explain(exc, storage)`` turns a driver's exception (SQLite's extended error names, a server driver's message) into
one of them; it never guesses "corrupt" for a fault that has another cause (a read-only folder, a refused connection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import StorageError

BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's lock before it is reported (URL: ?timeout=)
CONNECT_TIMEOUT_S = 10  # how long to wait for a database server to answer (URL: ?connect_timeout=)


class ReadOnlyError(StorageError):
    """The database file, or the folder SQLite must write its journal into, cannot be written."""


class LockedError(StorageError):
    """Another process held the database's lock for longer than the busy timeout."""


class DamagedError(StorageError):
    """A corrupt file, a missing nasforge table, or a row whose values cannot be read."""


class UnreachableError(StorageError):
    """A database server that refused the connection, did not answer in time, or is unknown."""


class MissingDatabase(StorageError):
    """Reading a database that does not exist (reading never creates one)."""


class LeaseHeld(StorageError):
    """Another driver is running the study."""


class LeaseLost(StorageError):
    """This driver's lease on the study lapsed and another driver took it over."""


def explain(exc: BaseException, storage: Any) -> StorageError:
    """The one-line error for ``exc`` raised while using ``storage`` (a ``SqlStorage``)."""
    orig = getattr(exc, "orig", None) or exc
    name = str(getattr(orig, "sqlite_errorname", ""))
    msg = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    path: Path | None = storage.db_path
    where = storage.where
    if name == "SQLITE_READONLY_DIRECTORY":
        folder = path.parent if path else "its folder"
        return ReadOnlyError(
            f"the folder {folder} is read-only, and SQLite must create {path.name if path else 'its'}-wal and -shm "
            "beside the database to use it; make the folder writable, or copy the database into a writable one"
        )
    if name.startswith("SQLITE_READONLY"):
        return ReadOnlyError(
            f"{where} is read-only ({msg}); make it writable (chmod u+w), or copy it and use the copy with --storage"
        )
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "database is locked" in msg:
        return LockedError(
            f"{where} is locked: another process held it for longer than the busy timeout "
            f"({_busy_timeout(storage):g} s); wait for that process to finish, or raise the timeout with "
            "?timeout=SECONDS in the storage URL"
        )
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or name.startswith("SQLITE_CORRUPT"):
        return DamagedError(
            f"{where} is corrupt or not a database ({msg}); it was left untouched: move it aside or choose another "
            "--storage"
        )
    if name.startswith("SQLITE_CANTOPEN"):
        return StorageError(f"cannot open {where} ({msg}); check that its folder exists and can be read")
    if name == "SQLITE_FULL":
        return StorageError(f"the disk holding {where} is full; free some space, then rerun to resume")
    if name.startswith("SQLITE_IOERR"):
        return StorageError(f"input/output error on {where} ({msg}); check the disk or file system, then rerun")
    return _server(msg, storage) if path is None and not name else StorageError(f"cannot use {where} ({msg})")


def _server(msg: str, storage: Any) -> StorageError:
    low = msg.lower()
    url = storage._url()
    at = f"{url.host or 'localhost'}{':' + str(url.port) if url.port else ''}"
    if "refused" in low:
        return UnreachableError(
            f"cannot reach the database server at {at}: connection refused; start the server, or check the host and "
            "port in --storage"
        )
    if "timeout" in low or "timed out" in low:
        t = url.query.get("connect_timeout") or url.query.get("timeout") or _connect_timeout()
        return UnreachableError(
            f"the database server at {at} did not answer within {t} s (connect timeout); check that it is up and is "
            "a database server, or raise ?connect_timeout=SECONDS in the storage URL"
        )
    if "translate host name" in low or "name or service not known" in low or "nodename nor servname" in low:
        return UnreachableError(f"unknown database host {url.host!r} in --storage; check the URL")
    if "authentication" in low or "password" in low or "access denied" in low:
        return StorageError(f"the database server at {at} refused the login ({msg}); check the user and password")
    return StorageError(f"cannot use {storage.where} ({msg})")


def _busy_timeout(storage: Any) -> float:
    try:
        return float(storage._url().query.get("timeout", BUSY_TIMEOUT_S))
    except (TypeError, ValueError):
        return BUSY_TIMEOUT_S


def _connect_timeout() -> int:
    return CONNECT_TIMEOUT_S
