"""Regenerate the figures of ``docs/performance.md`` from benchmark results files.

``docs/performance.md`` is its own template: the prose is written by hand,
and each block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
is generated from ``bench/results/NAME.json`` (``NAME`` is the file's stem:
``ingest``, ``workers``, ``soak-sqlite`` ...). Three blocks are special:

* ``run``: the machine, the commit, the date and each benchmark's command
  line, wall time and exit code (from ``run.json``, which ``bench/run_all.py``
  writes);
* ``others``: every results file that has no block of its own;
* a results file with no block and a block with no results file: the first
  goes into ``others``, the second says "not measured".

Everything outside the blocks is left exactly as it was, so regenerating
twice gives the same document and hand-written explanations survive.

Results files have the shape ``{"bench", "figures", "ratios", "targets",
"targets_met"[, "targets_detail"]}``; a file of another shape is shown whole
as figures. ``bench/run_all.py`` calls :func:`regenerate`; it also runs alone:

    .venv/bin/python bench/report.py                       # bench/results -> docs/performance.md
    .venv/bin/python bench/report.py --results DIR --doc OUT.md
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]

BLOCK = re.compile(
    r"(?P<open><!-- bench:(?P<name>[A-Za-z0-9_.-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- /bench:(?P=name) -->)",
    re.DOTALL,
)
"""A generated block: its opening marker, its body and its closing marker."""

SPECIAL = ("run", "others")
RUN_FILE = "run.json"

Row = Sequence[Any]


# -- results ------------------------------------------------------------------------------


@dataclass
class Result:
    """One results file and what the run that produced it says about it."""

    name: str
    data: dict[str, Any]
    path: Path
    this_run: bool = False
    run_recorded: bool = False
    command: str | None = None
    seconds: float | None = None
    exit_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def figures(self) -> dict[str, Any]:
        """The figures (the whole file when it does not have the usual shape)."""
        figures = self.data.get("figures")
        return figures if isinstance(figures, dict) else self.data

    @property
    def ratios(self) -> dict[str, Any]:
        """The ratios of the run (empty when the file has none)."""
        ratios = self.data.get("ratios")
        return ratios if isinstance(ratios, dict) else {}


def load_results(results_dir: Path, run: Mapping[str, Any] | None = None) -> dict[str, Result]:
    """Read every ``*.json`` of ``results_dir`` (``run.json`` aside), by file stem."""
    benches: Mapping[str, Any] = (run or {}).get("benches") or {}
    produced: dict[str, Mapping[str, Any]] = {}  # results files written by this run
    failed: dict[str, Mapping[str, Any]] = {}  # benchmarks of this run that wrote nothing
    for name, entry in benches.items():
        for path in entry.get("results") or []:
            produced[Path(path).stem] = entry
        if entry.get("command") and not entry.get("results"):
            failed[name] = entry
    out: dict[str, Result] = {}
    for path in sorted(results_dir.glob("*.json")):
        if path.name == RUN_FILE:
            continue
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        entry = produced.get(path.stem)
        earlier = failed.get(path.stem)
        out[path.stem] = Result(
            name=path.stem,
            data=data,
            path=path,
            this_run=entry is not None,
            run_recorded=run is not None,
            command=(entry or earlier or {}).get("command"),
            seconds=(entry or earlier or {}).get("seconds"),
            exit_code=(entry or earlier or {}).get("exit_code"),
        )
    return out


# -- formatting ---------------------------------------------------------------------------


def number(value: Any, digits: int = 0) -> str:
    """A figure for a table: thousands separated, ``—`` when missing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if digits == 0 and abs(value) < 100:  # small figures keep their precision
            size = abs(value)
            digits = 4 if 0 < size < 0.1 else 2 if size < 10 else 1
        return f"{value:,.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: Iterable[Row], align: str | None = None) -> str:
    """A Markdown table (``align``: one of ``l``/``r`` per column, right by default)."""
    marks = align or "l" + "r" * (len(header) - 1)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if m == "l" else "---:" for m in marks) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dig(data: Mapping[str, Any], path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"`` (None when any step is missing)."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar leaves of nested figures as (dotted name, value).

    A short list of scalars is kept whole; longer lists and lists of objects
    (samples, per-item breakdowns) are only counted: they belong in the
    file, not in a table.
    """
    if isinstance(data, Mapping):
        out: list[tuple[str, Any]] = []
        for key, value in data.items():
            out += flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(data, list):
        if len(data) <= 12 and all(not isinstance(v, Mapping | list) for v in data):
            return [(prefix, ", ".join(number(v) for v in data))]
        return [(prefix, f"({len(data)} items in the file)")]
    return [(prefix, data)]


MAX_GENERIC_ROWS = 40
"""Rows of a generic table; the rest is in the results file."""


def targets_lines(result: Result) -> str:
    """The targets and whether this run met them."""
    data = result.data
    targets = data.get("targets")
    if not isinstance(targets, Mapping) or not targets:
        return ""
    detail = data.get("targets_detail")
    lines = ["Targets:"]
    for name, goal in targets.items():
        met = detail.get(name) if isinstance(detail, Mapping) else None
        mark = "" if met is None else (" — met" if met else " — **not met**")
        lines.append(f"* `{name}` {number(goal)}{mark}")
    if isinstance(detail, Mapping):
        for name, met in detail.items():
            if name not in targets:
                lines.append(f"* `{name}` — {'met' if met else '**not met**'}")
    overall = data.get("targets_met")
    if overall is not None:
        lines.append(f"* all targets met: **{'yes' if overall else 'no'}**")
    return "\n".join(lines)


def ratios_line(result: Result) -> str:
    """The run's ratios, one line."""
    if not result.ratios:
        return ""
    parts = [f"`{k}` {number(v, 2)}" for k, v in result.ratios.items()]
    return "Ratios: " + "; ".join(parts) + "."


def provenance(result: Result) -> str:
    """Where the block's figures come from."""
    source = (
        f"`{result.path.relative_to(ROOT) if result.path.is_relative_to(ROOT) else result.path}`"
    )
    if result.this_run:
        how = f"measured in this run (`{result.command}`, {number(result.seconds, 0)} s"
        how += ")" if result.exit_code in (None, 0) else f"; it exited {result.exit_code})"
    elif result.exit_code not in (None, 0):
        how = (
            f"**the run above failed** (exit {result.exit_code}, `{result.command}`); "
            "figures of an earlier run"
        )
    elif result.run_recorded:
        how = "not re-run by the run above: figures of an earlier run"
    else:
        how = (
            f"written by `bench/{result.data.get('bench', result.name)}.py` outside a recorded run"
        )
    return f"*Generated from {source}: {how}.*"


# -- renderers per benchmark ----------------------------------------------------------------


def render_ingest(result: Result) -> str:
    """Ingest: the end-to-end rates beside their baselines."""
    f = result.figures
    r = result.ratios

    def e2e(store: str) -> str:
        rate = number(f.get(f"ingest_{store}"))
        cpu = dig(f, f"ingest_{store}_outcomes.cpu_us_per_event")
        return f"{rate} ({number(cpu)} µs CPU/event)" if cpu is not None else rate

    crc = "C CRC" if f.get("crc32c_c_extension") else "pure-Python CRC"
    rows = [
        ("produce, confluent-kafka", number(f.get("produce_confluent")), ""),
        (f"consume, kafka-python raw ({crc})", number(f.get("consume_kafka_python")), ""),
        (
            "eventsourcing `save()`, 1,000/txn, PostgreSQL",
            number(f.get("save_batched_postgres")),
            "1",
        ),
        ("eventsourcing `save()`, 1,000/txn, SQLite", number(f.get("save_batched_sqlite")), "1"),
        (
            "**end to end, PostgreSQL**",
            f"**{e2e('postgres')}**",
            f"**{number(r.get('ingest_postgres_vs_save_batched'), 2)} × save**",
        ),
        (
            "end to end, SQLite",
            e2e("sqlite"),
            f"{number(r.get('ingest_sqlite_vs_save_batched'), 2)} × save",
        ),
    ]
    out = [
        f"{number(f.get('events'))} records.",
        "",
        table(("path", "events/s", "ratio"), rows, "lrr"),
    ]
    outcomes = f.get("ingest_postgres_outcomes")
    if isinstance(outcomes, Mapping):
        out += [
            "",
            "Outcomes of the PostgreSQL run: "
            f"{number(outcomes.get('accepted'))} accepted, {number(outcomes.get('duplicate'))} "
            f"duplicates, {number(outcomes.get('dead_lettered'))} dead-lettered; "
            f"{number(outcomes.get('events_stored'))} events stored (derived events included).",
        ]
    return "\n".join(out)


def render_workers(result: Result) -> str:
    """Workers: events/s, CPU and holds per worker count, per scenario."""
    f = result.figures
    out = [
        (f"`{f['command']}`: " if f.get("command") else "")
        + f"{number(f.get('partitions'))} partitions, batches of {number(f.get('batch_size'))}, "
        f"{number(f.get('cpus'))} CPUs, load average before the run "
        f"{', '.join(number(x, 2) for x in f.get('load_average_before') or [])}.",
    ]
    scenarios = f.get("scenarios") or {}
    for name, scenario in scenarios.items():
        runs = scenario.get("runs") or {}
        base = dig(runs, "1.events_per_second")
        rows = []
        for count, run in runs.items():
            cpu = run.get("cpu_us_per_event") or {}
            cores = run.get("cpu_cores_used") or {}
            postgres = (cpu.get("postgres_backends") or 0) + (cpu.get("postgres_background") or 0)
            pg_cores = (cores.get("postgres_backends") or 0) + (
                cores.get("postgres_background") or 0
            )
            used = (
                f"{number(cpu.get('workers'))} / {number(postgres)} / {number(cpu.get('broker'))}"
            )
            ratio = run["events_per_second"] / base if base else None
            rows.append(
                (
                    count,
                    number(run.get("events_per_second")),
                    number(ratio, 2),
                    number(run.get("seconds"), 1),
                    used,
                    f"{number(cores.get('workers'), 2)} / {number(pg_cores, 2)}",
                    number(run.get("machine_busy_cores"), 2),
                    number(run.get("reference_holds")),
                    number(run.get("dead_lettered")),
                )
            )
        out += [
            "",
            f"**{name}** — {number(scenario.get('events'))} records, key: {scenario.get('key')}, "
            f"{number(scenario.get('districts'))} district(s); records per partition "
            f"{', '.join(number(x) for x in scenario.get('messages_per_partition') or [])}.",
            "",
            table(
                (
                    "workers",
                    "events/s",
                    "× 1 worker",
                    "seconds",
                    "CPU µs/event: workers / PostgreSQL / broker",
                    "cores used: workers / PostgreSQL",
                    "machine busy (cores)",
                    "reference holds",
                    "dead letters",
                ),
                rows,
            ),
        ]
    return "\n".join(out)


def render_projections(result: Result) -> str:
    """Projections: ingest, scan + decode, rebuild, library runner, live lag."""
    f = result.figures

    def per_store(store: str) -> list[str]:
        rebuild = f.get(f"rebuild_{store}") or {}
        scan = f.get(f"scan_decode_{store}")
        per_cpu = f.get(f"scan_decode_{store}_per_cpu_second")
        return [
            f"{number(dig(f, f'ingest_{store}.events_per_second'))} inputs/s",
            f"{number(scan)} events/s ({number(per_cpu)} / CPU s)" if scan else "—",
            (
                f"**{number(rebuild.get('events_per_second'))} events/s** in "
                f"{number(rebuild.get('seconds'), 1)} s "
                f"({number(rebuild.get('events_per_cpu_second'))} / CPU s)"
                if rebuild
                else "—"
            ),
        ]

    pg, lite = per_store("postgres"), per_store("sqlite")
    rows = [
        ("ingest through the pipeline", pg[0], lite[0]),
        ("scan + decode of the log", pg[1], lite[1]),
        ("**rebuild all projections**", pg[2], lite[2]),
    ]
    names = list((dig(f, "rebuild_postgres.projections") or {}).keys()) or list(
        (dig(f, "rebuild_sqlite.projections") or {}).keys()
    )
    for name in names:
        cells = []
        for store in ("postgres", "sqlite"):
            one = dig(f, f"rebuild_{store}.projections.{name}")
            cells.append(f"{number(one.get('seconds'), 1)} s" if one else "—")
        events = dig(f, f"rebuild_postgres.projections.{name}.events") or dig(
            f, f"rebuild_sqlite.projections.{name}.events"
        )
        rows.append((f"— {name} ({number(events)} events)", *cells))
    rows.append(
        (
            "library `ProjectionRunner`, 1 txn/event",
            f"{number(f.get('library_runner_postgres'))} events/s",
            "—",
        )
    )
    live = f.get("live_postgres")
    if isinstance(live, Mapping):
        rows += [
            (
                "live: paced ingest reached",
                f"{number(live.get('ingest_events_per_second'))} events/s",
                "—",
            ),
            (
                "live lag",
                f"p50 {number(live.get('lag_ms_p50'))} ms, "
                f"p99 {number(live.get('lag_ms_p99'))} ms, "
                f"max {number(live.get('lag_ms_max'))} ms",
                "—",
            ),
        ]
    header = (f"{number(f.get('events'))} inputs", "PostgreSQL", "SQLite")
    return table(header, rows, "lrr")


def render_api(result: Result) -> str:
    """Read API: latency and throughput per endpoint and concurrency, per backend."""
    f = result.figures
    backends = f.get("backends") or {}
    out: list[str] = []
    for backend, figures in backends.items():
        rows = []
        for endpoint, steps in figures.items():
            if not isinstance(steps, Mapping) or endpoint in ("load",):
                continue
            for clients, step in steps.items():
                if not isinstance(step, Mapping) or "p50_ms" not in step:
                    continue
                cpu = step.get("server_cpu_ms_per_request", step.get("cpu_ms_per_request"))
                rows.append(
                    (
                        endpoint,
                        clients,
                        f"{number(step.get('p50_ms'), 1)} / {number(step.get('p99_ms'), 1)}",
                        number(step.get("requests_per_second")),
                        number(cpu, 2) if cpu is not None else "—",
                        number(step.get("errors")),
                    )
                )
        generator = figures.get("load_generator", "python")
        out += [
            f"**{backend}** (load generator: {generator})",
            "",
            table(
                ("endpoint", "clients", "p50 / p99 ms", "req/s", "server CPU ms/req", "errors"),
                rows,
                "lrrrrr",
            ),
            "",
        ]
    return "\n".join(out).rstrip()


def render_generic(result: Result) -> str:
    """Any results file: its scalar figures, flattened (the first :data:`MAX_GENERIC_ROWS`)."""
    rows = [(f"`{name}`", number(value)) for name, value in flatten(result.figures)]
    shown = table(("figure", "value"), rows[:MAX_GENERIC_ROWS], "lr")
    if len(rows) > MAX_GENERIC_ROWS:
        shown += f"\n\n… and {len(rows) - MAX_GENERIC_ROWS} more figures in the file."
    return shown


RENDERERS: dict[str, Callable[[Result], str]] = {
    "ingest": render_ingest,
    "workers": render_workers,
    "projections": render_projections,
    "api": render_api,
}


def render_block(result: Result) -> str:
    """The generated body for one results file."""
    renderer = RENDERERS.get(result.name, render_generic)
    parts = [provenance(result), renderer(result), ratios_line(result), targets_lines(result)]
    return "\n\n".join(p for p in parts if p)


def render_run(run: Mapping[str, Any] | None) -> str:
    """The ``run`` block: machine, commit, date, and each benchmark's command."""
    if not run:
        return "*No run recorded yet: `make bench` (or `bench/run_all.py`) writes `run.json`.*"
    machine = run.get("machine") or {}
    lines = [
        f"Generated by `{run.get('command')}` ({run.get('mode')} mode) on {run.get('started')} "
        f"(finished {run.get('finished')}); commit `{run.get('commit')}`"
        + (" with uncommitted changes" if run.get("dirty") else "")
        + ".",
        "",
        f"Machine: {machine.get('nproc')} CPUs ({machine.get('cpu_model') or 'unknown model'}), "
        f"{machine.get('memory_gb')} GB; load average before the run "
        f"{', '.join(number(x, 2) for x in machine.get('load_before') or [])}, after "
        f"{', '.join(number(x, 2) for x in machine.get('load_after') or [])}; "
        f"Python {machine.get('python')}; "
        f"{machine.get('postgres') or 'PostgreSQL version unknown'}.",
        "",
    ]
    rows = []
    for name, entry in (run.get("benches") or {}).items():
        status = entry.get("status") or ("ok" if entry.get("exit_code") == 0 else "failed")
        rows.append(
            (
                name,
                f"`{entry.get('command')}`" if entry.get("command") else "—",
                number(round(entry["seconds"])) if entry.get("seconds") is not None else "—",
                status,
            )
        )
    lines.append(table(("benchmark", "command", "wall s", "result"), rows, "llrl"))
    return "\n".join(lines)


def render_document(
    text: str, results: Mapping[str, Result], run: Mapping[str, Any] | None = None
) -> str:
    """Fill every generated block of ``text``; leave everything else as it is."""
    named = {m.group("name") for m in BLOCK.finditer(text)}

    def body(name: str) -> str:
        if name == "run":
            return render_run(run)
        if name == "others":
            rest = [r for n, r in sorted(results.items()) if n not in named]
            if not rest:
                return "*Every results file has a section of its own above.*"
            return "\n\n".join(f"#### `{r.name}`\n\n{render_block(r)}" for r in rest)
        if name in results:
            return render_block(results[name])
        return f"*Not measured: no `bench/results/{name}.json`.*"

    def fill(match: re.Match[str]) -> str:
        return f"{match.group('open')}{body(match.group('name'))}\n{match.group('close')}"

    return BLOCK.sub(fill, text)


def regenerate(results_dir: Path, doc: Path, template: Path | None = None) -> str:
    """Render ``template`` (default: ``doc`` itself) from ``results_dir`` into ``doc``."""
    run_path = results_dir / RUN_FILE
    run = orjson.loads(run_path.read_bytes()) if run_path.exists() else None
    results = load_results(results_dir, run)
    text = (template or doc).read_text(encoding="utf-8")
    rendered = render_document(text, results, run)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(rendered, encoding="utf-8")
    return rendered


def main(argv: list[str] | None = None) -> int:
    """Regenerate a document from a results directory."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--doc", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--template", help="read the blocks from here (default: --doc)")
    args = parser.parse_args(argv)
    template = Path(args.template) if args.template else None
    regenerate(Path(args.results), Path(args.doc), template)
    print(f"regenerated {args.doc} from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
