"""Inspections and the closed loop of their findings (DESIGN.md §5, research §(b)).

A :class:`Finding` moves through its *stage*::

    FOUND ─fed back─▶ FED_BACK ─acknowledged─▶ ACKNOWLEDGED ─plan─▶ IN_RECTIFICATION
                        │  ▲ reassigned            │ (normal/low:      │ rectification reported
              returned  ▼  │                       │  report directly) ▼
                      DISPUTED                     └──────────▶ PENDING_VERIFICATION
                                      verification failed → reopened ─┘   │ verification passed
                                      (new cycle, IN_RECTIFICATION)       ▼
     any open stage ─voided─▶ VOIDED                                     CLOSED
     FOUND/FED_BACK/ACKNOWLEDGED/DISPUTED ─closed (not fixed)─▶ CLOSED   │ reopened (≤ 90 days)
                                                                         ▼ IN_RECTIFICATION

and, separately, three SLA clocks (acknowledgement, rectification,
verification; see :mod:`practice_events.domain.sla`) on the working-day
calendar (:mod:`practice_events.domain.calendar`).

Choices this module makes, so that readers need not guess:

* **Ruling and the clock.** A return (退单) does not stop the acknowledgement
  clock. A ruling (``reassigned``) to a *different* unit restarts both
  clocks for that unit, from the ruling's time; a ruling that keeps the
  same unit leaves them running from the first feed-back, so ping-pong never
  hides delay. ``restart_clock`` in the ruling overrides either default.
* **Extensions** apply to the rectification stage (ACKNOWLEDGED,
  IN_RECTIFICATION) and the verification stage (PENDING_VERIFICATION), never
  to acknowledgement: signing for a finding needs no extra time. One request
  may be pending at a time; meeting the stage's target drops it.
* **Met or late** is decided against the effective due time at the
  CloudEvents ``time`` of the event meeting the target (a back-dated
  ``completed_at`` does not make a late report on time) and written into
  that event.
* **Verification failed** emits ``verification_failed`` *and* a derived
  ``reopened`` (cause verification_failed), so every new cycle starts with a
  ``reopened`` event whatever caused it.
* **Reopen budget**: ``SlaPolicy.reopen_ratio`` (50%) of the *original*
  rectification budget (from the feed-back), rounded down, at least 1 of the
  same unit (1 working day; 1 hour for the calendar-hour budget of critical
  findings). Every reopened cycle gets that budget, counted from the reopen.
* **Reopen from CLOSED** only after a fixed_verified closure and within the
  reopen window (from the closing event's time); a finding closed without a
  fix, or past the window, is followed up by a new finding (``related_to``).
  ``callback_unsatisfied`` needs a recorded callback answered "no" and
  attributable to the handler.
* **Closed on time** (``verification_passed``) means the last cycle's
  rectification met its effective due time.
* **Escalation** levels only go up, per stage and cycle, and need the stage's
  clock to be overdue at the escalation's time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from practice_events.domain.base import (
    DomainContext,
    Meta,
    PracticeAggregate,
    derived_meta,
    parse_time,
)
from practice_events.domain.calendar import WorkingCalendar, load_calendar
from practice_events.domain.sla import (
    STAGES,
    Budget,
    SlaPolicy,
    SlaStatus,
    Stage,
    clock_status,
    is_running,
    new_clock,
    outcome,
)
from practice_events.errors import DomainError

__all__ = ["Finding", "Inspection", "services"]

FOUND = "FOUND"
FED_BACK = "FED_BACK"
DISPUTED = "DISPUTED"
ACKNOWLEDGED = "ACKNOWLEDGED"
IN_RECTIFICATION = "IN_RECTIFICATION"
PENDING_VERIFICATION = "PENDING_VERIFICATION"
CLOSED = "CLOSED"
VOIDED = "VOIDED"

OPEN_STAGES = frozenset(
    {FOUND, FED_BACK, DISPUTED, ACKNOWLEDGED, IN_RECTIFICATION, PENDING_VERIFICATION}
)
"""Stages from which a finding can still be voided or become overdue."""

CLOSABLE_WITHOUT_FIX = frozenset({FOUND, FED_BACK, ACKNOWLEDGED, DISPUTED})
"""Stages from which ``closed`` (not_applicable, duplicate, merged) is allowed."""

EXTENDABLE: Mapping[str, Stage] = {
    ACKNOWLEDGED: "rectification",
    IN_RECTIFICATION: "rectification",
    PENDING_VERIFICATION: "verification",
}
"""Stage of the finding → the SLA stage an extension request applies to."""

PLAN_REQUIRED = frozenset({"critical", "high"})
"""Severities that need a rectification plan before a rectification report."""

REOPENED_TYPE = "practice.finding.reopened.v1"


def _time(meta: Mapping[str, Any]) -> datetime:
    """The CloudEvents time of the event being handled."""
    return parse_time(str(meta["time"]))


def _overdue_key(stage: str, due_at: datetime) -> str:
    """Normalise (stage, due time) so that offsets spelled differently match."""
    return f"{stage}@{due_at.astimezone(UTC).isoformat()}"


class Inspection(PracticeAggregate):
    """An inspection (督查) of a site: who inspected, what they saw.

    Findings name it as their origin; it changes no more after it is recorded.
    """

    TOPIC = "practice.aggregate.inspection"
    KIND = "inspection"
    CREATED_BY = "practice.finding.inspection_conducted.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {}

    if TYPE_CHECKING:
        site_id: str
        inspector_ids: list[str]
        conducted_at: str

    class Created(PracticeAggregate.Created):
        """The inspection took place."""

        TOPIC = "practice.finding.inspection_conducted.v1"

        def init(self, aggregate: Inspection) -> None:
            """Remember the site, the inspectors and when it was recorded."""
            aggregate.site_id = self.data["site_id"]
            aggregate.inspector_ids = list(self.data["inspector_ids"])
            aggregate.conducted_at = self.data.get("started_at") or self.meta["time"]


class Finding(PracticeAggregate):
    """A problem found at a site, followed until it is fixed and verified (the closed loop).

    Command methods check every rule first and raise with a reason the
    producer can act on; only then do they emit events carrying the
    decisions taken (due times, outcomes, cycles). Apply methods only copy
    those decisions into state. Query methods (``sla_status``,
    ``overdue_checks`` ...) take the time to evaluate at, so projections and
    the scheduler can ask "as of" any moment.
    """

    TOPIC = "practice.aggregate.finding"
    KIND = "finding"
    CREATED_BY = "practice.finding.recorded.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.finding.fed_back.v1": "feed_back",
        "practice.finding.acknowledged.v1": "acknowledge",
        "practice.finding.returned.v1": "return_finding",
        "practice.finding.reassigned.v1": "reassign",
        "practice.finding.rectification_plan_submitted.v1": "submit_plan",
        "practice.finding.extension_requested.v1": "request_extension",
        "practice.finding.extension_granted.v1": "grant_extension",
        "practice.finding.extension_denied.v1": "deny_extension",
        "practice.finding.rectification_reported.v1": "report_rectification",
        "practice.finding.verification_passed.v1": "pass_verification",
        "practice.finding.verification_failed.v1": "fail_verification",
        "practice.finding.resident_callback_recorded.v1": "record_callback",
        "practice.finding.reopened.v1": "reopen",
        "practice.finding.closed.v1": "close",
        "practice.finding.voided.v1": "void",
        "practice.finding.overdue.v1": "mark_overdue",
        "practice.finding.escalated.v1": "escalate",
    }

    if TYPE_CHECKING:
        stage: str
        source: str
        site_id: str
        severity: str
        category: str
        responsible_unit_id: str | None
        inspection_id: str | None
        related_to: str | None
        recorded_at: str
        cycle: int
        reopen_count: int
        return_count: int
        plan_count: int
        callback_count: int
        policy_version: str | None
        rectify_budget: str | None
        clocks: dict[str, dict[str, Any]]
        pending_extension: dict[str, Any] | None
        reported_by: str | None
        closure: str | None
        closed_at: str | None
        last_callback: dict[str, Any] | None
        overdue_marked: dict[str, str]
        escalations: dict[str, int]

    # --- Events -----------------------------------------------------------------------------

    class Created(PracticeAggregate.Created):
        """The finding was recorded (FOUND)."""

        TOPIC = "practice.finding.recorded.v1"

        def init(self, aggregate: Finding) -> None:
            """Set what was found and empty clocks."""
            d = self.data
            aggregate.stage = FOUND
            aggregate.source = d["source"]
            aggregate.site_id = d["site_id"]
            aggregate.severity = d["severity"]
            aggregate.category = d["category"]
            aggregate.responsible_unit_id = d.get("responsible_unit_id")
            aggregate.inspection_id = d.get("inspection_id")
            aggregate.related_to = d.get("related_to")
            aggregate.recorded_at = self.meta["time"]
            aggregate.cycle = 1
            aggregate.reopen_count = 0
            aggregate.return_count = 0
            aggregate.plan_count = 0
            aggregate.callback_count = 0
            aggregate.policy_version = None
            aggregate.rectify_budget = None
            aggregate.clocks = {}
            aggregate.pending_extension = None
            aggregate.reported_by = None
            aggregate.closure = None
            aggregate.closed_at = None
            aggregate.last_callback = None
            aggregate.overdue_marked = {}
            aggregate.escalations = {}

    class FedBack(PracticeAggregate.Event):
        """The finding was fed back to its responsible unit; two clocks start."""

        TOPIC = "practice.finding.fed_back.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move to FED_BACK and start the acknowledgement and rectification clocks."""
            aggregate.stage = FED_BACK
            aggregate.responsible_unit_id = self.data["responsible_unit_id"]
            aggregate._start_clocks(self.data, self.meta["time"])

    class Acknowledged(PracticeAggregate.Event):
        """The unit signed for the finding."""

        TOPIC = "practice.finding.acknowledged.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move to ACKNOWLEDGED; the acknowledgement clock is met."""
            aggregate.stage = ACKNOWLEDGED
            aggregate._meet("acknowledgement", self.meta["time"], self.data["ack_outcome"])

    class Returned(PracticeAggregate.Event):
        """The unit returned the finding before acknowledging it."""

        TOPIC = "practice.finding.returned.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move to DISPUTED; the acknowledgement clock keeps running."""
            aggregate.stage = DISPUTED
            aggregate.return_count = self.data["return_count"]

    class Reassigned(PracticeAggregate.Event):
        """A ruling assigned the returned finding to a unit."""

        TOPIC = "practice.finding.reassigned.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move back to FED_BACK with the ruled unit; restart the clocks if ruled so."""
            aggregate.stage = FED_BACK
            aggregate.responsible_unit_id = self.data["to_unit_id"]
            if self.data["clock_restarted"]:
                aggregate._start_clocks(self.data, self.meta["time"])

    class PlanSubmitted(PracticeAggregate.Event):
        """A rectification plan was submitted."""

        TOPIC = "practice.finding.rectification_plan_submitted.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move to IN_RECTIFICATION (a revised plan stays there)."""
            aggregate.stage = IN_RECTIFICATION
            aggregate.plan_count += 1

    class ExtensionRequested(PracticeAggregate.Event):
        """The unit asked for more time for the stage in progress."""

        TOPIC = "practice.finding.extension_requested.v1"

        def apply(self, aggregate: Finding) -> None:
            """Remember the pending request."""
            aggregate.pending_extension = {
                "stage": self.data["stage"],
                "requested_due_at": self.data["requested_due_at"],
                "requested_at": self.meta["time"],
            }

    class ExtensionGranted(PracticeAggregate.Event):
        """The pending extension was granted."""

        TOPIC = "practice.finding.extension_granted.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move the stage's effective due time."""
            clock = aggregate.clocks[self.data["stage"]]
            clock["due_at"] = self.data["new_due_at"]
            clock["extensions"] += 1
            aggregate.pending_extension = None

    class ExtensionDenied(PracticeAggregate.Event):
        """The pending extension was denied."""

        TOPIC = "practice.finding.extension_denied.v1"

        def apply(self, aggregate: Finding) -> None:
            """Drop the pending request; the due time stays."""
            aggregate.pending_extension = None

    class RectificationReported(PracticeAggregate.Event):
        """The unit reported the problem fixed."""

        TOPIC = "practice.finding.rectification_reported.v1"

        def apply(self, aggregate: Finding) -> None:
            """Meet the rectification clock, start the verification clock."""
            d = self.data
            aggregate.stage = PENDING_VERIFICATION
            aggregate._meet("rectification", self.meta["time"], d["rectify_outcome"])
            aggregate.clocks["verification"] = new_clock(
                self.meta["time"], d["verify_due_at"], d["verify_budget"]
            )
            aggregate.escalations.pop("verification", None)
            aggregate.reported_by = d["reported_by"]
            aggregate.pending_extension = None

    class VerificationPassed(PracticeAggregate.Event):
        """An independent verifier confirmed the fix: closed, fixed_verified."""

        TOPIC = "practice.finding.verification_passed.v1"

        def apply(self, aggregate: Finding) -> None:
            """Meet the verification clock and close."""
            aggregate._meet("verification", self.meta["time"], self.data["verify_outcome"])
            aggregate.stage = CLOSED
            aggregate.closure = "fixed_verified"
            aggregate.closed_at = self.meta["time"]
            aggregate.last_callback = None
            aggregate.pending_extension = None

    class VerificationFailed(PracticeAggregate.Event):
        """The verifier found the fix insufficient (a ``reopened`` follows)."""

        TOPIC = "practice.finding.verification_failed.v1"

        def apply(self, aggregate: Finding) -> None:
            """Meet the verification clock; the following ``reopened`` moves the stage."""
            aggregate._meet("verification", self.meta["time"], self.data["verify_outcome"])
            aggregate.pending_extension = None

    class CallbackRecorded(PracticeAggregate.Event):
        """A resident was called back."""

        TOPIC = "practice.finding.resident_callback_recorded.v1"

        def apply(self, aggregate: Finding) -> None:
            """Remember the latest answer (a reopen for dissatisfaction needs it)."""
            aggregate.callback_count += 1
            aggregate.last_callback = {
                "satisfied": self.data["satisfied"],
                "attributable_to_handler": self.data.get("attributable_to_handler", False),
                "at": self.meta["time"],
            }

    class Reopened(PracticeAggregate.Event):
        """The finding was reopened: a new cycle with a shorter rectification deadline."""

        TOPIC = "practice.finding.reopened.v1"

        def apply(self, aggregate: Finding) -> None:
            """Back to IN_RECTIFICATION with a new rectification clock; verification not started."""
            d = self.data
            aggregate.stage = IN_RECTIFICATION
            aggregate.cycle = d["cycle"]
            aggregate.reopen_count = d["reopen_count"]
            aggregate.clocks["rectification"] = new_clock(
                self.meta["time"], d["rectify_due_at"], d["rectify_budget"]
            )
            aggregate.clocks.pop("verification", None)
            aggregate.escalations.pop("rectification", None)
            aggregate.escalations.pop("verification", None)
            aggregate.closure = None
            aggregate.closed_at = None
            aggregate.reported_by = None
            aggregate.last_callback = None
            aggregate.pending_extension = None

    class Closed(PracticeAggregate.Event):
        """The finding was closed without a fix."""

        TOPIC = "practice.finding.closed.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move to CLOSED; clocks not met are cancelled."""
            aggregate.stage = CLOSED
            aggregate.closure = self.data["closure"]
            aggregate.closed_at = self.meta["time"]
            aggregate._cancel_clocks()

    class Voided(PracticeAggregate.Event):
        """The finding was voided."""

        TOPIC = "practice.finding.voided.v1"

        def apply(self, aggregate: Finding) -> None:
            """Move to VOIDED; clocks not met are cancelled."""
            aggregate.stage = VOIDED
            aggregate._cancel_clocks()

    class Overdue(PracticeAggregate.Event):
        """A stage target passed its due time (system event)."""

        TOPIC = "practice.finding.overdue.v1"

        def apply(self, aggregate: Finding) -> None:
            """Remember the (stage, due time) pair so it is never marked twice."""
            key = _overdue_key(self.data["stage"], parse_time(self.data["due_at"]))
            aggregate.overdue_marked[key] = self.meta["time"]

    class Escalated(PracticeAggregate.Event):
        """An overdue finding was escalated (system event)."""

        TOPIC = "practice.finding.escalated.v1"

        def apply(self, aggregate: Finding) -> None:
            """Raise the stage's escalation level."""
            aggregate.escalations[self.data["stage"]] = self.data["level"]

    # --- State helpers used by apply methods ----------------------------------------------

    def _start_clocks(self, data: Mapping[str, Any], started_at: str) -> None:
        self.policy_version = data["policy_version"]
        self.rectify_budget = data["rectify_budget"]
        self.clocks["acknowledgement"] = new_clock(
            started_at, data["ack_due_at"], data["ack_budget"]
        )
        self.clocks["rectification"] = new_clock(
            started_at, data["rectify_due_at"], data["rectify_budget"]
        )
        self.escalations.pop("acknowledgement", None)
        self.escalations.pop("rectification", None)

    def _meet(self, stage: str, at: str, result: str) -> None:
        clock = self.clocks[stage]
        clock["met_at"] = at
        clock["outcome"] = result

    def _cancel_clocks(self) -> None:
        for clock in self.clocks.values():
            if clock["outcome"] is None:
                clock["cancelled"] = True
        self.pending_extension = None

    def _emit(
        self,
        event_class: type[PracticeAggregate.Event],
        data: Mapping[str, Any],
        meta: Mapping[str, Any],
    ) -> None:
        self.emit(event_class, data, cast("Meta", meta))

    # --- Rule helpers -----------------------------------------------------------------------

    def _require(self, stages: frozenset[str] | set[str], doing: str) -> None:
        """Refuse (ILLEGAL_TRANSITION) unless the finding is in one of ``stages``."""
        if self.stage not in stages:
            allowed = ", ".join(sorted(stages))
            self.refuse(f"cannot {doing} while {self.stage}; allowed only in {allowed}")

    def _require_open(self, doing: str) -> None:
        if self.stage == CLOSED:
            self.refuse(f"cannot {doing}: the finding is CLOSED ({self.closure})")
        if self.stage == VOIDED:
            self.refuse(f"cannot {doing}: the finding is VOIDED")

    def _rule(self, reason: str, code: str | None = None) -> DomainError:
        return DomainError(f"{self.KIND} {self.subject}: {reason}", code=code)

    def _clock_decisions(
        self, start: datetime, calendar: WorkingCalendar, policy: SlaPolicy
    ) -> dict[str, Any]:
        """Due times of acknowledgement and rectification from ``start`` (written into events)."""
        ack = policy.budget(self.severity, "acknowledgement")
        rectify = policy.budget(self.severity, "rectification")
        return {
            "policy_version": policy.version,
            "ack_budget": str(ack),
            "ack_due_at": ack.due(start, calendar).isoformat(),
            "rectify_budget": str(rectify),
            "rectify_due_at": rectify.due(start, calendar).isoformat(),
        }

    def _check_verifier(self, data: Mapping[str, Any]) -> None:
        """The verifier is independent: not of the responsible unit, not the reporter."""
        if data["verifier_unit_id"] == self.responsible_unit_id:
            msg = (
                f"the verifier's unit {data['verifier_unit_id']} is the responsible unit; "
                "verification must be done by someone outside it"
            )
            raise self._rule(msg)
        if data["verifier_id"] == self.reported_by:
            msg = (
                f"{data['verifier_id']} reported the rectification and cannot verify it; "
                "ask an independent verifier"
            )
            raise self._rule(msg)

    def _reopen_decisions(
        self, when: datetime, calendar: WorkingCalendar, policy: SlaPolicy
    ) -> dict[str, Any]:
        """Cycle, budget and due time of a reopened cycle (written into ``reopened``)."""
        original = (
            Budget.parse(self.rectify_budget)
            if self.rectify_budget
            else policy.budget(self.severity, "rectification")
        )
        budget = policy.reopen_budget(original)
        return {
            "cycle": self.cycle + 1,
            "reopen_count": self.reopen_count + 1,
            "policy_version": policy.version,
            "rectify_budget": str(budget),
            "rectify_due_at": budget.due(when, calendar).isoformat(),
        }

    def _within_window(self, when: datetime, policy: SlaPolicy, doing: str) -> None:
        assert self.closed_at is not None
        closed = parse_time(self.closed_at)
        if when < closed:
            msg = f"cannot {doing} at {when.isoformat()}, before the closure at {self.closed_at}"
            raise self._rule(msg, code="OUT_OF_RANGE")
        if when - closed > policy.reopen_window:
            msg = (
                f"cannot {doing}: the reopen window of {policy.reopen_window.days} days after the "
                f"closure at {self.closed_at} has passed; record a new finding with related_to"
            )
            raise self._rule(msg)

    # --- Commands ---------------------------------------------------------------------------

    def feed_back(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Feed the finding back to its responsible unit; the policy sets the due times."""
        self._require(frozenset({FOUND}), "feed back")
        unit = data.get("to_unit_id") or self.responsible_unit_id
        if unit is None:
            msg = (
                "cannot feed back without a responsible unit: name responsible_unit_id when "
                "recording the finding or to_unit_id in the feed-back"
            )
            raise self._rule(msg)
        calendar, policy = _sla(ctx)
        decisions = self._clock_decisions(_time(meta), calendar, policy)
        self._emit(self.FedBack, {**data, "responsible_unit_id": unit, **decisions}, meta)

    def acknowledge(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Sign for the finding; records whether that met the acknowledgement due time."""
        if self.stage == DISPUTED:
            self.refuse("cannot acknowledge a returned finding: a ruling (reassigned) comes first")
        self._require(frozenset({FED_BACK}), "acknowledge")
        clock = self.clocks["acknowledgement"]
        result = outcome(_time(meta), parse_time(clock["due_at"]))
        self._emit(
            self.Acknowledged,
            {**data, "ack_due_at": clock["due_at"], "ack_outcome": result},
            meta,
        )

    def return_finding(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Return the finding (退单); only before acknowledgement."""
        if self.stage == DISPUTED:
            self.refuse("is already returned and awaits a ruling (reassigned)")
        if self.stage in (ACKNOWLEDGED, IN_RECTIFICATION, PENDING_VERIFICATION):
            self.refuse(f"returns are allowed only before acknowledgement; it is {self.stage}")
        self._require(frozenset({FED_BACK}), "return")
        self._emit(
            self.Returned,
            {
                **data,
                "responsible_unit_id": self.responsible_unit_id,
                "return_count": self.return_count + 1,
            },
            meta,
        )

    def reassign(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Rule on a returned finding: assign it to a unit (DISPUTED → FED_BACK)."""
        self._require(frozenset({DISPUTED}), "reassign (only a returned finding is ruled on)")
        restart = data.get("restart_clock")
        if restart is None:
            restart = data["to_unit_id"] != self.responsible_unit_id
        enriched = {**data, "from_unit_id": self.responsible_unit_id, "clock_restarted": restart}
        if restart:
            calendar, policy = _sla(ctx)
            enriched.update(self._clock_decisions(_time(meta), calendar, policy))
        self._emit(self.Reassigned, enriched, meta)

    def submit_plan(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Submit (or revise) the rectification plan."""
        self._require(frozenset({ACKNOWLEDGED, IN_RECTIFICATION}), "submit a rectification plan")
        self._emit(
            self.PlanSubmitted, {**data, "cycle": self.cycle, "plan_no": self.plan_count + 1}, meta
        )

    def request_extension(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Ask for more time for the stage in progress, before its effective due time."""
        self._require_open("request an extension")
        stage = EXTENDABLE.get(self.stage)
        if stage is None:
            self.refuse(
                f"no extension can be asked while {self.stage}: extensions apply to "
                "rectification (after acknowledgement) and verification"
            )
        assert stage is not None
        if self.pending_extension is not None:
            self.refuse(
                f"an extension request made at {self.pending_extension['requested_at']} is "
                "still pending; wait for it to be granted or denied"
            )
        clock = self.clocks[stage]
        due = parse_time(clock["due_at"])
        when = _time(meta)
        if when >= due:
            msg = (
                f"the extension was asked at {when.isoformat()}, not before the {stage} due time "
                f"{clock['due_at']}; extensions must be asked before the deadline"
            )
            raise self._rule(msg)
        if parse_time(data["requested_due_at"]) <= due:
            msg = (
                f"requested_due_at {data['requested_due_at']} is not later than the current "
                f"{stage} due time {clock['due_at']}"
            )
            raise self._rule(msg, code="OUT_OF_RANGE")
        self._emit(
            self.ExtensionRequested,
            {**data, "stage": stage, "current_due_at": clock["due_at"]},
            meta,
        )

    def _pending(self, doing: str) -> dict[str, Any]:
        self._require_open(doing)
        pending = self.pending_extension
        if pending is None:
            self.refuse(f"cannot {doing}: no extension request is pending")
        assert pending is not None
        return pending

    def grant_extension(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Grant the pending extension; the new due time must be later than the current."""
        pending = self._pending("grant an extension")
        stage = pending["stage"]
        current = self.clocks[stage]["due_at"]
        if parse_time(data["new_due_at"]) <= parse_time(current):
            msg = (
                f"new_due_at {data['new_due_at']} is not later than the current {stage} "
                f"due time {current}"
            )
            raise self._rule(msg, code="OUT_OF_RANGE")
        self._emit(
            self.ExtensionGranted,
            {
                **data,
                "stage": stage,
                "previous_due_at": current,
                "requested_due_at": pending["requested_due_at"],
            },
            meta,
        )

    def deny_extension(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Deny the pending extension; the due time stays."""
        pending = self._pending("deny an extension")
        self._emit(
            self.ExtensionDenied,
            {**data, "stage": pending["stage"], "due_at": self.clocks[pending["stage"]]["due_at"]},
            meta,
        )

    def report_rectification(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Report the problem fixed; starts the verification clock."""
        if self.stage == ACKNOWLEDGED and self.severity in PLAN_REQUIRED:
            msg = (
                f"a rectification plan (root cause and actions) is required before reporting "
                f"the rectification of a {self.severity} finding"
            )
            raise self._rule(msg)
        self._require(frozenset({ACKNOWLEDGED, IN_RECTIFICATION}), "report a rectification")
        when = _time(meta)
        completed = data.get("completed_at")
        if completed is not None and parse_time(completed) > when:
            msg = f"completed_at {completed} is later than the report itself ({meta['time']})"
            raise self._rule(msg, code="OUT_OF_RANGE")
        calendar, policy = _sla(ctx)
        rectify = self.clocks["rectification"]
        verify = policy.budget(self.severity, "verification")
        self._emit(
            self.RectificationReported,
            {
                **data,
                "cycle": self.cycle,
                "rectify_due_at": rectify["due_at"],
                "rectify_outcome": outcome(when, parse_time(rectify["due_at"])),
                "policy_version": policy.version,
                "verify_budget": str(verify),
                "verify_due_at": verify.due(when, calendar).isoformat(),
            },
            meta,
        )

    def pass_verification(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Close the finding as fixed_verified, by an independent verifier."""
        self._require(frozenset({PENDING_VERIFICATION}), "pass verification")
        self._check_verifier(data)
        when = _time(meta)
        verify = self.clocks["verification"]
        verify_outcome = outcome(when, parse_time(verify["due_at"]))
        outcomes: dict[str, Any] = {
            stage: self.clocks[stage]["outcome"] for stage in ("acknowledgement", "rectification")
        }
        outcomes["verification"] = verify_outcome
        self._emit(
            self.VerificationPassed,
            {
                **data,
                "closure": "fixed_verified",
                "cycle": self.cycle,
                "reopen_count": self.reopen_count,
                "verify_due_at": verify["due_at"],
                "verify_outcome": verify_outcome,
                "rectify_due_at": self.clocks["rectification"]["due_at"],
                "closed_on_time": outcomes["rectification"] == "met",
                "sla_outcomes": outcomes,
            },
            meta,
        )

    def fail_verification(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Refuse the fix; the finding is reopened at once with a new, shorter cycle."""
        self._require(frozenset({PENDING_VERIFICATION}), "fail verification")
        self._check_verifier(data)
        when = _time(meta)
        calendar, policy = _sla(ctx)
        verify = self.clocks["verification"]
        reopened = {
            "cause": "verification_failed",
            "explanation": data["reason"],
            **self._reopen_decisions(when, calendar, policy),
        }
        if data.get("evidence"):
            reopened["evidence"] = data["evidence"]
        self._emit(
            self.VerificationFailed,
            {
                **data,
                "cycle": self.cycle,
                "verify_due_at": verify["due_at"],
                "verify_outcome": outcome(when, parse_time(verify["due_at"])),
            },
            meta,
        )
        self._emit(self.Reopened, reopened, derived_meta(meta, REOPENED_TYPE))

    def record_callback(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Record a callback to the resident (pending verification, or closed within the window)."""
        if self.stage == CLOSED:
            _, policy = _sla(ctx)
            self._within_window(_time(meta), policy, "record a callback")
        else:
            self._require(frozenset({PENDING_VERIFICATION, CLOSED}), "record a resident callback")
        self._emit(
            self.CallbackRecorded,
            {**data, "cycle": self.cycle, "callback_no": self.callback_count + 1},
            meta,
        )

    def reopen(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Reopen a fixed and verified finding within the reopen window (new, shorter cycle)."""
        if data["cause"] == "verification_failed":
            msg = (
                "cause verification_failed is recorded by sending verification_failed while "
                "the finding is pending verification, not by reopening it"
            )
            raise self._rule(msg)
        if self.stage == PENDING_VERIFICATION:
            self.refuse("is pending verification: send verification_failed to reopen it")
        self._require(frozenset({CLOSED}), "reopen")
        if self.closure != "fixed_verified":
            msg = (
                f"was closed as {self.closure}, without a fix, and cannot be reopened; "
                "record a new finding with related_to"
            )
            raise self._rule(msg)
        when = _time(meta)
        calendar, policy = _sla(ctx)
        self._within_window(when, policy, "reopen")
        if data["cause"] == "callback_unsatisfied":
            answer = self.last_callback
            if (
                answer is None
                or answer["satisfied"] != "no"
                or not answer["attributable_to_handler"]
            ):
                msg = (
                    "cause callback_unsatisfied needs a resident callback answered no and "
                    "attributable to the handler since the closure"
                )
                raise self._rule(msg)
        self._emit(self.Reopened, {**data, **self._reopen_decisions(when, calendar, policy)}, meta)

    def close(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Close without a fix (not_applicable, duplicate, merged), before rectification."""
        if data["closure"] == "fixed_verified":
            msg = "a fixed_verified closure happens only through verification_passed"
            raise self._rule(msg)
        self._require_open("close")
        self._require(CLOSABLE_WITHOUT_FIX, f"close as {data['closure']}")
        if data.get("related_finding_id") == self.subject:
            msg = "related_finding_id names this finding itself"
            raise self._rule(msg)
        self._emit(self.Closed, {**data, "from_stage": self.stage, "cycle": self.cycle}, meta)

    def void(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Void a finding recorded in error (any open stage); nothing is deleted."""
        self._require_open("void")
        self._emit(self.Voided, {**data, "from_stage": self.stage, "cycle": self.cycle}, meta)

    def mark_overdue(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Record that a stage target passed its effective due time (scheduler; once per pair)."""
        stage = data["stage"]
        due = parse_time(data["due_at"])
        self._require_open(f"mark {stage} overdue")
        if _overdue_key(stage, due) in self.overdue_marked:
            self.refuse(f"{stage} due at {data['due_at']} is already marked overdue")
        clock = self.clocks.get(stage)
        if clock is None:
            self.refuse(f"has no {stage} clock yet; it cannot be overdue")
        assert clock is not None
        if clock["outcome"] is not None:
            self.refuse(f"the {stage} target was already met ({clock['outcome']})")
        if clock["cancelled"]:
            self.refuse(f"the {stage} clock was cancelled")
        if due != parse_time(clock["due_at"]):
            self.refuse(
                f"{data['due_at']} is not the effective {stage} due time ({clock['due_at']})"
            )
        if _time(meta) <= due:
            msg = f"{stage} is not overdue at {meta['time']}: it is due at {clock['due_at']}"
            raise self._rule(msg, code="OUT_OF_RANGE")
        self._emit(self.Overdue, {**data, "cycle": self.cycle}, meta)

    def escalate(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Escalate an overdue stage (scheduler); levels only go up."""
        stage = data["stage"]
        level = data["level"]
        self._require_open(f"escalate {stage}")
        clock = self.clocks.get(stage)
        if not is_running(clock) or clock_status(clock, _time(meta)) != "breached":
            self.refuse(f"the {stage} target is not overdue at {meta['time']}")
        assert clock is not None
        current = self.escalations.get(stage, 0)
        if level <= current:
            self.refuse(f"{stage} is already escalated to level {current}")
        self._emit(self.Escalated, {**data, "cycle": self.cycle, "due_at": clock["due_at"]}, meta)

    # --- Queries ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True unless the finding is CLOSED or VOIDED."""
        return self.stage in OPEN_STAGES

    def effective_due_at(self, stage: str) -> datetime | None:
        """Return the stage's effective due time (after extensions), or None if not started."""
        clock = self.clocks.get(stage)
        return None if clock is None else parse_time(clock["due_at"])

    def sla_status(self, stage: str, now: datetime) -> SlaStatus:
        """Return the status of the stage's clock at ``now`` (running, met, breached ...)."""
        if stage not in STAGES:
            msg = f"unknown SLA stage {stage!r}; expected one of {', '.join(STAGES)}"
            raise ValueError(msg)
        return clock_status(self.clocks.get(stage), now)

    def overdue_checks(self, now: datetime) -> list[tuple[Stage, datetime]]:
        """Return (stage, due time) pairs overdue at ``now`` and not yet marked overdue.

        The scheduler sends one ``overdue`` per pair through :meth:`mark_overdue`.
        """
        if not self.is_open:
            return []
        due: list[tuple[Stage, datetime]] = []
        for stage in STAGES:
            clock = self.clocks.get(stage)
            if not is_running(clock):
                continue
            assert clock is not None
            due_at = parse_time(clock["due_at"])
            if now > due_at and _overdue_key(stage, due_at) not in self.overdue_marked:
                due.append((stage, due_at))
        return due

    def overdue_working_days(
        self, now: datetime, calendar: WorkingCalendar, stage: str | None = None
    ) -> int:
        """Return how many working days after its due time an unmet clock is at ``now``.

        For one ``stage``, or the most overdue one when ``stage`` is None; 0
        when nothing is overdue (or the finding is closed or voided).
        """
        if not self.is_open:
            return 0
        worst = 0
        for name in STAGES if stage is None else (stage,):
            clock = self.clocks.get(name)
            if is_running(clock) and clock_status(clock, now) == "breached":
                assert clock is not None
                days = calendar.working_days_between(parse_time(clock["due_at"]), now)
                worst = max(worst, days)
        return worst

    def escalation_checks(
        self, now: datetime, calendar: WorkingCalendar, policy: SlaPolicy
    ) -> list[tuple[Stage, int]]:
        """Return (stage, level) escalations due at ``now`` by the policy's ladder."""
        if not self.is_open:
            return []
        due: list[tuple[Stage, int]] = []
        for stage in STAGES:
            days = self.overdue_working_days(now, calendar, stage)
            if days <= 0:
                continue
            level = policy.escalation_level(days)
            if level > self.escalations.get(stage, 0):
                due.append((stage, level))
        return due


def _sla(ctx: DomainContext) -> tuple[WorkingCalendar, SlaPolicy]:
    calendar: WorkingCalendar = ctx.service("calendar")
    policy: SlaPolicy = ctx.service("sla")
    return calendar, policy


def services(config: Mapping[str, Any]) -> dict[str, Any]:
    """Build the working calendar and the SLA policy from the domain config.

    ``config["calendar_file"]`` names a TOML calendar (default: the built-in
    one); ``config["timezone"]`` is the network's zone (default Asia/Shanghai).
    """
    tz = config.get("timezone") or "Asia/Shanghai"
    calendar = load_calendar(config.get("calendar_file"), tz)
    return {"calendar": calendar, "sla": SlaPolicy()}
