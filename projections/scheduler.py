"""The overdue scheduler: emits ``overdue`` and ``escalated`` exactly once per due time.

"Overdue" is derived (DESIGN.md §5): a stage target whose effective due time
has passed unmet. Supervisors still want it as an event, once, so that it
appears in the timeline, reaches the unit's leader and is counted in the
bulletin. This scheduler finds the candidates in the closed-loop view (open
clocks past their due time), confirms each against the finding aggregate
(``overdue_checks`` and ``escalation_checks``: the aggregate is the
authority, the view may lag), and sends system events through the one ingest
pipeline.

Exactly once, across restarts and several running copies, by construction:

* every event has a **deterministic id**, ``uuid5`` of (finding, stage,
  effective due time) — plus the level for escalations — and the source
  ``practice-events``;
* its **time is deterministic** too: an overdue event happens at the first
  instant after the due time (``due + 1 µs``); escalation level *L* at the
  start of the *n*-th working day after the due date, *n* being the
  policy's ladder step for *L* (T+1 → 1, T+5 → 2, T+15 → 3). So two copies
  build byte-identical events, whose digests match;
* the pipeline stores ``(source, id)`` with the events in one transaction:
  a copy that loses the race gets a conflict, retries, and finds its event
  a duplicate. The aggregate also refuses a second mark for the same
  (stage, due time) and levels that do not go up.

A granted extension gives a new effective due time, hence a new id: it can
be overdue again. Escalations skipped while the scheduler was down are
emitted one level at a time, each at the time it was reached.
"""

from __future__ import annotations

import threading
import time as _time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import structlog
from eventsourcing.persistence import IntegrityError

from practice_events.application import PracticeEvents
from practice_events.contracts.base import CATALOGUE
from practice_events.contracts.envelope import IncomingEvent, fingerprint
from practice_events.domain.base import NAMESPACE, SYSTEM_SOURCE, aggregate_id
from practice_events.domain.calendar import WorkingCalendar
from practice_events.domain.finding import Finding
from practice_events.domain.sla import SlaPolicy
from practice_events.errors import TransientError
from practice_events.ingest.pipeline import BatchResult, Pipeline
from projections.closed_loop import ClosedLoopProjection, overdue_candidates
from projections.rows import utc_text
from projections.runner import BatchedRunner
from projections.viewstore import ViewStore

log = structlog.get_logger(__name__)

OVERDUE = "practice.finding.overdue.v1"
ESCALATED = "practice.finding.escalated.v1"

ESCALATION_TARGETS: Mapping[int, str] = {1: "supervisor", 2: "leadership", 3: "public_bulletin"}
"""Who each escalation level goes to (unit leader, 督办 leadership, the public bulletin)."""

EMIT_BATCH = 500
"""System events per ingest transaction."""

LOAD_PAGE = 500
"""Finding aggregates loaded per store query."""


def overdue_event_id(finding_id: str, stage: str, due_at: datetime) -> str:
    """Return the deterministic id of the overdue event of (finding, stage, due time)."""
    return str(uuid.uuid5(NAMESPACE, f"overdue:{finding_id}:{stage}:{utc_text(due_at)}"))


def escalation_event_id(finding_id: str, stage: str, due_at: datetime, level: int) -> str:
    """Return the deterministic id of escalation ``level`` of (finding, stage, due time)."""
    return str(uuid.uuid5(NAMESPACE, f"escalated:{finding_id}:{stage}:{utc_text(due_at)}:{level}"))


def system_event(
    event_type: str, subject: str, event_id: str, at: datetime, data: Mapping[str, Any]
) -> IncomingEvent:
    """Build a system event as producers' events are built: validated, fingerprinted.

    System types are refused from producers by the envelope, so the scheduler
    builds :class:`IncomingEvent` with the contract model directly.
    """
    model = CATALOGUE[event_type]
    validated = model.model_validate(dict(data))
    data_json = validated.model_dump(mode="json", exclude_none=True)
    return IncomingEvent(
        id=event_id,
        source=SYSTEM_SOURCE,
        type=event_type,
        subject=subject,
        time=at,
        data=validated,
        data_json=data_json,
        digest=fingerprint(event_type, subject, at, data_json),
    )


