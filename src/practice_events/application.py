"""The write application: the event store of practice-events and its queries.

:class:`PracticeEvents` is an eventsourcing ``Application`` whose recorder is
a process recorder (it can write tracking positions), configured explicitly
through ``env`` by the composition root; it never reads ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification, ProcessRecorder

from practice_events.domain.base import PracticeAggregate, aggregate_id


class StoreRecorderProtocol(Protocol):
    """What the SQLite and PostgreSQL store recorders both offer."""

    def select_digests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Return the stored digest of each already-ingested key."""

    def select_trackings(self, prefix: str) -> dict[str, int]:
        """Return tracking positions whose names start with ``prefix``."""

    def select_rejections(
        self,
        *,
        source: str | None = None,
        code: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Return recorded rejections."""

    def count_rejections(self) -> dict[str, int]:
        """Return the number of rejections by code."""

    def count_events_by_topic(self) -> dict[str, int]:
        """Return the number of events by type."""

    def count_ingested_keys(self) -> int:
        """Return the number of accepted CloudEvents."""

    def max_notification_id(self) -> int | None:
        """Return the last position of the log."""

    def max_tracking_id(self, application_name: str) -> int | None:
        """Return a tracking position."""

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Return a page of the notification log."""


class PracticeEvents(Application[UUID]):
    """The event store application: aggregates, notification log, ingest side tables."""

    name = "PracticeEvents"
    log_section_size = 1000
    env: ClassVar[dict[str, str]] = {
        "TRANSCODER_TOPIC": "practice_events.store.transcoder:OrjsonTranscoder",
        "CREATE_TABLE": "y",
    }

    def construct_recorder(self) -> ProcessRecorder:
        """Use the store's process recorder, so tracking rows share the transaction.

        The recorder protects refused payloads with the mapper's cipher and
        compressor, so a rejection holds no more clear text than an event.
        """
        from practice_events.store.records import PayloadCodec

        recorder = self.factory.process_recorder()
        if self.mapper.cipher is not None or self.mapper.compressor is not None:
            cast(Any, recorder).payload_codec = PayloadCodec(
                self.mapper.cipher, self.mapper.compressor
            )
        return recorder

    @property
    def store(self) -> StoreRecorderProtocol:
        """The recorder, typed with the ingest-table queries."""
        return cast(StoreRecorderProtocol, self.recorder)

    def get_aggregate(self, kind: str, subject: str) -> PracticeAggregate:
        """Return the aggregate of ``kind`` named ``subject`` (AggregateNotFoundError if none)."""
        return cast(PracticeAggregate, self.repository.get(aggregate_id(kind, subject)))

    def aggregate_exists(self, kind: str, subject: str) -> bool:
        """Tell whether an aggregate of ``kind`` named ``subject`` has been created."""
        events = self.recorder.select_events(aggregate_id(kind, subject), limit=1)
        return bool(events)

    def last_position(self) -> int:
        """Return the position of the last event in the notification log (0 if empty)."""
        return int(self.recorder.max_notification_id() or 0)
