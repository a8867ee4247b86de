"""Contracts of the assessment area: scoring models, periods, scorecards and reports."""

from __future__ import annotations

from typing import Any

import pytest

import practice_events.contracts.assessment as contracts
from practice_events.contracts.base import CATALOGUE, example_payload
from practice_events.contracts.envelope import IncomingEvent, parse_structured
from practice_events.domain import assessment as domain
from practice_events.errors import ContractError
from tests import factories_need as f
from tests.harness import cloud_event


def parse(event_type: str, data: dict[str, Any], subject: str = "ST-1:2024-03") -> IncomingEvent:
    """Parse one structured CloudEvent of ``event_type``."""
    return parse_structured(cloud_event(event_type, subject, data))


def refusal(event_type: str, data: dict[str, Any]) -> ContractError:
    """Return the error the contract refuses ``data`` with."""
    with pytest.raises(ContractError) as info:
        parse(event_type, data)
    return info.value


def code_of(event_type: str, data: dict[str, Any]) -> str:
    """Return the code the contract refuses ``data`` with."""
    return refusal(event_type, data).code


def indicator(code: str, area: str, weight: float, **extra: Any) -> dict[str, Any]:
    """One indicator of a scoring model."""
    return {"code": code, "area": area, "weight": weight, **extra}


class TestCatalogue:
    @pytest.mark.parametrize("event_type", f.ASSESSMENT_TYPES)
    def test_every_type_is_registered_with_its_aggregate(self, event_type: str) -> None:
        model = CATALOGUE[event_type]
        assert model.AGGREGATE in {"scoring_model", "assessment"}
        assert not model.SYSTEM
        assert model.__doc__
        for name, field in model.model_fields.items():
            assert field.description, f"{event_type}.{name} has no description"

    @pytest.mark.parametrize("event_type", f.ASSESSMENT_TYPES)
    def test_the_documented_example_is_valid(self, event_type: str) -> None:
        example = example_payload(CATALOGUE[event_type])
        assert example is not None
        parse(event_type, example)

    def test_only_the_publication_and_the_opening_create(self) -> None:
        creating = {t for t in f.ASSESSMENT_TYPES if CATALOGUE[t].CREATES}
        assert creating == {f.MODEL_PUBLISHED, f.PERIOD_OPENED}

    def test_the_contract_and_the_domain_agree_on_the_bonus_cap(self) -> None:
        assert contracts.BONUS_CAP == domain.BONUS_CAP == 5


class TestScoringModelPublished:
    def test_the_example_model_has_the_design_weights(self) -> None:
        event = parse(f.MODEL_PUBLISHED, f.scoring_model(), subject="wly-district")
        assert event.data_json["area_weights"] == {
            "site": 15,
            "activities": 20,
            "needs": 20,
            "volunteers": 15,
            "closed_loop": 20,
            "reporting": 10,
        }
        codes = [i["code"] for i in event.data_json["indicators"]]
        assert len(codes) == 21
        assert {"six_haves_compliance", "time_to_serve", "half_year_summary"} <= set(codes)

    def test_indicator_defaults_are_stored(self) -> None:
        event = parse(f.MODEL_PUBLISHED, f.scoring_model())
        first = event.data_json["indicators"][0]
        assert first["min_sample"] == 0
        assert first["direction"] == "higher_better"

    def test_accepts_weights_within_a_hundredth_of_their_targets(self) -> None:
        data = f.scoring_model(
            area_weights={"a": 33.333, "b": 66.667},
            indicators=[indicator("x", "a", 33.33), indicator("y", "b", 66.67)],
        )
        assert parse(f.MODEL_PUBLISHED, data).data_json["version"] == 1

    def test_refuses_a_first_publication_that_is_not_version_one(self) -> None:
        assert code_of(f.MODEL_PUBLISHED, f.scoring_model(version=2)) == "OUT_OF_RANGE"

    def test_refuses_area_weights_that_do_not_sum_to_100(self) -> None:
        data = f.scoring_model(
            area_weights={"a": 50, "b": 40},
            indicators=[indicator("x", "a", 50), indicator("y", "b", 40)],
        )
        error = refusal(f.MODEL_PUBLISHED, data)
        assert error.code == "OUT_OF_RANGE"
        assert "sum to 90" in error.reason

    def test_refuses_indicators_that_do_not_add_up_to_their_area(self) -> None:
        data = f.scoring_model(
            area_weights={"a": 50, "b": 50},
            indicators=[indicator("x", "a", 50), indicator("y", "b", 40)],
        )
        error = refusal(f.MODEL_PUBLISHED, data)
        assert error.code == "OUT_OF_RANGE"
        assert "area b" in error.reason

    def test_refuses_an_area_weight_without_indicators(self) -> None:
        data = f.scoring_model(
            area_weights={"a": 50, "b": 50}, indicators=[indicator("x", "a", 50)]
        )
        assert code_of(f.MODEL_PUBLISHED, data) == "OUT_OF_RANGE"

    def test_refuses_duplicate_indicator_codes(self) -> None:
        data = f.scoring_model(
            area_weights={"a": 100},
            indicators=[indicator("x", "a", 50), indicator("x", "a", 50)],
        )
        error = refusal(f.MODEL_PUBLISHED, data)
        assert error.code == "SCHEMA_VIOLATION"
        assert "appears twice" in error.reason

    def test_refuses_an_indicator_of_an_unknown_area(self) -> None:
        data = f.scoring_model(
            area_weights={"a": 100},
            indicators=[indicator("x", "a", 50), indicator("y", "z", 50)],
        )
        assert code_of(f.MODEL_PUBLISHED, data) == "SCHEMA_VIOLATION"

    @pytest.mark.parametrize(
        ("extra", "code"),
        [
            ({"weight": -1}, "OUT_OF_RANGE"),
            ({"floor": 1.2}, "OUT_OF_RANGE"),
            ({"cap": -0.1}, "OUT_OF_RANGE"),
            ({"floor": 0.8, "cap": 0.5}, "OUT_OF_RANGE"),
            ({"min_sample": -1}, "OUT_OF_RANGE"),
            ({"direction": "up"}, "SCHEMA_VIOLATION"),
            ({"code": "Has Spaces"}, "SCHEMA_VIOLATION"),
            ({"formula": "x/y"}, "SCHEMA_VIOLATION"),
        ],
    )
    def test_refuses_bad_indicators(self, extra: dict[str, Any], code: str) -> None:
        data = f.scoring_model(
            area_weights={"a": 100}, indicators=[{**indicator("x", "a", 100), **extra}]
        )
        assert code_of(f.MODEL_PUBLISHED, data) == code

    def test_refuses_a_model_without_indicators(self) -> None:
        assert code_of(f.MODEL_PUBLISHED, f.scoring_model(indicators=[])) == "SCHEMA_VIOLATION"

    def test_refuses_a_bad_effective_month(self) -> None:
        data = f.scoring_model(effective_from="2024-13")
        assert code_of(f.MODEL_PUBLISHED, data) == "SCHEMA_VIOLATION"


