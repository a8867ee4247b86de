"""Indicator formulas and the scoring model, on hand-computed cases (no I/O).

Every expectation is worked out in the comments next to it, so a reader can
check the arithmetic without running anything.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from practice_events.contracts.assessment import EXAMPLE_MODEL, ScorecardPublished
from practice_events.scoring import indicators as ind
from practice_events.scoring.model import (
    MIN_COVERED_WEIGHT,
    ModelIndicator,
    ScoringModel,
    normalise,
    published_indicators,
    rank,
    score,
    version_for,
)


def example_model(**overrides: Any) -> ScoringModel:
    """The DESIGN.md §6 example model as stored (version 1 unless told otherwise)."""
    data = copy.deepcopy(EXAMPLE_MODEL)
    data.update(overrides)
    return ScoringModel.from_data("wly-district", data)


class TestRatio:
    def test_a_ratio_reports_numerator_denominator_and_value(self) -> None:
        result = ind.ratio("need_fulfilment", 9, 12, min_sample=5)
        # 9 / 12 = 0.75
        assert (result.status, result.value, result.numerator, result.denominator) == (
            "ok",
            0.75,
            9,
            12,
        )

    def test_below_the_minimum_sample_there_is_no_value_not_a_fake_rate(self) -> None:
        # 4 of 4 would be 100 %, but 4 cases < minimum 5.
        result = ind.ratio("need_fulfilment", 4, 4, min_sample=5)
        assert result.status == "insufficient_data"
        assert result.value is None
        assert (result.numerator, result.denominator, result.min_sample) == (4, 4, 5)
        assert result.note is not None
        assert "minimum of 5" in result.note

    def test_nothing_to_divide_by_is_insufficient_even_with_a_minimum_of_zero(self) -> None:
        result = ind.ratio("need_fulfilment", 0, 0, min_sample=0)
        assert result.status == "insufficient_data"
        assert result.value is None

    def test_exactly_the_minimum_is_enough(self) -> None:
        # satisfaction needs 10 ratings: 10 ratings, 7 of them ≥ 4 → 0.7.
        result = ind.satisfaction(10, 7, 38, min_sample=10)
        assert result.status == "ok"
        assert result.value == pytest.approx(0.7)
        # mean rating 38 / 10 = 3.8
        assert result.details["mean"] == pytest.approx(3.8)

    def test_nine_ratings_are_not_enough_for_satisfaction_by_default(self) -> None:
        # The formula's own minimum for satisfaction is 10 (DESIGN.md §6).
        result = ind.satisfaction(9, 9, 45)
        assert result.status == "insufficient_data"
        assert result.min_sample == 10

    def test_as_dict_is_json_ready(self) -> None:
        out = ind.ratio("return_rate", 1, 3, min_sample=3).as_dict()
        # 1 / 3 rounded to 6 places
        assert out["value"] == 0.333333
        assert out["status"] == "ok"
        assert out["window"] == ind.DEFINITIONS["return_rate"].window


class TestMedianAndPercentile:
    def test_median_of_an_odd_and_an_even_count(self) -> None:
        assert ind.median([5, 1, 3]) == 3
        # sorted 1, 3, 5, 7: (3 + 5) / 2 = 4
        assert ind.median([7, 1, 5, 3]) == 4

    def test_nearest_rank_p90(self) -> None:
        ten = [float(v) for v in range(1, 11)]
        # rank ⌈0.9 × 10⌉ = 9 → the 9th smallest = 9
        assert ind.percentile(ten, 0.9) == 9
        eleven = [float(v) for v in range(1, 12)]
        # rank ⌈0.9 × 11⌉ = ⌈9.9⌉ = 10 → 10
        assert ind.percentile(eleven, 0.9) == 10
        # one value: rank ⌈0.9⌉ = 1
        assert ind.percentile([4.0], 0.9) == 4

    def test_no_values_is_an_error_not_a_zero(self) -> None:
        with pytest.raises(ValueError, match="no values"):
            ind.median([])
        with pytest.raises(ValueError, match="no values"):
            ind.percentile([], 0.9)


class TestSiteAndActivities:
    def test_six_haves_compliance_is_the_mean_of_the_assessed_sites(self) -> None:
        # Sites scored 1.0, 0.834 and 0.66: (1.0 + 0.834 + 0.66) / 3 = 2.494 / 3 = 0.831333
        result = ind.six_haves_compliance([1.0, 0.834, 0.66], sites_in_scope=5)
        assert result.value == pytest.approx(2.494 / 3)
        assert (result.numerator, result.denominator) == (pytest.approx(2.494), 3)
        assert result.details == {"sites_in_scope": 5, "sites_assessed": 3}

    def test_six_haves_without_an_assessed_site_is_insufficient(self) -> None:
        assert ind.six_haves_compliance([], sites_in_scope=4).status == "insufficient_data"

    def test_theme_compliance_counts_months_with_a_theme(self) -> None:
        # Q1 with themes in January and March; on-theme activities in March (and February,
        # which had no theme and so cannot count): 1 / 2.
        result = ind.theme_compliance(["2024-01", "2024-03"], ["2024-02", "2024-03"])
        assert result.value == 0.5
        assert result.details["months_missed"] == ["2024-01"]

    def test_theme_compliance_without_any_theme_is_insufficient(self) -> None:
        assert ind.theme_compliance([], ["2024-03"]).status == "insufficient_data"

    def test_activity_frequency_over_units_and_months(self) -> None:
        # 2 stations × 3 months = 6 pairs; active: S1 Jan, S1 Feb, S2 Mar (and a pair of an
        # unknown unit, which is outside the scope): 3 / 6 = 0.5
        result = ind.activity_frequency(
            ["S1", "S2"],
            ["2024-01", "2024-02", "2024-03"],
            [("S1", "2024-01"), ("S1", "2024-02"), ("S2", "2024-03"), ("S9", "2024-01")],
        )
        assert (result.numerator, result.denominator, result.value) == (3, 6, 0.5)

    def test_meeting_coverage_and_five_steps(self) -> None:
        # 4 house-meeting sites, meetings at 3 of them (and at one outside): 3 / 4
        coverage = ind.meeting_coverage(["H1", "H2", "H3", "H4"], ["H1", "H2", "H3", "X"])
        assert coverage.value == 0.75
        # 5 meetings, 4 complete, minimum 3: 4 / 5 = 0.8
        assert ind.five_step_completeness(5, 4, min_sample=3).value == 0.8
        # 2 meetings < minimum 3
        assert ind.five_step_completeness(2, 2, min_sample=3).status == "insufficient_data"

    def test_concern_settlement(self) -> None:
        # 8 raised, 3 resolved on the spot, 4 converted: 7 / 8
        result = ind.concern_settlement(8, 3, 4)
        assert result.value == pytest.approx(0.875)
        assert result.details == {"resolved_on_spot": 3, "converted": 4}


class TestNeeds:
    def test_fulfilment_leaves_withdrawn_needs_out(self) -> None:
        # 12 accepted, 2 withdrawn, 8 fulfilled: 8 / (12 − 2) = 0.8
        result = ind.need_fulfilment(12, 2, 8, min_sample=5)
        assert (result.numerator, result.denominator, result.value) == (8, 10, 0.8)

    def test_time_to_serve_median_p90_and_mean(self) -> None:
        hours = [2.0, 4.0, 6.0, 8.0, 100.0]
        result = ind.time_to_serve(hours, min_sample=5)
        # median = 6; p90 rank ⌈4.5⌉ = 5 → 100; mean = 120 / 5 = 24
        assert result.value == 6
        assert result.details["p90"] == 100
        assert result.details["mean"] == 24
        assert result.denominator == 5

    def test_time_to_serve_below_minimum(self) -> None:
        result = ind.time_to_serve([1.0, 2.0], min_sample=5)
        assert result.status == "insufficient_data"
        assert result.denominator == 2

    def test_redispatch_rate(self) -> None:
        # 10 needs assigned, 3 re-dispatched at least once: 0.3
        assert ind.redispatch_rate(10, 3, min_sample=5).value == pytest.approx(0.3)


class TestVolunteersAndClosedLoop:
    def test_active_volunteers_and_hours(self) -> None:
        # 40 registered, 10 active: 0.25
        assert ind.active_volunteers(40, 10).value == 0.25
        # 150 h over 10 active: 15 h each; target for a quarter 8 × 3 = 24 h
        hours = ind.hours_per_active(150.0, 10, 3)
        assert hours.value == 15
        assert hours.details["target"] == 24

    def test_dual_checkin(self) -> None:
        # 4 officials, 3 reported to both community and post: 0.75
        assert ind.dual_checkin_rate(4, 3).value == 0.75

    def test_closed_loop_rates(self) -> None:
        assert ind.ack_on_time(4, 3, min_sample=3).value == 0.75
        assert ind.rectify_on_time(5, 2, min_sample=3).value == pytest.approx(0.4)
        assert ind.first_pass_verification(4, 3, min_sample=3).value == 0.75
        # 1 reopen over 4 closures in the two periods: 0.25
        assert ind.reopen_rate(1, 4, min_sample=3).value == 0.25
        # 1 return over 5 feed-backs: 0.2
        assert ind.return_rate(5, 1, min_sample=3).value == pytest.approx(0.2)
        assert ind.return_rate(2, 1, min_sample=3).status == "insufficient_data"

    def test_backlog_is_a_count_scored_by_its_share_of_open_findings(self) -> None:
        result = ind.overdue_backlog(8, 2, 7)
        assert (result.value, result.numerator, result.denominator) == (2, 2, 8)
        assert result.details == {"open_at_end": 8, "overdue_working_days": 7}

    def test_backlog_with_nothing_open_is_insufficient_but_keeps_its_counts(self) -> None:
        result = ind.overdue_backlog(0, 0)
        assert result.status == "insufficient_data"
        assert (result.numerator, result.denominator) == (0, 0)


class TestReporting:
    def test_bulletins_reviews_summaries(self) -> None:
        months = ["2024-01", "2024-02", "2024-03"]
        result = ind.bulletin_on_time(months, ["2024-01", "2024-03"])
        # 2 of 3 months on time
        assert result.value == pytest.approx(2 / 3)
        assert result.details["months_late_or_missing"] == ["2024-02"]
        # a year: 4 quarters, 3 reviews held → 0.75; 2 halves, 1 summary → 0.5
        quarters = ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
        assert ind.quarterly_review(quarters, quarters[:3]).value == 0.75
        assert ind.half_year_summary(["2024-H1", "2024-H2"], ["2024-H1"]).value == 0.5

    def test_a_month_holds_no_quarter_or_half_year(self) -> None:
        review = ind.quarterly_review([], [])
        assert review.status == "insufficient_data"
        assert review.note == "no quarter lies wholly inside this period"
        assert ind.half_year_summary([], []).status == "insufficient_data"


class TestNormalise:
    def test_a_share_higher_better_is_itself(self) -> None:
        assert normalise(ind.ratio("need_fulfilment", 8, 10), "higher_better") == 0.8

    def test_lower_better_flips(self) -> None:
        # re-dispatch 0.2 → 1 − 0.2 = 0.8
        assert normalise(ind.ratio("redispatch_rate", 2, 10), "lower_better") == pytest.approx(0.8)

    def test_floor_is_a_cliff_and_cap_is_full_marks(self) -> None:
        ack = ind.ratio("ack_on_time", 79, 100)
        # 0.79 < floor 0.8 → 0
        assert normalise(ack, "higher_better", floor=0.8) == 0
        # 0.8 is not below the floor: it keeps its value
        assert normalise(ind.ratio("ack_on_time", 80, 100), "higher_better", floor=0.8) == 0.8
        # 0.95 ≥ cap 0.9 → 1
        assert normalise(ind.ratio("ack_on_time", 95, 100), "higher_better", cap=0.9) == 1

    def test_time_to_serve_against_its_seven_day_ceiling(self) -> None:
        served = ind.time_to_serve([42.0] * 5)
        # min(42, 168) / 168 = 0.25; lower better → 0.75
        assert normalise(served, "lower_better") == pytest.approx(0.75)
        slow = ind.time_to_serve([200.0] * 5)
        # capped at the ceiling: 1 → 0
        assert normalise(slow, "lower_better") == 0

    def test_hours_per_active_against_its_target(self) -> None:
        # 12 h over target 8 h (one month): min(1, 1.5) = 1
        assert normalise(ind.hours_per_active(12.0, 1, 1), "higher_better") == 1
        # 6 h over target 24 h (a quarter): 0.25
        assert normalise(ind.hours_per_active(6.0, 1, 3), "higher_better") == 0.25

    def test_backlog_by_its_share_of_open_findings(self) -> None:
        # 2 overdue of 8 open: share 0.25, lower better → 0.75
        assert normalise(ind.overdue_backlog(8, 2), "lower_better") == 0.75

    def test_insufficient_data_has_no_level(self) -> None:
        assert normalise(ind.ratio("satisfaction", 3, 3), "higher_better") is None


def full_year_results() -> dict[str, ind.IndicatorResult]:
    """One result per example-model indicator, every one with data (values in comments)."""
    results = [
        ind.six_haves_compliance([0.9, 0.7]),  # 0.8
        ind.theme_compliance(["m1"], ["m1"]),  # 1.0
        ind.activity_frequency(["S"], ["m1", "m2"], [("S", "m1")]),  # 0.5
        ind.meeting_coverage(["H1", "H2", "H3", "H4"], ["H1", "H2", "H3"]),  # 0.75
        ind.five_step_completeness(5, 3, min_sample=3),  # 0.6
        ind.need_fulfilment(10, 0, 9, min_sample=5),  # 0.9
        ind.time_to_serve([42.0] * 5, min_sample=5),  # median 42 h
        ind.redispatch_rate(10, 2, min_sample=5),  # 0.2
        ind.satisfaction(20, 17, 85, min_sample=10),  # 0.85
        ind.active_volunteers(20, 10),  # 0.5
        ind.hours_per_active(120.0, 10, 1),  # 12 h, target 8 h
        ind.dual_checkin_rate(20, 11),  # 0.55
        ind.ack_on_time(4, 3, min_sample=3),  # 0.75
        ind.rectify_on_time(4, 2, min_sample=3),  # 0.5
        ind.overdue_backlog(8, 2),  # 2 of 8 open
        ind.first_pass_verification(10, 9, min_sample=3),  # 0.9
        ind.reopen_rate(1, 10, min_sample=3),  # 0.1
        ind.return_rate(5, 1, min_sample=3),  # 0.2
        ind.bulletin_on_time(["m1"], ["m1"]),  # 1.0
        ind.quarterly_review(["q1"], ["q1"]),  # 1.0
        ind.half_year_summary(["h1"], ["h1"]),  # 1.0
    ]
    return {r.code: r for r in results}


# Points of each area with every indicator present (example model weights):
#   site        15 × 0.8                                            = 12
#   activities  5 × 1 + 5 × 0.5 + 5 × 0.75 + 5 × 0.6                = 5 + 2.5 + 3.75 + 3 = 14.25
#   needs       6 × 0.9 + 5 × (1 − 42/168) + 3 × (1 − 0.2) + 6 × 0.85
#               = 5.4 + 3.75 + 2.4 + 5.1                            = 16.65
#   volunteers  6 × 0.5 + 4 × min(1, 12/8) + 5 × (0.55 < floor 0.6 → 0)
#               = 3 + 4 + 0                                         = 7
#   closed loop 4 × (0.75 < floor 0.8 → 0) + 4 × 0.5 + 3 × (1 − 2/8) + 3 × 0.9
#               + 3 × (1 − 0.1) + 3 × (1 − 0.2)
#               = 0 + 2 + 2.25 + 2.7 + 2.7 + 2.4                    = 12.05
#   reporting   4 + 3 + 3                                           = 10
#   total       12 + 14.25 + 16.65 + 7 + 12.05 + 10                 = 71.95
FULL_BASE = 71.95


class TestComposite:
    def test_every_indicator_with_data_adds_its_weighted_level(self) -> None:
        composite = score(example_model(), full_year_results())
        assert composite.status == "ok"
        assert composite.base == pytest.approx(FULL_BASE)
        assert composite.value == pytest.approx(FULL_BASE)
        assert composite.covered_weight == pytest.approx(100)
        assert composite.redistributed == {}
        points = {i.result.code: i.score for i in composite.indicators}
        assert points["dual_checkin_rate"] == 0  # below its floor
        assert points["time_to_serve"] == pytest.approx(3.75)

    def test_bonuses_are_capped_at_five_and_deductions_subtract(self) -> None:
        # 71.95 + min(7, 5) − 1.5 = 75.45
        composite = score(example_model(), full_year_results(), bonuses=7, deductions=1.5)
        assert composite.bonus_total == 5
        assert composite.deduction_total == 1.5
        assert composite.value == pytest.approx(75.45)

    def test_the_composite_never_goes_below_zero_or_above_105(self) -> None:
        results = full_year_results()
        low = score(example_model(), results, deductions=90)
        # 71.95 − 90 < 0 → 0
        assert low.value == 0
        perfect = {
            code: (
                ind.ratio(code, 1, 1, min_sample=1)
                if ind.DEFINITIONS[code].direction == "higher_better"
                else ind.ratio(code, 0, 1, min_sample=1)
            )
            for code in results
        }
        perfect["time_to_serve"] = ind.time_to_serve([0.0] * 5)
        perfect["hours_per_active"] = ind.hours_per_active(8.0, 1, 1)
        perfect["overdue_backlog"] = ind.overdue_backlog(3, 0)
        high = score(example_model(), perfect, bonuses=5)
        # 100 + 5 = 105, the maximum
        assert high.base == pytest.approx(100)
        assert high.value == pytest.approx(105)

    def test_missing_indicators_share_their_weight_within_the_area(self) -> None:
        results = full_year_results()
        results["bulletin_on_time"] = ind.bulletin_on_time(["m1", "m2"], ["m1"])  # 0.5
        results["quarterly_review"] = ind.quarterly_review([], [])
        results["half_year_summary"] = ind.half_year_summary([], [])
        composite = score(example_model(), results)
        # Reporting keeps its 10 points, all on the bulletin: 10 × 0.5 = 5 (instead of 10)
        # base = 71.95 − 10 + 5 = 66.95
        assert composite.base == pytest.approx(66.95)
        bulletin = next(i for i in composite.indicators if i.result.code == "bulletin_on_time")
        assert bulletin.effective_weight == pytest.approx(10)
        assert "quarterly_review" in composite.redistributed["reporting"]
        # covered weight: 100 − 3 − 3 = 94
        assert composite.covered_weight == pytest.approx(94)

    def test_an_area_without_data_is_spread_over_the_other_areas(self) -> None:
        results = full_year_results()
        for code in ("need_fulfilment", "time_to_serve", "redispatch_rate", "satisfaction"):
            results[code] = ind.insufficient(code)
        composite = score(example_model(), results)
        # The other areas earned 71.95 − 16.65 = 55.3 of their 80 points; scaled by
        # 100 / 80 = 1.25 → 69.125
        assert composite.base == pytest.approx(69.125)
        assert composite.covered_weight == pytest.approx(80)
        six = next(i for i in composite.indicators if i.result.code == "six_haves_compliance")
        # 15 × 1.25 = 18.75 points available, 0.8 of them earned = 15
        assert six.effective_weight == pytest.approx(18.75)
        assert six.score == pytest.approx(15)
        assert "needs" in composite.redistributed

    def test_too_little_data_gives_no_composite(self) -> None:
        results = {
            code: ind.insufficient(code)
            for code in ind.DEFINITIONS
            if code not in ("six_haves_compliance", "bulletin_on_time")
        }
        results["six_haves_compliance"] = ind.six_haves_compliance([1.0])
        results["bulletin_on_time"] = ind.bulletin_on_time(["m1"], ["m1"])
        composite = score(example_model(), results, bonuses=2)
        # 15 + 4 = 19 points of data < 50
        assert composite.covered_weight == pytest.approx(19)
        assert composite.covered_weight < MIN_COVERED_WEIGHT
        assert composite.status == "insufficient_data"
        assert composite.value is None
        assert composite.base is None

    def test_a_code_without_a_formula_counts_as_insufficient(self) -> None:
        data = copy.deepcopy(EXAMPLE_MODEL)
        data["indicators"][0] = {"code": "site_visits", "area": "site", "weight": 15}
        model = ScoringModel.from_data("m", data)
        composite = score(model, full_year_results())
        visits = next(i for i in composite.indicators if i.result.code == "site_visits")
        assert visits.result.status == "insufficient_data"
        assert any("site_visits" in w for w in model.warnings())
        # site area has no data: the other 85 points scale by 100/85
        # (71.95 − 12) × 100 / 85 = 59.95 / 0.85 = 70.529412
        assert composite.base == pytest.approx(59.95 / 0.85)


class TestModelChoice:
    def test_the_version_in_force_when_the_period_began(self) -> None:
        v1 = example_model()
        v2 = example_model(version=2, effective_from="2024-07")
        assert version_for([v1, v2], "2024-06") is v1
        assert version_for([v1, v2], "2024-07") is v2
        assert version_for([v1, v2], "2023-12") is None

    def test_the_model_minimum_wins_when_set_else_the_formula_default(self) -> None:
        model = example_model()
        five_step = model.indicator("five_step_completeness")
        satisfaction = model.indicator("satisfaction")
        theme = model.indicator("theme_compliance")
        assert five_step is not None
        assert satisfaction is not None
        assert theme is not None
        assert five_step.effective_min_sample() == 3
        assert satisfaction.effective_min_sample() == 10
        assert theme.effective_min_sample() == 1  # model says 0: the formula's own 1
        custom = ModelIndicator(code="satisfaction", area="needs", weight=6, min_sample=20)
        assert custom.effective_min_sample() == 20

    def test_a_model_scoring_a_lower_is_better_indicator_upwards_is_flagged(self) -> None:
        data = copy.deepcopy(EXAMPLE_MODEL)
        for item in data["indicators"]:
            if item["code"] == "return_rate":
                item["direction"] = "higher_better"
        warnings = ScoringModel.from_data("m", data).warnings()
        assert warnings == [
            "return_rate: the model scores it higher_better, but a lower value is better"
        ]
        assert example_model().warnings() == []


class TestRank:
    def test_ties_share_a_rank_and_the_next_skips(self) -> None:
        ranks = rank({"S1": 80.0, "S2": 90.0, "S3": 80.0, "S4": 70.0, "S5": None})
        # 90 → 1; 80, 80 → 2, 2; 70 → 4; no composite → unranked
        assert ranks == {"S1": 2, "S2": 1, "S3": 2, "S4": 4, "S5": None}

    def test_float_noise_does_not_split_a_tie(self) -> None:
        assert rank({"A": 0.1 + 0.2, "B": 0.3}) == {"A": 1, "B": 1}


class TestPublication:
    def test_published_indicators_satisfy_the_contract(self) -> None:
        results = full_year_results()
        results["satisfaction"] = ind.satisfaction(6, 6, 30)
        composite = score(example_model(), results, bonuses=2)
        assert composite.value is not None
        data = {
            "model_id": "wly-district",
            "model_version": 1,
            "as_of_position": 1200,
            "composite": composite.value,
            "bonus_total": composite.bonus_total,
            "indicators": published_indicators(composite),
        }
        checked = ScorecardPublished.model_validate(data)
        satisfaction = next(i for i in checked.indicators if i.code == "satisfaction")
        assert satisfaction.status == "insufficient_data"
        assert satisfaction.value is None
        assert satisfaction.denominator == 6
        assert len(checked.indicators) == 21
