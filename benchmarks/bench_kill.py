"""Kill -9 harness: a search killed at chosen and random moments, resumed by running it again, must end equal to an
uninterrupted run, with no trial lost and none evaluated twice, and leave no worker process behind.

    python benchmarks/bench_kill.py [--strategies grid,random,...] [--points 20] [--budget 24] [--seed 0]

For every registered strategy: a reference run (uninterrupted, serial), then kill points, each on a fresh database:

- ``before-commit:N`` / ``after-commit:N``: kill -9 inside the N-th database write, its statements run but not
  committed, or just after its commit (every write of a search is a transaction: config, lease, ask, outcome);
- ``eval:N``: during the N-th evaluation;
- ``time:T``: at a random moment of the run;
- ``chain``: five random kills in a row before the resume;
- ``workers-startup`` / ``workers-time``: with two worker processes, as soon as the pool has spawned them (they are
  still importing) or half a second later; then every process of the killed driver's session must be gone within 5 s.
  These runs ask two archs at a time, so they are resumed, and compared, with two slots in-process (``Batched``: the
  same asks, and outcomes recorded in trial order, so that the comparison is deterministic).

Each killed run is resumed by running the same search again, to the end. Counted: runs whose final trial list
(number, arch, state, metrics, feasibility) equals the reference, trials lost (in the reference but missing or
left running), trials evaluated twice (an evaluation that started although the database already held the trial's
outcome: the evaluator itself checks), and worker processes left running. The evaluator is a deterministic function of
the arch and its seed that takes ``EVAL_S``. Runs are forked from this process (imports paid once) into their own
session, so that ``kill -9`` hits the driver alone and its workers can be found afterwards. Linux (``/proc``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

EVAL_S = 0.02
BUDGET = 24
LIMIT = "macs<=1.2M"  # about half of LeNet's archs: infeasible trials are recorded (and told) without evaluation
_COUNTS: dict[str, int] = {}


# --- the driver (runs in a forked child) ------------------------------------------------------------------------
def quick(arch: Any, ctx: Any) -> dict[str, float]:
    """The evaluator: a fixed function of the arch and the trial's seed, taking ``EVAL_S``; it notes every start, and
    a start whose trial the database already holds an outcome for (a duplicate)."""
    log, db, study = (os.environ.get(k) for k in ("NFK_LOG", "NFK_DB", "NFK_STUDY"))
    if log:
        _note(log, "start", arch.key)
        if db and _recorded(db, study, arch.key):
            _note(log, "dup", arch.key)
    _hook("eval")
    time.sleep(EVAL_S)
    h = int(hashlib.sha256(f"{arch.key}:{ctx.seed}".encode()).hexdigest()[:8], 16)
    return {"val_acc": 50 + (h % 5000) / 100, "test_acc": 40 + (h % 3000) / 100}


def _note(log: str, what: str, key: str) -> None:
    with open(log, "a") as f:  # one short append per line: whole lines even from several processes
        f.write(f"{what} {key} {os.getpid()}\n")


def _recorded(db: str, study: str | None, key: str) -> bool:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute(
            "SELECT t.state FROM nasforge_trials t JOIN nasforge_studies s ON s.id = t.study_id "
            "WHERE s.name = ? AND t.arch_key = ?", (study, key)
        ).fetchone()
    finally:
        con.close()
    return row is not None and row[0] != "running"


def _hook(kind: str) -> None:
    """Stop dead at the chosen point (the harness kills the process when the marker file appears)."""
    at = os.environ.get("NFK_AT", "")
    if not at:
        return
    want, _, n = at.partition(":")
    if want != kind:
        return
    _COUNTS[kind] = _COUNTS.get(kind, 0) + 1
    if _COUNTS[kind] == int(n or 1):
        Path(os.environ["NFK_MARK"]).write_text(kind)
        time.sleep(3600)


def _install_hooks() -> None:
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite as Dialect

    from nasforge.executors import ProcessPool

    commit = Dialect.do_commit

    def do_commit(self: Any, conn: Any) -> None:
        _hook("before-commit")
        commit(self, conn)
        _hook("after-commit")

    Dialect.do_commit = do_commit
    submit = ProcessPool.submit

    def pool_submit(self: Any, job: Any) -> Any:
        f = submit(self, job)
        _hook("workers")  # the pool has just spawned its workers: they are starting up
        return f

    ProcessPool.submit = pool_submit


def drive(db: str, study: str, strategy: str, budget: int, workers: int = 1, seed: int = 0) -> None:
    """The search; ``workers`` > 1 is a process pool, a negative number that many slots in-process (``Batched``)."""
    from nasforge.executors import ProcessPool, Serial
    from nasforge.spaces import MNIST_TASK, create_family
    from nasforge.strategies import create_strategy
    from nasforge.study import Study

    fam = create_family("lenet")
    Study.open(study, f"sqlite:///{db}").run(
        fam, create_strategy(strategy, fam.space, seed=seed), quick, task=MNIST_TASK, constraints=[LIMIT],
        budget=budget, executor=ProcessPool(workers) if workers > 1 else _batched(Serial, -workers), seed=seed,
    )  # fmt: skip


def _batched(serial: type, slots: int) -> Any:
    """An in-process executor with ``slots`` slots: jobs run as they are handed over, so the loop asks for ``slots``
    archs at a time as a process pool does, and records their outcomes in trial order."""
    ex = serial()
    ex.slots = max(1, slots)
    return ex


# --- the harness ------------------------------------------------------------------------------------------------
def _sessions() -> dict[int, int]:
    """pid -> session id of every live (not zombie) process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if rest[0] != "Z":
                out[int(d)] = int(rest[3])
    return out


