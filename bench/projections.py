"""Benchmark: rebuilding every projection, beside the library's runner and a plain scan.

Not a test: it prints figures. In one run it

1. generates a history of the demo district (``practice_events.demo.generator``)
   and ingests it through the real pipeline into a fresh PostgreSQL database
   and a fresh SQLite file (the last ``--lag-seconds`` × ``--lag-rate``
   events are kept back for step 5);
2. measures a **plain scan + decode** of the notification log (pages of
   2,000, ``orjson``): the ceiling of any projection;
3. measures a **rebuild of all projections** (``projections.registry``:
   network, closed loop, scorecards, ledgers, needs, meetings), blue/green as
   ``practice-events projections rebuild all [--jobs N]`` does it (one pass
   over the log for all of them, or one per group of ``--jobs``), reported as
   log events per second of wall time (log length ÷ seconds) and per CPU
   second of the rebuilding processes (and, for PostgreSQL on this host, of
   its server processes too, sampled from ``/proc``);
4. measures the library's **ProjectionRunner** (``eventsourcing.projection``,
   one transaction per event) over the same log for one simple projection
   (a count per event type), capped at ``--library-cap`` events, on
   PostgreSQL (the SQLite recorder has no subscriptions);
5. measures **live lag** on PostgreSQL: ``practice-events projections run``
   in its own process while this one offers the kept-back events at
   ``--lag-rate`` events/s (every 50 ms it takes what has become due, as a
   consumer's poll does, so a pipeline that falls behind takes larger
   batches: :func:`paced_ingest`) through the load phase's pipeline, whose
   aggregate cache is warm as a long-running ingest worker's is
   (``--live-cold``: a fresh pipeline, as after a restart); lag = time from
   a batch's commit until every projection's tracking position has passed
   it (sampled every 5 ms from the views' tracking table);

then prints events/s, ratios and one line of JSON (also written to
``bench/results/projections.json``). Targets (issue 5): rebuild ≥ 20,000
events/s on PostgreSQL and ≥ 8× the library runner; live lag p99 < 500 ms
while ingesting 2,000 events/s.

    .venv/bin/python bench/projections.py                    # 1,000,000 events
    .venv/bin/python bench/projections.py --events 100000    # a quicker run
    .venv/bin/python bench/projections.py --events 200000 --skip-library --skip-live
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 2000
CLI_MAIN = "import sys; from practice_events.cli import main; sys.exit(main())"


# -- input ---------------------------------------------------------------------------------


def demo_payloads(events: int, seed: int) -> list[bytes]:
    """The demo district's history as structured-mode CloudEvents (bytes), in time order."""
    from practice_events.demo.generator import generate

    return [orjson.dumps(e) for e in generate(seed=seed, events=events)]


class Ingester:
    """The real pipeline over one store, kept open so that a later phase finds its cache warm.

    A production ingest worker runs for days; its aggregate cache holds the
    aggregates it touched last. The live phase ingests through the same
    pipeline as the load phase, as that worker would (``--live-cold`` starts
    a fresh one instead, as after a restart, where aggregate snapshots
    shorten the warm-up).
    """

    def __init__(self, store_url: str) -> None:
        from practice_events.bootstrap import build_app, build_pipeline
        from practice_events.config import Settings

        settings = Settings(store=store_url)
        self.app = build_app(settings)
        try:
            self.pipeline = build_pipeline(settings, self.app)
        except BaseException:
            self.app.close()
            raise

    def process(self, payloads: list[bytes]) -> Any:
        """Ingest one batch; the pipeline's result."""
        from practice_events.ingest.pipeline import RawInput

        return self.pipeline.process([RawInput(payload=p, channel="bench") for p in payloads])

    def close(self) -> None:
        """Close the store."""
        self.app.close()


def ingest(
    store_url: str, payloads: list[bytes], batch: int = BATCH, ingester: Ingester | None = None
) -> dict[str, Any]:
    """Ingest through the real pipeline (``ingester``'s, kept open, if given); rate and outcomes."""
    own = ingester is None
    ingester = ingester or Ingester(store_url)
    try:
        accepted = rejected = 0
        started = time.perf_counter()
        for start in range(0, len(payloads), batch):
            result = ingester.process(payloads[start : start + batch])
            accepted += result.count("accepted")
            rejected += result.count("rejected")
        seconds = time.perf_counter() - started
        return {
            "inputs": len(payloads),
            "accepted": accepted,
            "rejected": rejected,
            "log_events": ingester.app.last_position(),
            "events_per_second": len(payloads) / seconds,
        }
    finally:
        if own:
            ingester.close()


