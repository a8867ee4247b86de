"""Benchmark: Kafka -> ingestion worker -> event store, end to end, beside its baselines.

Not a test: it prints figures. In one run it

1. generates N events of the demo district's realistic mix
   (``practice_events.demo.generator.generate``; a small share of bad input
   with ``--dirty``) and produces them in CloudEvents binary mode into a
   fresh one-partition topic with confluent-kafka;
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

One partition: the demo history has references across aggregates (a
check-in names a site, hours name a session), so producing it into several
partitions would let a reference overtake the creation it names.

    .venv/bin/python bench/ingest.py                 # 200k events, starts its own Tansu
    .venv/bin/python bench/ingest.py --events 20000  # a quick run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Tansu launcher lives in tests/kafka_broker.py

Message = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


# -- input ------------------------------------------------------------------------------


def demo_messages(events: int, seed: int, dirty: float) -> list[Message]:
    """The demo district's history as Kafka binary-mode messages (key = subject)."""
    from practice_events.demo.cli import binary_message
    from practice_events.demo.generator import generate

    return [binary_message(e) for e in generate(seed=seed, events=events, dirty=dirty)]


def produce(bootstrap: str, topic: str, messages: list[Message]) -> float:
    """Produce with confluent-kafka; return messages per second."""
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

    def delivered(error: Any, _msg: Any) -> None:
        if error is not None:
            failures.append(str(error))

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
    return len(messages) / seconds


# -- baselines --------------------------------------------------------------------------