def left_behind(sid: int, wait_s: float = 5.0) -> list[int]:
    """Processes of session ``sid`` still alive after ``wait_s`` (then killed, so that nothing leaks)."""
    end = time.time() + wait_s
    while True:
        alive = [p for p, s in _sessions().items() if s == sid]
        if not alive or time.time() > end:
            break
        time.sleep(0.05)
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return alive


def run_once(job: dict[str, Any], kill_at: str = "", kill_after_s: float | None = None, delay_s: float = 0.0,
             timeout_s: float = 600) -> dict[str, Any]:  # fmt: skip
    """Run the search in a forked child; kill -9 it at ``kill_at`` (a hook, plus ``delay_s``) or after
    ``kill_after_s``. Returns whether it was killed, its exit code and the processes it left behind."""
    mark = f"{job['db']}.mark"
    Path(mark).unlink(missing_ok=True)
    env = {"NFK_AT": kill_at, "NFK_MARK": mark, "NFK_LOG": job["log"], "NFK_DB": job["db"], "NFK_STUDY": job["study"]}
    pid = os.fork()
    if pid == 0:  # the driver
        code = 1
        try:
            os.setsid()
            os.environ.update(env)
            _install_hooks()
            drive(job["db"], job["study"], job["strategy"], job["budget"], job.get("workers", 1), job["seed"])
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    t0, hit, killed, status = time.time(), None, False, 0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        now = time.time()
        if hit is None and os.path.exists(mark):
            hit = now
        if (hit is not None and now - hit >= delay_s) or (kill_after_s is not None and now - t0 >= kill_after_s):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            killed = True
            break
        if now - t0 > timeout_s:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise RuntimeError(f"run {job} did not finish in {timeout_s} s")
        time.sleep(0.002)
    code = None if killed else os.waitstatus_to_exitcode(status)
    return {"killed": killed, "code": code, "seconds": time.time() - t0, "left": left_behind(pid) if killed else []}


def trial_list(db: str, study: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT t.number, t.arch_key, t.state, t.metrics, t.feasible FROM nasforge_trials t "
            "JOIN nasforge_studies s ON s.id = t.study_id WHERE s.name = ? ORDER BY t.number", (study,)
        ).fetchall()
    finally:
        con.close()
    return [(n, k, s, json.loads(m), bool(f)) for n, k, s, m, f in rows]


def _job(folder: Path, name: str, strategy: str, budget: int, seed: int, workers: int = 1) -> dict[str, Any]:
    return {"db": str(folder / f"{name}.db"), "log": str(folder / f"{name}.log"), "study": "k", "strategy": strategy,
            "budget": budget, "seed": seed, "workers": workers}  # fmt: skip


def kill_point(folder: Path, name: str, strategy: str, spec: str, reference: list[tuple], ref_s: float,
               budget: int, seed: int, rng: random.Random,
               reference_batched: list[tuple] | None = None) -> dict[str, Any]:  # fmt: skip
    """One kill point: kill as ``spec`` says, resume serially to the end, compare with the reference."""
    kind, _, arg = spec.partition(":")
    workers = 2 if kind.startswith("workers") else 1
    job = _job(folder, name, strategy, budget, seed, workers)
    if workers > 1:
        reference = reference_batched
    runs = []
    if kind in ("before-commit", "after-commit", "eval"):
        runs.append(run_once(job, kill_at=spec))
    elif kind == "time":
        runs.append(run_once(job, kill_after_s=float(arg)))
    elif kind == "chain":  # five kills in a row, each at a random moment of what is left
        for _ in range(5):
            runs.append(run_once(job, kill_after_s=rng.uniform(0.05, max(0.1, ref_s))))
    elif kind == "workers-startup":
        runs.append(run_once(job, kill_at="workers"))
    elif kind == "workers-time":
        runs.append(run_once(job, kill_at="workers", delay_s=float(arg)))
    else:
        raise ValueError(f"unknown kill point {spec!r}")
    resumed = run_once({**job, "workers": -workers if workers > 1 else 1})
    final = trial_list(job["db"], job["study"])
    lines = Path(job["log"]).read_text().split("\n") if Path(job["log"]).exists() else []
    final_keys = {t[1] for t in final if t[2] != "running"}
    return {
        "point": spec,
        "killed": sum(r["killed"] for r in runs),
        "resumed_ok": resumed["code"] == 0,
        "equal": final == reference,
        "lost": sum(1 for t in reference if t[1] not in final_keys),
        "twice": sum(1 for ln in lines if ln.startswith("dup ")),
        "reruns": sum(1 for ln in lines if ln.startswith("start ")) - len({ln.split()[1] for ln in lines
                                                                             if ln.startswith("start ")}),
        "left_running": sum(len(r["left"]) for r in runs),
    }  # fmt: skip