# -- measurements ----------------------------------------------------------------------------


def _cpu() -> float:
    """CPU seconds of this process and its finished children (wall time lies under load)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def scan_decode(store_url: str) -> dict[str, float]:
    """Read and decode the whole notification log in pages; events per second."""
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings
    from projections.runner import LogReader

    app = build_app(Settings(store=store_url))
    try:
        reader = LogReader(app)
        head = reader.head()
        position = 0
        started, cpu = time.perf_counter(), _cpu()
        while position < head:
            page = reader.read(position, BATCH, stop=head)
            if not page:
                break
            position = page[-1].position
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        return {"events_per_second": head / seconds, "events_per_cpu_second": head / cpu}
    finally:
        app.close()


class ServerCpu:
    """CPU seconds of the PostgreSQL server processes serving one database (same host only).

    Samples ``/proc/<pid>/stat`` of the database's backends (``pg_stat_activity``)
    every 0.2 s from a thread and keeps the last reading of each: a backend's
    last 0.2 s before it exits can be missed. ``None`` when the server's
    processes are not readable here (another host, a container).
    """

    def __init__(self, store_url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(store_url, autocommit=True)
        row = self.conn.execute("SELECT current_database()").fetchone()
        self.database = str(row[0]) if row else ""
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.readable = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.database,),
        ).fetchall()
        ticks = os.sysconf("SC_CLK_TCK")
        for (pid,) in rows:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                if pid not in self.last:
                    self.readable = False
                continue
            used = (int(fields[11]) + int(fields[12])) / ticks
            self.first.setdefault(pid, used)
            self.last[pid] = used

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self) -> ServerCpu:
        self._sample()  # backends that exist already count from now
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()

    @property
    def seconds(self) -> float | None:
        """CPU seconds used by the sampled backends since the start (None if unreadable)."""
        if not self.readable:
            return None
        return sum(used - self.first[pid] for pid, used in self.last.items())


def rebuild_all(store_url: str, jobs: int) -> dict[str, Any]:
    """Rebuild every registered projection as ``projections rebuild all`` does."""
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings
    from projections.cli import rebuild_projections
    from projections.registry import all_projections

    settings = Settings(store=store_url)
    app = build_app(settings)
    try:
        head = app.last_position()
    finally:
        app.close()
    names = [p.NAME for p in all_projections(settings)]
    server: ServerCpu | None = None
    with contextlib.ExitStack() as stack:
        if store_url.startswith("postgres"):
            server = stack.enter_context(ServerCpu(store_url))
        started, cpu = time.perf_counter(), _cpu()
        results = rebuild_projections(settings, names, jobs=jobs)
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    server_cpu = server.seconds if server is not None else None
    for r in results:
        print(
            f"  rebuild {r['projection']:<12} {r['events']:>9,} events in {r['seconds']:7.1f} s "
            f"({r['events_per_second'] or 0:>9,}/s)"
        )
    return {
        "log_events": head,
        "jobs": jobs,
        "seconds": round(seconds, 2),
        "events_per_second": head / seconds,
        "cpu_seconds": round(cpu, 2),
        "events_per_cpu_second": head / cpu if cpu else None,
        "server_cpu_seconds": round(server_cpu, 2) if server_cpu is not None else None,
        "events_per_cpu_second_with_server": (
            head / (cpu + server_cpu) if server_cpu is not None and cpu + server_cpu else None
        ),
        "projections": {
            r["projection"]: {k: r[k] for k in ("events", "seconds", "events_per_second")}
            for r in results
        },
    }


def library_runner(store_url: str, cap: int) -> float:
    """The library's ProjectionRunner (one transaction per event): events per second."""
    from eventsourcing.persistence import Tracking
    from eventsourcing.postgres import PostgresTrackingRecorder
    from eventsourcing.projection import Projection, ProjectionRunner
    from psycopg.sql import SQL, Identifier

    from practice_events.application import PracticeEvents
    from practice_events.bootstrap import application_env
    from practice_events.config import Settings
    from practice_events.domain import load_all

    load_all()

    class TypeCounts(PostgresTrackingRecorder):
        """A count of events per type, and the tracking row, in one transaction per event."""

        def __init__(self, datastore: Any, **kwargs: Any) -> None:
            super().__init__(datastore, **kwargs)
            table = Identifier(self.datastore.schema), Identifier("bench_library_counts")
            self.sql_create_statements.append(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (topic text PRIMARY KEY, n bigint NOT NULL)"
                ).format(*table)
            )
            self.upsert = SQL(
                "INSERT INTO {0}.{1} (topic, n) VALUES (%s, 1) "
                "ON CONFLICT (topic) DO UPDATE SET n = {1}.n + 1"
            ).format(*table)

        def count(self, topic: str, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(self.upsert, (topic,))
                self._insert_tracking(curs, tracking)

    class CountByType(Projection[TypeCounts]):
        name = f"benchlib{uuid.uuid4().hex[:6]}"
        topics = ()

        def process_event(self, domain_event: Any, tracking: Tracking) -> None:
            self.view.count(type(domain_event).__qualname__, tracking)

    env = application_env(Settings(store=store_url))
    started = time.perf_counter()  # the runner starts processing as it is constructed
    with ProjectionRunner(
        application_class=PracticeEvents,
        projection_class=CountByType,
        view_class=TypeCounts,
        env=env,
    ) as runner:
        target = min(cap, runner.app.last_position())
        runner.wait(target, timeout=3600)
        seconds = time.perf_counter() - started
    return target / seconds


class LagProbe:
    """Samples the lowest tracking position of the projections every 5 ms (own connection)."""

    def __init__(self, store_url: str, names: list[str]) -> None:
        import psycopg

        self.conn = psycopg.connect(store_url, autocommit=True)
        self.names = names
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def position(self) -> int:
        """The lowest position over the projections (0 until each has a tracking row)."""
        row = self.conn.execute(
            "SELECT COUNT(*), MIN(position) FROM practice_views.projection_tracking "
            "WHERE name = ANY(%s)",
            (self.names,),
        ).fetchone()
        if row is None or int(row[0]) < len(self.names):
            return 0
        return int(row[1] or 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.position()))
            time.sleep(0.005)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and close the connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.conn.close()

    def lags(self, commits: list[tuple[float, int, int]]) -> list[float]:
        """Seconds from each commit until a sample shows every projection past it."""
        out: list[float] = []
        cursor = 0
        for committed_at, position, _ in commits:
            while cursor < len(self.samples) and (
                self.samples[cursor][0] < committed_at or self.samples[cursor][1] < position
            ):
                cursor += 1
            if cursor == len(self.samples):
                out.append(float("inf"))
            else:
                out.append(self.samples[cursor][0] - committed_at)
        return out


