"""Contracts of the attendance area: check-in/out, service hours and points.

Every event here names a *volunteer* (``subject`` = the volunteer number):
the volunteer aggregate is the ledger of that person's sessions, hours and
points, so that "one open session at a time", "hours approved once" and "no
redemption beyond the balance" hold in one consistency boundary. Officials
doing the dual service use the same events.

A session's life::

    checked_in ─┬─ checked_out ──────────▶ hours_credited (pending)
                └─ checkout_auto_closed ─▶ hours_credited (pending; a late
                                           checked_out replaces it)
    hours_recorded (back-fill 补录) ─────▶ hours_credited (pending)

    pending ── hours_approved ─▶ approved (+ points_awarded, star_level_attained)
    pending | approved ── hours_rejected ─▶ rejected (+ points_reversed if approved)
    approved ── hours_corrected ─▶ approved (+ points_awarded | points_reversed)

Hours are credited in completed quarter hours (15-minute units, rounded
down): a session of 1 h 14 min earns 1.0 h, 1 h 15 min earns 1.25 h. Hours
are never edited in place: ``hours_corrected`` adds a signed delta to
approved hours. ``hours_credited``, ``points_awarded`` and
``points_reversed`` are emitted by practice-events itself (``SYSTEM``); their
schemas document what the ledgers read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    EventData,
    Evidence,
    GeoPoint,
    Identifier,
    Text,
    Timestamp,
    contract,
)

CheckInMethod = Literal["qr", "kiosk", "face", "gps", "manual"]
"""How presence was established: QR code, kiosk, face recognition, geofence, or by staff."""

ParticipantKind = Literal["volunteer", "official"]
"""Whether the person served as an ordinary volunteer or as an official (双服务)."""

AutoCloseRule = Literal["shift_end", "midnight", "default_duration"]
"""Why a missed check-out was closed: shift end, local midnight, or a default length."""

CreditBasis = Literal["checkin_checkout", "auto_closed", "manual"]
"""Where credited hours come from: a check-out, an auto-close, or a back-fill (补录)."""

QuarterHours = Annotated[float, Field(ge=0, le=24, multiple_of=0.25, allow_inf_nan=False)]
"""Hours of one session in quarter-hour units: 0, 0.25 ... 24."""

DeltaHours = Annotated[float, Field(ge=-24, le=24, multiple_of=0.25, allow_inf_nan=False)]
"""A signed correction in quarter-hour units, -24 .. 24, never 0."""

PositivePoints = Annotated[int, Field(gt=0, le=1_000_000)]
"""A positive number of points."""

MAX_SESSION = timedelta(hours=24)
"""The longest session that can be credited."""

MAX_EVIDENCE = 50
"""At most this many pieces of evidence for a back-filled session."""


@contract
class CheckedIn(EventData):
    """A volunteer checked in at a site: a session opened (the CloudEvents time is the check-in).

    A volunteer has at most one open session: checking in while one is open is
    refused, naming it, until it is checked out or auto-closed. Session ids are
    the producer's and are unique per volunteer. Suspended and archived
    volunteers cannot check in. ``participant_kind`` defaults to ``official``
    for officials and ``volunteer`` otherwise (stored filled in); only officials
    may check in as ``official``.
    """

    TYPE: ClassVar[str] = "practice.attendance.checked_in.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    REFERENCES: ClassVar[dict[str, str]] = {"site_id": "site", "activity_id": "activity"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "S-20240304-0001",
                    "site_id": "WLY-ZHAN-07",
                    "method": "qr",
                    "geo": {"lat": 29.345, "lon": 110.548, "accuracy_m": 12},
                }
            ]
        }
    )

    session_id: Identifier = Field(
        description="The producer's id of this session, unique per volunteer."
    )
    site_id: Identifier = Field(description="Where the volunteer checked in.")
    activity_id: Identifier | None = Field(
        default=None, description="The planned activity served, if any (must exist)."
    )
    method: CheckInMethod = Field(description="How presence was established.")
    geo: GeoPoint | None = Field(default=None, description="Where the device was, if known.")
    participant_kind: ParticipantKind | None = Field(
        default=None, description="volunteer or official; defaults from the volunteer's record."
    )


@contract
class CheckedOut(EventData):
    """A volunteer checked out: the open session closed (the CloudEvents time is the check-out).

    practice-events then credits the session's hours (``hours_credited``,
    pending approval) in completed quarter hours. Refused with OUT_OF_RANGE if
    the check-out is before the check-in or more than 24 h after it (close such
    a session with ``checkout_auto_closed`` instead), and with RULE_VIOLATION if
    the session is unknown or already closed. A late check-out of a session
    that was auto-closed replaces the auto-closed credit while that credit is
    still pending; once approved, use ``hours_corrected``.
    """

    TYPE: ClassVar[str] = "practice.attendance.checked_out.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"session_id": "S-20240304-0001", "method": "qr"}]}
    )

    session_id: Identifier = Field(description="The session being closed.")
    method: CheckInMethod | None = Field(default=None, description="How the check-out was taken.")
    geo: GeoPoint | None = Field(default=None, description="Where the device was, if known.")


@contract
class CheckoutAutoClosed(EventData):
    """A missed check-out was closed by rule, crediting the session up to ``credited_until``.

    Sent by the check-in system's scheduler (visible and overridable, not a
    silent fix): ``shift_end`` credits to the end of the shift, ``midnight`` to
    the local midnight ending the check-in day (network time zone), and
    ``default_duration`` to check-in plus the activity's default length.
    ``credited_until`` must lie between the check-in and 24 h after it (and
    under ``midnight``, not after that midnight). A later ``checked_out`` of the
    same session replaces the credit while it is pending.
    """

    TYPE: ClassVar[str] = "practice.attendance.checkout_auto_closed.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "S-20240304-0001",
                    "rule": "midnight",
                    "credited_until": "2024-03-05T00:00:00+08:00",
                }
            ]
        }
    )

    session_id: Identifier = Field(description="The open session being closed.")
    rule: AutoCloseRule = Field(description="The rule that closed it.")
    credited_until: Timestamp = Field(description="The end time credited, RFC 3339 with offset.")


@contract
class HoursRecorded(EventData):
    """Service without a check-in was back-filled (补录) with evidence; credited pending approval.

    For service the check-in app missed (no phone, no signal, paper sign-in
    sheets). The session must end after it starts, last at most 24 h and not
    end after the event's time; its id must be new for the volunteer. The
    hours are credited like a checked-out session and wait for approval, where
    the evidence is reviewed.
    """

    TYPE: ClassVar[str] = "practice.attendance.hours_recorded.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    REFERENCES: ClassVar[dict[str, str]] = {"site_id": "site", "activity_id": "activity"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "BF-2024-0031",
                    "site_id": "WLY-ZHAN-07",
                    "started_at": "2024-03-02T08:30:00+08:00",
                    "ended_at": "2024-03-02T11:30:00+08:00",
                    "evidence": [{"uri": "https://files.example.cn/signin/2024-03-02.jpg"}],
                    "reason": "纸质签到表补录",
                }
            ]
        }
    )

    session_id: Identifier = Field(description="A new session id for this volunteer.")
    site_id: Identifier = Field(description="Where the service took place.")
    activity_id: Identifier | None = Field(
        default=None, description="The planned activity served, if any (must exist)."
    )
    started_at: Timestamp = Field(description="When the service started.")
    ended_at: Timestamp = Field(description="When it ended: after started_at, at most 24 h later.")
    evidence: list[Evidence] = Field(
        min_length=1, max_length=MAX_EVIDENCE, description="Sign-in sheets, photos ... (1 to 50)."
    )
    reason: Text | None = Field(default=None, description="Why the check-in was missed.")
    participant_kind: ParticipantKind | None = Field(
        default=None, description="volunteer or official; defaults from the volunteer's record."
    )

    @model_validator(mode="after")
    def _duration(self) -> HoursRecorded:
        if self.ended_at <= self.started_at:
            raise PydanticCustomError("out_of_range", "ended_at must be after started_at")
        if self.ended_at - self.started_at > MAX_SESSION:
            raise PydanticCustomError(
                "out_of_range", "a back-filled session lasts at most 24 hours"
            )
        return self


@contract
class HoursApproved(EventData):
    """The hours credited for a session were approved; points follow (``points_awarded``).

    Allowed once, on a pending credit. The approver may not be the volunteer
    (volunteers do not approve their own hours). Stored with the approved
    ``hours`` filled in.
    """

    TYPE: ClassVar[str] = "practice.attendance.hours_approved.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"session_id": "S-20240304-0001", "approver": "STAFF-0012"}]
        }
    )

    session_id: Identifier = Field(description="The session whose credit is approved.")
    approver: Identifier = Field(description="Staff number of the person approving.")


@contract
class HoursRejected(EventData):
    """The hours credited for a session were rejected (declined); they never count.

    Allowed on a pending or an approved credit. Rejecting approved hours
    reverses the points awarded for them (``points_reversed``), even if that
    leaves the balance below zero; a level once attained stays.
    """

    TYPE: ClassVar[str] = "practice.attendance.hours_rejected.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "S-20240304-0001",
                    "reason": "签到地点与活动地点不符",
                    "approver": "STAFF-0012",
                }
            ]
        }
    )

    session_id: Identifier = Field(description="The session whose credit is rejected.")
    reason: Text = Field(description="Why (shown to the volunteer).")
    approver: Identifier = Field(description="Staff number of the person rejecting.")


@contract
class HoursCorrected(EventData):
    """Approved hours of a session were corrected by a signed delta; points follow.

    Hours are never edited in place: the correction is a new fact with its
    reason and approver. Only approved hours can be corrected (a pending
    credit is approved or rejected instead), in quarter hours, and the
    session's resulting hours must stay within 0..24.
    """

    TYPE: ClassVar[str] = "practice.attendance.hours_corrected.v1"
    AGGREGATE: ClassVar[str] = "volunteer"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "S-20240304-0001",
                    "delta_hours": -0.5,
                    "reason": "扣除往返路程时间",
                    "approver": "STAFF-0012",
                }
            ]
        }
    )

    session_id: Identifier = Field(description="The session whose approved hours change.")
    delta_hours: DeltaHours = Field(description="Hours added (positive) or removed (negative).")
    reason: Text = Field(description="Why the hours change.")
    approver: Identifier = Field(description="Staff number of the person correcting.")

    @model_validator(mode="after")
    def _non_zero(self) -> HoursCorrected:
        if self.delta_hours == 0:
            raise PydanticCustomError("out_of_range", "delta_hours must not be 0")
        return self


@contract
class HoursCredited(EventData):
    """Hours of a closed session were credited, pending approval (emitted by practice-events).

    Follows ``checked_out``, ``checkout_auto_closed`` or ``hours_recorded``.
    ``hours`` are the session's completed quarter hours. When a late
    check-out replaces an auto-closed credit, a second credit for the same
    session carries ``supersedes_hours``: ledgers keep the latest credit per
    session.
    """

    TYPE: ClassVar[str] = "practice.attendance.hours_credited.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    SYSTEM: ClassVar[bool] = True

    session_id: Identifier = Field(description="The session credited.")
    site_id: Identifier = Field(description="Where the service took place.")
    activity_id: Identifier | None = Field(default=None, description="The activity, if any.")
    participant_kind: ParticipantKind = Field(description="volunteer or official.")
    started_at: Timestamp = Field(description="Start of the credited time.")
    ended_at: Timestamp = Field(description="End of the credited time.")
    hours: QuarterHours = Field(description="Credited hours, completed quarter hours.")
    basis: CreditBasis = Field(description="Where the hours come from.")
    status: Literal["pending"] = Field(description="Credits start pending approval.")
    supersedes_hours: QuarterHours | None = Field(
        default=None, description="The earlier pending credit of this session that this replaces."
    )


@contract
class PointsAwarded(EventData):
    """Points were awarded for approved hours (emitted by practice-events).

    Follows ``hours_approved`` or a positive ``hours_corrected``. The points of
    a session are ``round_half_up(hours × rate)`` under the points rule in force
    when the session was approved (its version is written here, so a later
    rule never changes past awards); an award is the difference between that
    and what the session already earned.
    """

    TYPE: ClassVar[str] = "practice.attendance.points_awarded.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    SYSTEM: ClassVar[bool] = True

    session_id: Identifier = Field(description="The session the points are for.")
    points: PositivePoints = Field(description="Points added to the balance.")
    hours: QuarterHours = Field(description="The session's approved hours after this award.")
    rate: float = Field(gt=0, description="Points per approved hour.")
    rule_version: Identifier = Field(description="The points rule applied.")
    cause: Literal["approval", "correction"] = Field(description="What triggered the award.")


@contract
class PointsReversed(EventData):
    """Points awarded for a session were taken back (emitted by practice-events).

    Follows ``hours_rejected`` on approved hours (all the session's points) or
    a negative ``hours_corrected`` (the difference). May leave the balance
    below zero; redemptions are then refused until it recovers.
    """

    TYPE: ClassVar[str] = "practice.attendance.points_reversed.v1"
    AGGREGATE: ClassVar[str] = "volunteer"
    SYSTEM: ClassVar[bool] = True

    session_id: Identifier = Field(description="The session whose points are reversed.")
    points: PositivePoints = Field(description="Points taken from the balance.")
    hours: QuarterHours = Field(description="The session's approved hours after this reversal.")
    rule_version: Identifier = Field(description="The points rule the session was awarded under.")
    cause: Literal["rejection", "correction"] = Field(description="What triggered the reversal.")
