import pickle
import sqlite3

import pytest

from nasforge.artifacts import (
    ArtifactKey,
    DatabaseStore,
    FolderStore,
    TrialArtifacts,
    open_store,
    store_spec,
)
from nasforge.errors import NasforgeError, StorageError
from nasforge.spaces import MNIST_TASK, create_family
from nasforge.storage import Storage
from nasforge.strategies import create_strategy
from nasforge.strategies.base import Strategy
from nasforge.study import Study


def stores(tmp_path):
    """One store of each backend, each holding a study named 's'."""
    file_db = Storage(f"sqlite:///{tmp_path}/a.db")
    mem = Storage("memory://")
    mem_sqlite = Storage("sqlite://")
    for st in (file_db, mem, mem_sqlite):
        st.study_id("s")
    return {
        "folder": FolderStore(tmp_path / "art"),
        "sqlite-file": DatabaseStore(file_db),
        "memory": DatabaseStore(mem),
        "sqlite-memory": DatabaseStore(mem_sqlite),
    }


@pytest.mark.parametrize("backend", ["folder", "sqlite-file", "memory", "sqlite-memory"])
def test_round_trip_and_lookup_by_arch_key(tmp_path, backend):
    store = stores(tmp_path)[backend]
    k0, k1 = ArtifactKey("s", 0, "aaaa000011112222"), ArtifactKey("s", 1, "bbbb000011112222")
    store.put(k0, "model.pt", b"\x00weights-0")
    store.put(k1, "model.pt", b"weights-1")
    store.put(k1, "log.txt", b"hello")
    assert store.get(k0, "model.pt") == b"\x00weights-0" and store.get(k1, "log.txt") == b"hello"
    assert store.names(k1) == ["log.txt", "model.pt"] and store.names(ArtifactKey("s", 7, "x")) == []
    assert store.find("s", "bbbb000011112222") == k1 and store.find("s", "cccc000011112222") is None
    store.put(k1, "model.pt", b"again")  # a trial run again replaces its files
    assert store.get(k1, "model.pt") == b"again" and store.get(k0, "nope.pt") is None
    with pytest.raises(NasforgeError, match="trial 0 of study 's' has no saved 'nope.pt'") as e:
        store.read(k0, "nope.pt")
    assert "\n" not in str(e.value)
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(NasforgeError, match="plain file name"):
            store.put(k0, bad, b"")


def test_folder_root_recorded_against_the_database_never_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "dbs").mkdir()
    db = Storage(f"sqlite:///{tmp_path}/dbs/x.db")
    assert store_spec(None, db) == {"kind": "folder", "root": "x_artifacts"}
    monkeypatch.chdir(tmp_path)
    assert store_spec("dbs/weights", db) == {"kind": "folder", "root": "weights"}  # typed relative to cwd
    assert store_spec(tmp_path / "elsewhere", db) == {"kind": "folder", "root": str(tmp_path / "elsewhere")}
    assert store_spec("database", db) == {"kind": "database"}
    assert store_spec(None, Storage("memory://")) == {"kind": "database"}
    monkeypatch.chdir(tmp_path / "dbs")  # another working directory, another URL to the same file: same folder
    same = Storage("sqlite:///x.db")
    assert open_store({"kind": "folder", "root": "weights"}, same).root == tmp_path / "dbs" / "weights"
    assert open_store({"kind": "folder", "root": "x_artifacts"}, db).root == tmp_path / "dbs" / "x_artifacts"
    with pytest.raises(StorageError, match="relative to a database file"):
        open_store({"kind": "folder", "root": "w"}, Storage("memory://"))


def test_trial_view_pickles_for_workers(tmp_path):
    key = ArtifactKey("s", 3, "abcd000011112222")
    shared = TrialArtifacts(DatabaseStore(Storage(f"sqlite:///{tmp_path}/a.db")), key)
    shared.store.storage.study_id("s")
    clone = pickle.loads(pickle.dumps(shared))  # a worker reopens the database by URL and writes itself
    clone.put("model.pt", b"w")
    assert clone.pending == {} and shared.store.get(key, "model.pt") == b"w" and clone.saved == ["model.pt"]
    local = TrialArtifacts(DatabaseStore(Storage("memory://")), key)
    away = pickle.loads(pickle.dumps(local))  # an in-memory database stays behind: the files travel back
    away.put("model.pt", b"v")
    assert away.store is None and away.pending == {"model.pt": b"v"} and away.get("model.pt") == b"v"
    with pytest.raises(NasforgeError, match="cannot reach the study's artifact store"):
        away.parent("abcd000011112222")


