"""Sites and the six-haves checklist, as scenarios told through CloudEvents."""

from __future__ import annotations

import pytest

from practice_events.domain.site import RATING_VALUES, Checklist, Site
from tests import factories_site as f
from tests.harness import DomainHarness


@pytest.fixture
def h() -> DomainHarness:
    """A harness with a centre, an institute, a station, a house-meeting site and the six-haves."""
    harness = DomainHarness()
    f.network(harness)
    return harness


class TestRegister:
    def test_a_station_records_its_level_parent_and_place(self, h: DomainHarness) -> None:
        events = h.send(
            f.REGISTERED,
            "WLY-ZHAN-2",
            f.site(geo={"lat": 29.3, "lon": 110.5}, address="军地坪路1号"),
        )
        assert [type(e).TOPIC for e in events] == [f.REGISTERED]
        station = h.get("site", "WLY-ZHAN-2")
        assert isinstance(station, Site)
        assert (station.level, station.parent_id, station.name) == (
            "station",
            "WLY-SUO-1",
            "军地坪实践站",
        )
        assert station.geo == {"lat": 29.3, "lon": 110.5}
        assert station.address == "军地坪路1号"
        assert station.active
        assert station.subject == "WLY-ZHAN-2"

    def test_the_centre_is_the_root(self, h: DomainHarness) -> None:
        centre = h.get("site", "WLY")
        assert centre.is_centre
        assert centre.parent_id is None

    def test_rejects_a_station_whose_parent_was_never_registered(self, h: DomainHarness) -> None:
        error = h.refused(
            f.REGISTERED, "WLY-ZHAN-9", f.site(parent_id="NOWHERE"), "UNKNOWN_REFERENCE"
        )
        assert "NOWHERE" in error.reason

    def test_rejects_registering_the_same_site_twice(self, h: DomainHarness) -> None:
        h.refused(f.REGISTERED, "WLY-ZHAN-1", f.site(), "AGGREGATE_EXISTS")

    def test_does_not_check_the_parents_level(self, h: DomainHarness) -> None:
        # A station under a house-meeting site is wrong, but only the network views can tell.
        h.send(f.REGISTERED, "ODD-1", f.site(parent_id="WLY-WC-1"))
        assert h.get("site", "ODD-1").parent_id == "WLY-WC-1"


class TestUpdate:
    def test_changes_only_the_fields_sent(self, h: DomainHarness) -> None:
        h.send(f.UPDATED, "WLY-ZHAN-1", {"address": "索溪峪路8号"})
        station = h.get("site", "WLY-ZHAN-1")
        assert station.address == "索溪峪路8号"
        assert station.name == "军地坪实践站"

    def test_moves_the_site(self, h: DomainHarness) -> None:
        h.send(f.UPDATED, "WLY-ZHAN-1", {"geo": {"lat": 29.0, "lon": 110.0}, "name": "新站"})
        station = h.get("site", "WLY-ZHAN-1")
        assert station.geo == {"lat": 29.0, "lon": 110.0}
        assert station.name == "新站"

    def test_rejects_updating_a_deactivated_site(self, h: DomainHarness) -> None:
        h.send(f.DEACTIVATED, "WLY-ZHAN-1", {"reason": "merged"})
        error = h.refused(f.UPDATED, "WLY-ZHAN-1", {"name": "x"}, "ILLEGAL_TRANSITION")
        assert "deactivated" in error.reason

    def test_rejects_updating_a_site_never_registered(self, h: DomainHarness) -> None:
        h.refused(f.UPDATED, "NOPE", {"name": "x"}, "UNKNOWN_AGGREGATE")


class TestDeactivate:
    def test_keeps_when_and_why(self, h: DomainHarness) -> None:
        h.send(f.DEACTIVATED, "WLY-ZHAN-1", {"reason": "merged"}, time=f.at(20))
        station = h.get("site", "WLY-ZHAN-1")
        assert not station.active
        assert station.deactivation_reason == "merged"
        assert station.deactivated_at == f.at(20).isoformat()

    def test_rejects_deactivating_twice(self, h: DomainHarness) -> None:
        h.send(f.DEACTIVATED, "WLY-ZHAN-1", {"reason": "merged"})
        error = h.refused(f.DEACTIVATED, "WLY-ZHAN-1", {"reason": "again"}, "ILLEGAL_TRANSITION")
        assert "already deactivated" in error.reason


