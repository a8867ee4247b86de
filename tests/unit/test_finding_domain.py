"""The closed loop of findings as scenarios: every transition, legal and illegal, and the SLA clock.

Unless a test says otherwise a finding is of normal severity, recorded at
09:00 on Monday 4 March 2024 and fed back at 10:00 the same day, on
:data:`~tests.factories_finding.TEST_CALENDAR` (8 March a holiday, 16 March a
make-up working day). Its due times are then: acknowledgement end of 6 March
(2 wd), rectification end of 25 March (15 wd).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest

from practice_events.domain.base import SYSTEM_SOURCE
from practice_events.domain.finding import Finding
from practice_events.domain.sla import SlaPolicy
from tests import factories_finding as f
from tests.factories_finding import (
    ACKNOWLEDGED,
    CALLBACK,
    CLOSED,
    ESCALATED,
    EXT_DENIED,
    EXT_GRANTED,
    EXT_REQUESTED,
    FAILED,
    FED_BACK,
    INSPECTION,
    OVERDUE,
    PASSED,
    PLAN,
    REASSIGNED,
    RECORDED,
    REOPENED,
    REPORTED,
    RETURNED,
    TEST_CALENDAR,
    VOIDED,
    at,
    end_of,
    finding,
    finding_harness,
    refused_system,
    send_system,
    walk_to,
)
from tests.harness import DomainHarness


@pytest.fixture
def h() -> DomainHarness:
    """A harness with the test calendar, the default policy and three sites."""
    return finding_harness()


def types(events: list[Any]) -> list[str]:
    """The CloudEvents types of domain events (their topics)."""
    return [e.meta["type"] for e in events]


def fed(h: DomainHarness, subject: str = "F-1", **recorded: Any) -> Finding:
    """Record a finding at 09:00 on 4 March and feed it back at 10:00."""
    return walk_to(h, subject, "FED_BACK", **recorded)


# --- Inspections and recording --------------------------------------------------------------------


class TestInspection:
    def test_records_an_inspection_of_a_known_site(self, h: DomainHarness) -> None:
        events = h.send(INSPECTION, "INS-1", f.inspection())
        assert types(events) == [INSPECTION]
        inspection = h.get("inspection", "INS-1")
        assert inspection.site_id == f.STATION
        assert inspection.inspector_ids == ["INSP-017", "INSP-021"]

    def test_rejects_an_inspection_of_an_unknown_site(self, h: DomainHarness) -> None:
        h.refused(INSPECTION, "INS-1", f.inspection(site_id="NOWHERE"), "UNKNOWN_REFERENCE")

    def test_rejects_the_same_inspection_twice(self, h: DomainHarness) -> None:
        h.send(INSPECTION, "INS-1", f.inspection())
        h.refused(INSPECTION, "INS-1", f.inspection(), "AGGREGATE_EXISTS")


class TestRecord:
    def test_a_recorded_finding_is_found_with_no_clock(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded(), time=at(4, 9))
        agg = finding(h, "F-1")
        assert agg.stage == "FOUND"
        assert agg.cycle == 1
        assert agg.sla_status("acknowledgement", at(20)) == "not_started"
        assert agg.overdue_checks(at(30)) == []

    def test_links_an_existing_inspection(self, h: DomainHarness) -> None:
        h.send(INSPECTION, "INS-1", f.inspection())
        h.send(RECORDED, "F-1", f.recorded(source="inspection", inspection_id="INS-1"))
        assert finding(h, "F-1").inspection_id == "INS-1"

    @pytest.mark.parametrize(
        "overrides",
        [
            {"site_id": "NOWHERE"},
            {"responsible_unit_id": "NOWHERE"},
            {"source": "inspection", "inspection_id": "INS-404"},
            {"related_to": "F-404"},
        ],
    )
    def test_rejects_references_to_unknown_aggregates(
        self, h: DomainHarness, overrides: dict[str, Any]
    ) -> None:
        h.refused(RECORDED, "F-1", f.recorded(**overrides), "UNKNOWN_REFERENCE")

    def test_a_recurrence_links_the_earlier_finding(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded())
        h.send(RECORDED, "F-2", f.recorded(related_to="F-1"))
        assert finding(h, "F-2").related_to == "F-1"

    def test_rejects_recording_the_same_finding_twice(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded())
        h.refused(RECORDED, "F-1", f.recorded(), "AGGREGATE_EXISTS")

    def test_rejects_events_for_a_finding_never_recorded(self, h: DomainHarness) -> None:
        h.refused(FED_BACK, "F-404", f.fed_back(), "UNKNOWN_AGGREGATE")


# --- Feed-back and the due times the policy decides -----------------------------------------------


class TestFeedBack:
    def test_computes_due_times_on_working_days_and_records_them(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded(), time=at(4, 9))
        (event,) = h.send(FED_BACK, "F-1", f.fed_back(), time=at(4, 10))
        assert event.data["ack_due_at"] == end_of(6).isoformat()
        assert event.data["rectify_due_at"] == end_of(25).isoformat()
        assert event.data["ack_budget"] == "2wd"
        assert event.data["rectify_budget"] == "15wd"
        assert event.data["policy_version"] == SlaPolicy().version
        assert event.data["responsible_unit_id"] == f.RESPONSIBLE
        agg = finding(h, "F-1")
        assert agg.stage == "FED_BACK"
        assert agg.effective_due_at("acknowledgement") == end_of(6)
        assert agg.effective_due_at("verification") is None

    def test_a_high_finding_before_the_holiday_gets_the_monday_after(
        self, h: DomainHarness
    ) -> None:
        h.send(RECORDED, "F-1", f.recorded(severity="high"), time=at(7, 9))
        (event,) = h.send(FED_BACK, "F-1", f.fed_back(), time=at(7, 10))
        assert event.data["ack_due_at"] == end_of(11).isoformat()  # Friday 8th is a holiday
        # 11, 12, 13, 14, 15 → the end of Friday the 15th
        assert event.data["rectify_due_at"] == end_of(15).isoformat()

    def test_a_make_up_saturday_counts(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded(severity="high"), time=at(15, 9))
        (event,) = h.send(FED_BACK, "F-1", f.fed_back(), time=at(15, 10))
        assert event.data["ack_due_at"] == end_of(16).isoformat()

    def test_a_critical_finding_runs_on_calendar_hours(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded(severity="critical"), time=at(9, 9))
        (event,) = h.send(FED_BACK, "F-1", f.fed_back(), time=at(9, 22, 30))  # a Saturday
        assert event.data["ack_due_at"] == at(10, 0, 30).isoformat()
        assert event.data["rectify_due_at"] == at(10, 22, 30).isoformat()

    def test_rejects_feed_back_without_a_responsible_unit(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded(responsible_unit_id=None))
        error = h.refused(FED_BACK, "F-1", f.fed_back(), "RULE_VIOLATION")
        assert "responsible unit" in error.reason

    def test_names_the_responsible_unit_at_feed_back(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded(responsible_unit_id=None))
        h.send(FED_BACK, "F-1", f.fed_back(to_unit_id=f.OTHER_STATION))
        assert finding(h, "F-1").responsible_unit_id == f.OTHER_STATION

    def test_rejects_an_unknown_unit(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-1", f.recorded())
        h.refused(FED_BACK, "F-1", f.fed_back(to_unit_id="NOWHERE"), "UNKNOWN_REFERENCE")

    def test_rejects_a_second_feed_back(self, h: DomainHarness) -> None:
        fed(h)
        h.refused(FED_BACK, "F-1", f.fed_back(), "ILLEGAL_TRANSITION")

    def test_the_policy_in_force_decides_not_the_one_at_replay(self, h: DomainHarness) -> None:
        fed(h)
        events = [e for e in h.emitted if e.originator_id == finding(h, "F-1").id]
        rebuilt = replay(events)
        assert rebuilt.clocks == finding(h, "F-1").clocks


class TestAcknowledge:
    def test_acknowledged_in_time_is_met(self, h: DomainHarness) -> None:
        fed(h)
        (event,) = h.send(ACKNOWLEDGED, "F-1", f.acknowledged(), time=at(6, 23, 59))
        assert event.data["ack_outcome"] == "met"
        agg = finding(h, "F-1")
        assert agg.stage == "ACKNOWLEDGED"
        assert agg.sla_status("acknowledgement", at(30)) == "met"

    def test_acknowledged_after_the_due_time_is_met_late(self, h: DomainHarness) -> None:
        fed(h)
        (event,) = h.send(ACKNOWLEDGED, "F-1", f.acknowledged(), time=at(7, 0, 1))
        assert event.data["ack_outcome"] == "met_late"
        assert finding(h, "F-1").sla_status("acknowledgement", at(30)) == "met_late"

    def test_rejects_acknowledging_a_returned_finding(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        error = h.refused(ACKNOWLEDGED, "F-1", f.acknowledged(), "ILLEGAL_TRANSITION")
        assert "ruling" in error.reason

    def test_rejects_acknowledging_before_feed_back(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "FOUND")
        h.refused(ACKNOWLEDGED, "F-1", f.acknowledged(), "ILLEGAL_TRANSITION")


class TestReturn:
    def test_a_unit_returns_a_finding_before_acknowledging_it(self, h: DomainHarness) -> None:
        fed(h)
        (event,) = h.send(RETURNED, "F-1", f.returned(), time=at(4, 15))
        assert event.data["return_count"] == 1
        agg = finding(h, "F-1")
        assert agg.stage == "DISPUTED"
        assert agg.return_count == 1

    def test_rejects_return_after_acknowledgement(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "ACKNOWLEDGED")
        error = h.refused(RETURNED, "F-1", f.returned(), "ILLEGAL_TRANSITION")
        assert "before acknowledgement" in error.reason

    def test_rejects_a_second_return_before_the_ruling(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        h.refused(RETURNED, "F-1", f.returned(), "ILLEGAL_TRANSITION")

    def test_the_acknowledgement_clock_keeps_running_while_disputed(self, h: DomainHarness) -> None:
        agg = walk_to(h, "F-1", "DISPUTED")
        assert agg.sla_status("acknowledgement", at(7)) == "breached"
        assert agg.overdue_checks(at(7)) == [("acknowledgement", end_of(6))]


class TestReassign:
    def test_a_ruling_to_another_unit_restarts_the_clocks_for_it(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        (event,) = h.send(REASSIGNED, "F-1", f.reassigned(), time=at(5, 10))
        assert event.data["clock_restarted"] is True
        assert event.data["from_unit_id"] == f.RESPONSIBLE
        assert event.data["ack_due_at"] == end_of(7).isoformat()
        agg = finding(h, "F-1")
        assert agg.stage == "FED_BACK"
        assert agg.responsible_unit_id == f.OTHER_STATION
        assert agg.effective_due_at("acknowledgement") == end_of(7)

    def test_a_ruling_that_keeps_the_unit_keeps_its_clock(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        (event,) = h.send(REASSIGNED, "F-1", f.reassigned(f.RESPONSIBLE), time=at(5, 10))
        assert event.data["clock_restarted"] is False
        assert "ack_due_at" not in event.data
        assert finding(h, "F-1").effective_due_at("acknowledgement") == end_of(6)

    def test_the_ruling_may_override_the_default(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        h.send(
            REASSIGNED,
            "F-1",
            f.reassigned(f.RESPONSIBLE, restart_clock=True),
            time=at(5, 10),
        )
        assert finding(h, "F-1").effective_due_at("acknowledgement") == end_of(7)
        walk_to(h, "F-2", "DISPUTED")
        h.send(REASSIGNED, "F-2", f.reassigned(restart_clock=False), time=at(5, 10))
        assert finding(h, "F-2").effective_due_at("acknowledgement") == end_of(6)

    def test_after_a_ruling_the_unit_can_acknowledge(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        h.send(REASSIGNED, "F-1", f.reassigned(), time=at(5, 10))
        h.send(ACKNOWLEDGED, "F-1", f.acknowledged(), time=at(6, 10))
        assert finding(h, "F-1").stage == "ACKNOWLEDGED"

    @pytest.mark.parametrize("stage", ["FOUND", "FED_BACK", "ACKNOWLEDGED", "CLOSED"])
    def test_rejects_a_ruling_on_a_finding_not_returned(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        h.refused(REASSIGNED, "F-1", f.reassigned(), "ILLEGAL_TRANSITION")

    def test_rejects_an_unknown_unit(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        h.refused(REASSIGNED, "F-1", f.reassigned("NOWHERE"), "UNKNOWN_REFERENCE")


# --- Rectification --------------------------------------------------------------------------------


class TestPlan:
    def test_a_plan_starts_rectification(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "ACKNOWLEDGED")
        (event,) = h.send(PLAN, "F-1", f.plan(), time=at(5, 15))
        assert event.data["plan_no"] == 1
        assert finding(h, "F-1").stage == "IN_RECTIFICATION"

    def test_a_revised_plan_stays_in_rectification(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        (event,) = h.send(PLAN, "F-1", f.plan(root_cause="制度缺失"), time=at(6, 15))
        assert event.data["plan_no"] == 2
        assert finding(h, "F-1").plan_count == 2

    @pytest.mark.parametrize("stage", ["FOUND", "FED_BACK", "DISPUTED", "PENDING_VERIFICATION"])
    def test_rejects_a_plan_outside_rectification(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        h.refused(PLAN, "F-1", f.plan(), "ILLEGAL_TRANSITION")


class TestRectificationReport:
    def test_a_normal_finding_may_be_fixed_without_a_plan(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "ACKNOWLEDGED")
        (event,) = h.send(REPORTED, "F-1", f.report(), time=at(12, 10))
        assert event.data["rectify_outcome"] == "met"
        # verification: 5 wd from the 12th → 13, 14, 15, 16 (make-up), 18
        assert event.data["verify_due_at"] == end_of(18).isoformat()
        assert event.data["verify_budget"] == "5wd"
        agg = finding(h, "F-1")
        assert agg.stage == "PENDING_VERIFICATION"
        assert agg.sla_status("rectification", at(30)) == "met"
        assert agg.sla_status("verification", at(18, 12)) == "running"

    @pytest.mark.parametrize("severity", ["high", "critical"])
    def test_rejects_a_report_without_a_plan_for_serious_findings(
        self, h: DomainHarness, severity: str
    ) -> None:
        walk_to(h, "F-1", "ACKNOWLEDGED", severity=severity)
        error = h.refused(REPORTED, "F-1", f.report(), "RULE_VIOLATION")
        assert "plan" in error.reason

    def test_a_serious_finding_is_reported_after_its_plan(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION", severity="high")
        (event,) = h.send(REPORTED, "F-1", f.report(), time=at(12, 10))
        # high: rectification due 5 wd from the 4th → 5, 6, 7, 11, 12
        assert event.data["rectify_due_at"] == end_of(12).isoformat()
        assert event.data["rectify_outcome"] == "met"

    def test_a_late_report_is_met_late_even_when_backdated(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        data = f.report(completed_at=at(25, 12).isoformat())
        (event,) = h.send(REPORTED, "F-1", data, time=at(26, 9))
        assert event.data["rectify_outcome"] == "met_late"

    def test_rejects_a_completion_after_the_report(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        data = f.report(completed_at=at(13, 12).isoformat())
        h.refused(REPORTED, "F-1", data, "OUT_OF_RANGE", time=at(12, 10))

    @pytest.mark.parametrize("stage", ["FOUND", "FED_BACK", "DISPUTED", "PENDING_VERIFICATION"])
    def test_rejects_a_report_outside_rectification(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        h.refused(REPORTED, "F-1", f.report(), "ILLEGAL_TRANSITION")


class TestExtension:
    def test_a_granted_extension_moves_the_effective_due_time(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        (request,) = h.send(EXT_REQUESTED, "F-1", f.extension(end_of(29)), time=at(20, 10))
        assert request.data["stage"] == "rectification"
        assert request.data["current_due_at"] == end_of(25).isoformat()
        (grant,) = h.send(EXT_GRANTED, "F-1", f.grant(end_of(28)), time=at(21, 10))
        assert grant.data["previous_due_at"] == end_of(25).isoformat()
        agg = finding(h, "F-1")
        assert agg.effective_due_at("rectification") == end_of(28)
        assert agg.clocks["rectification"]["original_due_at"] == end_of(25).isoformat()
        assert agg.sla_status("rectification", at(27)) == "running"
        (event,) = h.send(REPORTED, "F-1", f.report(), time=at(27, 10))
        assert event.data["rectify_outcome"] == "met"

    def test_a_grant_may_come_after_the_old_deadline(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(29)), time=at(25, 20))
        h.send(EXT_GRANTED, "F-1", f.grant(end_of(29)), time=at(26, 10))
        assert finding(h, "F-1").sla_status("rectification", at(27)) == "running"

    def test_rejects_an_extension_asked_at_or_after_the_deadline(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        error = h.refused(
            EXT_REQUESTED, "F-1", f.extension(end_of(29)), "RULE_VIOLATION", time=at(26, 9)
        )
        assert "before the deadline" in error.reason
        h.refused(EXT_REQUESTED, "F-1", f.extension(end_of(29)), "RULE_VIOLATION", time=end_of(25))

    def test_rejects_asking_for_no_more_time(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.refused(EXT_REQUESTED, "F-1", f.extension(end_of(25)), "OUT_OF_RANGE", time=at(20))
        h.refused(EXT_REQUESTED, "F-1", f.extension(at(22)), "OUT_OF_RANGE", time=at(20))

    def test_rejects_a_second_request_while_one_is_pending(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(29)), time=at(20, 10))
        h.refused(EXT_REQUESTED, "F-1", f.extension(end_of(29)), "ILLEGAL_TRANSITION", time=at(21))

    def test_rejects_a_grant_that_does_not_move_the_deadline_later(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(29)), time=at(20, 10))
        h.refused(EXT_GRANTED, "F-1", f.grant(end_of(25)), "OUT_OF_RANGE", time=at(21))

    def test_rejects_a_decision_without_a_request(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.refused(EXT_GRANTED, "F-1", f.grant(end_of(29)), "ILLEGAL_TRANSITION")
        h.refused(EXT_DENIED, "F-1", f.deny(), "ILLEGAL_TRANSITION")

    def test_a_denied_extension_keeps_the_due_time(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(29)), time=at(20, 10))
        h.send(EXT_DENIED, "F-1", f.deny(), time=at(21, 10))
        agg = finding(h, "F-1")
        assert agg.effective_due_at("rectification") == end_of(25)
        assert agg.pending_extension is None
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(29)), time=at(22, 10))  # may ask again

    def test_rejects_an_extension_of_acknowledgement(self, h: DomainHarness) -> None:
        fed(h)
        h.refused(EXT_REQUESTED, "F-1", f.extension(end_of(8)), "ILLEGAL_TRANSITION", time=at(5))

    def test_an_extension_while_pending_verification_moves_the_verification_due(
        self, h: DomainHarness
    ) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        (request,) = h.send(EXT_REQUESTED, "F-1", f.extension(end_of(20)), time=at(14))
        assert request.data["stage"] == "verification"
        h.send(EXT_GRANTED, "F-1", f.grant(end_of(20)), time=at(15))
        assert finding(h, "F-1").effective_due_at("verification") == end_of(20)

    def test_meeting_the_target_drops_a_pending_request(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(29)), time=at(11, 10))
        h.send(REPORTED, "F-1", f.report(), time=at(12, 10))
        h.refused(EXT_GRANTED, "F-1", f.grant(end_of(29)), "ILLEGAL_TRANSITION", time=at(13))


# --- Verification, closure, callback, reopen ------------------------------------------------------


class TestVerification:
    def test_an_independent_pass_closes_as_fixed_verified(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        (event,) = h.send(PASSED, "F-1", f.passed(), time=at(13, 10))
        assert event.data["closure"] == "fixed_verified"
        assert event.data["closed_on_time"] is True
        assert event.data["sla_outcomes"] == {
            "acknowledgement": "met",
            "rectification": "met",
            "verification": "met",
        }
        agg = finding(h, "F-1")
        assert agg.stage == "CLOSED"
        assert agg.closure == "fixed_verified"
        assert not agg.is_open

    def test_a_late_rectification_closes_not_on_time(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.send(REPORTED, "F-1", f.report(), time=at(26, 10))
        (event,) = h.send(PASSED, "F-1", f.passed(), time=at(27, 10))
        assert event.data["closed_on_time"] is False
        assert event.data["sla_outcomes"]["rectification"] == "met_late"

    @pytest.mark.parametrize("event_type", [PASSED, FAILED])
    def test_rejects_a_verifier_of_the_responsible_unit(
        self, h: DomainHarness, event_type: str
    ) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        build = f.passed if event_type == PASSED else f.failed
        error = h.refused(
            event_type, "F-1", build(verifier_unit_id=f.RESPONSIBLE), "RULE_VIOLATION"
        )
        assert "responsible unit" in error.reason

    @pytest.mark.parametrize("event_type", [PASSED, FAILED])
    def test_rejects_the_reporter_as_verifier(self, h: DomainHarness, event_type: str) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        build = f.passed if event_type == PASSED else f.failed
        h.refused(event_type, "F-1", build(verifier_id="ZHAN1-CLERK"), "RULE_VIOLATION")

    def test_a_failed_verification_reopens_with_a_shorter_deadline(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        failed_event, reopened_event = h.send(FAILED, "F-1", f.failed(), time=at(13, 10))
        assert types([failed_event, reopened_event]) == [FAILED, REOPENED]
        assert failed_event.data["verify_outcome"] == "met"
        assert reopened_event.data["cause"] == "verification_failed"
        assert reopened_event.data["explanation"] == "仍缺2月台账"
        assert reopened_event.data["cycle"] == 2
        assert reopened_event.data["rectify_budget"] == "7wd"  # 50% of 15 wd, rounded down
        # 7 wd from the 13th: 14, 15, 16 (make-up), 18, 19, 20, 21
        assert reopened_event.data["rectify_due_at"] == end_of(21).isoformat()
        assert reopened_event.meta["source"] == SYSTEM_SOURCE
        assert reopened_event.meta["cause"] == failed_event.meta["id"]
        agg = finding(h, "F-1")
        assert agg.stage == "IN_RECTIFICATION"
        assert agg.cycle == 2
        assert agg.reopen_count == 1
        assert agg.sla_status("verification", at(30)) == "not_started"
        assert agg.sla_status("rectification", at(21, 12)) == "running"

    def test_the_reporter_of_an_earlier_cycle_may_not_verify_the_next(
        self, h: DomainHarness
    ) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        h.send(FAILED, "F-1", f.failed(), time=at(13, 10))
        h.send(REPORTED, "F-1", f.report(reported_by="ZHAN1-HEAD"), time=at(14, 10))
        h.refused(PASSED, "F-1", f.passed(verifier_id="ZHAN1-HEAD"), "RULE_VIOLATION")
        h.send(PASSED, "F-1", f.passed(verifier_id="ZHAN1-CLERK"), time=at(15, 10))

    @pytest.mark.parametrize("stage", ["FED_BACK", "ACKNOWLEDGED", "IN_RECTIFICATION", "CLOSED"])
    def test_rejects_verification_when_nothing_awaits_it(
        self, h: DomainHarness, stage: str
    ) -> None:
        walk_to(h, "F-1", stage)
        h.refused(PASSED, "F-1", f.passed(), "ILLEGAL_TRANSITION")
        h.refused(FAILED, "F-1", f.failed(), "ILLEGAL_TRANSITION")

    def test_rejects_an_unknown_verifier_unit(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        h.refused(PASSED, "F-1", f.passed(verifier_unit_id="NOWHERE"), "UNKNOWN_REFERENCE")


class TestCallback:
    def test_recorded_while_pending_verification(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        h.send(CALLBACK, "F-1", f.callback(), time=at(13))
        assert finding(h, "F-1").callback_count == 1

    def test_recorded_after_closure_within_the_window(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        (event,) = h.send(CALLBACK, "F-1", f.callback(), time=at(14, 10))
        assert event.data["callback_no"] == 1
        assert finding(h, "F-1").stage == "CLOSED"

    def test_rejects_a_callback_after_the_window(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")  # closed at 10:00 on 13 March
        late = at(13, 10) + timedelta(days=90, seconds=1)
        error = h.refused(CALLBACK, "F-1", f.callback(), "RULE_VIOLATION", time=late)
        assert "window" in error.reason

    @pytest.mark.parametrize("stage", ["FOUND", "FED_BACK", "IN_RECTIFICATION", "VOIDED"])
    def test_rejects_a_callback_before_the_work_is_done(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        h.refused(CALLBACK, "F-1", f.callback(), "ILLEGAL_TRANSITION")


class TestReopen:
    def test_reopens_a_closed_finding_for_recurrence(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        (event,) = h.send(REOPENED, "F-1", f.reopened(), time=at(20, 10))
        assert event.data["cycle"] == 2
        assert event.data["reopen_count"] == 1
        # 7 wd from the 20th: 21, 22, 25, 26, 27, 28, 29
        assert event.data["rectify_due_at"] == end_of(29).isoformat()
        agg = finding(h, "F-1")
        assert agg.stage == "IN_RECTIFICATION"
        assert agg.closure is None
        assert agg.sla_status("acknowledgement", at(30)) == "met"

    def test_every_reopened_cycle_gets_half_the_original_budget(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        h.send(REOPENED, "F-1", f.reopened(), time=at(14, 10))
        h.send(REPORTED, "F-1", f.report(), time=at(15, 10))
        h.send(PASSED, "F-1", f.passed(), time=at(18, 10))
        (event,) = h.send(REOPENED, "F-1", f.reopened(), time=at(19, 10))
        assert event.data["cycle"] == 3
        assert event.data["reopen_count"] == 2
        assert event.data["rectify_budget"] == "7wd"

    def test_rejects_a_reopen_after_the_window(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        late = at(13, 10) + timedelta(days=91)
        error = h.refused(REOPENED, "F-1", f.reopened(), "RULE_VIOLATION", time=late)
        assert "related_to" in error.reason

    def test_the_window_is_the_policy_s(self) -> None:
        h = finding_harness(SlaPolicy(reopen_window=timedelta(days=3)))
        walk_to(h, "F-1", "CLOSED")
        h.refused(REOPENED, "F-1", f.reopened(), "RULE_VIOLATION", time=at(17, 10))
        h.send(REOPENED, "F-1", f.reopened(), time=at(16, 10))

    def test_rejects_a_reopen_dated_before_the_closure(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        h.refused(REOPENED, "F-1", f.reopened(), "OUT_OF_RANGE", time=at(13, 9))

    def test_an_unsatisfied_callback_must_be_on_record(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        data = f.reopened(cause="callback_unsatisfied")
        h.refused(REOPENED, "F-1", data, "RULE_VIOLATION", time=at(14))
        h.send(CALLBACK, "F-1", f.callback(satisfied="no"), time=at(14, 10))
        h.refused(REOPENED, "F-1", data, "RULE_VIOLATION", time=at(14, 11))
        h.send(
            CALLBACK,
            "F-1",
            f.callback(satisfied="no", attributable_to_handler=True),
            time=at(14, 12),
        )
        (event,) = h.send(REOPENED, "F-1", data, time=at(14, 13))
        assert event.data["cause"] == "callback_unsatisfied"

    def test_rejects_a_reopen_of_a_finding_closed_without_a_fix(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "FED_BACK")
        h.send(CLOSED, "F-1", f.closed(), time=at(5))
        error = h.refused(REOPENED, "F-1", f.reopened(), "RULE_VIOLATION", time=at(6))
        assert "new finding" in error.reason

    def test_rejects_a_producer_reopen_for_failed_verification(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        data = f.reopened(cause="verification_failed")
        h.refused(REOPENED, "F-1", data, "RULE_VIOLATION", time=at(14))

    def test_rejects_a_reopen_while_pending_verification(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        error = h.refused(REOPENED, "F-1", f.reopened(), "ILLEGAL_TRANSITION", time=at(13))
        assert "verification_failed" in error.reason

    @pytest.mark.parametrize("stage", ["FOUND", "FED_BACK", "IN_RECTIFICATION", "VOIDED"])
    def test_rejects_a_reopen_of_an_unclosed_finding(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        h.refused(REOPENED, "F-1", f.reopened(), "ILLEGAL_TRANSITION", time=at(14))


class TestClose:
    @pytest.mark.parametrize("stage", ["FOUND", "FED_BACK", "ACKNOWLEDGED", "DISPUTED"])
    def test_closes_without_a_fix_before_rectification(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        (event,) = h.send(CLOSED, "F-1", f.closed(), time=at(6))
        assert event.data["from_stage"] == stage
        agg = finding(h, "F-1")
        assert agg.stage == "CLOSED"
        assert agg.closure == "not_applicable"
        assert agg.overdue_checks(at(30)) == []

    def test_open_clocks_are_cancelled(self, h: DomainHarness) -> None:
        fed(h)
        h.send(CLOSED, "F-1", f.closed(), time=at(5))
        agg = finding(h, "F-1")
        assert agg.sla_status("acknowledgement", at(30)) == "cancelled"
        assert agg.sla_status("rectification", at(30)) == "cancelled"

    def test_closes_as_duplicate_of_another_finding(self, h: DomainHarness) -> None:
        h.send(RECORDED, "F-0", f.recorded())
        walk_to(h, "F-1", "FED_BACK")
        data = f.closed(closure="duplicate", related_finding_id="F-0")
        h.send(CLOSED, "F-1", data, time=at(5))
        assert finding(h, "F-1").closure == "duplicate"

    def test_rejects_a_duplicate_of_itself(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "FED_BACK")
        data = f.closed(closure="merged", related_finding_id="F-1")
        h.refused(CLOSED, "F-1", data, "RULE_VIOLATION")

    def test_rejects_a_duplicate_of_an_unknown_finding(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "FED_BACK")
        data = f.closed(closure="duplicate", related_finding_id="F-404")
        h.refused(CLOSED, "F-1", data, "UNKNOWN_REFERENCE")

    def test_fixed_verified_only_through_verification(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        error = h.refused(CLOSED, "F-1", f.closed(closure="fixed_verified"), "RULE_VIOLATION")
        assert "verification_passed" in error.reason

    @pytest.mark.parametrize(
        "stage", ["IN_RECTIFICATION", "PENDING_VERIFICATION", "CLOSED", "VOIDED"]
    )
    def test_rejects_closing_without_a_fix_once_work_started_or_ended(
        self, h: DomainHarness, stage: str
    ) -> None:
        walk_to(h, "F-1", stage)
        h.refused(CLOSED, "F-1", f.closed(), "ILLEGAL_TRANSITION")


class TestVoid:
    @pytest.mark.parametrize(
        "stage",
        [
            "FOUND",
            "FED_BACK",
            "DISPUTED",
            "ACKNOWLEDGED",
            "IN_RECTIFICATION",
            "PENDING_VERIFICATION",
        ],
    )
    def test_voids_from_any_open_stage(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        (event,) = h.send(VOIDED, "F-1", f.voided(), time=at(20))
        assert event.data["from_stage"] == stage
        agg = finding(h, "F-1")
        assert agg.stage == "VOIDED"
        assert agg.overdue_checks(at(30)) == []

    @pytest.mark.parametrize("stage", ["CLOSED", "VOIDED"])
    def test_rejects_voiding_a_finished_finding(self, h: DomainHarness, stage: str) -> None:
        walk_to(h, "F-1", stage)
        h.refused(VOIDED, "F-1", f.voided(), "ILLEGAL_TRANSITION")

    def test_voiding_needs_an_approver(self, h: DomainHarness) -> None:
        fed(h)
        h.refused(VOIDED, "F-1", f.voided(approver=None), "SCHEMA_VIOLATION")

    def test_nothing_is_deleted(self, h: DomainHarness) -> None:
        fed(h)
        h.send(VOIDED, "F-1", f.voided(), time=at(5))
        agg = finding(h, "F-1")
        assert agg.version == 3  # recorded, fed back, voided: history kept
        assert agg.responsible_unit_id == f.RESPONSIBLE

    @pytest.mark.parametrize(
        ("event_type", "build"),
        [(ACKNOWLEDGED, f.acknowledged), (PLAN, f.plan), (CALLBACK, f.callback)],
    )
    def test_a_voided_finding_takes_no_more_events(
        self, h: DomainHarness, event_type: str, build: Callable[[], dict[str, Any]]
    ) -> None:
        walk_to(h, "F-1", "VOIDED")
        h.refused(event_type, "F-1", build(), "ILLEGAL_TRANSITION")


# --- The SLA clock: overdue, escalation, status ---------------------------------------------------


class TestOverdue:
    def test_lists_what_is_overdue_and_marks_it_once(self, h: DomainHarness) -> None:
        agg = fed(h)
        assert agg.overdue_checks(end_of(6)) == []
        assert agg.overdue_checks(at(7)) == [("acknowledgement", end_of(6))]
        data = {"stage": "acknowledgement", "due_at": end_of(6).isoformat()}
        (event,) = send_system(h, OVERDUE, "F-1", data, at(7))
        assert event.data["cycle"] == 1
        assert agg.overdue_checks(at(8)) == []
        refused_system(h, OVERDUE, "F-1", data, "ILLEGAL_TRANSITION", time=at(8))

    def test_the_same_due_time_in_another_offset_is_the_same_pair(self, h: DomainHarness) -> None:
        fed(h)
        data = {"stage": "acknowledgement", "due_at": end_of(6).isoformat()}
        send_system(h, OVERDUE, "F-1", data, at(7))
        utc = {"stage": "acknowledgement", "due_at": "2024-03-06T15:59:59.999999Z"}
        refused_system(h, OVERDUE, "F-1", utc, "ILLEGAL_TRANSITION", time=at(8))

    def test_rejects_overdue_before_the_due_time(self, h: DomainHarness) -> None:
        fed(h)
        data = {"stage": "acknowledgement", "due_at": end_of(6).isoformat()}
        refused_system(h, OVERDUE, "F-1", data, "OUT_OF_RANGE", time=at(6, 12))

    def test_rejects_overdue_for_a_target_already_met(self, h: DomainHarness) -> None:
        fed(h)
        h.send(ACKNOWLEDGED, "F-1", f.acknowledged(), time=at(7, 10))  # met late
        data = {"stage": "acknowledgement", "due_at": end_of(6).isoformat()}
        refused_system(h, OVERDUE, "F-1", data, "ILLEGAL_TRANSITION", time=at(8))

    def test_rejects_overdue_for_a_due_time_that_is_no_longer_effective(
        self, h: DomainHarness
    ) -> None:
        walk_to(h, "F-1", "IN_RECTIFICATION")
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(28)), time=at(20))
        h.send(EXT_GRANTED, "F-1", f.grant(end_of(28)), time=at(21))
        stale = {"stage": "rectification", "due_at": end_of(25).isoformat()}
        refused_system(h, OVERDUE, "F-1", stale, "ILLEGAL_TRANSITION", time=at(26))
        agg = finding(h, "F-1")
        assert agg.overdue_checks(at(26)) == []
        assert agg.overdue_checks(at(29)) == [("rectification", end_of(28))]
        moved = {"stage": "rectification", "due_at": end_of(28).isoformat()}
        send_system(h, OVERDUE, "F-1", moved, at(29))

    def test_rejects_overdue_for_a_clock_not_started(self, h: DomainHarness) -> None:
        fed(h)
        data = {"stage": "verification", "due_at": end_of(6).isoformat()}
        refused_system(h, OVERDUE, "F-1", data, "ILLEGAL_TRANSITION", time=at(8))

    def test_rejects_overdue_on_a_closed_finding(self, h: DomainHarness) -> None:
        fed(h)
        h.send(CLOSED, "F-1", f.closed(), time=at(5))
        data = {"stage": "acknowledgement", "due_at": end_of(6).isoformat()}
        refused_system(h, OVERDUE, "F-1", data, "ILLEGAL_TRANSITION", time=at(8))

    def test_a_reopened_cycle_can_be_overdue_again(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "PENDING_VERIFICATION")
        h.send(FAILED, "F-1", f.failed(), time=at(13, 10))
        assert finding(h, "F-1").overdue_checks(at(22)) == [("rectification", end_of(21))]


class TestEscalate:
    def test_escalates_an_overdue_stage_one_way_up(self, h: DomainHarness) -> None:
        agg = fed(h)
        data = {"stage": "acknowledgement", "level": 1, "to": "supervisor"}
        (event,) = send_system(h, ESCALATED, "F-1", data, at(7, 10))
        assert event.data["due_at"] == end_of(6).isoformat()
        assert agg.escalations == {"acknowledgement": 1}
        refused_system(h, ESCALATED, "F-1", data, "ILLEGAL_TRANSITION", time=at(7, 11))
        send_system(h, ESCALATED, "F-1", {"stage": "acknowledgement", "level": 3}, at(20))
        lower = {"stage": "acknowledgement", "level": 2}
        refused_system(h, ESCALATED, "F-1", lower, "ILLEGAL_TRANSITION", time=at(21))

    def test_rejects_escalating_what_is_not_overdue(self, h: DomainHarness) -> None:
        fed(h)
        data = {"stage": "acknowledgement", "level": 1}
        refused_system(h, ESCALATED, "F-1", data, "ILLEGAL_TRANSITION", time=at(6, 10))
        h.send(ACKNOWLEDGED, "F-1", f.acknowledged(), time=at(7, 10))
        refused_system(h, ESCALATED, "F-1", data, "ILLEGAL_TRANSITION", time=at(8))

    def test_escalation_checks_follow_the_ladder(self, h: DomainHarness) -> None:
        agg = fed(h)  # acknowledgement due end of the 6th
        policy = SlaPolicy()
        assert agg.escalation_checks(at(6, 12), TEST_CALENDAR, policy) == []
        assert agg.escalation_checks(at(7, 10), TEST_CALENDAR, policy) == [("acknowledgement", 1)]
        # T+5: 7, 11, 12, 13, 14
        assert agg.escalation_checks(at(14, 10), TEST_CALENDAR, policy) == [("acknowledgement", 2)]
        send_system(h, ESCALATED, "F-1", {"stage": "acknowledgement", "level": 2}, at(14, 10))
        assert agg.escalation_checks(at(15, 10), TEST_CALENDAR, policy) == []


class TestSlaQueries:
    def test_overdue_working_days_skip_holidays(self, h: DomainHarness) -> None:
        agg = fed(h)
        assert agg.overdue_working_days(at(6, 12), TEST_CALENDAR) == 0
        assert agg.overdue_working_days(at(7, 10), TEST_CALENDAR) == 1
        assert agg.overdue_working_days(at(10, 10), TEST_CALENDAR) == 1  # 8th holiday, weekend
        assert agg.overdue_working_days(at(11, 10), TEST_CALENDAR) == 2
        assert agg.overdue_working_days(at(11, 10), TEST_CALENDAR, "rectification") == 0

    def test_a_closed_finding_is_never_overdue(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "CLOSED")
        agg = finding(h, "F-1")
        assert agg.overdue_working_days(at(30), TEST_CALENDAR) == 0
        assert agg.escalation_checks(at(30), TEST_CALENDAR, SlaPolicy()) == []

    def test_rejects_an_unknown_stage(self, h: DomainHarness) -> None:
        agg = fed(h)
        with pytest.raises(ValueError, match="unknown SLA stage"):
            agg.sla_status("lunch", at(5))


# --- Every stage against every producer event -----------------------------------------------------


OK = "ok"
STAGES = [
    "FOUND",
    "FED_BACK",
    "DISPUTED",
    "ACKNOWLEDGED",
    "IN_RECTIFICATION",
    "PENDING_VERIFICATION",
    "CLOSED",
    "VOIDED",
]
EVENTS: dict[str, Callable[[], dict[str, Any]]] = {
    FED_BACK: f.fed_back,
    ACKNOWLEDGED: f.acknowledged,
    RETURNED: f.returned,
    REASSIGNED: f.reassigned,
    PLAN: f.plan,
    EXT_REQUESTED: lambda: f.extension(end_of(29)),
    EXT_GRANTED: lambda: f.grant(end_of(29)),
    EXT_DENIED: f.deny,
    REPORTED: f.report,
    PASSED: f.passed,
    FAILED: f.failed,
    CALLBACK: f.callback,
    REOPENED: f.reopened,
    CLOSED: f.closed,
    VOIDED: f.voided,
}
ALLOWED: dict[str, set[str]] = {
    FED_BACK: {"FOUND"},
    ACKNOWLEDGED: {"FED_BACK"},
    RETURNED: {"FED_BACK"},
    REASSIGNED: {"DISPUTED"},
    PLAN: {"ACKNOWLEDGED", "IN_RECTIFICATION"},
    EXT_REQUESTED: {"ACKNOWLEDGED", "IN_RECTIFICATION", "PENDING_VERIFICATION"},
    EXT_GRANTED: set(),  # nothing pending in a plain walk
    EXT_DENIED: set(),
    REPORTED: {"ACKNOWLEDGED", "IN_RECTIFICATION"},
    PASSED: {"PENDING_VERIFICATION"},
    FAILED: {"PENDING_VERIFICATION"},
    CALLBACK: {"PENDING_VERIFICATION", "CLOSED"},
    REOPENED: {"CLOSED"},
    CLOSED: {"FOUND", "FED_BACK", "ACKNOWLEDGED", "DISPUTED"},
    VOIDED: {
        "FOUND",
        "FED_BACK",
        "DISPUTED",
        "ACKNOWLEDGED",
        "IN_RECTIFICATION",
        "PENDING_VERIFICATION",
    },
}
RESULT: dict[str, str] = {
    FED_BACK: "FED_BACK",
    ACKNOWLEDGED: "ACKNOWLEDGED",
    RETURNED: "DISPUTED",
    REASSIGNED: "FED_BACK",
    PLAN: "IN_RECTIFICATION",
    REPORTED: "PENDING_VERIFICATION",
    PASSED: "CLOSED",
    FAILED: "IN_RECTIFICATION",
    REOPENED: "IN_RECTIFICATION",
    CLOSED: "CLOSED",
    VOIDED: "VOIDED",
}


class TestStageEventMatrix:
    @pytest.mark.parametrize("stage", STAGES)
    @pytest.mark.parametrize("event_type", list(EVENTS), ids=lambda t: t.split(".")[2])
    def test_each_event_is_allowed_exactly_where_the_loop_says(
        self, h: DomainHarness, stage: str, event_type: str
    ) -> None:
        walk_to(h, "F-1", stage)
        data = EVENTS[event_type]()
        if stage in ALLOWED[event_type]:
            h.send(event_type, "F-1", data, time=at(14, 10))
            agg = finding(h, "F-1")
            assert agg.stage == RESULT.get(event_type, stage)
        else:
            h.refused(event_type, "F-1", data, "ILLEGAL_TRANSITION", time=at(14, 10))


# --- Whole loops ----------------------------------------------------------------------------------


def replay(events: list[Any]) -> Finding:
    """Rebuild a finding from its stored events alone (no policy, no calendar)."""
    agg: Any = None
    for event in events:
        agg = event.mutate(agg)
    assert isinstance(agg, Finding)
    return agg


class TestWholeLoop:
    def test_every_path_of_the_loop(self, h: DomainHarness) -> None:
        """Returned, ruled, planned, extended, failed, reopened, closed, reopened again, closed."""
        h.send(INSPECTION, "INS-1", f.inspection(), time=at(4, 11))
        h.send(
            RECORDED,
            "F-1",
            f.recorded(source="inspection", inspection_id="INS-1", severity="high"),
            time=at(4, 12),
        )
        h.send(FED_BACK, "F-1", f.fed_back(), time=at(4, 14))
        h.send(RETURNED, "F-1", f.returned(), time=at(4, 16))
        h.send(REASSIGNED, "F-1", f.reassigned(), time=at(5, 9))  # to WLY-ZHAN-2, clocks restart
        h.send(ACKNOWLEDGED, "F-1", f.acknowledged(by="ZHAN2-CLERK"), time=at(5, 11))
        h.send(PLAN, "F-1", f.plan(), time=at(5, 15))
        # high: rectification 5 wd from the 5th → 6, 7, 11, 12, 13
        assert finding(h, "F-1").effective_due_at("rectification") == end_of(13)
        h.send(EXT_REQUESTED, "F-1", f.extension(end_of(15)), time=at(12, 9))
        h.send(EXT_GRANTED, "F-1", f.grant(end_of(15)), time=at(12, 15))
        h.send(REPORTED, "F-1", f.report(reported_by="ZHAN2-CLERK"), time=at(15, 9))
        h.send(FAILED, "F-1", f.failed(), time=at(18, 9))  # cycle 2
        h.send(PLAN, "F-1", f.plan(root_cause="上次整改不彻底"), time=at(18, 15))
        h.send(REPORTED, "F-1", f.report(reported_by="ZHAN2-HEAD"), time=at(19, 9))
        h.send(CALLBACK, "F-1", f.callback(), time=at(19, 15))
        (closing,) = h.send(PASSED, "F-1", f.passed(), time=at(20, 9))
        assert closing.data["cycle"] == 2
        assert closing.data["closed_on_time"] is True
        h.send(
            CALLBACK,
            "F-1",
            f.callback(satisfied="no", attributable_to_handler=True),
            time=at(21, 9),
        )
        h.send(REOPENED, "F-1", f.reopened(cause="callback_unsatisfied"), time=at(21, 10))
        h.send(REPORTED, "F-1", f.report(reported_by="ZHAN2-HEAD"), time=at(27, 9))
        (final,) = h.send(PASSED, "F-1", f.passed(), time=at(28, 9))
        assert final.data["cycle"] == 3
        assert final.data["reopen_count"] == 2
        # cycle 3: 2 wd (50% of the original 5 wd) from the 21st → due end of the 25th
        assert final.data["rectify_due_at"] == end_of(25).isoformat()
        assert final.data["closed_on_time"] is False

        agg = finding(h, "F-1")
        assert agg.stage == "CLOSED"
        assert agg.cycle == 3
        assert agg.return_count == 1
        history = [e for e in h.emitted if e.originator_id == agg.id]
        assert types(history) == [
            RECORDED,
            FED_BACK,
            RETURNED,
            REASSIGNED,
            ACKNOWLEDGED,
            PLAN,
            EXT_REQUESTED,
            EXT_GRANTED,
            REPORTED,
            FAILED,
            REOPENED,
            PLAN,
            REPORTED,
            CALLBACK,
            PASSED,
            CALLBACK,
            REOPENED,
            REPORTED,
            PASSED,
        ]
        rebuilt = replay(history)
        assert vars(rebuilt) == vars(agg)
        for event in history:  # stored state is JSON-native
            orjson.dumps({"data": event.data, "meta": event.meta})

    def test_a_low_finding_fixed_directly_after_acknowledgement(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "ACKNOWLEDGED", severity="low")
        h.send(REPORTED, "F-1", f.report(), time=at(6, 10))
        (event,) = h.send(PASSED, "F-1", f.passed(), time=at(7, 10))
        assert event.data["sla_outcomes"] == {
            "acknowledgement": "met",
            "rectification": "met",
            "verification": "met",
        }

    def test_a_critical_finding_breached_on_every_stage(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "FED_BACK", severity="critical")  # fed back 10:00 on the 4th
        agg = finding(h, "F-1")
        assert agg.overdue_checks(at(5, 11)) == [
            ("acknowledgement", at(4, 12)),
            ("rectification", at(5, 10)),
        ]
        h.send(ACKNOWLEDGED, "F-1", f.acknowledged(), time=at(5, 12))
        h.send(PLAN, "F-1", f.plan(), time=at(5, 13))
        h.send(REPORTED, "F-1", f.report(), time=at(6, 10))
        h.send(PASSED, "F-1", f.passed(), time=at(11, 10))  # verify 1 wd → end of the 7th
        assert {
            s: agg.sla_status(s, at(30))
            for s in ("acknowledgement", "rectification", "verification")
        } == {
            "acknowledgement": "met_late",
            "rectification": "met_late",
            "verification": "met_late",
        }

    def test_closed_as_not_applicable_and_voided_paths(self, h: DomainHarness) -> None:
        walk_to(h, "F-1", "DISPUTED")
        h.send(CLOSED, "F-1", f.closed(), time=at(5))
        walk_to(h, "F-2", "IN_RECTIFICATION")
        h.send(VOIDED, "F-2", f.voided(), time=at(6))
        assert finding(h, "F-1").stage == "CLOSED"
        assert finding(h, "F-2").stage == "VOIDED"
