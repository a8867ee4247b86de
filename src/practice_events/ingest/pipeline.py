"""The ingest pipeline: one path from raw bytes to stored events, for every channel.

    decode -> validate (contracts) -> dedupe by (source, id)
           -> apply to the aggregate (domain rules)
           -> save new events + idempotency keys + input positions + rejections
              in ONE transaction

A batch of many inputs is one transaction. Aggregates are kept in an LRU
cache between batches, and those a batch needs but the cache lacks are loaded
with one query, so hot aggregates (a busy volunteer, a station) are not
reloaded per event.

Every input ends as exactly one :class:`Outcome`: accepted, duplicate or
rejected (with a stable code and a reason). Rejections are stored in the same
transaction, so nothing is lost even when the caller crashes right after.
"""

from __future__ import annotations

import re
import time as _time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

import orjson
import structlog
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
    Tracking,
)

from practice_events.application import PracticeEvents
from practice_events.config import EARLIEST_EVENT_TIME
from practice_events.contracts.envelope import (
    Headers,
    IncomingEvent,
    header_items,
    parse_binary,
    parse_structured,
)
from practice_events.domain import handlers, kinds
from practice_events.domain.base import NAMESPACE, DomainContext, PracticeAggregate, aggregate_id
from practice_events.errors import (
    ContractError,
    PracticeEventsError,
    TransientError,
)
from practice_events.ingest.apply import apply_event
from practice_events.privacy import PERSONAL_DETAILS_RECORDED
from practice_events.privacy.guard import GUARDED_TYPES, BatchPrivacy, PersonalDataGuard
from practice_events.privacy.redact import redact_input
from practice_events.store.records import IngestKey, Rejection
from practice_events.store.snapshots import SnapshotCodec, SnapshotRow, UnsnapshottableError

log = structlog.get_logger(__name__)

Status = Literal["accepted", "duplicate", "rejected"]

MAX_INTEGRITY_RETRIES = 3

DEFAULT_SNAPSHOT_INTERVAL = 100
"""Events an aggregate gains before the pipeline stores a new snapshot of it (0: never)."""

MAX_EVENT_BYTES = 1024 * 1024
"""Largest input the pipeline reads (the HTTP API's default limit; Kafka's default record size)."""

MAX_PAST_SKEW = timedelta(days=7)
"""Default of ``max_past_skew_seconds``: events older than this when received are flagged."""

BACKDATED = "BACKDATED"
"""Flag of an accepted event whose time is more than ``max_past_skew`` before its receipt."""


@dataclass(frozen=True, slots=True)
class RawInput:
    """One input as it arrived.

    ``headers`` carry CloudEvents binary-mode attributes (``ce_*``) when the
    input came that way; otherwise ``payload`` is a structured-mode CloudEvent.
    ``position`` names where it came from (``topic:partition:offset``,
    ``file:line``) and makes its rejection id deterministic.
    """

    payload: bytes | None
    headers: Headers | None = None
    channel: str = "file"
    position: str | None = None

    @property
    def binary_mode(self) -> bool:
        """True when the CloudEvents attributes are in headers (binary mode)."""
        for name, _ in header_items(self.headers):
            if name.lower().startswith(("ce_", "ce-")):
                return True
        return False


