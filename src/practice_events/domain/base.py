"""What every aggregate of practice-events shares.

An aggregate is identified by its *kind* and the CloudEvents ``subject`` that
producers use for it (a finding id, a volunteer number ...). The eventsourcing
id is ``uuid5(NAMESPACE, "kind:subject")``: deterministic, so that a retried
creation maps onto the same aggregate and auditors can find the history of a
subject without an index.

Every stored domain event has exactly two attributes besides the library's
own (id, version, timestamp):

``data``
    the validated contract payload in JSON-native form (strings for times),
    possibly enriched with decisions the aggregate took (due times, hours);
``meta``
    where it came from: CloudEvents ``id``, ``source``, ``type``, ``time``
    (business time, RFC 3339), optional ``actor``; for events the aggregate
    emitted itself, ``cause`` names the event that caused them.

Keeping stored state JSON-native lets projections decode the notification
log with ``orjson`` alone, which is several times faster than rebuilding
domain objects, and keeps the history readable without this code.

Aggregates check invariants *before* triggering an event and raise a
:class:`~practice_events.errors.DomainError` subclass with a clear reason; an
apply method never fails and never decides.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar, TypedDict
from uuid import UUID

from eventsourcing.domain import Aggregate

from practice_events.errors import (
    DomainError,
    IllegalTransitionError,
)

NAMESPACE = UUID("6f1c2a57-3d0e-5c4b-9a8e-70d1c3b2e4f5")
"""The uuid5 namespace of aggregate ids. Never change it: ids derive from it."""

SYSTEM_SOURCE = "practice-events"
"""The CloudEvents ``source`` of events that practice-events emits itself."""


@lru_cache(maxsize=262_144)
def aggregate_id(kind: str, subject: str) -> UUID:
    """Return the eventsourcing id of the aggregate of ``kind`` named ``subject``.

    Cached: the ingest pipeline asks for the same hot ids (a busy volunteer,
    a station) many times per batch, and uuid5 costs a SHA-1.
    """
    return uuid.uuid5(NAMESPACE, f"{kind}:{subject}")


_NAMESPACE_BYTES = NAMESPACE.bytes


def uuid5_text(name: str) -> str:
    """Return ``str(uuid.uuid5(NAMESPACE, name))``, without building a ``UUID`` object.

    The ids of derived events are text in ``meta``; this computes the same
    SHA-1 name-based UUID (version 5, RFC 4122 variant) in a third of the time.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])  # noqa: S324 - uuid5 is SHA-1 by definition
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Meta(TypedDict, total=False):
    """Provenance of a stored event (see the module docstring)."""

    id: str
    source: str
    type: str
    time: str
    subject: str

    actor: str
    cause: str


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 time stored in an event (always offset-aware)."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:  # pragma: no cover - contracts reject naive times
        msg = f"naive datetime in stored event: {value!r}"
        raise ValueError(msg)
    return parsed


def format_time(value: datetime) -> str:
    """Format a time for storage in an event: RFC 3339 with its offset."""
    if value.tzinfo is None:
        msg = "refusing to store a naive datetime"
        raise ValueError(msg)
    return value.isoformat()


def derived_meta(cause: Mapping[str, Any], event_type: str, *, time: str | None = None) -> Meta:
    """Meta for an event the aggregate emits itself because of ``cause``.

    The id is a uuid5 of the cause's id and the emitted type, so replaying the
    same cause never yields two different ids.
    """
    cause_id = str(cause.get("id", ""))
    return Meta(
        id=uuid5_text(f"{cause_id}:{event_type}"),
        source=SYSTEM_SOURCE,
        type=event_type,
        time=time or str(cause.get("time", "")),
        subject=str(cause.get("subject", "")),
        cause=cause_id,
    )


@dataclass(frozen=True)
class DomainContext:
    """What aggregates may consult besides their own state.

    Built once per process by the composition root; aggregates never read
    settings or clocks themselves, so a replay gives the same decisions.
    ``services`` holds area-specific collaborators (the SLA calendar and
    policies for findings, the points rule for ledgers ...), looked up by name.
    """

    services: Mapping[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> Any:
        """Return the collaborator registered under ``name``."""
        try:
            return self.services[name]
        except KeyError:  # pragma: no cover - a wiring mistake, caught by tests
            msg = f"domain service {name!r} is not configured"
            raise DomainError(msg) from None


class PracticeAggregate(Aggregate):
    """Base aggregate: deterministic ids and the ``data``/``meta`` event shape.

    Subclasses set:

    ``KIND``
        the aggregate kind (``"finding"``), part of the id;
    ``CREATED_BY``
        the CloudEvents type that creates it;
    ``HANDLES``
        CloudEvents type -> name of the command method that takes
        ``(data, meta, ctx)`` and triggers the event(s);

    and define a nested ``Created`` subclass plus one nested event class per
    event, each with an explicit ``TOPIC`` equal to its CloudEvents type.
    """

    KIND: ClassVar[str] = ""
    CREATED_BY: ClassVar[str] = ""
    HANDLES: ClassVar[Mapping[str, str]] = {}

    class Event(Aggregate.Event):
        """An event of this aggregate: the payload and its provenance."""

        data: dict[str, Any]
        meta: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            """Change the aggregate's state; the default changes nothing."""

    class Created(Event, Aggregate.Created):
        """The creation event: sets ``subject``, then the area's initial state.

        Subclasses override :meth:`init`, not ``apply``, so that ``subject`` is
        always set first.
        """

        def apply(self, aggregate: Any) -> None:
            """Set the subject from ``meta``, then call :meth:`init`."""
            aggregate._subject = str(self.meta.get("subject", ""))
            self.init(aggregate)

        def init(self, aggregate: Any) -> None:
            """Set the area's initial state from ``data`` (override this)."""

    @property
    def subject(self) -> str:
        """The CloudEvents subject that producers use for this aggregate."""
        return str(self.__dict__.get("_subject", ""))

    @classmethod
    def create(
        cls, data: Mapping[str, Any], meta: Mapping[str, Any], ctx: DomainContext
    ) -> PracticeAggregate:
        """Create the aggregate from its creation event (override to add checks)."""
        return cls._create(
            cls.Created,
            id=aggregate_id(cls.KIND, str(meta["subject"])),
            data=dict(data),
            meta=dict(meta),
        )

    def emit(
        self,
        event_class: type[PracticeAggregate.Event],
        data: Mapping[str, Any],
        meta: Mapping[str, Any],
    ) -> None:
        """Trigger ``event_class`` with a copy of ``data`` and ``meta``."""
        self.trigger_event(event_class, data=dict(data), meta=dict(meta))

    def refuse(self, reason: str) -> None:
        """Raise an :class:`IllegalTransitionError` naming this aggregate."""
        raise IllegalTransitionError(f"{self.KIND} {self.subject}: {reason}")
