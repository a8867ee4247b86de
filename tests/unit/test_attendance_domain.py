"""Attendance on the volunteer ledger: sessions, hours, approval and points, as scenarios."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from practice_events.contracts.base import CATALOGUE
from practice_events.domain.attendance import (
    AttendancePolicy,
    PointsRule,
    credited_hours,
    levels_reached,
    points_at,
    star_level_for,
)
from practice_events.domain.base import DomainContext
from tests import factories_volunteer as f
from tests.factories_volunteer import at
from tests.harness import DomainHarness

V = f.VOLUNTEER


@pytest.fixture
def h() -> DomainHarness:
    """A district with one ordinary volunteer and one official."""
    harness = f.district(DomainHarness())
    f.enrol(harness)
    f.enrol(harness, f.OFFICIAL, is_official=True)
    return harness


def use_points_rule(h: DomainHarness, rule: PointsRule) -> None:
    """Configure another points rule in the harness's context."""
    h.ctx = DomainContext(services={**h.ctx.services, "points": rule})


class TestCheckIn:
    def test_opens_a_session_for_an_active_volunteer(self, h: DomainHarness) -> None:
        events = h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 9))
        assert f.topics(events) == [f.CHECKED_IN]
        assert events[0].data["participant_kind"] == "volunteer"
        assert h.get("volunteer", V).open_session() == "S-1"

    def test_fills_in_official_as_the_kind_of_an_officials_session(self, h: DomainHarness) -> None:
        events = h.send(f.CHECKED_IN, f.OFFICIAL, f.check_in("S-1"), time=at(4, 9))
        assert events[0].data["participant_kind"] == "official"

    def test_lets_an_official_serve_as_an_ordinary_volunteer(self, h: DomainHarness) -> None:
        data = f.check_in("S-1", participant_kind="volunteer")
        events = h.send(f.CHECKED_IN, f.OFFICIAL, data, time=at(4, 9))
        assert events[0].data["participant_kind"] == "volunteer"

    def test_refuses_an_ordinary_volunteer_serving_as_an_official(self, h: DomainHarness) -> None:
        data = f.check_in("S-1", participant_kind="official")
        error = h.refused(f.CHECKED_IN, V, data, "RULE_VIOLATION", time=at(4, 9))
        assert "not registered as an official" in error.reason

    def test_refuses_a_second_check_in_while_a_session_is_open(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 9))
        error = h.refused(f.CHECKED_IN, V, f.check_in("S-2"), "RULE_VIOLATION", time=at(4, 10))
        assert "session S-1" in error.reason
        assert "still open" in error.reason
        assert error.details["open_session"] == "S-1"

    def test_refuses_reusing_a_session_id(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2)
        error = h.refused(f.CHECKED_IN, V, f.check_in("S-1"), "RULE_VIOLATION", time=at(5, 9))
        assert "already used" in error.reason

    def test_refuses_a_suspended_volunteer(self, h: DomainHarness) -> None:
        h.send(f.STATUS_CHANGED, V, {"status": "suspended", "reason": "缺席五次"})
        h.refused(f.CHECKED_IN, V, f.check_in("S-1"), "ILLEGAL_TRANSITION", time=at(5, 9))

    def test_refuses_an_archived_volunteer(self, h: DomainHarness) -> None:
        h.send(f.STATUS_CHANGED, V, {"status": "archived", "reason": "迁出本区"})
        h.refused(f.CHECKED_IN, V, f.check_in("S-1"), "ILLEGAL_TRANSITION", time=at(5, 9))

    def test_refuses_a_check_in_at_an_unknown_site(self, h: DomainHarness) -> None:
        data = f.check_in("S-1", site_id="NO-SUCH-SITE")
        h.refused(f.CHECKED_IN, V, data, "UNKNOWN_REFERENCE", time=at(4, 9))

    def test_refuses_a_check_in_for_an_unknown_activity(self, h: DomainHarness) -> None:
        data = f.check_in("S-1", activity_id="NO-SUCH-ACTIVITY")
        h.refused(f.CHECKED_IN, V, data, "UNKNOWN_REFERENCE", time=at(4, 9))

    def test_refuses_a_check_in_for_an_unregistered_volunteer(self, h: DomainHarness) -> None:
        h.refused(f.CHECKED_IN, "V-NOBODY", f.check_in(), "UNKNOWN_AGGREGATE", time=at(4, 9))

    def test_refuses_a_check_in_inside_the_previous_session(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        error = h.refused(f.CHECKED_IN, V, f.check_in("S-2"), "OUT_OF_RANGE", time=at(4, 11))
        assert "may not overlap" in error.reason

    def test_accepts_a_check_in_right_at_the_previous_check_out(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        h.send(f.CHECKED_IN, V, f.check_in("S-2"), time=at(4, 12))
        assert h.get("volunteer", V).open_session() == "S-2"


class TestCheckOut:
    def test_credits_completed_quarter_hours_pending_approval(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 9), 2 + 14 / 60)
        assert f.topics(events) == [f.CHECKED_IN, f.CHECKED_OUT, f.HOURS_CREDITED]
        credit = f.only(events, f.HOURS_CREDITED).data
        assert credit["hours"] == 2.0
        assert credit["basis"] == "checkin_checkout"
        assert credit["status"] == "pending"
        assert credit["started_at"] == "2024-03-04T09:00:00+08:00"
        assert credit["ended_at"] == "2024-03-04T11:14:00+08:00"
        v = h.get("volunteer", V)
        assert v.open_session() is None
        assert v.pending_hours() == 2.0
        assert v.approved_hours() == 0.0

    def test_a_full_quarter_hour_counts(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 9), 2.25)
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 2.25

    def test_a_few_minutes_earn_no_hours(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 9), 14 / 60)
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 0.0

    def test_credits_a_session_across_midnight_in_beijing(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 22, 30), 2.75)
        credit = f.only(events, f.HOURS_CREDITED).data
        assert credit["hours"] == 2.75
        assert credit["ended_at"] == "2024-03-05T01:15:00+08:00"

    def test_counts_absolute_time_when_producers_use_other_offsets(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 22))
        out = datetime(2024, 3, 4, 16, 30, tzinfo=UTC)  # 00:30 on 5 March in Beijing
        events = h.send(f.CHECKED_OUT, V, f.check_out("S-1"), time=out)
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 2.5

    def test_carries_the_activity_into_the_credit(self, h: DomainHarness) -> None:
        h.send(
            f.ACTIVITY_PLANNED,
            f.ACTIVITY,
            {
                "site_id": f.STATION,
                "category": "civility_persuasion",
                "title": "景区文明劝导",
                "starts_at": at(5, 9).isoformat(),
                "ends_at": at(5, 12).isoformat(),
            },
            time=at(1, 9),
        )
        h.send(f.CHECKED_IN, V, f.check_in("S-1", activity_id=f.ACTIVITY), time=at(5, 9))
        events = h.send(f.CHECKED_OUT, V, f.check_out("S-1"), time=at(5, 12))
        assert f.only(events, f.HOURS_CREDITED).data["activity_id"] == f.ACTIVITY

    def test_accepts_a_session_of_exactly_twenty_four_hours(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 9), 24)
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 24.0

    def test_refuses_a_session_longer_than_twenty_four_hours(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 9))
        error = h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "OUT_OF_RANGE", time=at(5, 9, 1))
        assert "checkout_auto_closed" in error.reason
        assert h.get("volunteer", V).open_session() == "S-1"

    def test_refuses_a_check_out_before_the_check_in(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 9))
        error = h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "OUT_OF_RANGE", time=at(4, 8))
        assert "before the check-in" in error.reason

    def test_refuses_an_unknown_session(self, h: DomainHarness) -> None:
        error = h.refused(f.CHECKED_OUT, V, f.check_out("S-9"), "RULE_VIOLATION", time=at(4, 9))
        assert "unknown" in error.reason

    def test_refuses_a_second_check_out(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2)
        error = h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "RULE_VIOLATION", time=at(4, 12))
        assert "already closed (checked out)" in error.reason

    def test_refuses_checking_out_a_back_filled_session(self, h: DomainHarness) -> None:
        h.send(f.HOURS_RECORDED, V, f.back_fill("BF-1"), time=at(3, 9))
        error = h.refused(f.CHECKED_OUT, V, f.check_out("BF-1"), "RULE_VIOLATION", time=at(3, 10))
        assert "back-filled" in error.reason

    def test_lets_a_volunteer_suspended_meanwhile_check_out(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 9))
        h.send(f.STATUS_CHANGED, V, {"status": "suspended", "reason": "违规"}, time=at(4, 10))
        events = h.send(f.CHECKED_OUT, V, f.check_out("S-1"), time=at(4, 11))
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 2.0


