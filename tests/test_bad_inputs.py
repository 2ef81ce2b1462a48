"""A catalogue of bad inputs a new user meets, each one line on stderr, exit status 2, and the database unchanged.

Every case runs in-process through ``nasforge.cli.main`` against a copy of a database that already holds a study
(``base``, made by the real CLI), and the copy's SQL dump must equal the original's afterwards. Groups follow the
issue: usage, values, YAML, constraints/objectives, data/names, storage. ``benchmarks/bad_inputs.py`` runs the same
catalogue in fresh processes and writes the table for RESULTS.md. A handful of subprocess tests at the end run what
only a real process shows: a usage error (so that a dependency change in the command-line framework is caught),
``--version``, the bug line after an unexpected exception, and the Ctrl-C hint.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_data

from nasforge.cli import main

# a base study: two quick trainings (what a user has after a first try)
QUICK = ["--train-subset", "64", "--val-size", "32", "--test-subset", "32", "--epochs", "1", "--threads", "1"]
BASE = ["search", "--strategy", "random", "--budget", "2", *QUICK, "--study", "base", "-q"]


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` (``{db}``: the database URL, ``{tmp}``: a scratch folder, ``{yaml}``: a search file
    holding ``yaml``), the text the one error line must hold, and the exit status."""

    group: str
    name: str
    argv: tuple[str, ...]
    needle: str
    yaml: str | None = None
    code: int = 2


def search(*args: str) -> tuple[str, ...]:
    """A search on a fresh study of the base database; quick settings first, so that the case's own options win."""
    return ("search", "--budget", "1", *QUICK, "--study", "fresh", "--storage", "{db}", "-q", *args)


def yaml_case(name: str, text: str, needle: str) -> Case:
    return Case("yaml", name, ("run", "{yaml}", "-q"), needle, yaml=text)


GOOD = "study: fresh\nstorage: {db}\nbudget: 1\n"  # a search file's head, so that only the case's line is wrong

