"""pytest fixtures and helpers for a real Kafka-protocol broker (Tansu), started by the suite.

Besides the session-scoped broker this module offers what the Kafka tests
share: fresh topics, producers (kafka-python and confluent-kafka, structured
and binary CloudEvents modes), a dead-letter reader, a worker running on a
thread, and scenario builders whose expected outcome is known in advance, so
that every test can check the accounting: produced = accepted + duplicates +
dead-lettered.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka_broker import TansuBroker

# -- the broker -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One Tansu broker for the whole session (memory storage, free port)."""
    log_path = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    broker = TansuBroker(log_path=log_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True)
class Topics:
    """A fresh topic, its dead-letter topic and a fresh consumer group for one test."""

    bootstrap: str
    topic: str
    dlq: str
    group: str
    partitions: int


def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    """Create topics with ``partitions`` partitions each (replication 1)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests-admin")
    try:
        admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        admin.close()


def fresh_topics(broker: TansuBroker, partitions: int = 3, prefix: str = "t") -> Topics:
    """Create a uniquely named topic (with ``partitions``) and its one-partition DLQ."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    create_topics(broker.bootstrap, [name], partitions)
    create_topics(broker.bootstrap, [f"{name}.dlq"], 1)
    return Topics(broker.bootstrap, name, f"{name}.dlq", f"g-{name}", partitions)


@pytest.fixture
def topics(kafka_broker: TansuBroker) -> Topics:
    """A fresh three-partition topic, its DLQ and a fresh group name."""
    return fresh_topics(kafka_broker)


# -- CloudEvents and messages -------------------------------------------------------------

SOURCE = "urn:test:kafka"


def event(
    event_type: str,
    subject: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
    source: str = SOURCE,
    time: datetime | None = None,
) -> dict[str, Any]:
    """Build a structured-mode CloudEvent dict."""
    when = time or datetime(2024, 3, 4, 1, 0, tzinfo=UTC)
    return {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": when.isoformat(),
        "datacontenttype": "application/json",
        "data": dict(data),
    }


@dataclass
class Message:
    """One Kafka record to produce, and what the worker should make of it.

    ``expect`` is ``accepted``, ``duplicate`` or a rejection code.
    """

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    expect: str
    event_id: str | None = None
    source: str = SOURCE

    @property
    def valid(self) -> bool:
        """True when the message should end as a stored event."""
        return self.expect == "accepted"


def structured(ce: Mapping[str, Any], expect: str = "accepted") -> Message:
    """A structured-mode record: the whole CloudEvent is the value."""
    return Message(
        key=str(ce.get("subject", "")).encode() or None,
        value=orjson.dumps(ce),
        headers=[("content-type", b"application/cloudevents+json")],
        expect=expect,
        event_id=str(ce.get("id")),
        source=str(ce.get("source", SOURCE)),
    )


def binary(ce: Mapping[str, Any], expect: str = "accepted") -> Message:
    """A binary-mode record: attributes in ``ce_*`` headers, the data as the value."""
    headers = [
        (f"ce_{name}", str(value).encode())
        for name, value in ce.items()
        if name not in ("data", "datacontenttype")
    ]
    headers.append(("content-type", b"application/json"))
    return Message(
        key=str(ce["subject"]).encode(),
        value=orjson.dumps(ce["data"]),
        headers=headers,
        expect=expect,
        event_id=str(ce["id"]),
        source=str(ce["source"]),
    )


def raw(value: bytes | None, expect: str, key: bytes | None = b"junk") -> Message:
    """A record that is not a CloudEvent at all."""
    return Message(key=key, value=value, headers=[("origin", b"test")], expect=expect)


def centre(subject: str, **kw: Any) -> dict[str, Any]:
    """``site.registered`` of a centre (no parent, so no cross-partition reference)."""
    return event("practice.site.registered.v1", subject, {"level": "centre", "name": subject}, **kw)


def renamed(subject: str, name: str, **kw: Any) -> dict[str, Any]:
    """``site.updated`` renaming a site."""
    return event("practice.site.updated.v1", subject, {"name": name}, **kw)


def deactivated(subject: str, **kw: Any) -> dict[str, Any]:
    """``site.deactivated`` of a site."""
    return event("practice.site.deactivated.v1", subject, {"reason": "merged"}, **kw)


