"""Benchmark: what aggregate snapshots buy an ingest process that starts cold.

Not a test: it prints figures. A pipeline that starts in a fresh process
(after a deploy or a crash) holds no aggregate in memory and rebuilds every
aggregate it touches; without snapshots that means replaying each one's whole
history (see :mod:`practice_events.store.snapshots`). For SQLite and for
PostgreSQL it

1. generates the demo district's history (``practice_events.demo.generator``,
   about ``--events`` inputs plus ``--aside`` more) and ingests all but the
   last ``--aside`` inputs through the real pipeline, with snapshots every
   ``--snapshot-interval`` events (the setting's default), into a fresh
   SQLite file / PostgreSQL database: the *base* store;
2. for each of ``--rounds`` rounds copies the base store twice (SQLite: the
   file, after a WAL checkpoint; PostgreSQL: ``CREATE DATABASE … TEMPLATE``)
   and, each in a **fresh process** one after the other, ingests the inputs
   kept aside into copy A with snapshots and into copy B with
   ``snapshot_interval=0`` (no snapshot read or written), in batches of
   ``--batch``; the order alternates by round (A,B then B,A …) so that drift
   of this shared machine's load falls on both. Per run: inputs/s (ingest
   loop, wall time), CPU seconds of the ingesting process (the loop, and the
   whole process with its start-up), stored events and snapshots loaded, and
   on PostgreSQL the CPU of its server processes (sampled from ``/proc``);
3. checks after each round that both copies gave the same outcome to every
   input and hold the same stored events (originator, version, topic, state
   without the recording ``timestamp``): a difference stops the benchmark
   with exit status 1 and the first differences;
4. on the base store, for the ``--top`` aggregates with the most events:
   mean ms to rebuild one from all its events (``app.repository.get``), to
   load it the pipeline's way (stored snapshot plus the events after it), to
   ``SnapshotCodec.take`` and ``.restore`` a snapshot, and its bytes; each
   loaded or restored aggregate must equal the rebuilt one.

Then it prints the medians over the rounds and the ratios with/without
snapshots, and one line of JSON, also written to
``bench/results/cold_start.json``. No targets: it informs the choice of
``snapshot_interval``.

    .venv/bin/python bench/cold_start.py                     # 200,000 + 20,000 inputs
    .venv/bin/python bench/cold_start.py --events 50000 --aside 5000 --skip-postgres
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUILD_BATCH = 2000
"""Inputs per batch while building the base store (as the other benchmarks ingest)."""

VARIANTS = ("with", "without")
"""Copy A is ingested with snapshots, copy B without."""

TIMING_REPEATS = 3
"""Timings per aggregate in step 4; the median of them is kept."""


class CopiesDifferError(RuntimeError):
    """The copies ingested with and without snapshots ended differently."""


# -- input ---------------------------------------------------------------------------------


def demo_payloads(events: int, seed: int) -> list[bytes]:
    """The demo district's history as structured-mode CloudEvents (bytes), in time order."""
    from practice_events.demo.generator import generate

    return [orjson.dumps(e) for e in generate(seed=seed, events=events)]


def ingest(store_url: str, payloads: Sequence[bytes], interval: int, batch: int) -> dict[str, Any]:
    """Ingest through the real pipeline in this process; rate and outcomes."""
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import Settings
    from practice_events.ingest.pipeline import RawInput

    settings = Settings(store=store_url, snapshot_interval=interval)
    app = build_app(settings)
    try:
        pipeline = build_pipeline(settings, app)
        counts = dict.fromkeys(("accepted", "duplicate", "rejected"), 0)
        started = time.perf_counter()
        for start in range(0, len(payloads), batch):
            inputs = [RawInput(payload=p, channel="bench") for p in payloads[start : start + batch]]
            for outcome in pipeline.process(inputs).outcomes:
                counts[outcome.status] += 1
        seconds = time.perf_counter() - started
        return {
            "inputs": len(payloads),
            **counts,
            "log_events": app.last_position(),
            "inputs_per_second": len(payloads) / seconds,
        }
    finally:
        app.close()


