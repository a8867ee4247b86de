"""Builders for the finding area: payloads, a test calendar, system events, and stage walks.

Payload builders return the ``data`` a producer would send with sensible
defaults; keyword arguments override or add fields, and ``None`` removes one.
Times are Beijing times in March 2024 (:func:`at`). The tests never use the
built-in holiday data: :data:`TEST_CALENDAR` is small and visible here.

March 2024 as :data:`TEST_CALENDAR` sees it (H = holiday, W = make-up working day)::

    Mo Tu We Th Fr Sa Su
              1  2  3
     4  5  6  7  8H 9 10
    11 12 13 14 15 16W 17
    18 19 20 21 22 23 24
    25 26 27 28 29 30 31
"""

from __future__ import annotations

import copy
import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from practice_events.contracts.base import CATALOGUE
from practice_events.contracts.envelope import IncomingEvent
from practice_events.domain.base import SYSTEM_SOURCE, DomainContext
from practice_events.domain.calendar import WorkingCalendar
from practice_events.domain.finding import Finding
from practice_events.domain.sla import SlaPolicy
from practice_events.errors import PracticeEventsError
from practice_events.ingest.apply import apply_event
from tests.harness import CST, DomainHarness

SITE_REGISTERED = "practice.site.registered.v1"
INSPECTION = "practice.finding.inspection_conducted.v1"
RECORDED = "practice.finding.recorded.v1"
FED_BACK = "practice.finding.fed_back.v1"
ACKNOWLEDGED = "practice.finding.acknowledged.v1"
RETURNED = "practice.finding.returned.v1"
REASSIGNED = "practice.finding.reassigned.v1"
PLAN = "practice.finding.rectification_plan_submitted.v1"
EXT_REQUESTED = "practice.finding.extension_requested.v1"
EXT_GRANTED = "practice.finding.extension_granted.v1"
EXT_DENIED = "practice.finding.extension_denied.v1"
REPORTED = "practice.finding.rectification_reported.v1"
PASSED = "practice.finding.verification_passed.v1"
FAILED = "practice.finding.verification_failed.v1"
CALLBACK = "practice.finding.resident_callback_recorded.v1"
REOPENED = "practice.finding.reopened.v1"
CLOSED = "practice.finding.closed.v1"
VOIDED = "practice.finding.voided.v1"
OVERDUE = "practice.finding.overdue.v1"
ESCALATED = "practice.finding.escalated.v1"

SHANGHAI = ZoneInfo("Asia/Shanghai")

TEST_CALENDAR = WorkingCalendar(
    tz=SHANGHAI,
    holidays=frozenset({date(2024, 3, 8)}),
    workdays=frozenset({date(2024, 3, 16)}),
)
"""Friday 8 March is a holiday; Saturday 16 March is a make-up working day."""

CENTRE = "WLY"
STATION = "WLY-ZHAN-1"
OTHER_STATION = "WLY-ZHAN-2"
RESPONSIBLE = STATION
VERIFIER_UNIT = CENTRE


def at(day: int, hour: int = 9, minute: int = 0, month: int = 3, year: int = 2024) -> datetime:
    """A Beijing time in March 2024 unless told otherwise."""
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def end_of(day: int, month: int = 3) -> datetime:
    """The last instant of a day in March 2024 (where working-day due times fall)."""
    return datetime(2024, month, day, 23, 59, 59, 999_999, tzinfo=SHANGHAI)


