"""Contracts of the meeting area: house meetings (屋场会), their steps and concerns."""

from __future__ import annotations

from typing import Any

import pytest

import practice_events.contracts.meeting  # noqa: F401 - registers the meeting area's types
from practice_events.contracts.base import CATALOGUE, example_payload
from practice_events.contracts.envelope import IncomingEvent, parse_structured
from practice_events.errors import ContractError
from tests import factories_site as f
from tests.harness import cloud_event

MEETING_TYPES = (f.HELD, f.STEP, f.CONCERN_RAISED, f.CONCERN_RESOLVED, f.CONCERN_CONVERTED)


def parse(event_type: str, data: dict[str, Any], subject: str = "M-1") -> IncomingEvent:
    """Parse one structured CloudEvent of ``event_type``."""
    return parse_structured(cloud_event(event_type, subject, data))


def code_of(event_type: str, data: dict[str, Any]) -> str:
    """Return the code the contract refuses ``data`` with."""
    with pytest.raises(ContractError) as info:
        parse(event_type, data)
    return info.value.code


class TestCatalogue:
    @pytest.mark.parametrize("event_type", MEETING_TYPES)
    def test_every_type_is_registered_and_documented(self, event_type: str) -> None:
        model = CATALOGUE[event_type]
        assert model.AGGREGATE == "meeting"
        assert not model.SYSTEM
        assert model.__doc__
        assert all(field.description for field in model.model_fields.values())

    @pytest.mark.parametrize("event_type", MEETING_TYPES)
    def test_the_documented_example_is_valid(self, event_type: str) -> None:
        example = example_payload(CATALOGUE[event_type])
        assert example is not None
        parse(event_type, example)

    def test_only_held_creates(self) -> None:
        assert {t for t in MEETING_TYPES if CATALOGUE[t].CREATES} == {f.HELD}


class TestMeetingHeld:
    def test_accepts_a_meeting_with_officials_and_hosts(self) -> None:
        event = parse(f.HELD, f.meeting(officials_present=["V-1", "V-2"], hosts=["V-1"]))
        assert event.data.references() == [
            ("site", "WLY-WC-1"),
            ("volunteer", "V-1"),
            ("volunteer", "V-2"),
        ]

    def test_accepts_a_meeting_with_nobody_listed(self) -> None:
        event = parse(f.HELD, f.meeting(topics=None))
        assert event.data_json["officials_present"] == []
        assert event.data.references() == [("site", "WLY-WC-1")]

    def test_rejects_an_end_before_the_start(self) -> None:
        data = f.meeting(ended_at=f.at(8, 19).isoformat())
        assert code_of(f.HELD, data) == "OUT_OF_RANGE"

    def test_rejects_a_negative_attendance(self) -> None:
        assert code_of(f.HELD, f.meeting(attendees_count=-3)) == "OUT_OF_RANGE"

    def test_rejects_an_official_listed_twice(self) -> None:
        data = f.meeting(officials_present=["V-1", "V-1"])
        assert code_of(f.HELD, data) == "SCHEMA_VIOLATION"

    def test_rejects_a_host_given_by_name(self) -> None:
        assert code_of(f.HELD, f.meeting(hosts=["张三"])) == "SCHEMA_VIOLATION"

    def test_rejects_a_naive_end(self) -> None:
        assert code_of(f.HELD, f.meeting(ended_at="2024-03-08T21:00:00")) == "NAIVE_DATETIME"


class TestMeetingStepLogged:
    @pytest.mark.parametrize("step", ["explain", "listen", "perform", "evaluate", "resolve"])
    def test_accepts_each_of_the_five_steps(self, step: str) -> None:
        parse(f.STEP, {"step": step, "summary": "…"})

    def test_rejects_a_sixth_step(self) -> None:
        assert code_of(f.STEP, {"step": "celebrate", "summary": "…"}) == "SCHEMA_VIOLATION"

    def test_rejects_a_step_without_summary(self) -> None:
        assert code_of(f.STEP, {"step": "listen"}) == "SCHEMA_VIOLATION"


class TestConcernRaised:
    def test_accepts_a_concern(self) -> None:
        assert parse(f.CONCERN_RAISED, f.concern()).data_json["concern_id"] == "C1"

    def test_rejects_a_concern_without_category(self) -> None:
        assert code_of(f.CONCERN_RAISED, f.concern(category=None)) == "SCHEMA_VIOLATION"

    def test_rejects_a_resident_field(self) -> None:
        data = f.concern(resident_phone="13800000000")
        assert code_of(f.CONCERN_RAISED, data) == "SCHEMA_VIOLATION"


class TestConcernResolvedOnSpot:
    def test_accepts_a_resolution(self) -> None:
        parse(f.CONCERN_RESOLVED, {"concern_id": "C1", "resolution": "当场答复"})

    def test_rejects_a_missing_resolution(self) -> None:
        assert code_of(f.CONCERN_RESOLVED, {"concern_id": "C1"}) == "SCHEMA_VIOLATION"


class TestConcernConverted:
    @pytest.mark.parametrize("target", ["need", "finding"])
    def test_accepts_a_need_or_a_finding(self, target: str) -> None:
        event = parse(f.CONCERN_CONVERTED, {"concern_id": "C1", "to": target, "target_id": "X-1"})
        assert event.data.references() == []

    def test_rejects_another_target(self) -> None:
        data = {"concern_id": "C1", "to": "petition", "target_id": "X-1"}
        assert code_of(f.CONCERN_CONVERTED, data) == "SCHEMA_VIOLATION"

    def test_rejects_a_missing_target_id(self) -> None:
        assert (
            code_of(f.CONCERN_CONVERTED, {"concern_id": "C1", "to": "need"}) == "SCHEMA_VIOLATION"
        )
