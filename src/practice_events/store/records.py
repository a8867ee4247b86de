"""Rows that the ingest pipeline writes beside the events, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventsourcing.persistence import Cipher, Compressor


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


SEALED_PAYLOAD = b"\x00pe-sealed\x01"
"""Prefix of a refused payload stored encrypted and/or compressed (JSON never starts so)."""


@dataclass(frozen=True, slots=True)
class PayloadCodec:
    """Protects refused payloads at rest as the mapper protects event state.

    A rejection keeps the input whole, so with a cipher key configured its
    payload is compressed (if on) and encrypted like the events; rows written
    without a cipher (or before one was configured) are read back as they are.
    """

    cipher: Cipher | None = None
    compressor: Compressor | None = None

    def seal(self, payload: bytes | None) -> bytes | None:
        """Return the stored form of a payload."""
        if payload is None or (self.cipher is None and self.compressor is None):
            return payload
        data = payload
        if self.compressor is not None:
            data = self.compressor.compress(data)
        if self.cipher is not None:
            data = self.cipher.encrypt(data)
        return SEALED_PAYLOAD + data

    def open(self, stored: Any) -> Any:
        """Return a payload as it was refused (a stored value read back)."""
        if stored is None:
            return None
        data = bytes(stored) if isinstance(stored, memoryview) else stored
        if not isinstance(data, bytes) or not data.startswith(SEALED_PAYLOAD):
            return data
        data = data[len(SEALED_PAYLOAD) :]
        if self.cipher is not None:
            data = self.cipher.decrypt(data)
        if self.compressor is not None:
            data = self.compressor.decompress(data)
        return data