CASES: list[Case] = [
    # --- usage: the command-line framework's own errors ----------------------------------------------------------
    Case("usage", "no command", (), "nasforge needs a command: one of search, run"),
    Case("usage", "mistyped command", ("serch",), "no such command 'serch'. Did you mean 'search'"),
    Case("usage", "mistyped option", search("--bugdet", "3"), "no such option: --bugdet"),
    Case("usage", "budget not a number", search("--budget", "abc"), "invalid value for '--budget'"),
    Case("usage", "epochs not an integer", search("--epochs", "1.5"), "invalid value for '--epochs'"),
    Case("usage", "missing argument", ("show",), "missing argument 'name'"),
    Case("usage", "option without its value", ("search", "--budget"), "option '--budget' requires an argument"),
    Case("usage", "extra argument", ("show", "base", "extra", "--storage", "{db}"), "unexpected extra argument"),
    Case("usage", "group without command", ("latency",), "nasforge latency needs a command: one of measure"),
    Case("usage", "nested group without command", ("latency", "predictor"), "needs a command: one of train"),
    Case("usage", "mistyped root option", ("--verison",), "no such option: --verison"),
    Case("usage", "export without folder", ("export", "base", "--storage", "{db}"), "missing argument 'out_dir'"),
    # --- values: every option against its range, before anything is recorded ------------------------------------
    Case("values", "epochs 0", search("--epochs", "0"), "--epochs must be greater than or equal to 1, got 0"),
    Case("values", "batch size 0", search("--batch-size", "0"), "--batch-size must be greater than or equal to 1"),
    Case("values", "workers 0", search("--workers", "0"), "--workers must be greater than or equal to 1"),
    Case("values", "negative budget", search("--budget", "-1"), "--budget must be greater than or equal to 0"),
    Case("values", "lr 0", search("--lr", "0"), "--lr must be greater than 0"),
    Case("values", "negative lr", search("--lr", "-0.1"), "--lr must be greater than 0"),
    Case("values", "momentum above 1", search("--momentum", "1.5"), "--momentum must be less than or equal to 1"),
    Case("values", "negative seed", search("--seed", "-1"), "--seed must be greater than or equal to 0"),
    Case("values", "threads 0", search("--threads", "0"), "--threads must be greater than or equal to 1"),
    Case("values", "train subset 0", search("--train-subset", "0"), "--train-subset must be greater than or equal"),
    Case("values", "negative test subset", search("--test-subset", "-5"), "--test-subset must be greater than"),
    Case("values", "val size 0", search("--val-size", "0"), "--val-size must be greater than 0"),
    Case("values", "evaluator epochs 0", search("--evaluator-opt", "epochs=0"), "--evaluator-opt epochs must be"),
    Case("values", "evaluator lr a word", search("--evaluator-opt", "lr=abc"), "lr must be a valid number, got 'abc'"),
    Case("values", "evaluator lr infinite", search("--evaluator-opt", "lr=1e999"), "lr must be a finite number"),
    Case("values", "evaluator sets the data set", search("--evaluator-opt", "dataset=mnist"), "cannot be set here"),
    Case("values", "evaluator option unknown", search("--evaluator-opt", "colour=red"), "has no option 'colour'"),
    Case("values", "evolution population -1", search("--strategy", "evolution", "--strategy-opt", "population=-1"),
         "evolution: population must be an integer >= 1, got -1"),
    Case("values", "evolution sample 0", search("--strategy", "evolution", "--strategy-opt", "sample=0"),
         "evolution: sample must be an integer >= 1"),
    Case("values", "evolution retries 0", search("--strategy", "evolution", "--strategy-opt", "retries=0"),
         "evolution: retries must be an integer >= 1"),
    Case("values", "nsga2 population 0", search("--strategy", "nsga2", "--strategy-opt", "population=0"),
         "nsga2: population must be an integer >= 2"),
    Case("values", "strategy seed negative", search("--strategy-opt", "seed=-2"), "--strategy-opt seed must be"),
    Case("values", "option random lacks", search("--strategy", "random", "--strategy-opt", "population=3"),
         "strategy 'random' has no option 'population'"),
    Case("values", "option without =", search("--strategy-opt", "oops"), "must look like key=value"),
    Case("values", "option given twice", search("--strategy-opt", "seed=1", "--strategy-opt", "seed=2"),
         "option 'seed' is given twice"),
    Case("values", "family option out of range", search("--family", "cell", "--family-opt", "L=0"),
         "L and C must be positive"),
    Case("values", "family option unknown", search("--family-opt", "x=1"), "family 'lenet' has no option 'x'"),
    # --- YAML search files: a schema, keys and lines named --------------------------------------------------------
    yaml_case("empty file", "", "sets nothing"),
    yaml_case("empty mapping", "{}\n", "sets nothing"),
    yaml_case("only a comment", "# a search\n", "sets nothing"),
    yaml_case("a list", "- study\n- family\n", "must hold a mapping of settings"),
    yaml_case("duplicate key", GOOD + "budget: 2\n", "line 4, column 1: key 'budget' is given twice (first on line 3)"),
    yaml_case("unknown key", GOOD + "bugdet: 3\n", "line 4: unknown setting 'bugdet'; did you mean 'budget'?"),
    yaml_case("negative budget", "study: fresh\nstorage: {db}\nbudget: -1\n",
              "line 3: budget must be greater than or equal to 0, got -1"),
    yaml_case("epochs 0", GOOD + "evaluator: {name: train, epochs: 0}\n",
              "line 4: evaluator.epochs must be greater than or equal to 1, got 0"),
    yaml_case("epochs as text", GOOD + "evaluator: {name: train, epochs: '3'}\n",
              "line 4: evaluator.epochs must be a valid integer, got '3'"),
    yaml_case("batch size 0 in config", GOOD + "evaluator_config:\n  batch_size: 0\n",
              "line 5: evaluator_config.batch_size must be greater than or equal to 1"),
    yaml_case("seed a boolean", GOOD + "seed: true\n", "line 4: seed must be a valid integer, got True"),
    yaml_case("workers a fraction", GOOD + "workers: 1.5\n", "line 4: workers must be a valid integer, got 1.5"),
    yaml_case("study a list", "study: [a]\n", "line 1: study must be a valid string"),
    yaml_case("family without name", GOOD + "family: {L: 2}\n", "line 4: family needs a name"),
    yaml_case("constraint a number", GOOD + "constraints: [size<=1M, 3]\n",
              "line 4: constraints.1 must be a valid string, got 3"),
    yaml_case("no objectives", GOOD + "objectives: []\n", "line 4: objectives must not be empty"),
    yaml_case("option given twice", GOOD + "evaluator: {name: train, epochs: 1}\nevaluator_config: {epochs: 2}\n",
              "evaluator_config.epochs is given both in evaluator and in evaluator_config"),
    yaml_case("strategy setting", GOOD + "strategy: {name: evolution, population: -1}\n",
              "line 4: evolution: population must be an integer >= 1, got -1"),
    yaml_case("key not text", GOOD + "1: 2\n", "line 4: key 1 is not text"),
    yaml_case("broken syntax", "study: [fresh\n", "is not valid YAML/JSON: line 2, column 1"),
    yaml_case("impossible date", GOOD + "note: 2001-13-01\n", "is not valid YAML/JSON: month must be in 1..12"),
    yaml_case("python tag", GOOD + "x: !!python/object/apply:os.system ['touch {tmp}/pwned']\n",
              "could not determine a constructor for the tag"),
    yaml_case("alias bomb", GOOD + "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
              + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcd", "bcde", strict=True)),
              "expands to more than 100,000 values"),
    yaml_case("recursive alias", GOOD + "a: &a [1, *a]\n", "an alias refers to a node that holds it"),
    yaml_case("cost model without name", GOOD + "cost_models: [{source: lut}]\n", "cost_models.0 needs a name"),
    yaml_case("too deep", GOOD + "x: " + "[" * 1000 + "]" * 1000 + "\n", "it is nested too deeply"),
    Case("yaml", "missing file", ("run", "{tmp}/none.yaml"), "search file {tmp}/none.yaml does not exist"),
    Case("yaml", "not text", ("run", "{tmp}/binary.yaml"), "is not UTF-8 text"),
    Case("yaml", "a folder", ("run", "{tmp}"), "is a folder; give the path of a YAML or JSON file"),
    # --- constraints and objectives ------------------------------------------------------------------------------
    Case("constraints", "unreadable limit", search("-c", "size<=abc"), "cannot read constraint 'size<=abc'"),
    Case("constraints", "two limits in one", search("-c", "size<=1M,macs<=2M"), "holds several limits"),
    Case("constraints", "wrong unit", search("-c", "size<=5parsecs"), "unit 'parsecs' does not fit 'size'"),
    Case("constraints", "infinite limit", search("-c", "macs<=1e999"), "the limit must be a finite number"),
    Case("constraints", "markup in text", search("-c", "[/x]<=3"), "cannot read constraint '[/x]<=3'"),
    Case("constraints", "two objectives in one", search("-o", "val_acc,-size"), "names several metrics"),
    Case("constraints", "direction alone", search("-o", "maximize"), "cannot read objective 'maximize'"),
    Case("constraints", "objective twice", search("-o", "maximize val_acc", "-o", "max val_acc"),
         "objective 'val_acc' is given twice"),
    Case("constraints", "two objectives, one-objective strategy",
         search("--strategy", "evolution", "-o", "maximize val_acc", "-o", "-size"),
         "strategy 'evolution' optimises 1 objective, not 2"),
    Case("constraints", "objective metric typo", search("-o", "maximize vall_acc"),
         "unknown metric 'vall_acc' in objective"),
    Case("constraints", "constraint metric typo", search("-c", "sise<=1M"), "unknown metric 'sise' in constraint"),
    Case("constraints", "impossible constraint", search("-c", "size<=0.001MiB"),
         "no arch of the 729 in family 'lenet' meets size<=0.001MiB"),
    # --- data sets, names, studies ------------------------------------------------------------------------------
    Case("names", "unknown family", search("--family", "nope"), "unknown family 'nope'"),
    Case("names", "unknown strategy", search("--strategy", "nope"), "unknown strategy 'nope'"),
    Case("names", "unknown data set", search("--dataset", "nope"), "data set 'nope' is neither a known name"),
    Case("names", "unknown evaluator", search("--evaluator", "nope"), "unknown evaluator 'nope'"),
    Case("names", "unknown latency source", search("--latency", "guessed"), "unknown latency source 'guessed'"),
    Case("names", "data folder without data", search("--data-dir", "{tmp}"), "not found; looked in"),
    Case("names", "study name with a slash", search("--study", "a/b"), "study name 'a/b' is not allowed"),
    Case("names", "study name ..", search("--study", ".."), "study name '..' is not allowed"),
    Case("names", "empty study name", search("--study", ""), "--study must not be empty"),
    Case("names", "show unknown study", ("show", "nope", "--storage", "{db}"), "no study 'nope'"),
    Case("names", "best unknown study", ("best", "nope", "--storage", "{db}"), "no study 'nope'"),
    Case("names", "report unknown study", ("report", "nope", "--storage", "{db}", "--out", "{tmp}/r.html"),
         "no study 'nope'"),
    Case("names", "export unknown trial", ("export", "base", "{tmp}/out", "--trial", "99", "--storage", "{db}"),
         "study 'base' has no trial 99"),
    Case("names", "space of unknown family", ("space", "nope"), "unknown family 'nope'"),
    Case("names", "sort by unknown metric", ("show", "base", "--storage", "{db}", "--sort", "vall_acc"),
         "--sort 'vall_acc': no trial of study 'base' has that metric"),
    Case("values", "show a negative number of rows", ("show", "base", "--storage", "{db}", "--limit", "-1"),
         "invalid value for '--limit'"),
    Case("values", "latency table of no archs", ("latency", "lut", "--archs", "0", "--out", "{tmp}/l.json"),
         "invalid value for '--archs'"),
    Case("values", "predictor trained on one arch", ("latency", "predictor", "train", "--n-train", "1"),
         "invalid value for '--n-train': Input should be greater than or equal to 5"),
    Case("values", "no timed repeats", ("latency", "measure", "--family", "lenet", "--random", "1", "--repeats", "0"),
         "invalid value for '--repeats'"),
    Case("values", "no benchmark seeds", ("bench", "nb201", "--seeds", "0"), "--seeds and --budget must be at least 1"),
    Case("names", "export onto a file", ("best", "base", "--storage", "{db}", "--export", "{tmp}/notes.txt"),
         "cannot write {tmp}/notes.txt: File exists"),
    Case("names", "report into a missing place", ("report", "base", "--storage", "{db}", "--out", "/proc/r.html"),
         "cannot write /proc/r.html"),
    # --- storage, as far as the command line reaches it -----------------------------------------------------------
    Case("storage", "resume with other settings", ("search", "--strategy", "random", "--budget", "2", *QUICK,
         "--epochs", "3", "--study", "base", "--storage", "{db}", "-q"),
         "study 'base' was created with evaluator_config.epochs=1 (now 3)"),
    Case("storage", "resume with other artifacts", (*BASE, "--storage", "{db}", "--artifacts", "{tmp}/elsewhere"),
         "study 'base' keeps its artifacts in"),
    Case("storage", "not a URL", ("show", "base", "--storage", "notaurl"), "cannot read storage URL 'notaurl'"),
    Case("storage", "unknown database kind", ("show", "base", "--storage", "nosuch://x"),
         "unknown storage kind 'nosuch'"),
    Case("storage", "a folder as database", ("show", "base", "--storage", "sqlite:///{tmp}"),
         "is a folder, not a database file"),
    Case("storage", "a text file as database", ("show", "base", "--storage", "sqlite:///{tmp}/notes.txt"),
         "is corrupt or not a database"),
]  # fmt: skip