class TestScoringModelRevised:
    def test_accepts_version_two(self) -> None:
        assert parse(f.MODEL_REVISED, f.revision()).data_json["version"] == 2

    def test_refuses_version_one(self) -> None:
        assert code_of(f.MODEL_REVISED, f.revision(version=1)) == "OUT_OF_RANGE"

    def test_applies_the_same_weight_checks(self) -> None:
        data = f.revision(area_weights={"a": 100}, indicators=[indicator("x", "a", 90)])
        assert code_of(f.MODEL_REVISED, data) == "OUT_OF_RANGE"


class TestPeriodOpened:
    @pytest.mark.parametrize(
        ("period", "kind"),
        [("2024-03", "month"), ("2024-Q1", "quarter"), ("2024-H2", "half_year"), ("2024", "year")],
    )
    def test_accepts_every_kind_of_period(self, period: str, kind: str) -> None:
        event = parse(f.PERIOD_OPENED, f.period(period=period), subject=f"ST-1:{period}")
        assert event.data_json["kind"] == kind
        assert event.data.references() == [("site", "ST-1")]

    @pytest.mark.parametrize(
        ("period", "kind"),
        [
            ("2024-Q1", "month"),
            ("2024-03", "quarter"),
            ("2024-Q5", "quarter"),
            ("2024-H3", "half_year"),
            ("2024-13", "month"),
            ("24", "year"),
            ("2024-3", "month"),
        ],
    )
    def test_refuses_a_period_spelled_unlike_its_kind(self, period: str, kind: str) -> None:
        error = refusal(f.PERIOD_OPENED, f.period(period=period, kind=kind))
        assert error.code == "SCHEMA_VIOLATION"
        assert f"is not a {kind}" in error.reason

    def test_refuses_an_unknown_kind(self) -> None:
        assert code_of(f.PERIOD_OPENED, f.period(kind="week")) == "SCHEMA_VIOLATION"

    def test_period_kind_reads_the_spelling(self) -> None:
        assert contracts.period_kind("2024-Q2") == "quarter"
        assert contracts.period_kind("2024-W2") is None


