"""Builders for the site, activity and meeting areas: payloads and a small network.

Payload builders return the ``data`` a producer would send, with sensible
defaults; keyword arguments override or add fields, and ``None`` removes one.
:func:`network` registers a centre, an institute, a station and a
house-meeting site in a :class:`~tests.harness.DomainHarness`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.harness import CST, DomainHarness

REGISTERED = "practice.site.registered.v1"
UPDATED = "practice.site.updated.v1"
DEACTIVATED = "practice.site.deactivated.v1"
ASSESSED = "practice.site.standard_assessed.v1"
CHECKLIST_PUBLISHED = "practice.site.checklist_published.v1"
CHECKLIST_REVISED = "practice.site.checklist_revised.v1"
THEME_SET = "practice.activity.theme_set.v1"
THEME_REVISED = "practice.activity.theme_revised.v1"
PLANNED = "practice.activity.planned.v1"
CANCELLED = "practice.activity.cancelled.v1"
COMPLETED = "practice.activity.completed.v1"
FEEDBACK = "practice.activity.feedback_given.v1"
HELD = "practice.meeting.held.v1"
STEP = "practice.meeting.step_logged.v1"
CONCERN_RAISED = "practice.meeting.concern_raised.v1"
CONCERN_RESOLVED = "practice.meeting.concern_resolved_on_spot.v1"
CONCERN_CONVERTED = "practice.meeting.concern_converted.v1"

SIX_HAVES = [
    {"code": "has_site", "label": "有场所", "weight": 0.2},
    {"code": "has_plan", "label": "有计划", "weight": 0.15},
    {"code": "has_team", "label": "有队伍", "weight": 0.2},
    {"code": "has_project", "label": "有项目", "weight": 0.15},
    {"code": "has_rules", "label": "有制度", "weight": 0.1},
    {"code": "has_records", "label": "有记录", "weight": 0.2},
]
"""The six-haves of the source article, with illustrative weights summing to 1."""


def at(day: int, hour: int = 9, minute: int = 0, month: int = 3, year: int = 2024) -> datetime:
    """A Beijing time in March 2024 unless told otherwise."""
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def _build(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = {**defaults, **overrides}
    return {key: value for key, value in data.items() if value is not None}


def site(**overrides: Any) -> dict[str, Any]:
    """A station registered under institute ``WLY-SUO-1``."""
    return _build({"level": "station", "parent_id": "WLY-SUO-1", "name": "军地坪实践站"}, overrides)


def checklist(**overrides: Any) -> dict[str, Any]:
    """The six-haves checklist at version 1."""
    return _build(
        {"version": 1, "title": "六有标准", "items": [dict(i) for i in SIX_HAVES]}, overrides
    )


def assessment(ratings: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """A six-haves assessment on version 1 (all A unless ``ratings`` says otherwise)."""
    chosen = {item["code"]: "A" for item in SIX_HAVES}
    chosen.update(ratings or {})
    items = [{"code": code, "rating": rating} for code, rating in chosen.items()]
    return _build(
        {
            "checklist_id": "six-haves",
            "checklist_version": 1,
            "items": items,
            "assessor_id": "INSP-017",
            "method": "onsite",
        },
        overrides,
    )


def theme(**overrides: Any) -> dict[str, Any]:
    """The centre's theme for March 2024 (learning from Lei Feng)."""
    return _build(
        {
            "unit_id": "WLY",
            "month": "2024-03",
            "theme_code": "learn_from_lei_feng",
            "title": "学雷锋志愿服务月",
        },
        overrides,
    )


def activity(**overrides: Any) -> dict[str, Any]:
    """A three-hour civility activity at station ``WLY-ZHAN-1`` on 5 March 2024."""
    return _build(
        {
            "site_id": "WLY-ZHAN-1",
            "theme_code": "learn_from_lei_feng",
            "category": "civility_persuasion",
            "title": "景区文明劝导",
            "starts_at": at(5, 9).isoformat(),
            "ends_at": at(5, 12).isoformat(),
            "slots": 20,
        },
        overrides,
    )


def completion(**overrides: Any) -> dict[str, Any]:
    """A completion report with counts and one photo."""
    return _build(
        {
            "served_count": 320,
            "beneficiaries_count": 300,
            "summary": "劝导不文明行为 41 起",
            "evidence": [{"uri": "https://files.example/a/1.jpg", "kind": "photo"}],
        },
        overrides,
    )


def meeting(**overrides: Any) -> dict[str, Any]:
    """An evening house meeting at ``WLY-WC-1`` on 8 March 2024."""
    return _build(
        {
            "site_id": "WLY-WC-1",
            "started_at": at(8, 19, 30).isoformat(),
            "ended_at": at(8, 21).isoformat(),
            "attendees_count": 46,
            "topics": ["人居环境整治"],
        },
        overrides,
    )


def concern(concern_id: str = "C1", **overrides: Any) -> dict[str, Any]:
    """A concern about a broken hamlet road."""
    return _build(
        {"concern_id": concern_id, "category": "road_repair", "summary": "组道路面破损"},
        overrides,
    )


@dataclass(frozen=True)
class Network:
    """Subjects of the small network :func:`network` registers."""

    centre: str = "WLY"
    institute: str = "WLY-SUO-1"
    station: str = "WLY-ZHAN-1"
    house_meeting_site: str = "WLY-WC-1"


def network(h: DomainHarness) -> Network:
    """Register centre → institute → station → house-meeting site, and the six-haves."""
    n = Network()
    h.send(REGISTERED, n.centre, {"level": "centre", "name": "武陵源区新时代文明实践中心"})
    h.send(REGISTERED, n.institute, site(level="institute", parent_id=n.centre, name="实践所"))
    h.send(REGISTERED, n.station, site(parent_id=n.institute))
    h.send(
        REGISTERED,
        n.house_meeting_site,
        site(level="house_meeting_site", parent_id=n.station, name="袁家界屋场"),
    )
    h.send(CHECKLIST_PUBLISHED, "six-haves", checklist())
    return n