def paced_ingest(
    ingester: Ingester, payloads: list[bytes], rate: int, max_batch: int = BATCH
) -> list[tuple[float, int, int]]:
    """Offer ``rate`` events/s; ingest what is due, as a consumer polls; (commit time, position, n).

    Events become due at ``rate`` per second. Every 50 ms (or at once, when the
    previous batch took longer) the ingester takes every event due so far, up
    to ``max_batch``, the way a Kafka worker's poll returns what has arrived:
    a pipeline that keeps up commits about ``rate / 20`` events a batch, one
    that falls behind takes larger batches, and the achieved rate says which.
    """
    commits: list[tuple[float, int, int]] = []
    started = time.monotonic()
    sent = 0
    tick = 0.05
    while sent < len(payloads):
        now = time.monotonic()
        due = min(len(payloads), int((now - started) * rate))
        if due <= sent:
            time.sleep(max(0.0, started + (sent + 1) / rate - now, tick / 5))
            continue
        chunk = payloads[sent : min(due, sent + max_batch)]
        result = ingester.process(chunk)
        sent += len(chunk)
        commits.append((time.monotonic(), result.last_position, len(chunk)))
        pause = now + tick - time.monotonic()
        if pause > 0 and sent < len(payloads):
            time.sleep(pause)
    return commits


