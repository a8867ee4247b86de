"""Contracts of the volunteer and attendance areas: what producers may send, and what not."""

from __future__ import annotations

from typing import Any

import pytest

from practice_events.contracts import load_all
from practice_events.contracts.base import CATALOGUE
from practice_events.contracts.envelope import IncomingEvent, parse_structured
from practice_events.errors import ContractError
from tests import factories_volunteer as f
from tests.harness import cloud_event

load_all()

PRODUCER_TYPES = (
    f.REGISTERED,
    f.STATUS_CHANGED,
    f.SKILLS_UPDATED,
    f.JOINED_TEAM,
    f.LEFT_TEAM,
    f.TRAINING_COMPLETED,
    f.INSURANCE_RECORDED,
    f.REPORTED_TO_COMMUNITY,
    f.REPORTED_TO_POST,
    f.QUOTA_SET,
    f.POINTS_REDEEMED,
    f.TEAM_REGISTERED,
    f.CHECKED_IN,
    f.CHECKED_OUT,
    f.AUTO_CLOSED,
    f.HOURS_RECORDED,
    f.HOURS_APPROVED,
    f.HOURS_REJECTED,
    f.HOURS_CORRECTED,
)
SYSTEM_TYPES = (f.STAR_LEVEL_ATTAINED, f.HOURS_CREDITED, f.POINTS_AWARDED, f.POINTS_REVERSED)
ALL_TYPES = PRODUCER_TYPES + SYSTEM_TYPES


def parse(event_type: str, data: dict[str, Any], subject: str = f.VOLUNTEER) -> IncomingEvent:
    """Parse one structured CloudEvent of ``event_type``."""
    return parse_structured(cloud_event(event_type, subject, data))


def code_of(event_type: str, data: dict[str, Any]) -> str:
    """Return the code the contract refuses ``data`` with."""
    with pytest.raises(ContractError) as info:
        parse(event_type, data)
    return info.value.code


def examples(event_type: str) -> list[dict[str, Any]]:
    """The documented examples of a type."""
    extra = CATALOGUE[event_type].model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    found = extra.get("examples")
    assert isinstance(found, list)
    assert found
    return [dict(example) for example in found if isinstance(example, dict)]


class TestCatalogue:
    @pytest.mark.parametrize("event_type", ALL_TYPES)
    def test_every_type_is_documented_field_by_field(self, event_type: str) -> None:
        model = CATALOGUE[event_type]
        assert model.__doc__
        assert model.__doc__.strip()
        for name, field in model.model_fields.items():
            assert field.description, f"{event_type}.{name} has no description"

    @pytest.mark.parametrize("event_type", ALL_TYPES)
    def test_every_type_names_its_aggregate(self, event_type: str) -> None:
        expected = "team" if event_type == f.TEAM_REGISTERED else "volunteer"
        model = CATALOGUE[event_type]
        assert expected == model.AGGREGATE

    @pytest.mark.parametrize("event_type", PRODUCER_TYPES)
    def test_every_documented_example_is_valid(self, event_type: str) -> None:
        for example in examples(event_type):
            parse(event_type, example)

    def test_only_registration_events_create(self) -> None:
        creating = {t for t in ALL_TYPES if CATALOGUE[t].CREATES}
        assert creating == {f.REGISTERED, f.TEAM_REGISTERED}

    @pytest.mark.parametrize("event_type", SYSTEM_TYPES)
    def test_refuses_system_events_from_producers(self, event_type: str) -> None:
        assert CATALOGUE[event_type].SYSTEM
        assert code_of(event_type, {}) == "SYSTEM_EVENT_TYPE"

    @pytest.mark.parametrize("event_type", PRODUCER_TYPES)
    def test_refuses_fields_no_contract_names(self, event_type: str) -> None:
        data = {**examples(event_type)[0], "nickname": "张三"}
        assert code_of(event_type, data) == "SCHEMA_VIOLATION"


