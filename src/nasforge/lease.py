"""One driver per study: a lease in the database, renewed by a heartbeat, that a dead driver loses.

Until drivers cooperate (the scale-out issue), a study is run by one driver at a time: a second driver on the same
study would ask the strategy for the same trials, rerun the ones the first is running and record them twice. So
``Study.run`` holds the study's lease while it runs (``with Lease(...)``):

- taking it is an atomic compare-and-set in the database (``Storage.take_lease``); a second driver is refused with a
  one-line ``LeaseHeld`` that names the holder and says how long until its lease expires;
- a heartbeat thread renews it every third of its time to live, and every write of a trial renews it in the write's
  own transaction or is refused (``LeaseLost``): a driver that stalled past its lease while another took over can never
  record a trial again (fencing);
- a dead driver loses it when it expires, or at once when it ran on this machine (same host and process namespace)
  and its process is gone, so that rerunning after kill -9 resumes without waiting.

Storages that no other process can reach (``memory://``, in-memory SQLite) need no heartbeat: only a driver in the
same process could contend, and the lease never expires for it.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from types import TracebackType

from .storage import LeaseHeld, LeaseLost, Storage

LEASE_S = 60.0  # a dead driver on another machine holds its study at most this long
_FOREVER = 1e12  # the lease of a study no other process can reach: it never expires
_OWNER = re.compile(r"^(?P<pid>\d+)@(?P<host>[^/]*)/(?P<ns>[^/]*)/(?P<token>\w+)$")


def _namespace() -> str:
    """This process's PID namespace (Linux): two containers with one host name do not see each other's processes."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def owner_id() -> str:
    """A driver's identity in a lease: ``pid@host/pid-namespace/random token`` (the token tells two runs apart)."""
    return f"{os.getpid()}@{socket.gethostname()}/{_namespace()}/{uuid.uuid4().hex[:12]}"


def describe(owner: str) -> str:
    m = _OWNER.match(owner)
    return f"process {m['pid']} on {m['host']}" if m else owner


def dead_here(owner: str) -> bool:
    """Whether ``owner`` ran on this machine, in this process namespace, and its process is gone."""
    m = _OWNER.match(owner)
    if not m or m["host"] != socket.gethostname() or m["ns"] != _namespace():
        return False
    pid = int(m["pid"])
    if pid == os.getpid():
        return False  # another run in this process: alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    # a killed child that its parent has not reaped yet still answers kill(pid, 0)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Lease:
    """Holds study ``name``'s lease in ``storage`` for the ``with`` block (see the module docstring)."""

    def __init__(self, storage: Storage, study_id: int, name: str, ttl_s: float = LEASE_S) -> None:
        self.storage = storage
        self.study_id = study_id
        self.name = name
        self.ttl_s = float(ttl_s) if storage.shareable else _FOREVER
        self.owner = owner_id()
        self.lost = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.take()
        if self.storage.shareable:
            self._beat = threading.Thread(target=self._heartbeat, name=f"nasforge-lease-{self.name}", daemon=True)
            self._beat.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            self.storage.drop_lease(self.study_id, self.owner)
        except Exception:  # noqa: S110 - an unreachable database: the lease lapses by itself
            pass

    def take(self) -> None:
        holder = self.storage.take_lease(self.study_id, self.owner, self.ttl_s)
        if holder is not None and dead_here(holder.owner):
            holder = self.storage.take_lease(self.study_id, self.owner, self.ttl_s, replace=holder.owner)
        if holder is not None:
            left = max(0.0, holder.expires_at - time.time())
            raise LeaseHeld(
                f"study {self.name!r} is being run by another driver ({describe(holder.owner)}); its lease expires in "
                f"{left:.0f} s unless that driver renews it, which it does while it runs: wait for it to finish, or "
                "use another --study name"
            )

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if self.storage.take_lease(self.study_id, self.owner, self.ttl_s) is not None:
                    self.lost = True  # another driver took over: every further write of ours is refused
                    return
            except Exception:  # noqa: S112 - a locked or unreachable database: try at the next beat
                continue

    def lost_error(self) -> LeaseLost:
        return LeaseLost(
            f"this driver no longer holds study {self.name!r}: another driver took it over after this one had not "
            f"renewed its lease for {self.ttl_s:g} s; nothing more was recorded here (rerun to resume once it is done)"
        )
