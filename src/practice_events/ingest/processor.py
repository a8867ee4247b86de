"""What the ingestion channels (HTTP, Kafka, ``ingest-file``) need from the write path.

Both :class:`~practice_events.ingest.pipeline.Pipeline` (one event store) and
:class:`~practice_events.shards.router.ShardRouter` (one store per district)
offer it, so a channel is written once and works with either; the composition
root (``bootstrap.build_ingest``) picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from eventsourcing.persistence import Tracking

from practice_events.contracts.envelope import IncomingEvent
from practice_events.ingest.pipeline import BatchResult, Outcome, RawInput


class BatchProcessor(Protocol):
    """Turns batches of inputs into stored events, exactly once per ``(source, id)``."""

    def process(
        self,
        inputs: Sequence[RawInput | IncomingEvent],
        *,
        trackings: Iterable[Tracking] = (),
        before_commit: Callable[[list[Outcome]], None] | None = None,
    ) -> BatchResult:
        """Store a batch; return one outcome per input, in input order.

        ``before_commit`` may be called more than once (once per store written),
        each time with the outcomes about to be committed in that store.
        """

    def invalidate(self) -> None:
        """Forget cached aggregates (after a failure outside the write path)."""

    def select_trackings(self, prefix: str) -> dict[str, int]:
        """Return the input positions stored, by name, for names starting with ``prefix``."""

    def close(self) -> None:
        """Release what the processor opened itself."""
