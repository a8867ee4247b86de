"""House meetings (屋场会), their five steps and the concerns raised, as scenarios."""

from __future__ import annotations

import pytest

from practice_events.domain.meeting import STEPS, Meeting
from tests import factories_site as f
from tests.harness import DomainHarness

MEETING = "M-2024-0308"


@pytest.fixture
def h() -> DomainHarness:
    """A harness with the small network and one house meeting held on 8 March 2024."""
    harness = DomainHarness()
    f.network(harness)
    harness.send(f.HELD, MEETING, f.meeting(), time=f.at(8, 21, 30))
    return harness


def the_meeting(h: DomainHarness) -> Meeting:
    """Return the meeting of the fixture."""
    meeting = h.get("meeting", MEETING)
    assert isinstance(meeting, Meeting)
    return meeting


def step(name: str) -> dict[str, str]:
    """A step-log payload."""
    return {"step": name, "summary": f"{name} done"}


class TestHold:
    def test_records_site_times_and_attendance(self, h: DomainHarness) -> None:
        meeting = the_meeting(h)
        assert meeting.site_id == "WLY-WC-1"
        assert meeting.started_at == f.at(8, 19, 30).isoformat()
        assert meeting.attendees_count == 46
        assert meeting.steps_logged == ()
        assert not meeting.is_complete

    def test_records_the_officials_present(self, h: DomainHarness) -> None:
        h.send("practice.volunteer.registered.v1", "V-1", {"home_site_id": "WLY-ZHAN-1"})
        h.send(f.HELD, "M-2", f.meeting(officials_present=["V-1"]))
        assert h.get("meeting", "M-2").officials_present == ["V-1"]

    def test_rejects_an_official_never_registered(self, h: DomainHarness) -> None:
        data = f.meeting(officials_present=["V-404"])
        error = h.refused(f.HELD, "M-2", data, "UNKNOWN_REFERENCE")
        assert "V-404" in error.reason

    def test_rejects_a_meeting_at_a_site_never_registered(self, h: DomainHarness) -> None:
        h.refused(f.HELD, "M-2", f.meeting(site_id="NOWHERE"), "UNKNOWN_REFERENCE")

    def test_rejects_holding_the_same_meeting_twice(self, h: DomainHarness) -> None:
        h.refused(f.HELD, MEETING, f.meeting(), "AGGREGATE_EXISTS")


class TestLogStep:
    def test_logs_steps_in_any_order_and_reports_them_in_method_order(
        self, h: DomainHarness
    ) -> None:
        h.send(f.STEP, MEETING, step("listen"), time=f.at(8, 20))
        h.send(f.STEP, MEETING, step("explain"), time=f.at(8, 19, 40))
        meeting = the_meeting(h)
        assert meeting.steps_logged == ("explain", "listen")
        assert meeting.missing_steps == ("perform", "evaluate", "resolve")
        assert meeting.steps["listen"] == f.at(8, 20).isoformat()
        assert not meeting.is_complete

    def test_all_five_steps_make_the_meeting_complete(self, h: DomainHarness) -> None:
        for name in STEPS:
            h.send(f.STEP, MEETING, step(name))
        meeting = the_meeting(h)
        assert meeting.is_complete
        assert meeting.steps_logged == STEPS
        assert meeting.missing_steps == ()

    def test_rejects_logging_a_step_twice(self, h: DomainHarness) -> None:
        h.send(f.STEP, MEETING, step("perform"))
        error = h.refused(f.STEP, MEETING, step("perform"), "ILLEGAL_TRANSITION")
        assert "perform (演) was already logged" in error.reason

    def test_rejects_a_step_of_a_meeting_never_held(self, h: DomainHarness) -> None:
        h.refused(f.STEP, "M-404", step("explain"), "UNKNOWN_AGGREGATE")