class TestAutoClose:
    def test_midnight_rule_credits_up_to_local_midnight(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 20))
        events = h.send(f.AUTO_CLOSED, V, f.auto_close("S-1", until=at(5, 0)), time=at(5, 0, 5))
        assert f.topics(events) == [f.AUTO_CLOSED, f.HOURS_CREDITED]
        credit = f.only(events, f.HOURS_CREDITED).data
        assert credit["hours"] == 4.0
        assert credit["basis"] == "auto_closed"
        assert credit["ended_at"] == "2024-03-05T00:00:00+08:00"
        v = h.get("volunteer", V)
        assert v.open_session() is None
        assert v.pending_hours() == 4.0

    def test_midnight_is_beijing_midnight_even_in_utc(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=datetime(2024, 3, 4, 12, tzinfo=UTC))
        utc_midnight = datetime(2024, 3, 5, 0, tzinfo=UTC)  # 08:00 in Beijing: too late
        data = f.auto_close("S-1", until=utc_midnight)
        error = h.refused(f.AUTO_CLOSED, V, data, "OUT_OF_RANGE", time=at(5, 9))
        assert "2024-03-05T00:00:00+08:00" in error.reason
        beijing_midnight = datetime(2024, 3, 4, 16, tzinfo=UTC)
        events = h.send(
            f.AUTO_CLOSED, V, f.auto_close("S-1", until=beijing_midnight), time=at(5, 9)
        )
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 4.0

    @pytest.mark.parametrize("rule", ["shift_end", "default_duration"])
    def test_other_rules_credit_within_a_day(self, h: DomainHarness, rule: str) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 20))
        data = f.auto_close("S-1", until=at(5, 2), rule=rule)
        events = h.send(f.AUTO_CLOSED, V, data, time=at(5, 3))
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 6.0

    def test_refuses_crediting_until_before_the_check_in(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 20))
        data = f.auto_close("S-1", until=at(4, 19), rule="shift_end")
        h.refused(f.AUTO_CLOSED, V, data, "OUT_OF_RANGE", time=at(5, 0, 5))

    def test_refuses_crediting_more_than_a_day(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 20))
        data = f.auto_close("S-1", until=at(5, 20, 15), rule="default_duration")
        error = h.refused(f.AUTO_CLOSED, V, data, "OUT_OF_RANGE", time=at(6, 0))
        assert "more than 24 h" in error.reason

    def test_refuses_crediting_time_that_has_not_passed(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 20))
        data = f.auto_close("S-1", until=at(5, 0))
        error = h.refused(f.AUTO_CLOSED, V, data, "OUT_OF_RANGE", time=at(4, 23))
        assert "already passed" in error.reason

    def test_refuses_closing_a_session_already_checked_out(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2)
        data = f.auto_close("S-1", until=at(5, 0))
        h.refused(f.AUTO_CLOSED, V, data, "RULE_VIOLATION", time=at(5, 0, 5))

    def test_refuses_closing_an_unknown_session(self, h: DomainHarness) -> None:
        data = f.auto_close("S-9", until=at(5, 0))
        h.refused(f.AUTO_CLOSED, V, data, "RULE_VIOLATION", time=at(5, 0, 5))

    def test_lets_the_volunteer_check_in_again(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 20))
        h.send(f.AUTO_CLOSED, V, f.auto_close("S-1", until=at(5, 0)), time=at(5, 0, 5))
        h.send(f.CHECKED_IN, V, f.check_in("S-2"), time=at(5, 9))
        assert h.get("volunteer", V).open_session() == "S-2"


