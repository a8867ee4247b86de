"""Benchmark: Kafka -> ingestion worker(s) -> event store, end to end, beside its baselines.

Not a test: it prints figures. In one run it

1. generates N events of the demo district's realistic mix
   (``practice_events.demo.generator``; a small share of bad input with
   ``--dirty``, whose expected outcome the generator knows) and produces them
   in CloudEvents binary mode, keyed by subject as ``practice-events demo
   publish`` keys them, into a fresh topic of ``--partitions`` partitions with
   confluent-kafka;
2. measures the baselines: raw kafka-python consumption of that topic, and
   eventsourcing ``save()`` of N trivial aggregates in batches of 1,000 on
   PostgreSQL and on SQLite;
3. measures the worker (``consumers.worker.Worker``, the code behind
   ``practice-events ingest``) ingesting the topic into a fresh PostgreSQL
   database and into a fresh SQLite file, from the moment its partitions are
   positioned until the last record is committed;

and prints events/s, the ratios and one line of JSON (also written to
``bench/results/ingest.json``). Targets (issue 4): end-to-end on PostgreSQL
>= 10,000 events/s and >= 0.4x the batched-save baseline.

Scale-out (``--partitions P --workers W``, W <= P; or ``--processes`` with
the defaults): W ``python -m consumers.worker`` processes join one consumer
group over a fresh P-partition topic per run. A worker that finds records
already waiting starts before the others have joined, so the topic stays
empty until every worker has positioned its partitions from the store; then
the input is produced (about 2 s at 200k, inside the window) and the clock runs
until the store tracks the last offset of every partition. CPU seconds of
the workers (``/proc``), of the PostgreSQL backends of the bench's database
(:class:`bench.projections.ServerCpu`) and of the broker are read over that
window. With the defaults (one partition, one worker) the worker runs on a
thread of this process on the pre-produced topic, as before.

The accounting is checked in the store after every run: stored idempotency
keys = the generator's valid inputs, rejections (dead letters) by code = its
bad inputs by code, duplicates = its repeated ones. With several partitions
the demo history's references cross partitions (a check-in names a site keyed
elsewhere); the workers must resolve them by holding the referring partition
back (``reference_holds``), not dead-letter them. A run whose accounting does
not hold still writes its figures, says what differs and exits 1.

    .venv/bin/python bench/ingest.py                 # 200k events, starts its own Tansu
    .venv/bin/python bench/ingest.py --events 20000  # a quick run
    .venv/bin/python bench/ingest.py --partitions 2 --workers 2   # two worker processes
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Tansu launcher lives in tests/kafka_broker.py

if TYPE_CHECKING:
    from bench.workers import WorkerProcess

Message = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


# -- input ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What ingesting the generated input must leave in the store, from the generator."""

    records: int
    accepted: int
    duplicates: int
    rejections: dict[str, int] = field(default_factory=dict)


def demo_input(events: int, seed: int, dirty: float) -> tuple[list[Message], Expected]:
    """The demo district's history as Kafka binary-mode messages (key = subject), and its
    expected outcome (the dirty mixer counts the bad lines it adds, by the code they earn)."""
    from practice_events.demo.cli import binary_message
    from practice_events.demo.generator import Generation

    generation = Generation(seed=seed, events=events, dirty=dirty)
    messages = [binary_message(e) for e in generation.events()]
    known = generation.expected
    if known is None:
        return messages, Expected(len(messages), len(messages), 0)
    expected = Expected(len(messages), known.clean, known.duplicates, dict(known.rejections))
    if expected.accepted + expected.duplicates + sum(expected.rejections.values()) != len(messages):
        msg = f"the generator's expectation does not add up to its {len(messages)} lines"
        raise RuntimeError(msg)
    return messages, expected


