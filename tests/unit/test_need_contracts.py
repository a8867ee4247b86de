"""Contracts of the need area: what producers may send about needs and micro-wishes."""

from __future__ import annotations

from typing import Any

import pytest

import practice_events.contracts.need  # noqa: F401 - registers the need area's types
from practice_events.contracts.base import CATALOGUE, example_payload
from practice_events.contracts.envelope import IncomingEvent, parse_structured
from practice_events.errors import ContractError
from tests import factories_need as f
from tests.harness import cloud_event


def parse(event_type: str, data: dict[str, Any], subject: str = "N-1") -> IncomingEvent:
    """Parse one structured CloudEvent of ``event_type``."""
    return parse_structured(cloud_event(event_type, subject, data))


def code_of(event_type: str, data: dict[str, Any]) -> str:
    """Return the code the contract refuses ``data`` with."""
    with pytest.raises(ContractError) as info:
        parse(event_type, data)
    return info.value.code


class TestCatalogue:
    @pytest.mark.parametrize("event_type", f.NEED_TYPES)
    def test_every_type_is_registered_for_the_need_aggregate(self, event_type: str) -> None:
        model = CATALOGUE[event_type]
        assert model.AGGREGATE == "need"
        assert not model.SYSTEM
        assert model.__doc__
        for name, field in model.model_fields.items():
            assert field.description, f"{event_type}.{name} has no description"

    @pytest.mark.parametrize("event_type", f.NEED_TYPES)
    def test_the_documented_example_is_valid(self, event_type: str) -> None:
        example = example_payload(CATALOGUE[event_type])
        assert example is not None
        parse(event_type, example)

    def test_only_the_submission_creates(self) -> None:
        assert {t for t in f.NEED_TYPES if CATALOGUE[t].CREATES} == {f.SUBMITTED}

    @pytest.mark.parametrize("event_type", f.NEED_TYPES)
    def test_unknown_fields_are_refused(self, event_type: str) -> None:
        example = example_payload(CATALOGUE[event_type])
        assert code_of(event_type, {**example, "resident_name": "张三"}) == "SCHEMA_VIOLATION"


class TestNeedSubmitted:
    def test_accepts_a_micro_wish_and_names_its_site(self) -> None:
        event = parse(f.SUBMITTED, f.need())
        assert event.data_json["channel"] == "micro_wish"
        assert event.data.references() == [("site", "ST-1")]

    @pytest.mark.parametrize("channel", ["micro_wish", "app", "hotline", "visit", "service_menu"])
    def test_accepts_every_channel_but_house_meeting_without_a_meeting(self, channel: str) -> None:
        assert parse(f.SUBMITTED, f.need(channel=channel)).data_json["channel"] == channel

    def test_defaults_urgency_to_normal(self) -> None:
        assert parse(f.SUBMITTED, f.need(urgency=None)).data_json["urgency"] == "normal"

    def test_accepts_a_need_converted_from_a_house_meeting_concern(self) -> None:
        data = f.need(channel="house_meeting", meeting_id="M-1", concern_id="C-3")
        event = parse(f.SUBMITTED, data)
        assert event.data.references() == [("site", "ST-1"), ("meeting", "M-1")]
        assert event.data_json["concern_id"] == "C-3"

    def test_rejects_a_concern_without_its_meeting(self) -> None:
        data = f.need(channel="house_meeting", concern_id="C-3")
        assert code_of(f.SUBMITTED, data) == "SCHEMA_VIOLATION"

    def test_rejects_a_meeting_link_through_another_channel(self) -> None:
        assert code_of(f.SUBMITTED, f.need(meeting_id="M-1")) == "SCHEMA_VIOLATION"

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("channel", "wechat"),
            ("urgency", "critical"),
            ("category", "Home Repair"),
            ("summary", ""),
            ("beneficiary_ref", "张 三"),
            ("site_id", None),
        ],
    )
    def test_rejects_bad_values(self, field: str, value: Any) -> None:
        assert code_of(f.SUBMITTED, f.need(**{field: value})) == "SCHEMA_VIOLATION"


class TestNeedAcceptedAndRejected:
    def test_acceptance_names_who_accepted(self) -> None:
        assert parse(f.ACCEPTED, {"by": "ST-1"}).data_json == {"by": "ST-1"}

    def test_acceptance_without_by_is_refused(self) -> None:
        assert code_of(f.ACCEPTED, {}) == "SCHEMA_VIOLATION"
        assert code_of(f.ACCEPTED, {"by": ""}) == "SCHEMA_VIOLATION"

    def test_rejection_is_visible_to_the_requester_by_default(self) -> None:
        event = parse(f.REJECTED, f.rejection(visible_to_requester=None))
        assert event.data_json["visible_to_requester"] is True

    def test_rejection_needs_a_reason(self) -> None:
        assert code_of(f.REJECTED, f.rejection(reason=None)) == "SCHEMA_VIOLATION"
        assert code_of(f.REJECTED, f.rejection(reason="   ")) == "SCHEMA_VIOLATION"