def points(n: int, ref_s: float, commits: int, evals: int, rng: random.Random, workers: bool) -> list[str]:
    """``n`` serial kill points spread over the run's writes, evaluations and time, plus the worker ones."""
    k = max(1, n // 4)
    spread = sorted({round(1 + i * (commits - 1) / max(1, k - 1)) for i in range(k)})
    out = [f"before-commit:{c}" for c in spread] + [f"after-commit:{c}" for c in spread]
    out += [f"eval:{e}" for e in sorted({1 + i * max(1, evals - 1) // max(1, k - 1) for i in range(k)})]
    while len(out) < n - 1:
        out.append(f"time:{rng.uniform(0.05, max(0.1, ref_s)):.3f}")
    out.append("chain")
    if workers:
        out += ["workers-startup", "workers-time:0.5"]
    return out


def bench_strategy(folder: Path, strategy: str, n: int, budget: int, seed: int, workers: bool,
                   chosen: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    ref_job = _job(folder, f"{strategy}-ref", strategy, budget, seed)
    t = run_once(ref_job)
    if t["code"] != 0:
        raise RuntimeError(f"the reference run of {strategy} failed")
    reference = trial_list(ref_job["db"], "k")
    batched = None
    if workers or any(p.startswith("workers") for p in chosen or ()):
        bjob = _job(folder, f"{strategy}-ref2", strategy, budget, seed, -2)
        if run_once(bjob)["code"] != 0:
            raise RuntimeError(f"the two-slot reference run of {strategy} failed")
        batched = trial_list(bjob["db"], "k")
    log = Path(ref_job["log"]).read_text().split("\n")
    evals = sum(1 for ln in log if ln.startswith("start "))
    commits = 2 * len(reference) + 4  # about: config, lease, an ask per trial, an outcome per evaluated trial, release
    rng = random.Random(seed)
    rows = []
    for i, spec in enumerate(chosen or points(n, t["seconds"], commits, evals, rng, workers)):
        row = kill_point(folder, f"{strategy}-{i}", strategy, spec, reference, t["seconds"], budget, seed, rng,
                         batched)
        rows.append(row)
        print(f"  {strategy:<10} {spec:<20} killed {row['killed']} equal {row['equal']} lost {row['lost']} "
              f"twice {row['twice']} left {row['left_running']}", flush=True)
    return {"strategy": strategy, "reference_trials": len(reference), "reference_s": t["seconds"],
            "evaluations": evals, "rows": rows}  # fmt: skip


def summary(res: dict[str, Any]) -> dict[str, Any]:
    rows = res["rows"]
    return {
        "strategy": res["strategy"], "points": len(rows), "killed": sum(1 for r in rows if r["killed"]),
        "equal": sum(r["equal"] for r in rows), "resumed": sum(r["resumed_ok"] for r in rows),
        "lost": sum(r["lost"] for r in rows), "twice": sum(r["twice"] for r in rows),
        "left_running": sum(r["left_running"] for r in rows), "reruns": sum(r["reruns"] for r in rows),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from nasforge.strategies import STRATEGIES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategies", default=",".join(STRATEGIES.names()))
    ap.add_argument("--points", type=int, default=20, help="serial kill points per strategy (plus 2 with workers)")
    ap.add_argument("--budget", type=int, default=BUDGET)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-workers", action="store_true")
    ap.add_argument("--kill-points", help="comma-separated points instead of the spread (e.g. eval:3,workers-startup)")
    ap.add_argument("--json", help="write the results here instead of results/kill.json")
    args = ap.parse_args(argv)
    chosen = args.kill_points.split(",") if args.kill_points else None
    out = []
    with tempfile.TemporaryDirectory(prefix="nasforge-kill-") as tmp:
        for s in args.strategies.split(","):
            out.append(bench_strategy(Path(tmp), s, args.points, args.budget, args.seed, not args.no_workers, chosen))
    table = [summary(r) for r in out]
    print("\n| strategy | kill points | killed | resumed | equal to uninterrupted | lost | evaluated twice | "
          "workers left | reruns of interrupted evaluations |\n|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['strategy']} | {r['points']} | {r['killed']} | {r['resumed']} | {r['equal']} | {r['lost']} | "
              f"{r['twice']} | {r['left_running']} | {r['reruns']} |")
    data = {"command": "python benchmarks/bench_kill.py " + " ".join(argv or sys.argv[1:]), "budget": args.budget,
            "eval_s": EVAL_S, "summary": table, "runs": out}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2))
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import save

        print(save("kill", data))
    bad = any(r["equal"] != r["points"] or r["lost"] or r["twice"] or r["left_running"] for r in table)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