# -- the ingesting process -----------------------------------------------------------------


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_ingest(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Ingest the inputs of ``spec["inputs"]`` (one per line) into ``spec["store"]``, cold.

    Runs in the fresh process :func:`cold_ingest` starts. The store's loading
    queries are wrapped to count what they return (a sum per query: nothing
    next to the decoding they feed).
    """
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import Settings
    from practice_events.ingest.pipeline import RawInput
    from practice_events.logging import configure_logging

    configure_logging("console", "warning")
    payloads = Path(spec["inputs"]).read_bytes().splitlines()
    batch = int(spec["batch"])
    settings = Settings(store=spec["store"], snapshot_interval=int(spec["interval"]))
    app = build_app(settings)
    loaded = dict.fromkeys(
        ("events_loaded", "aggregates_asked", "snapshots_loaded", "snapshots_written"), 0
    )
    recorder: Any = app.recorder
    select_events_of = recorder.select_events_of
    select_snapshots = recorder.select_snapshots
    insert_events = recorder.insert_events

    def counted_events(ids: Sequence[UUID], after: Mapping[UUID, int] | None = None) -> Any:
        found = select_events_of(ids, after)
        loaded["aggregates_asked"] += len(ids)
        loaded["events_loaded"] += sum(len(events) for events in found.values())
        return found

    def counted_snapshots(ids: Sequence[UUID]) -> Any:
        found = select_snapshots(ids)
        loaded["snapshots_loaded"] += len(found)
        return found

    def counted_insert(*args: Any, **kwargs: Any) -> Any:
        loaded["snapshots_written"] += len(kwargs.get("snapshots") or ())
        return insert_events(*args, **kwargs)

    recorder.select_events_of = counted_events
    recorder.select_snapshots = counted_snapshots
    recorder.insert_events = counted_insert
    try:
        pipeline = build_pipeline(settings, app)
        counts = dict.fromkeys(("accepted", "duplicate", "rejected"), 0)
        digest = hashlib.sha256()
        started, cpu = time.perf_counter(), _own_cpu()
        for start in range(0, len(payloads), batch):
            inputs = [RawInput(payload=p, channel="bench") for p in payloads[start : start + batch]]
            for outcome in pipeline.process(inputs).outcomes:
                counts[outcome.status] += 1
                digest.update(f"{outcome.status} {outcome.code or ''}\n".encode())
        seconds, cpu = time.perf_counter() - started, _own_cpu() - cpu
        return {
            "inputs": len(payloads),
            "seconds": seconds,
            "inputs_per_second": len(payloads) / seconds,
            "cpu_seconds": cpu,
            "outcomes": counts,
            "outcomes_digest": digest.hexdigest(),
            **loaded,
            "events_loaded_per_input": loaded["events_loaded"] / max(1, len(payloads)),
            "log_events": app.last_position(),
        }
    finally:
        app.close()


def cold_ingest(url: str, inputs: Path, interval: int, batch: int) -> dict[str, Any]:
    """Run :func:`child_ingest` in a fresh process; its figures and its whole CPU time."""
    from bench.projections import ServerCpu

    spec = {"store": url, "inputs": str(inputs), "interval": interval, "batch": batch}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        orjson.dumps(spec).decode(),
    ]
    server: Any = None
    before = _children_cpu()
    with contextlib.ExitStack() as stack:
        if url.startswith("postgres"):
            server = stack.enter_context(ServerCpu(url))
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"ingesting process exited {done.returncode}:\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    result["process_cpu_seconds"] = _children_cpu() - before
    if server is not None:
        result["server_cpu_seconds"] = server.seconds
    return result


# -- stores ----------------------------------------------------------------------------------


class Stores(Protocol):
    """A base store and copies of it, on one backend."""

    label: str
    base_url: str

    def copy(self, name: str) -> str:
        """Copy the base store (no connection to it may be open); the copy's URL."""

    def drop(self, url: str) -> None:
        """Remove a copy."""

    def close(self) -> None:
        """Remove the base store unless it is to be kept."""


class SqliteStores:
    """Files in ``workdir``: the base store and its copies (plain file copies)."""

    label = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.base = workdir / "base.db"
        self.base_url = f"sqlite:///{self.base}"

    def copy(self, name: str) -> str:
        """Checkpoint the base file's write-ahead log into it, then copy the file."""
        with contextlib.closing(sqlite3.connect(self.base)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = self.base.with_name(self.base.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            msg = f"{wal} is not empty after a checkpoint: is a connection open?"
            raise RuntimeError(msg)
        target = self.workdir / f"{name}.db"
        shutil.copyfile(self.base, target)
        return f"sqlite:///{target}"

    def drop(self, url: str) -> None:
        """Delete a copy and its side files."""
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing: the files go with the temporary directory."""


class PostgresStores:
    """Databases on one server: a fresh base database and ``TEMPLATE`` copies of it."""

    label = "postgres"

    def __init__(self, admin_url: str, keep: bool) -> None:
        import psycopg

        self.admin_url = admin_url
        self.keep = keep
        self.prefix = f"pe_bench_cold_{uuid.uuid4().hex[:8]}"
        self.server = admin_url.rsplit("/", 1)[0]
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.prefix}"')
        self.base_url = f"{self.server}/{self.prefix}"
        if keep:
            print(f"postgres: databases {self.prefix} and {self.prefix}_* are kept", flush=True)

    def copy(self, name: str) -> str:
        """``CREATE DATABASE … TEMPLATE base`` (retried while the base's last session ends)."""
        import psycopg
        from psycopg import errors

        target = f"{self.prefix}_{name}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for attempt in range(20):
                try:
                    conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{self.prefix}"')
                    break
                except errors.ObjectInUse:
                    if attempt == 19:
                        raise
                    time.sleep(0.5)
        return f"{self.server}/{target}"

    def drop(self, url: str) -> None:
        """Drop a copy unless the databases are kept."""
        if not self.keep:
            self._drop(url.rsplit("/", 1)[1])

    def close(self) -> None:
        """Drop the base database unless it is kept."""
        if not self.keep:
            self._drop(self.prefix)

    def _drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- checks ----------------------------------------------------------------------------------


def _decoded_state(mapper: Any, state: bytes) -> Any:
    """Event state as the transcoder reads it, unsealed first if the store seals it."""
    if mapper.cipher is not None:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor is not None:
        state = mapper.compressor.decompress(state)
    return mapper.transcoder.decode(state)


def stored_events_after(url: str, position: int) -> dict[tuple[str, int], tuple[str, Any]]:
    """Events after ``position``: (originator, version) -> (topic, state without timestamp)."""
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    app = build_app(Settings(store=url))
    try:
        found: dict[tuple[str, int], tuple[str, Any]] = {}
        start = position + 1
        while page := app.notification_log.select(start, 1000):
            for notification in page:
                state = _decoded_state(app.mapper, notification.state)
                state.pop("timestamp", None)
                key = (str(notification.originator_id), int(notification.originator_version))
                found[key] = (notification.topic, state)
            start = page[-1].id + 1
        return found
    finally:
        app.close()


def compare_copies(
    with_url: str,
    without_url: str,
    position: int,
    with_run: Mapping[str, Any],
    without_run: Mapping[str, Any],
) -> int:
    """Raise :class:`CopiesDifferError` unless both runs and copies ended the same.

    Same outcome for every input (counts, and a digest of the per-input
    status and code in order) and the same stored events after ``position``
    (the base store's head). Returns the number of events compared.
    """
    problems: list[str] = []
    if with_run["outcomes"] != without_run["outcomes"]:
        problems.append(
            f"outcome counts: with {with_run['outcomes']}, without {without_run['outcomes']}"
        )
    elif with_run["outcomes_digest"] != without_run["outcomes_digest"]:
        problems.append("same outcome counts but different outcomes for some inputs")
    with_events = stored_events_after(with_url, position)
    without_events = stored_events_after(without_url, position)
    only_with = sorted(set(with_events) - set(without_events))
    only_without = sorted(set(without_events) - set(with_events))
    if only_with or only_without:
        problems.append(
            f"{len(only_with)} events only with snapshots (first {only_with[:3]}), "
            f"{len(only_without)} only without (first {only_without[:3]})"
        )
    shared = sorted(set(with_events) & set(without_events))
    differing = [k for k in shared if with_events[k] != without_events[k]]
    for key in differing[:3]:
        problems.append(f"event {key}: with {with_events[key]!r} / without {without_events[key]!r}")
    if len(differing) > 3:
        problems.append(f"... {len(differing)} differing events in all")
    if problems:
        raise CopiesDifferError("copies differ:\n  " + "\n  ".join(problems))
    return len(with_events)


# -- rebuild costs ---------------------------------------------------------------------------


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in aggregate.__dict__.items() if k != "_pending_events"}


def _table(recorder: Any, name: str) -> str:
    schema = getattr(recorder.datastore, "schema", None)
    return f'"{schema}"."{name}"' if schema else name


def _query(recorder: Any, sql: str) -> list[Any]:
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def top_aggregates(recorder: Any, top: int) -> list[tuple[UUID, int]]:
    """The ``top`` aggregates with the most stored events, with their event counts."""
    table = _table(recorder, recorder.events_table_name)
    rows = _query(
        recorder,
        f"SELECT originator_id AS id, COUNT(*) AS n FROM {table} "
        f"GROUP BY originator_id ORDER BY n DESC, originator_id LIMIT {int(top)}",
    )
    return [(UUID(str(row["id"])), int(row["n"])) for row in rows]


def snapshot_table_size(recorder: Any) -> dict[str, int]:
    """Rows and bytes of state in the snapshots table."""
    name = getattr(recorder, "snapshots_table", "aggregate_snapshots")
    length = "octet_length" if getattr(recorder.datastore, "schema", None) else "length"
    rows = _query(
        recorder,
        f"SELECT COUNT(*) AS n, COALESCE(SUM({length}(state)), 0) AS b "
        f"FROM {_table(recorder, name)}",
    )
    return {"rows": int(rows[0]["n"]), "state_bytes": int(rows[0]["b"])}


def _timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """Median ms of :data:`TIMING_REPEATS` calls, and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        result = func()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times), result


def rebuild_costs(url: str, top: int) -> dict[str, Any]:
    """Step 4: rebuild, snapshot load, take and restore of the ``top`` longest aggregates."""
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings
    from practice_events.store.snapshots import SnapshotCodec

    app = build_app(Settings(store=url))
    try:
        recorder: Any = app.recorder
        codec = SnapshotCodec(app.mapper)
        chosen = top_aggregates(recorder, top)
        stored = recorder.select_snapshots([agg_id for agg_id, _ in chosen])
        to_domain_event = app.mapper.to_domain_event

        def from_snapshot(agg_id: UUID) -> Any:
            """The pipeline's way: the stored snapshot, then the events after it."""
            row = recorder.select_snapshots([agg_id])[agg_id]
            aggregate: Any = codec.restore(row)
            after = recorder.select_events_of([agg_id], after={agg_id: row.version})
            for event in after.get(agg_id, ()):
                aggregate = to_domain_event(event).mutate(aggregate)  # type: ignore[attr-defined]
            return aggregate

        rows: list[dict[str, Any]] = []
        for agg_id, events in chosen:
            rebuild_ms, aggregate = _timed(partial(app.repository.get, agg_id))
            take_ms, row = _timed(partial(codec.take, aggregate))
            restore_ms, restored = _timed(partial(codec.restore, row))
            if _state(restored) != _state(aggregate):
                msg = f"{agg_id}: restore(take(aggregate)) differs from the aggregate"
                raise CopiesDifferError(msg)
            one = {
                "events": events,
                "rebuild_ms": rebuild_ms,
                "take_ms": take_ms,
                "restore_ms": restore_ms,
                "snapshot_bytes": len(row.state),
            }
            if agg_id in stored:
                load_ms, loaded = _timed(partial(from_snapshot, agg_id))
                if _state(loaded) != _state(aggregate):
                    msg = f"{agg_id}: stored snapshot + later events differ from a full rebuild"
                    raise CopiesDifferError(msg)
                one["snapshot_load_ms"] = load_ms
                one["events_after_snapshot"] = events - stored[agg_id].version
            rows.append(one)
        with_snapshot = [r for r in rows if "snapshot_load_ms" in r]

        def mean(key: str, among: list[dict[str, Any]] = rows) -> float | None:
            return statistics.fmean(r[key] for r in among) if among else None

        return {
            "aggregates": len(rows),
            "with_stored_snapshot": len(with_snapshot),
            "events_mean": mean("events"),
            "events_min": min((r["events"] for r in rows), default=0),
            "rebuild_ms_mean": mean("rebuild_ms"),
            "snapshot_load_ms_mean": mean("snapshot_load_ms", with_snapshot),
            "take_ms_mean": mean("take_ms"),
            "restore_ms_mean": mean("restore_ms"),
            "snapshot_bytes_mean": mean("snapshot_bytes"),
            "snapshot_table": snapshot_table_size(recorder),
        }
    finally:
        app.close()


# -- one backend -------------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def measure_store(
    stores: Stores,
    history: Sequence[bytes],
    aside: Sequence[bytes],
    workdir: Path,
    *,
    interval: int,
    batch: int,
    rounds: int,
    top: int,
) -> dict[str, Any]:
    """Steps 1-4 on one backend; its figures (raises :class:`CopiesDifferError`)."""
    label = stores.label
    built = ingest(stores.base_url, history, interval, BUILD_BATCH)
    head = built["log_events"]
    print(
        f"{label}: built {built['inputs']:,} inputs → {head:,} log events "
        f"({built['inputs_per_second']:,.0f} inputs/s, snapshot interval {interval})",
        flush=True,
    )
    rebuild = rebuild_costs(stores.base_url, top)
    print(
        f"{label}: top {rebuild['aggregates']} aggregates ({rebuild['events_mean'] or 0:,.0f} "
        f"events on average): rebuild {rebuild['rebuild_ms_mean'] or 0:.2f} ms, "
        f"from snapshot {rebuild['snapshot_load_ms_mean'] or 0:.2f} ms, take "
        f"{rebuild['take_ms_mean'] or 0:.3f} ms, restore {rebuild['restore_ms_mean'] or 0:.3f} "
        f"ms, {rebuild['snapshot_bytes_mean'] or 0:,.0f} bytes",
        flush=True,
    )
    inputs = workdir / f"{label}-aside.jsonl"
    inputs.write_bytes(b"\n".join(aside) + b"\n")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    timeline: list[dict[str, Any]] = []  # every run, in the order they ran
    for index in range(rounds):
        urls = {"with": stores.copy(f"a{index}"), "without": stores.copy(f"b{index}")}
        try:
            variants = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
            for variant in variants:
                run = cold_ingest(
                    urls[variant], inputs, interval if variant == "with" else 0, batch
                )
                runs[variant].append(run)
                timeline.append({"round": index + 1, "variant": variant, **run})
                server = run.get("server_cpu_seconds")
                print(
                    f"{label}: round {index + 1} {variant:<7} snapshots: "
                    f"{run['inputs_per_second']:>7,.0f} inputs/s, CPU {run['cpu_seconds']:.1f} s "
                    f"(process {run['process_cpu_seconds']:.1f} s"
                    + (f", server {server:.1f} s" if server is not None else "")
                    + f"), {run['events_loaded_per_input']:.2f} stored events loaded per input",
                    flush=True,
                )
            compared = compare_copies(
                urls["with"], urls["without"], head, runs["with"][-1], runs["without"][-1]
            )
            print(f"{label}: round {index + 1}: copies agree ({compared:,} new events)", flush=True)
        finally:
            for url in urls.values():
                stores.drop(url)
    keys = (
        "inputs_per_second",
        "cpu_seconds",
        "process_cpu_seconds",
        "server_cpu_seconds",
        "events_loaded_per_input",
        "snapshots_loaded",
        "snapshots_written",
    )
    medians = {v: {k: _median(runs[v], k) for k in keys} for v in VARIANTS}
    first = runs["with"][0]
    return {
        "inputs_built": built["inputs"],
        "log_events_built": head,
        "build_inputs_per_second": built["inputs_per_second"],
        "inputs_aside": len(aside),
        "outcomes_aside": first["outcomes"],
        "order": ",".join("A" if r["variant"] == "with" else "B" for r in timeline),
        "with": {k: v for k, v in medians["with"].items() if v is not None},
        "without": {k: v for k, v in medians["without"].items() if v is not None},
        "rebuild_top": rebuild,
        "runs": timeline,
    }


def ratios_of(label: str, figures: Mapping[str, Any]) -> dict[str, float]:
    """with ÷ without, per figure (inputs/s above 1 and CPU below 1 mean snapshots help)."""
    out: dict[str, float] = {}
    for key in (
        "inputs_per_second",
        "cpu_seconds",
        "server_cpu_seconds",
        "events_loaded_per_input",
    ):
        with_value, without_value = figures["with"].get(key), figures["without"].get(key)
        if with_value is not None and without_value:
            out[f"{key}_{label}_with_vs_without"] = with_value / without_value
    return out


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    from practice_events.config import Settings

    default_interval = Settings.model_fields["snapshot_interval"].default
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="inputs in the base store")
    parser.add_argument("--aside", type=int, default=20_000, help="inputs ingested cold")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1000, help="inputs per batch, cold")
    parser.add_argument("--rounds", type=int, default=2, help="A,B then B,A … (fresh copies)")
    parser.add_argument("--top", type=int, default=50, help="aggregates timed in step 4")
    parser.add_argument("--snapshot-interval", type=int, default=default_interval)
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cold_start.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the ingesting process's spec
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the input, measure each backend; the figures."""
    started = time.perf_counter()
    payloads = demo_payloads(args.events + args.aside, args.seed)
    history, aside = payloads[: len(payloads) - args.aside], payloads[len(payloads) - args.aside :]
    print(f"generated {len(payloads):,} inputs in {time.perf_counter() - started:.1f} s")
    figures: dict[str, Any] = {
        "inputs_built": len(history),
        "inputs_aside": len(aside),
        "snapshot_interval": args.snapshot_interval,
        "batch": args.batch,
        "rounds": args.rounds,
        "order": ",".join("A,B" if i % 2 == 0 else "B,A" for i in range(args.rounds)),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    options = {
        "interval": args.snapshot_interval,
        "batch": args.batch,
        "rounds": args.rounds,
        "top": args.top,
    }
    with tempfile.TemporaryDirectory(prefix="pe-cold-") as tmp:
        workdir = Path(tmp)
        if not args.skip_sqlite:
            (workdir / "sqlite").mkdir()
            stores: Stores = SqliteStores(workdir / "sqlite")
            figures["sqlite"] = measure_store(stores, history, aside, workdir, **options)
        if not args.skip_postgres:
            stores = PostgresStores(args.pg_admin, args.keep)
            try:
                figures["postgres"] = measure_store(stores, history, aside, workdir, **options)
            finally:
                stores.close()
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one ingesting process); print figures."""
    args = parse_args(argv)
    if args.child:
        print(orjson.dumps(child_ingest(orjson.loads(args.child))).decode())
        return 0
    from practice_events.logging import configure_logging

    configure_logging("console", "warning")
    try:
        figures = run(args)
    except CopiesDifferError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    report(figures, Path(args.out))
    return 0


