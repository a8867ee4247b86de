"""The Kafka ingestion worker: records in, events out, each exactly once.

One worker is one member of a consumer group. It gathers up to
``batch_size`` records (or what arrived within ``max_wait_ms``), runs them
through the shared ingest pipeline and stores the new events together with
one tracking row per partition, ``kafka:<topic>:<partition>`` = the last
offset of that partition in the batch, in ONE transaction. That row, not
Kafka's committed offset, says where a partition resumes: on start and on
every rebalance each assigned partition is positioned at tracked + 1 (or at
its beginning when nothing was tracked). A crash before the commit loses
nothing (the records are read again); a crash after it repeats nothing (the
partition resumes after them). Offsets are committed to Kafka as well, after
each batch, but only so that the usual tools can show the group's progress.

Refused records (malformed bytes, unknown types, schema violations, illegal
transitions, unknown aggregates ...) never stop the worker: the pipeline
stores them in the rejections table, in the batch's transaction, and the
worker publishes them to the dead-letter topic just before that transaction
commits, waiting for the broker's acknowledgement (see :mod:`consumers.dlq`).

References across partitions: a record may name an aggregate (a site, a
volunteer ...) whose creation is in another partition, not stored yet. So
that this is rare, a batch takes its partitions' records in event-time order
(:func:`merge_by_time`) and ends where one partition runs ahead of another
(:meth:`Worker._balance`); a batch whose references fail is tried once more
with the failing partitions' records last (:func:`tails_last`). When a
reference is still missing, the worker holds that partition back at the
refused record (it re-reads it later, alone first; the partition's later
records wait behind it, so each aggregate keeps its order) while the other
partitions go on, for at most ``reference_wait_ms``; only then is the record
dead-lettered as ``UNKNOWN_REFERENCE``. A topic of one partition never holds
(its order is the producer's). Nothing of a held partition past the record is
committed meanwhile, so exactly-once is untouched.

Transient faults (store down or restarting, lock timeouts, broker away) are
retried with capped exponential back-off and jitter; the batch in hand is
dropped and every partition is positioned again from the store, so nothing is
skipped or repeated. Meanwhile :attr:`Worker.ready` is False. A bug (any
other exception) is not retried forever: it is logged and ends the run.

Run it with ``practice-events ingest`` (see :mod:`consumers.cli`) or
``python -m consumers.worker`` with the same options.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError, Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.dlq import DeadLetter, DeadLetterError, DeadLetterPublisher
from practice_events.errors import TransientError
from practice_events.ingest.collector import relaxed_gc
from practice_events.ingest.pipeline import BACKDATED, Outcome, RawInput

if TYPE_CHECKING:
    from practice_events.config import Settings
    from practice_events.ingest.processor import BatchProcessor

log = structlog.get_logger(__name__)

TRACKING_PREFIX = "kafka:"
"""Tracking rows of Kafka partitions are named ``kafka:<topic>:<partition>``."""

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    TransientError,
    OperationalError,
    InterfaceError,
    KafkaError,
)
"""Faults that may go away by themselves; the worker retries after them.