def produce(
    bootstrap: str, topic: str, messages: Sequence[Message]
) -> tuple[float, dict[int, int]]:
    """Produce in order with confluent-kafka (its default partitioner, as ``demo publish``);
    return messages per second and the last offset of each partition."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 20,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 500_000,
        }
    )
    failures: list[str] = []
    last: dict[int, int] = {}

    def delivered(error: Any, msg: Any) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    started = time.perf_counter()
    for key, value, raw_headers in messages:
        headers: list[tuple[str, str | bytes | None]] = list(raw_headers)
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - started
    if remaining or failures:
        msg = f"produce failed: {failures[:1] or remaining}"
        raise RuntimeError(msg)
    return len(messages) / seconds, last


def create_topic(bootstrap: str, partitions: int) -> str:
    """Create a fresh topic of ``partitions`` partitions and its one-partition DLQ."""
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        admin.close()
    return topic


# -- baselines --------------------------------------------------------------------------


def consume_raw(bootstrap: str, topic: str, count: int, partitions: int = 1) -> float:
    """kafka-python, no group, no processing: records per second."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    # kafka-python checks CRC-32C in Python unless the crc32c C extension is installed.
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        consumer.poll(timeout_ms=100, max_records=1)  # connect and fetch metadata first
        consumer.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
        while seen < count:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                seen += len(records)
        return count / (time.perf_counter() - started)
    finally:
        consumer.close()


def save_baseline(env: dict[str, str], count: int, batch: int = 1000) -> float:
    """eventsourcing ``save()`` of ``count`` one-event aggregates, ``batch`` per save."""
    from eventsourcing.application import Application

    app = Application[uuid.UUID](env={**env, "CREATE_TABLE": "y"})
    try:
        aggregates = [_tally_class()() for _ in range(count)]
        started = time.perf_counter()
        for start in range(0, count, batch):
            app.save(*aggregates[start : start + batch])
        return count / (time.perf_counter() - started)
    finally:
        app.close()


def _tally_class() -> Any:
    """A trivial aggregate (created, nothing else), defined once per process."""
    global _TALLY  # noqa: PLW0603 - the library refuses to register a class twice
    if _TALLY is None:
        from eventsourcing.domain import Aggregate

        class Tally(Aggregate):
            """The baseline's aggregate."""

        _TALLY = Tally
    return _TALLY


_TALLY: Any = None


# -- end to end: one worker on a thread of this process ---------------------------------------


