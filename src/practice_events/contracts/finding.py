"""Contracts of the finding area: inspections and the closed loop of their findings.

Supervision "finds problems, feeds them back and gets them fixed as a closed
loop" (发现问题、反馈问题、整改问题，形成闭环). An *inspection* (督查) of a site
records what was seen; each problem becomes a *finding* whose life runs
through the stages of DESIGN.md §5::

    FOUND → FED_BACK → ACKNOWLEDGED → IN_RECTIFICATION → PENDING_VERIFICATION → CLOSED
              ↕ returned / reassigned (DISPUTED)        ↖ reopened (new cycle) ↙
    any open stage → VOIDED

The loop borrows from the 12345 hotline (sign-for 签收, return 退单 and ruling
审定, extension 延期 asked before the deadline, callback 回访, re-handling 重办)
and from ISO 9001 §10.2 (root cause and plan, independent verification).

Due times are never sent by producers: the finding's SLA policy computes them
from the CloudEvents ``time`` of the event that starts a clock and writes them
into the stored event (documented per type below as "stored with").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    Code,
    EventData,
    Evidence,
    GeoPoint,
    Identifier,
    Text,
    Timestamp,
    contract,
)

FindingSource = Literal[
    "inspection", "house_meeting", "resident_callback", "hotline", "self_check", "supervision"
]
"""Where a finding came from: an inspection (督查), a house meeting (屋场会), a callback
to a resident (回访), the hotline (12345), a unit's own check (自查), or supervision (督办)."""

Severity = Literal["critical", "high", "normal", "low"]
"""How serious a finding is; decides its SLA budgets (critical: a safety problem)."""

ReturnReason = Literal["not_my_jurisdiction", "insufficient_info", "duplicate"]
"""Why a unit returns a finding (退单): not its remit, not enough to act on, already reported."""

VerificationMethod = Literal["onsite", "document", "resident_callback"]
"""How a rectification was checked: on site, on documents, or by calling the resident."""

CallbackAnswer = Literal["yes", "no", "unreachable"]
"""Whether the resident called back was satisfied (or could not be reached)."""

ReopenCause = Literal["verification_failed", "recurrence", "callback_unsatisfied", "new_evidence"]
"""Why a finding is reopened."""

Closure = Literal["fixed_verified", "not_applicable", "duplicate", "merged"]
"""How a finding was closed: fixed and independently verified, or closed without a fix."""

OverdueStage = Literal["acknowledgement", "rectification", "verification"]
"""A stage target with an SLA clock."""

EscalationTarget = Literal["supervisor", "leadership", "public_bulletin"]
"""Who an escalation goes to: the unit's leader, the leadership (督办), or the bulletin (通报)."""

InspectionResult = Literal["pass", "fail", "not_applicable"]
"""The result of one checklist item in an inspection."""

MAX_EVIDENCE = 50
"""At most this many pieces of evidence per event."""

MAX_ITEMS = 100
"""At most this many actions, inspectors or item results per event."""