class TestVolunteerRegistered:
    def test_accepts_a_volunteer_without_skills(self) -> None:
        event = parse(f.REGISTERED, {"home_site_id": f.STATION})
        assert event.data_json == {"home_site_id": f.STATION, "skills": [], "is_official": False}

    def test_names_the_home_site_as_a_reference(self) -> None:
        event = parse(f.REGISTERED, f.volunteer())
        assert event.data.references() == [("site", f.STATION)]

    def test_accepts_an_official_with_an_employer_unit(self) -> None:
        event = parse(f.REGISTERED, f.official())
        assert event.data_json["home_unit_id"] == "WLY-DEPT-FINANCE"

    def test_refuses_an_official_without_an_employer_unit(self) -> None:
        assert code_of(f.REGISTERED, f.official(home_unit_id=None)) == "SCHEMA_VIOLATION"

    def test_refuses_an_employer_unit_for_an_ordinary_volunteer(self) -> None:
        data = f.volunteer(home_unit_id="WLY-DEPT-FINANCE")
        assert code_of(f.REGISTERED, data) == "SCHEMA_VIOLATION"

    def test_refuses_a_skill_listed_twice(self) -> None:
        data = f.volunteer(skills=["first_aid", "first_aid"])
        assert code_of(f.REGISTERED, data) == "SCHEMA_VIOLATION"

    def test_refuses_skills_that_are_not_codes(self) -> None:
        assert code_of(f.REGISTERED, f.volunteer(skills=["First Aid"])) == "SCHEMA_VIOLATION"

    def test_refuses_more_than_fifty_skills(self) -> None:
        skills = [f"skill_{n}" for n in range(51)]
        assert code_of(f.REGISTERED, f.volunteer(skills=skills)) == "SCHEMA_VIOLATION"

    def test_refuses_a_missing_home_site(self) -> None:
        assert code_of(f.REGISTERED, {"skills": []}) == "SCHEMA_VIOLATION"

    def test_refuses_a_registration_date_that_is_not_a_date(self) -> None:
        data = f.volunteer(registered_on="1 March")
        assert code_of(f.REGISTERED, data) == "SCHEMA_VIOLATION"


class TestStatusAndSkills:
    def test_accepts_each_status(self) -> None:
        for status in ("active", "suspended", "archived"):
            parse(f.STATUS_CHANGED, {"status": status, "reason": "年度复核"})

    def test_refuses_an_unknown_status(self) -> None:
        data = {"status": "banned", "reason": "x"}
        assert code_of(f.STATUS_CHANGED, data) == "SCHEMA_VIOLATION"

    def test_refuses_a_status_change_without_reason(self) -> None:
        assert code_of(f.STATUS_CHANGED, {"status": "suspended"}) == "SCHEMA_VIOLATION"

    def test_refuses_a_blank_reason(self) -> None:
        data = {"status": "suspended", "reason": "   "}
        assert code_of(f.STATUS_CHANGED, data) == "SCHEMA_VIOLATION"

    def test_accepts_an_empty_skill_list(self) -> None:
        assert parse(f.SKILLS_UPDATED, {"skills": []}).data_json == {"skills": []}

    def test_refuses_a_repeated_skill_in_an_update(self) -> None:
        data = {"skills": ["elder_care", "elder_care"]}
        assert code_of(f.SKILLS_UPDATED, data) == "SCHEMA_VIOLATION"


class TestTeams:
    def test_joining_names_the_team_as_a_reference(self) -> None:
        event = parse(f.JOINED_TEAM, {"team_id": f.TEAM, "role": "captain"})
        assert event.data.references() == [("team", f.TEAM)]

    def test_leaving_needs_no_reference(self) -> None:
        assert parse(f.LEFT_TEAM, {"team_id": f.TEAM}).data.references() == []

    def test_refuses_a_team_id_with_spaces(self) -> None:
        assert code_of(f.JOINED_TEAM, {"team_id": "team 31"}) == "SCHEMA_VIOLATION"

    def test_team_registration_names_site_and_leader(self) -> None:
        event = parse(f.TEAM_REGISTERED, f.team(lead_volunteer_no="V-1"), subject=f.TEAM)
        assert sorted(event.data.references()) == [("site", f.STATION), ("volunteer", "V-1")]

    def test_refuses_a_team_without_category(self) -> None:
        assert code_of(f.TEAM_REGISTERED, f.team(category=None)) == "SCHEMA_VIOLATION"