def _dump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of a (WAL) SQLite database."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> tuple[Path, list[str]]:
    """A database holding study ``base``, made by the real CLI in its own process (so that it is closed)."""
    require_data("mnist")
    d = tmp_path_factory.mktemp("base")
    db = d / "base.db"
    r = subprocess.run([sys.executable, "-m", "nasforge.cli", *BASE, "--storage", f"sqlite:///{db}"],
                       capture_output=True, text=True, timeout=300, env=_env())  # fmt: skip
    assert r.returncode == 0, r.stderr
    return db, _dump(db)


def _env() -> dict[str, str]:
    import nasforge

    src = str(Path(nasforge.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}


def prepare(case: Case, base: Path, tmp: Path) -> tuple[list[str], Path]:
    """The case's argv with its placeholders filled, against a fresh copy of the base database in ``tmp``."""
    db = tmp / "case.db"
    _copy(base, db)
    arts = base.parent / "base_artifacts"  # the study records its artifact folder relative to the database's
    if arts.is_dir() and not (tmp / arts.name).exists():
        shutil.copytree(arts, tmp / arts.name)
    (tmp / "notes.txt").write_text("not a database\n")
    (tmp / "binary.yaml").write_bytes(b"\xff\xfe\x00study: x\n")
    fill = {"db": f"sqlite:///{db}", "tmp": str(tmp), "yaml": str(tmp / "search.yaml")}
    if case.yaml is not None:
        (tmp / "search.yaml").write_text(case.yaml.replace("{db}", fill["db"]).replace("{tmp}", fill["tmp"]))
    argv = [a.replace("{db}", fill["db"]).replace("{tmp}", fill["tmp"]).replace("{yaml}", fill["yaml"])
            for a in case.argv]  # fmt: skip
    return argv, db


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.name}" for c in CASES])
def test_bad_input(case, base_db, tmp_path, capsys, monkeypatch):
    base, before = base_db
    monkeypatch.chdir(tmp_path)  # a default --storage would land here, not in the repository
    monkeypatch.setenv("NASFORGE_DATA", os.environ.get("NASFORGE_DATA", "") if "--data-dir" not in case.argv
                       else str(tmp_path / "nothing"))  # fmt: skip
    argv, db = prepare(case, base, tmp_path)
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = error_lines(err)
    needle = case.needle.replace("{tmp}", str(tmp_path))
    assert rc == case.code, err
    # one line on stderr, starting with "error:", holding the needle; nothing from deep inside
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in out + err
    after = _dump(db)
    assert after == before, "the database changed"
    assert not (tmp_path / "pwned").exists()


