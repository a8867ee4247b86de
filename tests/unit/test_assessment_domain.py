"""Scoring models and assessment periods: versions, adjustments, scorecards and reports."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from practice_events.domain.assessment import Assessment, ScoringModel, period_bounds
from tests import factories_need as f
from tests.harness import DomainHarness

MODEL = "wly-district"
MARCH = "ST-1:2024-03"
Q1 = "ST-1:2024-Q1"
H1 = "ST-1:2024-H1"
YEAR = "ST-1:2024"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def h() -> DomainHarness:
    """A harness with the cast of :func:`f.cast` and the example scoring model."""
    harness = DomainHarness()
    f.cast(harness)
    harness.send(f.MODEL_PUBLISHED, MODEL, f.scoring_model(), time=f.at(1, month=1))
    return harness


def model(h: DomainHarness, subject: str = MODEL) -> ScoringModel:
    """Return a scoring model."""
    agg: ScoringModel = h.get("scoring_model", subject)
    return agg


def opened(h: DomainHarness, subject: str = MARCH, **overrides: Any) -> Assessment:
    """Open the period named by ``subject`` on 1 March 2024."""
    unit, period = subject.split(":")
    h.send(f.PERIOD_OPENED, subject, f.period(unit, period, **overrides), time=f.at(1))
    agg: Assessment = h.get("assessment", subject)
    return agg


class TestPublishScoringModel:
    def test_creates_version_one_with_its_indicators(self, h: DomainHarness) -> None:
        agg = model(h)
        assert agg.version == 1
        assert agg.effective_from == "2024-01"
        assert agg.area_weights["needs"] == 20
        assert len(agg.indicator_codes) == 21
        assert agg.version_for("2024-03") == 1
        assert agg.version_for("2023-12") is None

    def test_refuses_publishing_the_same_model_twice(self, h: DomainHarness) -> None:
        h.refused(f.MODEL_PUBLISHED, MODEL, f.scoring_model(), "AGGREGATE_EXISTS")


class TestReviseScoringModel:
    def test_adds_the_next_version_from_its_month(self, h: DomainHarness) -> None:
        weights = {
            "site": 10,
            "activities": 20,
            "needs": 25,
            "volunteers": 15,
            "closed_loop": 20,
            "reporting": 10,
        }
        indicators = [dict(i) for i in f.scoring_model()["indicators"]]
        indicators[0]["weight"] = 10
        indicators[5]["weight"] = 11
        h.send(f.MODEL_REVISED, MODEL, f.revision(area_weights=weights, indicators=indicators))
        agg = model(h)
        assert agg.version == 2
        assert agg.area_weights["needs"] == 25
        assert agg.version_for("2024-06") == 1
        assert agg.version_for("2024-07") == 2

    def test_a_revision_may_apply_from_the_same_month(self, h: DomainHarness) -> None:
        h.send(f.MODEL_REVISED, MODEL, f.revision(effective_from="2024-01"))
        assert model(h).version_for("2024-01") == 2

    def test_refuses_skipping_a_version(self, h: DomainHarness) -> None:
        error = h.refused(f.MODEL_REVISED, MODEL, f.revision(version=3), "RULE_VIOLATION")
        assert "send version 2" in error.reason

    def test_refuses_sending_a_version_again(self, h: DomainHarness) -> None:
        h.send(f.MODEL_REVISED, MODEL, f.revision())
        h.refused(f.MODEL_REVISED, MODEL, f.revision(), "RULE_VIOLATION")

    def test_refuses_reaching_back_before_the_current_version(self, h: DomainHarness) -> None:
        h.send(f.MODEL_REVISED, MODEL, f.revision())
        data = f.revision(version=3, effective_from="2024-03")
        h.refused(f.MODEL_REVISED, MODEL, data, "OUT_OF_RANGE")

    def test_refuses_revising_an_unknown_model(self, h: DomainHarness) -> None:
        h.refused(f.MODEL_REVISED, "no-such-model", f.revision(), "UNKNOWN_AGGREGATE")


class TestPeriodBounds:
    def test_a_month_starts_at_local_midnight(self) -> None:
        start, end = period_bounds("2024-03", SHANGHAI)
        assert start.astimezone(UTC) == datetime(2024, 2, 29, 16, tzinfo=UTC)
        assert end == datetime(2024, 4, 1, tzinfo=SHANGHAI)

    @pytest.mark.parametrize(
        ("period", "first", "after"),
        [
            ("2024-12", (2024, 12), (2025, 1)),
            ("2024-Q1", (2024, 1), (2024, 4)),
            ("2024-Q4", (2024, 10), (2025, 1)),
            ("2024-H1", (2024, 1), (2024, 7)),
            ("2024-H2", (2024, 7), (2025, 1)),
            ("2024", (2024, 1), (2025, 1)),
        ],
    )
    def test_every_kind_of_period(
        self, period: str, first: tuple[int, int], after: tuple[int, int]
    ) -> None:
        start, end = period_bounds(period, SHANGHAI)
        assert (start.year, start.month, start.day) == (*first, 1)
        assert (end.year, end.month, end.day) == (*after, 1)


class TestOpenPeriod:
    def test_opens_a_month_and_records_its_bounds_in_the_event(self, h: DomainHarness) -> None:
        events = h.send(f.PERIOD_OPENED, MARCH, f.period(), time=f.at(1))
        assert events[0].data["starts_at"] == "2024-03-01T00:00:00+08:00"
        assert events[0].data["ends_at"] == "2024-04-01T00:00:00+08:00"
        agg: Assessment = h.get("assessment", MARCH)
        assert (agg.unit_id, agg.period, agg.period_kind) == ("ST-1", "2024-03", "month")
        assert not agg.closed

    @pytest.mark.parametrize("subject", [Q1, H1, YEAR])
    def test_opens_longer_periods(self, h: DomainHarness, subject: str) -> None:
        agg = opened(h, subject)
        assert agg.ends_at is not None
        assert agg.starts_at is not None
        assert agg.ends_at > agg.starts_at

    def test_refuses_a_subject_that_is_not_unit_and_period(self, h: DomainHarness) -> None:
        error = h.refused(f.PERIOD_OPENED, "ST-1:2024-04", f.period(), "RULE_VIOLATION")
        assert "'ST-1:2024-03'" in error.reason

    def test_refuses_a_subject_naming_another_unit(self, h: DomainHarness) -> None:
        h.refused(f.PERIOD_OPENED, "ST-2:2024-03", f.period(), "RULE_VIOLATION")

    def test_refuses_an_unknown_unit(self, h: DomainHarness) -> None:
        h.refused(f.PERIOD_OPENED, "X-9:2024-03", f.period("X-9"), "UNKNOWN_REFERENCE")

    def test_refuses_opening_a_period_twice(self, h: DomainHarness) -> None:
        opened(h)
        h.refused(f.PERIOD_OPENED, MARCH, f.period(), "AGGREGATE_EXISTS")


class TestAdjustScore:
    def test_adds_bonuses_and_deductions(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.SCORE_ADJUSTED, MARCH, f.adjustment(2))
        h.send(f.SCORE_ADJUSTED, MARCH, f.adjustment(-1.5))
        agg: Assessment = h.get("assessment", MARCH)
        assert (agg.bonus_total, agg.deduction_total) == (2, 1.5)
        assert agg.composite_adjustment == 0.5
        assert agg.adjustment_count == 2

    def test_bonuses_may_reach_exactly_the_cap(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.SCORE_ADJUSTED, MARCH, f.adjustment(2.1))
        h.send(f.SCORE_ADJUSTED, MARCH, f.adjustment(2.9))
        assert h.get("assessment", MARCH).bonus_total == 5

    def test_refuses_a_bonus_beyond_the_cap(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.SCORE_ADJUSTED, MARCH, f.adjustment(4))
        error = h.refused(f.SCORE_ADJUSTED, MARCH, f.adjustment(1.5), "OUT_OF_RANGE")
        assert "above the cap of +5" in error.reason

    def test_deductions_are_not_capped(self, h: DomainHarness) -> None:
        opened(h)
        for _ in range(3):
            h.send(f.SCORE_ADJUSTED, MARCH, f.adjustment(-4))
        assert h.get("assessment", MARCH).deduction_total == 12

    def test_refuses_adjustments_once_the_period_is_closed(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.PERIOD_CLOSED, MARCH, {}, time=f.at(1, month=4))
        error = h.refused(f.SCORE_ADJUSTED, MARCH, f.adjustment(-1), "ILLEGAL_TRANSITION")
        assert "was closed" in error.reason


class TestPublishScorecard:
    def test_records_the_frozen_scorecard(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.SCORECARD, MARCH, f.scorecard(), time=f.at(2, month=4))
        agg: Assessment = h.get("assessment", MARCH)
        assert agg.latest_scorecard == {
            "model_id": MODEL,
            "model_version": 1,
            "as_of_position": 1200,
            "composite": 81.5,
            "published_at": f.at(2, month=4).isoformat(),
        }

    def test_republishes_with_a_newer_model_version(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.SCORECARD, MARCH, f.scorecard(1))
        h.send(f.SCORECARD, MARCH, f.scorecard(2, composite=79))
        agg: Assessment = h.get("assessment", MARCH)
        assert agg.scorecard_versions == {1, 2}
        assert agg.latest_scorecard is not None
        assert agg.latest_scorecard["composite"] == 79

    def test_refuses_publishing_the_same_model_version_twice(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.SCORECARD, MARCH, f.scorecard(1))
        error = h.refused(f.SCORECARD, MARCH, f.scorecard(1), "RULE_VIOLATION")
        assert "already published" in error.reason

    def test_refuses_an_older_model_version_after_a_newer_one(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.SCORECARD, MARCH, f.scorecard(2))
        h.refused(f.SCORECARD, MARCH, f.scorecard(1), "RULE_VIOLATION")

    def test_refuses_mixing_scoring_models_in_one_period(self, h: DomainHarness) -> None:
        h.send(f.MODEL_PUBLISHED, "other-model", f.scoring_model())
        opened(h)
        h.send(f.SCORECARD, MARCH, f.scorecard(1))
        data = f.scorecard(2, model_id="other-model")
        h.refused(f.SCORECARD, MARCH, data, "RULE_VIOLATION")

    def test_refuses_an_unknown_scoring_model(self, h: DomainHarness) -> None:
        opened(h)
        h.refused(f.SCORECARD, MARCH, f.scorecard(model_id="nope"), "UNKNOWN_REFERENCE")

    def test_refuses_a_scorecard_before_the_period_starts(self, h: DomainHarness) -> None:
        opened(h)
        data = f.scorecard()
        h.refused(f.SCORECARD, MARCH, data, "OUT_OF_RANGE", time=f.at(29, 23, month=2))

    def test_a_closed_period_still_gets_its_scorecard(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.PERIOD_CLOSED, MARCH, {}, time=f.at(1, month=4))
        h.send(f.SCORECARD, MARCH, f.scorecard(), time=f.at(2, month=4))
        assert h.get("assessment", MARCH).scorecard_versions == {1}


class TestPublishBulletin:
    def test_publishes_the_monthly_bulletin(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.BULLETIN, MARCH, f.bulletin(), time=f.at(3, month=4))
        agg: Assessment = h.get("assessment", MARCH)
        assert agg.bulletin_refs == ["TB-2024-03"]
        assert agg.first_bulletin_at == f.at(3, month=4).isoformat()

    def test_a_correction_names_the_bulletin_it_corrects(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.BULLETIN, MARCH, f.bulletin(), time=f.at(3, month=4))
        data = f.bulletin("TB-2024-03-R1", correction_of="TB-2024-03")
        h.send(f.BULLETIN, MARCH, data, time=f.at(5, month=4))
        agg: Assessment = h.get("assessment", MARCH)
        assert agg.bulletin_refs == ["TB-2024-03", "TB-2024-03-R1"]
        assert agg.first_bulletin_at == f.at(3, month=4).isoformat()

    def test_refuses_a_second_bulletin_that_is_not_a_correction(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.BULLETIN, MARCH, f.bulletin())
        error = h.refused(f.BULLETIN, MARCH, f.bulletin("TB-X"), "RULE_VIOLATION")
        assert "correction_of" in error.reason

    def test_refuses_a_correction_of_an_unknown_bulletin(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.BULLETIN, MARCH, f.bulletin())
        data = f.bulletin("TB-X", correction_of="TB-2024-02")
        h.refused(f.BULLETIN, MARCH, data, "RULE_VIOLATION")

    def test_refuses_a_correction_reusing_the_document_ref(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.BULLETIN, MARCH, f.bulletin())
        data = f.bulletin("TB-2024-03", correction_of="TB-2024-03")
        h.refused(f.BULLETIN, MARCH, data, "RULE_VIOLATION")

    def test_refuses_a_correction_when_nothing_was_published(self, h: DomainHarness) -> None:
        opened(h)
        data = f.bulletin(correction_of="TB-2024-02")
        h.refused(f.BULLETIN, MARCH, data, "RULE_VIOLATION")

    def test_refuses_a_bulletin_for_a_quarter(self, h: DomainHarness) -> None:
        opened(h, Q1)
        error = h.refused(f.BULLETIN, Q1, f.bulletin(), "RULE_VIOLATION")
        assert "month period" in error.reason

    def test_refuses_a_bulletin_before_the_month_starts(self, h: DomainHarness) -> None:
        opened(h)
        h.refused(f.BULLETIN, MARCH, f.bulletin(), "OUT_OF_RANGE", time=f.at(28, month=2))


class TestHoldQuarterlyReview:
    def test_holds_the_quarterly_review(self, h: DomainHarness) -> None:
        opened(h, Q1)
        h.send(f.REVIEW, Q1, f.review(), time=f.at(8, month=4))
        agg: Assessment = h.get("assessment", Q1)
        assert agg.review_held_at == f.at(8, month=4).isoformat()

    def test_refuses_a_second_review_of_the_quarter(self, h: DomainHarness) -> None:
        opened(h, Q1)
        h.send(f.REVIEW, Q1, f.review())
        error = h.refused(f.REVIEW, Q1, f.review(), "ILLEGAL_TRANSITION")
        assert "already had its quarterly review" in error.reason

    def test_refuses_a_review_of_a_month(self, h: DomainHarness) -> None:
        opened(h)
        h.refused(f.REVIEW, MARCH, f.review(), "RULE_VIOLATION")

    def test_refuses_ranking_an_unknown_unit(self, h: DomainHarness) -> None:
        opened(h, Q1)
        h.refused(f.REVIEW, Q1, f.review(ranked_units=["ST-1", "X-9"]), "UNKNOWN_REFERENCE")


class TestPublishHalfYearSummary:
    def test_publishes_the_half_year_summary(self, h: DomainHarness) -> None:
        opened(h, H1)
        h.send(f.SUMMARY, H1, f.summary(), time=f.at(5, month=7))
        agg: Assessment = h.get("assessment", H1)
        assert agg.summary_refs == ["ZJ-2024-H1"]
        assert agg.first_summary_at == f.at(5, month=7).isoformat()

    def test_a_second_summary_must_be_a_correction(self, h: DomainHarness) -> None:
        opened(h, H1)
        h.send(f.SUMMARY, H1, f.summary())
        h.refused(f.SUMMARY, H1, f.summary("ZJ-2"), "RULE_VIOLATION")
        h.send(f.SUMMARY, H1, f.summary("ZJ-2", correction_of="ZJ-2024-H1"))
        assert h.get("assessment", H1).summary_refs == ["ZJ-2024-H1", "ZJ-2"]

    def test_refuses_a_summary_of_a_year(self, h: DomainHarness) -> None:
        opened(h, YEAR)
        error = h.refused(f.SUMMARY, YEAR, f.summary(), "RULE_VIOLATION")
        assert "half_year period" in error.reason


class TestClosePeriod:
    def test_closes_a_period_once_it_has_ended(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.PERIOD_CLOSED, MARCH, {"note": "月度考核结束"}, time=f.at(1, 0, month=4))
        agg: Assessment = h.get("assessment", MARCH)
        assert agg.closed
        assert agg.closed_at == f.at(1, 0, month=4).isoformat()

    def test_refuses_closing_before_the_period_ends(self, h: DomainHarness) -> None:
        opened(h)
        error = h.refused(f.PERIOD_CLOSED, MARCH, {}, "OUT_OF_RANGE", time=f.at(31, 23, 59))
        assert "2024-04-01T00:00:00+08:00" in error.reason

    def test_refuses_closing_twice(self, h: DomainHarness) -> None:
        opened(h)
        h.send(f.PERIOD_CLOSED, MARCH, {}, time=f.at(1, month=4))
        h.refused(f.PERIOD_CLOSED, MARCH, {}, "ILLEGAL_TRANSITION", time=f.at(2, month=4))


class TestReplay:
    def test_the_stored_events_rebuild_the_same_assessment(self, h: DomainHarness) -> None:
        live = opened(h)
        h.send(f.SCORE_ADJUSTED, MARCH, f.adjustment(2))
        h.send(f.SCORECARD, MARCH, f.scorecard())
        h.send(f.BULLETIN, MARCH, f.bulletin(), time=f.at(3, month=4))
        h.send(f.PERIOD_CLOSED, MARCH, {}, time=f.at(4, month=4))
        stored = [
            dataclasses.replace(
                e, data=orjson.loads(orjson.dumps(e.data)), meta=orjson.loads(orjson.dumps(e.meta))
            )
            for e in h.emitted
            if e.originator_id == live.id
        ]
        replayed: Any = None
        for event in stored:
            replayed = event.mutate(replayed)
        assert replayed is not None
        assert vars(replayed) == vars(live)
