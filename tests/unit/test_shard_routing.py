"""The routing rule of a deployment sharded by district (no I/O: the rule is a pure function)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from practice_events.config import Settings, load_settings
from practice_events.contracts.base import catalogue
from practice_events.contracts.envelope import parse_structured
from practice_events.demo.districts import relabel
from practice_events.errors import ConfigurationError
from practice_events.ingest.pipeline import RawInput
from practice_events.shards.router import ShardRouter
from practice_events.shards.routing import CrossShardReferenceError, ShardMap, id_prefix
from tests.harness import cloud_event

WLY = "postgresql://pe@db/practice?schema=wly"
CLX = "postgresql://pe@db/practice?schema=clx"
SZY = "postgresql://pe@db/practice?schema=szy"
PROVINCE = "postgresql://pe@db/practice?schema=province"

SITE_UPDATED = "practice.site.updated.v1"
CHECKED_IN = "practice.attendance.checked_in.v1"
CHECKLIST = "practice.site.checklist_published.v1"


def checklist_event() -> dict[str, Any]:
    """A province-wide six-haves checklist (reference data)."""
    items = [
        {"code": code, "label": code, "weight": 0.5, "evidence_required": False}
        for code in ("has_site", "has_team")
    ]
    return cloud_event(CHECKLIST, "six-haves", {"version": 1, "title": "六有", "items": items})


@pytest.fixture(autouse=True)
def _contracts() -> None:
    """Load every event type (parsing and routing look types up in the catalogue)."""
    catalogue()


@pytest.fixture
def shards() -> ShardMap:
    """Two districts with their own stores, a third sharing one, and a province default."""
    return ShardMap.build({"WLY": WLY, "CLX": CLX, "SZY": CLX}, PROVINCE)


class TestShardMap:
    def test_groups_districts_by_store_and_keeps_the_default_apart(self, shards: ShardMap) -> None:
        assert shards.names == ["default", "CLX+SZY", "WLY"]
        assert shards.shard("CLX+SZY").districts == ("CLX", "SZY")
        assert shards.default == "default"

    def test_the_default_store_may_be_a_districts_store(self) -> None:
        shards = ShardMap.build({"WLY": WLY, "CLX": CLX}, WLY)
        assert shards.names == ["WLY", "CLX"]
        assert shards.default == "WLY"
        assert shards.shard_of_district("NEW") == "WLY"

    @pytest.mark.parametrize(
        ("mapping", "reason"),
        [
            ({"wly": WLY}, "upper-case"),
            ({"W": WLY}, "2-16"),
            ({"WLY": "mysql://db/x"}, "unsupported store URL"),
        ],
    )
    def test_refuses_bad_codes_and_urls(self, mapping: dict[str, str], reason: str) -> None:
        with pytest.raises(ConfigurationError, match=reason):
            Settings(shards=mapping)

    def test_reads_the_map_as_json_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_SHARDS", orjson.dumps({"WLY": WLY}).decode())
        assert load_settings().shards == {"WLY": WLY}
        monkeypatch.setenv("PRACTICE_EVENTS_SHARDS", "WLY=" + WLY)
        with pytest.raises(ConfigurationError, match="JSON object"):
            load_settings()

    def test_masks_passwords_of_shard_stores(self) -> None:
        settings = Settings(shards={"WLY": "postgresql://pe:secret@db/practice"})
        assert settings.masked()["shards"] == {"WLY": "postgresql://pe:********@db/practice"}


class TestRoute:
    @pytest.mark.parametrize(
        ("kind", "district", "subject", "shard"),
        [
            ("volunteer", "WLY", "V4308110000001", "WLY"),  # the attribute decides
            ("volunteer", "SZY", "V4308130000001", "CLX+SZY"),
            ("volunteer", None, "V4308110000001", "default"),  # nothing names a district
            ("site", None, "CLX-ZHAN-02", "CLX+SZY"),  # the subject's prefix
            ("assessment", None, "WLY-SUO-01:2025-01", "WLY"),
            ("theme", None, "WLY:2025-01", "WLY"),
            ("activity", None, "A-202501-000001", "default"),  # "A" is no district
            ("site", "NEW", "NEW-ZHAN-01", "default"),  # a district without a shard
            ("checklist", "WLY", "six-haves", None),  # reference data: every shard
            ("scoring_model", None, "wly-district", None),
        ],
    )
    def test_routes_by_district_attribute_then_subject_prefix(
        self, shards: ShardMap, kind: str, district: str | None, subject: str, shard: str | None
    ) -> None:
        assert shards.route(kind, district, subject) == shard

    def test_id_prefix_is_the_part_before_the_first_dash_or_colon(self) -> None:
        assert id_prefix("WLY-ZHAN-02") == "WLY"
        assert id_prefix("WLY:2025-01") == "WLY"
        assert id_prefix("V4308110000001") is None


class TestCheck:
    def test_accepts_references_within_the_shard(self, shards: ShardMap) -> None:
        event = parse_structured(
            cloud_event(
                CHECKED_IN,
                "V4308110000001",
                {"session_id": "S1", "site_id": "WLY-ZHAN-02", "method": "qr"},
                district="WLY",
            )
        )
        shards.check(event, "WLY")

    def test_refuses_a_reference_to_another_shards_site(self, shards: ShardMap) -> None:
        event = parse_structured(
            cloud_event(
                CHECKED_IN,
                "V4308110000001",
                {"session_id": "S1", "site_id": "CLX-ZHAN-02", "method": "qr"},
                district="WLY",
            )
        )
        with pytest.raises(CrossShardReferenceError) as info:
            shards.check(event, "WLY")
        assert info.value.code == "CROSS_SHARD_REFERENCE"
        assert "CLX-ZHAN-02" in info.value.reason
        assert "district='CLX'" in info.value.reason

    def test_refuses_an_attribute_that_contradicts_the_subject(self, shards: ShardMap) -> None:
        event = parse_structured(
            cloud_event(SITE_UPDATED, "CLX-ZHAN-02", {"name": "新名字"}, district="WLY")
        )
        with pytest.raises(CrossShardReferenceError, match="belongs to district CLX"):
            shards.check(event, "WLY")

    def test_districts_sharing_a_store_may_refer_to_each_other(self, shards: ShardMap) -> None:
        event = parse_structured(
            cloud_event(
                CHECKED_IN,
                "V4308130000001",
                {"session_id": "S1", "site_id": "CLX-ZHAN-02", "method": "qr"},
                district="SZY",
            )
        )
        shards.check(event, "CLX+SZY")


class TestPeek:
    def test_router_reads_the_district_from_structured_and_binary_inputs(
        self, shards: ShardMap
    ) -> None:
        router = ShardRouter(shards, dict.fromkeys(shards.names))  # type: ignore[arg-type]
        structured = cloud_event(SITE_UPDATED, "V1", {"name": "x"}, district="SZY")
        assert router.route(RawInput(payload=orjson.dumps(structured))) == "CLX+SZY"
        headers = [
            ("ce_type", SITE_UPDATED),
            ("ce_subject", "WLY-ZHAN-01"),
            ("ce_id", "1"),
            ("content-type", "application/json"),
        ]
        assert router.route(RawInput(payload=b"{}", headers=headers)) == "WLY"
        assert router.route(RawInput(payload=b"not json")) == "default"
        assert router.route(RawInput(payload=orjson.dumps(checklist_event()))) is None


class TestDemoDistricts:
    def test_relabels_every_id_of_another_district(self) -> None:
        event = cloud_event(
            CHECKED_IN,
            "V4308110000001",
            {"session_id": "S00000001", "site_id": "WLY-ZHAN-02", "activity_id": "A-202501-000001"},
            source="urn:wly:checkin-app",
        )
        out = relabel(event, "CLX", "430812")
        assert out["subject"] == "V4308120000001"
        assert out["source"] == "urn:clx:checkin-app"
        assert out["district"] == "CLX"
        assert out["data"] == {
            "session_id": "CLX-S00000001",
            "site_id": "CLX-ZHAN-02",
            "activity_id": "CLX-A-202501-000001",
        }
        assert relabel(event, "WLY", "430811") == {**event, "district": "WLY"}
