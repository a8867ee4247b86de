"""The rejections view on SQLite and PostgreSQL: what was refused, by producer and code.

Two producers and one anonymous sender make mistakes; the view must tell each
producer exactly what was refused and why, and supervisors the totals.

=================  ===================================================  ===================
producer           input                                                code
=================  ===================================================  ===================
checkin-app        check-in with a method outside the contract           SCHEMA_VIOLATION
checkin-app        the same mistake, retried unchanged                   SCHEMA_VIOLATION
checkin-app        check-in at a site that does not exist                UNKNOWN_REFERENCE
checkin-app        check-out of a volunteer never registered             UNKNOWN_AGGREGATE
wish-wall          a need id reused for different content                DUPLICATE_CONFLICT
(none)             bytes that are not JSON                               MALFORMED_JSON
=================  ===================================================  ===================
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest

from practice_events.errors import PracticeEventsError
from practice_events.ingest.pipeline import RawInput
from projections.rejections import list_rejections, rejections_by_producer, why_refused
from tests.factories_need import SUBMITTED, need
from tests.harness import CST, cloud_event
from tests.integration.viewstack import ViewStack

pytestmark = pytest.mark.postgres

CHECKIN = "urn:wly:checkin-app"
WISHES = "urn:wly:wish-wall"


@pytest.fixture
def stack(store_url: str) -> Iterator[ViewStack]:
    s = ViewStack(store_url, [])
    try:
        day = datetime(2024, 3, 4, 9, tzinfo=CST)
        s.send("practice.site.registered.v1", "WLY", {"level": "centre", "name": "中心"}, day)
        s.send(
            "practice.site.registered.v1",
            "ST-1",
            {"level": "station", "parent_id": "WLY", "name": "站"},
            day,
        )
        s.send("practice.volunteer.registered.v1", "V-1", {"home_site_id": "ST-1"}, day)
        bad_method = cloud_event(
            "practice.attendance.checked_in.v1",
            "V-1",
            {"session_id": "S-1", "site_id": "ST-1", "method": "telepathy"},
            source=CHECKIN,
            event_id="ci-1",
        )
        s.raw([bad_method])
        s.raw([bad_method])  # retried without a fix: refused again
        s.raw(
            [
                cloud_event(
                    "practice.attendance.checked_in.v1",
                    "V-1",
                    {"session_id": "S-2", "site_id": "ST-404", "method": "qr"},
                    source=CHECKIN,
                    event_id="ci-2",
                ),
                cloud_event(
                    "practice.attendance.checked_out.v1",
                    "V-404",
                    {"session_id": "S-9", "method": "qr"},
                    source=CHECKIN,
                    event_id="co-1",
                ),
            ]
        )
        first = cloud_event(SUBMITTED, "N-1", need(), source=WISHES, event_id="w-1")
        second = cloud_event(
            SUBMITTED, "N-2", need(summary="另一个心愿"), source=WISHES, event_id="w-1"
        )
        s.raw([first])
        s.raw([second])
        s.pipeline.process([RawInput(payload=b"{not json", channel="test", position="t:junk")])
        yield s
    finally:
        s.close()


class TestByProducer:
    def test_groups_refusals_by_producer_and_code(self, stack: ViewStack) -> None:
        report = rejections_by_producer(stack.app)
        assert report["total"] == 6
        assert report["totals_by_code"] == {
            "SCHEMA_VIOLATION": 2,
            "DUPLICATE_CONFLICT": 1,
            "MALFORMED_JSON": 1,
            "UNKNOWN_AGGREGATE": 1,
            "UNKNOWN_REFERENCE": 1,
        }
        producers = [(p["source"], p["total"]) for p in report["producers"]]
        assert producers == [(CHECKIN, 4), (None, 1), (WISHES, 1)]
        checkin = report["producers"][0]
        assert checkin["by_code"] == {
            "SCHEMA_VIOLATION": 2,
            "UNKNOWN_AGGREGATE": 1,
            "UNKNOWN_REFERENCE": 1,
        }
        latest = checkin["latest"]
        assert (latest["code"], latest["event_id"]) == ("UNKNOWN_AGGREGATE", "co-1")
        assert "V-404" in latest["reason"]
        assert "payload" not in latest

    def test_a_producer_sees_only_its_own(self, stack: ViewStack) -> None:
        report = rejections_by_producer(stack.app, source=WISHES)
        assert report["total"] == 1
        assert report["totals_by_code"] == {"DUPLICATE_CONFLICT": 1}
        assert [p["source"] for p in report["producers"]] == [WISHES]


class TestWhyRefused:
    def test_every_refusal_of_an_event_with_its_payload(self, stack: ViewStack) -> None:
        refusals = why_refused(stack.app, CHECKIN, "ci-1")
        assert [r["code"] for r in refusals] == ["SCHEMA_VIOLATION", "SCHEMA_VIOLATION"]
        assert "method" in refusals[0]["reason"]
        assert refusals[0]["payload"]["data"]["method"] == "telepathy"
        assert refusals[0]["seq"] < refusals[1]["seq"]
        assert why_refused(stack.app, CHECKIN, "never-sent") == []

    def test_malformed_input_keeps_a_text_preview(self, stack: ViewStack) -> None:
        page = list_rejections(stack.app, code="MALFORMED_JSON")
        assert [r["payload"] for r in page["items"]] == [{"not_json": "{not json"}]
        assert page["items"][0]["source"] is None


class TestPaging:
    def test_pages_follow_the_store_sequence(self, stack: ViewStack) -> None:
        first = list_rejections(stack.app, limit=4)
        assert len(first["items"]) == 4
        rest = list_rejections(stack.app, limit=4, after=first["next_after"])
        assert len(rest["items"]) == 2
        assert rest["next_after"] is None
        seqs = [r["seq"] for r in first["items"] + rest["items"]]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 6

    def test_the_limit_is_checked(self, stack: ViewStack) -> None:
        with pytest.raises(PracticeEventsError) as bad:
            list_rejections(stack.app, limit=0)
        assert bad.value.code == "BAD_REQUEST"


def test_payload_that_is_json_but_not_an_event_is_shown_as_sent(store_url: str) -> None:
    s = ViewStack(store_url, [])
    try:
        s.pipeline.process(
            [RawInput(payload=orjson.dumps([1, 2]), channel="test", position="t:list")]
        )
        items = list_rejections(s.app)["items"]
        assert [(r["code"], r["payload"]) for r in items] == [("MALFORMED_JSON", [1, 2])]
    finally:
        s.close()