def live_lag(
    ingester: Ingester, store_url: str, payloads: list[bytes], rate: int, workdir: Path
) -> dict[str, Any]:
    """Lag of ``projections run`` (own process) while ``ingester`` ingests at ``rate`` events/s."""
    from practice_events.config import Settings
    from projections.registry import all_projections

    names = [p.NAME for p in all_projections(Settings(store=store_url))]
    log_path = workdir / "projections-run.log"
    env = {**os.environ, "PRACTICE_EVENTS_STORE": store_url, "PRACTICE_EVENTS_LOG_LEVEL": "warning"}
    command = [sys.executable, "-c", CLI_MAIN]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "projections", "run"], env=env, stdout=log, stderr=log
        )
    probe = LagProbe(store_url, names)
    try:
        head = _head(store_url)
        deadline = time.monotonic() + 300
        while probe.position() < head:
            if time.monotonic() > deadline or process.poll() is not None:
                msg = f"projections run did not catch up; see {log_path}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        probe.start()
        started = time.monotonic()
        commits = paced_ingest(ingester, payloads, rate)
        ingest_seconds = time.monotonic() - started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            not probe.samples or probe.samples[-1][1] < commits[-1][1]
        ):
            time.sleep(0.01)
    finally:
        probe.stop()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    lags_ms = sorted(1000 * lag for lag in probe.lags(commits))
    sizes = sorted(n for _, _, n in commits)
    return {
        "events": len(payloads),
        "ingest_events_per_second": len(payloads) / ingest_seconds,
        "batches": len(commits),
        "batch_events_p50": statistics.median(sizes),
        "batch_events_max": sizes[-1],
        "lag_ms_p50": statistics.median(lags_ms),
        "lag_ms_p99": lags_ms[max(0, math.ceil(0.99 * len(lags_ms)) - 1)],
        "lag_ms_max": lags_ms[-1],
        "stopped_gracefully": process.returncode == 0,
    }


def _head(store_url: str) -> int:
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    app = build_app(Settings(store=store_url))
    try:
        return app.last_position()
    finally:
        app.close()


# -- stores ----------------------------------------------------------------------------------


def pg_database(admin_url: str, keep: bool) -> Iterator[str]:
    """Create a fresh PostgreSQL database; yield its store URL; drop it unless ``keep``."""
    import psycopg

    name = f"pe_bench_proj_{uuid.uuid4().hex[:8]}"
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
    parser.add_argument(
        "--library-cap", type=int, default=50_000, help="events for the library runner"
    )
    parser.add_argument("--lag-rate", type=int, default=2000, help="live ingest, events/s")
    parser.add_argument("--lag-seconds", type=int, default=20, help="live ingest duration")
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--skip-library", action="store_true", help="no library ProjectionRunner baseline"
    )
    parser.add_argument("--skip-live", action="store_true", help="no live lag phase")
    parser.add_argument(
        "--live-cold",
        action="store_true",
        help="live phase through a fresh pipeline (as after a restart), not the load phase's",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="rebuild processes at once (rebuild all --jobs)"
    )
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "projections.json"))
    return parser.parse_args(argv)


