"""Volunteers and teams: the volunteer aggregate is also the ledger of hours and points.

One volunteer (subject = the unified volunteer number) holds everything that
must be consistent for that person: the open session (at most one), the
session ids used, the credits of each session (pending → approved or
rejected, corrected by deltas), the points balance and the star levels
attained. Keeping them in one aggregate makes every rule an O(1) check on
in-memory state, and Kafka keys by subject keep one volunteer's events in
order. Officials doing the dual check-in (双报到) are volunteers with
``is_official``; their sessions and hours use the same events.

Rules of the attendance area (hours of a session, auto-close limits, points,
star thresholds) live in :mod:`practice_events.domain.attendance`; the
decisions taken with them are written into the emitted events.

Teams are a separate, small aggregate (kind ``team``): membership is recorded
on the volunteer, so joining a team never contends with other members.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, cast

from practice_events.domain.attendance import (
    MAX_SESSION,
    MAX_SESSION_HOURS,
    STAR_RULE_VERSION,
    AttendancePolicy,
    PointsRule,
    credited_hours,
    levels_reached,
    points_at,
)
from practice_events.domain.base import (
    NAMESPACE,
    DomainContext,
    Meta,
    PracticeAggregate,
    derived_meta,
    format_time,
    parse_time,
)
from practice_events.errors import DomainError, IllegalTransitionError

# CloudEvents types handled or emitted here (the contracts hold the same names).
REGISTERED = "practice.volunteer.registered.v1"
STATUS_CHANGED = "practice.volunteer.status_changed.v1"
SKILLS_UPDATED = "practice.volunteer.skills_updated.v1"
JOINED_TEAM = "practice.volunteer.joined_team.v1"
LEFT_TEAM = "practice.volunteer.left_team.v1"
TRAINING_COMPLETED = "practice.volunteer.training_completed.v1"
INSURANCE_RECORDED = "practice.volunteer.insurance_recorded.v1"
REPORTED_TO_COMMUNITY = "practice.volunteer.official_reported_to_community.v1"
REPORTED_TO_POST = "practice.volunteer.official_reported_to_post.v1"
QUOTA_SET = "practice.volunteer.official_quota_set.v1"
POINTS_REDEEMED = "practice.volunteer.points_redeemed.v1"
STAR_LEVEL_ATTAINED = "practice.volunteer.star_level_attained.v1"
TEAM_REGISTERED = "practice.volunteer.team_registered.v1"
CHECKED_IN = "practice.attendance.checked_in.v1"
CHECKED_OUT = "practice.attendance.checked_out.v1"
AUTO_CLOSED = "practice.attendance.checkout_auto_closed.v1"
HOURS_RECORDED = "practice.attendance.hours_recorded.v1"
HOURS_CREDITED = "practice.attendance.hours_credited.v1"
HOURS_APPROVED = "practice.attendance.hours_approved.v1"
HOURS_REJECTED = "practice.attendance.hours_rejected.v1"
HOURS_CORRECTED = "practice.attendance.hours_corrected.v1"
POINTS_AWARDED = "practice.attendance.points_awarded.v1"
POINTS_REVERSED = "practice.attendance.points_reversed.v1"
PERSONAL_DETAILS_RECORDED = "practice.volunteer.personal_details_recorded.v1"
PERSONAL_DATA_ERASED = "practice.volunteer.personal_data_erased.v1"

PERSONAL_FIELDS = ("name", "phone", "id_number")
"""Fields that must never reach the aggregate in clear (the pipeline seals them)."""

ACTIVE = "active"


def services(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the collaborators of this area for ``DomainContext.services``.

    ``points`` is the points rule (10 points per approved hour, version
    ``qufu-10-per-hour-v1``); ``attendance`` holds the network's time zone for
    local days (auto-close at midnight, the year of an official's report).
    """
    return {
        "points": PointsRule(),
        "attendance": AttendancePolicy.for_timezone(config.get("timezone")),
    }


@dataclass(slots=True)
class Session:
    """What a volunteer's ledger remembers of one session.

    ``closed_by`` is None while open, then ``checked_out``, ``auto_closed`` or
    ``recorded`` (back-filled). ``credit`` is ``none`` (open), ``pending``,
    ``approved`` or ``rejected``; ``hours`` are the credited hours while
    pending and the approved hours once approved. ``rate`` and
    ``rule_version`` are those of the points rule at approval, ``points`` the
    net points the session has earned so far.
    """

    session_id: str
    site_id: str
    activity_id: str | None
    participant_kind: str
    started_at: datetime
    ended_at: datetime | None = None
    closed_by: str | None = None
    credit: str = "none"
    hours: float = 0.0
    rate: float = 0.0
    rule_version: str = ""
    points: int = 0


