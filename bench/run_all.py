"""Run every benchmark in ``bench/`` and regenerate ``docs/performance.md`` from their results.

``make bench`` runs this. Each benchmark runs in its own process, one after
the other (they would only measure each other if run together), with its
output in ``var/bench/<mode>/logs/<name>.log``; its results file (one line of
JSON, see ``bench/report.py`` for the shape) goes to the results directory.
Then ``run.json`` records the run (command lines, wall times, exit codes, the
machine: CPUs, load average before and after, Python and PostgreSQL versions,
the git commit) and the document is regenerated: the prose of
``docs/performance.md`` stays as written, the blocks between
``<!-- bench:NAME -->`` markers are rebuilt from the results files.

Modes:

``full`` (default)
    every benchmark at its own default size, results into ``bench/results/``,
    ``docs/performance.md`` regenerated in place. Long: 3½–4 hours on the
    2-vCPU reference machine under the load of other sessions, estimated from
    the durations the results files record (projections, read API and replay
    each load a 1,000,000-event history into PostgreSQL and SQLite: 30–60
    minutes each there; the soaks run 10 minutes per store); not yet timed as
    one run.
``--quick``
    tiny sizes, a smoke run of every script (2.5 minutes here, most of it
    the workers' group joins; the soaks, whose script writes only into
    ``bench/results``, are skipped): results into ``var/bench/quick/results``
    and the document into ``var/bench/quick/performance.md``, so that the
    committed figures are not replaced by toy ones.

A benchmark that fails does not stop the others; this script then exits 1
(after regenerating the document, which says which one failed and shows that
benchmark's previous figures as such). A new ``bench/*.py`` is picked up by
itself: run at its defaults in the full mode, skipped in the quick mode until
it is given a quick size in :data:`BENCHES`.

    .venv/bin/python bench/run_all.py                    # everything (long)
    .venv/bin/python bench/run_all.py --quick            # a smoke run of every script
    .venv/bin/python bench/run_all.py --only workers,ingest
    .venv/bin/python bench/run_all.py --report-only      # regenerate the document only
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from report import RUN_FILE, regenerate  # noqa: E402 - bench/ is not a package

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

NOT_BENCHMARKS = frozenset({"run_all.py", "report.py"})
"""Scripts in ``bench/`` that are not benchmarks."""


@dataclass(frozen=True)
class Bench:
    """How to run one benchmark script in each mode.

    ``quick`` None: not run in the quick mode. ``results``: the results files
    it writes, ``{stem}`` by default; a script that takes ``--out`` is told
    where, one that does not writes into ``bench/results`` itself (and is
    then only run when that is the results directory).
    """

    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] | None = None
    results: tuple[str, ...] = ()

    def result_names(self, name: str) -> tuple[str, ...]:
        """The results files' names."""
        return self.results or (f"{name}.json",)


BENCHES: dict[str, Bench] = {
    "ingest": Bench("ingest.py", quick=("--events", "2000")),
    "workers": Bench("workers.py", quick=("--events", "4000", "--workers", "1,2")),
    "shards": Bench("shards.py", quick=("--events", "4000")),
    "projections": Bench(
        "projections.py",
        quick=("--events", "5000", "--library-cap", "1000", "--lag-seconds", "3"),
    ),
    "api": Bench(
        "api.py",
        quick=("--events", "3000", "--backends", "sqlite", "--duration", "1", "--clients", "1,8"),
    ),
    "replay": Bench("replay.py", quick=("--events", "3000", "--skip-postgres")),
    "cold_start": Bench(
        "cold_start.py",
        quick=("--events", "3000", "--aside", "600", "--rounds", "1", "--snapshot-interval", "5"),
    ),
    "at_rest": Bench("at_rest.py", quick=("--events", "1000")),
    "capacity": Bench("capacity.py", full=("--pg-admin", PG_ADMIN), quick=("--events", "20000")),
    "soak-sqlite": Bench(
        "soak.py",
        full=("--store", "sqlite"),
        quick=("--store", "sqlite", "--minutes", "0.3", "--rate", "200", "--clients", "2"),
        results=("soak-sqlite.json",),
    ),
    "soak-postgres": Bench(
        "soak.py", full=("--store", "postgres"), results=("soak-postgres.json",)
    ),
}
"""The known benchmarks, in the order they run, with their sizes per mode."""


def discover() -> dict[str, Bench]:
    """The known benchmarks that exist, then any other ``bench/*.py`` (full mode only)."""
    present = {p.name for p in (ROOT / "bench").glob("*.py")} - NOT_BENCHMARKS
    out = {name: bench for name, bench in BENCHES.items() if bench.script in present}
    known = {bench.script for bench in BENCHES.values()}
    for script in sorted(present - known):
        out[script.removesuffix(".py")] = Bench(script)
    return out


# -- the machine ---------------------------------------------------------------------------


def git(*args: str) -> str:
    """Output of a git command in the repository ('' if git fails)."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    """CPUs, memory, load, Python and PostgreSQL of this machine, now."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    postgres = None
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            postgres = f"PostgreSQL {row[0]}" if row else None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": memory,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "postgres": postgres,
    }


# -- running -------------------------------------------------------------------------------

_child: subprocess.Popen[bytes] | None = None


