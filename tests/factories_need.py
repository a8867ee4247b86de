"""Builders for the need and assessment areas: payloads and a small cast.

Payload builders return the ``data`` a producer would send, with sensible
defaults; keyword arguments override or add fields, and ``None`` removes one.
:func:`cast` registers the sites, volunteers and team that needs are
dispatched to, in a :class:`~tests.harness.DomainHarness`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from practice_events.contracts.assessment import EXAMPLE_MODEL
from tests.harness import CST, DomainHarness

SUBMITTED = "practice.need.submitted.v1"
ACCEPTED = "practice.need.accepted.v1"
REJECTED = "practice.need.rejected.v1"
LISTED = "practice.need.listed_on_wish_wall.v1"
DISPATCHED = "practice.need.dispatched.v1"
CLAIMED = "practice.need.claimed.v1"
REDISPATCHED = "practice.need.redispatched.v1"
DELIVERED = "practice.need.service_delivered.v1"
CLOSED = "practice.need.closed.v1"
RATED = "practice.need.rated.v1"

NEED_TYPES = (
    SUBMITTED,
    ACCEPTED,
    REJECTED,
    LISTED,
    DISPATCHED,
    CLAIMED,
    REDISPATCHED,
    DELIVERED,
    CLOSED,
    RATED,
)

MODEL_PUBLISHED = "practice.assessment.scoring_model_published.v1"
MODEL_REVISED = "practice.assessment.scoring_model_revised.v1"
PERIOD_OPENED = "practice.assessment.period_opened.v1"
SCORE_ADJUSTED = "practice.assessment.score_adjusted.v1"
SCORECARD = "practice.assessment.scorecard_published.v1"
BULLETIN = "practice.assessment.bulletin_published.v1"
REVIEW = "practice.assessment.quarterly_review_held.v1"
SUMMARY = "practice.assessment.half_year_summary_published.v1"
PERIOD_CLOSED = "practice.assessment.period_closed.v1"

ASSESSMENT_TYPES = (
    MODEL_PUBLISHED,
    MODEL_REVISED,
    PERIOD_OPENED,
    SCORE_ADJUSTED,
    SCORECARD,
    BULLETIN,
    REVIEW,
    SUMMARY,
    PERIOD_CLOSED,
)

SITE_REGISTERED = "practice.site.registered.v1"
VOLUNTEER_REGISTERED = "practice.volunteer.registered.v1"
TEAM_REGISTERED = "practice.volunteer.team_registered.v1"
MEETING_HELD = "practice.meeting.held.v1"


def at(day: int, hour: int = 9, minute: int = 0, month: int = 3, year: int = 2024) -> datetime:
    """A Beijing time in March 2024 unless told otherwise."""
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def _build(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = {**defaults, **overrides}
    return {key: value for key, value in data.items() if value is not None}


# --- needs ------------------------------------------------------------------------------


def need(**overrides: Any) -> dict[str, Any]:
    """A micro-wish at station ``ST-1``: a broken kitchen light."""
    return _build(
        {
            "site_id": "ST-1",
            "channel": "micro_wish",
            "category": "home_repair",
            "summary": "厨房灯坏了，独居老人无法自行更换",
            "urgency": "normal",
            "beneficiary_ref": "BR-0001",
        },
        overrides,
    )


def rejection(**overrides: Any) -> dict[str, Any]:
    """A rejection visible to the requester."""
    return _build({"reason": "不在本站服务范围内", "visible_to_requester": True}, overrides)


def to_team(team_id: str = "T-1", **overrides: Any) -> dict[str, Any]:
    """A dispatch to a team."""
    return _build({"team_id": team_id}, overrides)


def to_volunteer(volunteer_no: str = "V-1", **overrides: Any) -> dict[str, Any]:
    """A dispatch or claim by a volunteer."""
    return _build({"volunteer_no": volunteer_no}, overrides)


def redispatch(volunteer_no: str | None = "V-2", **overrides: Any) -> dict[str, Any]:
    """A re-dispatch to another volunteer, with a reason."""
    return _build({"volunteer_no": volunteer_no, "reason": "原志愿者本周生病"}, overrides)


def delivery(**overrides: Any) -> dict[str, Any]:
    """One and a half hours of service by volunteer ``V-1``, with a photo."""
    return _build(
        {
            "volunteer_no": "V-1",
            "hours": 1.5,
            "summary": "更换灯具并检查线路",
            "evidence": [{"uri": "https://files.example/n/1.jpg", "kind": "photo"}],
        },
        overrides,
    )


def closure(outcome: str = "fulfilled", **overrides: Any) -> dict[str, Any]:
    """A closure with ``outcome`` (a reason is added for unfulfillable)."""
    defaults: dict[str, Any] = {"outcome": outcome}
    if outcome == "unfulfillable":
        defaults["reason"] = "需专业电工，超出志愿服务范围"
    return _build(defaults, overrides)


def rating(value: int = 5, **overrides: Any) -> dict[str, Any]:
    """A rating of the service."""
    return _build({"rating": value, "comment": "很及时"}, overrides)


# --- assessment --------------------------------------------------------------------------


def scoring_model(**overrides: Any) -> dict[str, Any]:
    """The documented example model (DESIGN.md §6 weights) at version 1."""
    return _build(copy.deepcopy(EXAMPLE_MODEL), overrides)


def revision(version: int = 2, **overrides: Any) -> dict[str, Any]:
    """The example model as ``version``, effective from July 2024."""
    return scoring_model(**{"version": version, "effective_from": "2024-07", **overrides})


def period(unit_id: str = "ST-1", period: str = "2024-03", **overrides: Any) -> dict[str, Any]:
    """An assessment period of ``unit_id`` (its kind derived from the spelling)."""
    kind = {"Q": "quarter", "H": "half_year"}.get(period[5:6], "month")
    if len(period) == 4:
        kind = "year"
    return _build({"unit_id": unit_id, "period": period, "kind": kind}, overrides)


def adjustment(delta: float = 2, **overrides: Any) -> dict[str, Any]:
    """A bonus (positive delta) or a deduction (negative delta)."""
    return _build(
        {
            "kind": "bonus" if delta > 0 else "deduction",
            "delta": delta,
            "reason": "省级表彰" if delta > 0 else "台账弄虚作假",
            "approver": "U-OFFICE",
            "evidence": [{"uri": "doc://adjustments/1", "kind": "document"}],
        },
        overrides,
    )


def scorecard(model_version: int = 1, **overrides: Any) -> dict[str, Any]:
    """A scorecard with one computed indicator and one with too few cases."""
    return _build(
        {
            "model_id": "wly-district",
            "model_version": model_version,
            "as_of_position": 1200,
            "composite": 81.5,
            "bonus_total": 2,
            "indicators": [
                {
                    "code": "need_fulfilment",
                    "status": "ok",
                    "value": 0.9,
                    "numerator": 9,
                    "denominator": 10,
                    "score": 5.4,
                },
                {"code": "satisfaction", "status": "insufficient_data", "denominator": 4},
            ],
        },
        overrides,
    )


def bulletin(document_ref: str = "TB-2024-03", **overrides: Any) -> dict[str, Any]:
    """A monthly bulletin as of log position 1200."""
    return _build({"document_ref": document_ref, "as_of_position": 1200}, overrides)


def review(**overrides: Any) -> dict[str, Any]:
    """A quarterly review ranking the two stations."""
    return _build(
        {
            "attendees_count": 24,
            "ranked_units": ["ST-1", "ST-2"],
            "actions": ["ST-2 于4月15日前清零超期问题"],
        },
        overrides,
    )


def summary(document_ref: str | None = "ZJ-2024-H1", **overrides: Any) -> dict[str, Any]:
    """A half-year summary document."""
    return _build({"document_ref": document_ref, "summary": "上半年工作总结"}, overrides)


# --- the cast -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast:
    """Subjects that :func:`cast` registers."""

    centre: str = "WLY"
    station: str = "ST-1"
    other_station: str = "ST-2"
    house_meeting_site: str = "WC-1"
    team: str = "T-1"
    other_team: str = "T-2"
    volunteer: str = "V-1"
    other_volunteer: str = "V-2"
    meeting: str = "M-1"


def cast(h: DomainHarness) -> Cast:
    """Register a centre with two stations, a house-meeting site, two teams, two volunteers
    and one house meeting; everything needs and assessments refer to."""
    c = Cast()
    h.send(SITE_REGISTERED, c.centre, {"level": "centre", "name": "实践中心"}, time=at(1))
    for station in (c.station, c.other_station):
        h.send(
            SITE_REGISTERED,
            station,
            {"level": "station", "parent_id": c.centre, "name": f"实践站{station}"},
            time=at(1),
        )
    h.send(
        SITE_REGISTERED,
        c.house_meeting_site,
        {"level": "house_meeting_site", "parent_id": c.station, "name": "屋场"},
        time=at(1),
    )
    for volunteer in (c.volunteer, c.other_volunteer):
        h.send(VOLUNTEER_REGISTERED, volunteer, {"home_site_id": c.station}, time=at(1))
    for team in (c.team, c.other_team):
        h.send(
            TEAM_REGISTERED,
            team,
            {"site_id": c.station, "name": f"服务队{team}", "category": "home_repair"},
            time=at(1),
        )
    h.send(
        MEETING_HELD,
        c.meeting,
        {
            "site_id": c.house_meeting_site,
            "started_at": at(1, 19).isoformat(),
            "ended_at": at(1, 21).isoformat(),
            "attendees_count": 30,
        },
        time=at(1, 22),
    )
    return c
