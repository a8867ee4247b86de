"""Contracts of the site area: what producers may send about sites and checklists."""

from __future__ import annotations

from typing import Any

import pytest

import practice_events.contracts.site  # noqa: F401 - registers the site area's types
from practice_events.contracts.base import CATALOGUE, example_payload
from practice_events.contracts.envelope import IncomingEvent, parse_structured
from practice_events.errors import ContractError
from tests import factories_site as f
from tests.harness import cloud_event

SITE_TYPES = (
    f.REGISTERED,
    f.UPDATED,
    f.DEACTIVATED,
    f.ASSESSED,
    f.CHECKLIST_PUBLISHED,
    f.CHECKLIST_REVISED,
)


def parse(event_type: str, data: dict[str, Any], subject: str = "S-1") -> IncomingEvent:
    """Parse one structured CloudEvent of ``event_type``."""
    return parse_structured(cloud_event(event_type, subject, data))


def code_of(event_type: str, data: dict[str, Any]) -> str:
    """Return the code the contract refuses ``data`` with."""
    with pytest.raises(ContractError) as info:
        parse(event_type, data)
    return info.value.code


class TestCatalogue:
    @pytest.mark.parametrize("event_type", SITE_TYPES)
    def test_every_type_is_registered_with_its_aggregate(self, event_type: str) -> None:
        model = CATALOGUE[event_type]
        assert model.AGGREGATE in {"site", "checklist"}
        assert not model.SYSTEM
        assert model.__doc__
        for name, field in model.model_fields.items():
            assert field.description, f"{event_type}.{name} has no description"

    @pytest.mark.parametrize("event_type", SITE_TYPES)
    def test_the_documented_example_is_valid(self, event_type: str) -> None:
        example = example_payload(CATALOGUE[event_type])
        assert example is not None
        parse(event_type, example)

    def test_only_the_creating_events_create(self) -> None:
        creating = {t for t in SITE_TYPES if CATALOGUE[t].CREATES}
        assert creating == {f.REGISTERED, f.CHECKLIST_PUBLISHED}


class TestSiteRegistered:
    def test_accepts_a_station_under_its_institute(self) -> None:
        event = parse(f.REGISTERED, f.site(geo={"lat": 29.3, "lon": 110.5}, address="军地坪路1号"))
        assert event.data_json["parent_id"] == "WLY-SUO-1"
        assert event.data.references() == [("site", "WLY-SUO-1")]

    def test_accepts_a_centre_without_parent(self) -> None:
        event = parse(f.REGISTERED, {"level": "centre", "name": "实践中心"})
        assert "parent_id" not in event.data_json
        assert event.data.references() == []

    @pytest.mark.parametrize(
        "level", ["institute", "station", "base", "post", "house_meeting_site"]
    )
    def test_accepts_every_level_below_the_centre(self, level: str) -> None:
        assert parse(f.REGISTERED, f.site(level=level)).data_json["level"] == level

    def test_rejects_a_station_without_parent(self) -> None:
        assert code_of(f.REGISTERED, f.site(parent_id=None)) == "SCHEMA_VIOLATION"

    def test_rejects_a_centre_with_a_parent(self) -> None:
        assert code_of(f.REGISTERED, f.site(level="centre")) == "SCHEMA_VIOLATION"

    def test_rejects_an_unknown_level(self) -> None:
        assert code_of(f.REGISTERED, f.site(level="village")) == "SCHEMA_VIOLATION"

    def test_rejects_an_empty_name(self) -> None:
        assert code_of(f.REGISTERED, f.site(name="  ")) == "SCHEMA_VIOLATION"

    def test_rejects_a_position_off_the_globe(self) -> None:
        assert code_of(f.REGISTERED, f.site(geo={"lat": 91, "lon": 110})) == "OUT_OF_RANGE"

    def test_rejects_fields_it_does_not_know(self) -> None:
        assert code_of(f.REGISTERED, f.site(leader_name="张三")) == "SCHEMA_VIOLATION"


class TestSiteUpdated:
    def test_accepts_a_new_name_only(self) -> None:
        assert parse(f.UPDATED, {"name": "新名称"}).data_json == {"name": "新名称"}

    def test_accepts_a_new_position(self) -> None:
        event = parse(f.UPDATED, {"geo": {"lat": 29.1, "lon": 110.2, "accuracy_m": 5}})
        assert event.data_json["geo"]["accuracy_m"] == 5

    def test_rejects_an_update_that_changes_nothing(self) -> None:
        assert code_of(f.UPDATED, {}) == "SCHEMA_VIOLATION"

    def test_rejects_a_change_of_level(self) -> None:
        assert code_of(f.UPDATED, {"level": "institute"}) == "SCHEMA_VIOLATION"


class TestSiteDeactivated:
    def test_accepts_a_reason(self) -> None:
        assert parse(f.DEACTIVATED, {"reason": "merged"}).data_json == {"reason": "merged"}

    def test_rejects_a_missing_reason(self) -> None:
        assert code_of(f.DEACTIVATED, {}) == "SCHEMA_VIOLATION"


