"""``practice-events demo generate``: write or publish a demo district's history.

Thin entry point: parse the arguments, run the generator, write JSON Lines
(a file or standard output) or publish to Kafka in CloudEvents binary mode
(``ce_*`` headers, the value is ``data``, the key is ``subject``), print a
summary. confluent-kafka is used when it is installed (a test dependency,
much faster); kafka-python otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from typing import Any

import orjson

from practice_events.errors import ConfigurationError, TransientError

EPILOG = """\
examples:
  practice-events demo generate --seed 7 --days 365 --out demo.jsonl
  practice-events demo generate --events 1000000 --out /tmp/demo1m.jsonl
  practice-events demo generate --days 60 --dirty 0.05 --out dirty.jsonl
      (also writes dirty.jsonl.expected.json: the rejections to expect by code)
  practice-events demo generate --out - | head
  practice-events demo generate --format kafka --kafka 127.0.0.1:9092 --topic practice.events.v1

The same arguments always give the same bytes. Without --start the default
window is 2025; with --events and no --days the window ends on 2025-12-31.
"""

CE_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time")
"""CloudEvents attributes that become ``ce_*`` headers in binary mode."""

Header = tuple[str, bytes]


def install(subparsers: Any) -> None:
    """Add ``demo generate`` to the ``practice-events`` command line."""
    demo = subparsers.add_parser("demo", help="Generate the demo district's history.")
    demo_sub = demo.add_subparsers(dest="demo_command", metavar="COMMAND", required=True)
    p = demo_sub.add_parser(
        "generate",
        help="Write a realistic, deterministic history of a district as CloudEvents.",
        description="Write a realistic, deterministic history of a district as CloudEvents "
        "(JSON Lines, or published to Kafka in binary mode).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_generate)
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--days", type=_positive, help="length of the window in days (default 365)")
    p.add_argument("--start", type=_date, help="first day, YYYY-MM-DD (default 2025-01-01)")
    p.add_argument("--events", type=_positive, help="scale the history to about this many events")
    p.add_argument(
        "--dirty",
        type=_share,
        default=0.0,
        help="share of bad input to mix in, 0..0.5 (writes OUT.expected.json)",
    )
    p.add_argument("--out", help="output file, or - for standard output (jsonl format)")
    p.add_argument("--format", choices=("jsonl", "kafka"), default="jsonl")
    p.add_argument("--kafka", help="Kafka bootstrap servers (kafka format)")
    p.add_argument("--topic", help="Kafka topic (kafka format; default from settings)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_generate(args: argparse.Namespace) -> int:
    """Run ``demo generate``."""
    from practice_events.demo.generator import plan

    progress = not args.no_progress and sys.stderr.isatty()
    window = plan(args.days, args.events, args.start)
    if window.end > date.today():
        # Only a warning: the output itself never depends on the clock.
        sys.stderr.write(
            f"practice-events: warning: the window ends on {window.end - timedelta(days=1)}, "
            "after today; ingestion refuses events more than 5 minutes in the future "
            "(choose an earlier --start)\n"
        )
    if args.format == "kafka":
        summary = _publish(args, progress)
    else:
        if not args.out:
            msg = "--out is required for the jsonl format (use --out - for standard output)"
            raise ConfigurationError(msg)
        from practice_events.demo.generator import write_jsonl

        target = sys.stdout.buffer if args.out == "-" else args.out
        summary = write_jsonl(
            target,
            seed=args.seed,
            days=args.days,
            events=args.events,
            dirty=args.dirty,
            start=args.start,
            progress=progress,
        ).as_dict()
        summary["out"] = args.out
    report = sys.stderr if args.out == "-" else sys.stdout
    if args.json:
        report.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    rate = summary.get("lines_per_second") or 0
    where = summary.get("out") or f"{summary.get('topic')} at {summary.get('bootstrap')}"
    report.write(
        f"{summary['lines']:,} lines in {summary['seconds']:.1f} s ({rate:,}/s) to {where}: "
        f"{summary['days']} days from {summary['start']}, district scale {summary['scale']}\n"
    )
    expected = summary.get("expected")
    if expected:
        report.write(
            f"  bad lines: {expected['dirty']:,} ({expected['expected_rejected']:,} to be "
            f"rejected, {expected['expected_duplicates']:,} duplicates)"
        )
        if summary.get("expected_path"):
            report.write(f"; expectations in {summary['expected_path']}")
        report.write("\n")
    return 0


# --- Kafka ---------------------------------------------------------------------------------


def binary_message(event: dict[str, Any]) -> tuple[bytes | None, bytes, list[Header]]:
    """Return (key, value, headers) of an event in CloudEvents Kafka binary mode.

    Attributes become ``ce_*`` headers (extensions too), ``data`` the value
    and ``subject`` the key. A line that is not a JSON object is sent as a
    structured-mode value without ``ce_*`` headers, as a broken producer would.
    """
    from practice_events.demo.dirty import RAW_LINE

    raw = event.get(RAW_LINE)
    if raw is not None:
        return None, raw.encode(), [("content-type", b"application/cloudevents+json")]
    headers: list[Header] = []
    for name, value in event.items():
        if name in ("data", "datacontenttype"):
            continue
        headers.append((f"ce_{name}", str(value).encode()))
    headers.append(("content-type", b"application/json"))
    subject = event.get("subject")
    key = str(subject).encode() if subject is not None else None
    return key, orjson.dumps(event.get("data")), headers


def _publish(args: argparse.Namespace, progress: bool) -> dict[str, Any]:
    import time

    from practice_events.config import load_settings
    from practice_events.demo.generator import Generation, relaxed_gc
    from practice_events.progress import Progress

    settings = load_settings()
    bootstrap = args.kafka or settings.kafka_bootstrap
    topic = args.topic or settings.kafka_topic
    if not bootstrap:
        msg = (
            "--kafka BOOTSTRAP is required for the kafka format "
            "(or set PRACTICE_EVENTS_KAFKA_BOOTSTRAP)"
        )
        raise ConfigurationError(msg)
    started = time.perf_counter()
    run = Generation(
        seed=args.seed, days=args.days, events=args.events, dirty=args.dirty, start=args.start
    )
    by_type: Counter[str] = Counter()

    def counted(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for event in events:
            by_type[str(event.get("type", "(not a JSON object)"))] += 1
            yield event

    with relaxed_gc(), Progress("demo", run.estimate, enabled=progress) as bar:
        lines = publish(counted(run.events()), bootstrap, topic, bar.advance)
    summary: dict[str, Any] = {
        "lines": lines,
        "seconds": round(time.perf_counter() - started, 3),
        "start": run.plan.start.isoformat(),
        "days": run.plan.days,
        "scale": round(run.plan.scale, 4),
        "bootstrap": bootstrap,
        "topic": topic,
        "by_type": dict(sorted(by_type.items())),
        "expected": run.expected.as_dict() if run.expected is not None else None,
    }
    summary["lines_per_second"] = round(lines / summary["seconds"]) if summary["seconds"] else None
    return summary


def publish(
    events: Iterable[dict[str, Any]],
    bootstrap: str,
    topic: str,
    advance: Callable[[int], None] | None = None,
) -> int:
    """Publish events to ``topic`` in binary mode, in order; return how many were sent.

    Raises :class:`TransientError` if the broker cannot be reached or a
    message could not be delivered.
    """
    try:
        import confluent_kafka
    except ImportError:  # pragma: no cover - confluent-kafka is a test dependency
        return _publish_kafka_python(events, bootstrap, topic, advance)
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 20,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 200_000,
            "message.timeout.ms": 60_000,
        }
    )
    sent = 0
    for event in events:
        key, value, headers = binary_message(event)
        kafka_headers: list[tuple[str, str | bytes | None]] = [*headers]
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=kafka_headers, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.2)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
            if advance is not None:
                advance(10_000)
    remaining = producer.flush(120)
    if advance is not None:
        advance(sent % 10_000)
    if remaining or failures:
        detail = failures[0] if failures else f"{remaining} messages still queued"
        msg = f"could not publish to {topic} at {bootstrap}: {detail}"
        raise TransientError(msg)
    return sent


def _publish_kafka_python(
    events: Iterable[dict[str, Any]],
    bootstrap: str,
    topic: str,
    advance: Callable[[int], None] | None,
) -> int:  # pragma: no cover - exercised only where confluent-kafka is missing
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    except KafkaError as exc:
        msg = f"cannot reach Kafka at {bootstrap}: {exc}"
        raise TransientError(msg) from exc
    failures: list[str] = []
    sent = 0
    try:
        for event in events:
            key, value, headers = binary_message(event)
            future = producer.send(topic, key=key, value=value, headers=headers)
            future.add_errback(lambda exc: failures.append(str(exc)))
            sent += 1
            if advance is not None and sent % 10_000 == 0:
                advance(10_000)
        producer.flush()
    finally:
        producer.close()
    if failures:
        msg = f"could not publish to {topic} at {bootstrap}: {failures[0]}"
        raise TransientError(msg)
    return sent


# --- argument types ----------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be a positive whole number, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 0.5:
        msg = f"must be a share between 0 and 0.5, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        msg = f"must be a date like 2025-01-01, got {text}"
        raise argparse.ArgumentTypeError(msg) from None
