"""``practice-events ingest``: run the Kafka ingestion worker.

Installed into the ``practice-events`` command through the
``practice_events.cli`` entry point (the core package never imports this
one). The command runs until SIGTERM or SIGINT, then finishes or abandons the
batch in hand, leaves the consumer group and exits 0.
"""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any

EPILOG = """\
examples:
  practice-events ingest --kafka 127.0.0.1:9092 --topic practice.events.v1 \\
      --group practice-events
  practice-events ingest --kafka kafka-1:9092,kafka-2:9092 --batch-size 2000 \\
      --store postgresql://practice@db/practice --health-port 8081

positions are kept in the event store (tracking kafka:<topic>:<partition>);
refused records go to the dead-letter topic (default <topic>.dlq).
exit codes: 0 stopped by SIGTERM/SIGINT, 1 bug, 2 bad configuration.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the worker's options to ``parser`` (shared by the CLI and ``python -m``)."""
    parser.add_argument("--kafka", help="bootstrap servers, host:port[,host:port...]")
    parser.add_argument("--topic", help="topic to ingest (default practice.events.v1)")
    parser.add_argument("--group", help="consumer group (default practice-events)")
    parser.add_argument("--dlq-topic", help="dead-letter topic (default <topic>.dlq)")
    parser.add_argument("--batch-size", type=int, help="records per transaction (default 1000)")
    parser.add_argument(
        "--max-wait-ms", type=int, help="longest wait for a batch to fill (default 250)"
    )
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        help="group session timeout (default 6000; heartbeats every third of it)",
    )
    parser.add_argument(
        "--reference-wait-ms",
        type=int,
        help="hold a partition this long for a reference created in another partition "
        "before dead-lettering the record as UNKNOWN_REFERENCE (default 10000; 0 never)",
    )
    parser.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")
    parser.add_argument(
        "--health-port",
        type=int,
        help="serve /healthz and /readyz on this port (0 picks a free one)",
    )
    parser.add_argument(
        "--health-host",
        default="127.0.0.1",
        help="address the health port listens on (default 127.0.0.1; 0.0.0.0 in a container, "
        "so that the orchestrator's probes reach it)",
    )
    parser.set_defaults(func=run_ingest)


def install(subparsers: Any) -> None:
    """Add the ``ingest`` command to the ``practice-events`` sub-parsers."""
    parser = subparsers.add_parser(
        "ingest",
        help="Ingest CloudEvents from Kafka, exactly once, in a consumer group.",
        description="Ingest CloudEvents from Kafka, exactly once, in a consumer group.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)


def run_ingest(args: argparse.Namespace) -> int:
    """Build the worker from settings and arguments and run it until a signal stops it."""
    from consumers.worker import HealthServer, Worker, WorkerConfig
    from practice_events.bootstrap import build_app, build_ingest
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging

    settings = load_settings(
        store=args.store,
        kafka_bootstrap=args.kafka,
        kafka_topic=args.topic,
        kafka_group=args.group,
        kafka_dlq_topic=args.dlq_topic,
        batch_size=args.batch_size,
    )
    configure_logging(settings.log_format, settings.log_level)
    session = args.session_timeout_ms
    config = WorkerConfig.from_settings(
        settings,
        max_wait_ms=args.max_wait_ms,
        session_timeout_ms=session,
        heartbeat_interval_ms=max(100, session // 3) if session else None,
        reference_wait_ms=args.reference_wait_ms,
    )
    app = build_app(settings)
    health: HealthServer | None = None
    pipeline = None
    try:
        pipeline = build_ingest(settings, app)  # a shard router with PRACTICE_EVENTS_SHARDS
        worker = Worker(pipeline, config)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        if args.health_port is not None:
            health = HealthServer(worker, args.health_port, host=args.health_host)
            health.start()
        worker.run()
    finally:
        if health is not None:
            health.close()
        if pipeline is not None:
            pipeline.close()
        app.close()
    return 0
