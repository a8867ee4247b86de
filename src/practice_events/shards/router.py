"""The shard router: one batch in, one pipeline run (one transaction) per shard.

:class:`ShardRouter` offers the same interface as the single-store
:class:`~practice_events.ingest.pipeline.Pipeline` (a
:class:`~practice_events.ingest.processor.BatchProcessor`), so HTTP, Kafka
and ``ingest-file`` use it unchanged. For each batch it

1. reads each input's district cheaply (one ``orjson.loads`` of a structured
   event, or the ``ce_district`` header of a binary one; no contract check),
2. splits the batch by shard with :meth:`ShardMap.route`, keeping input order
   within each shard (reference data goes to every shard),
3. runs each shard's own pipeline on its part: its own event store,
   notification log, integrity chain, idempotency keys and rejections, in
   one transaction per shard,
4. puts the outcomes back in input order, each naming its shard.

There is **no atomicity across shards**, and none is needed: every event
belongs to exactly one shard (or, for reference data, to each shard on its
own), its aggregate and everything it refers to are in that shard, so no
rule ever reads two shards. If a shard fails after another committed, the
caller gets the error and sends the batch again (HTTP answers 503, the Kafka
worker re-reads from the lowest tracked offset): the shards that committed
see duplicates, stored once by ``(source, id)``, and the others store the
rest. The same argument covers Kafka offsets: every shard records the
batch's offsets in its own transaction, and a partition resumes after the
*lowest* offset any shard recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import structlog
from eventsourcing.persistence import Tracking

from practice_events.application import PracticeEvents
from practice_events.contracts.base import catalogue
from practice_events.contracts.envelope import IncomingEvent, header_items
from practice_events.domain.base import DomainContext
from practice_events.ingest.pipeline import BatchResult, Outcome, Pipeline, RawInput
from practice_events.shards.routing import DISTRICT_ATTRIBUTE, ShardMap

log = structlog.get_logger(__name__)

ALL_SHARDS = "*"
"""The ``shard`` of an outcome of reference data, which every shard stores."""


class ShardPipeline(Pipeline):
    """The pipeline of one shard: the usual pipeline plus the shard's routing check.

    After an input passes its contract, :meth:`ShardMap.check` refuses it
    with ``CROSS_SHARD_REFERENCE`` if its subject or a reference names a
    district of another shard; the refusal is stored in this shard's
    rejections like any other. Already-decoded events (the scheduler's, an
    audit import's) are trusted as they are: those run against one shard's
    store, not through the router.
    """

    def __init__(
        self,
        app: PracticeEvents,
        ctx: DomainContext,
        *,
        shard_map: ShardMap,
        shard: str,
        **options: Any,
    ) -> None:
        """``options`` are the pipeline's (``bootstrap.pipeline_options``)."""
        super().__init__(app, ctx, **options)
        self.shard_map = shard_map
        self.shard = shard

    def _decode(self, item: RawInput, received_at: datetime) -> IncomingEvent:
        incoming = super()._decode(item, received_at)
        self.shard_map.check(incoming, self.shard)
        return incoming


@dataclass(slots=True)
class ShardedBatchResult(BatchResult):
    """A batch's outcomes across shards, with the log position each shard reached.

    ``last_position`` is the highest of them (a position means something only
    within its shard; use ``positions`` or each outcome's ``shard``).
    """

    positions: dict[str, int] = field(default_factory=dict)


class ShardRouter:
    """Splits batches by shard and runs each part through that shard's pipeline."""

    def __init__(
        self,
        shard_map: ShardMap,
        pipelines: Mapping[str, Pipeline],
        *,
        owned: Sequence[PracticeEvents] = (),
    ) -> None:
        missing = set(shard_map.names) - set(pipelines)
        if missing:
            msg = f"no pipeline for shard(s) {', '.join(sorted(missing))}"
            raise ValueError(msg)
        self.shard_map = shard_map
        self.pipelines = {name: pipelines[name] for name in shard_map.names}
        self._owned = list(owned)
        self._kinds = {name: model.AGGREGATE for name, model in catalogue().items()}

    # -- routing ------------------------------------------------------------------------

    def route(self, item: RawInput | IncomingEvent) -> str | None:
        """Return the shard of one input, or None for every shard (reference data).

        Reads only the envelope's ``type``, ``subject`` and ``district``; an
        input that cannot be read goes to the default shard, whose pipeline
        records why it was refused.
        """
        if isinstance(item, IncomingEvent):
            return self.shard_map.route(
                self._kinds.get(item.type), item.extensions.get(DISTRICT_ATTRIBUTE), item.subject
            )
        event_type, subject, district = _peek(item)
        return self.shard_map.route(self._kinds.get(event_type or ""), district, subject)

    # -- the BatchProcessor interface ---------------------------------------------------

    def process(
        self,
        inputs: Sequence[RawInput | IncomingEvent],
        *,
        trackings: Iterable[Tracking] = (),
        before_commit: Callable[[list[Outcome]], None] | None = None,
    ) -> ShardedBatchResult:
        """Store a batch, one transaction per shard; return outcomes in input order.

        ``trackings`` (Kafka offsets) are written to every shard, also to those
        that got no input of this batch, so every shard knows how far the
        input was read. ``before_commit`` is called once per shard, before that
        shard commits, with that shard's outcomes.
        """
        trackings = list(trackings)
        parts: dict[str, list[int]] = {name: [] for name in self.pipelines}
        for index, item in enumerate(inputs):
            shard = self.route(item)
            if shard is None:
                for indices in parts.values():
                    indices.append(index)
            else:
                parts[shard].append(index)
        per_input: list[list[Outcome]] = [[] for _ in inputs]
        positions: dict[str, int] = {}
        stored = 0
        for name, pipeline in self.pipelines.items():
            indices = parts[name]
            if not indices and not trackings:
                continue
            result = pipeline.process(
                [inputs[i] for i in indices], trackings=trackings, before_commit=before_commit
            )
            positions[name] = result.last_position
            stored += result.events_stored
            for index, outcome in zip(indices, result.outcomes, strict=True):
                outcome.shard = name
                if outcome.status != "rejected" and outcome.position is None:
                    # A duplicate: the shard's position is at or after the original's.
                    outcome.position = result.last_position
                per_input[index].append(outcome)
        outcomes = [_merge(found) for found in per_input]
        log.debug(
            "shard_batch_routed", inputs=len(outcomes), shards={n: len(parts[n]) for n in parts}
        )
        return ShardedBatchResult(
            outcomes=outcomes,
            last_position=max(positions.values(), default=0),
            events_stored=stored,
            positions=positions,
        )

    def invalidate(self) -> None:
        """Forget every shard's cached aggregates."""
        for pipeline in self.pipelines.values():
            pipeline.invalidate()

    def select_trackings(self, prefix: str) -> dict[str, int]:
        """Return, per input position name, the lowest position every shard has stored.

        A name missing from any shard counts as never stored there (it is left
        out), so the input is read again from its beginning; the shards that
        have it see duplicates.
        """
        lowest: dict[str, int] | None = None
        for pipeline in self.pipelines.values():
            found = pipeline.select_trackings(prefix)
            if lowest is None:
                lowest = dict(found)
                continue
            lowest = {n: min(p, found[n]) for n, p in lowest.items() if n in found}
        return lowest or {}

    def close(self) -> None:
        """Close the shard stores this router opened (not the one it was given)."""
        for app in self._owned:
            app.close()
        self._owned.clear()

    @property
    def apps(self) -> dict[str, PracticeEvents]:
        """Each shard's event store, by shard name."""
        return {name: pipeline.app for name, pipeline in self.pipelines.items()}


def _merge(found: list[Outcome]) -> Outcome:
    """One outcome per input: a shard's, or for reference data the shards' combined."""
    if len(found) == 1:
        return found[0]
    rejected = next((o for o in found if o.status == "rejected"), None)
    if rejected is not None:
        return replace(rejected, reason=f"shard {rejected.shard}: {rejected.reason}")
    accepted = next((o for o in found if o.status == "accepted"), None)
    return replace(accepted or found[0], shard=ALL_SHARDS)


def _peek(item: RawInput) -> tuple[str | None, str | None, str | None]:
    """Return (type, subject, district) of a raw input without checking its contract."""
    if item.binary_mode:
        headers: dict[str, str] = {}
        for name, value in header_items(item.headers):
            headers.setdefault(name.lower(), value)
        return (
            _header(headers, "type"),
            _header(headers, "subject"),
            _header(headers, DISTRICT_ATTRIBUTE),
        )
    if not item.payload:
        return None, None, None
    try:
        obj = orjson.loads(item.payload)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(obj, dict):
        return None, None, None
    return _text(obj.get("type")), _text(obj.get("subject")), _text(obj.get(DISTRICT_ATTRIBUTE))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(f"ce_{name}") or headers.get(f"ce-{name}")
    return value or None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | bool):
        return str(value)
    return None