class Volunteer(PracticeAggregate):
    """A registered volunteer (or official) and the ledger of their hours and points.

    Invariants: one open session at a time; session ids unique per
    volunteer; only active volunteers check in or join teams; hours are
    approved once and corrected only when approved; a redemption never takes
    the balance below zero; official-only events are refused for others;
    star levels are attained once each.
    """

    TOPIC = "practice.aggregate.volunteer"
    KIND = "volunteer"
    CREATED_BY = REGISTERED
    HANDLES: ClassVar[Mapping[str, str]] = {
        STATUS_CHANGED: "change_status",
        SKILLS_UPDATED: "update_skills",
        JOINED_TEAM: "join_team",
        LEFT_TEAM: "leave_team",
        TRAINING_COMPLETED: "complete_training",
        INSURANCE_RECORDED: "record_insurance",
        REPORTED_TO_COMMUNITY: "report_to_community",
        REPORTED_TO_POST: "report_to_post",
        QUOTA_SET: "set_quota",
        POINTS_REDEEMED: "redeem_points",
        CHECKED_IN: "check_in",
        CHECKED_OUT: "check_out",
        AUTO_CLOSED: "close_checkout_automatically",
        HOURS_RECORDED: "record_hours",
        HOURS_APPROVED: "approve_hours",
        HOURS_REJECTED: "reject_hours",
        HOURS_CORRECTED: "correct_hours",
        PERSONAL_DETAILS_RECORDED: "record_personal_details",
        PERSONAL_DATA_ERASED: "erase_personal_data",
    }

    def __init__(self) -> None:
        """Declare the state with empty values; ``Created.init`` fills in the profile.

        The library calls this (without arguments) before applying the
        creation event, so every attribute exists, typed, on every volunteer.
        """
        self.home_site_id: str = ""
        self.skills: list[str] = []
        self.is_official: bool = False
        self.home_unit_id: str | None = None
        self.status: str = ACTIVE
        self.teams: dict[str, str | None] = {}
        self.trainings: dict[str, tuple[str, str | None]] = {}
        self.insurance: list[tuple[date, date]] = []
        self.community_reports: dict[int, str] = {}
        self.post_reports: dict[int, str] = {}
        self.quotas: dict[int, float] = {}
        self.sessions: dict[str, Session] = {}
        self._open: str | None = None
        self._latest_end: datetime | None = None
        self._approved = 0.0
        self._pending = 0.0
        self._awarded = 0
        self._reversed = 0
        self._redeemed = 0
        self._stars = 0
        self.personal_key_id: str | None = None
        self.personal_erasures = 0

    # --- events: registration and profile -------------------------------------------

    class Created(PracticeAggregate.Created):
        """``registered``: the volunteer's profile and an empty ledger."""

        TOPIC = REGISTERED

        def init(self, aggregate: Any) -> None:
            """Set the profile from the registration and start an empty ledger."""
            v: Volunteer = aggregate
            d = self.data
            v.home_site_id = d["home_site_id"]
            v.skills = list(d.get("skills", ()))
            v.is_official = bool(d.get("is_official", False))
            v.home_unit_id = d.get("home_unit_id")
            v.status = ACTIVE

    class StatusChanged(PracticeAggregate.Event):
        """``status_changed``."""

        TOPIC = STATUS_CHANGED

        def apply(self, aggregate: Any) -> None:
            """Take the new status."""
            aggregate.status = self.data["status"]

    class SkillsUpdated(PracticeAggregate.Event):
        """``skills_updated``: the list replaces the old one."""

        TOPIC = SKILLS_UPDATED

        def apply(self, aggregate: Any) -> None:
            """Replace the skills."""
            aggregate.skills = list(self.data["skills"])

    class JoinedTeam(PracticeAggregate.Event):
        """``joined_team``."""

        TOPIC = JOINED_TEAM

        def apply(self, aggregate: Any) -> None:
            """Add the team (with the role, if given)."""
            aggregate.teams[self.data["team_id"]] = self.data.get("role")

    class LeftTeam(PracticeAggregate.Event):
        """``left_team``."""

        TOPIC = LEFT_TEAM

        def apply(self, aggregate: Any) -> None:
            """Remove the team."""
            del aggregate.teams[self.data["team_id"]]

    class TrainingCompleted(PracticeAggregate.Event):
        """``training_completed``: the latest completion of each course is kept."""

        TOPIC = TRAINING_COMPLETED

        def apply(self, aggregate: Any) -> None:
            """Remember the completion time and expiry of the course."""
            aggregate.trainings[self.data["course_id"]] = (
                self.meta["time"],
                self.data.get("expires_on"),
            )

    class InsuranceRecorded(PracticeAggregate.Event):
        """``insurance_recorded``."""

        TOPIC = INSURANCE_RECORDED

        def apply(self, aggregate: Any) -> None:
            """Add the coverage window."""
            aggregate.insurance.append(
                (
                    date.fromisoformat(self.data["covered_from"]),
                    date.fromisoformat(self.data["covered_to"]),
                )
            )

    class ReportedToCommunity(PracticeAggregate.Event):
        """``official_reported_to_community`` (stored with the local ``year``)."""

        TOPIC = REPORTED_TO_COMMUNITY

        def apply(self, aggregate: Any) -> None:
            """Remember the community reported to in that year."""
            aggregate.community_reports[self.data["year"]] = self.data["community_site_id"]

    class ReportedToPost(PracticeAggregate.Event):
        """``official_reported_to_post`` (stored with the local ``year``)."""

        TOPIC = REPORTED_TO_POST

        def apply(self, aggregate: Any) -> None:
            """Remember the post reported to in that year."""
            aggregate.post_reports[self.data["year"]] = self.data["post_site_id"]

    class QuotaSet(PracticeAggregate.Event):
        """``official_quota_set``: replaces the quota of that year."""

        TOPIC = QUOTA_SET

        def apply(self, aggregate: Any) -> None:
            """Set the year's quota."""
            aggregate.quotas[self.data["year"]] = float(self.data["required_hours"])

    class PointsRedeemed(PracticeAggregate.Event):
        """``points_redeemed`` (stored with ``balance_after``)."""

        TOPIC = POINTS_REDEEMED

        def apply(self, aggregate: Any) -> None:
            """Spend the points."""
            aggregate._redeemed += int(self.data["points"])

    class StarLevelAttained(PracticeAggregate.Event):
        """``star_level_attained`` (system)."""

        TOPIC = STAR_LEVEL_ATTAINED

        def apply(self, aggregate: Any) -> None:
            """Remember the highest level attained."""
            v: Volunteer = aggregate
            v._stars = max(v._stars, int(self.data["level"]))

    class PersonalDetailsRecorded(PracticeAggregate.Event):
        """``personal_details_recorded``: stored sealed (ciphertext and key id only)."""

        TOPIC = PERSONAL_DETAILS_RECORDED

        def apply(self, aggregate: Any) -> None:
            """Remember which key seals the current details."""
            aggregate.personal_key_id = self.data["sealed"]["key_id"]

    class PersonalDataErased(PracticeAggregate.Event):
        """``personal_data_erased`` (system): the keys were destroyed."""

        TOPIC = PERSONAL_DATA_ERASED

        def apply(self, aggregate: Any) -> None:
            """Forget the key: the details it sealed are gone."""
            aggregate.personal_key_id = None
            aggregate.personal_erasures += 1

    # --- events: attendance and hours -------------------------------------------------

    class CheckedIn(PracticeAggregate.Event):
        """``checked_in`` (stored with ``participant_kind`` filled in)."""

        TOPIC = CHECKED_IN

        def apply(self, aggregate: Any) -> None:
            """Open the session."""
            v: Volunteer = aggregate
            d = self.data
            session = Session(
                session_id=d["session_id"],
                site_id=d["site_id"],
                activity_id=d.get("activity_id"),
                participant_kind=d["participant_kind"],
                started_at=parse_time(self.meta["time"]),
            )
            v.sessions[session.session_id] = session
            v._open = session.session_id

    class CheckedOut(PracticeAggregate.Event):
        """``checked_out`` (stored with ``overrides_auto_close`` when it replaces one)."""

        TOPIC = CHECKED_OUT

        def apply(self, aggregate: Any) -> None:
            """Close the session at the check-out time."""
            aggregate._close(self.data["session_id"], parse_time(self.meta["time"]), "checked_out")

    class CheckoutAutoClosed(PracticeAggregate.Event):
        """``checkout_auto_closed``."""

        TOPIC = AUTO_CLOSED

        def apply(self, aggregate: Any) -> None:
            """Close the session at ``credited_until``."""
            until = parse_time(self.data["credited_until"])
            aggregate._close(self.data["session_id"], until, "auto_closed")

    class HoursRecorded(PracticeAggregate.Event):
        """``hours_recorded`` (stored with ``participant_kind`` filled in)."""

        TOPIC = HOURS_RECORDED

        def apply(self, aggregate: Any) -> None:
            """Add the back-filled session, already closed."""
            v: Volunteer = aggregate
            d = self.data
            ended_at = parse_time(d["ended_at"])
            v.sessions[d["session_id"]] = Session(
                session_id=d["session_id"],
                site_id=d["site_id"],
                activity_id=d.get("activity_id"),
                participant_kind=d["participant_kind"],
                started_at=parse_time(d["started_at"]),
                ended_at=ended_at,
                closed_by="recorded",
            )
            if v._latest_end is None or ended_at > v._latest_end:
                v._latest_end = ended_at

    class HoursCredited(PracticeAggregate.Event):
        """``hours_credited`` (system): the session's credit becomes pending."""

        TOPIC = HOURS_CREDITED

        def apply(self, aggregate: Any) -> None:
            """Set the pending credit (replacing an earlier pending one)."""
            v: Volunteer = aggregate
            session = v.sessions[self.data["session_id"]]
            if session.credit == "pending":
                v._pending -= session.hours
            session.credit = "pending"
            session.hours = float(self.data["hours"])
            v._pending += session.hours

    class HoursApproved(PracticeAggregate.Event):
        """``hours_approved`` (stored with ``hours``, ``points_rate``, ``points_rule_version``)."""

        TOPIC = HOURS_APPROVED

        def apply(self, aggregate: Any) -> None:
            """Move the session's hours from pending to approved; fix its points rule."""
            v: Volunteer = aggregate
            session = v.sessions[self.data["session_id"]]
            v._pending -= session.hours
            v._approved += session.hours
            session.credit = "approved"
            session.rate = float(self.data["points_rate"])
            session.rule_version = self.data["points_rule_version"]

    class HoursRejected(PracticeAggregate.Event):
        """``hours_rejected`` (stored with ``hours`` and ``previous_status``)."""

        TOPIC = HOURS_REJECTED

        def apply(self, aggregate: Any) -> None:
            """Take the session's hours out of pending or approved."""
            v: Volunteer = aggregate
            session = v.sessions[self.data["session_id"]]
            if session.credit == "approved":
                v._approved -= session.hours
            else:
                v._pending -= session.hours
            session.credit = "rejected"

    class HoursCorrected(PracticeAggregate.Event):
        """``hours_corrected`` (stored with ``hours_before`` and ``hours_after``)."""

        TOPIC = HOURS_CORRECTED

        def apply(self, aggregate: Any) -> None:
            """Change the session's approved hours by the delta."""
            v: Volunteer = aggregate
            session = v.sessions[self.data["session_id"]]
            after = float(self.data["hours_after"])
            v._approved += after - session.hours
            session.hours = after

    class PointsAwarded(PracticeAggregate.Event):
        """``points_awarded`` (system)."""

        TOPIC = POINTS_AWARDED

        def apply(self, aggregate: Any) -> None:
            """Add the points to the session and the balance."""
            v: Volunteer = aggregate
            points = int(self.data["points"])
            v.sessions[self.data["session_id"]].points += points
            v._awarded += points

    class PointsReversed(PracticeAggregate.Event):
        """``points_reversed`` (system)."""

        TOPIC = POINTS_REVERSED

        def apply(self, aggregate: Any) -> None:
            """Take the points from the session and the balance."""
            v: Volunteer = aggregate
            points = int(self.data["points"])
            v.sessions[self.data["session_id"]].points -= points
            v._reversed += points

    # --- queries (used by projections, ledgers and tests) ----------------------------

    def approved_hours(self) -> float:
        """Return the approved service hours (net of rejections and corrections)."""
        return self._approved

    def pending_hours(self) -> float:
        """Return the credited hours still waiting for approval."""
        return self._pending

    def points_balance(self) -> int:
        """Return points awarded − reversed − redeemed (below zero only after reversals)."""
        return self._awarded - self._reversed - self._redeemed

    def star_level(self) -> int:
        """Return the highest star level attained (0 … 5)."""
        return self._stars

    def open_session(self) -> str | None:
        """Return the id of the open session, or None."""
        return self._open

    def session(self, session_id: str) -> Session | None:
        """Return what the ledger knows of a session (read it; do not change it)."""
        return self.sessions.get(session_id)

    def quota(self, year: int) -> float | None:
        """Return an official's required hours for ``year``, if set."""
        return self.quotas.get(year)

    def insured_on(self, day: date) -> bool:
        """Tell whether a recorded insurance window covers ``day``."""
        return any(start <= day <= end for start, end in self.insurance)

    # --- commands: profile -------------------------------------------------------------

    def change_status(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Change the status; refused if it already has that status."""
        if data["status"] == self.status:
            raise self._illegal(f"is already {self.status}")
        self._emit(self.StatusChanged, data, meta)

    def update_skills(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Replace the skills (always accepted: the list is the full new set)."""
        self._emit(self.SkillsUpdated, data, meta)

    def join_team(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Join a team; refused for inactive volunteers and existing members."""
        self._require_active("join a team")
        if data["team_id"] in self.teams:
            raise self._illegal(f"is already a member of team {data['team_id']}")
        self._emit(self.JoinedTeam, data, meta)

    def leave_team(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Leave a team; refused if not a member."""
        if data["team_id"] not in self.teams:
            raise self._illegal(f"is not a member of team {data['team_id']}")
        self._emit(self.LeftTeam, data, meta)

    def complete_training(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Record a training; refused (OUT_OF_RANGE) if it expires by the completion day."""
        expires_on = data.get("expires_on")
        if expires_on is not None:
            policy: AttendancePolicy = ctx.service("attendance")
            completed_on = policy.local_date(parse_time(meta["time"]))
            if date.fromisoformat(expires_on) <= completed_on:
                raise self._out_of_range(
                    f"training {data['course_id']} expires on {expires_on}, not after its "
                    f"completion on {completed_on.isoformat()}"
                )
        self._emit(self.TrainingCompleted, data, meta)

    def record_insurance(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Record an insurance coverage window (checked by the contract)."""
        self._emit(self.InsuranceRecorded, data, meta)

    def report_to_community(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Record an official's report to a community, once per community and year."""
        year = self._check_report(
            "community", self.community_reports, data["community_site_id"], meta, ctx
        )
        self._emit(self.ReportedToCommunity, {**data, "year": year}, meta)

    def report_to_post(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Record an official's report to a service post, once per post and year."""
        year = self._check_report("post", self.post_reports, data["post_site_id"], meta, ctx)
        self._emit(self.ReportedToPost, {**data, "year": year}, meta)

    def set_quota(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Set an official's annual quota of hours; refused for non-officials."""
        self._require_official("have an annual quota of service hours")
        self._emit(self.QuotaSet, data, meta)

    def redeem_points(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Spend points; refused (RULE_VIOLATION) beyond the balance."""
        points = int(data["points"])
        balance = self.points_balance()
        if points > balance:
            raise self._violation(
                f"cannot redeem {points} points: the balance is {balance}",
                balance=balance,
            )
        self._emit(self.PointsRedeemed, {**data, "balance_after": balance - points}, meta)

    def record_personal_details(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Record sealed personal details; refused if any detail arrived in clear.

        The ingest pipeline seals them (``practice_events.privacy``); this check
        makes sure no other path can store them in clear.
        """
        sealed = data.get("sealed")
        if not isinstance(sealed, dict) or any(name in data for name in PERSONAL_FIELDS):
            msg = (
                f"volunteer {self.subject}: personal details must be sealed under the "
                "person's key before they are stored"
            )
            raise DomainError(msg)
        self._emit(self.PersonalDetailsRecorded, data, meta)

    def erase_personal_data(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Record that the volunteer's keys were destroyed (always accepted: a system event)."""
        self._emit(self.PersonalDataErased, data, meta)

    # --- commands: attendance ------------------------------------------------------------

    def check_in(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Open a session; see the invariants in the class docstring."""
        session_id = data["session_id"]
        if self.status != ACTIVE:
            raise self._illegal(f"is {self.status} and cannot check in")
        if self._open is not None:
            opened = self.sessions[self._open].started_at.isoformat()
            raise self._violation(
                f"session {self._open} (checked in at {opened}) is still open: check it out "
                "or close it with checkout_auto_closed before checking in again",
                open_session=self._open,
            )
        if session_id in self.sessions:
            raise self._violation(f"session id {session_id} was already used by this volunteer")
        kind = self._participant_kind(data)
        at = parse_time(meta["time"])
        if self._latest_end is not None and at < self._latest_end:
            raise self._out_of_range(
                f"check-in at {at.isoformat()} is before the end of an earlier session "
                f"({self._latest_end.isoformat()}); sessions may not overlap"
            )
        self._emit(self.CheckedIn, {**data, "participant_kind": kind}, meta)

    def check_out(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Close the open session and credit its hours (pending).

        A late check-out of an auto-closed session whose credit is still
        pending replaces that credit (a second ``hours_credited`` with
        ``supersedes_hours``); refused once the credit was approved or
        rejected (correct approved hours with ``hours_corrected``).
        """
        session = self._known_session(data["session_id"])
        overrides = False
        if session.closed_by == "auto_closed":
            if session.credit != "pending":
                advice = (
                    "; correct them with hours_corrected" if session.credit == "approved" else ""
                )
                raise self._violation(
                    f"session {session.session_id} was auto-closed and its hours were already "
                    f"{session.credit}{advice}"
                )
            overrides = True
        elif session.closed_by is not None:
            raise self._already_closed(session)
        at = parse_time(meta["time"])
        self._check_duration(session, at, "check-out")
        if overrides and self._open is not None and at > self.sessions[self._open].started_at:
            raise self._out_of_range(
                f"check-out at {at.isoformat()} of session {session.session_id} is after the "
                f"check-in of the open session {self._open}; sessions may not overlap"
            )
        previous = session.hours if overrides else None
        stored = {**data, "overrides_auto_close": True} if overrides else data
        self._emit(self.CheckedOut, stored, meta)
        self._credit(session, at, "checkin_checkout", meta, supersedes=previous)

    def close_checkout_automatically(
        self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext
    ) -> None:
        """Close a missed check-out by rule and credit up to ``credited_until`` (pending)."""
        session = self._known_session(data["session_id"])
        if session.closed_by is not None:
            raise self._already_closed(session)
        until = parse_time(data["credited_until"])
        policy: AttendancePolicy = ctx.service("attendance")
        problem = policy.auto_close_refusal(data["rule"], session.started_at, until)
        if problem is not None:
            raise self._out_of_range(f"session {session.session_id}: {problem}")
        if until > parse_time(meta["time"]):
            raise self._out_of_range(
                f"credited_until {until.isoformat()} is after the time of the auto-close "
                f"({meta['time']}): only time already passed can be credited"
            )
        self._emit(self.CheckoutAutoClosed, data, meta)
        self._credit(session, until, "auto_closed", meta, supersedes=None)

    def record_hours(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Back-fill a session without check-in (补录) and credit its hours (pending).

        Accepted whatever the volunteer's status: the service happened before,
        and the approver reviews the evidence. Overlap is checked against the
        open session only (an O(1) check); overlaps with older sessions are
        for the approver to spot.
        """
        session_id = data["session_id"]
        if session_id in self.sessions:
            raise self._violation(f"session id {session_id} was already used by this volunteer")
        kind = self._participant_kind(data)
        ended_at = parse_time(data["ended_at"])
        if ended_at > parse_time(meta["time"]):
            raise self._out_of_range(
                f"ended_at {ended_at.isoformat()} is after the time of the back-fill "
                f"({meta['time']}): future service cannot be recorded"
            )
        if self._open is not None and ended_at > self.sessions[self._open].started_at:
            raise self._out_of_range(
                f"the back-filled session ends after the check-in of the open session "
                f"{self._open}; sessions may not overlap"
            )
        self._emit(self.HoursRecorded, {**data, "participant_kind": kind}, meta)
        self._credit(self.sessions[session_id], ended_at, "manual", meta, supersedes=None)

    def approve_hours(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Approve a pending credit (once); award its points and any star level reached."""
        session = self._credited_session(data["session_id"])
        if session.credit != "pending":
            raise self._illegal(
                f"hours of session {session.session_id} are {session.credit}; they can be "
                "approved only once, while pending"
            )
        self._not_self_approved(data["approver"])
        rule: PointsRule = ctx.service("points")
        hours = session.hours
        self._emit(
            self.HoursApproved,
            {
                **data,
                "hours": hours,
                "points_rate": rule.points_per_hour,
                "points_rule_version": rule.rule_version,
            },
            meta,
        )
        self._settle_points(session, "approval", meta)
        self._attain_star_levels(session.session_id, meta)

    def reject_hours(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Reject a pending or approved credit; reverse the points of approved hours."""
        session = self._credited_session(data["session_id"])
        if session.credit == "rejected":
            raise self._illegal(f"hours of session {session.session_id} are already rejected")
        self._not_self_approved(data["approver"])
        previous = session.credit
        self._emit(
            self.HoursRejected,
            {**data, "hours": session.hours, "previous_status": previous},
            meta,
        )
        if session.points > 0:
            self._emit(
                self.PointsReversed,
                {
                    "session_id": session.session_id,
                    "points": session.points,
                    "hours": 0.0,
                    "rule_version": session.rule_version,
                    "cause": "rejection",
                },
                derived_meta(meta, POINTS_REVERSED),
            )

    def correct_hours(self, data: dict[str, Any], meta: dict[str, Any], ctx: DomainContext) -> None:
        """Correct approved hours by a delta (never in place); points and stars follow."""
        session = self._credited_session(data["session_id"])
        if session.credit != "approved":
            raise self._illegal(
                f"hours of session {session.session_id} are {session.credit}; only approved "
                "hours can be corrected (approve or reject pending hours instead)"
            )
        delta = float(data["delta_hours"])
        after = session.hours + delta
        if not 0 <= after <= MAX_SESSION_HOURS:
            raise self._out_of_range(
                f"session {session.session_id} has {session.hours} approved hours; a correction "
                f"of {delta:+} would make {after}, outside 0..24"
            )
        self._not_self_approved(data["approver"])
        self._emit(
            self.HoursCorrected,
            {**data, "hours_before": session.hours, "hours_after": after},
            meta,
        )
        self._settle_points(session, "correction", meta)
        if delta > 0:
            self._attain_star_levels(session.session_id, meta)

    # --- helpers ---------------------------------------------------------------------------

    def _emit(
        self,
        event_class: type[PracticeAggregate.Event],
        data: Mapping[str, Any],
        meta: Mapping[str, Any],
    ) -> None:
        """Trigger an event with the provenance of the incoming (or derived) event."""
        self.emit(event_class, data, cast(Meta, meta))

    def _close(self, session_id: str, ended_at: datetime, closed_by: str) -> None:
        """Close a session (apply side of checked_out / checkout_auto_closed)."""
        session = self.sessions[session_id]
        previous_end = session.ended_at
        session.ended_at = ended_at
        session.closed_by = closed_by
        if self._open == session_id:
            self._open = None
        if self._latest_end is None or ended_at > self._latest_end:
            self._latest_end = ended_at
        elif previous_end is not None and previous_end == self._latest_end:
            # A late check-out moved the end of the latest session back from its auto-close.
            self._latest_end = ended_at

    def _credit(
        self,
        session: Session,
        ended_at: datetime,
        basis: str,
        cause: Mapping[str, Any],
        *,
        supersedes: float | None,
    ) -> None:
        """Emit ``hours_credited`` (pending) for a session that just closed."""
        credit: dict[str, Any] = {
            "session_id": session.session_id,
            "site_id": session.site_id,
            "participant_kind": session.participant_kind,
            "started_at": format_time(session.started_at),
            "ended_at": format_time(ended_at),
            "hours": credited_hours(session.started_at, ended_at),
            "basis": basis,
            "status": "pending",
        }
        if session.activity_id is not None:
            credit["activity_id"] = session.activity_id
        if supersedes is not None:
            credit["supersedes_hours"] = supersedes
        self._emit(self.HoursCredited, credit, derived_meta(cause, HOURS_CREDITED))

    def _settle_points(self, session: Session, cause_kind: str, cause: Mapping[str, Any]) -> None:
        """Award or reverse the difference between what the session earns and has earned.

        The session earns ``points_at(approved hours, rate at approval)``;
        settling against that target (not the delta alone) keeps rounding from
        drifting over several corrections.
        """
        target = points_at(session.hours, session.rate)
        difference = target - session.points
        if difference > 0:
            self._emit(
                self.PointsAwarded,
                {
                    "session_id": session.session_id,
                    "points": difference,
                    "hours": session.hours,
                    "rate": session.rate,
                    "rule_version": session.rule_version,
                    "cause": cause_kind,
                },
                derived_meta(cause, POINTS_AWARDED),
            )
        elif difference < 0:
            self._emit(
                self.PointsReversed,
                {
                    "session_id": session.session_id,
                    "points": -difference,
                    "hours": session.hours,
                    "rule_version": session.rule_version,
                    "cause": cause_kind,
                },
                derived_meta(cause, POINTS_REVERSED),
            )

    def _attain_star_levels(self, session_id: str, cause: Mapping[str, Any]) -> None:
        """Emit ``star_level_attained`` for each level first reached, once per level."""
        for level, threshold in levels_reached(self._stars, self._approved):
            meta = derived_meta(cause, STAR_LEVEL_ATTAINED)
            # One cause may reach two levels: the level keeps their ids apart.
            meta["id"] = str(uuid.uuid5(NAMESPACE, f"{meta['id']}:{level}"))
            self._emit(
                self.StarLevelAttained,
                {
                    "level": level,
                    "threshold_hours": threshold,
                    "approved_hours": self._approved,
                    "rule_version": STAR_RULE_VERSION,
                    "session_id": session_id,
                },
                meta,
            )

    def _known_session(self, session_id: str) -> Session:
        """Return the session, refusing (RULE_VIOLATION) an unknown id."""
        session = self.sessions.get(session_id)
        if session is None:
            raise self._violation(
                f"session {session_id} is unknown: check in first, or back-fill it with "
                "hours_recorded"
            )
        return session

    def _credited_session(self, session_id: str) -> Session:
        """Return a session that has a credit; refuse unknown or still-open sessions."""
        session = self._known_session(session_id)
        if session.credit == "none":
            raise self._illegal(
                f"session {session_id} is still open: its hours are credited at check-out"
            )
        return session

    def _check_duration(self, session: Session, end: datetime, what: str) -> None:
        """Refuse (OUT_OF_RANGE) an end before the check-in or more than 24 h after it."""
        if end < session.started_at:
            raise self._out_of_range(
                f"{what} at {end.isoformat()} is before the check-in of session "
                f"{session.session_id} at {session.started_at.isoformat()}"
            )
        if end - session.started_at > MAX_SESSION:
            raise self._out_of_range(
                f"{what} at {end.isoformat()} is more than 24 h after the check-in of session "
                f"{session.session_id} at {session.started_at.isoformat()}: close it with "
                "checkout_auto_closed (credited_until within 24 h) instead"
            )

    def _participant_kind(self, data: Mapping[str, Any]) -> str:
        """Return the participant kind of a session, refusing ``official`` for others."""
        kind = data.get("participant_kind")
        if kind is None:
            return "official" if self.is_official else "volunteer"
        if kind == "official" and not self.is_official:
            raise self._violation("is not registered as an official and cannot serve as one")
        return str(kind)

    def _check_report(
        self,
        where: str,
        reports: Mapping[int, str],
        site_id: str,
        meta: Mapping[str, Any],
        ctx: DomainContext,
    ) -> int:
        """Check an official's dual check-in report; return its local year."""
        self._require_official(f"report to a {where}")
        self._require_active(f"report to a {where}")
        policy: AttendancePolicy = ctx.service("attendance")
        year = policy.local_date(parse_time(meta["time"])).year
        if reports.get(year) == site_id:
            raise self._illegal(f"already reported to {where} {site_id} in {year}")
        return year

    def _require_active(self, what: str) -> None:
        """Refuse (ILLEGAL_TRANSITION) when the volunteer is suspended or archived."""
        if self.status != ACTIVE:
            raise self._illegal(f"is {self.status} and cannot {what}")

    def _require_official(self, what: str) -> None:
        """Refuse (RULE_VIOLATION) an official-only event for an ordinary volunteer."""
        if not self.is_official:
            raise self._violation(f"is not registered as an official; only officials {what}")

    def _not_self_approved(self, approver: str) -> None:
        """Refuse (RULE_VIOLATION) a volunteer deciding on their own hours."""
        if approver == self.subject:
            raise self._violation("volunteers may not approve, reject or correct their own hours")

    def _already_closed(self, session: Session) -> DomainError:
        """Return the refusal (RULE_VIOLATION) for closing a session twice."""
        how = {"checked_out": "checked out", "auto_closed": "auto-closed"}.get(
            session.closed_by or "", "back-filled"
        )
        return self._violation(f"session {session.session_id} is already closed ({how})")

    def _illegal(self, reason: str) -> IllegalTransitionError:
        """Return the refusal for a state that does not allow the event."""
        return IllegalTransitionError(f"{self.KIND} {self.subject}: {reason}")

    def _violation(self, reason: str, **details: Any) -> DomainError:
        """Return the refusal for a broken rule (RULE_VIOLATION)."""
        return DomainError(f"{self.KIND} {self.subject}: {reason}", **details)

    def _out_of_range(self, reason: str) -> DomainError:
        """Return the refusal for a value outside its range given the state (OUT_OF_RANGE)."""
        return DomainError(f"{self.KIND} {self.subject}: {reason}", code="OUT_OF_RANGE")


class Team(PracticeAggregate):
    """A volunteer service team (志愿服务队) under a site.

    Only its registration is kept here; members are recorded on the
    volunteers (``joined_team``), so joining never contends on the team.
    """

    TOPIC = "practice.aggregate.team"
    KIND = "team"
    CREATED_BY = TEAM_REGISTERED
    HANDLES: ClassVar[Mapping[str, str]] = {}

    def __init__(self) -> None:
        """Declare the state; ``Created.init`` fills it in."""
        self.site_id: str = ""
        self.name: str = ""
        self.category: str = ""
        self.lead_volunteer_no: str | None = None

    class Created(PracticeAggregate.Created):
        """``team_registered``."""

        TOPIC = TEAM_REGISTERED

        def init(self, aggregate: Any) -> None:
            """Set the team's site, name, category and leader."""
            t: Team = aggregate
            d = self.data
            t.site_id = d["site_id"]
            t.name = d["name"]
            t.category = d["category"]
            t.lead_volunteer_no = d.get("lead_volunteer_no")