class TestLateCheckOut:
    def auto_closed(self, h: DomainHarness) -> None:
        """S-1 checked in at 20:00 on 4 March, auto-closed at midnight (4 h pending)."""
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 20))
        h.send(f.AUTO_CLOSED, V, f.auto_close("S-1", until=at(5, 0)), time=at(5, 0, 5))

    def test_replaces_the_pending_auto_closed_credit(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        events = h.send(f.CHECKED_OUT, V, f.check_out("S-1"), time=at(4, 22, 30))
        assert f.topics(events) == [f.CHECKED_OUT, f.HOURS_CREDITED]
        assert events[0].data["overrides_auto_close"] is True
        credit = events[1].data
        assert credit["hours"] == 2.5
        assert credit["supersedes_hours"] == 4.0
        assert credit["basis"] == "checkin_checkout"
        assert h.get("volunteer", V).pending_hours() == 2.5

    def test_the_replaced_credit_is_the_one_approved(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        h.send(f.CHECKED_OUT, V, f.check_out("S-1"), time=at(4, 22, 30))
        events = h.send(f.HOURS_APPROVED, V, f.approve("S-1"), time=at(5, 9))
        assert f.only(events, f.HOURS_APPROVED).data["hours"] == 2.5
        v = h.get("volunteer", V)
        assert (v.approved_hours(), v.pending_hours(), v.points_balance()) == (2.5, 0.0, 25)

    def test_frees_the_time_after_the_real_check_out(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        h.send(f.CHECKED_OUT, V, f.check_out("S-1"), time=at(4, 22, 30))
        h.send(f.CHECKED_IN, V, f.check_in("S-2"), time=at(4, 23))
        assert h.get("volunteer", V).open_session() == "S-2"

    def test_refuses_a_late_check_out_after_approval(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        h.send(f.HOURS_APPROVED, V, f.approve("S-1"), time=at(5, 9))
        error = h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "RULE_VIOLATION", time=at(5, 10))
        assert "hours_corrected" in error.reason

    def test_refuses_a_late_check_out_after_rejection(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        h.send(f.HOURS_REJECTED, V, f.reject("S-1"), time=at(5, 9))
        error = h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "RULE_VIOLATION", time=at(5, 10))
        assert "rejected" in error.reason

    def test_refuses_a_second_late_check_out(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        h.send(f.CHECKED_OUT, V, f.check_out("S-1"), time=at(4, 22, 30))
        h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "RULE_VIOLATION", time=at(4, 23))

    def test_refuses_a_late_check_out_into_the_next_session(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        h.send(f.CHECKED_IN, V, f.check_in("S-2"), time=at(5, 8))
        error = h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "OUT_OF_RANGE", time=at(5, 8, 30))
        assert "S-2" in error.reason

    def test_refuses_a_late_check_out_more_than_a_day_later(self, h: DomainHarness) -> None:
        self.auto_closed(h)
        h.refused(f.CHECKED_OUT, V, f.check_out("S-1"), "OUT_OF_RANGE", time=at(5, 21))


class TestBackFill:
    def test_credits_a_back_filled_session_pending(self, h: DomainHarness) -> None:
        events = h.send(f.HOURS_RECORDED, V, f.back_fill("BF-1"), time=at(3, 9))
        assert f.topics(events) == [f.HOURS_RECORDED, f.HOURS_CREDITED]
        assert events[0].data["participant_kind"] == "volunteer"
        credit = events[1].data
        assert (credit["hours"], credit["basis"], credit["status"]) == (3.0, "manual", "pending")
        assert h.get("volunteer", V).pending_hours() == 3.0

    def test_credits_a_back_fill_across_midnight(self, h: DomainHarness) -> None:
        data = f.back_fill("BF-1", start=at(2, 21, 50), end=at(3, 0, 40))
        events = h.send(f.HOURS_RECORDED, V, data, time=at(3, 9))
        assert f.only(events, f.HOURS_CREDITED).data["hours"] == 2.75

    def test_refuses_a_session_id_already_used(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(1, 9), 2)
        h.refused(f.HOURS_RECORDED, V, f.back_fill("S-1"), "RULE_VIOLATION", time=at(3, 9))

    def test_refuses_service_that_has_not_ended_yet(self, h: DomainHarness) -> None:
        error = h.refused(f.HOURS_RECORDED, V, f.back_fill("BF-1"), "OUT_OF_RANGE", time=at(2, 10))
        assert "future" in error.reason

    def test_refuses_overlapping_the_open_session(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(2, 10))
        error = h.refused(f.HOURS_RECORDED, V, f.back_fill("BF-1"), "OUT_OF_RANGE", time=at(2, 12))
        assert "may not overlap" in error.reason

    def test_refuses_an_ordinary_volunteer_as_official(self, h: DomainHarness) -> None:
        data = f.back_fill("BF-1", participant_kind="official")
        h.refused(f.HOURS_RECORDED, V, data, "RULE_VIOLATION", time=at(3, 9))

    def test_credits_an_officials_back_fill_as_official(self, h: DomainHarness) -> None:
        events = h.send(f.HOURS_RECORDED, f.OFFICIAL, f.back_fill("BF-1"), time=at(3, 9))
        assert f.only(events, f.HOURS_CREDITED).data["participant_kind"] == "official"

    def test_refuses_an_unknown_site(self, h: DomainHarness) -> None:
        data = f.back_fill("BF-1", site_id="NO-SUCH-SITE")
        h.refused(f.HOURS_RECORDED, V, data, "UNKNOWN_REFERENCE", time=at(3, 9))

    def test_blocks_a_check_in_inside_the_back_filled_time(self, h: DomainHarness) -> None:
        h.send(f.HOURS_RECORDED, V, f.back_fill("BF-1"), time=at(2, 12))
        h.refused(f.CHECKED_IN, V, f.check_in("S-1"), "OUT_OF_RANGE", time=at(2, 11))


class TestApproval:
    def test_moves_hours_to_approved_and_awards_points(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        events = h.send(f.HOURS_APPROVED, V, f.approve("S-1"), time=at(4, 13))
        assert f.topics(events) == [f.HOURS_APPROVED, f.POINTS_AWARDED]
        approved = events[0].data
        assert approved["hours"] == 3.0
        assert approved["points_rate"] == 10.0
        assert approved["points_rule_version"] == "qufu-10-per-hour-v1"
        award = events[1].data
        assert award == {
            "session_id": "S-1",
            "points": 30,
            "hours": 3.0,
            "rate": 10.0,
            "rule_version": "qufu-10-per-hour-v1",
            "cause": "approval",
        }
        v = h.get("volunteer", V)
        assert (v.approved_hours(), v.pending_hours(), v.points_balance()) == (3.0, 0.0, 30)

    def test_rounds_points_half_up(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 9), 2.25, approve_it=True)
        assert f.only(events, f.POINTS_AWARDED).data["points"] == 23

    def test_awards_no_points_for_no_hours(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 9), 0.1, approve_it=True)
        assert f.topics(events)[-1] == f.HOURS_APPROVED
        assert h.get("volunteer", V).points_balance() == 0

    def test_follows_the_configured_points_rule(self, h: DomainHarness) -> None:
        use_points_rule(h, PointsRule(points_per_hour=1, rule_version="gz-time-bank-v1"))
        events = f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        award = f.only(events, f.POINTS_AWARDED).data
        assert (award["points"], award["rule_version"]) == (3, "gz-time-bank-v1")

    def test_refuses_approving_twice(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        error = h.refused(f.HOURS_APPROVED, V, f.approve("S-1"), "ILLEGAL_TRANSITION")
        assert "approved only once" in error.reason

    def test_refuses_approving_rejected_hours(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        h.send(f.HOURS_REJECTED, V, f.reject("S-1"), time=at(4, 13))
        h.refused(f.HOURS_APPROVED, V, f.approve("S-1"), "ILLEGAL_TRANSITION")

    def test_refuses_approving_an_open_session(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 9))
        error = h.refused(f.HOURS_APPROVED, V, f.approve("S-1"), "ILLEGAL_TRANSITION")
        assert "still open" in error.reason

    def test_refuses_approving_an_unknown_session(self, h: DomainHarness) -> None:
        h.refused(f.HOURS_APPROVED, V, f.approve("S-9"), "RULE_VIOLATION")

    def test_refuses_a_volunteer_approving_their_own_hours(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        error = h.refused(f.HOURS_APPROVED, V, f.approve("S-1", approver=V), "RULE_VIOLATION")
        assert "own hours" in error.reason


class TestRejection:
    def test_rejecting_pending_hours_drops_them_without_points(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        events = h.send(f.HOURS_REJECTED, V, f.reject("S-1"), time=at(4, 13))
        assert f.topics(events) == [f.HOURS_REJECTED]
        assert events[0].data["previous_status"] == "pending"
        v = h.get("volunteer", V)
        assert (v.approved_hours(), v.pending_hours(), v.points_balance()) == (0.0, 0.0, 0)

    def test_rejecting_approved_hours_reverses_their_points(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        events = h.send(f.HOURS_REJECTED, V, f.reject("S-1"), time=at(5, 9))
        assert f.topics(events) == [f.HOURS_REJECTED, f.POINTS_REVERSED]
        assert events[0].data["previous_status"] == "approved"
        reversal = events[1].data
        assert (reversal["points"], reversal["hours"], reversal["cause"]) == (30, 0.0, "rejection")
        v = h.get("volunteer", V)
        assert (v.approved_hours(), v.points_balance()) == (0.0, 0)

    def test_reversal_may_leave_the_balance_below_zero(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        h.send(f.POINTS_REDEEMED, V, f.redeem(25), time=at(4, 14))
        h.send(f.HOURS_REJECTED, V, f.reject("S-1"), time=at(5, 9))
        assert h.get("volunteer", V).points_balance() == -25
        h.refused(f.POINTS_REDEEMED, V, f.redeem(1), "RULE_VIOLATION", time=at(5, 10))

    def test_refuses_rejecting_twice(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        h.send(f.HOURS_REJECTED, V, f.reject("S-1"), time=at(4, 13))
        h.refused(f.HOURS_REJECTED, V, f.reject("S-1"), "ILLEGAL_TRANSITION")

    def test_refuses_rejecting_an_open_session(self, h: DomainHarness) -> None:
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(4, 9))
        h.refused(f.HOURS_REJECTED, V, f.reject("S-1"), "ILLEGAL_TRANSITION")

    def test_refuses_a_volunteer_rejecting_their_own_hours(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        h.refused(f.HOURS_REJECTED, V, f.reject("S-1", approver=V), "RULE_VIOLATION")


class TestCorrection:
    def test_a_negative_correction_reverses_the_points_difference(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        events = h.send(f.HOURS_CORRECTED, V, f.correct("S-1", -0.5), time=at(5, 9))
        assert f.topics(events) == [f.HOURS_CORRECTED, f.POINTS_REVERSED]
        assert events[0].data["hours_before"] == 3.0
        assert events[0].data["hours_after"] == 2.5
        assert events[1].data["points"] == 5
        assert events[1].data["cause"] == "correction"
        v = h.get("volunteer", V)
        assert (v.approved_hours(), v.points_balance()) == (2.5, 25)

    def test_a_positive_correction_awards_more_points(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        events = h.send(f.HOURS_CORRECTED, V, f.correct("S-1", 1.0), time=at(5, 9))
        assert f.topics(events) == [f.HOURS_CORRECTED, f.POINTS_AWARDED]
        assert events[1].data["points"] == 10
        assert events[1].data["hours"] == 4.0
        assert h.get("volunteer", V).approved_hours() == 4.0

    def test_rounding_never_drifts_over_several_corrections(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2, approve_it=True)
        for _ in range(3):
            h.send(f.HOURS_CORRECTED, V, f.correct("S-1", -0.25), time=at(5, 9))
        v = h.get("volunteer", V)
        assert v.approved_hours() == 1.25
        assert v.points_balance() == points_at(1.25, 10) == 13

    def test_keeps_the_rate_the_session_was_approved_under(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2, approve_it=True)
        use_points_rule(h, PointsRule(points_per_hour=1, rule_version="v2"))
        events = h.send(f.HOURS_CORRECTED, V, f.correct("S-1", 1.0), time=at(5, 9))
        award = f.only(events, f.POINTS_AWARDED).data
        assert (award["points"], award["rate"]) == (10, 10.0)

    def test_corrects_down_to_zero(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2, approve_it=True)
        h.send(f.HOURS_CORRECTED, V, f.correct("S-1", -2.0), time=at(5, 9))
        v = h.get("volunteer", V)
        assert (v.approved_hours(), v.points_balance()) == (0.0, 0)

    def test_refuses_going_below_zero(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2, approve_it=True)
        error = h.refused(f.HOURS_CORRECTED, V, f.correct("S-1", -2.25), "OUT_OF_RANGE")
        assert "outside 0..24" in error.reason

    def test_refuses_going_beyond_a_day(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 20, approve_it=True)
        h.refused(f.HOURS_CORRECTED, V, f.correct("S-1", 4.25), "OUT_OF_RANGE")

    def test_refuses_correcting_pending_hours(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2)
        error = h.refused(f.HOURS_CORRECTED, V, f.correct("S-1"), "ILLEGAL_TRANSITION")
        assert "only approved hours" in error.reason

    def test_refuses_correcting_rejected_hours(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2, approve_it=True)
        h.send(f.HOURS_REJECTED, V, f.reject("S-1"), time=at(5, 9))
        h.refused(f.HOURS_CORRECTED, V, f.correct("S-1"), "ILLEGAL_TRANSITION")

    def test_refuses_correcting_an_unknown_session(self, h: DomainHarness) -> None:
        h.refused(f.HOURS_CORRECTED, V, f.correct("S-9"), "RULE_VIOLATION")

    def test_refuses_a_volunteer_correcting_their_own_hours(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2, approve_it=True)
        h.refused(f.HOURS_CORRECTED, V, f.correct("S-1", approver=V), "RULE_VIOLATION")


class TestEmittedEvents:
    def scenario(self, h: DomainHarness) -> list[Any]:
        """Every kind of system event: credits, awards, a reversal and a star."""
        events: list[Any] = []
        for day in range(5):
            start = datetime(2024, 1, 1 + day, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
            data = f.back_fill(f"BF-{day}", start=start, end=start + timedelta(hours=20))
            events += h.send(f.HOURS_RECORDED, V, data, time=start + timedelta(hours=21))
            events += h.send(
                f.HOURS_APPROVED, V, f.approve(f"BF-{day}"), time=start + timedelta(hours=22)
            )
        events += h.send(f.HOURS_CORRECTED, V, f.correct("BF-0", -0.25), time=at(1, 9))
        return events

    def test_system_events_match_their_published_contracts(self, h: DomainHarness) -> None:
        events = self.scenario(h)
        kinds = set(f.topics(events))
        assert {
            f.HOURS_CREDITED,
            f.POINTS_AWARDED,
            f.POINTS_REVERSED,
            f.STAR_LEVEL_ATTAINED,
        } <= kinds
        for event in events:
            model = CATALOGUE[event.meta["type"]]
            if model.SYSTEM:
                model.model_validate(event.data)

    def test_system_events_name_their_cause_with_distinct_ids(self, h: DomainHarness) -> None:
        events = self.scenario(h)
        ids = [event.meta["id"] for event in events]
        assert len(ids) == len(set(ids))
        for event in events:
            meta = event.meta
            if CATALOGUE[meta["type"]].SYSTEM:
                assert meta["source"] == "practice-events"
                assert meta["cause"]
                assert meta["subject"] == V


class TestRules:
    def test_hours_are_completed_quarter_hours(self) -> None:
        start = at(4, 9)
        assert credited_hours(start, start) == 0.0
        assert credited_hours(start, start + timedelta(minutes=14, seconds=59)) == 0.0
        assert credited_hours(start, start + timedelta(minutes=15)) == 0.25
        assert credited_hours(start, start + timedelta(hours=7, minutes=59)) == 7.75

    def test_hours_refuse_a_negative_session(self) -> None:
        with pytest.raises(ValueError, match="before it starts"):
            credited_hours(at(4, 9), at(4, 8))

    def test_star_levels_follow_the_mca_thresholds(self) -> None:
        assert [
            star_level_for(x) for x in (0, 99.75, 100, 299, 300, 600, 1000, 1499, 1500, 9e3)
        ] == [
            0,
            0,
            1,
            1,
            2,
            3,
            4,
            4,
            5,
            5,
        ]

    def test_only_levels_above_the_current_one_are_reached(self) -> None:
        assert levels_reached(0, 350) == [(1, 100.0), (2, 300.0)]
        assert levels_reached(2, 350) == []
        assert levels_reached(1, 99) == []

    def test_points_round_half_up_exactly(self) -> None:
        assert points_at(0.25, 10) == 3
        assert points_at(0.75, 10) == 8
        assert points_at(1.15, 10) == 12  # 11.5 exactly, not 11.499999...
        assert PointsRule().points_for(402) == 4020

    def test_a_points_rule_needs_a_positive_rate(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            PointsRule(points_per_hour=0)

    def test_midnight_is_local_to_the_network(self) -> None:
        shanghai = AttendancePolicy.for_timezone("Asia/Shanghai")
        utc = AttendancePolicy.for_timezone("UTC")
        moment = datetime(2024, 3, 4, 17, tzinfo=UTC)  # 01:00 on 5 March in Shanghai
        assert shanghai.midnight_after(moment) == datetime(2024, 3, 5, 16, tzinfo=UTC)
        assert utc.midnight_after(moment) == datetime(2024, 3, 5, 0, tzinfo=UTC)
        assert AttendancePolicy.for_timezone(None).zone == ZoneInfo("Asia/Shanghai")