def _forward(signum: int, frame: FrameType | None) -> None:
    """Pass SIGTERM/SIGINT to the running benchmark (it cleans up), then stop."""
    if _child is not None and _child.poll() is None:
        _child.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            _child.wait(120)
    raise SystemExit(128 + signum)


def run_one(
    name: str,
    bench: Bench,
    args: list[str],
    *,
    results_dir: Path,
    logs: Path,
    timeout: float | None,
) -> dict[str, Any]:
    """Run one benchmark; return what ``run.json`` records about it."""
    global _child  # noqa: PLW0603 - the signal handler forwards to the running child
    script = ROOT / "bench" / bench.script
    takes_out = '"--out"' in script.read_text(encoding="utf-8")
    names = bench.result_names(name)
    own_dir = results_dir.resolve() == (ROOT / "bench" / "results").resolve()
    if not takes_out and not own_dir:
        return {
            "command": None,
            "status": "skipped: writes only into bench/results (no --out)",
            "results": [],
        }
    target = results_dir / names[0]
    shown_target = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    extra = ["--out", str(shown_target)] if takes_out else []
    command = [sys.executable, str(script.relative_to(ROOT)), *args, *extra]
    shown = " ".join(shlex.quote(c) for c in [".venv/bin/python", *command[1:]])
    log_path = logs / f"{name}.log"
    print(f"\n== {name}: {shown}", flush=True)
    started = time.time()
    with log_path.open("wb") as log:
        _child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = _child.wait(timeout)
        except subprocess.TimeoutExpired:
            _child.send_signal(signal.SIGTERM)
            try:
                _child.wait(120)
            except subprocess.TimeoutExpired:
                _child.kill()
                _child.wait()
            code = -1
        finally:
            _child = None
    seconds = time.time() - started
    written = [
        str(results_dir / n)
        for n in names
        if (results_dir / n).exists() and (results_dir / n).stat().st_mtime >= started
    ]
    if code == 0:
        status = "ok"
    elif code == -1:
        status = f"timed out after {timeout:.0f} s"
    elif written:
        status = f"exit {code} (results written: a target missed?)"
    else:
        status = f"failed (exit {code}, see {log_path.relative_to(ROOT)})"
    tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-3:]
    print(f"   {status} in {seconds:,.0f} s" + ("".join(f"\n   | {t}" for t in tail)), flush=True)
    return {
        "command": shown,
        "seconds": round(seconds, 1),
        "exit_code": code,
        "status": status,
        "results": written,
        "log": str(log_path.relative_to(ROOT)),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The runner's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", help="run only these benchmarks (comma-separated)")
    parser.add_argument("--skip", help="do not run these benchmarks (comma-separated)")
    parser.add_argument("--results", help="results directory (default: by mode, see above)")
    parser.add_argument("--doc", help="document to write (default: by mode, see above)")
    parser.add_argument("--timeout", type=float, help="seconds per benchmark at most")
    parser.add_argument(
        "--report-only", action="store_true", help="run nothing; regenerate the document"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write ``run.json``, regenerate the document."""
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    benches = discover()
    if args.list:
        for name, bench in benches.items():
            sizes = bench.quick if args.quick else bench.full
            shown = "skipped in quick mode" if sizes is None else " ".join(sizes) or "(defaults)"
            print(f"{name:<14} bench/{bench.script:<16} {shown}")
        return 0
    work = ROOT / "var" / "bench" / mode
    results_dir = Path(args.results) if args.results else (
        work / "results" if args.quick else ROOT / "bench" / "results"
    )  # fmt: skip
    doc = Path(args.doc) if args.doc else (
        work / "performance.md" if args.quick else ROOT / "docs" / "performance.md"
    )  # fmt: skip
    template = ROOT / "docs" / "performance.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        regenerate(results_dir, doc, template)
        print(f"regenerated {doc}")
        return 0

    only = {n.strip() for n in (args.only or "").split(",") if n.strip()}
    skip = {n.strip() for n in (args.skip or "").split(",") if n.strip()}
    unknown = (only | skip) - set(benches)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; see --list", file=sys.stderr)
        return 2
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)

    started = datetime.now(UTC).astimezone()
    info = machine()
    commit = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    print(
        f"{mode} run of {len(benches)} benchmark(s) at commit {commit}; load {info['load_before']}"
    )
    record: dict[str, Any] = {}
    failed = False
    for name, bench in benches.items():
        sizes = bench.quick if args.quick else bench.full
        if (only and name not in only) or name in skip:
            continue
        if sizes is None:
            record[name] = {"command": None, "status": "skipped: no quick size", "results": []}
            continue
        timeout = args.timeout or (900.0 if args.quick else None)
        entry = run_one(
            name, bench, list(sizes), results_dir=results_dir, logs=logs, timeout=timeout
        )
        record[name] = entry
        if entry.get("exit_code") not in (None, 0) and not entry.get("results"):
            failed = True
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    run = {
        "command": "bench/run_all.py" + (" --quick" if args.quick else ""),
        "mode": mode,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "machine": info,
        "benches": record,
    }
    (results_dir / RUN_FILE).write_bytes(orjson.dumps(run, option=orjson.OPT_INDENT_2) + b"\n")
    regenerate(results_dir, doc, template)
    print(f"\nresults in {results_dir}; regenerated {doc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