def ingest(
    bootstrap: str,
    topic: str,
    store_url: str,
    expected: Expected,
    batch_size: int,
    *,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Run the worker until every record is committed; return rate, CPU and outcomes."""
    from bench.projections import ServerCpu
    from bench.workers import process_cpu
    from consumers.worker import Worker, WorkerConfig
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import Settings

    count = expected.records
    settings = Settings(store=store_url, batch_size=batch_size)
    app = build_app(settings)
    positioned = threading.Event()

    class TimedWorker(Worker):
        """Notes when its partitions are positioned (the group join is not ingestion)."""

        def _on_assigned(self, assigned: Any) -> None:
            super()._on_assigned(assigned)
            if assigned:
                positioned.set()

    worker = TimedWorker(
        build_pipeline(settings, app),
        WorkerConfig(
            bootstrap=bootstrap,
            topic=topic,
            group=f"bench-{uuid.uuid4().hex[:8]}",
            dlq_topic=f"{topic}.dlq",
            batch_size=batch_size,
        ),
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    server: ServerCpu | None = None
    try:
        try:
            if not positioned.wait(60):
                msg = "the worker got no partitions within 60 s"
                raise RuntimeError(msg)
            with contextlib.ExitStack() as sampling:
                if _is_postgres(store_url):
                    server = sampling.enter_context(ServerCpu(store_url))
                load = os.getloadavg()
                broker_before = process_cpu(broker_pid) if broker_pid else 0.0
                started = time.perf_counter()
                cpu_started = time.process_time()
                while worker.stats.records < count:
                    if not thread.is_alive():
                        msg = "the worker stopped"
                        raise RuntimeError(msg)
                    time.sleep(0.005)
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                broker_cpu = process_cpu(broker_pid) - broker_before if broker_pid else None
        finally:
            worker.stop()
            thread.join(60)
        keys, rejections, stored = store_counts(app)
    finally:
        app.close()
    stats = worker.stats
    return {
        "mode": "thread",
        "partitions": 1,
        "workers": 1,
        "events_per_second": count / seconds,
        "seconds": seconds,
        "cpu_us_per_event": cpu * 1e6 / count,
        "cpu_seconds": {
            "workers": cpu,
            "postgres_backends": server.seconds if server is not None else None,
            "broker": broker_cpu,
        },
        "load_average_before": [round(x, 2) for x in load],
        "accepted": stats.accepted,
        "duplicate": stats.duplicate,
        "rejected": stats.rejected_total,
        "dead_lettered": stats.dead_lettered,
        "batches": stats.batches,
        "events_stored": stored,
        "reference_holds": stats.reference_holds,
        "accounting": accounting(expected, keys, rejections, stats.duplicate),
    }


# -- end to end: a consumer group of worker processes ------------------------------------------


def positioned_partitions(lines: Sequence[Mapping[str, Any]]) -> set[int] | None:
    """The partitions of a worker's latest assignment, from its JSON log, once it has
    positioned them from the store (None before that, or in the middle of a rebalance)."""
    current: set[int] | None = None
    positioned = False
    for line in lines:
        event = line.get("event")
        if event == "partitions_assigned":
            current, positioned = set(line.get("partitions") or []), False
        elif event == "partitions_revoked":
            current, positioned = None, False
        elif event == "partitions_positioned_from_store" and current is not None:
            positioned = True
    return current if positioned else None


def wait_until_positioned(
    workers: Sequence[WorkerProcess], partitions: int, timeout: float = 120.0
) -> float:
    """Wait until every worker has positioned partitions of its own and together they hold
    each partition once (the group is stable); return the seconds it took."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned: list[set[int]] = []
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(worker.failure())
            mine = positioned_partitions(worker.log_lines())
            if mine:
                owned.append(mine)
        every = sorted(p for mine in owned for p in mine)
        if len(owned) == len(workers) and every == list(range(partitions)):
            return time.perf_counter() - started
        time.sleep(0.1)
    msg = f"the group did not settle within {timeout} s"
    raise RuntimeError(msg)


def held_seconds(workers: Sequence[WorkerProcess]) -> float:
    """Seconds the workers paused partitions for references, summed from their logs."""
    return sum(
        float(line.get("retry_in_s") or 0.0)
        for worker in workers
        for line in worker.log_lines()
        if line.get("event") == "partition_held_for_reference"
    )


_RUNS = itertools.count()
"""Numbers the runs of this process, so that kept worker logs do not overwrite each other."""


def ingest_group(
    bootstrap: str,
    messages: Sequence[Message],
    expected: Expected,
    store_url: str,
    args: argparse.Namespace,
    *,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Ingest ``messages`` with ``args.workers`` worker processes in one group over a fresh
    ``args.partitions``-partition topic; return rate, CPU and outcomes (see the module doc)."""
    from bench.projections import ServerCpu
    from bench.workers import (
        machine_cpu,
        process_cpu,
        settled_stats,
        start_worker,
        wait_until_stored,
    )
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    topic = create_topic(bootstrap, args.partitions)
    run = next(_RUNS)
    app = build_app(Settings(store=store_url))  # the tables exist before the workers start
    workers: list[WorkerProcess] = []
    server: ServerCpu | None = None
    with tempfile.TemporaryDirectory() as scratch:
        logs = Path(args.keep_logs or scratch)
        logs.mkdir(parents=True, exist_ok=True)
        try:
            group = f"bench-{uuid.uuid4().hex[:8]}"
            for index in range(args.workers):
                workers.append(
                    start_worker(
                        index,
                        bootstrap=bootstrap,
                        topic=topic,
                        group=group,
                        store_url=store_url,
                        logs=logs,
                        args=args,
                        run=run,
                    )
                )
            settle = wait_until_positioned(workers, args.partitions)
            pids = [w.process.pid for w in workers]
            with contextlib.ExitStack() as sampling:
                if _is_postgres(store_url):
                    server = sampling.enter_context(ServerCpu(store_url))
                load = os.getloadavg()
                watched = [*pids, *([broker_pid] if broker_pid else [])]
                before = {pid: process_cpu(pid) for pid in watched}
                busy_before, _ = machine_cpu()
                bench_before = time.process_time()
                started = time.perf_counter()
                _, last = produce(bootstrap, topic, messages)
                produce_seconds = time.perf_counter() - started
                wait_until_stored(app, topic, last, workers, timeout=args.timeout)
                seconds = time.perf_counter() - started
                after = {pid: process_cpu(pid) for pid in watched}
                busy_after, _ = machine_cpu()
                bench_cpu = time.process_time() - bench_before
            stats = settled_stats(workers, expected.records)
            keys, rejections, stored = store_counts(app)
            held = held_seconds(workers)
        finally:
            codes = [w.stop() for w in workers]
            app.close()
    count = expected.records
    worker_cpu = sum(after[pid] - before[pid] for pid in pids)
    duplicate = sum(int(s.get("duplicate", 0)) for s in stats)
    return {
        "mode": "processes",
        "partitions": args.partitions,
        "workers": args.workers,
        "events_per_second": count / seconds,
        "seconds": seconds,
        "produce_seconds": produce_seconds,
        "group_settle_seconds": settle,
        "cpu_us_per_event": worker_cpu * 1e6 / count,
        "cpu_seconds": {
            "workers": worker_cpu,
            "postgres_backends": server.seconds if server is not None else None,
            "broker": after[broker_pid] - before[broker_pid] if broker_pid else None,
            "bench": bench_cpu,
        },
        "machine_busy_cores": (busy_after - busy_before) / seconds,
        "load_average_before": [round(x, 2) for x in load],
        "accepted": sum(int(s.get("accepted", 0)) for s in stats),
        "duplicate": duplicate,
        "rejected": sum(int(s.get("rejected", 0)) for s in stats),
        "dead_lettered": sum(int(s.get("dead_lettered", 0)) for s in stats),
        "batches": sum(int(s.get("batches", 0)) for s in stats),
        "events_stored": stored,
        "reference_holds": sum(int(s.get("reference_holds", 0)) for s in stats),
        "held_partition_seconds": held,
        "transient_faults": sum(int(s.get("transient_faults", 0)) for s in stats),
        "rebalances_by_worker": [int(s.get("rebalances", 0)) for s in stats],
        "records_by_worker": [int(s.get("records", 0)) for s in stats],
        "messages_per_partition": [last.get(p, -1) + 1 for p in range(args.partitions)],
        "exit_codes": codes,
        "accounting": accounting(expected, keys, rejections, duplicate),
    }


# -- the store's account ----------------------------------------------------------------


def store_counts(app: Any) -> tuple[int, dict[str, int], int]:
    """Idempotency keys, rejections (dead letters) by code and events stored, in the store."""
    keys = int(app.store.count_ingested_keys())
    rejections = {str(code): int(n) for code, n in app.store.count_rejections().items()}
    stored = sum(int(n) for n in app.store.count_events_by_topic().values())
    return keys, rejections, stored


def accounting(
    expected: Expected, keys: int, rejections: Mapping[str, int], duplicates: int
) -> dict[str, Any]:
    """Compare the store with the generator: keys = valid inputs, dead letters by code = bad
    inputs by code, duplicates = repeated inputs.

    Raises if records were lost or counted twice (the outcomes do not add up to the records
    produced); a different split (a valid input dead-lettered, say as ``UNKNOWN_REFERENCE``
    because its reference sat in another partition) is returned with ``holds`` False, so
    that the run's figures are still written.
    """
    dead = sum(rejections.values())
    if keys + dead + duplicates != expected.records:
        msg = (
            f"records lost or counted twice: {keys} stored + {dead} dead-lettered + "
            f"{duplicates} duplicates != {expected.records} produced"
        )
        raise RuntimeError(msg)
    codes = sorted(set(rejections) | set(expected.rejections))
    off = {
        code: rejections.get(code, 0) - expected.rejections.get(code, 0)
        for code in codes
        if rejections.get(code, 0) != expected.rejections.get(code, 0)
    }
    return {
        "holds": keys == expected.accepted and duplicates == expected.duplicates and not off,
        "stored_keys": keys,
        "valid_inputs": expected.accepted,
        "dead_letters": dead,
        "bad_inputs": sum(expected.rejections.values()),
        "duplicates": duplicates,
        "repeated_inputs": expected.duplicates,
        "dead_letters_by_code": dict(sorted(rejections.items())),
        "dead_letters_minus_expected_by_code": off,
    }


# -- stores -----------------------------------------------------------------------------


def pg_database(admin_url: str) -> Generator[str, None, None]:
    """Create a fresh PostgreSQL database; yield its store URL; drop it afterwards."""
    import psycopg

    name = f"pe_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_pg(admin_url: str, func: Callable[[str], Any]) -> Any:
    """Run ``func(store_url)`` on a fresh database."""
    databases = pg_database(admin_url)
    url = next(databases)
    try:
        return func(url)
    finally:
        databases.close()


def _is_postgres(store_url: str) -> bool:
    return store_url.startswith(("postgresql:", "postgres:"))


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to ingest")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dirty", type=float, default=0.005, help="share of bad input")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--partitions", type=int, default=1, help="partitions of the topic (keyed by subject)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes in one consumer group (<= P)"
    )
    parser.add_argument(
        "--processes",
        action="store_true",
        help="run the worker as a process even with one partition and one worker",
    )
    parser.add_argument(
        "--reference-wait-ms",
        type=int,
        default=None,
        help="passed to worker processes (default: theirs, 10000)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run at most")
    parser.add_argument("--keep-logs", help="write worker processes' JSON logs into this directory")
    parser.add_argument("--kafka", help="bootstrap servers (default: start a Tansu broker)")
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--repeat", type=int, default=1, help="end-to-end runs per store")
    parser.add_argument(
        "--stores",
        default="postgres,sqlite",
        help="stores to ingest into end to end: postgres and/or sqlite",
    )
    parser.add_argument(
        "--out",
        help="results file (default bench/results/ingest.json; "
        "bench/results/ingest-pP-wW.json for worker processes)",
    )
    args = parser.parse_args(argv)
    if args.partitions < 1 or not 1 <= args.workers <= args.partitions:
        parser.error("need 1 <= --workers <= --partitions (a worker without a partition idles)")
    args.stores = [name.strip() for name in args.stores.split(",") if name.strip()]
    if not args.stores or set(args.stores) - {"postgres", "sqlite"}:
        parser.error("--stores takes postgres and/or sqlite")
    if args.out is None:
        name = f"ingest-p{args.partitions}-w{args.workers}" if scaled(args) else "ingest"
        args.out = str(ROOT / "bench" / "results" / f"{name}.json")
    return args


def scaled(args: argparse.Namespace) -> bool:
    """True if the workers run as processes (several partitions or workers, or asked for)."""
    return bool(args.processes or args.partitions > 1 or args.workers > 1)


def prepare_topic(
    bootstrap: str, args: argparse.Namespace
) -> tuple[str, list[Message], Expected, dict[str, Any]]:
    """Generate the input, produce it into a fresh topic; return topic, input and figures."""
    t0 = time.perf_counter()
    messages, expected = demo_input(args.events, args.seed, args.dirty)
    count = len(messages)
    print(f"generated {count:,} messages in {time.perf_counter() - t0:.1f} s")
    topic = create_topic(bootstrap, args.partitions)
    figures: dict[str, Any] = {
        "events": count,
        "partitions": args.partitions,
        "workers": args.workers,
        "worker_mode": "processes" if scaled(args) else "thread",
        "reference_wait_ms": args.reference_wait_ms,
        "crc32c_c_extension": _has_crc32c(),
    }
    figures["produce_confluent"], _ = produce(bootstrap, topic, messages)
    print(f"produce (confluent-kafka):      {figures['produce_confluent']:>10,.0f} msgs/s")
    return topic, messages, expected, figures


def run_baselines(
    bootstrap: str, topic: str, count: int, args: argparse.Namespace, figures: dict[str, Any]
) -> None:
    """Raw consumption and batched saves (into the stores measured), in this run, here."""
    from practice_events.config import store_env

    figures["consume_kafka_python"] = consume_raw(bootstrap, topic, count, args.partitions)
    print(f"consume (kafka-python, raw):    {figures['consume_kafka_python']:>10,.0f} msgs/s")
    if "postgres" in args.stores:
        figures["save_batched_postgres"] = with_pg(
            args.pg_admin, lambda url: save_baseline(store_env(url), count)
        )
        print(
            f"save() 1,000/txn, PostgreSQL:   {figures['save_batched_postgres']:>10,.0f} events/s"
        )
    if "sqlite" in args.stores:
        with tempfile.TemporaryDirectory() as tmp:
            env = store_env(f"sqlite:///{tmp}/baseline.db")
            figures["save_batched_sqlite"] = save_baseline(env, count)
        print(f"save() 1,000/txn, SQLite:       {figures['save_batched_sqlite']:>10,.0f} events/s")


def run_end_to_end(
    bootstrap: str,
    topic: str,
    args: argparse.Namespace,
    figures: dict[str, Any],
    *,
    messages: list[Message],
    expected: Expected,
    broker_pid: int | None = None,
) -> bool:
    """The worker(s) into PostgreSQL and into SQLite (median of ``--repeat`` runs each);
    return whether the accounting held in every run."""
    runs: dict[str, list[dict[str, Any]]] = {store: [] for store in args.stores}

    def one(url: str) -> dict[str, Any]:
        if scaled(args):
            return ingest_group(bootstrap, messages, expected, url, args, broker_pid=broker_pid)
        return ingest(bootstrap, topic, url, expected, args.batch_size, broker_pid=broker_pid)

    for _ in range(args.repeat):
        if "postgres" in runs:
            runs["postgres"].append(with_pg(args.pg_admin, one))
            print_run("PostgreSQL", runs["postgres"][-1])
        if "sqlite" in runs:
            with tempfile.TemporaryDirectory() as tmp:
                runs["sqlite"].append(one(f"sqlite:///{tmp}/store.db"))
            print_run("SQLite", runs["sqlite"][-1])
    for store, store_runs in runs.items():
        figures[f"ingest_{store}"] = statistics.median(r["events_per_second"] for r in store_runs)
        figures[f"ingest_{store}_outcomes"] = store_runs[-1]
    held = all(r["accounting"]["holds"] for store_runs in runs.values() for r in store_runs)
    figures["accounting_holds"] = held
    return held


def print_run(label: str, run: Mapping[str, Any]) -> None:
    """One line for a run, one for its accounting."""
    outcomes = (
        f"({run['accepted']:,} accepted, {run['duplicate']:,} duplicate, "
        f"{run['dead_lettered']:,} dead-lettered)"
    )
    cpu = run["cpu_seconds"]
    server = cpu["postgres_backends"]
    server_text = f", PostgreSQL {server * 1e6 / run_records(run):.0f}" if server else ""
    if run["mode"] == "thread":
        print(
            f"end to end, {label + ':':<20}{run['events_per_second']:>10,.0f} events/s, "
            f"{run['cpu_us_per_event']:.0f} µs CPU/event in the worker process"
            f"{server_text} {outcomes}"
        )
    else:
        print(
            f"end to end, {label}, {run['workers']} worker processes over "
            f"{run['partitions']} partitions: {run['events_per_second']:,.0f} events/s in "
            f"{run['seconds']:.1f} s; CPU µs/event: workers {run['cpu_us_per_event']:.0f}"
            f"{server_text}; machine busy {run['machine_busy_cores']:.2f} cores; "
            f"{run['reference_holds']:,} reference holds "
            f"({run['held_partition_seconds']:.1f} partition-seconds paused); "
            f"records by worker {run['records_by_worker']}; {outcomes}"
        )
    account = run["accounting"]
    verdict = "holds" if account["holds"] else "DOES NOT HOLD"
    off = account["dead_letters_minus_expected_by_code"]
    print(
        f"  accounting {verdict}: stored keys {account['stored_keys']:,} "
        f"(valid inputs {account['valid_inputs']:,}), dead letters {account['dead_letters']:,} "
        f"(bad inputs {account['bad_inputs']:,}), duplicates {account['duplicates']:,} "
        f"(repeated inputs {account['repeated_inputs']:,})"
        + (f"; dead letters minus expected, by code: {off}" if off else "")
    )


def run_records(run: Mapping[str, Any]) -> int:
    """The records a run ingested (its outcomes' sum)."""
    return int(run["accepted"]) + int(run["duplicate"]) + int(run["dead_lettered"])


def report(figures: dict[str, Any], out: Path) -> dict[str, Any]:
    """Compute ratios and targets; print them and the JSON line; write the JSON file."""
    ratios: dict[str, float] = {}
    if "ingest_postgres" in figures:
        ratios["ingest_postgres_vs_save_batched"] = (
            figures["ingest_postgres"] / figures["save_batched_postgres"]
        )
    if "ingest_sqlite" in figures:
        ratios["ingest_sqlite_vs_save_batched"] = (
            figures["ingest_sqlite"] / figures["save_batched_sqlite"]
        )
    if "ingest_postgres" in figures:
        ratios["ingest_postgres_vs_raw_consume"] = (
            figures["ingest_postgres"] / figures["consume_kafka_python"]
        )
    targets = {"ingest_postgres_events_per_second": 10_000, "ingest_postgres_vs_save_batched": 0.4}
    met: bool | None = None  # PostgreSQL not measured (--stores sqlite)
    if "ingest_postgres" in figures:
        met = (
            figures["ingest_postgres"] >= targets["ingest_postgres_events_per_second"]
            and ratios["ingest_postgres_vs_save_batched"]
            >= targets["ingest_postgres_vs_save_batched"]
        )
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.2f}")
    print(f"targets met: {met}")
    result = {
        "bench": "ingest",
        "figures": _rounded(figures),
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": targets,
        "targets_met": met,
    }
    line = orjson.dumps(result).decode()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and the JSON line (exit 1 if the accounting failed)."""
    from practice_events.logging import configure_logging

    args = parse_args(argv)
    configure_logging("console", "warning")
    # SIGTERM (make bench stopped, a CI timeout): unwind, so that worker processes, the
    # broker and the scratch databases are stopped and dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    broker = None
    bootstrap = args.kafka
    if bootstrap is None:
        from tests.kafka_broker import TansuBroker

        broker = TansuBroker(log_path=Path(tempfile.gettempdir()) / "bench-tansu.log")
        broker.start()
        bootstrap = broker.bootstrap
    broker_pid = broker.process.pid if broker is not None and broker.process else None
    try:
        topic, messages, expected, figures = prepare_topic(bootstrap, args)
        run_baselines(bootstrap, topic, len(messages), args, figures)
        held = run_end_to_end(
            bootstrap,
            topic,
            args,
            figures,
            messages=messages,
            expected=expected,
            broker_pid=broker_pid,
        )
    finally:
        if broker is not None:
            broker.stop()
    report(figures, Path(args.out))
    if not held:
        print("the accounting did not hold: see the lines above", file=sys.stderr)
    return 0 if held else 1


def _has_crc32c() -> bool:
    """Whether kafka-python can use the C CRC-32C (else it checks in pure Python)."""
    from kafka.record import util

    return util.crc32c_c is not None


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    raise SystemExit(main())
