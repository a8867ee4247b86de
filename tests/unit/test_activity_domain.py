"""Monthly themes and activities, as scenarios told through CloudEvents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from practice_events.domain.activity import Activity, Theme
from tests import factories_site as f
from tests.harness import DomainHarness

THEME = "WLY:2024-03"


@pytest.fixture
def h() -> DomainHarness:
    """A harness with the small network and the centre's theme for March 2024."""
    harness = DomainHarness()
    f.network(harness)
    harness.send(f.THEME_SET, THEME, f.theme(), time=f.at(25, month=2))
    return harness


def planned(h: DomainHarness, subject: str = "ACT-1", **overrides: object) -> Activity:
    """Plan an activity on 5 March 2024 (09:00-12:00) and return it."""
    h.send(f.PLANNED, subject, f.activity(**overrides), time=f.at(1))
    activity = h.get("activity", subject)
    assert isinstance(activity, Activity)
    return activity


class TestSetTheme:
    def test_the_theme_records_unit_month_code_and_title(self, h: DomainHarness) -> None:
        theme = h.get("theme", THEME)
        assert isinstance(theme, Theme)
        assert (theme.unit_id, theme.month, theme.theme_code, theme.title) == (
            "WLY",
            "2024-03",
            "learn_from_lei_feng",
            "学雷锋志愿服务月",
        )

    def test_rejects_a_theme_of_a_unit_never_registered(self, h: DomainHarness) -> None:
        h.refused(f.THEME_SET, "XX:2024-03", f.theme(unit_id="XX"), "UNKNOWN_REFERENCE")

    def test_rejects_setting_the_same_month_twice(self, h: DomainHarness) -> None:
        h.refused(f.THEME_SET, THEME, f.theme(), "AGGREGATE_EXISTS")


class TestReviseTheme:
    def test_revises_the_title_before_the_month(self, h: DomainHarness) -> None:
        h.send(f.THEME_REVISED, THEME, {"title": "学雷锋月"}, time=f.at(28, month=2))
        theme = h.get("theme", THEME)
        assert theme.title == "学雷锋月"
        assert theme.theme_code == "learn_from_lei_feng"
        assert theme.revision_count == 1

    def test_revises_the_code_during_the_month(self, h: DomainHarness) -> None:
        h.send(f.THEME_REVISED, THEME, {"theme_code": "civility"}, time=f.at(15))
        assert h.get("theme", THEME).theme_code == "civility"

    def test_the_last_evening_of_the_month_in_beijing_still_counts(self, h: DomainHarness) -> None:
        # 15:30 UTC on 31 March is 23:30 in Beijing: still March.
        late = datetime(2024, 3, 31, 15, 30, tzinfo=UTC)
        h.send(f.THEME_REVISED, THEME, {"title": "学雷锋月"}, time=late)
        assert h.get("theme", THEME).title == "学雷锋月"

    def test_rejects_a_revision_after_the_month(self, h: DomainHarness) -> None:
        # 16:30 UTC on 31 March is 00:30 on 1 April in Beijing: the month is over.
        after = datetime(2024, 3, 31, 16, 30, tzinfo=UTC)
        error = h.refused(f.THEME_REVISED, THEME, {"title": "x"}, "ILLEGAL_TRANSITION", time=after)
        assert "2024-03 is over" in error.reason

    def test_rejects_revising_a_theme_never_set(self, h: DomainHarness) -> None:
        h.refused(f.THEME_REVISED, "WLY:2024-04", {"title": "x"}, "UNKNOWN_AGGREGATE")


class TestPlan:
    def test_records_site_theme_times_and_the_month(self, h: DomainHarness) -> None:
        activity = planned(h)
        assert activity.status == "planned"
        assert (activity.site_id, activity.theme_code, activity.category) == (
            "WLY-ZHAN-1",
            "learn_from_lei_feng",
            "civility_persuasion",
        )
        assert activity.starts_at == f.at(5, 9).isoformat()
        assert activity.month == "2024-03"
        assert activity.slots == 20

    def test_the_month_is_taken_in_the_networks_time_zone(self, h: DomainHarness) -> None:
        # 17:00 UTC on 31 March is 01:00 on 1 April in Beijing.
        starts = datetime(2024, 3, 31, 17, 0, tzinfo=UTC)
        ends = datetime(2024, 3, 31, 19, 0, tzinfo=UTC)
        (event,) = h.send(
            f.PLANNED,
            "ACT-NIGHT",
            f.activity(starts_at=starts.isoformat(), ends_at=ends.isoformat()),
        )
        assert event.data["month"] == "2024-04"
        assert h.get("activity", "ACT-NIGHT").month == "2024-04"

    def test_rejects_an_activity_at_a_site_never_registered(self, h: DomainHarness) -> None:
        h.refused(f.PLANNED, "ACT-2", f.activity(site_id="NOWHERE"), "UNKNOWN_REFERENCE")

    def test_rejects_an_activity_of_a_team_never_registered(self, h: DomainHarness) -> None:
        h.refused(f.PLANNED, "ACT-2", f.activity(team_id="T-404"), "UNKNOWN_REFERENCE")

    def test_an_activity_may_name_a_registered_team(self, h: DomainHarness) -> None:
        h.send(
            "practice.volunteer.team_registered.v1",
            "T-1",
            {"site_id": "WLY-ZHAN-1", "name": "红马甲志愿服务队", "category": "elder_care"},
        )
        assert planned(h, team_id="T-1").team_id == "T-1"

    def test_rejects_planning_the_same_activity_twice(self, h: DomainHarness) -> None:
        planned(h)
        h.refused(f.PLANNED, "ACT-1", f.activity(), "AGGREGATE_EXISTS")