def valid_stream(count: int, *, mode: str = "mixed", prefix: str | None = None) -> list[Message]:
    """``count`` valid messages: per site a registration then renames (all in order by key)."""
    prefix = prefix or uuid.uuid4().hex[:6]
    out: list[Message] = []
    sites = max(1, count // 4)
    index = 0
    while len(out) < count:
        subject = f"S-{prefix}-{index % sites:05d}"
        ce = centre(subject) if index < sites else renamed(subject, f"{subject} #{index}")
        wrap = binary if mode == "binary" or (mode == "mixed" and index % 2) else structured
        out.append(wrap(ce))
        index += 1
    return out


def bad_messages(prefix: str | None = None) -> list[Message]:
    """One message of each kind of bad input, with the code it must be refused with.

    The illegal transition is a second deactivation of a site whose first one
    is valid (same key, so same partition and order).
    """
    prefix = prefix or uuid.uuid4().hex[:6]
    site = f"S-{prefix}-bad"
    return [
        raw(b"\xff\xfe not json at all", "MALFORMED_JSON"),
        raw(None, "MALFORMED_JSON"),
        structured(event("practice.nonsense.happened.v1", site, {"x": 1}), "UNKNOWN_TYPE"),
        structured(
            event("practice.site.registered.v1", f"{site}-x", {"level": "palace", "name": "x"}),
            "SCHEMA_VIOLATION",
        ),
        binary(renamed(f"{site}-never-registered", "ghost"), "UNKNOWN_AGGREGATE"),
        structured(centre(site)),
        binary(deactivated(site)),
        structured(deactivated(site), "ILLEGAL_TRANSITION"),
    ]


def duplicate_of(message: Message) -> Message:
    """The same record again (a producer retry): same source and id, same content."""
    return Message(
        message.key,
        message.value,
        list(message.headers),
        "duplicate",
        message.event_id,
        message.source,
    )


# -- producing -----------------------------------------------------------------------------


@dataclass
class Produced:
    """What was produced: each message with the partition and offset it landed at."""

    messages: list[Message] = field(default_factory=list)
    positions: list[tuple[int, int]] = field(default_factory=list)

    def extend(self, other: Produced) -> None:
        """Add another production run's messages."""
        self.messages += other.messages
        self.positions += other.positions

    @property
    def last_offsets(self) -> dict[int, int]:
        """The last offset produced per partition."""
        out: dict[int, int] = {}
        for partition, offset in self.positions:
            out[partition] = max(offset, out.get(partition, -1))
        return out

    @property
    def valid_keys(self) -> set[tuple[str, str]]:
        """(source, id) of every message that must be stored."""
        return {(m.source, str(m.event_id)) for m in self.messages if m.valid}

    @property
    def all_keys(self) -> list[tuple[str, str]]:
        """(source, id) of every message that has one."""
        return [(m.source, str(m.event_id)) for m in self.messages if m.event_id]

    @property
    def invalid_positions(self) -> set[tuple[int, int]]:
        """(partition, offset) of every message that must be dead-lettered."""
        return {
            pos
            for m, pos in zip(self.messages, self.positions, strict=True)
            if m.expect not in ("accepted", "duplicate")
        }

    def expected(self, status: str) -> int:
        """How many messages should end with ``status`` (accepted/duplicate/rejected)."""
        if status == "rejected":
            return len(self.invalid_positions)
        return sum(1 for m in self.messages if m.expect == status)


def produce_kafka_python(bootstrap: str, topic: str, messages: Sequence[Message]) -> Produced:
    """Produce with kafka-python (acks=all), in order; return where each message landed."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [
            producer.send(topic, key=m.key, value=m.value, headers=m.headers) for m in messages
        ]
        producer.flush()
        metadata = [f.get(timeout=30) for f in futures]
    finally:
        producer.close()
    return Produced(list(messages), [(md.partition, md.offset) for md in metadata])


def produce_confluent(bootstrap: str, topic: str, messages: Sequence[Message]) -> Produced:
    """Produce with confluent-kafka (librdkafka), an independent client."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": False}
    )
    landed: list[tuple[int, int] | None] = [None] * len(messages)
    errors: list[str] = []

    def report(index: int) -> Callable[[Any, Any], None]:
        def callback(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                landed[index] = (msg.partition(), msg.offset())

        return callback

    for index, m in enumerate(messages):
        headers: list[tuple[str, str | bytes | None]] = list(m.headers)
        producer.produce(
            topic, key=m.key, value=m.value, headers=headers, on_delivery=report(index)
        )
        producer.poll(0)
    producer.flush(30)
    assert not errors, errors
    assert all(p is not None for p in landed)
    return Produced(list(messages), [p for p in landed if p is not None])


# -- reading the dead-letter topic ----------------------------------------------------------


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list[Any]:
    """Read ``topic`` from the beginning until ``expected`` records arrived (or timeout).

    Reads without a group. Tansu's reported end offsets lag, so the reader
    does not stop at "the end" but at the expected count, then drains briefly
    to catch extra records (duplicates a test must notice).
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(records) < expected:
            for batch in consumer.poll(timeout_ms=200).values():
                records += batch
        drain = time.monotonic() + 0.5
        while time.monotonic() < drain:
            for batch in consumer.poll(timeout_ms=100).values():
                records += batch
        return records
    finally:
        consumer.close()


def dead_letters(bootstrap: str, dlq: str, expected: int) -> dict[tuple[int, int], Any]:
    """Return dead letters by source (partition, offset), each once."""
    from consumers.dlq import read_dead_letter

    out: dict[tuple[int, int], Any] = {}
    for record in read_topic(bootstrap, dlq, expected):
        info = read_dead_letter(record.headers)
        out.setdefault((info["source_partition"], info["source_offset"]), record)
    return out


# -- the worker on a thread -----------------------------------------------------------------


def open_app(store_url: str) -> Any:
    """Open the event store at ``store_url`` (the caller closes it)."""
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    return build_app(Settings(store=store_url))


def tracked_offsets(app: Any, topic: str) -> dict[int, int]:
    """The store's tracking positions of ``topic``, by partition."""
    prefix = f"kafka:{topic}:"
    return {
        int(name.rsplit(":", 1)[1]): offset
        for name, offset in app.store.select_trackings(prefix).items()
    }


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``predicate`` (every 50 ms) until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.05)