def _ensure_tracking_row(views: ViewStore, name: str) -> None:
    """Make sure the projection's tracking row exists, so batches can lock it.

    The runner serialises concurrent runners of one projection by locking its
    tracking row (``SELECT … FOR UPDATE`` on PostgreSQL); before the first
    batch there is no row to lock, and a scheduler catching up beside the
    projection process could apply the same first page twice.
    """
    with views.transaction() as tx:
        tx.execute(
            f"INSERT INTO {views.TRACKING} (name, position, updated_at) VALUES (?, 0, ?) "
            "ON CONFLICT (name) DO NOTHING",
            [name, datetime.now(UTC).isoformat()],
        )


@dataclass
class SchedulerResult:
    """What one pass did."""

    candidates: int = 0
    emitted: int = 0
    duplicates: int = 0
    rejected: int = 0
    last_position: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data (CLI output, logs)."""
        return {
            "candidates": self.candidates,
            "emitted": self.emitted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "last_position": self.last_position,
        }


class OverdueScheduler:
    """Finds overdue stage targets and emits their events once (see the module docstring).

    ``clock`` gives "now" (injectable for tests). ``catch_up`` brings the
    closed-loop view up to the log head before each scan (safe beside a
    running projection process: the view's tracking row is locked per batch).
    """

    def __init__(
        self,
        app: PracticeEvents,
        pipeline: Pipeline,
        views: ViewStore,
        *,
        calendar: WorkingCalendar,
        policy: SlaPolicy,
        clock: Callable[[], datetime] | None = None,
        catch_up: bool = True,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.app = app
        self.pipeline = pipeline
        self.views = views
        self.calendar = calendar
        self.policy = policy
        self.clock = clock or (lambda: datetime.now(UTC))
        self.runner: BatchedRunner | None = None
        if catch_up:
            self.runner = BatchedRunner(app, views, [ClosedLoopProjection(timezone=timezone)])
            _ensure_tracking_row(views, ClosedLoopProjection.NAME)
        self._ladder = dict(policy.escalation_ladder)

    # -- planning ------------------------------------------------------------------------

    def escalation_time(self, due_at: datetime, level: int) -> datetime:
        """Return the instant escalation ``level`` of a clock due at ``due_at`` was reached.

        The start of the n-th working day after the due date (n from the
        policy's ladder), in the calendar's zone: the first moment the clock
        was n working days overdue.
        """
        after = self._ladder[level]
        day = self.calendar.nth_working_day(self.calendar.local_date(due_at), after)
        return datetime.combine(day, time.min, tzinfo=self.calendar.tz)

    def events_for(self, finding: Finding, now: datetime) -> list[IncomingEvent]:
        """Return the overdue and escalation events due for ``finding`` at ``now``."""
        subject = finding.subject
        out: list[IncomingEvent] = []
        for stage, due in finding.overdue_checks(now):
            out.append(
                system_event(
                    OVERDUE,
                    subject,
                    overdue_event_id(subject, stage, due),
                    due + timedelta(microseconds=1),
                    {"stage": stage, "due_at": due.isoformat()},
                )
            )
        for stage, level in finding.escalation_checks(now, self.calendar, self.policy):
            effective = finding.effective_due_at(stage)
            if effective is None:  # pragma: no cover - an escalated clock has a due time
                continue
            due = effective
            for step in range(finding.escalations.get(stage, 0) + 1, level + 1):
                if step not in self._ladder:
                    continue
                out.append(
                    system_event(
                        ESCALATED,
                        subject,
                        escalation_event_id(subject, stage, due, step),
                        self.escalation_time(due, step),
                        {
                            "stage": stage,
                            "level": step,
                            "to": ESCALATION_TARGETS.get(step),
                            "reason": (
                                f"{stage} {self._ladder[step]} working day(s) past its due time "
                                f"{due.isoformat()}"
                            ),
                        },
                    )
                )
        return out

    def plan(self, now: datetime) -> tuple[int, list[IncomingEvent]]:
        """Return (candidates seen, events to send) at ``now``."""
        rows = overdue_candidates(self.views, now)
        findings: dict[str, bool] = {}
        for row in rows:
            due = datetime.fromisoformat(row["due_at"])
            days = self.calendar.working_days_between(due, now)
            wants_mark = row["overdue_due_at"] != row["due_at"]
            wants_level = self.policy.escalation_level(days) > int(row["escalation_level"])
            if wants_mark or wants_level:
                findings[row["finding_id"]] = True
        events: list[IncomingEvent] = []
        for finding in self.load_findings(list(findings)):
            events.extend(self.events_for(finding, now))
        return len(findings), events

    def load_findings(self, finding_ids: list[str]) -> list[Finding]:
        """Load the finding aggregates (fresh from the store, a page of ids per query)."""
        recorder: Any = self.app.recorder  # the store recorders' select_events_of
        mapper: Any = self.app.mapper
        found: list[Finding] = []
        for start in range(0, len(finding_ids), LOAD_PAGE):
            ids = [aggregate_id("finding", f) for f in finding_ids[start : start + LOAD_PAGE]]
            stored = recorder.select_events_of(ids)
            for agg_id in ids:
                aggregate: Any = None
                for stored_event in stored.get(agg_id, ()):
                    aggregate = mapper.to_domain_event(stored_event).mutate(aggregate)
                if isinstance(aggregate, Finding):
                    found.append(aggregate)
        return found

    # -- running -------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> SchedulerResult:
        """Scan once at ``now`` (default: the clock) and send what is due."""
        moment = now or self.clock()
        if self.runner is not None:
            self.runner.catch_up()
        candidates, events = self.plan(moment)
        result = SchedulerResult(candidates=candidates)
        for start in range(0, len(events), EMIT_BATCH):
            self._emit(events[start : start + EMIT_BATCH], result)
        if events:
            log.info("overdue_scheduler_pass", at=moment.isoformat(), **result.as_dict())
        for rejection in result.rejections:
            log.warning("overdue_event_refused", **rejection)
        return result

    def _emit(self, events: list[IncomingEvent], result: SchedulerResult) -> None:
        """Send one batch; if it keeps conflicting, send it a finding at a time.

        While producers keep writing to the same findings (sustained ingestion,
        a backlog of overdue findings), a batch of hundreds of them conflicts
        with some concurrent commit on every attempt, and the whole pass failed
        every interval. One finding's events at a time leave a conflict window
        of one aggregate; a finding that still conflicts waits for the next
        pass (its events have deterministic ids, so nothing is emitted twice).
        A store that is away ends the pass as before.
        """
        try:
            self._count(self.pipeline.process(events), result)
            return
        except TransientError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        by_finding: dict[str, list[IncomingEvent]] = {}
        for event in events:
            by_finding.setdefault(event.subject, []).append(event)
        skipped = 0
        for group in by_finding.values():
            try:
                self._count(self.pipeline.process(group), result)
            except TransientError as exc:
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
                skipped += 1
        log.info(
            "overdue_scheduler_contended",
            findings=len(by_finding),
            deferred=skipped,
            hint="findings busy with concurrent writes are tried again next pass",
        )

    @staticmethod
    def _count(batch: BatchResult, result: SchedulerResult) -> None:
        result.last_position = max(result.last_position, batch.last_position)
        for outcome in batch.outcomes:
            if outcome.status == "accepted":
                result.emitted += 1
            elif outcome.status == "duplicate":
                result.duplicates += 1
            else:
                result.rejected += 1
                result.rejections.append(outcome.as_dict())

    def run(self, stop: threading.Event, interval: float = 60.0) -> None:
        """Scan every ``interval`` seconds until ``stop`` is set (errors are logged, retried)."""
        while not stop.is_set():
            started = _time.monotonic()
            try:
                self.run_once()
            except Exception:
                log.exception("overdue_scheduler_failed")
            stop.wait(max(0.0, interval - (_time.monotonic() - started)))