HEADLINE = {
    "with": ("inputs_per_second", "cpu_seconds", "server_cpu_seconds", "events_loaded_per_input"),
    "without": (
        "inputs_per_second",
        "cpu_seconds",
        "server_cpu_seconds",
        "events_loaded_per_input",
    ),
    "rebuild_top": (
        "events_mean",
        "rebuild_ms_mean",
        "snapshot_load_ms_mean",
        "take_ms_mean",
        "restore_ms_mean",
        "snapshot_bytes_mean",
    ),
}
"""The figures of a backend shown under ``figures`` (all of them are under ``details``)."""


def headline(store: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one backend that ``docs/performance.md``'s generated table shows.

    ``bench/report.py`` shows at most 40 figures per results file; the rest
    (per-run figures, counts of snapshots loaded and written, process CPU) is
    in the file under ``details``.
    """
    out: dict[str, Any] = {"log_events_built": store["log_events_built"]}
    for group, keys in HEADLINE.items():
        out[group] = {k: store[group][k] for k in keys if store[group].get(k) is not None}
    return out


def report(figures: dict[str, Any], out: Path) -> dict[str, Any]:
    """Compute the ratios; print them and the JSON line; write the JSON file."""
    ratios: dict[str, float] = {}
    shown = {k: v for k, v in figures.items() if k not in ("sqlite", "postgres")}
    details: dict[str, Any] = {}
    for label in ("sqlite", "postgres"):
        if label in figures:
            ratios.update(ratios_of(label, figures[label]))
            shown[label] = headline(figures[label])
            details[label] = figures[label]
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.3f}")
    result = {
        "bench": "cold_start",
        "figures": _rounded(shown),
        "ratios": _rounded(ratios),
        "details": _rounded(details),
    }
    line = orjson.dumps(result).decode()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return result


def _rounded(value: Any) -> Any:
    """Floats to 3 significant-ish digits (ms and ratios are small), recursively."""
    if isinstance(value, float):
        return round(value, 3 if abs(value) < 10 else 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