def test_catalogue_covers_every_group():
    groups = {c.group for c in CASES}
    assert groups == {"usage", "values", "yaml", "constraints", "names", "storage"}
    assert len(CASES) >= 60 and len({(c.group, c.name) for c in CASES}) == len(CASES)


# --- a refused run leaves no trace, and the corrected command then works on the same study ---------------------------
@pytest.mark.parametrize(
    "bad, good",
    [
        (["-o", "maximize vall_acc"], ["-o", "maximize val_acc"]),  # a typo in a metric
        (["-c", "size<=0.001MiB"], ["-c", "size<=0.05MiB"]),  # an impossible constraint, then relaxed
        (["--strategy", "evolution", "--strategy-opt", "population=-1"],
         ["--strategy", "evolution", "--strategy-opt", "population=2"]),  # a bad strategy setting
        (["--epochs", "0"], ["--epochs", "1"]),  # a value out of range
    ],
)  # fmt: skip
def test_refused_run_leaves_no_trace_and_the_corrected_command_works(bad, good, base_db, tmp_path, capsys):
    from nasforge.study import Study
    from nasforge.trial import State

    base, before = base_db
    db = tmp_path / "case.db"
    _copy(base, db)
    common = ["search", "--strategy", "random", "--budget", "1", *QUICK, "--study", "again", "--storage",
              f"sqlite:///{db}", "-q"]  # fmt: skip
    assert main([*common, *bad]) == 2
    after = _dump(db)
    assert after == before  # a refusal by the study itself (metric names, impossibility) included
    capsys.readouterr()
    assert main([*common, *good]) == 0, capsys.readouterr().err
    s = Study.open("again", f"sqlite:///{db}", create=False)
    assert [t.state for t in s.trials()] == [State.COMPLETE]