class TestTrainingAndInsurance:
    def test_refuses_a_training_of_no_hours(self) -> None:
        data = {"course_id": "FIRST-AID", "hours": 0}
        assert code_of(f.TRAINING_COMPLETED, data) == "OUT_OF_RANGE"

    def test_refuses_a_training_longer_than_a_thousand_hours(self) -> None:
        data = {"course_id": "FIRST-AID", "hours": 1000.5}
        assert code_of(f.TRAINING_COMPLETED, data) == "OUT_OF_RANGE"

    def test_accepts_a_single_day_of_cover(self) -> None:
        data = {
            "policy_no": "P-1",
            "insurer": "PICC",
            "covered_from": "2024-03-05",
            "covered_to": "2024-03-05",
        }
        parse(f.INSURANCE_RECORDED, data)

    def test_refuses_cover_that_ends_before_it_starts(self) -> None:
        data = {
            "policy_no": "P-1",
            "insurer": "PICC",
            "covered_from": "2024-03-05",
            "covered_to": "2024-03-04",
        }
        assert code_of(f.INSURANCE_RECORDED, data) == "OUT_OF_RANGE"


class TestOfficials:
    def test_reports_name_their_sites_as_references(self) -> None:
        community = parse(f.REPORTED_TO_COMMUNITY, {"community_site_id": f.STATION})
        post = parse(f.REPORTED_TO_POST, {"post_site_id": f.POST})
        assert community.data.references() == [("site", f.STATION)]
        assert post.data.references() == [("site", f.POST)]

    def test_refuses_a_quota_of_no_hours(self) -> None:
        data = {"year": 2024, "required_hours": 0}
        assert code_of(f.QUOTA_SET, data) == "OUT_OF_RANGE"

    def test_refuses_a_quota_for_an_implausible_year(self) -> None:
        data = {"year": 1999, "required_hours": 50}
        assert code_of(f.QUOTA_SET, data) == "OUT_OF_RANGE"


class TestPointsRedeemed:
    def test_refuses_zero_points(self) -> None:
        assert code_of(f.POINTS_REDEEMED, f.redeem(0)) == "OUT_OF_RANGE"

    def test_refuses_negative_points(self) -> None:
        assert code_of(f.POINTS_REDEEMED, f.redeem(-10)) == "OUT_OF_RANGE"

    def test_refuses_fractional_points(self) -> None:
        assert code_of(f.POINTS_REDEEMED, {**f.redeem(1), "points": 2.5}) == "SCHEMA_VIOLATION"


class TestCheckedIn:
    def test_names_site_and_activity_as_references(self) -> None:
        event = parse(f.CHECKED_IN, f.check_in(activity_id=f.ACTIVITY))
        assert sorted(event.data.references()) == [("activity", f.ACTIVITY), ("site", f.STATION)]

    def test_refuses_an_unknown_method(self) -> None:
        assert code_of(f.CHECKED_IN, f.check_in(method="sms")) == "SCHEMA_VIOLATION"

    def test_refuses_an_unknown_participant_kind(self) -> None:
        data = f.check_in(participant_kind="resident")
        assert code_of(f.CHECKED_IN, data) == "SCHEMA_VIOLATION"

    def test_refuses_a_position_off_the_globe(self) -> None:
        data = f.check_in(geo={"lat": 91, "lon": 110})
        assert code_of(f.CHECKED_IN, data) == "OUT_OF_RANGE"

    def test_refuses_a_check_in_without_session_id(self) -> None:
        assert code_of(f.CHECKED_IN, f.check_in(session_id=None)) == "SCHEMA_VIOLATION"

    def test_refuses_a_naive_event_time(self) -> None:
        raw = cloud_event(f.CHECKED_IN, f.VOLUNTEER, f.check_in(), time="2024-03-04T09:00:00")
        with pytest.raises(ContractError) as info:
            parse_structured(raw)
        assert info.value.code == "NAIVE_DATETIME"