class TestSiteStandardAssessed:
    def test_accepts_a_full_assessment_with_evidence(self) -> None:
        data = f.assessment({"has_records": "C#"}, method="photo")
        data["items"][0]["evidence"] = [{"uri": "https://files.example/p.jpg", "sha256": "a" * 64}]
        event = parse(f.ASSESSED, data)
        assert event.data.references() == [("checklist", "six-haves")]
        assert event.data_json["items"][5] == {
            "code": "has_records",
            "rating": "C#",
            "evidence": [],
        }

    @pytest.mark.parametrize("method", ["onsite", "document", "photo", "survey"])
    def test_accepts_every_method(self, method: str) -> None:
        parse(f.ASSESSED, f.assessment(method=method))

    def test_rejects_a_rating_off_the_scale(self) -> None:
        assert code_of(f.ASSESSED, f.assessment({"has_site": "D"})) == "SCHEMA_VIOLATION"

    def test_rejects_an_item_rated_twice(self) -> None:
        data = f.assessment()
        data["items"].append({"code": "has_site", "rating": "C"})
        assert code_of(f.ASSESSED, data) == "SCHEMA_VIOLATION"

    def test_rejects_an_assessment_without_items(self) -> None:
        assert code_of(f.ASSESSED, f.assessment(items=[])) == "SCHEMA_VIOLATION"

    def test_rejects_an_unknown_method(self) -> None:
        assert code_of(f.ASSESSED, f.assessment(method="hearsay")) == "SCHEMA_VIOLATION"

    def test_rejects_version_zero(self) -> None:
        assert code_of(f.ASSESSED, f.assessment(checklist_version=0)) == "OUT_OF_RANGE"

    def test_rejects_evidence_with_a_bad_hash(self) -> None:
        data = f.assessment()
        data["items"][0]["evidence"] = [{"uri": "https://files.example/p.jpg", "sha256": "xyz"}]
        assert code_of(f.ASSESSED, data) == "SCHEMA_VIOLATION"


class TestChecklistPublished:
    def test_accepts_the_six_haves(self) -> None:
        event = parse(f.CHECKLIST_PUBLISHED, f.checklist())
        assert [item["label"] for item in event.data_json["items"]][:2] == ["有场所", "有计划"]

    def test_accepts_weights_that_sum_to_one_within_rounding(self) -> None:
        items = [{"code": c, "label": c, "weight": 0.3333} for c in ("a", "b", "c")]
        parse(f.CHECKLIST_PUBLISHED, f.checklist(items=items))

    def test_rejects_weights_that_do_not_sum_to_one(self) -> None:
        items = [dict(item) for item in f.SIX_HAVES]
        items[0]["weight"] = 0.3
        error_code = code_of(f.CHECKLIST_PUBLISHED, f.checklist(items=items))
        assert error_code == "OUT_OF_RANGE"

    def test_rejects_a_zero_weight(self) -> None:
        items = [dict(item) for item in f.SIX_HAVES] + [{"code": "x", "label": "x", "weight": 0}]
        assert code_of(f.CHECKLIST_PUBLISHED, f.checklist(items=items)) == "OUT_OF_RANGE"

    def test_rejects_a_duplicate_item_code(self) -> None:
        items = [
            {"code": "has_site", "label": "有场所", "weight": 0.5},
            {"code": "has_site", "label": "有场地", "weight": 0.5},
        ]
        assert code_of(f.CHECKLIST_PUBLISHED, f.checklist(items=items)) == "SCHEMA_VIOLATION"

    def test_rejects_a_first_publication_above_version_one(self) -> None:
        with pytest.raises(ContractError) as info:
            parse(f.CHECKLIST_PUBLISHED, f.checklist(version=2))
        assert info.value.code == "OUT_OF_RANGE"
        assert "checklist_revised" in info.value.reason

    def test_rejects_an_upper_case_code(self) -> None:
        items = [{"code": "HasSite", "label": "有场所", "weight": 1.0}]
        assert code_of(f.CHECKLIST_PUBLISHED, f.checklist(items=items)) == "SCHEMA_VIOLATION"


class TestChecklistRevised:
    def test_accepts_a_new_version_without_title(self) -> None:
        event = parse(f.CHECKLIST_REVISED, {"version": 2, "items": f.SIX_HAVES})
        assert "title" not in event.data_json

    def test_rejects_version_one(self) -> None:
        assert code_of(f.CHECKLIST_REVISED, {"version": 1, "items": f.SIX_HAVES}) == "OUT_OF_RANGE"

    def test_rejects_weights_that_do_not_sum_to_one(self) -> None:
        items = [{"code": "a", "label": "a", "weight": 0.5}]
        assert code_of(f.CHECKLIST_REVISED, {"version": 2, "items": items}) == "OUT_OF_RANGE"