class TestRaiseConcern:
    def test_a_raised_concern_is_open(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C2", category="elder_care"))
        meeting = the_meeting(h)
        assert meeting.open_concerns == ["C1", "C2"]
        assert meeting.concerns["C2"]["category"] == "elder_care"

    def test_rejects_a_concern_id_used_before(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        error = h.refused(f.CONCERN_RAISED, MEETING, f.concern("C1"), "RULE_VIOLATION")
        assert "already raised" in error.reason


class TestResolveConcernOnSpot:
    def test_an_open_concern_is_resolved(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C2"))
        h.send(f.CONCERN_RESOLVED, MEETING, {"concern_id": "C1", "resolution": "当场答复"})
        meeting = the_meeting(h)
        assert meeting.concerns_by_status("resolved_on_spot") == ["C1"]
        assert meeting.open_concerns == ["C2"]

    def test_rejects_resolving_a_concern_never_raised(self, h: DomainHarness) -> None:
        data = {"concern_id": "C9", "resolution": "x"}
        error = h.refused(f.CONCERN_RESOLVED, MEETING, data, "RULE_VIOLATION")
        assert "no concern 'C9'" in error.reason

    def test_rejects_resolving_twice(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        h.send(f.CONCERN_RESOLVED, MEETING, {"concern_id": "C1", "resolution": "x"})
        data = {"concern_id": "C1", "resolution": "y"}
        error = h.refused(f.CONCERN_RESOLVED, MEETING, data, "ILLEGAL_TRANSITION")
        assert "already resolved on the spot" in error.reason

    def test_rejects_resolving_a_converted_concern(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        converted = {"concern_id": "C1", "to": "need", "target_id": "N-1"}
        h.send(f.CONCERN_CONVERTED, MEETING, converted)
        data = {"concern_id": "C1", "resolution": "y"}
        error = h.refused(f.CONCERN_RESOLVED, MEETING, data, "ILLEGAL_TRANSITION")
        assert "already converted to need 'N-1'" in error.reason


class TestConvertConcern:
    @pytest.mark.parametrize("target", ["need", "finding"])
    def test_an_open_concern_becomes_a_need_or_a_finding(
        self, h: DomainHarness, target: str
    ) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        data = {"concern_id": "C1", "to": target, "target_id": "X-1"}
        h.send(f.CONCERN_CONVERTED, MEETING, data)
        meeting = the_meeting(h)
        assert meeting.concerns_by_status("converted") == ["C1"]
        assert (meeting.concerns["C1"]["to"], meeting.concerns["C1"]["target_id"]) == (
            target,
            "X-1",
        )

    def test_the_target_need_may_not_exist_yet(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        data = {"concern_id": "C1", "to": "need", "target_id": "N-not-yet"}
        h.send(f.CONCERN_CONVERTED, MEETING, data)
        assert the_meeting(h).open_concerns == []

    def test_rejects_converting_a_concern_never_raised(self, h: DomainHarness) -> None:
        data = {"concern_id": "C9", "to": "need", "target_id": "N-1"}
        h.refused(f.CONCERN_CONVERTED, MEETING, data, "RULE_VIOLATION")

    def test_rejects_converting_twice(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        h.send(f.CONCERN_CONVERTED, MEETING, {"concern_id": "C1", "to": "need", "target_id": "N"})
        data = {"concern_id": "C1", "to": "finding", "target_id": "F"}
        h.refused(f.CONCERN_CONVERTED, MEETING, data, "ILLEGAL_TRANSITION")

    def test_rejects_converting_a_concern_resolved_on_the_spot(self, h: DomainHarness) -> None:
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        h.send(f.CONCERN_RESOLVED, MEETING, {"concern_id": "C1", "resolution": "x"})
        data = {"concern_id": "C1", "to": "finding", "target_id": "F"}
        h.refused(f.CONCERN_CONVERTED, MEETING, data, "ILLEGAL_TRANSITION")


class TestTopics:
    def test_every_stored_event_is_named_by_its_cloudevents_type(self, h: DomainHarness) -> None:
        h.send(f.STEP, MEETING, step("explain"))
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C1"))
        h.send(f.CONCERN_RAISED, MEETING, f.concern("C2"))
        h.send(f.CONCERN_RESOLVED, MEETING, {"concern_id": "C1", "resolution": "x"})
        h.send(f.CONCERN_CONVERTED, MEETING, {"concern_id": "C2", "to": "need", "target_id": "N"})
        for event in h.emitted:
            assert event.meta["type"] == type(event).TOPIC