class Fixed(Strategy):
    """Proposes the given archs in order."""

    def __init__(self, space, archs):
        super().__init__(space, seed=0)
        self.archs = archs

    def _ask(self, n):
        return self.archs[len(self._asked) : len(self._asked) + n]


def fake_train(arch, ctx):
    """Saves its 'weights' and, if its parent (fewer conv1 channels) was trained, reads the parent's."""
    parent = None
    if arch["conv1_ch"] > 3:
        parent_arch = arch.replace(conv1_ch=arch["conv1_ch"] - 3)
        parent = ctx.artifacts.parent(parent_arch.key).decode()
    ctx.artifacts.put("model.pt", f"w{arch['conv1_ch']}".encode())
    return {"val_acc": float(arch["conv1_ch"]), "parent": 0.0 if parent is None else float(parent[1:])}


@pytest.mark.parametrize("where", ["folder", "database", "memory"])
def test_a_later_trial_reads_its_parents_weights(tmp_path, where):
    fam = create_family("lenet")
    url = "memory://" if where == "memory" else f"sqlite:///{tmp_path}/p.db"
    space = fam.space
    # grid order puts conv1_ch first, so every parent (conv1_ch - 3) is trained before its child
    order = [a for a in space.grid() if a["conv1_k"] == 3 and a["conv2_ch"] == 12 and a["conv2_k"] == 3
             and a["fc1"] == 64 and a["fc2"] == 32]  # fmt: skip

    s = Study.open("p", url).run(fam, Fixed(space, order), fake_train, task=MNIST_TASK, objectives=["maximize val_acc"],
                                 artifacts=None if where != "database" else "database")  # fmt: skip
    done = s.trials()
    assert [t.metrics["parent"] for t in done] == [0.0, 3.0, 6.0] and all(t.artifact == "model.pt" for t in done)
    store = s.artifacts
    assert store.kind == ("folder" if where == "folder" else "database")
    assert store.read(s.artifact_key(done[2]), "model.pt") == b"w9"
    assert store.find("p", done[1].arch.key).number == 1


def test_schema_1_database_gains_the_artifact_table(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    st = Storage(url)
    sid = st.study_id("s")
    st.close()
    con = sqlite3.connect(tmp_path / "old.db")  # make it look like a database written before schema 2
    con.execute("DROP TABLE nasforge_artifacts")
    con.execute("UPDATE nasforge_meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    st = Storage(url)
    assert st.study_names() == ["s"]
    st.put_blob(sid, 0, "k", "model.pt", b"x")
    assert st.get_blob(sid, 0, "model.pt") == b"x"
    con = sqlite3.connect(tmp_path / "old.db")
    from nasforge.storage.sql import SCHEMA_VERSION  # upgraded to the current schema (new tables only)

    version = con.execute("SELECT value FROM nasforge_meta WHERE key='schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION)
    con.close()


def test_legacy_folder_layout_is_still_found(tmp_path):
    """Before the store, weights lay in <db stem>_artifacts/<study>/<number>/model.pt."""
    (tmp_path / "art" / "s" / "4").mkdir(parents=True)
    (tmp_path / "art" / "s" / "4" / "model.pt").write_bytes(b"old")
    assert FolderStore(tmp_path / "art").get(ArtifactKey("s", 4, "k"), "model.pt") == b"old"


def save_bytes(arch, ctx):
    ctx.artifacts.put("model.pt", arch.key.encode())
    return {"val_acc": float(arch["fc1"])}


def test_workers_hand_back_what_they_cannot_store():
    """A memory:// study evaluated in worker processes: the files come back with the outcome and are stored."""
    from nasforge.executors import ProcessPool

    fam = create_family("lenet")
    s = Study.open("w", "memory://").run(fam, create_strategy("random", fam.space, seed=1), save_bytes,
                                         task=MNIST_TASK, budget=4, executor=ProcessPool(2))  # fmt: skip
    for t in s.trials():
        assert t.artifact == "model.pt" and s.artifacts.read(s.artifact_key(t), "model.pt") == t.arch.key.encode()