@pytest.mark.parametrize("bad", [["-o", "maximize vall_acc"], ["-c", "size<=0.001MiB"], ["--epochs", "0"]])
def test_refused_run_on_a_new_database_creates_no_file_or_folder(bad, tmp_path, monkeypatch, capsys):
    require_data("mnist")
    monkeypatch.chdir(tmp_path)
    where = tmp_path / "runs" / "new.db"
    argv = ["search", "--strategy", "random", "--budget", "1", *QUICK, "--study", "s", "--storage", f"sqlite:///{where}",
            "-q", *bad]  # fmt: skip
    assert main(argv) == 2
    assert error_lines(capsys.readouterr().err)[0].startswith("error: ")
    assert list(tmp_path.iterdir()) == []  # no database, no folder for it, no artifact folder


# --- an accepted run that ends without a result exits non-zero, saying why --------------------------------------------
def test_every_trial_failing_is_an_error_naming_the_cause(base_db, tmp_path, capsys):
    base, _ = base_db
    db = tmp_path / "case.db"
    _copy(base, db)
    rc = main(["search", "--strategy", "random", "--budget", "2", *QUICK, "--lr", "1e6", "--batch-size", "8",
               "--study", "diverge", "--storage", f"sqlite:///{db}", "-q"])  # fmt: skip
    lines = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: all 2 evaluated trials failed, the first with: training loss exploded")