def run_store(
    label: str,
    url: str,
    history: list[bytes],
    figures: dict[str, Any],
    jobs: int,
    *,
    ingester: Ingester | None = None,
) -> None:
    """Ingest (through ``ingester`` if given), scan and rebuild on one store; record figures."""
    ingested = ingest(url, history, ingester=ingester)
    figures[f"ingest_{label}"] = ingested
    print(
        f"{label}: ingested {ingested['inputs']:,} inputs → {ingested['log_events']:,} log "
        f"events ({ingested['events_per_second']:,.0f} inputs/s, {ingested['rejected']} rejected)"
    )
    scan = scan_decode(url)
    figures[f"scan_decode_{label}"] = scan["events_per_second"]
    figures[f"scan_decode_{label}_per_cpu_second"] = scan["events_per_cpu_second"]
    print(
        f"{label}: scan + decode of the log      {scan['events_per_second']:>10,.0f} events/s "
        f"({scan['events_per_cpu_second']:,.0f} per CPU second of this process)"
    )
    print(f"{label}: rebuild of all projections:")
    rebuilt = rebuild_all(url, jobs)
    figures[f"rebuild_{label}"] = rebuilt
    figures[f"rebuild_{label}_events_per_second"] = rebuilt["events_per_second"]
    print(
        f"{label}: rebuild all                   {rebuilt['events_per_second']:>10,.0f} events/s "
        f"({rebuilt['log_events']:,} events in {rebuilt['seconds']:.1f} s; "
        f"{rebuilt['events_per_cpu_second'] or 0:,.0f} per CPU second of the rebuilding processes)"
    )
    if rebuilt["server_cpu_seconds"] is not None:
        print(
            f"{label}: PostgreSQL server CPU {rebuilt['server_cpu_seconds']:.1f} s: "
            f"{rebuilt['events_per_cpu_second_with_server'] or 0:,.0f} events per CPU second "
            "of the rebuilding processes and the server together"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and the JSON line."""
    from practice_events.logging import configure_logging

    args = parse_args(argv)
    configure_logging("console", "warning")
    live = 0 if args.skip_live else args.lag_rate * args.lag_seconds
    t0 = time.perf_counter()
    payloads = demo_payloads(args.events + live, args.seed)
    history, kept = payloads[: len(payloads) - live], payloads[len(payloads) - live :]
    print(f"generated {len(payloads):,} events in {time.perf_counter() - t0:.1f} s")
    figures: dict[str, Any] = {"events": len(history)}
    databases = pg_database(args.pg_admin, args.keep)
    url = next(databases)
    ingester: Ingester | None = None
    try:
        ingester = Ingester(url)
        run_store("postgres", url, history, figures, args.jobs, ingester=ingester)
        if not args.skip_library:
            figures["library_runner_postgres"] = library_runner(url, args.library_cap)
            print(
                "postgres: library ProjectionRunner     "
                f"{figures['library_runner_postgres']:>10,.0f} events/s "
                f"(first {args.library_cap:,})"
            )
        if not args.skip_live:
            if args.live_cold:
                ingester.close()
                ingester = Ingester(url)
            with tempfile.TemporaryDirectory() as tmp:
                figures["live_postgres"] = live_lag(ingester, url, kept, args.lag_rate, Path(tmp))
            lag = figures["live_postgres"]
            lag["ingest_pipeline"] = "cold (fresh process)" if args.live_cold else "warm"
            print(
                f"postgres: live lag at {lag['ingest_events_per_second']:,.0f} events/s "
                f"({lag['ingest_pipeline']} ingest pipeline): "
                f"p50 {lag['lag_ms_p50']:.0f} ms, p99 {lag['lag_ms_p99']:.0f} ms, "
                f"max {lag['lag_ms_max']:.0f} ms"
            )
    finally:
        if ingester is not None:
            ingester.close()
        databases.close()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run_store("sqlite", f"sqlite:///{tmp}/store.db", history, figures, args.jobs)
    report(figures, Path(args.out), args)
    return 0


def report(figures: dict[str, Any], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Compute ratios and targets; print them and the JSON line; write the JSON file.

    A phase skipped on the command line has no ratio and no target entry.
    """
    rebuild_pg = figures["rebuild_postgres_events_per_second"]
    ratios = {"rebuild_postgres_vs_scan_decode": rebuild_pg / figures["scan_decode_postgres"]}
    if "library_runner_postgres" in figures:
        ratios["rebuild_postgres_vs_library_runner"] = (
            rebuild_pg / figures["library_runner_postgres"]
        )
    if "rebuild_sqlite_events_per_second" in figures:
        ratios["rebuild_sqlite_vs_scan_decode"] = (
            figures["rebuild_sqlite_events_per_second"] / figures["scan_decode_sqlite"]
        )
    targets = {
        "rebuild_postgres_events_per_second": 20_000,
        "rebuild_postgres_vs_library_runner": 8,
        "live_lag_ms_p99": 500,
        "live_ingest_events_per_second": args.lag_rate,
    }
    met = {
        "rebuild_postgres_events_per_second": rebuild_pg
        >= targets["rebuild_postgres_events_per_second"],
    }
    if "rebuild_postgres_vs_library_runner" in ratios:
        met["rebuild_postgres_vs_library_runner"] = (
            ratios["rebuild_postgres_vs_library_runner"]
            >= targets["rebuild_postgres_vs_library_runner"]
        )
    if "live_postgres" in figures:
        live = figures["live_postgres"]
        met["live_lag_ms_p99"] = live["lag_ms_p99"] < targets["live_lag_ms_p99"]
        # the lag target only means something if the paced ingest reached its rate
        met["live_ingest_events_per_second"] = (
            live["ingest_events_per_second"] >= 0.95 * args.lag_rate
        )
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.2f}")
    for name, ok in met.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    result = {
        "bench": "projections",
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
    raise SystemExit(main())
