"""Every bad input a one-line error: run the catalogue of ``tests/test_bad_inputs.py`` in fresh processes, and the
property tests with many examples; write the tables for RESULTS.md.

For each case: a copy of a database holding a study made by the real CLI, the command run as a user runs it
(``python -m nasforge.cli ...``, its own process), and the figures the issue asks for: the error line, the exit status,
whether stderr is that one line, and whether the database is unchanged (its SQL dump equal before and after). Then the
property tests run with ``--examples`` examples per test, and the examples each reader saw (accepted / refused with a
one-line error) are counted.

    python benchmarks/bad_inputs.py [--examples 2000] [--only GROUP]

Writes ``benchmarks/results/bad_inputs.json`` and ``benchmarks/results/bad_inputs.md``. Needs the MNIST data set
(``NASFORGE_DATA``), as the tests do.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests")]

from _common import RESULTS, save  # noqa: E402
from test_bad_inputs import BASE, CASES, QUICK, Case, _dump, _env, prepare  # noqa: E402


def shown(case: Case) -> str:
    """The input as a user types it (``$DB`` for the database URL, ``$TMP`` for a scratch folder)."""
    if case.yaml is not None:
        return "run s.yaml, holding: " + case.yaml.replace("{db}", "$DB").replace("{tmp}", "$TMP").strip()
    words = [a.replace("{db}", "$DB").replace("{tmp}", "$TMP") for a in case.argv]
    if words[:1] == ["search"]:  # the quick settings every search case holds are the same: leave them out
        n = len(QUICK)
        at = next((i for i in range(len(words) - n + 1) if words[i : i + n] == QUICK), None)
        words = [w for w in (words if at is None else words[:at] + words[at + n :]) if w != "-q"]
    return "nasforge " + shlex.join(words)


def run_case(case: Case, base: Path, tmp: Path) -> dict:
    argv, db = prepare(case, base, tmp)
    before = _dump(base)
    env = _env()
    if "--data-dir" in case.argv:
        env["NASFORGE_DATA"] = str(tmp / "nothing")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "nasforge.cli", *argv], capture_output=True, text=True, timeout=600,
                       env=env, cwd=tmp)  # fmt: skip
    wall = time.perf_counter() - t0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    after = _dump(db)
    unchanged = "yes" if after == before else "NO"
    needle = case.needle.replace("{tmp}", str(tmp))
    line = (errors or lines or [""])[0].replace(str(tmp), "$TMP")
    return {
        "group": case.group, "name": case.name, "input": shown(case), "error": line, "exit": r.returncode,
        "one_line": len(lines) == 1 and len(errors) == 1, "expected": bool(errors) and needle in errors[0],
        "unchanged": unchanged, "traceback": "Traceback" in r.stderr, "wall_s": round(wall, 2),
    }  # fmt: skip


def hypothesis_counts(examples: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tally = Path(d) / "tally.json"
        env = {**_env(), "NASFORGE_HYPOTHESIS_EXAMPLES": str(examples), "NASFORGE_HYPOTHESIS_TALLY": str(tally)}
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(ROOT / "tests" /
                            "test_properties.py")], capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
        counts = json.loads(tally.read_text()) if tally.exists() else {}
    return {"examples_per_test": examples, "passed": r.returncode == 0, "summary": r.stdout.strip().splitlines()[-1:],
            "wall_s": round(time.perf_counter() - t0, 1), "readers": counts}  # fmt: skip


def table(rows: list[dict]) -> str:
    def cell(s: object) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ⏎ ")

    out = ["| group | input | error line (stderr) | exit | one line | database unchanged |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(cell(x) for x in (r["group"], f"`{r['input']}`", r["error"], r["exit"],
                                                      "yes" if r["one_line"] else "NO", r["unchanged"])) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000, help="hypothesis examples per property test")
    ap.add_argument("--only", help="run only the cases of this group (usage, values, yaml, ...)")
    args = ap.parse_args()
    cases = [c for c in CASES if args.only in (None, c.group)]
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base.db"
        r = subprocess.run([sys.executable, "-m", "nasforge.cli", *BASE, "--storage", f"sqlite:///{base}"],
                           capture_output=True, text=True, env=_env(), cwd=d)  # fmt: skip
        if r.returncode:
            sys.exit(f"could not make the base study: {r.stderr.strip().splitlines()[-1:]}")
        rows = []
        for i, case in enumerate(cases):
            tmp = Path(d) / f"case{i}"
            tmp.mkdir()
            rows.append(run_case(case, base, tmp))
            print(f"{i + 1}/{len(cases)} {case.group}: {case.name}: exit {rows[-1]['exit']}", file=sys.stderr)
    hyp = hypothesis_counts(args.examples) if args.examples > 0 else {}
    ok = sum(r["exit"] == 2 and r["one_line"] and r["expected"] and not r["traceback"] for r in rows)
    summary = {
        "cases": len(rows), "one_line_exit_2_as_expected": ok,
        "database_unchanged": sum(r["unchanged"] == "yes" for r in rows),
        "database_changed": sum(r["unchanged"] != "yes" for r in rows),
        "median_wall_s": sorted(r["wall_s"] for r in rows)[len(rows) // 2] if rows else None,
    }  # fmt: skip
    cmd = "python benchmarks/bad_inputs.py " + " ".join(sys.argv[1:])
    p = save("bad_inputs", {"command": cmd.strip(), "summary": summary, "cases": rows, "hypothesis": hyp})
    lines = [f"`{cmd.strip()}`", "", "Summary: " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items()),
             "", table(rows)]  # fmt: skip
    if hyp:
        lines += ["", f"Property tests (hypothesis), {hyp['examples_per_test']} examples per test, "
                  f"{'all passed' if hyp['passed'] else 'FAILED'} ({hyp['summary'][0] if hyp['summary'] else ''}):",
                  "", "| reader | examples | accepted (valid object) | refused (one-line error) |", "|---|---|---|---|"]
        for name, c in sorted(hyp["readers"].items()):
            n = c.get("accepted", 0) + c.get("refused", 0)
            lines.append(f"| {name} | {n} | {c.get('accepted', 0)} | {c.get('refused', 0)} |")
    md = "\n".join(lines) + "\n"
    (RESULTS / "bad_inputs.md").write_text(md)
    print(md)
    print(f"wrote {p} and {RESULTS / 'bad_inputs.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