``OperationalError``/``InterfaceError`` come from store reads outside the
pipeline's commit (it maps its own commit failures to ``TransientError``);
``KafkaError`` covers an unreachable broker while connecting.
"""


def tracking_name(topic: str, partition: int) -> str:
    """Return the tracking name of a partition: ``kafka:<topic>:<partition>``."""
    return f"{TRACKING_PREFIX}{topic}:{partition}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker connects, batches and backs off."""

    bootstrap: str
    topic: str
    group: str
    dlq_topic: str
    batch_size: int = 1000
    max_wait_ms: int = 250
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    connect_timeout_ms: int = 5000
    client_id: str = "practice-events-ingest"
    idle_probe_s: float = 5.0
    stall_s: float = 5.0
    progress_log_s: float = 10.0
    reference_wait_ms: int = 10_000
    """How long a partition may wait for a reference created in another partition (0: never)."""
    max_partition_fetch_bytes: int = 64 * 1024
    """Small, so that a batch holds records of every owned partition over about the same
    stretch of time, not a long run of one partition (see :func:`merge_by_time`)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WorkerConfig:
        """Build the worker's configuration from the process settings."""
        if not settings.kafka_bootstrap:
            from practice_events.errors import ConfigurationError

            msg = "no Kafka bootstrap servers: pass --kafka or set PRACTICE_EVENTS_KAFKA_BOOTSTRAP"
            raise ConfigurationError(msg)
        values: dict[str, Any] = {
            "bootstrap": settings.kafka_bootstrap,
            "topic": settings.kafka_topic,
            "group": settings.kafka_group,
            "dlq_topic": settings.dlq_topic,
            "batch_size": settings.batch_size,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class Backoff:
    """Capped exponential back-off with jitter: 0.2 s, 0.4 s, 0.8 s ... up to the cap.

    Each delay is drawn uniformly from the upper half of the current step
    ("equal jitter"), so that workers that failed together do not retry
    together, yet none retries much sooner than planned.
    """

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        """Return the next delay in seconds and count the attempt."""
        step = min(self.cap, self.initial * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return self._rng.uniform(step / 2, step)

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self.attempts = 0


@dataclass
class WorkerStats:
    """Counters of one worker run (also served on ``/readyz`` and logged periodically)."""

    accepted: int = 0
    duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    backdated: int = 0
    """Accepted events flagged BACKDATED (their time long before their receipt)."""
    dead_lettered: int = 0
    records: int = 0
    batches: int = 0
    events_stored: int = 0
    transient_faults: int = 0
    rebalances: int = 0
    reference_holds: int = 0
    """Times a partition was held back for a reference not stored yet (see the module doc)."""
    lag: dict[int, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        """All rejected records, whatever the code."""
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data."""
        return {
            "records": self.records,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "backdated": self.backdated,
            "rejected": self.rejected_total,
            "rejected_by_code": dict(sorted(self.rejected.items())),
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
            "events_stored": self.events_stored,
            "transient_faults": self.transient_faults,
            "reference_holds": self.reference_holds,
            "rebalances": self.rebalances,
            "lag": sum(self.lag.values()),
            "lag_by_partition": {str(p): lag for p, lag in sorted(self.lag.items())},
        }


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Forwards kafka-python's rebalance callbacks to the worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Forget the revoked partitions and drop their records in hand."""
        self.worker._on_revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Position the newly assigned partitions from the store."""
        self.worker._on_assigned(assigned)


ConsumerFactory = Callable[[WorkerConfig], Any]
ProducerFactory = Callable[[WorkerConfig], Any]


def kafka_consumer(config: WorkerConfig) -> KafkaConsumer:
    """Build the group consumer (auto-commit off: the store is the source of truth).

    ``session_timeout_ms``/``heartbeat_interval_ms`` are short so that group
    joins are fast (Tansu takes ~23 s with the defaults, ~3 s with these).
    """
    return KafkaConsumer(
        bootstrap_servers=config.bootstrap.split(","),
        group_id=config.group,
        client_id=config.client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        max_poll_records=config.batch_size,
        max_partition_fetch_bytes=config.max_partition_fetch_bytes,
        bootstrap_timeout_ms=config.connect_timeout_ms,
        allow_auto_create_topics=False,  # a typo in --topic must not create a topic
    )


def kafka_producer(config: WorkerConfig) -> KafkaProducer:
    """Build the dead-letter producer (acks from all replicas, idempotent retries)."""
    return KafkaProducer(
        bootstrap_servers=config.bootstrap.split(","),
        client_id=f"{config.client_id}-dlq",
        acks="all",
        linger_ms=5,
        bootstrap_timeout_ms=config.connect_timeout_ms,
        max_block_ms=config.connect_timeout_ms,
    )


def decode_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> list[tuple[str, str]]:
    """Return Kafka headers as (name, text) pairs, in order, repeats included.

    CloudEvents binary-mode attributes are UTF-8. Bytes that are not are kept
    as lone surrogates (``surrogateescape``) rather than replaced, so that the
    envelope refuses such an attribute (``INVALID_ATTRIBUTE``, "not valid
    UTF-8") instead of storing an id or subject the producer never sent.
    Pairs, not a mapping: Kafka lets a record repeat a header, and two
    ``ce_id`` headers must be refused (``DUPLICATE_ATTRIBUTE``), not decided
    silently.
    """
    if not headers:
        return []
    return [
        (name, value.decode("utf-8", "surrogateescape") if value is not None else "")
        for name, value in headers
    ]


def merge_by_time(records: Sequence[Any], key: Callable[[Any], float] | None = None) -> list[Any]:
    """Interleave the partitions' records by the time they tell, each partition in order.

    An event cannot refer to an aggregate created after it happened, and
    producers send a creation before the events that refer to it, possibly
    into another partition. Taking a batch's records in time order (a k-way
    merge: within a partition the offset order always holds, whatever the
    times) lets such references meet their creation in the same batch instead
    of holding a partition back for it. The time is the CloudEvents ``time``
    of a binary-mode record (Kafka timestamps have a millisecond grain, and a
    burst puts hundreds of related records in one millisecond), else the
    record's Kafka timestamp (``key`` may supply them, computed once).
    """
    by_partition: dict[tuple[str, int], list[Any]] = {}
    for record in records:
        by_partition.setdefault((record.topic, record.partition), []).append(record)
    if len(by_partition) <= 1:
        return list(records)
    return list(heapq.merge(*by_partition.values(), key=key or _told_time))


def tails_last(records: Sequence[Any], offsets: Mapping[TopicPartition, int]) -> list[Any]:
    """Move each listed partition's records from its offset on to the end, in their order."""
    head: list[Any] = []
    tail: list[Any] = []
    for record in records:
        start = offsets.get(TopicPartition(record.topic, record.partition))
        (tail if start is not None and record.offset >= start else head).append(record)
    return head + tail


def _one_partition(records: Sequence[Any]) -> bool:
    """True if every record (none at all included) comes from the same partition."""
    if not records:
        return True
    topic, partition = records[0].topic, records[0].partition
    return all(r.partition == partition and r.topic == topic for r in records)


def _told_time(record: Any) -> float:
    """The record's CloudEvents ``time`` header as epoch seconds, else its Kafka timestamp."""
    for name, value in record.headers or ():
        if name == "ce_time" and value:
            try:
                return datetime.fromisoformat(value.decode()).timestamp()
            except (UnicodeDecodeError, ValueError):
                break  # the pipeline refuses it; here it only needs a place
    return float(record.timestamp or 0) / 1000


class _HoldBack(Exception):  # noqa: N818 - a control signal inside the worker, not an error
    """Raised before a batch commits: these partitions wait at these offsets for references."""

    def __init__(self, offsets: dict[TopicPartition, int]) -> None:
        super().__init__(offsets)
        self.offsets = offsets


class Worker:
    """A consumer-group member feeding one topic into the ingest pipeline, exactly once.

    Thread model: :meth:`run` owns the consumer. kafka-python calls the
    rebalance listener from its I/O thread while :meth:`run` waits in
    ``poll``; a lock keeps the listener and the batch apart, so a partition is
    never revoked in the middle of a batch. :meth:`stop` may be called from
    any thread or a signal handler.
    """

    def __init__(
        self,
        pipeline: BatchProcessor,
        config: WorkerConfig,
        *,
        consumer_factory: ConsumerFactory = kafka_consumer,
        producer_factory: ProducerFactory = kafka_producer,
        rng: random.Random | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.stats = WorkerStats()
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s, rng)
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._consumer: Any = None
        self._dlq: DeadLetterPublisher | None = None
        self._next: dict[TopicPartition, int] = {}  # next offset to take, per positioned partition
        self._unpositioned: set[TopicPartition] = set()
        self._pending: list[Any] = []  # records of the batch being gathered
        # Partitions held back at a record whose reference is not stored yet:
        # (offset, first refused at, retries), and until when each is paused.
        self._waiting: dict[TopicPartition, tuple[int, float, int]] = {}
        self._held_until: dict[TopicPartition, float] = {}
        self._partition_count = 1
        self._store_ok = False
        self._broker_ok = False
        self._running = False
        self._busy_since: float | None = None  # when the batch in hand started committing
        self._last_activity = time.monotonic()
        self._last_progress_log = time.monotonic()
        self._log = log.bind(topic=config.topic, group=config.group)

    # -- state ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while connected, positioned from the store and free of transient faults.

        A batch stuck for longer than ``stall_s`` (the store's pool waiting for
        a database that is restarting, say) also makes the worker not ready,
        although no error has surfaced yet.
        """
        busy_since = self._busy_since
        stalled = busy_since is not None and time.monotonic() - busy_since > self.config.stall_s
        return (
            self._running
            and not self._stop.is_set()
            and self._consumer is not None
            and self._store_ok
            and self._broker_ok
            and not self._unpositioned
            and not stalled
        )

    @property
    def positions(self) -> dict[int, int]:
        """The next offset the worker will take, per partition it owns (for tests and probes)."""
        with self._lock:
            return {tp.partition: offset for tp, offset in self._next.items()}

    def stop(self) -> None:
        """Ask the worker to stop after the batch in hand (safe from signal handlers)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; leave the group and close the clients on the way out.

        Transient faults are retried; any other exception is a bug: it is
        logged and re-raised (after the clients are closed).
        """
        self._running = True
        self._log.info(
            "worker_starting", bootstrap=self.config.bootstrap, dlq=self.config.dlq_topic
        )
        try:
            with relaxed_gc():  # the collector cost ~20 % of the CPU per record
                while not self._stop.is_set():
                    try:
                        self._step()
                    except TRANSIENT_ERRORS as exc:
                        self._fault(exc)
        except Exception:
            self._log.exception("worker_failed")
            raise
        finally:
            self._running = False
            self._close()
            self._log.info("worker_stopped", **self.stats.as_dict())

    def _step(self) -> None:
        if self._consumer is None:
            self._connect()
        if self._unpositioned:
            self._position(set(self._unpositioned))
        self._resume_held()
        records = self._gather()
        if self._stop.is_set():
            # Abandon the batch in hand: nothing of it is committed, so the next
            # owner of these partitions reads it again.
            if records:
                self._log.info("worker_batch_abandoned", records=len(records))
            return
        if records:
            self._process(records)
            self._last_activity = time.monotonic()
        elif time.monotonic() - self._last_activity > self.config.idle_probe_s:
            self._probe()
            self._last_activity = time.monotonic()
        self._maybe_log_progress()

    def _connect(self) -> None:
        self._log.info("worker_connecting")
        consumer = self._consumer_factory(self.config)
        try:
            producer = self._producer_factory(self.config)
        except BaseException:
            consumer.close(autocommit=False)
            raise
        self._dlq = DeadLetterPublisher(producer, self.config.dlq_topic)
        self._consumer = consumer
        consumer.subscribe([self.config.topic], listener=_Listener(self))
        self._broker_ok = True
        self._log.info("worker_connected")

    def _gather(self) -> list[Any]:
        """Poll until a batch is full or ``max_wait_ms`` passed; keep only unprocessed records.

        With several partitions it also waits (within ``max_wait_ms``, up to
        twice the batch) for each owned partition that may have records but
        gave none yet, then cuts the batch to the stretch of time every
        partition in it reached (:meth:`_balance`).
        """
        consumer = self._consumer
        size = self.config.batch_size
        deadline = time.monotonic() + self.config.max_wait_ms / 1000
        present: set[TopicPartition] = set()
        with self._lock:
            self._pending = []
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with self._lock:
                have = len(self._pending)
                if have >= size and (have >= 2 * size or not self._silent(present)):
                    break
                wanted = size - have if have < size else 2 * size - have
            # No lock here: the rebalance listener runs while poll waits.
            polled = consumer.poll(timeout_ms=max(1, int(remaining * 1000)), max_records=wanted)
            with self._lock:
                for tp, records in polled.items():
                    expected = self._next.get(tp)
                    if expected is None:
                        continue  # not (yet) positioned from the store: it will be read again
                    for record in records:
                        if record.offset < expected:
                            continue  # already stored: a redelivery
                        self._pending.append(record)
                        present.add(tp)
                        expected = record.offset + 1
                    self._next[tp] = expected
        with self._lock:
            # A plain (topic, partition) tuple equals its TopicPartition, and is cheaper.
            self._pending = [r for r in self._pending if (r.topic, r.partition) in self._next]
            return self._balance(self._pending)

    def _silent(self, present: set[TopicPartition]) -> bool:
        """True if an owned, unpaused partition gave no record yet and may have some."""
        consumer = self._consumer
        paused = set(consumer.paused())
        for tp, next_offset in self._next.items():
            if tp in present or tp in paused:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None or int(highwater) > next_offset:
                return True
        return False

    def _balance(self, records: list[Any]) -> list[Any]:
        """Merge the partitions' records by time; cut what runs ahead of another partition.

        A record past the time that some partition of the batch has reached
        might refer to a creation that partition has not delivered yet, so the
        batch ends there (and at ``batch_size``): the cut records' partitions
        are rewound to them and read again next time.
        """
        size = self.config.batch_size
        if len(records) <= size and _one_partition(records):
            return list(records)  # nothing to merge or cut: skip reading the times
        times = {id(r): _told_time(r) for r in records}
        merged = merge_by_time(records, key=lambda r: times[id(r)])
        reached: dict[TopicPartition, float] = {}
        for record in merged:
            reached[TopicPartition(record.topic, record.partition)] = times[id(record)]
        if len(reached) <= 1 and len(merged) <= size:
            return merged
        bound = min(reached.values())
        taken = 0
        for record in merged:
            if taken >= size or times[id(record)] > bound:
                break
            taken += 1
        if taken == 0:
            taken = min(size, len(merged))
        rewind: dict[TopicPartition, int] = {}
        for record in merged[taken:]:
            rewind.setdefault(TopicPartition(record.topic, record.partition), record.offset)
        for tp, offset in rewind.items():
            self._consumer.seek(tp, offset)
            self._next[tp] = offset
        return merged[:taken]

    def _process(self, records: list[Any]) -> None:
        """Run one batch through the pipeline and commit it with its tracking rows."""
        with self._lock:
            # The listener may have revoked partitions since _gather returned.
            owned = set(self._next)
            records = [r for r in records if (r.topic, r.partition) in owned]
            moved: set[TopicPartition] = set()
            while records:
                # Records that waited for a reference (each the first of its partition
                # here) go first, alone: if it is still missing, only they are
                # processed in vain, not the whole batch.
                waiting = self._retries(records)
                attempt = waiting if waiting and len(waiting) < len(records) else records
                try:
                    self._commit_batch(attempt)
                except _HoldBack as hold:
                    # Nothing was committed (and the write path dropped the aggregates the
                    # aborted batch changed). The creation may be later in this very batch
                    # (records of equal time, from another partition): first try once more
                    # with the held partitions' tails last; then run the batch without them.
                    fresh = set(hold.offsets) - moved
                    if attempt is records and fresh:
                        moved |= fresh
                        records = tails_last(records, hold.offsets)
                        continue
                    records = self._hold(records, hold.offsets)
                else:
                    self._forget_waiting(attempt)
                    if attempt is records:
                        return
                    done = {id(r) for r in attempt}
                    records = [r for r in records if id(r) not in done]

    def _commit_batch(self, records: list[Any]) -> None:
        started = time.perf_counter()
        inputs = [
            RawInput(
                payload=r.value,
                headers=decode_headers(r.headers),
                channel="kafka",
                position=f"{r.topic}:{r.partition}:{r.offset}",
            )
            for r in records
        ]
        last_of: dict[tuple[str, int], int] = {}
        first_of: dict[tuple[str, int], int] = {}
        for r in records:
            key = (r.topic, r.partition)
            first_of.setdefault(key, r.offset)
            last_of[key] = r.offset
        last = {TopicPartition(*key): off for key, off in last_of.items()}
        first = {TopicPartition(*key): off for key, off in first_of.items()}
        trackings = [
            Tracking(tracking_name(tp.topic, tp.partition), off) for tp, off in last.items()
        ]
        published: list[int] = []
        by_input = {id(raw): record for raw, record in zip(inputs, records, strict=True)}

        def before_commit(outcomes: list[Outcome]) -> None:
            if not published:  # nothing of this batch is committed yet (first shard)
                self._check_references(outcomes, by_input)
            # Called once per store written (once per shard when sharded), with the
            # outcomes of the records going there, so letters are matched by input.
            now = datetime.now(UTC)
            letters = [
                DeadLetter.of(
                    by_input[id(o.input)], code=o.code or "UNKNOWN", reason=o.reason or "", at=now
                )
                for o in outcomes
                if o.status == "rejected"
            ]
            assert self._dlq is not None
            self._dlq.publish(letters)
            published.append(len(letters))

        self._busy_since = time.monotonic()
        try:
            result = self.pipeline.process(inputs, trackings=trackings, before_commit=before_commit)
        finally:
            self._busy_since = None
        self._store_ok = True
        self._backoff.reset()

        stats = self.stats
        accepted = duplicate = 0
        for outcome in result.outcomes:
            if outcome.status == "accepted":
                accepted += 1
                if BACKDATED in outcome.flags:
                    stats.backdated += 1
            elif outcome.status == "duplicate":
                duplicate += 1
            else:
                stats.rejected[outcome.code or "UNKNOWN"] += 1
        stats.accepted += accepted
        stats.duplicate += duplicate
        stats.dead_lettered += sum(published)
        stats.records += len(records)
        stats.batches += 1
        stats.events_stored += result.events_stored

        offsets = {tp: OffsetAndMetadata(off + 1, "", -1) for tp, off in last.items()}
        self._consumer.commit_async(offsets=offsets, callback=self._on_kafka_commit)
        for tp, off in last.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                stats.lag[tp.partition] = max(0, int(highwater) - (off + 1))
        self._log.debug(
            "ingest_batch_committed",
            records=len(records),
            accepted=accepted,
            duplicate=duplicate,
            rejected=len(records) - accepted - duplicate,
            events=result.events_stored,
            partitions={tp.partition: [first[tp], off] for tp, off in last.items()},
            seconds=round(time.perf_counter() - started, 4),
        )

    # -- references across partitions -----------------------------------------------------

    def _check_references(
        self, outcomes: Sequence[Outcome], records_by_input: Mapping[int, Any]
    ) -> None:
        """Raise :class:`_HoldBack` if a refused reference may still arrive in another partition.

        Per partition, the first record refused with ``UNKNOWN_REFERENCE``
        holds it back, unless the topic has one partition (its order is the
        producer's: waiting cannot help) or that record has already waited
        ``reference_wait_ms`` (it is then dead-lettered like any refusal).
        """
        wait = self.config.reference_wait_ms / 1000
        if wait <= 0 or self._partition_count <= 1:
            return
        now = time.monotonic()
        hold: dict[TopicPartition, int] = {}
        for outcome in outcomes:
            if outcome.status != "rejected" or outcome.code != "UNKNOWN_REFERENCE":
                continue
            record = records_by_input[id(outcome.input)]
            tp = TopicPartition(record.topic, record.partition)
            if tp in hold and hold[tp] <= record.offset:
                continue
            offset, since, retries = self._waiting.get(tp, (record.offset, now, 0))
            if offset != record.offset:
                since, retries = now, 0
            if now - since >= wait:
                continue  # waited long enough: the reference does not exist
            hold[tp] = record.offset
            self._waiting[tp] = (record.offset, since, retries)
        if hold:
            raise _HoldBack(hold)

    def _hold(self, records: list[Any], offsets: Mapping[TopicPartition, int]) -> list[Any]:
        """Rewind and pause each held partition at its record; return the records to commit."""
        now = time.monotonic()
        wait = self.config.reference_wait_ms / 1000
        for tp, offset in offsets.items():
            _, since, retries = self._waiting[tp]
            self._waiting[tp] = (offset, since, retries + 1)
            delay = min(1.0, 0.05 * 2**retries, max(0.0, since + wait - now))
            self._consumer.seek(tp, offset)
            self._next[tp] = offset
            self._consumer.pause(tp)
            self._held_until[tp] = now + delay
            self.stats.reference_holds += 1
            self._log.info(
                "partition_held_for_reference",
                partition=tp.partition,
                offset=offset,
                waited_s=round(now - since, 3),
                retry_in_s=round(delay, 3),
            )
        return [
            r
            for r in records
            if r.offset < offsets.get(TopicPartition(r.topic, r.partition), r.offset + 1)
        ]

    def _retries(self, records: Sequence[Any]) -> list[Any]:
        """The records that wait for a reference and come first in their partition here."""
        if not self._waiting:
            return []
        first: dict[TopicPartition, Any] = {}
        for record in records:
            first.setdefault(TopicPartition(record.topic, record.partition), record)
        return [
            record
            for tp, record in first.items()
            if tp in self._waiting and self._waiting[tp][0] == record.offset
        ]

    def _resume_held(self) -> None:
        """Resume the held partitions whose pause is over (they re-read the held record)."""
        if not self._held_until:
            return
        now = time.monotonic()
        with self._lock:
            due = [tp for tp, until in self._held_until.items() if until <= now]
            for tp in due:
                del self._held_until[tp]
            assigned = set(self._consumer.assignment())
            resume = [tp for tp in due if tp in assigned]
        if resume:
            self._consumer.resume(*resume)

    def _forget_waiting(self, committed: Sequence[Any]) -> None:
        """Drop the wait of partitions whose held record is now committed (stored or refused)."""
        if not self._waiting:
            return
        for record in committed:
            tp = TopicPartition(record.topic, record.partition)
            waiting = self._waiting.get(tp)
            if waiting is not None and record.offset >= waiting[0]:
                del self._waiting[tp]

    # -- positioning --------------------------------------------------------------------

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.stats.rebalances += 1
        partitions = self._consumer.partitions_for_topic(self.config.topic)
        self._partition_count = len(partitions) if partitions else 1
        self._log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))
        if not assigned:
            return
        try:
            self._position(set(assigned))
        except TRANSIENT_ERRORS as exc:
            # The store is away: keep these partitions paused (nothing is taken from
            # them) until the main loop positions them from the store.
            with self._lock:
                self._unpositioned |= set(assigned)
                self._store_ok = False
            self._consumer.pause(*assigned)
            self._log.warning("partitions_not_positioned", error=str(exc))

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))
        with self._lock:
            for tp in revoked:
                self._next.pop(tp, None)
                self._unpositioned.discard(tp)
                self._held_until.pop(tp, None)
                self._waiting.pop(tp, None)
            gone = set(revoked)
            self._pending = [
                r for r in self._pending if TopicPartition(r.topic, r.partition) not in gone
            ]

    def _position(self, partitions: set[TopicPartition]) -> None:
        """Seek each partition to its tracked offset + 1 (its beginning if never tracked).

        Raises a transient error if the store cannot be read; the partitions
        then stay unpositioned (and take no records).
        """
        tracked = self.pipeline.select_trackings(f"{TRACKING_PREFIX}{self.config.topic}:")
        consumer = self._consumer
        with self._lock:
            current = set(consumer.assignment())
            placed: dict[int, int | None] = {}
            for tp in partitions:
                if tp not in current:
                    self._unpositioned.discard(tp)
                    continue
                offset = tracked.get(tracking_name(tp.topic, tp.partition))
                if offset is None:
                    consumer.seek_to_beginning(tp)
                    self._next[tp] = 0
                else:
                    consumer.seek(tp, offset + 1)
                    self._next[tp] = offset + 1
                placed[tp.partition] = offset
                self._unpositioned.discard(tp)
                self._held_until.pop(tp, None)  # resumed below, from the store's position
            self._pending = [
                r for r in self._pending if TopicPartition(r.topic, r.partition) not in partitions
            ]
            self._store_ok = True
        resume = [tp for tp in partitions if tp in current and tp in consumer.paused()]
        if resume:
            consumer.resume(*resume)
        self._log.info("partitions_positioned_from_store", tracked=placed)

    # -- faults and probes --------------------------------------------------------------

    def _fault(self, exc: Exception) -> None:
        """Drop the batch in hand, reposition from the store later, back off."""
        self.stats.transient_faults += 1
        self.pipeline.invalidate()  # a failed batch may have left applied commands in the cache
        broker_fault = isinstance(exc, KafkaError | DeadLetterError)
        with self._lock:
            self._pending = []
            if broker_fault:
                self._broker_ok = False
            else:
                self._store_ok = False
            if self._consumer is not None:
                assigned = set(self._consumer.assignment())
                self._unpositioned |= assigned
                for tp in assigned:
                    self._next.pop(tp, None)
        delay = self._backoff.next_delay()
        self._log.warning(
            "worker_transient_fault",
            error=str(exc),
            kind="broker" if broker_fault else "store",
            retry_in_s=round(delay, 3),
            attempt=self._backoff.attempts,
        )
        self._stop.wait(delay)

    def _probe(self) -> None:
        """While idle, check both ends: the store answers, the broker takes a commit.

        Readiness then also drops while no records arrive: an idle worker whose
        store went away is not ready for the next record.
        """
        try:
            self.pipeline.select_trackings(f"{TRACKING_PREFIX}{self.config.topic}:")
        except TRANSIENT_ERRORS as exc:
            if self._store_ok:
                self._log.warning("store_unreachable", error=str(exc))
            self._store_ok = False
        else:
            self._store_ok = True
        with self._lock:
            offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in self._next.items() if off}
        if offsets:
            self._consumer.commit_async(offsets=offsets, callback=self._on_kafka_commit)

    def _on_kafka_commit(self, offsets: Mapping[TopicPartition, Any], response: Any) -> None:
        if isinstance(response, Exception):
            if getattr(response, "retriable", False):
                self._broker_ok = False
            self._log.warning("kafka_commit_failed", error=repr(response))
        else:
            self._broker_ok = True

    def _maybe_log_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress_log >= self.config.progress_log_s:
            self._last_progress_log = now
            self._log.info("worker_progress", ready=self.ready, **self.stats.as_dict())

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        dlq, self._dlq = self._dlq, None
        if consumer is not None:
            try:
                consumer.close(autocommit=False)  # sends LeaveGroup: partitions move at once
            except Exception as exc:  # noqa: BLE001 - closing must not mask why the worker stopped
                self._log.warning("consumer_close_failed", error=repr(exc))
        if dlq is not None:
            try:
                dlq.close()
            except Exception as exc:  # noqa: BLE001 - closing must not mask why the worker stopped
                self._log.warning("dlq_close_failed", error=repr(exc))


# -- health endpoints ---------------------------------------------------------------------


class HealthServer:
    """``/healthz`` (alive, no I/O) and ``/readyz`` (200 ready / 503 not, with counters).

    Served by the standard library on a daemon thread, so that an orchestrator
    can tell a live worker from a ready one without any extra dependency.
    """

    def __init__(self, worker: Worker, port: int, host: str = "127.0.0.1") -> None:
        self.worker = worker
        server_worker = worker

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._answer(200, {"status": "alive"})
                elif self.path == "/readyz":
                    ready = server_worker.ready
                    body = {"ready": ready, **server_worker.stats.as_dict()}
                    self._answer(200 if ready else 503, body)
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, status: int, body: Mapping[str, Any]) -> None:
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 was asked for)."""
        return int(self.server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker as ``python -m consumers.worker``; options as ``practice-events ingest``."""
    import argparse
    import sys

    from consumers.cli import add_arguments, run_ingest
    from practice_events.cli import EXIT_UNAVAILABLE, EXIT_USAGE
    from practice_events.errors import ConfigurationError

    parser = argparse.ArgumentParser(
        prog="python -m consumers.worker", description="Kafka ingestion worker."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_ingest(args)
    except ConfigurationError as exc:
        print(f"practice-events ingest: {exc.reason}", file=sys.stderr)
        return EXIT_USAGE
    except TransientError as exc:
        print(f"practice-events ingest: unavailable: {exc.reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