@dataclass(slots=True)
class Outcome:
    """What became of one input."""

    status: Status
    input: RawInput | None
    event_id: str | None = None
    source: str | None = None
    type: str | None = None
    subject: str | None = None
    code: str | None = None
    reason: str | None = None
    position: int | None = None
    flags: tuple[str, ...] = ()
    """Remarks on an event that was not refused: ``BACKDATED`` (see :class:`Pipeline`)."""
    shard: str | None = None
    """The shard that stored it, in a sharded deployment (``*``: reference data, every shard)."""

    def as_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data (for HTTP answers and CLI output)."""
        out: dict[str, Any] = {"status": self.status, "id": self.event_id, "source": self.source}
        if self.type is not None:
            out["type"] = self.type
        if self.subject is not None:
            out["subject"] = self.subject
        if self.code is not None:
            out["code"] = self.code
            out["reason"] = self.reason
        if self.position is not None:
            out["position"] = self.position
        if self.flags:
            out["flags"] = list(self.flags)
        if self.shard is not None:
            out["shard"] = self.shard
        return out


@dataclass(slots=True)
class BatchResult:
    """The outcomes of a batch, in input order, and the log position after it."""

    outcomes: list[Outcome]
    last_position: int
    events_stored: int = 0

    def count(self, status: Status) -> int:
        """Return how many inputs ended with ``status``."""
        return sum(1 for o in self.outcomes if o.status == status)


class StoreQueries(Protocol):
    """The recorder queries the pipeline uses beyond the library's."""

    def select_digests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Return digests of already-ingested keys."""

    def select_events_of(
        self, ids: Sequence[UUID], after: Mapping[UUID, int] | None = None
    ) -> dict[UUID, list[StoredEvent]]:
        """Return the stored events of each given aggregate (after a version), in version order."""

    def select_snapshots(self, ids: Sequence[UUID]) -> dict[UUID, SnapshotRow]:
        """Return the latest stored snapshot of each given aggregate that has one."""


@dataclass
class _Work:
    """Per-batch scratch state."""

    outcomes: list[Outcome] = field(default_factory=list)
    touched: dict[UUID, PracticeAggregate] = field(default_factory=dict)
    produced: dict[int, list[DomainEventProtocol[UUID]]] = field(default_factory=dict)
    keys: list[IngestKey] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    privacy: BatchPrivacy | None = None  # person keys, only in batches with personal data


class Pipeline:
    """Turns batches of raw inputs into stored events, exactly once per (source, id).

    Besides the contracts (:mod:`~practice_events.contracts.envelope`) it
    refuses inputs larger than ``max_event_bytes`` (``PAYLOAD_TOO_LARGE``, as
    the HTTP API does before reading them) and applies the clock rules to each
    event's time (:meth:`_check_time`): ``TIME_IN_FUTURE`` and ``TIME_TOO_OLD``
    are refused, late events are accepted with the flag ``BACKDATED``.
    """

    def __init__(
        self,
        app: PracticeEvents,
        ctx: DomainContext,
        *,
        cache_size: int = 50_000,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        max_future_skew: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        earliest_time: datetime = EARLIEST_EVENT_TIME,
        max_past_skew: timedelta = MAX_PAST_SKEW,
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.cache_size = cache_size
        self.snapshot_interval = snapshot_interval
        self.max_future_skew = max_future_skew
        self.max_event_bytes = max_event_bytes
        self.earliest_time = earliest_time
        self.max_past_skew = max_past_skew
        self.clock = clock or (lambda: datetime.now(UTC))
        self._cache: OrderedDict[UUID, PracticeAggregate] = OrderedDict()
        self._absent: set[UUID] = set()  # ids known not to exist when the batch started
        self._handlers = handlers()
        self._kinds = kinds()
        self._guard: PersonalDataGuard | None = None
        self._snapshots = SnapshotCodec(app.mapper)
        # Version of the latest snapshot stored (or 0) of each aggregate loaded or written.
        self._snapshot_at: dict[UUID, int] = {}
        self._unsnapshottable: set[type[PracticeAggregate]] = set()

    # -- public -----------------------------------------------------------------------

    def process(
        self,
        inputs: Sequence[RawInput | IncomingEvent],
        *,
        trackings: Iterable[Tracking] = (),
        before_commit: Callable[[list[Outcome]], None] | None = None,
    ) -> BatchResult:
        """Process a batch in one transaction and return one outcome per input.

        ``trackings`` (input positions) are written in the same transaction.
        ``before_commit`` sees the outcomes before they are committed (the Kafka
        worker publishes dead letters there, so a crash can duplicate a dead
        letter but never lose one). Raises :class:`TransientError` when the store
        is unreachable; nothing is then committed and the batch can be retried.
        """
        trackings = list(trackings)
        attempt = 0
        while True:
            attempt += 1
            try:
                work = self._prepare(inputs)
            except (OperationalError, InterfaceError) as exc:
                # Reading keys or aggregates failed: nothing was applied to the
                # store, but cached aggregates may hold half a batch. Forget them.
                self.invalidate()
                msg = f"event store unavailable: {exc}"
                raise TransientError(msg) from exc
            except Exception:
                self.invalidate()
                raise
            if before_commit is not None:
                try:
                    before_commit(work.outcomes)
                except BaseException:
                    # Nothing is committed; forget what the batch did to cached aggregates
                    # (only those: a caller that retries part of the batch keeps the rest).
                    self._evict(work.touched)
                    raise
            try:
                return self._commit(work, trackings)
            except IntegrityError as exc:
                # A concurrent writer stored the same key or aggregate version first.
                self._evict(work.touched)
                if attempt >= MAX_INTEGRITY_RETRIES:
                    msg = f"batch kept conflicting with concurrent writers: {exc}"
                    raise TransientError(msg) from exc
                log.info("ingest_batch_conflict_retry", attempt=attempt, error=str(exc))
            except (OperationalError, InterfaceError) as exc:
                self._evict(work.touched)
                msg = f"event store unavailable: {exc}"
                raise TransientError(msg) from exc
            except Exception:
                self._evict(work.touched)
                raise

    def invalidate(self) -> None:
        """Forget every cached aggregate (after a failure outside the pipeline)."""
        self._cache.clear()

    @property
    def privacy(self) -> PersonalDataGuard:
        """The person-key access (see :mod:`practice_events.privacy.guard`), opened on first use."""
        if self._guard is None:
            self._guard = PersonalDataGuard(self.app)
        return self._guard

    def select_trackings(self, prefix: str) -> dict[str, int]:
        """Return the stored input positions whose names start with ``prefix`` (Kafka offsets)."""
        return self.app.store.select_trackings(prefix)

    def close(self) -> None:
        """Nothing to release: the caller that opened the store closes it."""

    # -- preparation ---------------------------------------------------------------------

    def _prepare(self, inputs: Sequence[RawInput | IncomingEvent]) -> _Work:
        work = _Work()
        self._absent.clear()
        received_at = self.clock()
        parsed: list[IncomingEvent | None] = []
        for item in inputs:
            if isinstance(item, IncomingEvent):
                parsed.append(item)
                work.outcomes.append(self._outcome_for(item, "accepted", None))
                continue
            try:
                incoming = self._decode(item, received_at)
            except ContractError as exc:
                parsed.append(None)
                work.outcomes.append(self._reject(work, item, None, exc, received_at))
                continue
            parsed.append(incoming)
            work.outcomes.append(self._accepted(incoming, item, received_at))

        # Load aggregates before reading the keys: an event another writer commits
        # in between is then seen as a duplicate, not refused by a newer aggregate.
        self._preload(parsed)
        self._dedupe(work, parsed, received_at)
        # Every aggregate the batch has looked up or changed (work.touched is a subset).
        loaded: dict[UUID, PracticeAggregate | None] = {}

        def lookup(kind: str, subject: str) -> PracticeAggregate | None:
            agg_id = aggregate_id(kind, subject)
            try:
                return loaded[agg_id]
            except KeyError:
                agg = loaded[agg_id] = self._get(agg_id)
                return agg

        def exists(kind: str, subject: str) -> bool:
            return lookup(kind, subject) is not None

        for index, maybe in enumerate(parsed):
            outcome = work.outcomes[index]
            if maybe is None or outcome.status != "accepted":
                continue
            incoming = self._guard_personal(work, maybe) if maybe.type in GUARDED_TYPES else maybe
            try:
                handler = self._handlers.get(incoming.type)
                existing = (
                    lookup(handler.aggregate.KIND, incoming.subject)
                    if handler is not None
                    else None
                )
                version_before = existing.version if existing is not None else None
                pending_before = len(existing.pending_events) if existing is not None else 0
                aggregate = apply_event(incoming, lookup, exists, self.ctx)
            except PracticeEventsError as exc:
                if existing is not None and (
                    existing.version != version_before
                    or len(existing.pending_events) != pending_before
                ):
                    # A command changed state before refusing: a domain bug. Do not
                    # store a half-applied aggregate; fail the batch loudly instead.
                    msg = f"{incoming.type} refused after changing {incoming.subject}: {exc}"
                    raise RuntimeError(msg) from exc
                work.outcomes[index] = self._reject(work, outcome.input, incoming, exc, received_at)
                continue
            if work.privacy is not None and incoming.type in GUARDED_TYPES:
                work.privacy.applied(incoming, received_at)
            work.touched[aggregate.id] = aggregate
            loaded[aggregate.id] = aggregate
            work.produced[index] = list(aggregate.pending_events[pending_before:])
            work.keys.append(IngestKey(incoming.source, incoming.id, incoming.digest))
        return work

    def _guard_personal(self, work: _Work, incoming: IncomingEvent) -> IncomingEvent:
        """Seal personal details under the person's key before any aggregate or store sees them."""
        if work.privacy is None:
            work.privacy = self.privacy.batch()
        return work.privacy.prepare(incoming)

    def _decode(self, item: RawInput, received_at: datetime) -> IncomingEvent:
        size = len(item.payload or b"")
        if size > self.max_event_bytes:
            msg = (
                f"the input is {size:,} bytes; at most {self.max_event_bytes:,} are read "
                "(no event of the catalogue needs that much)"
            )
            raise ContractError(msg, code="PAYLOAD_TOO_LARGE", limit_bytes=self.max_event_bytes)
        if item.binary_mode:
            assert item.headers is not None
            incoming = parse_binary(item.headers, item.payload)
        else:
            if item.payload is None:
                msg = "empty message: no CloudEvent in it"
                raise ContractError(msg, code="MALFORMED_JSON")
            incoming = parse_structured(item.payload)
        self._check_time(incoming, received_at)
        if incoming.type not in self._handlers:  # pragma: no cover - catalogue wiring
            msg = f"{incoming.type} has a contract but no aggregate handles it"
            raise ContractError(msg, code="UNKNOWN_TYPE")
        return incoming

    def _accepted(self, incoming: IncomingEvent, item: RawInput, received_at: datetime) -> Outcome:
        """The outcome of an input that passed its contract, flagged if it came late."""
        outcome = self._outcome_for(incoming, "accepted", item)
        if received_at - incoming.time > self.max_past_skew:
            outcome.flags = (BACKDATED,)
        return outcome

    def _check_time(self, incoming: IncomingEvent, received_at: datetime) -> None:
        """Apply the clock rules to the producer's ``time`` (see :class:`Pipeline`).

        * later than receipt + ``max_future_skew``: refused, ``TIME_IN_FUTURE``;
        * before ``earliest_time``: refused, ``TIME_TOO_OLD``;
        * earlier than receipt - ``max_past_skew``: accepted and flagged ``BACKDATED``
          (in :meth:`_prepare`).

        The time a producer sends is a claim about the world, never a position
        in history: the log's order is the order of recording (the notification
        id), whatever the time says. A late event therefore lands *after* every
        event recorded before it, and projections count it in the business
        period its time names. Late arrivals are normal (an app that was
        offline for a week, an import of old records) and are kept, flagged so
        that producers and operators see them. A time in the future cannot be
        true, and a time before the network existed (by default 2000, where
        the periods of the scorecards begin) is a broken clock (the epoch,
        year 1, a two-digit year): both are refused with the producer's clock
        named as the likely cause, before they can distort a period.
        """
        if incoming.time < self.earliest_time:
            msg = (
                f"event time {incoming.time.isoformat()} is before "
                f"{self.earliest_time.isoformat()}, the earliest time this network records "
                "(setting earliest_event_time); check the producer's clock"
            )
            raise ContractError(msg, code="TIME_TOO_OLD")
        if incoming.time - received_at > self.max_future_skew:
            msg = (
                f"event time {incoming.time.isoformat()} is more than "
                f"{int(self.max_future_skew.total_seconds())} s in the future; "
                "check the producer's clock"
            )
            raise ContractError(msg, code="TIME_IN_FUTURE")

    def _dedupe(
        self, work: _Work, parsed: list[IncomingEvent | None], received_at: datetime
    ) -> None:
        candidates = [
            (index, p, (p.source, p.id))
            for index, (p, o) in enumerate(zip(parsed, work.outcomes, strict=True))
            if p is not None and o.status == "accepted"
        ]
        if not candidates:
            return
        stored = self._store.select_digests(list(dict.fromkeys(c[2] for c in candidates)))
        seen: dict[tuple[str, str], str] = {}
        for index, incoming, key in candidates:
            outcome = work.outcomes[index]
            previous = stored.get(key) or seen.get(key)
            if previous is None:
                seen[key] = incoming.digest
                continue
            if previous == incoming.digest or (
                incoming.type == PERSONAL_DETAILS_RECORDED
                and self.privacy.same_content(previous, incoming)
            ):
                outcome.status = "duplicate"
            else:
                conflict = ContractError(
                    f"id {incoming.id!r} from {incoming.source!r} was already used for an "
                    "event with different content; use a new id for a new event",
                    code="DUPLICATE_CONFLICT",
                )
                work.outcomes[index] = self._reject(
                    work, outcome.input, incoming, conflict, received_at
                )

    # -- aggregates ----------------------------------------------------------------------

    @property
    def _store(self) -> StoreQueries:
        return self.app.recorder  # type: ignore[return-value]  # our recorders implement it

    def _needed_ids(self, parsed: Sequence[IncomingEvent | None]) -> set[UUID]:
        needed: set[UUID] = set()
        for incoming in parsed:
            if incoming is None:
                continue
            handler = self._handlers.get(incoming.type)
            if handler is not None:
                needed.add(aggregate_id(handler.aggregate.KIND, incoming.subject))
            for kind, subject in incoming.data.references():
                needed.add(aggregate_id(kind, subject))
        return needed

    def _preload(self, parsed: Sequence[IncomingEvent | None]) -> None:
        """Load, with one query, every aggregate the batch needs that is not cached."""
        missing = [i for i in self._needed_ids(parsed) if i not in self._cache]
        if missing:
            self._load(missing)

    def _get(self, agg_id: UUID) -> PracticeAggregate | None:
        cached = self._cache.get(agg_id)
        if cached is not None:
            self._cache.move_to_end(agg_id)
            return cached
        if agg_id in self._absent:
            return None
        return self._load([agg_id]).get(agg_id)

    def _load(self, ids: Sequence[UUID]) -> dict[UUID, PracticeAggregate]:
        """Rebuild aggregates from their snapshots (if any) and the events after them.

        Ids with neither are remembered as absent for the batch. A snapshot that
        cannot be used (other code, unreadable) is ignored: the events decide.
        """
        restored: dict[UUID, PracticeAggregate] = {}
        if self.snapshot_interval > 0:
            for agg_id, row in self._select_snapshots(ids).items():
                try:
                    restored[agg_id] = self._snapshots.restore(row)
                except Exception as exc:  # noqa: BLE001 - a cache: fall back to the events
                    log.info("snapshot_ignored", aggregate=str(agg_id), reason=str(exc)[:200])
        stored = self._store.select_events_of(
            ids, after={agg_id: a.version for agg_id, a in restored.items()}
        )
        to_domain_event = self.app.mapper.to_domain_event
        loaded: dict[UUID, PracticeAggregate] = {}
        for agg_id in ids:
            aggregate: Any = restored.get(agg_id)
            events = stored.get(agg_id, ())
            if aggregate is None and not events:
                self._absent.add(agg_id)
                continue
            self._snapshot_at[agg_id] = 0 if aggregate is None else aggregate.version
            for stored_event in events:
                aggregate = to_domain_event(stored_event).mutate(aggregate)  # type: ignore[attr-defined]
            loaded[agg_id] = aggregate
            self._remember(agg_id, aggregate)
        return loaded

    def _select_snapshots(self, ids: Sequence[UUID]) -> dict[UUID, SnapshotRow]:
        try:
            return self._store.select_snapshots(ids)
        except (InterfaceError, OperationalError):
            raise  # the store is unreachable: the events cannot be read either
        except Exception as exc:  # noqa: BLE001 - a cache: fall back to the events
            log.warning("snapshots_unreadable", reason=f"{type(exc).__name__}: {exc}"[:200])
            return {}

    def _snapshots_due(self, touched: Mapping[UUID, PracticeAggregate]) -> list[SnapshotRow]:
        """Snapshots of the aggregates at least ``snapshot_interval`` events past their last one."""
        if self.snapshot_interval <= 0:
            return []
        rows: list[SnapshotRow] = []
        for agg_id, aggregate in touched.items():
            if aggregate.version - self._snapshot_at.get(agg_id, 0) < self.snapshot_interval:
                continue
            if type(aggregate) in self._unsnapshottable:
                continue
            try:
                rows.append(self._snapshots.take(aggregate))
            except UnsnapshottableError as exc:
                self._unsnapshottable.add(type(aggregate))
                log.warning("snapshot_impossible", kind=aggregate.KIND, reason=str(exc))
        return rows

    def _remember(self, agg_id: UUID, aggregate: PracticeAggregate) -> None:
        if self.cache_size <= 0:
            return
        self._cache[agg_id] = aggregate
        self._cache.move_to_end(agg_id)
        while len(self._cache) > self.cache_size:
            evicted, _ = self._cache.popitem(last=False)
            self._snapshot_at.pop(evicted, None)

    def _evict(self, touched: Mapping[UUID, PracticeAggregate]) -> None:
        for agg_id in touched:
            self._cache.pop(agg_id, None)
        self._absent.clear()

    # -- commit --------------------------------------------------------------------------

    def _commit(self, work: _Work, trackings: list[Tracking]) -> BatchResult:
        started = _time.perf_counter()
        # The same as app.save(*aggregates, ...), without its per-object protocol
        # isinstance checks (measured at ~15% of ingest time) and snapshot hooks.
        # And the same as app.events.put(), without the Recording and Notification
        # objects it builds per event: only the notification ids are needed here.
        events: list[DomainEventProtocol[UUID]] = []
        for aggregate in work.touched.values():
            events.extend(aggregate.collect_events())
        to_stored_event = self.app.mapper.to_stored_event
        stored_events = [to_stored_event(e) for e in events]
        snapshots = self._snapshots_due(work.touched)
        notification_ids = self.app.recorder.insert_events(
            stored_events,
            snapshots=snapshots,
            trackings=trackings,
            ingest_keys=work.keys,
            rejections=work.rejections,
            person_keys=work.privacy.changes if work.privacy is not None else None,
        )
        notification_ids = list(notification_ids or ())
        if notification_ids and len(notification_ids) != len(events):  # pragma: no cover
            msg = f"{len(events)} events stored but {len(notification_ids)} positions returned"
            raise RuntimeError(msg)
        if work.privacy is not None and work.privacy.changes.erasures:
            self.privacy.scrub()
        positions = {id(e): n for e, n in zip(events, notification_ids, strict=False)}
        for index, produced in work.produced.items():
            ids = [positions[id(e)] for e in produced if id(e) in positions]
            if ids:
                work.outcomes[index].position = max(ids)
        for agg_id, aggregate in work.touched.items():
            self._absent.discard(agg_id)
            self._remember(agg_id, aggregate)
        for row in snapshots:
            self._snapshot_at[row.originator_id] = row.version
        self._absent.clear()
        last = max(notification_ids, default=None)
        if last is None:
            last = self.app.last_position()
        log.debug(
            "ingest_batch_committed",
            inputs=len(work.outcomes),
            events=len(notification_ids),
            rejected=len(work.rejections),
            seconds=round(_time.perf_counter() - started, 4),
        )
        return BatchResult(
            outcomes=work.outcomes, last_position=last, events_stored=len(notification_ids)
        )

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _outcome_for(incoming: IncomingEvent, status: Status, item: RawInput | None) -> Outcome:
        return Outcome(
            status=status,
            input=item,
            event_id=incoming.id,
            source=incoming.source,
            type=incoming.type,
            subject=incoming.subject,
        )

    @staticmethod
    def _reject(
        work: _Work,
        item: RawInput | None,
        incoming: IncomingEvent | None,
        exc: PracticeEventsError,
        received_at: datetime,
    ) -> Outcome:
        channel = item.channel if item is not None else "internal"
        position = item.position if item is not None else None
        if position is not None:
            rejection_id = str(uuid.uuid5(NAMESPACE, f"rejection:{channel}:{position}"))
        else:
            rejection_id = str(uuid.uuid4())
        payload = b""
        headers: dict[str, Any] = {}
        if item is not None:
            payload = item.payload or b""
            headers = _stored_headers(item.headers)
            if incoming is None and not item.binary_mode:
                headers = _peek(payload)
            # Kept whole, except personal details (docs/privacy.md).
            payload = redact_input(payload, item.headers if item.binary_mode else None) or b""
        elif incoming is not None:
            payload = redact_input(orjson.dumps(incoming.to_structured())) or b""
        work.rejections.append(
            Rejection(
                rejection_id=rejection_id,
                received_at=received_at.isoformat(),
                channel=channel,
                code=exc.code,
                reason=_storable(exc.reason),
                payload=payload,
                source=incoming.source if incoming else _header(headers, "source"),
                event_id=incoming.id if incoming else _header(headers, "id"),
                event_type=incoming.type if incoming else _header(headers, "type"),
                subject=incoming.subject if incoming else _header(headers, "subject"),
                headers=headers,
                position=position,
            )
        )
        return Outcome(
            status="rejected",
            input=item,
            event_id=incoming.id if incoming else _header(headers, "id"),
            source=incoming.source if incoming else _header(headers, "source"),
            type=incoming.type if incoming else _header(headers, "type"),
            subject=incoming.subject if incoming else _header(headers, "subject"),
            code=exc.code,
            reason=_storable(exc.reason),
        )


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for prefix in ("ce_", "ce-"):
        value = headers.get(prefix + name)
        if isinstance(value, list):  # the header was repeated: the first one
            value = value[0] if value else None
        if value is not None:
            return _storable(str(value))[:256]
    return None


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    """Return ``text`` with what stores cannot hold replaced by U+FFFD.

    PostgreSQL text refuses U+0000, and UTF-8 (orjson, every store) refuses
    lone surrogates, which stand for header bytes that were not UTF-8 (see
    ``consumers.worker.decode_headers``). A refused input's bytes are kept
    whole in ``payload``; only the text columns beside it are cleaned.
    """
    return text if _UNSTORABLE.search(text) is None else _UNSTORABLE.sub("\ufffd", text)


def _stored_headers(headers: Headers | None) -> dict[str, Any]:
    """Return headers as the rejections store keeps them (a repeated name: a list of values)."""
    out: dict[str, Any] = {}
    for raw_name, raw_value in header_items(headers):
        name, value = _storable(raw_name), _storable(raw_value)
        if name not in out:
            out[name] = value
        elif isinstance(out[name], list):
            out[name].append(value)
        else:
            out[name] = [out[name], value]
    return out


def _peek(payload: bytes) -> dict[str, Any]:
    """Best-effort CloudEvents attributes of a refused structured event, as ce_* headers.

    They let producers find their refused events by source and id even when the
    event as a whole did not pass the contract.
    """
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(obj, dict):
        return {}
    return {
        f"ce_{name}": _storable(obj[name])
        for name in ("id", "source", "type", "subject")
        if isinstance(obj.get(name), str)
    }