def test_nothing_meeting_a_measured_constraint_is_an_error_naming_the_closest_trial(base_db, tmp_path, capsys):
    from nasforge.study import Study

    base, _ = base_db
    db = tmp_path / "case.db"
    _copy(base, db)
    rc = main(["search", "--strategy", "random", "--budget", "2", *QUICK, "-c", "val_acc>=101", "--study", "high",
               "--storage", f"sqlite:///{db}", "-q"])  # fmt: skip
    lines = error_lines(capsys.readouterr().err)
    trials = Study.open("high", f"sqlite:///{db}", create=False).trials()
    best = max(trials, key=lambda t: (t.metrics["val_acc"], -t.number))  # the closest to the limit
    assert rc == 2 and len(lines) == 1 and len(trials) == 2, lines
    assert lines[0].startswith(f"error: no trial of 2 meets val_acc>=101; the closest, trial {best.number} ")
    assert f"has val_acc={best.metrics['val_acc']:.2f}" in lines[0]


# --- what only a real process shows -----------------------------------------------------------------------------------
def cli_process(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasforge.cli", *args], capture_output=True, text=True,
                          timeout=120, env=_env(), **kw)  # fmt: skip


def test_usage_error_in_a_real_process():
    """Runs the command-line framework for real: a dependency change that breaks usage errors shows up here."""
    r = cli_process("search", "--bugdet", "3")
    assert r.returncode == 2 and error_lines(r.stderr) == [
        "error: no such option: --bugdet (Possible options: --budget, --quiet) (see 'nasforge search --help')"
    ], r.stderr
    r = cli_process()
    assert r.returncode == 2 and len(error_lines(r.stderr)) == 1 and "needs a command" in r.stderr


def test_version():
    from nasforge import __version__

    r = cli_process("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"nasforge {__version__}" and not r.stderr


def test_unexpected_exception_shows_its_traceback_and_says_it_is_a_bug(tmp_path):
    """A bug is not dressed up as a user error: its traceback stays, with a last line saying it is a bug."""
    code = ("import sys, nasforge.cli as c\n"
            "def boom(): raise ZeroDivisionError('deep inside')\n"
            "c.app.command('boom')(boom)\n"
            "sys.exit(c.main(['boom']))\n")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    lines = error_lines(r.stderr)
    assert r.returncode == 1 and lines[0] == "Traceback (most recent call last):"
    assert "ZeroDivisionError: deep inside" in r.stderr and lines[-1].startswith("nasforge bug: an unexpected error")


def test_ctrl_c_prints_how_to_resume(tmp_path):
    """SIGINT during a search: exit 130 and the hint on stderr (typer used to swallow it into a bare exit 130)."""
    require_data("mnist")
    db = tmp_path / "i.db"
    cmd = [sys.executable, "-m", "nasforge.cli", "search", "--strategy", "random", "--budget", "50",
           "--train-subset", "20000", "--val-size", "100", "--test-subset", "100", "--epochs", "5", "--threads", "1",
           "--study", "i", "--storage", f"sqlite:///{db}", "-q"]  # fmt: skip
    # a shell that starts jobs in the background hands them SIGINT ignored; the child must take Ctrl-C as a user does
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not _running(db):
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert error_lines(err)[-1] == "interrupted: finished trials are saved; rerun the same command to resume", err
    assert "Traceback" not in err


def _running(db: Path) -> bool:
    """Whether the search has recorded a trial as started (so that Ctrl-C lands inside a training)."""
    if not db.exists():
        return False
    try:
        con = sqlite3.connect(db)
        try:
            return bool(con.execute("select count(*) from nasforge_trials").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return False