def _build(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = {**defaults, **overrides}
    return {key: value for key, value in data.items() if value is not None}


def photo(n: int = 1) -> dict[str, Any]:
    """One piece of photo evidence."""
    return {"uri": f"https://files.example/f/{n}.jpg", "sha256": "a" * 64, "kind": "photo"}


# --- Payloads ---------------------------------------------------------------------------------


def inspection(**overrides: Any) -> dict[str, Any]:
    """An inspection of station WLY-ZHAN-1 by two inspectors."""
    return _build(
        {
            "site_id": STATION,
            "inspector_ids": ["INSP-017", "INSP-021"],
            "checklist_id": "six-haves",
            "checklist_version": 1,
            "started_at": at(4, 9).isoformat(),
            "ended_at": at(4, 11).isoformat(),
            "summary": "台账不全，活动室被占用",
            "item_results": [{"code": "has_records", "result": "fail", "note": "3月无记录"}],
        },
        overrides,
    )


def recorded(**overrides: Any) -> dict[str, Any]:
    """A normal-severity finding at WLY-ZHAN-1, the station itself responsible."""
    return _build(
        {
            "source": "supervision",
            "site_id": STATION,
            "severity": "normal",
            "category": "records_missing",
            "description": "志愿服务台账3月缺失",
            "responsible_unit_id": RESPONSIBLE,
            "evidence": [photo()],
        },
        overrides,
    )


def fed_back(**overrides: Any) -> dict[str, Any]:
    """A feed-back through the platform."""
    return _build({"channel": "platform", "note": "请于期限内整改"}, overrides)


def acknowledged(**overrides: Any) -> dict[str, Any]:
    """The station's clerk signs for it."""
    return _build({"by": "ZHAN1-CLERK"}, overrides)


def returned(**overrides: Any) -> dict[str, Any]:
    """A return for lack of jurisdiction."""
    return _build(
        {
            "reason_code": "not_my_jurisdiction",
            "basis": "该场所由景区管理处负责",
            "by": "ZHAN1-HEAD",
        },
        overrides,
    )


def reassigned(to_unit_id: str = OTHER_STATION, **overrides: Any) -> dict[str, Any]:
    """A ruling by the centre."""
    return _build(
        {"to_unit_id": to_unit_id, "ruling_by": "CENTRE-DUTY", "ruling": "按属地原则交办"},
        overrides,
    )


def plan(**overrides: Any) -> dict[str, Any]:
    """A one-action plan."""
    return _build(
        {
            "root_cause": "专人未落实",
            "actions": [
                {"description": "补录台账", "owner": "ZHAN1-CLERK", "due_at": at(20).isoformat()}
            ],
            "submitted_by": "ZHAN1-HEAD",
        },
        overrides,
    )


def extension(requested_due_at: datetime, **overrides: Any) -> dict[str, Any]:
    """A request for more time."""
    return _build(
        {"requested_due_at": requested_due_at.isoformat(), "reason": "需等待街道审批"}, overrides
    )


def grant(new_due_at: datetime, **overrides: Any) -> dict[str, Any]:
    """A grant by the centre."""
    return _build({"approver": "CENTRE-LEAD", "new_due_at": new_due_at.isoformat()}, overrides)


def deny(**overrides: Any) -> dict[str, Any]:
    """A denial by the centre."""
    return _build({"approver": "CENTRE-LEAD", "reason": "理由不充分"}, overrides)


def report(**overrides: Any) -> dict[str, Any]:
    """A rectification report with one photo."""
    return _build(
        {"reported_by": "ZHAN1-CLERK", "actions_done": ["已补录台账"], "evidence": [photo(2)]},
        overrides,
    )


def passed(**overrides: Any) -> dict[str, Any]:
    """A pass by a verifier from the centre."""
    return _build(
        {"verifier_id": "CENTRE-INSP", "verifier_unit_id": VERIFIER_UNIT, "method": "onsite"},
        overrides,
    )


def failed(**overrides: Any) -> dict[str, Any]:
    """A failure by a verifier from the centre."""
    return _build(
        {"verifier_id": "CENTRE-INSP", "verifier_unit_id": VERIFIER_UNIT, "reason": "仍缺2月台账"},
        overrides,
    )


def callback(**overrides: Any) -> dict[str, Any]:
    """A satisfied resident."""
    return _build({"satisfied": "yes", "by": "CENTRE-HOTLINE"}, overrides)


def reopened(**overrides: Any) -> dict[str, Any]:
    """A reopen for recurrence."""
    return _build({"cause": "recurrence", "explanation": "台账再次中断"}, overrides)


def closed(**overrides: Any) -> dict[str, Any]:
    """A closure as not applicable."""
    return _build(
        {"closure": "not_applicable", "approver": "CENTRE-LEAD", "reason": "该站已撤并"}, overrides
    )


def voided(**overrides: Any) -> dict[str, Any]:
    """A voiding of an erroneous record."""
    return _build({"reason": "重复录入", "approver": "CENTRE-LEAD"}, overrides)


# --- Harness ----------------------------------------------------------------------------------


def finding_harness(policy: SlaPolicy | None = None) -> DomainHarness:
    """A harness with :data:`TEST_CALENDAR`, the default SLA policy and three sites."""
    base = DomainHarness()
    services = {**base.ctx.services, "calendar": TEST_CALENDAR, "sla": policy or SlaPolicy()}
    h = DomainHarness(DomainContext(services=services))
    h.send(SITE_REGISTERED, CENTRE, {"level": "centre", "name": "武陵源区新时代文明实践中心"})
    h.send(
        SITE_REGISTERED, STATION, {"level": "station", "parent_id": CENTRE, "name": "军地坪实践站"}
    )
    h.send(
        SITE_REGISTERED,
        OTHER_STATION,
        {"level": "station", "parent_id": CENTRE, "name": "索溪峪实践站"},
    )
    return h


def finding(h: DomainHarness, subject: str) -> Finding:
    """Return the finding aggregate named ``subject``."""
    agg = h.get("finding", subject)
    assert isinstance(agg, Finding)
    return agg


def system_event(
    event_type: str, subject: str, data: dict[str, Any], time: datetime
) -> IncomingEvent:
    """Build a system event as the scheduler will: validated data, trusted source."""
    model = CATALOGUE[event_type]
    validated = model.model_validate(data)
    return IncomingEvent(
        id=str(uuid.uuid4()),
        source=SYSTEM_SOURCE,
        type=event_type,
        subject=subject,
        time=time,
        data=validated,
        data_json=validated.model_dump(mode="json", exclude_none=True),
    )


def send_system(
    h: DomainHarness, event_type: str, subject: str, data: dict[str, Any], time: datetime
) -> list[Any]:
    """Apply a system event; return the domain events it produced."""
    agg = apply_event(system_event(event_type, subject, data, time), h.lookup, h.exists, h.ctx)
    h.aggregates[agg.id] = agg
    new = list(agg.collect_events())
    h.emitted.extend(new)
    return new


def refused_system(
    h: DomainHarness,
    event_type: str,
    subject: str,
    data: dict[str, Any],
    code: str,
    *,
    time: datetime,
) -> PracticeEventsError:
    """Apply a system event that must be refused with ``code``; check nothing changed."""
    agg = finding(h, subject)
    before = (agg.version, copy.deepcopy(dict(vars(agg))))
    with pytest.raises(PracticeEventsError) as info:
        apply_event(system_event(event_type, subject, data, time), h.lookup, h.exists, h.ctx)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    assert agg.version == before[0]
    assert not agg.pending_events
    assert dict(vars(agg)) == before[1]
    return info.value


STAGE_PATHS: dict[str, list[tuple[str, Any, datetime]]] = {
    "FOUND": [],
    "FED_BACK": [(FED_BACK, fed_back, at(4, 10))],
    "DISPUTED": [(FED_BACK, fed_back, at(4, 10)), (RETURNED, returned, at(4, 15))],
    "ACKNOWLEDGED": [(FED_BACK, fed_back, at(4, 10)), (ACKNOWLEDGED, acknowledged, at(5, 9))],
    "IN_RECTIFICATION": [
        (FED_BACK, fed_back, at(4, 10)),
        (ACKNOWLEDGED, acknowledged, at(5, 9)),
        (PLAN, plan, at(5, 15)),
    ],
    "PENDING_VERIFICATION": [
        (FED_BACK, fed_back, at(4, 10)),
        (ACKNOWLEDGED, acknowledged, at(5, 9)),
        (PLAN, plan, at(5, 15)),
        (REPORTED, report, at(12, 10)),
    ],
    "CLOSED": [
        (FED_BACK, fed_back, at(4, 10)),
        (ACKNOWLEDGED, acknowledged, at(5, 9)),
        (PLAN, plan, at(5, 15)),
        (REPORTED, report, at(12, 10)),
        (PASSED, passed, at(13, 10)),
    ],
    "VOIDED": [(VOIDED, voided, at(4, 12))],
}
"""How to bring a fresh finding (recorded at 09:00 on 4 March) to each stage."""


def walk_to(h: DomainHarness, subject: str, stage: str, **recorded_overrides: Any) -> Finding:
    """Record finding ``subject`` on 4 March and drive it to ``stage``."""
    h.send(RECORDED, subject, recorded(**recorded_overrides), time=at(4, 9))
    for event_type, payload, when in STAGE_PATHS[stage]:
        h.send(event_type, subject, payload(), time=when)
    agg = finding(h, subject)
    assert agg.stage == stage
    return agg