class TestAssessStandard:
    def test_records_the_ratings_the_scale_and_the_unweighted_mean(self, h: DomainHarness) -> None:
        ratings = {"has_plan": "B", "has_project": "C", "has_records": "C#"}
        (event,) = h.send(f.ASSESSED, "WLY-ZHAN-1", f.assessment(ratings), time=f.at(12))
        expected = round((1 + 0.66 + 1 + 0.33 + 1 + 0) / 6, 4)
        assert event.data["score_unweighted"] == expected
        assert event.data["rating_values"] == dict(RATING_VALUES)
        station = h.get("site", "WLY-ZHAN-1")
        assert station.last_assessment == {
            "checklist_id": "six-haves",
            "checklist_version": 1,
            "assessed_at": f.at(12).isoformat(),
            "ratings": {
                "has_site": "A",
                "has_plan": "B",
                "has_team": "A",
                "has_project": "C",
                "has_rules": "A",
                "has_records": "C#",
            },
            "score_unweighted": expected,
        }

    def test_a_reassessment_becomes_the_latest(self, h: DomainHarness) -> None:
        h.send(f.ASSESSED, "WLY-ZHAN-1", f.assessment({"has_site": "C#"}))
        h.send(f.ASSESSED, "WLY-ZHAN-1", f.assessment())
        station = h.get("site", "WLY-ZHAN-1")
        assert station.assessment_count == 2
        assert station.last_assessment["score_unweighted"] == 1.0

    def test_rejects_an_assessment_of_a_deactivated_site(self, h: DomainHarness) -> None:
        h.send(f.DEACTIVATED, "WLY-ZHAN-1", {"reason": "closed"})
        error = h.refused(f.ASSESSED, "WLY-ZHAN-1", f.assessment(), "ILLEGAL_TRANSITION")
        assert "cannot be assessed" in error.reason

    def test_rejects_an_assessment_against_an_unknown_checklist(self, h: DomainHarness) -> None:
        data = f.assessment(checklist_id="seven-haves")
        h.refused(f.ASSESSED, "WLY-ZHAN-1", data, "UNKNOWN_REFERENCE")

    def test_rejects_an_assessment_of_a_site_never_registered(self, h: DomainHarness) -> None:
        h.refused(f.ASSESSED, "NOPE", f.assessment(), "UNKNOWN_AGGREGATE")


class TestPublishChecklist:
    def test_the_checklist_starts_at_version_one(self, h: DomainHarness) -> None:
        checklist = h.get("checklist", "six-haves")
        assert isinstance(checklist, Checklist)
        assert checklist.version == 1
        assert checklist.title == "六有标准"
        assert checklist.weights["has_site"] == 0.2

    def test_rejects_publishing_the_same_checklist_twice(self, h: DomainHarness) -> None:
        h.refused(f.CHECKLIST_PUBLISHED, "six-haves", f.checklist(), "AGGREGATE_EXISTS")

    def test_weighs_ratings_by_the_items(self, h: DomainHarness) -> None:
        checklist = h.get("checklist", "six-haves")
        assert checklist.score(dict.fromkeys(checklist.weights, "A")) == pytest.approx(1.0)
        # has_site (0.2) at B, has_records (0.2) missing counts as C#, the rest A.
        ratings = {"has_site": "B", "has_plan": "A", "has_team": "A", "has_project": "A"}
        ratings["has_rules"] = "A"
        assert checklist.score(ratings) == pytest.approx(0.2 * 0.66 + 0.15 + 0.2 + 0.15 + 0.1)


class TestReviseChecklist:
    def test_publishes_the_next_version_keeping_the_title(self, h: DomainHarness) -> None:
        items = [dict(item) for item in f.SIX_HAVES]
        items[1] = {"code": "has_management", "label": "有管理", "weight": 0.15}
        (event,) = h.send(f.CHECKLIST_REVISED, "six-haves", {"version": 2, "items": items})
        assert event.data["title"] == "六有标准"
        checklist = h.get("checklist", "six-haves")
        assert checklist.version == 2
        assert "has_management" in checklist.weights
        assert "has_plan" not in checklist.weights

    def test_takes_a_new_title(self, h: DomainHarness) -> None:
        data = {"version": 2, "title": "六有（修订）", "items": f.SIX_HAVES}
        h.send(f.CHECKLIST_REVISED, "six-haves", data)
        assert h.get("checklist", "six-haves").title == "六有（修订）"

    def test_rejects_skipping_a_version(self, h: DomainHarness) -> None:
        data = {"version": 3, "items": f.SIX_HAVES}
        error = h.refused(f.CHECKLIST_REVISED, "six-haves", data, "OUT_OF_RANGE")
        assert "next version is 2" in error.reason

    def test_rejects_publishing_a_version_again(self, h: DomainHarness) -> None:
        h.send(f.CHECKLIST_REVISED, "six-haves", {"version": 2, "items": f.SIX_HAVES})
        data = {"version": 2, "items": f.SIX_HAVES}
        h.refused(f.CHECKLIST_REVISED, "six-haves", data, "OUT_OF_RANGE")

    def test_rejects_revising_a_checklist_never_published(self, h: DomainHarness) -> None:
        data = {"version": 2, "items": f.SIX_HAVES}
        h.refused(f.CHECKLIST_REVISED, "five-haves", data, "UNKNOWN_AGGREGATE")


class TestTopics:
    def test_every_stored_event_is_named_by_its_cloudevents_type(self, h: DomainHarness) -> None:
        h.send(f.UPDATED, "WLY-ZHAN-1", {"name": "x"})
        h.send(f.ASSESSED, "WLY-ZHAN-1", f.assessment())
        h.send(f.DEACTIVATED, "WLY-ZHAN-1", {"reason": "closed"})
        h.send(f.CHECKLIST_REVISED, "six-haves", {"version": 2, "items": f.SIX_HAVES})
        for event in h.emitted:
            assert event.meta["type"] == type(event).TOPIC
