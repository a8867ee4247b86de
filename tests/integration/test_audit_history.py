"""Who recorded what, and when: the ordered history of any aggregate.

A finding goes through part of the closed loop and a volunteer serves a
session (whose credit the domain derives); their histories are read back
from a real SQLite file and a real PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from practice_events.audit.history import aggregate_history
from practice_events.audit.integrity import Sealer
from practice_events.errors import PracticeEventsError
from tests import factories_finding as ff
from tests import factories_volunteer as fv
from tests.factories_audit import Store, Tamper
from tests.harness import cloud_event

pytestmark = pytest.mark.postgres

FINDING = "F-2024-0007"
INSPECTION_APP = "urn:wly:inspection-app"
CHECKIN_APP = "urn:wly:checkin-app"


def scenario() -> list[dict[str, object]]:
    """Sites, a finding fed back and acknowledged, a volunteer's served session."""
    return [
        cloud_event(ff.SITE_REGISTERED, ff.CENTRE, {"level": "centre", "name": "中心"}),
        cloud_event(
            ff.SITE_REGISTERED,
            ff.STATION,
            {"level": "station", "parent_id": ff.CENTRE, "name": "军地坪站"},
        ),
        cloud_event(
            ff.RECORDED, FINDING, ff.recorded(), time=ff.at(4, 10), source=INSPECTION_APP,
            actor="INSP-017",
        ),
        cloud_event(
            ff.FED_BACK, FINDING, ff.fed_back(), time=ff.at(4, 11), source=INSPECTION_APP,
            actor="INSP-017",
        ),
        cloud_event(
            ff.ACKNOWLEDGED, FINDING, ff.acknowledged(), time=ff.at(5, 9),
            source="urn:wly:station-app", actor="ZHAN1-CLERK",
        ),
        cloud_event(fv.REGISTERED, "V-1", {"home_site_id": ff.STATION}),
        cloud_event(
            fv.CHECKED_IN, "V-1", {"session_id": "S-1", "site_id": ff.STATION, "method": "qr"},
            time=fv.at(6, 9), source=CHECKIN_APP,
        ),
        cloud_event(
            fv.CHECKED_OUT, "V-1", fv.check_out("S-1"), time=fv.at(6, 12), source=CHECKIN_APP
        ),
    ]  # fmt: skip


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store holding :func:`scenario`."""
    s = Store(store_url)
    s.ingest(scenario())
    try:
        yield s
    finally:
        s.close()


class TestHistory:
    def test_lists_every_event_of_a_finding_in_order_with_times_producer_and_actor(
        self, store: Store
    ) -> None:
        history = aggregate_history(store.app, "finding", FINDING)
        assert [h["type"] for h in history] == [ff.RECORDED, ff.FED_BACK, ff.ACKNOWLEDGED]
        assert [h["version"] for h in history] == [1, 2, 3]
        positions = [h["position"] for h in history]
        assert positions == sorted(positions)
        assert [h["occurred_at"] for h in history] == [
            ff.at(4, 10).isoformat(),
            ff.at(4, 11).isoformat(),
            ff.at(5, 9).isoformat(),
        ]
        assert [h["source"] for h in history] == [INSPECTION_APP] * 2 + ["urn:wly:station-app"]
        assert [h["actor"] for h in history] == ["INSP-017", "INSP-017", "ZHAN1-CLERK"]
        recorded = [datetime.fromisoformat(h["recorded_at"]) for h in history]
        assert recorded == sorted(recorded)
        assert all(t.tzinfo is not None for t in recorded)

    def test_data_includes_the_decisions_the_aggregate_took(self, store: Store) -> None:
        fed_back = aggregate_history(store.app, "finding", FINDING)[1]
        assert fed_back["data"]["channel"] == "platform"
        assert "ack_due_at" in fed_back["data"]  # decided by the SLA clock, stored with it

    def test_derived_events_name_their_cause_and_the_service_as_producer(
        self, store: Store
    ) -> None:
        history = aggregate_history(store.app, "volunteer", "V-1")
        credited = next(h for h in history if h["type"] == fv.HOURS_CREDITED)
        check_out = next(h for h in history if h["type"] == fv.CHECKED_OUT)
        assert credited["source"] == "practice-events"
        assert credited["cause"] == check_out["id"]
        assert "cause" not in check_out

    def test_upto_gives_the_history_as_known_at_a_position(self, store: Store) -> None:
        full = aggregate_history(store.app, "finding", FINDING)
        early = aggregate_history(store.app, "finding", FINDING, upto=full[1]["position"])
        assert early == full[:2]

    def test_without_data_for_long_listings(self, store: Store) -> None:
        history = aggregate_history(store.app, "finding", FINDING, with_data=False)
        assert all("data" not in h for h in history)

    def test_an_unknown_kind_is_refused_with_the_known_kinds(self, store: Store) -> None:
        with pytest.raises(PracticeEventsError) as info:
            aggregate_history(store.app, "complaint", FINDING)
        assert info.value.code == "UNKNOWN_KIND"
        assert "finding" in info.value.reason

    def test_an_aggregate_with_no_events_is_not_found(self, store: Store) -> None:
        with pytest.raises(PracticeEventsError) as info:
            aggregate_history(store.app, "finding", "F-NONE")
        assert info.value.code == "NOT_FOUND"


class TestSealStatus:
    def test_each_event_is_checked_against_its_own_seal(self, store: Store, store_url: str) -> None:
        Sealer(store.app).seal()
        store.ingest(
            [cloud_event(ff.PLAN, FINDING, ff.plan(), time=ff.at(6, 9), source=INSPECTION_APP)]
        )
        history = aggregate_history(store.app, "finding", FINDING, check_seals=True)
        assert [h["seal"] for h in history] == ["ok", "ok", "ok", "unsealed"]
        Tamper(store_url).edit_data(history[1]["position"], note="changed afterwards")
        history = aggregate_history(store.app, "finding", FINDING, check_seals=True)
        assert [h["seal"] for h in history] == ["ok", "mismatch", "ok", "unsealed"]


class TestEncryptedStore:
    def test_history_reads_an_encrypted_and_compressed_store(self, store_url: str) -> None:
        key = "MDEyMzQ1Njc4OWFiY2RlZg=="  # 16 bytes, base64
        s = Store(store_url, cipher_key=key, compress=True)
        try:
            s.ingest(scenario())
            history = aggregate_history(s.app, "finding", FINDING)
        finally:
            s.close()
        assert [h["actor"] for h in history] == ["INSP-017", "INSP-017", "ZHAN1-CLERK"]