def consume_raw(bootstrap: str, topic: str, count: int) -> float:
    """kafka-python, no group, no processing: records per second."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    # kafka-python checks CRC-32C in Python unless the crc32c C extension is installed.
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        consumer.poll(timeout_ms=100, max_records=1)  # connect and fetch metadata first
        consumer.seek_to_beginning(tp)
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


# -- end to end -------------------------------------------------------------------------


def ingest(
    bootstrap: str, topic: str, store_url: str, count: int, batch_size: int
) -> dict[str, Any]:
    """Run the worker until ``count`` records are committed; return rate and outcomes."""
    from consumers.worker import Worker, WorkerConfig
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import Settings

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
    try:
        if not positioned.wait(60):
            msg = "the worker got no partitions within 60 s"
            raise RuntimeError(msg)
        started = time.perf_counter()
        cpu_started = time.process_time()
        while worker.stats.records < count:
            if not thread.is_alive():
                msg = "the worker stopped"
                raise RuntimeError(msg)
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        worker.stop()
        thread.join(60)
        app.close()
    stats = worker.stats
    return {
        "events_per_second": count / seconds,
        "seconds": seconds,
        "cpu_us_per_event": cpu * 1e6 / count,
        "accepted": stats.accepted,
        "duplicate": stats.duplicate,
        "rejected": stats.rejected_total,
        "dead_lettered": stats.dead_lettered,
        "batches": stats.batches,
        "events_stored": stats.events_stored,
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


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to ingest")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dirty", type=float, default=0.005, help="share of bad input")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--kafka", help="bootstrap servers (default: start a Tansu broker)")
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--repeat", type=int, default=1, help="end-to-end runs per store")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ingest.json"))
    return parser.parse_args(argv)


def prepare_topic(bootstrap: str, args: argparse.Namespace) -> tuple[str, int, dict[str, Any]]:
    """Generate the input, produce it into a fresh topic; return topic, count, figures."""
    from kafka.admin import KafkaAdminClient, NewTopic

    t0 = time.perf_counter()
    messages = demo_messages(args.events, args.seed, args.dirty)
    count = len(messages)
    print(f"generated {count:,} messages in {time.perf_counter() - t0:.1f} s")
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    admin.close()
    figures: dict[str, Any] = {"events": count, "crc32c_c_extension": _has_crc32c()}
    figures["produce_confluent"] = produce(bootstrap, topic, messages)
    print(f"produce (confluent-kafka):      {figures['produce_confluent']:>10,.0f} msgs/s")
    return topic, count, figures


def run_baselines(
    bootstrap: str, topic: str, count: int, args: argparse.Namespace, figures: dict[str, Any]
) -> None:
    """Raw consumption and batched saves, in this run, on this machine."""
    from practice_events.config import store_env

    figures["consume_kafka_python"] = consume_raw(bootstrap, topic, count)
    print(f"consume (kafka-python, raw):    {figures['consume_kafka_python']:>10,.0f} msgs/s")
    figures["save_batched_postgres"] = with_pg(
        args.pg_admin, lambda url: save_baseline(store_env(url), count)
    )
    print(f"save() 1,000/txn, PostgreSQL:   {figures['save_batched_postgres']:>10,.0f} events/s")
    with tempfile.TemporaryDirectory() as tmp:
        env = store_env(f"sqlite:///{tmp}/baseline.db")
        figures["save_batched_sqlite"] = save_baseline(env, count)
    print(f"save() 1,000/txn, SQLite:       {figures['save_batched_sqlite']:>10,.0f} events/s")


def run_end_to_end(
    bootstrap: str, topic: str, count: int, args: argparse.Namespace, figures: dict[str, Any]
) -> None:
    """The worker into PostgreSQL and into SQLite (median of ``--repeat`` runs each)."""
    runs: dict[str, list[dict[str, Any]]] = {"postgres": [], "sqlite": []}
    for _ in range(args.repeat):
        runs["postgres"].append(
            with_pg(
                args.pg_admin, lambda url: ingest(bootstrap, topic, url, count, args.batch_size)
            )
        )
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/store.db"
            runs["sqlite"].append(ingest(bootstrap, topic, url, count, args.batch_size))
        for store, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
            run = runs[store][-1]
            print(
                f"end to end, {label + ':':<20}{run['events_per_second']:>10,.0f} events/s, "
                f"{run['cpu_us_per_event']:.0f} µs CPU/event in the worker process "
                f"({run['accepted']:,} accepted, {run['duplicate']:,} duplicate, "
                f"{run['dead_lettered']:,} dead-lettered)"
            )
            total = run["accepted"] + run["duplicate"] + run["dead_lettered"]
            if total != count:
                msg = f"accounting broken on {store}: {total} outcomes for {count} records"
                raise RuntimeError(msg)
    for store, store_runs in runs.items():
        figures[f"ingest_{store}"] = statistics.median(r["events_per_second"] for r in store_runs)
        figures[f"ingest_{store}_outcomes"] = store_runs[-1]


def report(figures: dict[str, Any], out: Path) -> dict[str, Any]:
    """Compute ratios and targets; print them and the JSON line; write the JSON file."""
    ratios = {
        "ingest_postgres_vs_save_batched": figures["ingest_postgres"]
        / figures["save_batched_postgres"],
        "ingest_sqlite_vs_save_batched": figures["ingest_sqlite"] / figures["save_batched_sqlite"],
        "ingest_postgres_vs_raw_consume": figures["ingest_postgres"]
        / figures["consume_kafka_python"],
    }
    targets = {"ingest_postgres_events_per_second": 10_000, "ingest_postgres_vs_save_batched": 0.4}
    met = (
        figures["ingest_postgres"] >= targets["ingest_postgres_events_per_second"]
        and ratios["ingest_postgres_vs_save_batched"] >= targets["ingest_postgres_vs_save_batched"]
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
    """Run the benchmark; print figures and the JSON line."""
    from practice_events.logging import configure_logging

    args = parse_args(argv)
    configure_logging("console", "warning")
    broker = None
    bootstrap = args.kafka
    if bootstrap is None:
        from tests.kafka_broker import TansuBroker

        broker = TansuBroker(log_path=Path(tempfile.gettempdir()) / "bench-tansu.log")
        broker.start()
        bootstrap = broker.bootstrap
    try:
        topic, count, figures = prepare_topic(bootstrap, args)
        run_baselines(bootstrap, topic, count, args, figures)
        run_end_to_end(bootstrap, topic, count, args, figures)
    finally:
        if broker is not None:
            broker.stop()
    report(figures, Path(args.out))
    return 0


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
