"""Builders for the volunteer and attendance areas: payloads, sites and served sessions.

Payload builders return the ``data`` a producer would send, with sensible
defaults; keyword arguments override or add fields, and ``None`` removes one.
:func:`district` registers the sites (and a team) that the scenarios need;
:func:`serve` runs a whole session (check-in, check-out) for a volunteer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.harness import CST, DomainHarness

# Volunteer area
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

# Attendance area
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

SITE_REGISTERED = "practice.site.registered.v1"
ACTIVITY_PLANNED = "practice.activity.planned.v1"

CENTRE = "WLY-CENTRE"
STATION = "WLY-ZHAN-07"
POST = "WLY-GANG-03"
TEAM = "WLY-TEAM-031"
ACTIVITY = "ACT-2024-0305"
APPROVER = "STAFF-0012"

VOLUNTEER = "V-430802-000101"
OFFICIAL = "V-430802-900001"


def at(day: int, hour: int = 9, minute: int = 0, month: int = 3, year: int = 2024) -> datetime:
    """A Beijing time (UTC+8), in March 2024 unless told otherwise."""
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def _build(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = {**defaults, **overrides}
    return {key: value for key, value in data.items() if value is not None}


def volunteer(**overrides: Any) -> dict[str, Any]:
    """An ordinary volunteer of the station, with two skills."""
    return _build({"home_site_id": STATION, "skills": ["first_aid", "legal_advice"]}, overrides)


def official(**overrides: Any) -> dict[str, Any]:
    """An official of the finance bureau doing the dual check-in."""
    return _build(
        {"home_site_id": STATION, "is_official": True, "home_unit_id": "WLY-DEPT-FINANCE"},
        overrides,
    )


def team(**overrides: Any) -> dict[str, Any]:
    """An elder-care team of the station."""
    return _build(
        {"site_id": STATION, "name": "红马甲志愿服务队", "category": "elder_care"}, overrides
    )


def check_in(session_id: str | None = "S-1", **overrides: Any) -> dict[str, Any]:
    """A QR check-in at the station."""
    return _build({"session_id": session_id, "site_id": STATION, "method": "qr"}, overrides)


def check_out(session_id: str = "S-1", **overrides: Any) -> dict[str, Any]:
    """A QR check-out."""
    return _build({"session_id": session_id, "method": "qr"}, overrides)


def auto_close(
    session_id: str = "S-1", *, until: datetime, rule: str = "midnight", **overrides: Any
) -> dict[str, Any]:
    """An auto-close of a missed check-out, crediting up to ``until``."""
    return _build(
        {"session_id": session_id, "rule": rule, "credited_until": until.isoformat()}, overrides
    )


def back_fill(
    session_id: str = "BF-1",
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A back-filled session (补录), 08:30-11:30 on 2 March unless told otherwise."""
    start = start or at(2, 8, 30)
    end = end or at(2, 11, 30)
    return _build(
        {
            "session_id": session_id,
            "site_id": STATION,
            "started_at": start.isoformat(),
            "ended_at": end.isoformat(),
            "evidence": [{"uri": "https://files.example.cn/signin/2024-03-02.jpg"}],
            "reason": "纸质签到表补录",
        },
        overrides,
    )


def approve(session_id: str = "S-1", **overrides: Any) -> dict[str, Any]:
    """An approval by the station's staff."""
    return _build({"session_id": session_id, "approver": APPROVER}, overrides)


def reject(session_id: str = "S-1", **overrides: Any) -> dict[str, Any]:
    """A rejection by the station's staff."""
    return _build(
        {"session_id": session_id, "reason": "签到地点与活动地点不符", "approver": APPROVER},
        overrides,
    )


def correct(session_id: str = "S-1", delta: float = -0.5, **overrides: Any) -> dict[str, Any]:
    """A correction of approved hours by ``delta``."""
    return _build(
        {
            "session_id": session_id,
            "delta_hours": delta,
            "reason": "扣除往返路程时间",
            "approver": APPROVER,
        },
        overrides,
    )


def redeem(points: int, **overrides: Any) -> dict[str, Any]:
    """A redemption at the village kiosk."""
    return _build({"points": points, "item": "大米 5kg", "outlet": "WLY-KIOSK-02"}, overrides)


def district(h: DomainHarness, *, with_team: bool = False) -> DomainHarness:
    """Register the centre, a station and a post (and, if asked, a team) in ``h``."""
    h.send(SITE_REGISTERED, CENTRE, {"level": "centre", "name": "武陵源区新时代文明实践中心"})
    h.send(SITE_REGISTERED, STATION, {"level": "station", "parent_id": CENTRE, "name": "军地坪站"})
    h.send(SITE_REGISTERED, POST, {"level": "post", "parent_id": CENTRE, "name": "景区服务岗"})
    if with_team:
        h.send(REGISTERED, "V-LEAD-01", volunteer())
        h.send(TEAM_REGISTERED, TEAM, team(lead_volunteer_no="V-LEAD-01"))
    return h


def enrol(h: DomainHarness, subject: str = VOLUNTEER, **overrides: Any) -> DomainHarness:
    """Register a volunteer (an official if ``is_official=True`` is passed)."""
    data = official(**overrides) if overrides.get("is_official") else volunteer(**overrides)
    h.send(REGISTERED, subject, data)
    return h


def serve(
    h: DomainHarness,
    session_id: str,
    start: datetime,
    hours: float,
    *,
    subject: str = VOLUNTEER,
    approve_it: bool = False,
) -> list[Any]:
    """Check in at ``start`` and out ``hours`` later (and approve, if asked); return all events."""
    events = h.send(CHECKED_IN, subject, check_in(session_id), time=start)
    events += h.send(
        CHECKED_OUT, subject, check_out(session_id), time=start + timedelta(hours=hours)
    )
    if approve_it:
        events += h.send(
            HOURS_APPROVED, subject, approve(session_id), time=start + timedelta(hours=hours + 1)
        )
    return events


def topics(events: list[Any]) -> list[str]:
    """The CloudEvents types of domain events, in order."""
    return [str(event.meta["type"]) for event in events]


def only(events: list[Any], event_type: str) -> Any:
    """The single event of ``event_type`` among ``events``."""
    found = [event for event in events if event.meta["type"] == event_type]
    assert len(found) == 1, f"expected one {event_type}, got {topics(events)}"
    return found[0]
