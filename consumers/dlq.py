"""Dead letters: every refused Kafka record goes to a dead-letter topic, whole.

A dead letter is the original record (key, value and headers, byte for byte,
except the personal fields of a ``personal_details_recorded`` event, which
are redacted: see ``docs/privacy.md``) plus headers saying why it was
refused and where it came from:

==========================  =================================================
``dlq_code``                stable error code (``SCHEMA_VIOLATION`` ...)
``dlq_reason``              the reason a producer can act on (UTF-8)
``dlq_source_topic``        topic of the original record
``dlq_source_partition``    its partition (decimal)
``dlq_source_offset``       its offset (decimal)
``dlq_time``                when it was refused (RFC 3339, UTC)
==========================  =================================================

The worker publishes dead letters *before* the batch that refused them
commits (and waits for the broker's acknowledgement), so a crash can only
duplicate a dead letter, never lose one. Readers that need each refusal once
deduplicate by (``dlq_source_topic``, ``dlq_source_partition``,
``dlq_source_offset``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from practice_events.errors import TransientError

log = structlog.get_logger(__name__)

DLQ_PREFIX = "dlq_"
"""Headers the worker adds start with this; older ones are replaced, not repeated."""

MAX_REASON_BYTES = 2048
"""Reasons longer than this are cut (Kafka headers are not meant for essays)."""

Header = tuple[str, bytes]


class Record(Protocol):
    """What a dead letter needs of a consumed record (kafka-python's ConsumerRecord)."""

    @property
    def topic(self) -> str:
        """The record's topic."""

    @property
    def partition(self) -> int:
        """The record's partition."""

    @property
    def offset(self) -> int:
        """The record's offset in its partition."""

    @property
    def key(self) -> bytes | None:
        """The record's key as sent."""

    @property
    def value(self) -> bytes | None:
        """The record's value as sent."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]:
        """The record's headers as sent."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused record, ready to publish: the original plus the why and where."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]
    code: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int

    @classmethod
    def of(cls, record: Record, *, code: str, reason: str, at: datetime) -> DeadLetter:
        """Build the dead letter of ``record`` refused at ``at`` with ``code`` and ``reason``."""
        from practice_events.privacy.redact import redact_input

        return cls(
            key=record.key,
            value=redact_input(record.value, record.headers),
            headers=dead_letter_headers(
                record.headers,
                code=code,
                reason=reason,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                at=at,
            ),
            code=code,
            reason=reason,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
        )


def dead_letter_headers(
    original: Iterable[tuple[str, bytes | None]],
    *,
    code: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    at: datetime,
) -> list[Header]:
    """Return the original headers followed by the ``dlq_*`` headers.

    ``dlq_*`` headers already on the record (a dead letter replayed into the
    topic and refused again) are dropped so each name appears once, with the
    latest refusal.
    """
    headers: list[Header] = [
        (name, value if value is not None else b"")
        for name, value in original
        if not name.startswith(DLQ_PREFIX)
    ]
    when = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    headers += [
        ("dlq_code", code.encode()),
        ("dlq_reason", reason.encode()[:MAX_REASON_BYTES]),
        ("dlq_source_topic", topic.encode()),
        ("dlq_source_partition", str(partition).encode()),
        ("dlq_source_offset", str(offset).encode()),
        ("dlq_time", when.encode()),
    ]
    return headers


def read_dead_letter(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, Any]:
    """Decode the ``dlq_*`` headers of a dead letter (for tools and tests).

    Returns ``code``, ``reason``, ``source_topic``, ``source_partition``
    (int), ``source_offset`` (int) and ``time`` (str); missing ones are absent.
    """
    found = {
        name.removeprefix(DLQ_PREFIX): (value or b"").decode("utf-8", "replace")
        for name, value in headers
        if name.startswith(DLQ_PREFIX)
    }
    out: dict[str, Any] = dict(found)
    for name in ("source_partition", "source_offset"):
        if name in out:
            out[name] = int(out[name])
    return out


class DeadLetterError(TransientError):
    """Dead letters could not be delivered (broker away, topic unavailable); retry the batch."""

    code = "DLQ_UNAVAILABLE"


class Producer(Protocol):
    """What the publisher needs of kafka-python's KafkaProducer."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[Header] | None = None,
    ) -> Any:
        """Queue one record; return a future of its metadata."""

    def flush(self, timeout: float | None = None) -> None:
        """Wait until queued records are sent."""

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued and release the connections."""


class DeadLetterPublisher:
    """Publishes dead letters to one topic and waits until the broker has them all."""

    def __init__(self, producer: Producer, topic: str, *, timeout: float = 30.0) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout = timeout

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Send ``letters`` and return once every one is acknowledged.

        Raises :class:`DeadLetterError` (a transient error) if any could not be delivered (broker
        away, topic unavailable): the caller then must not commit the batch
        that refused them, so that they are refused, and published, again.
        """
        if not letters:
            return
        try:
            futures = [
                self.producer.send(
                    self.topic, value=letter.value, key=letter.key, headers=letter.headers
                )
                for letter in letters
            ]
            self.producer.flush(timeout=self.timeout)
            for future in futures:
                future.get(timeout=self.timeout)
        except Exception as exc:  # kafka-python raises many error types; all mean "not delivered"
            msg = f"could not publish {len(letters)} dead letters to {self.topic}: {exc!r}"
            raise DeadLetterError(msg) from exc
        for letter in letters:
            log.warning(
                "message_dead_lettered",
                topic=letter.source_topic,
                partition=letter.source_partition,
                offset=letter.source_offset,
                code=letter.code,
                reason=letter.reason,
                dlq_topic=self.topic,
            )

    def close(self, timeout: float | None = 10.0) -> None:
        """Close the producer (queued letters are sent first)."""
        self.producer.close(timeout=timeout)


def letters_by_position(
    letters: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, int, int], Mapping[str, Any]]:
    """Index decoded dead letters by their source (topic, partition, offset), dropping repeats.

    A crash between publishing and committing can repeat a dead letter; this
    is how a reader counts each refusal once.
    """
    out: dict[tuple[str, int, int], Mapping[str, Any]] = {}
    for letter in letters:
        key = (letter["source_topic"], letter["source_partition"], letter["source_offset"])
        out.setdefault(key, letter)
    return out