class TestScoreAdjusted:
    def test_accepts_a_bonus_with_evidence(self) -> None:
        event = parse(f.SCORE_ADJUSTED, f.adjustment(2, indicator_code="satisfaction"))
        assert event.data_json["delta"] == 2
        assert event.data_json["indicator_code"] == "satisfaction"

    def test_accepts_a_deduction(self) -> None:
        assert parse(f.SCORE_ADJUSTED, f.adjustment(-3)).data_json["kind"] == "deduction"

    def test_refuses_a_bonus_with_a_negative_delta(self) -> None:
        assert code_of(f.SCORE_ADJUSTED, f.adjustment(-1, kind="bonus")) == "OUT_OF_RANGE"

    def test_refuses_a_deduction_with_a_positive_delta(self) -> None:
        assert code_of(f.SCORE_ADJUSTED, f.adjustment(1, kind="deduction")) == "OUT_OF_RANGE"

    def test_refuses_a_zero_delta(self) -> None:
        assert code_of(f.SCORE_ADJUSTED, f.adjustment(0, kind="bonus")) == "OUT_OF_RANGE"

    def test_refuses_a_single_bonus_above_the_cap(self) -> None:
        assert code_of(f.SCORE_ADJUSTED, f.adjustment(5.5)) == "OUT_OF_RANGE"

    def test_refuses_an_adjustment_without_approver_or_reason(self) -> None:
        assert code_of(f.SCORE_ADJUSTED, f.adjustment(approver=None)) == "SCHEMA_VIOLATION"
        assert code_of(f.SCORE_ADJUSTED, f.adjustment(reason=None)) == "SCHEMA_VIOLATION"


class TestScorecardPublished:
    def test_accepts_a_scorecard_and_references_its_model(self) -> None:
        event = parse(f.SCORECARD, f.scorecard())
        assert event.data.references() == [("scoring_model", "wly-district")]
        assert event.data_json["indicators"][1] == {
            "code": "satisfaction",
            "status": "insufficient_data",
            "denominator": 4,
        }

    def test_accepts_log_positions_beyond_a_million(self) -> None:
        event = parse(f.SCORECARD, f.scorecard(as_of_position=9_876_543_210))
        assert event.data_json["as_of_position"] == 9_876_543_210

    def test_refuses_insufficient_data_reported_as_zero(self) -> None:
        data = f.scorecard(indicators=[{"code": "x", "status": "insufficient_data", "value": 0}])
        error = refusal(f.SCORECARD, data)
        assert error.code == "SCHEMA_VIOLATION"
        assert "never 0 %" in error.reason

    def test_refuses_an_ok_indicator_without_value(self) -> None:
        data = f.scorecard(indicators=[{"code": "x", "status": "ok"}])
        assert code_of(f.SCORECARD, data) == "SCHEMA_VIOLATION"

    def test_refuses_an_indicator_listed_twice(self) -> None:
        item = {"code": "x", "status": "ok", "value": 1}
        assert code_of(f.SCORECARD, f.scorecard(indicators=[item, item])) == "SCHEMA_VIOLATION"

    @pytest.mark.parametrize(
        "overrides",
        [
            {"composite": -1},
            {"composite": 105.5},
            {"bonus_total": 6},
            {"as_of_position": -1},
            {"model_version": 0},
        ],
    )
    def test_refuses_numbers_out_of_range(self, overrides: dict[str, Any]) -> None:
        assert code_of(f.SCORECARD, f.scorecard(**overrides)) == "OUT_OF_RANGE"

    def test_refuses_a_scorecard_without_indicators(self) -> None:
        assert code_of(f.SCORECARD, f.scorecard(indicators=[])) == "SCHEMA_VIOLATION"


class TestReports:
    def test_accepts_a_bulletin(self) -> None:
        assert parse(f.BULLETIN, f.bulletin()).data_json["document_ref"] == "TB-2024-03"

    def test_accepts_a_corrected_bulletin(self) -> None:
        data = f.bulletin("TB-2024-03-R1", correction_of="TB-2024-03")
        assert parse(f.BULLETIN, data).data_json["correction_of"] == "TB-2024-03"

    def test_a_bulletin_needs_its_log_position(self) -> None:
        assert code_of(f.BULLETIN, f.bulletin(as_of_position=None)) == "SCHEMA_VIOLATION"

    def test_a_review_references_the_ranked_units(self) -> None:
        event = parse(f.REVIEW, f.review(), subject="ST-1:2024-Q1")
        assert event.data.references() == [("site", "ST-1"), ("site", "ST-2")]

    def test_a_review_ranks_each_unit_once(self) -> None:
        assert code_of(f.REVIEW, f.review(ranked_units=["ST-1", "ST-1"])) == "SCHEMA_VIOLATION"

    def test_a_review_needs_attendees(self) -> None:
        assert code_of(f.REVIEW, f.review(attendees_count=0)) == "OUT_OF_RANGE"

    def test_accepts_a_half_year_summary(self) -> None:
        event = parse(f.SUMMARY, f.summary(), subject="ST-1:2024-H1")
        assert event.data_json["document_ref"] == "ZJ-2024-H1"

    def test_a_summary_needs_a_document(self) -> None:
        assert code_of(f.SUMMARY, f.summary(document_ref=None)) == "SCHEMA_VIOLATION"

    def test_closing_needs_no_fields(self) -> None:
        assert parse(f.PERIOD_CLOSED, {}).data_json == {}
