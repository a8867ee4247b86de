"""Rows that the ingest pipeline writes beside the events, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class IngestKey:
    """An accepted CloudEvent's idempotency key and the fingerprint of its content."""

    source: str
    event_id: str
    digest: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused input, kept whole so that nothing is lost.

    ``rejection_id`` is deterministic for positioned inputs (a Kafka offset, a
    line of a file) so that a redelivery records the refusal once.
    """

    rejection_id: str
    received_at: str
    channel: str
    code: str
    reason: str
    payload: bytes
    source: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    subject: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    position: str | None = None

    def as_row(self) -> dict[str, Any]:
        """Return the row as a mapping of column name to value."""
        import orjson

        return {
            "rejection_id": self.rejection_id,
            "received_at": self.received_at,
            "channel": self.channel,
            "code": self.code,
            "reason": self.reason,
            "payload": self.payload,
            "source": self.source,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "subject": self.subject,
            "headers": orjson.dumps(self.headers).decode(),
            "position": self.position,
        }


REJECTION_COLUMNS = (
    "rejection_id",
    "received_at",
    "channel",
    "code",
    "reason",
    "payload",
    "source",
    "event_id",
    "event_type",
    "subject",
    "headers",
    "position",
)
