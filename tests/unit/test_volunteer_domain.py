"""Volunteers, teams, officials' dual check-in, points redemption and star levels, as scenarios."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from practice_events.domain.base import DomainContext
from practice_events.domain.volunteer import Team, Volunteer, services
from tests import factories_volunteer as f
from tests.factories_volunteer import at
from tests.harness import CST, DomainHarness

V = f.VOLUNTEER
OFF = f.OFFICIAL


@pytest.fixture
def h() -> DomainHarness:
    """A district (with a team) with one ordinary volunteer and one official."""
    harness = f.district(DomainHarness(), with_team=True)
    f.enrol(harness)
    f.enrol(harness, OFF, is_official=True)
    return harness


def bank_hours(h: DomainHarness, hours: int, *, subject: str = V, first: int = 0) -> list[Any]:
    """Back-fill and approve ``hours`` of service in sessions of 20 h; return the events."""
    assert hours % 20 == 0
    events: list[Any] = []
    base = datetime(2023, 1, 1, 0, tzinfo=CST)
    for n in range(first, first + hours // 20):
        start = base + timedelta(days=n)
        end = start + timedelta(hours=20)
        events += h.send(
            f.HOURS_RECORDED,
            subject,
            f.back_fill(f"BF-{n}", start=start, end=end),
            time=end + timedelta(hours=1),
        )
        events += h.send(
            f.HOURS_APPROVED, subject, f.approve(f"BF-{n}"), time=end + timedelta(hours=2)
        )
    return events


class TestRegistration:
    def test_registers_a_volunteer_with_an_empty_ledger(self, h: DomainHarness) -> None:
        v: Volunteer = h.get("volunteer", V)
        assert v.subject == V
        assert (v.home_site_id, v.skills, v.status) == (
            f.STATION,
            ["first_aid", "legal_advice"],
            "active",
        )
        assert not v.is_official
        assert v.home_unit_id is None
        assert (v.approved_hours(), v.pending_hours(), v.points_balance()) == (0.0, 0.0, 0)
        assert (v.star_level(), v.open_session()) == (0, None)

    def test_registers_an_official_with_the_employer_unit(self, h: DomainHarness) -> None:
        official: Volunteer = h.get("volunteer", OFF)
        assert official.is_official
        assert official.home_unit_id == "WLY-DEPT-FINANCE"

    def test_refuses_registering_a_volunteer_number_twice(self, h: DomainHarness) -> None:
        h.refused(f.REGISTERED, V, f.volunteer(), "AGGREGATE_EXISTS")

    def test_refuses_an_unknown_home_site(self, h: DomainHarness) -> None:
        h.refused(f.REGISTERED, "V-NEW", f.volunteer(home_site_id="NOWHERE"), "UNKNOWN_REFERENCE")

    def test_refuses_events_for_an_unregistered_volunteer(self, h: DomainHarness) -> None:
        h.refused(f.SKILLS_UPDATED, "V-NOBODY", {"skills": []}, "UNKNOWN_AGGREGATE")


class TestStatus:
    def test_suspends_an_active_volunteer(self, h: DomainHarness) -> None:
        events = h.send(f.STATUS_CHANGED, V, {"status": "suspended", "reason": "缺席五次"})
        assert f.topics(events) == [f.STATUS_CHANGED]
        assert h.get("volunteer", V).status == "suspended"

    def test_refuses_a_change_to_the_same_status(self, h: DomainHarness) -> None:
        data = {"status": "active", "reason": "复核"}
        error = h.refused(f.STATUS_CHANGED, V, data, "ILLEGAL_TRANSITION")
        assert "already active" in error.reason

    def test_reactivates_an_archived_volunteer(self, h: DomainHarness) -> None:
        h.send(f.STATUS_CHANGED, V, {"status": "archived", "reason": "迁出"})
        h.send(f.STATUS_CHANGED, V, {"status": "active", "reason": "迁回"})
        h.send(f.CHECKED_IN, V, f.check_in("S-1"), time=at(5, 9))
        assert h.get("volunteer", V).open_session() == "S-1"

    def test_keeps_hours_and_points_when_archived(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 2, approve_it=True)
        h.send(f.STATUS_CHANGED, V, {"status": "archived", "reason": "迁出"}, time=at(5, 9))
        v: Volunteer = h.get("volunteer", V)
        assert (v.approved_hours(), v.points_balance()) == (2.0, 20)


class TestSkills:
    def test_replaces_the_whole_list(self, h: DomainHarness) -> None:
        h.send(f.SKILLS_UPDATED, V, {"skills": ["elder_care"]})
        assert h.get("volunteer", V).skills == ["elder_care"]

    def test_clears_the_list(self, h: DomainHarness) -> None:
        h.send(f.SKILLS_UPDATED, V, {"skills": []})
        assert h.get("volunteer", V).skills == []


class TestTeams:
    def test_registers_a_team_under_its_site_with_its_leader(self, h: DomainHarness) -> None:
        team: Team = h.get("team", f.TEAM)
        assert (team.site_id, team.category, team.lead_volunteer_no) == (
            f.STATION,
            "elder_care",
            "V-LEAD-01",
        )

    def test_refuses_a_team_led_by_an_unknown_volunteer(self, h: DomainHarness) -> None:
        data = f.team(lead_volunteer_no="V-NOBODY")
        h.refused(f.TEAM_REGISTERED, "WLY-TEAM-099", data, "UNKNOWN_REFERENCE")

    def test_refuses_registering_a_team_twice(self, h: DomainHarness) -> None:
        h.refused(f.TEAM_REGISTERED, f.TEAM, f.team(), "AGGREGATE_EXISTS")

    def test_a_volunteer_joins_and_leaves_a_team(self, h: DomainHarness) -> None:
        h.send(f.JOINED_TEAM, V, {"team_id": f.TEAM, "role": "captain"})
        assert h.get("volunteer", V).teams == {f.TEAM: "captain"}
        h.send(f.LEFT_TEAM, V, {"team_id": f.TEAM, "reason": "工作调动"})
        assert h.get("volunteer", V).teams == {}

    def test_refuses_joining_the_same_team_twice(self, h: DomainHarness) -> None:
        h.send(f.JOINED_TEAM, V, {"team_id": f.TEAM})
        h.refused(f.JOINED_TEAM, V, {"team_id": f.TEAM}, "ILLEGAL_TRANSITION")

    def test_refuses_joining_an_unknown_team(self, h: DomainHarness) -> None:
        h.refused(f.JOINED_TEAM, V, {"team_id": "NO-SUCH-TEAM"}, "UNKNOWN_REFERENCE")

    def test_refuses_a_suspended_volunteer_joining(self, h: DomainHarness) -> None:
        h.send(f.STATUS_CHANGED, V, {"status": "suspended", "reason": "违规"})
        h.refused(f.JOINED_TEAM, V, {"team_id": f.TEAM}, "ILLEGAL_TRANSITION")

    def test_refuses_leaving_a_team_never_joined(self, h: DomainHarness) -> None:
        error = h.refused(f.LEFT_TEAM, V, {"team_id": f.TEAM}, "ILLEGAL_TRANSITION")
        assert "not a member" in error.reason


class TestTraining:
    def test_records_a_course_with_its_expiry(self, h: DomainHarness) -> None:
        data = {"course_id": "FIRST-AID", "hours": 6, "expires_on": "2026-03-31"}
        h.send(f.TRAINING_COMPLETED, V, data, time=at(4, 17))
        assert h.get("volunteer", V).trainings["FIRST-AID"] == (
            "2024-03-04T17:00:00+08:00",
            "2026-03-31",
        )

    def test_training_does_not_count_as_service_hours(self, h: DomainHarness) -> None:
        h.send(f.TRAINING_COMPLETED, V, {"course_id": "FIRST-AID", "hours": 6}, time=at(4, 17))
        assert h.get("volunteer", V).approved_hours() == 0.0

    def test_refuses_an_expiry_on_the_completion_day(self, h: DomainHarness) -> None:
        data = {"course_id": "FIRST-AID", "hours": 6, "expires_on": "2024-03-04"}
        h.refused(f.TRAINING_COMPLETED, V, data, "OUT_OF_RANGE", time=at(4, 17))

    def test_judges_the_completion_day_in_beijing(self, h: DomainHarness) -> None:
        data = {"course_id": "FIRST-AID", "hours": 6, "expires_on": "2024-03-05"}
        late_evening_utc = datetime(2024, 3, 4, 16, 30, tzinfo=UTC)  # 00:30 on 5 March
        h.refused(f.TRAINING_COMPLETED, V, data, "OUT_OF_RANGE", time=late_evening_utc)


class TestInsurance:
    def test_records_coverage_windows(self, h: DomainHarness) -> None:
        data = {
            "policy_no": "PICC-1",
            "insurer": "PICC",
            "covered_from": "2024-01-01",
            "covered_to": "2024-06-30",
        }
        h.send(f.INSURANCE_RECORDED, V, data)
        v: Volunteer = h.get("volunteer", V)
        assert v.insured_on(date(2024, 6, 30))
        assert not v.insured_on(date(2024, 7, 1))


class TestDualCheckIn:
    def test_an_official_reports_to_a_community_and_a_post(self, h: DomainHarness) -> None:
        community = h.send(f.REPORTED_TO_COMMUNITY, OFF, {"community_site_id": f.STATION})
        post = h.send(f.REPORTED_TO_POST, OFF, {"post_site_id": f.POST})
        assert community[0].data["year"] == 2024
        assert post[0].data["year"] == 2024
        official: Volunteer = h.get("volunteer", OFF)
        assert official.community_reports == {2024: f.STATION}
        assert official.post_reports == {2024: f.POST}

    def test_refuses_an_ordinary_volunteer_reporting_to_a_community(self, h: DomainHarness) -> None:
        data = {"community_site_id": f.STATION}
        error = h.refused(f.REPORTED_TO_COMMUNITY, V, data, "RULE_VIOLATION")
        assert "only officials" in error.reason

    def test_refuses_an_ordinary_volunteer_reporting_to_a_post(self, h: DomainHarness) -> None:
        h.refused(f.REPORTED_TO_POST, V, {"post_site_id": f.POST}, "RULE_VIOLATION")

    def test_refuses_reporting_to_the_same_community_twice_a_year(self, h: DomainHarness) -> None:
        h.send(f.REPORTED_TO_COMMUNITY, OFF, {"community_site_id": f.STATION}, time=at(4))
        data = {"community_site_id": f.STATION}
        h.refused(f.REPORTED_TO_COMMUNITY, OFF, data, "ILLEGAL_TRANSITION", time=at(20))

    def test_refuses_reporting_to_the_same_post_twice_a_year(self, h: DomainHarness) -> None:
        h.send(f.REPORTED_TO_POST, OFF, {"post_site_id": f.POST}, time=at(4))
        h.refused(
            f.REPORTED_TO_POST, OFF, {"post_site_id": f.POST}, "ILLEGAL_TRANSITION", time=at(5)
        )

    def test_reports_again_the_next_year(self, h: DomainHarness) -> None:
        h.send(f.REPORTED_TO_COMMUNITY, OFF, {"community_site_id": f.STATION}, time=at(4))
        h.send(
            f.REPORTED_TO_COMMUNITY, OFF, {"community_site_id": f.STATION}, time=at(4, year=2025)
        )
        assert set(h.get("volunteer", OFF).community_reports) == {2024, 2025}

    def test_a_move_to_another_community_is_a_new_report(self, h: DomainHarness) -> None:
        h.send(f.REPORTED_TO_COMMUNITY, OFF, {"community_site_id": f.STATION}, time=at(4))
        h.send(f.REPORTED_TO_COMMUNITY, OFF, {"community_site_id": f.POST}, time=at(20))
        assert h.get("volunteer", OFF).community_reports == {2024: f.POST}

    def test_counts_the_year_in_beijing(self, h: DomainHarness) -> None:
        new_year_in_beijing = datetime(2024, 12, 31, 16, 30, tzinfo=UTC)
        events = h.send(
            f.REPORTED_TO_COMMUNITY, OFF, {"community_site_id": f.STATION}, time=new_year_in_beijing
        )
        assert events[0].data["year"] == 2025

    def test_refuses_an_archived_official(self, h: DomainHarness) -> None:
        h.send(f.STATUS_CHANGED, OFF, {"status": "archived", "reason": "退休"})
        h.refused(f.REPORTED_TO_POST, OFF, {"post_site_id": f.POST}, "ILLEGAL_TRANSITION")

    def test_refuses_an_unknown_community(self, h: DomainHarness) -> None:
        data = {"community_site_id": "NOWHERE"}
        h.refused(f.REPORTED_TO_COMMUNITY, OFF, data, "UNKNOWN_REFERENCE")

    def test_an_officials_service_counts_as_official_hours(self, h: DomainHarness) -> None:
        events = f.serve(h, "S-1", at(4, 9), 3, subject=OFF, approve_it=True)
        assert f.only(events, f.HOURS_CREDITED).data["participant_kind"] == "official"
        assert h.get("volunteer", OFF).approved_hours() == 3.0


class TestQuota:
    def test_sets_and_replaces_an_officials_annual_quota(self, h: DomainHarness) -> None:
        h.send(f.QUOTA_SET, OFF, {"year": 2024, "required_hours": 50})
        h.send(f.QUOTA_SET, OFF, {"year": 2024, "required_hours": 40})
        official: Volunteer = h.get("volunteer", OFF)
        assert official.quota(2024) == 40.0
        assert official.quota(2025) is None

    def test_refuses_a_quota_for_an_ordinary_volunteer(self, h: DomainHarness) -> None:
        data = {"year": 2024, "required_hours": 50}
        h.refused(f.QUOTA_SET, V, data, "RULE_VIOLATION")


class TestRedemption:
    def test_spends_points_within_the_balance(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        events = h.send(f.POINTS_REDEEMED, V, f.redeem(20), time=at(5, 9))
        assert events[0].data["balance_after"] == 10
        assert h.get("volunteer", V).points_balance() == 10

    def test_spends_the_whole_balance(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        h.send(f.POINTS_REDEEMED, V, f.redeem(30), time=at(5, 9))
        assert h.get("volunteer", V).points_balance() == 0

    def test_refuses_spending_beyond_the_balance(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3, approve_it=True)
        error = h.refused(f.POINTS_REDEEMED, V, f.redeem(31), "RULE_VIOLATION", time=at(5, 9))
        assert "balance is 30" in error.reason

    def test_pending_hours_earn_nothing_to_spend(self, h: DomainHarness) -> None:
        f.serve(h, "S-1", at(4, 9), 3)
        h.refused(f.POINTS_REDEEMED, V, f.redeem(1), "RULE_VIOLATION", time=at(5, 9))


class TestStarLevels:
    def test_attains_one_star_at_a_hundred_approved_hours(self, h: DomainHarness) -> None:
        events = bank_hours(h, 100)
        stars = [e for e in events if e.meta["type"] == f.STAR_LEVEL_ATTAINED]
        assert len(stars) == 1
        assert stars[0].data == {
            "level": 1,
            "threshold_hours": 100.0,
            "approved_hours": 100.0,
            "rule_version": "mca-2012",
            "session_id": "BF-4",
        }
        assert h.get("volunteer", V).star_level() == 1

    def test_pending_hours_do_not_count(self, h: DomainHarness) -> None:
        bank_hours(h, 80)
        start = datetime(2023, 6, 1, tzinfo=CST)
        data = f.back_fill("BF-X", start=start, end=start + timedelta(hours=20))
        h.send(f.HOURS_RECORDED, V, data, time=start + timedelta(days=1))
        assert h.get("volunteer", V).star_level() == 0

    def test_attains_each_level_once_up_to_five_stars(self, h: DomainHarness) -> None:
        events = bank_hours(h, 1500)
        stars = [e.data["level"] for e in events if e.meta["type"] == f.STAR_LEVEL_ATTAINED]
        assert stars == [1, 2, 3, 4, 5]
        more = bank_hours(h, 100, first=75)
        assert f.STAR_LEVEL_ATTAINED not in f.topics(more)
        assert h.get("volunteer", V).star_level() == 5

    def test_a_level_is_not_attained_again_after_falling_below(self, h: DomainHarness) -> None:
        bank_hours(h, 100)
        h.send(f.HOURS_REJECTED, V, f.reject("BF-0"), time=at(1))
        v: Volunteer = h.get("volunteer", V)
        assert (v.approved_hours(), v.star_level()) == (80.0, 1)
        again = bank_hours(h, 20, first=10)
        assert f.STAR_LEVEL_ATTAINED not in f.topics(again)

    def test_a_positive_correction_can_reach_a_level(self, h: DomainHarness) -> None:
        bank_hours(h, 80)
        f.serve(h, "S-1", at(4, 9), 19, approve_it=True)
        events = h.send(f.HOURS_CORRECTED, V, f.correct("S-1", 1.0), time=at(6, 9))
        assert f.topics(events) == [f.HOURS_CORRECTED, f.POINTS_AWARDED, f.STAR_LEVEL_ATTAINED]


class TestServices:
    def test_registers_the_points_rule_and_the_attendance_policy(self) -> None:
        found = services({"timezone": "Asia/Urumqi", "calendar_file": None})
        assert found["points"].points_per_hour == 10.0
        assert str(found["attendance"].zone) == "Asia/Urumqi"

    def test_the_harness_context_carries_them(self, h: DomainHarness) -> None:
        assert isinstance(h.ctx, DomainContext)
        assert h.ctx.service("points").rule_version == "qufu-10-per-hour-v1"
