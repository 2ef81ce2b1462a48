"""Database faults are one-line errors that say which fault it is, and nasforge never changes a file it refuses:
read-only file, read-only folder (a healthy database, not "corrupt"), a lock held past the busy timeout, damaged rows,
a foreign file (not switched to WAL), a missing file for a command that only reads (nothing created), two processes
creating one database at once, a refused connection and a server that accepts but never answers (connect timeout)."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from nasforge.cli import main
from nasforge.errors import NasforgeError, StorageError
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.storage import (
    DamagedError,
    LockedError,
    MissingDatabase,
    ReadOnlyError,
    Storage,
    UnreachableError,
)
from nasforge.strategies import create_strategy
from nasforge.study import Study

LENET = create_family("lenet")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def acc(arch, ctx=None):
    return {"val_acc": arch["fc1"] / 10 + arch["conv1_ch"]}


def search(url, name="s", budget=6):
    return Study.open(name, url).run(LENET, create_strategy("grid", LENET.space), acc, task=MNIST_TASK, budget=budget)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def shared_dir():
    """A folder another user can enter (pytest's own are private to their owner)."""
    d = Path(tempfile.mkdtemp(prefix="nasforge-ro-"))
    d.chmod(0o777)
    yield d
    for p in [d, *d.rglob("*")]:
        p.chmod(0o777)
    import shutil

    shutil.rmtree(d, ignore_errors=True)


@contextmanager
def unprivileged():
    """Run the block as a user that permissions bind (root ignores them): 'nobody' when we are root."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def made(folder: Path) -> str:
    url = f"sqlite:///{folder}/db.sqlite"
    search(url).storage.close()
    return url


# --- permissions ------------------------------------------------------------------------------------------------
def test_read_only_database_file_reads_and_refuses_writes_in_one_line(shared_dir):
    url = made(shared_dir)
    (shared_dir / "db.sqlite").chmod(0o444)
    with unprivileged():
        assert len(Study.open("s", url, create=False).trials()) == 6  # show, best, report, export still work
        with pytest.raises(ReadOnlyError, match="is read-only") as e:
            search(url, budget=8)
        assert "corrupt" not in one_line(e) and "chmod" in str(e.value)
        with pytest.raises(ReadOnlyError):
            search(url, name="other")
    assert len(Study.open("s", url, create=False).trials()) == 6


def test_healthy_database_in_read_only_folder_is_not_called_corrupt(shared_dir):
    url = made(shared_dir)
    before = digest(shared_dir)
    shared_dir.chmod(0o555)
    with unprivileged():
        study = Study.open("s", url, create=False)  # read as an immutable file: show works
        assert [t.number for t in study.trials()] == list(range(6)) and study.best() is not None
        assert Storage(url).study_names() == ["s"]
        with pytest.raises(ReadOnlyError, match="the folder .* is read-only") as e:
            search(url, budget=8)
        assert "corrupt" not in one_line(e)
    assert digest(shared_dir) == before  # nothing created, nothing changed


# --- locks, damage, foreign files -------------------------------------------------------------------------------
def test_lock_held_past_the_busy_timeout(tmp_path):
    url = made(tmp_path)
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing for a long time
    try:
        t0 = time.perf_counter()
        with pytest.raises(LockedError, match=r"is locked.*0\.3 s.*timeout=SECONDS") as e:
            search(url + "?timeout=0.3", budget=8)
        one_line(e)
        assert time.perf_counter() - t0 < 10
        assert len(Study.open("s", url, create=False).trials()) == 6  # WAL: readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(search(url, budget=8).trials()) == 8  # and once the lock is gone, the search resumes


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("UPDATE nasforge_trials SET metrics='{oops' WHERE number=2", r"trial 2 \(metrics\)"),
        ("UPDATE nasforge_trials SET state='exploded' WHERE number=3", r"trial 3 \(state\)"),
        ("UPDATE nasforge_trials SET arch='[1,2' WHERE number=1", r"trial 1 \(arch\)"),
        ("UPDATE nasforge_trials SET started_at='noon' WHERE number=0", r"trial 0 \(started_at\)"),
        ("UPDATE nasforge_events SET kind='boom' WHERE id=2", r"event row 2"),
        ("UPDATE nasforge_studies SET config='[1]'", "the recorded configuration"),
    ],
)
def test_damaged_rows_are_named_in_one_line(tmp_path, sql, what):
    url = made(tmp_path)
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute(sql)
    con.commit()
    con.close()
    with pytest.raises(DamagedError, match=f"{what} of study 's' is damaged") as e:
        search(url, budget=8)  # resuming reads everything
    assert "restore the database" in one_line(e)
    if "event" not in what:  # show reads trials and the configuration (not the event log)
        assert main(["show", "s", "--storage", url]) == 2  # and the CLI says the same in one line


def test_foreign_sqlite_file_is_refused_unchanged_and_not_switched_to_wal(tmp_path):
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.execute("INSERT INTO customers VALUES (1)")
    con.commit()
    con.close()
    before = digest(tmp_path)
    url = f"sqlite:///{tmp_path}/other.db"
    for call in (lambda: search(url), lambda: Study.open("s", url, create=False)):
        with pytest.raises(StorageError, match="not nasforge's") as e:
            call()
        one_line(e)
    assert digest(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["other.db"]
    con = sqlite3.connect(tmp_path / "other.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_corrupt_file_mid_search_is_damaged_not_a_traceback(tmp_path):
    url = made(tmp_path)
    Storage(url).close()
    p = tmp_path / "db.sqlite"
    data = bytearray(p.read_bytes())
    data[4096:8192] = os.urandom(4096)  # a torn page
    p.write_bytes(bytes(data))
    for wal in tmp_path.glob("db.sqlite-*"):
        wal.unlink()
    with pytest.raises(NasforgeError) as e:
        search(url, budget=8)
    one_line(e)


# --- reading creates nothing ------------------------------------------------------------------------------------
def test_reading_a_mistyped_path_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/typo/nasforge.db"
    with pytest.raises(MissingDatabase, match="nothing was created") as e:
        Study.open("s", url, create=False)
    one_line(e)
    with pytest.raises(MissingDatabase):
        Storage(url).study_names()
    for argv in (["show", "s"], ["best", "s"], ["report", "s", "--out", str(tmp_path / "r.html")],
                 ["export", "s", str(tmp_path / "out")], ["list"]):  # fmt: skip
        assert main([*argv, "--storage", url]) == 2
    assert sorted(os.listdir(tmp_path)) == []


def test_two_processes_creating_one_database_at_once_both_succeed(tmp_path):
    script = (
        "import sys, time\n"
        "from nasforge.storage import Storage\n"
        "url, name, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])\n"
        "st = Storage(url)\n"
        "while time.time() < t0: time.sleep(0.001)\n"
        "print(name, st.study_id(name))\n"
    )
    for rep in range(2):
        url = f"sqlite:///{tmp_path}/race{rep}.db"
        t0 = time.time() + 4  # all four are started and waiting by then
        env = {**os.environ, "PYTHONPATH": SRC}
        procs = [subprocess.Popen([sys.executable, "-c", script, url, f"s{i % 2}", str(t0)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
        ids = {tuple(o[0].split()) for o in outs}
        assert len(ids) == 2 and sorted(Storage(url).study_names()) == ["s0", "s1"]


# --- servers ----------------------------------------------------------------------------------------------------
def _pg_driver() -> str:
    for mod, url in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        try:
            __import__(mod)
            return url
        except ImportError:
            continue
    pytest.skip("no PostgreSQL driver (psycopg or psycopg2) is installed")


def test_refused_connection_is_unreachable_not_corrupt():
    scheme = _pg_driver()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(UnreachableError, match=f"127.0.0.1:{port}: connection refused") as e:
        Study.open("s", f"{scheme}://u:secret@127.0.0.1:{port}/db", create=False)
    assert "secret" not in one_line(e)


def test_server_that_accepts_and_never_answers_times_out(monkeypatch):
    scheme = _pg_driver()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    threading.Thread(target=lambda: [held.append(srv.accept()) for _ in range(8)], daemon=True).start()
    import nasforge.storage.errors as faults

    monkeypatch.setattr(faults, "CONNECT_TIMEOUT_S", 1)  # the default (10 s) applies to every server URL
    port = srv.getsockname()[1]
    try:
        for url in (f"{scheme}://u@127.0.0.1:{port}/db", f"{scheme}://u@127.0.0.1:{port}/db?connect_timeout=1"):
            t0 = time.perf_counter()
            with pytest.raises(UnreachableError, match="did not answer within 1 s") as e:
                Study.open("s", url)
            one_line(e)
            assert time.perf_counter() - t0 < 8 and held
    finally:
        srv.close()


def test_missing_server_driver_names_the_package():
    try:
        import MySQLdb  # noqa: F401

        pytest.skip("mysqlclient is installed")
    except ImportError:
        pass
    with pytest.raises(StorageError, match="pip install mysqlclient") as e:
        Study.open("s", "mysql://u@127.0.0.1:1/db", create=False)
    one_line(e)