class Part(BaseModel):
    """Base of the objects nested in event payloads: frozen, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


EvidenceList = Annotated[list[Evidence], Field(max_length=MAX_EVIDENCE)]
"""Evidence kept elsewhere (photos, documents), each with its hash."""


def _not_before(start: datetime | None, end: datetime | None, what: str) -> None:
    """Refuse an interval whose end precedes its start (mapped to OUT_OF_RANGE)."""
    if start is not None and end is not None and end < start:
        raise PydanticCustomError("out_of_range", "{what} ends before it starts", {"what": what})


# --- Inspection ---------------------------------------------------------------------------


class ItemResult(Part):
    """The result of one checklist item seen during an inspection."""

    code: Code = Field(description="The checklist item's code")
    result: InspectionResult = Field(description="pass, fail or not_applicable")
    note: Text | None = Field(default=None, description="What the inspector saw")


@contract
class InspectionConducted(EventData):
    """An inspection (督查) of a site took place (the inspection's first event).

    Inspections are the usual origin of findings: each problem seen becomes a
    ``finding.recorded`` naming this inspection as ``inspection_id``. The
    subject is the inspection id. Inspectors are named by their account ids,
    never by their names.
    """

    TYPE: ClassVar[str] = "practice.finding.inspection_conducted.v1"
    AGGREGATE: ClassVar[str] = "inspection"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"site_id": "site"}

    site_id: Identifier = Field(description="The site inspected")
    inspector_ids: list[Identifier] = Field(
        min_length=1, max_length=MAX_ITEMS, description="Account ids of the inspectors"
    )
    checklist_id: Identifier | None = Field(
        default=None, description="The checklist followed, if any (e.g. the six-haves checklist)"
    )
    checklist_version: int | None = Field(
        default=None, ge=1, le=1_000_000, description="The version of that checklist"
    )
    started_at: Timestamp | None = Field(default=None, description="When the inspection began")
    ended_at: Timestamp | None = Field(default=None, description="When it ended")
    summary: Text = Field(description="What the inspection found overall")
    item_results: list[ItemResult] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Per-item results, if a checklist was used",
    )
    geo: GeoPoint | None = Field(default=None, description="Where the inspectors were")
    evidence: EvidenceList = Field(default_factory=list, description="Photos and documents")

    @model_validator(mode="after")
    def _consistent(self) -> InspectionConducted:
        _not_before(self.started_at, self.ended_at, "the inspection")
        if self.checklist_version is not None and self.checklist_id is None:
            raise PydanticCustomError(
                "value_error", "checklist_version is given without checklist_id"
            )
        return self


# --- Finding: recording and feed-back -------------------------------------------------------


@contract
class FindingRecorded(EventData):
    """A problem was found and recorded (stage FOUND; the finding's first event).

    The subject is the finding id. The responsible unit may be named now or
    at feed-back; a finding cannot be fed back without one. A finding that
    recurs after its reopen window is a *new* finding linked by
    ``related_to``.
    """

    TYPE: ClassVar[str] = "practice.finding.recorded.v1"
    AGGREGATE: ClassVar[str] = "finding"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {
        "site_id": "site",
        "responsible_unit_id": "site",
        "inspection_id": "inspection",
        "related_to": "finding",
    }

    source: FindingSource = Field(description="Where the finding came from")
    site_id: Identifier = Field(description="The site where the problem is")
    severity: Severity = Field(description="critical (safety), high, normal or low")
    category: Code = Field(description="The problem's category from the network's list")
    description: Text = Field(description="What is wrong")
    responsible_unit_id: Identifier | None = Field(
        default=None, description="The unit (a site of the network) that must fix it"
    )
    inspection_id: Identifier | None = Field(
        default=None,
        description="The inspection that found it (required when source is inspection)",
    )
    checklist_item: Code | None = Field(default=None, description="The checklist item not met")
    evidence: EvidenceList = Field(default_factory=list, description="Photos and documents")
    related_to: Identifier | None = Field(
        default=None, description="An earlier finding this one repeats or follows up"
    )
    origin_ref: Identifier | None = Field(
        default=None,
        description="The id of what raised it elsewhere (a house-meeting concern, a hotline call)",
    )

    @model_validator(mode="after")
    def _inspection_named(self) -> FindingRecorded:
        if self.source == "inspection" and self.inspection_id is None:
            raise PydanticCustomError(
                "value_error", "a finding from an inspection must name its inspection_id"
            )
        return self


@contract
class FindingFedBack(EventData):
    """The finding was fed back to the unit responsible for fixing it (反馈; FOUND → FED_BACK).

    The SLA clocks of acknowledgement and rectification start at this
    event's time. Stored with the decisions of the SLA policy:
    ``responsible_unit_id``, ``policy_version``, ``ack_budget``,
    ``ack_due_at``, ``rectify_budget``, ``rectify_due_at``.
    """

    TYPE: ClassVar[str] = "practice.finding.fed_back.v1"
    AGGREGATE: ClassVar[str] = "finding"
    REFERENCES: ClassVar[dict[str, str]] = {"to_unit_id": "site"}

    to_unit_id: Identifier | None = Field(
        default=None,
        description="The responsible unit, when not named at recording (or to name another)",
    )
    channel: Code | None = Field(
        default=None, description="How it was fed back (platform, document, meeting ...)"
    )
    note: Text | None = Field(default=None, description="What the unit is asked to do")


@contract
class FindingAcknowledged(EventData):
    """The responsible unit signed for the finding (签收; FED_BACK → ACKNOWLEDGED).

    Meets the acknowledgement target. Stored with ``ack_due_at`` and
    ``ack_outcome`` (met or met_late).
    """

    TYPE: ClassVar[str] = "practice.finding.acknowledged.v1"
    AGGREGATE: ClassVar[str] = "finding"

    by: Identifier | None = Field(default=None, description="Account id of who signed for it")
    note: Text | None = Field(default=None, description="Anything the unit wants to say")


@contract
class FindingReturned(EventData):
    """The unit returned the finding before acknowledging it (退单; FED_BACK → DISPUTED).

    Only possible before acknowledgement. The acknowledgement clock keeps
    running for the unit until a ruling (``reassigned``) transfers it.
    """

    TYPE: ClassVar[str] = "practice.finding.returned.v1"
    AGGREGATE: ClassVar[str] = "finding"

    reason_code: ReturnReason = Field(description="Why the unit returns it")
    basis: Text = Field(description="The legal basis or the facts behind the return")
    by: Identifier | None = Field(default=None, description="Account id of who returned it")


@contract
class FindingReassigned(EventData):
    """A ruling (审定) assigned a returned finding to a unit (DISPUTED → FED_BACK).

    To a new unit, the SLA clocks restart for it; to the same unit (the
    return was rejected), they keep running from the first feed-back, so that
    returning a finding never hides delay. ``restart_clock`` overrides the
    default either way. Stored with ``clock_restarted`` and, when restarted,
    the new due times as for ``fed_back``.
    """

    TYPE: ClassVar[str] = "practice.finding.reassigned.v1"
    AGGREGATE: ClassVar[str] = "finding"
    REFERENCES: ClassVar[dict[str, str]] = {"to_unit_id": "site"}

    to_unit_id: Identifier = Field(description="The unit that must now handle it")
    ruling_by: Identifier = Field(description="Account id of who made the ruling")
    ruling: Text | None = Field(default=None, description="The reasons of the ruling")
    restart_clock: bool | None = Field(
        default=None,
        description="Restart the SLA clocks (default: only when the unit changes)",
    )


# --- Rectification ------------------------------------------------------------------------


class PlanAction(Part):
    """One action of a rectification plan."""

    description: Text = Field(description="What will be done")
    owner: Identifier = Field(description="Account or unit id of who does it (never a name)")
    due_at: Timestamp = Field(description="When it will be done")


@contract
class RectificationPlanSubmitted(EventData):
    """The unit submitted its rectification plan (ACKNOWLEDGED → IN_RECTIFICATION).

    Required before rectifying a finding of severity high or critical
    (ISO 9001 §10.2: root cause, then action); optional for normal and low.
    A revised plan may be submitted while in rectification.
    """

    TYPE: ClassVar[str] = "practice.finding.rectification_plan_submitted.v1"
    AGGREGATE: ClassVar[str] = "finding"

    root_cause: Text = Field(description="Why the problem happened")
    actions: list[PlanAction] = Field(
        min_length=1, max_length=MAX_ITEMS, description="What will be done, by whom, by when"
    )
    containment: Text | None = Field(
        default=None, description="What was done at once to contain the problem"
    )
    submitted_by: Identifier | None = Field(default=None, description="Account id of the submitter")


@contract
class ExtensionRequested(EventData):
    """The unit asked for more time (延期申请) for the stage in progress.

    Must arrive before the current effective due time of that stage (its
    CloudEvents ``time`` is compared). Stored with ``stage`` and
    ``current_due_at``.
    """

    TYPE: ClassVar[str] = "practice.finding.extension_requested.v1"
    AGGREGATE: ClassVar[str] = "finding"

    requested_due_at: Timestamp = Field(description="The new due time asked for")
    reason: Text = Field(description="Why more time is needed")
    basis: Text | None = Field(default=None, description="Rules or facts supporting the request")
    requested_by: Identifier | None = Field(default=None, description="Account id of the requester")


@contract
class ExtensionGranted(EventData):
    """An approver granted the pending extension: the effective due time moves.

    ``new_due_at`` may differ from what was asked for but must be later than
    the current effective due time. Stored with ``stage`` and
    ``previous_due_at``.
    """

    TYPE: ClassVar[str] = "practice.finding.extension_granted.v1"
    AGGREGATE: ClassVar[str] = "finding"

    approver: Identifier = Field(description="Account id of the approver")
    new_due_at: Timestamp = Field(description="The new effective due time")
    note: Text | None = Field(default=None, description="Conditions of the grant")


@contract
class ExtensionDenied(EventData):
    """An approver denied the pending extension: the due time stays."""

    TYPE: ClassVar[str] = "practice.finding.extension_denied.v1"
    AGGREGATE: ClassVar[str] = "finding"

    approver: Identifier = Field(description="Account id of the approver")
    reason: Text = Field(description="Why it was denied")


@contract
class RectificationReported(EventData):
    """The unit reported the problem fixed, with evidence (整改; → PENDING_VERIFICATION).

    Meets the rectification target and starts the verification clock. From
    ACKNOWLEDGED directly only for severity normal or low. Stored with
    ``cycle``, ``rectify_due_at``, ``rectify_outcome``, ``verify_budget`` and
    ``verify_due_at``.
    """

    TYPE: ClassVar[str] = "practice.finding.rectification_reported.v1"
    AGGREGATE: ClassVar[str] = "finding"

    reported_by: Identifier = Field(description="Account id of who reports it fixed")
    actions_done: list[Text] = Field(
        min_length=1, max_length=MAX_ITEMS, description="What was done"
    )
    evidence: list[Evidence] = Field(
        min_length=1, max_length=MAX_EVIDENCE, description="Proof of the fix (photos, documents)"
    )
    completed_at: Timestamp | None = Field(
        default=None, description="When the work was finished, if earlier than this report"
    )


# --- Verification, callback, reopen ---------------------------------------------------------


@contract
class VerificationPassed(EventData):
    """An independent verifier confirmed the fix (PENDING_VERIFICATION → CLOSED, fixed_verified).

    The verifier may not belong to the responsible unit nor be who reported
    the rectification. Stored with ``closure`` (fixed_verified), ``cycle``,
    ``verify_outcome``, ``closed_on_time`` (the rectification of the last
    cycle met its effective due time) and ``sla_outcomes`` per stage.
    """

    TYPE: ClassVar[str] = "practice.finding.verification_passed.v1"
    AGGREGATE: ClassVar[str] = "finding"
    REFERENCES: ClassVar[dict[str, str]] = {"verifier_unit_id": "site"}

    verifier_id: Identifier = Field(description="Account id of the verifier")
    verifier_unit_id: Identifier = Field(description="The verifier's unit")
    method: VerificationMethod = Field(description="How the fix was checked")
    acceptance_criteria: Text | None = Field(
        default=None, description="What the fix was checked against"
    )
    evidence: EvidenceList = Field(default_factory=list, description="Proof of the check")


@contract
class VerificationFailed(EventData):
    """The verifier found the fix insufficient: the finding is reopened at once.

    Same independence rules as ``verification_passed``. The aggregate also
    emits ``reopened`` (cause verification_failed, explanation = ``reason``)
    starting a new cycle with a shorter rectification deadline. Stored with
    ``cycle`` and ``verify_outcome``.
    """

    TYPE: ClassVar[str] = "practice.finding.verification_failed.v1"
    AGGREGATE: ClassVar[str] = "finding"
    REFERENCES: ClassVar[dict[str, str]] = {"verifier_unit_id": "site"}

    verifier_id: Identifier = Field(description="Account id of the verifier")
    verifier_unit_id: Identifier = Field(description="The verifier's unit")
    reason: Text = Field(description="What is still wrong")
    method: VerificationMethod | None = Field(default=None, description="How it was checked")
    evidence: EvidenceList = Field(default_factory=list, description="Proof of the check")


@contract
class ResidentCallbackRecorded(EventData):
    """A resident was called back about the finding (回访).

    Accepted while pending verification, and after closure within the reopen
    window. An unsatisfied answer attributable to the handler allows a
    reopen with cause callback_unsatisfied; it does not reopen by itself.
    """

    TYPE: ClassVar[str] = "practice.finding.resident_callback_recorded.v1"
    AGGREGATE: ClassVar[str] = "finding"

    satisfied: CallbackAnswer = Field(description="yes, no, or unreachable")
    attributable_to_handler: bool = Field(
        default=False,
        description="True when the dissatisfaction is the handling unit's doing (its own causes)",
    )
    comment: Text | None = Field(default=None, description="What the resident said")
    by: Identifier | None = Field(default=None, description="Account id of who called")

    @model_validator(mode="after")
    def _attributable_only_if_unsatisfied(self) -> ResidentCallbackRecorded:
        if self.attributable_to_handler and self.satisfied != "no":
            raise PydanticCustomError(
                "value_error", "attributable_to_handler can only be true when satisfied is no"
            )
        return self


@contract
class FindingReopened(EventData):
    """A closed finding was reopened (重办; CLOSED → IN_RECTIFICATION, new cycle).

    Allowed within the reopen window after a fixed_verified closure (default
    90 days), with an explanation. The aggregate emits it itself after a
    failed verification. Stored with ``cycle``, ``reopen_count``,
    ``rectify_budget`` (a share of the original, default 50%, at least 1) and
    ``rectify_due_at``. Later recurrences are new findings (``related_to``).
    """

    TYPE: ClassVar[str] = "practice.finding.reopened.v1"
    AGGREGATE: ClassVar[str] = "finding"

    cause: ReopenCause = Field(description="Why it is reopened")
    explanation: Text = Field(description="What is wrong again, in words the unit can act on")
    evidence: EvidenceList = Field(default_factory=list, description="Proof of the recurrence")


@contract
class FindingClosed(EventData):
    """The finding was closed without a fix (not applicable, a duplicate, merged).

    Allowed from FOUND, FED_BACK, ACKNOWLEDGED or DISPUTED, with an approver.
    A fixed_verified closure happens only through ``verification_passed``.
    duplicate and merged name the finding kept as ``related_finding_id``.
    """

    TYPE: ClassVar[str] = "practice.finding.closed.v1"
    AGGREGATE: ClassVar[str] = "finding"
    REFERENCES: ClassVar[dict[str, str]] = {"related_finding_id": "finding"}

    closure: Closure = Field(description="How it is closed")
    approver: Identifier = Field(description="Account id of who approved the closure")
    reason: Text = Field(description="Why it is closed")
    related_finding_id: Identifier | None = Field(
        default=None, description="The finding this one duplicates or was merged into"
    )

    @model_validator(mode="after")
    def _related_named(self) -> FindingClosed:
        if self.closure in ("duplicate", "merged") and self.related_finding_id is None:
            raise PydanticCustomError(
                "value_error",
                "a {closure} closure must name the finding kept as related_finding_id",
                {"closure": self.closure},
            )
        return self


@contract
class FindingVoided(EventData):
    """The finding was recorded in error and is voided (VOIDED, terminal).

    Allowed from any open stage, with a reason and an approver. Nothing is
    deleted: the history stays, marked void.
    """

    TYPE: ClassVar[str] = "practice.finding.voided.v1"
    AGGREGATE: ClassVar[str] = "finding"

    reason: Text = Field(description="Why the record is void")
    approver: Identifier = Field(description="Account id of who approved the voiding")


# --- Emitted by practice-events itself ------------------------------------------------------


@contract
class FindingOverdue(EventData):
    """A stage target passed its effective due time unmet (system event).

    Emitted by the SLA scheduler at most once per (stage, due time); a
    granted extension gives a new due time that can be overdue again.
    Stored with ``cycle``.
    """

    TYPE: ClassVar[str] = "practice.finding.overdue.v1"
    AGGREGATE: ClassVar[str] = "finding"
    SYSTEM: ClassVar[bool] = True

    stage: OverdueStage = Field(description="The stage whose target is overdue")
    due_at: Timestamp = Field(description="The effective due time that passed")


@contract
class FindingEscalated(EventData):
    """An overdue finding was escalated (督办, system event).

    Levels follow the SLA policy's ladder (default: 1 working day after the
    due time → 1, 5 → 2, 15 → 3) and only go up, per stage and cycle; the
    stage must be overdue at the event's time. Stored with ``cycle`` and
    ``due_at``.
    """

    TYPE: ClassVar[str] = "practice.finding.escalated.v1"
    AGGREGATE: ClassVar[str] = "finding"
    SYSTEM: ClassVar[bool] = True

    stage: OverdueStage = Field(description="The overdue stage escalated")
    level: int = Field(ge=1, le=3, description="1 unit leader, 2 supervision (督办), 3 public")
    to: EscalationTarget | None = Field(default=None, description="Who it is escalated to")
    reason: Text | None = Field(default=None, description="Why (e.g. 5 working days overdue)")
