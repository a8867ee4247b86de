"""Contracts of the activity area: monthly themes and activities."""

from __future__ import annotations

from typing import Any

import pytest

import practice_events.contracts.activity  # noqa: F401 - registers the activity area's types
from practice_events.contracts.base import CATALOGUE, example_payload
from practice_events.contracts.envelope import IncomingEvent, parse_structured
from practice_events.errors import ContractError
from tests import factories_site as f
from tests.harness import cloud_event

ACTIVITY_TYPES = (f.THEME_SET, f.THEME_REVISED, f.PLANNED, f.CANCELLED, f.COMPLETED, f.FEEDBACK)


def parse(event_type: str, data: dict[str, Any], subject: str = "A-1") -> IncomingEvent:
    """Parse one structured CloudEvent of ``event_type``."""
    return parse_structured(cloud_event(event_type, subject, data))


def code_of(event_type: str, data: dict[str, Any]) -> str:
    """Return the code the contract refuses ``data`` with."""
    with pytest.raises(ContractError) as info:
        parse(event_type, data)
    return info.value.code


class TestCatalogue:
    @pytest.mark.parametrize("event_type", ACTIVITY_TYPES)
    def test_every_type_is_registered_and_documented(self, event_type: str) -> None:
        model = CATALOGUE[event_type]
        assert model.AGGREGATE in {"theme", "activity"}
        assert not model.SYSTEM
        assert model.__doc__
        assert all(field.description for field in model.model_fields.values())

    @pytest.mark.parametrize("event_type", ACTIVITY_TYPES)
    def test_the_documented_example_is_valid(self, event_type: str) -> None:
        example = example_payload(CATALOGUE[event_type])
        assert example is not None
        parse(event_type, example)

    def test_only_the_creating_events_create(self) -> None:
        creating = {t for t in ACTIVITY_TYPES if CATALOGUE[t].CREATES}
        assert creating == {f.THEME_SET, f.PLANNED}


class TestThemeSet:
    def test_accepts_a_theme_for_a_month(self) -> None:
        event = parse(f.THEME_SET, f.theme(), subject="WLY:2024-03")
        assert event.data_json["month"] == "2024-03"
        assert event.data.references() == [("site", "WLY")]

    @pytest.mark.parametrize("month", ["2024-13", "2024-3", "24-03", "2024-00", "March"])
    def test_rejects_a_month_not_written_yyyy_mm(self, month: str) -> None:
        assert code_of(f.THEME_SET, f.theme(month=month)) == "SCHEMA_VIOLATION"

    def test_rejects_a_theme_code_with_capitals(self) -> None:
        assert code_of(f.THEME_SET, f.theme(theme_code="LeiFeng")) == "SCHEMA_VIOLATION"

    def test_rejects_a_theme_without_unit(self) -> None:
        assert code_of(f.THEME_SET, f.theme(unit_id=None)) == "SCHEMA_VIOLATION"


class TestThemeRevised:
    def test_accepts_a_new_title(self) -> None:
        assert parse(f.THEME_REVISED, {"title": "新标题"}).data_json == {"title": "新标题"}

    def test_accepts_a_new_code(self) -> None:
        assert parse(f.THEME_REVISED, {"theme_code": "our_festivals"}).data_json == {
            "theme_code": "our_festivals"
        }

    def test_rejects_a_revision_that_changes_nothing(self) -> None:
        assert code_of(f.THEME_REVISED, {}) == "SCHEMA_VIOLATION"

    def test_rejects_a_change_of_month(self) -> None:
        assert code_of(f.THEME_REVISED, {"month": "2024-04"}) == "SCHEMA_VIOLATION"


class TestActivityPlanned:
    def test_accepts_a_planned_activity(self) -> None:
        event = parse(f.PLANNED, f.activity(team_id="T-7"))
        assert event.data.references() == [("site", "WLY-ZHAN-1"), ("team", "T-7")]
        assert event.data_json["starts_at"] == "2024-03-05T09:00:00+08:00"

    def test_accepts_an_activity_without_theme_slots_or_team(self) -> None:
        event = parse(f.PLANNED, f.activity(theme_code=None, slots=None))
        assert "theme_code" not in event.data_json
        assert event.data.references() == [("site", "WLY-ZHAN-1")]

    def test_rejects_an_end_before_the_start(self) -> None:
        data = f.activity(starts_at=f.at(5, 12).isoformat(), ends_at=f.at(5, 9).isoformat())
        assert code_of(f.PLANNED, data) == "OUT_OF_RANGE"

    def test_rejects_an_end_equal_to_the_start(self) -> None:
        data = f.activity(ends_at=f.at(5, 9).isoformat())
        assert code_of(f.PLANNED, data) == "OUT_OF_RANGE"

    def test_rejects_a_naive_start(self) -> None:
        assert code_of(f.PLANNED, f.activity(starts_at="2024-03-05T09:00:00")) == "NAIVE_DATETIME"

    def test_rejects_zero_slots(self) -> None:
        assert code_of(f.PLANNED, f.activity(slots=0)) == "OUT_OF_RANGE"

    def test_rejects_a_missing_category(self) -> None:
        assert code_of(f.PLANNED, f.activity(category=None)) == "SCHEMA_VIOLATION"


class TestActivityCancelled:
    def test_accepts_a_reason(self) -> None:
        parse(f.CANCELLED, {"reason": "暴雨预警"})

    def test_rejects_an_empty_reason(self) -> None:
        assert code_of(f.CANCELLED, {"reason": ""}) == "SCHEMA_VIOLATION"


class TestActivityCompleted:
    def test_accepts_counts_summary_and_evidence(self) -> None:
        event = parse(f.COMPLETED, f.completion())
        assert event.data_json["evidence"][0]["kind"] == "photo"

    def test_accepts_a_bare_count(self) -> None:
        assert parse(f.COMPLETED, {"served_count": 0}).data_json == {
            "served_count": 0,
            "evidence": [],
        }

    def test_rejects_a_negative_count(self) -> None:
        assert code_of(f.COMPLETED, f.completion(served_count=-1)) == "OUT_OF_RANGE"

    def test_rejects_more_beneficiaries_than_people_served(self) -> None:
        data = f.completion(served_count=10, beneficiaries_count=11)
        assert code_of(f.COMPLETED, data) == "OUT_OF_RANGE"

    def test_rejects_a_missing_count(self) -> None:
        assert code_of(f.COMPLETED, f.completion(served_count=None)) == "SCHEMA_VIOLATION"


class TestActivityFeedbackGiven:
    @pytest.mark.parametrize("rater", ["beneficiary", "resident", "supervisor"])
    def test_accepts_every_kind_of_rater(self, rater: str) -> None:
        parse(f.FEEDBACK, {"rater_kind": rater, "rating": 4, "comment": "很好"})

    @pytest.mark.parametrize("rating", [0, 6])
    def test_rejects_a_rating_outside_one_to_five(self, rating: int) -> None:
        assert code_of(f.FEEDBACK, {"rater_kind": "resident", "rating": rating}) == "OUT_OF_RANGE"

    def test_rejects_an_unknown_rater(self) -> None:
        assert code_of(f.FEEDBACK, {"rater_kind": "mayor", "rating": 5}) == "SCHEMA_VIOLATION"