def wait_for_offsets(app: Any, topic: str, last: Mapping[int, int], timeout: float = 30.0) -> None:
    """Wait until the store tracks every partition at least up to ``last``."""

    def done() -> bool:
        tracked = tracked_offsets(app, topic)
        return all(tracked.get(p, -1) >= off for p, off in last.items())

    wait_until(done, timeout, f"tracking to reach {dict(last)}")


class RunningWorker:
    """A :class:`~consumers.worker.Worker` running on a thread, with its own store connection."""

    def __init__(
        self,
        store_url: str,
        topics: Topics,
        *,
        producer_factory: Callable[[Any], Any] | None = None,
        **config: Any,
    ) -> None:
        from consumers.worker import Worker, WorkerConfig, kafka_producer
        from practice_events.bootstrap import build_pipeline
        from practice_events.config import Settings

        settings = Settings(store=store_url)
        self.app = open_app(store_url)
        self.pipeline = build_pipeline(settings, self.app)
        options: dict[str, Any] = {"batch_size": 200, "max_wait_ms": 100, "backoff_max_s": 1.0}
        options.update(config)
        self.worker = Worker(
            self.pipeline,
            WorkerConfig(
                bootstrap=topics.bootstrap,
                topic=topics.topic,
                group=topics.group,
                dlq_topic=topics.dlq,
                **options,
            ),
            producer_factory=producer_factory or kafka_producer,
        )
        self.error: BaseException | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised by stop()
            self.error = exc

    def start(self) -> RunningWorker:
        """Start consuming."""
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop, join and close (once); re-raise whatever ended the worker abnormally."""
        if self.stopped:
            return
        self.stopped = True
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        self.app.close()
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def running_worker(store_url: str, topics: Topics, **config: Any) -> Iterator[RunningWorker]:
    """Run a worker for the duration of a ``with`` block."""
    running = RunningWorker(store_url, topics, **config).start()
    try:
        yield running
    finally:
        running.stop()