class TestCheckoutAutoClosed:
    def test_refuses_an_unknown_rule(self) -> None:
        data = f.auto_close(until=f.at(5, 0), rule="whenever")
        assert code_of(f.AUTO_CLOSED, data) == "SCHEMA_VIOLATION"

    def test_refuses_a_naive_credited_until(self) -> None:
        data = f.auto_close(until=f.at(5, 0), credited_until="2024-03-05T00:00:00")
        assert code_of(f.AUTO_CLOSED, data) == "NAIVE_DATETIME"


class TestHoursRecorded:
    def test_accepts_a_back_fill_across_midnight(self) -> None:
        parse(f.HOURS_RECORDED, f.back_fill(start=f.at(2, 22), end=f.at(3, 1)))

    def test_refuses_a_back_fill_that_ends_before_it_starts(self) -> None:
        data = f.back_fill(start=f.at(2, 11), end=f.at(2, 9))
        assert code_of(f.HOURS_RECORDED, data) == "OUT_OF_RANGE"

    def test_refuses_a_back_fill_of_no_time(self) -> None:
        data = f.back_fill(start=f.at(2, 11), end=f.at(2, 11))
        assert code_of(f.HOURS_RECORDED, data) == "OUT_OF_RANGE"

    def test_accepts_exactly_twenty_four_hours(self) -> None:
        parse(f.HOURS_RECORDED, f.back_fill(start=f.at(2, 8), end=f.at(3, 8)))

    def test_refuses_more_than_twenty_four_hours(self) -> None:
        data = f.back_fill(start=f.at(2, 8), end=f.at(3, 8, 1))
        assert code_of(f.HOURS_RECORDED, data) == "OUT_OF_RANGE"

    def test_refuses_a_back_fill_without_evidence(self) -> None:
        assert code_of(f.HOURS_RECORDED, f.back_fill(evidence=[])) == "SCHEMA_VIOLATION"

    def test_refuses_naive_times(self) -> None:
        data = f.back_fill(started_at="2024-03-02T08:30:00")
        assert code_of(f.HOURS_RECORDED, data) == "NAIVE_DATETIME"


class TestDecisionsOnHours:
    def test_refuses_an_approval_without_approver(self) -> None:
        assert code_of(f.HOURS_APPROVED, f.approve(approver=None)) == "SCHEMA_VIOLATION"

    def test_refuses_a_rejection_without_reason(self) -> None:
        assert code_of(f.HOURS_REJECTED, f.reject(reason=None)) == "SCHEMA_VIOLATION"

    def test_accepts_a_correction_in_quarter_hours(self) -> None:
        assert parse(f.HOURS_CORRECTED, f.correct(delta=1.75)).data_json["delta_hours"] == 1.75

    def test_refuses_a_correction_of_zero(self) -> None:
        assert code_of(f.HOURS_CORRECTED, f.correct(delta=0)) == "OUT_OF_RANGE"

    def test_refuses_a_correction_that_is_not_quarter_hours(self) -> None:
        assert code_of(f.HOURS_CORRECTED, f.correct(delta=0.1)) == "OUT_OF_RANGE"

    def test_refuses_a_correction_beyond_a_day(self) -> None:
        assert code_of(f.HOURS_CORRECTED, f.correct(delta=-24.25)) == "OUT_OF_RANGE"

    def test_refuses_a_correction_without_reason(self) -> None:
        assert code_of(f.HOURS_CORRECTED, f.correct(reason=None)) == "SCHEMA_VIOLATION"


class TestSystemSchemas:
    def test_a_credit_is_quarter_hours_and_pending(self) -> None:
        model = CATALOGUE[f.HOURS_CREDITED]
        credit = {
            "session_id": "S-1",
            "site_id": f.STATION,
            "participant_kind": "volunteer",
            "started_at": "2024-03-04T09:00:00+08:00",
            "ended_at": "2024-03-04T11:00:00+08:00",
            "hours": 2.0,
            "basis": "checkin_checkout",
            "status": "pending",
        }
        model.model_validate(credit)
        with pytest.raises(ValueError, match="multiple"):
            model.model_validate({**credit, "hours": 2.1})
        with pytest.raises(ValueError, match="pending"):
            model.model_validate({**credit, "status": "approved"})