class TestWishWallDispatchAndClaim:
    def test_listing_needs_no_fields(self) -> None:
        assert parse(f.LISTED, {}).data_json == {}

    def test_dispatch_to_a_team_references_the_team(self) -> None:
        event = parse(f.DISPATCHED, f.to_team(due_at="2024-03-08T18:00:00+08:00"))
        assert event.data.references() == [("team", "T-1")]
        assert event.data_json["mode"] == "assign"

    def test_dispatch_to_a_volunteer_references_the_volunteer(self) -> None:
        event = parse(f.DISPATCHED, f.to_volunteer())
        assert event.data.references() == [("volunteer", "V-1")]

    @pytest.mark.parametrize("event_type", [f.DISPATCHED, f.CLAIMED])
    def test_refuses_two_assignees(self, event_type: str) -> None:
        data = {"team_id": "T-1", "volunteer_no": "V-1"}
        assert code_of(event_type, data) == "SCHEMA_VIOLATION"

    @pytest.mark.parametrize("event_type", [f.DISPATCHED, f.CLAIMED])
    def test_refuses_no_assignee(self, event_type: str) -> None:
        assert code_of(event_type, {}) == "SCHEMA_VIOLATION"

    def test_dispatch_mode_is_assign_only(self) -> None:
        assert code_of(f.DISPATCHED, f.to_team(mode="grab")) == "SCHEMA_VIOLATION"

    def test_dispatch_due_time_needs_an_offset(self) -> None:
        assert code_of(f.DISPATCHED, f.to_team(due_at="2024-03-08T18:00:00")) == "NAIVE_DATETIME"

    def test_claim_by_a_volunteer(self) -> None:
        assert parse(f.CLAIMED, f.to_volunteer()).data.references() == [("volunteer", "V-1")]


class TestNeedRedispatched:
    def test_accepts_a_new_assignee_with_a_reason(self) -> None:
        event = parse(f.REDISPATCHED, f.redispatch())
        assert event.data.references() == [("volunteer", "V-2")]

    def test_needs_a_reason(self) -> None:
        assert code_of(f.REDISPATCHED, f.redispatch(reason=None)) == "SCHEMA_VIOLATION"

    def test_needs_exactly_one_assignee(self) -> None:
        assert code_of(f.REDISPATCHED, f.redispatch(team_id="T-2")) == "SCHEMA_VIOLATION"
        assert code_of(f.REDISPATCHED, f.redispatch(volunteer_no=None)) == "SCHEMA_VIOLATION"


class TestServiceDelivered:
    def test_accepts_a_volunteer_delivery_with_evidence(self) -> None:
        event = parse(f.DELIVERED, f.delivery())
        assert event.data_json["hours"] == 1.5
        assert event.data.references() == [("volunteer", "V-1")]

    def test_accepts_a_team_delivery_with_its_volunteer(self) -> None:
        event = parse(f.DELIVERED, f.delivery(team_id="T-1"))
        assert sorted(event.data.references()) == [("team", "T-1"), ("volunteer", "V-1")]

    def test_refuses_a_delivery_by_nobody(self) -> None:
        assert code_of(f.DELIVERED, f.delivery(volunteer_no=None)) == "SCHEMA_VIOLATION"

    @pytest.mark.parametrize("hours", [-0.5, 24.5, float("inf")])
    def test_refuses_hours_outside_a_day(self, hours: float) -> None:
        assert code_of(f.DELIVERED, f.delivery(hours=hours)) == "OUT_OF_RANGE"

    def test_refuses_evidence_with_a_bad_hash(self) -> None:
        data = f.delivery(evidence=[{"uri": "https://x/1.jpg", "sha256": "abc"}])
        assert code_of(f.DELIVERED, data) == "SCHEMA_VIOLATION"


class TestNeedClosedAndRated:
    @pytest.mark.parametrize("outcome", ["fulfilled", "withdrawn", "unfulfillable"])
    def test_accepts_every_outcome(self, outcome: str) -> None:
        assert parse(f.CLOSED, f.closure(outcome)).data_json["outcome"] == outcome

    def test_unfulfillable_needs_a_reason(self) -> None:
        assert code_of(f.CLOSED, {"outcome": "unfulfillable"}) == "SCHEMA_VIOLATION"

    def test_refuses_an_unknown_outcome(self) -> None:
        assert code_of(f.CLOSED, {"outcome": "done"}) == "SCHEMA_VIOLATION"

    @pytest.mark.parametrize("value", [1, 3, 5])
    def test_accepts_ratings_from_one_to_five(self, value: int) -> None:
        assert parse(f.RATED, f.rating(value)).data_json["rating"] == value

    @pytest.mark.parametrize("value", [0, 6])
    def test_refuses_ratings_outside_one_to_five(self, value: int) -> None:
        assert code_of(f.RATED, f.rating(value)) == "OUT_OF_RANGE"

    def test_refuses_a_rating_that_is_not_a_number(self) -> None:
        assert code_of(f.RATED, f.rating(rating="good")) == "SCHEMA_VIOLATION"
