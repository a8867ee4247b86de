"""Benchmark: point-in-time replay and integrity verification, beside a plain scan + decode.

Not a test: it prints figures. In one run, for PostgreSQL and for SQLite, it

1. generates the demo district's history (``practice_events.demo.generator``,
   ``--events``, default 1,000,000 CloudEvents) and ingests it through the real
   pipeline into a fresh database / file (setup, reported but not a target);
2. picks the **as-of date 6 months into the history** (business time; the
   middle of the window when it is shorter) and the log position where the
   history reaches it (the history is ingested in time order, so that
   position is the log "as known" at that date);
3. measures the **scan + decode baseline**: the notification log read in
   pages of 2,000 and decoded with ``orjson`` (``projections.runner.LogReader``)
   up to that position, the ceiling of any projection;
4. measures **replay of every projection as of that position**
   (``audit replay --position``: all of ``projections.registry`` into a scratch
   SQLite view store, split into ``--jobs`` process groups), as log positions
   per second;
5. measures **replay as happened by that date** (``audit replay --basis
   occurred``, same ``--jobs``): the whole log is read and events after the
   date skipped;
6. **seals** the whole log (the sealing follower, from empty) and
   **verifies** it (log and seals walked together);

then prints events/s and ratios and one line of JSON, also written to
``bench/results/replay.json``. Targets (issue 7): replay ≥ 30,000 events/s
and ≥ 0.25× scan + decode; verify ≥ 100,000 events/s.

    .venv/bin/python bench/replay.py                   # 1,000,000 events
    .venv/bin/python bench/replay.py --events 100000   # a quicker run
    .venv/bin/python bench/replay.py --jobs 1          # replay in one process
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Generator
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 2000
REPLAY_TARGET = 30_000
REPLAY_VS_SCAN_TARGET = 0.25
VERIFY_TARGET = 100_000
JOBS = 2
"""Process groups of the replays (``audit replay --jobs``): two on the 2-core machine."""


# -- input ---------------------------------------------------------------------------------


def history(events: int, seed: int) -> tuple[list[bytes], datetime]:
    """The demo history as CloudEvent bytes (time order) and the as-of date 6 months in."""
    from practice_events.demo.generator import CST, generate, plan

    window = plan(events=events)
    offset = min(182, window.days // 2)
    day = window.start + timedelta(days=offset)
    as_of = datetime.combine(day, clock(23, 59, 59), tzinfo=CST)
    return [orjson.dumps(e) for e in generate(seed=seed, events=events)], as_of


def ingest(url: str, payloads: list[bytes]) -> dict[str, Any]:
    """Ingest through the real pipeline (batches of 2,000); return the figures."""
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import Settings
    from practice_events.ingest.pipeline import RawInput

    settings = Settings(store=url)
    app = build_app(settings)
    try:
        pipeline = build_pipeline(settings, app)
        rejected = 0
        started = time.perf_counter()
        for start in range(0, len(payloads), BATCH):
            batch = [RawInput(payload=p, channel="bench") for p in payloads[start : start + BATCH]]
            rejected += pipeline.process(batch).count("rejected")
        seconds = time.perf_counter() - started
        return {
            "inputs": len(payloads),
            "rejected": rejected,
            "log_events": app.last_position(),
            "inputs_per_second": len(payloads) / seconds,
        }
    finally:
        app.close()


# -- measurements --------------------------------------------------------------------------


def position_happened_by(app: Any, moment: datetime) -> int:
    """The last position whose business time is ≤ ``moment`` (binary search; time-ordered log)."""
    from projections.runner import LogReader

    reader = LogReader(app)
    low, high = 0, reader.head()
    while low < high:
        middle = (low + high + 1) // 2
        page = reader.read(middle - 1, 1, stop=high)
        if not page:
            high = middle - 1
        elif page[0].time <= moment:
            low = page[0].position
        else:
            high = middle - 1
    return low


def scan_decode(app: Any, stop: int) -> float:
    """Read and decode the log up to ``stop`` in pages; positions per second."""
    from projections.runner import LogReader

    reader = LogReader(app)
    position = 0
    started = time.perf_counter()
    while position < stop:
        page = reader.read(position, BATCH, stop=stop)
        if not page:
            break
        position = page[-1].position
    return stop / (time.perf_counter() - started)


def client_cpu() -> float:
    """CPU seconds of this process and its finished children (the replay's worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def replay_rate(app: Any, settings: Any, plan: Any, workdir: Path, jobs: int) -> dict[str, Any]:
    """Replay every projection for ``plan`` into a scratch store in ``jobs`` groups; figures."""
    from practice_events.audit.replay import replay, scratch_views

    views = scratch_views(workdir)
    try:
        started = time.perf_counter()
        cpu = client_cpu()
        result = replay(app, settings, plan, views, batch_size=BATCH, jobs=jobs)
        cpu = client_cpu() - cpu
        seconds = time.perf_counter() - started
    finally:
        views.close()
    return {
        "jobs": jobs,
        "client_cpu_seconds": cpu,
        "position": plan.position,
        "events_read": result.events_read,
        "skipped_after": result.skipped_after,
        "seconds": seconds,
        "events_per_second": plan.position / seconds,
        "projections": sorted(result.projections),
    }


def seal_and_verify(app: Any) -> dict[str, Any]:
    """Seal the whole log from empty, then verify it; figures."""
    from practice_events.audit.integrity import Sealer, log_store, verify

    store = log_store(app)
    started = time.perf_counter()
    sealed = Sealer(app, store=store).seal()
    seal_seconds = time.perf_counter() - started
    report = verify(app, store=store)
    assert report.ok, report.as_dict()
    return {
        "events": report.events_checked,
        "seal_events_per_second": sealed.sealed / seal_seconds,
        "verify_seconds": report.seconds,
        "verify_events_per_second": report.rate,
    }


def run_store(
    label: str, url: str, payloads: list[bytes], as_of: datetime, jobs: int
) -> dict[str, Any]:
    """All measurements on one store."""
    from practice_events.audit.replay import ReplayPlan
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    figures: dict[str, Any] = {"ingest": ingest(url, payloads)}
    print(
        f"{label}: ingested {figures['ingest']['inputs']:,} inputs → "
        f"{figures['ingest']['log_events']:,} log events "
        f"({figures['ingest']['inputs_per_second']:,.0f} inputs/s)",
        flush=True,
    )
    settings = Settings(store=url)
    app = build_app(settings)
    try:
        cut = position_happened_by(app, as_of)
        figures["as_of"] = as_of.isoformat()
        figures["as_of_position"] = cut
        figures["scan_decode_events_per_second"] = scan_decode(app, cut)
        print(
            f"{label}: scan + decode to position {cut:,}    "
            f"{figures['scan_decode_events_per_second']:>10,.0f} events/s",
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            known = ReplayPlan("recorded", cut, as_of)
            figures["replay_position"] = replay_rate(app, settings, known, Path(tmp) / "a", jobs)
            print(
                f"{label}: replay all projections to {cut:,}  "
                f"{figures['replay_position']['events_per_second']:>10,.0f} events/s "
                f"({figures['replay_position']['seconds']:.1f} s, --jobs {jobs})",
                flush=True,
            )
            happened = ReplayPlan("occurred", app.last_position(), as_of, as_of)
            figures["replay_occurred"] = replay_rate(app, settings, happened, Path(tmp) / "b", jobs)
            print(
                f"{label}: replay as happened by {as_of.date()} "
                f"{figures['replay_occurred']['events_per_second']:>10,.0f} events/s "
                f"(whole log, {figures['replay_occurred']['skipped_after']:,} skipped)",
                flush=True,
            )
        figures["integrity"] = seal_and_verify(app)
        print(
            f"{label}: seal {figures['integrity']['seal_events_per_second']:,.0f} events/s; "
            f"verify {figures['integrity']['verify_events_per_second']:,.0f} events/s "
            f"({figures['integrity']['events']:,} events)",
            flush=True,
        )
    finally:
        app.close()
    return figures


# -- stores ----------------------------------------------------------------------------------


def pg_database(admin_url: str, keep: bool) -> Generator[str, None, None]:
    """Create a fresh PostgreSQL database; yield its store URL; drop it unless ``keep``."""
    import psycopg

    name = f"pe_bench_replay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the history")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--jobs",
        type=int,
        default=JOBS,
        help=f"process groups the replays are split into (default {JOBS})",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "replay.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and the JSON line."""
    from practice_events.logging import configure_logging

    args = parse_args(argv)
    configure_logging("console", "warning")
    started = time.perf_counter()
    payloads, as_of = history(args.events, args.seed)
    print(f"generated {len(payloads):,} events in {time.perf_counter() - started:.1f} s")
    figures: dict[str, Any] = {"events": len(payloads), "jobs": args.jobs}
    if not args.skip_postgres:
        databases = pg_database(args.pg_admin, args.keep)
        url = next(databases)
        try:
            figures["postgres"] = run_store("postgres", url, payloads, as_of, args.jobs)
        finally:
            databases.close()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            figures["sqlite"] = run_store(
                "sqlite", f"sqlite:///{tmp}/store.db", payloads, as_of, args.jobs
            )
    report(figures, Path(args.out))
    return 0


def report(figures: dict[str, Any], out: Path) -> dict[str, Any]:
    """Compute ratios and targets; print them and the JSON line; write the JSON file."""
    ratios: dict[str, float] = {}
    met: dict[str, bool] = {}
    for label in ("postgres", "sqlite"):
        if label not in figures:
            continue
        f = figures[label]
        replay_eps = f["replay_position"]["events_per_second"]
        ratios[f"replay_{label}_vs_scan_decode"] = replay_eps / f["scan_decode_events_per_second"]
        ratios[f"replay_occurred_{label}_vs_scan_decode"] = (
            f["replay_occurred"]["events_per_second"] / f["scan_decode_events_per_second"]
        )
        met[f"replay_{label}_events_per_second"] = replay_eps >= REPLAY_TARGET
        met[f"replay_{label}_vs_scan_decode"] = (
            ratios[f"replay_{label}_vs_scan_decode"] >= REPLAY_VS_SCAN_TARGET
        )
        met[f"verify_{label}_events_per_second"] = (
            f["integrity"]["verify_events_per_second"] >= VERIFY_TARGET
        )
    targets = {
        "replay_events_per_second": REPLAY_TARGET,
        "replay_vs_scan_decode": REPLAY_VS_SCAN_TARGET,
        "verify_events_per_second": VERIFY_TARGET,
    }
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.2f}")
    for name, ok in met.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    result = {
        "bench": "replay",
        "figures": _rounded(figures),
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "targets": targets,
        "targets_met": all(met.values()),
        "targets_detail": met,
    }
    line = orjson.dumps(result).decode()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return result


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    sys.exit(main())