class TestCancel:
    def test_cancels_a_planned_activity(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.CANCELLED, "ACT-1", {"reason": "暴雨预警"}, time=f.at(4))
        activity = h.get("activity", "ACT-1")
        assert activity.status == "cancelled"
        assert activity.cancel_reason == "暴雨预警"
        assert activity.cancelled_at == f.at(4).isoformat()

    def test_rejects_cancelling_after_completion(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.COMPLETED, "ACT-1", f.completion(), time=f.at(5, 13))
        error = h.refused(f.CANCELLED, "ACT-1", {"reason": "x"}, "ILLEGAL_TRANSITION")
        assert "completed" in error.reason

    def test_rejects_cancelling_twice(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.CANCELLED, "ACT-1", {"reason": "rain"})
        error = h.refused(f.CANCELLED, "ACT-1", {"reason": "rain"}, "ILLEGAL_TRANSITION")
        assert "already cancelled" in error.reason

    def test_rejects_cancelling_an_activity_never_planned(self, h: DomainHarness) -> None:
        h.refused(f.CANCELLED, "ACT-404", {"reason": "x"}, "UNKNOWN_AGGREGATE")


class TestComplete:
    def test_records_the_counts(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.COMPLETED, "ACT-1", f.completion(), time=f.at(5, 13))
        activity = h.get("activity", "ACT-1")
        assert activity.is_completed
        assert (activity.served_count, activity.beneficiaries_count) == (320, 300)
        assert activity.completed_at == f.at(5, 13).isoformat()

    def test_may_be_reported_while_it_is_still_going_on(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.COMPLETED, "ACT-1", f.completion(), time=f.at(5, 9))
        assert h.get("activity", "ACT-1").is_completed

    def test_rejects_completing_twice(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.COMPLETED, "ACT-1", f.completion(), time=f.at(5, 13))
        error = h.refused(
            f.COMPLETED, "ACT-1", f.completion(), "ILLEGAL_TRANSITION", time=f.at(5, 14)
        )
        assert "already completed" in error.reason

    def test_rejects_completing_a_cancelled_activity(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.CANCELLED, "ACT-1", {"reason": "rain"})
        error = h.refused(
            f.COMPLETED, "ACT-1", f.completion(), "ILLEGAL_TRANSITION", time=f.at(5, 13)
        )
        assert "cancelled" in error.reason

    def test_rejects_a_completion_dated_before_the_start(self, h: DomainHarness) -> None:
        planned(h)
        error = h.refused(f.COMPLETED, "ACT-1", f.completion(), "OUT_OF_RANGE", time=f.at(4))
        assert "before the activity starts" in error.reason


class TestGiveFeedback:
    def test_counts_ratings_of_a_completed_activity(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.COMPLETED, "ACT-1", f.completion(), time=f.at(5, 13))
        h.send(f.FEEDBACK, "ACT-1", {"rater_kind": "beneficiary", "rating": 5}, time=f.at(6))
        h.send(f.FEEDBACK, "ACT-1", {"rater_kind": "supervisor", "rating": 4}, time=f.at(6))
        activity = h.get("activity", "ACT-1")
        assert activity.feedback_count == 2
        assert activity.mean_rating == 4.5

    def test_nobody_rated_means_no_mean(self, h: DomainHarness) -> None:
        assert planned(h).mean_rating is None

    def test_rejects_a_rating_before_completion(self, h: DomainHarness) -> None:
        planned(h)
        data = {"rater_kind": "resident", "rating": 3}
        error = h.refused(f.FEEDBACK, "ACT-1", data, "ILLEGAL_TRANSITION")
        assert "only a completed activity can be rated" in error.reason

    def test_rejects_a_rating_of_a_cancelled_activity(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.CANCELLED, "ACT-1", {"reason": "rain"})
        data = {"rater_kind": "resident", "rating": 3}
        h.refused(f.FEEDBACK, "ACT-1", data, "ILLEGAL_TRANSITION")


class TestTopics:
    def test_every_stored_event_is_named_by_its_cloudevents_type(self, h: DomainHarness) -> None:
        planned(h)
        h.send(f.COMPLETED, "ACT-1", f.completion(), time=f.at(5, 13))
        h.send(f.FEEDBACK, "ACT-1", {"rater_kind": "resident", "rating": 5}, time=f.at(6))
        planned(h, "ACT-2")
        h.send(f.CANCELLED, "ACT-2", {"reason": "rain"})
        h.send(f.THEME_REVISED, THEME, {"title": "x"}, time=f.at(2))
        for event in h.emitted:
            assert event.meta["type"] == type(event).TOPIC
