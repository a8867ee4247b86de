"""The ingest pipeline on a real SQLite file and a real PostgreSQL database.

The same scenarios run on both backends (the ``store_url`` fixture): what is
accepted is stored once, what is refused is recorded with its reason, and
nothing a producer sends is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from eventsourcing.persistence import Tracking

from practice_events.application import PracticeEvents
from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.domain.base import aggregate_id
from practice_events.ingest.pipeline import Pipeline, RawInput
from tests.harness import cloud_event

pytestmark = pytest.mark.postgres


def site(subject: str, level: str, parent: str | None = None, **kw: object) -> dict[str, object]:
    """A site registration as the admin service would send it."""
    data: dict[str, object] = {"level": level, "name": f"{subject} 文明实践{level}"}
    if parent:
        data["parent_id"] = parent
    kw.setdefault("source", "urn:wly:admin")
    return cloud_event("practice.site.registered.v1", subject, data, **kw)  # type: ignore[arg-type]


def raw(event: dict[str, object], position: str | None = None) -> RawInput:
    """Encode a CloudEvent as a producer's bytes."""
    return RawInput(payload=orjson.dumps(event), channel="test", position=position)


@pytest.fixture
def app(store_url: str) -> Iterator[PracticeEvents]:
    """The event store application on the backend under test."""
    application = build_app(Settings(store=store_url))
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def pipeline(app: PracticeEvents, store_url: str) -> Pipeline:
    """The pipeline over that store."""
    return build_pipeline(Settings(store=store_url), app)


class TestAcceptance:
    def test_stores_valid_events_with_increasing_positions(self, pipeline: Pipeline) -> None:
        result = pipeline.process(
            [raw(site("WLY", "centre")), raw(site("WLY-I1", "institute", "WLY"))]
        )
        assert [o.status for o in result.outcomes] == ["accepted", "accepted"]
        positions = [o.position for o in result.outcomes]
        assert positions[0] is not None
        assert positions[1] is not None
        assert positions[0] < positions[1] == result.last_position

    def test_reference_created_earlier_in_the_same_batch_is_found(self, pipeline: Pipeline) -> None:
        result = pipeline.process(
            [
                raw(site("WLY", "centre")),
                raw(site("WLY-I1", "institute", "WLY")),
                raw(site("WLY-S1", "station", "WLY-I1")),
            ]
        )
        assert result.count("accepted") == 3

    def test_aggregate_can_be_read_back(self, pipeline: Pipeline, app: PracticeEvents) -> None:
        pipeline.process([raw(site("WLY", "centre"))])
        agg = app.get_aggregate("site", "WLY")
        assert agg.subject == "WLY"
        assert agg.id == aggregate_id("site", "WLY")


class TestIdempotency:
    def test_same_source_and_id_twice_is_stored_once(
        self, pipeline: Pipeline, app: PracticeEvents
    ) -> None:
        event = site("WLY", "centre")
        first = pipeline.process([raw(event)])
        second = pipeline.process([raw(event)])
        assert first.outcomes[0].status == "accepted"
        assert second.outcomes[0].status == "duplicate"
        assert app.store.count_events_by_topic() == {"practice.site.registered.v1": 1}

    def test_duplicate_within_one_batch(self, pipeline: Pipeline) -> None:
        event = site("WLY", "centre")
        result = pipeline.process([raw(event), raw(event)])
        assert [o.status for o in result.outcomes] == ["accepted", "duplicate"]

    def test_duplicate_is_detected_across_restarts(self, store_url: str) -> None:
        event = site("WLY", "centre")
        for expected in ("accepted", "duplicate"):
            application = build_app(Settings(store=store_url))
            try:
                result = build_pipeline(Settings(store=store_url), application).process(
                    [raw(event)]
                )
                assert result.outcomes[0].status == expected
            finally:
                application.close()

    def test_reused_id_with_different_content_is_a_conflict(self, pipeline: Pipeline) -> None:
        event = site("WLY", "centre")
        pipeline.process([raw(event)])
        changed = dict(event)
        changed["data"] = {"level": "centre", "name": "another name"}
        result = pipeline.process([raw(changed)])
        assert result.outcomes[0].status == "rejected"
        assert result.outcomes[0].code == "DUPLICATE_CONFLICT"

    def test_same_id_from_another_source_is_a_different_event(self, pipeline: Pipeline) -> None:
        a = site("WLY", "centre", event_id="e-1")
        b = site("WLY-I1", "institute", "WLY", event_id="e-1", source="urn:other")
        result = pipeline.process([raw(a), raw(b)])
        assert result.count("accepted") == 2


class TestRejection:
    @pytest.mark.parametrize(
        ("payload", "code"),
        [
            (b"{not json", "MALFORMED_JSON"),
            (b"\xff\xfe", "MALFORMED_JSON"),
            (b"[1, 2]", "MALFORMED_JSON"),
            (orjson.dumps({"specversion": "1.0"}), "MISSING_ATTRIBUTE"),
        ],
    )
    def test_bad_bytes_are_rejected_and_kept(
        self, pipeline: Pipeline, app: PracticeEvents, payload: bytes, code: str
    ) -> None:
        result = pipeline.process([RawInput(payload=payload, channel="test", position="t:1")])
        assert result.outcomes[0].code == code
        rows = app.store.select_rejections()
        assert len(rows) == 1
        assert rows[0]["code"] == code
        assert bytes(rows[0]["payload"]) == payload

    def test_unknown_type(self, pipeline: Pipeline) -> None:
        event = cloud_event("practice.site.exploded.v1", "WLY", {})
        assert pipeline.process([raw(event)]).outcomes[0].code == "UNKNOWN_TYPE"

    def test_unknown_reference(self, pipeline: Pipeline) -> None:
        outcome = pipeline.process([raw(site("WLY-S1", "station", "NOWHERE"))]).outcomes[0]
        assert outcome.code == "UNKNOWN_REFERENCE"
        assert "NOWHERE" in (outcome.reason or "")

    def test_unknown_aggregate(self, pipeline: Pipeline) -> None:
        event = cloud_event("practice.site.deactivated.v1", "GHOST", {"reason": "closed"})
        assert pipeline.process([raw(event)]).outcomes[0].code == "UNKNOWN_AGGREGATE"

    def test_creating_an_existing_aggregate(self, pipeline: Pipeline) -> None:
        pipeline.process([raw(site("WLY", "centre"))])
        assert pipeline.process([raw(site("WLY", "centre"))]).outcomes[0].code == (
            "AGGREGATE_EXISTS"
        )

    def test_time_far_in_the_future(self, pipeline: Pipeline) -> None:
        future = datetime.now(UTC) + timedelta(days=2)
        outcome = pipeline.process([raw(site("WLY", "centre", time=future))]).outcomes[0]
        assert outcome.code == "TIME_IN_FUTURE"

    def test_rejection_of_a_positioned_input_is_recorded_once(
        self, pipeline: Pipeline, app: PracticeEvents
    ) -> None:
        bad = RawInput(payload=b"nope", channel="kafka", position="topic:0:7")
        pipeline.process([bad])
        pipeline.process([bad])
        assert len(app.store.select_rejections()) == 1

    def test_refusal_leaves_the_rest_of_the_batch_intact(self, pipeline: Pipeline) -> None:
        result = pipeline.process(
            [raw(site("WLY", "centre")), RawInput(payload=b"{"), raw(site("X", "station", "Y"))]
        )
        assert [o.status for o in result.outcomes] == ["accepted", "rejected", "rejected"]

    def test_rejections_can_be_queried_by_source(
        self, pipeline: Pipeline, app: PracticeEvents
    ) -> None:
        pipeline.process([raw(site("X", "station", "Y"))])
        rows = app.store.select_rejections(source="urn:wly:admin")
        assert [r["code"] for r in rows] == ["UNKNOWN_REFERENCE"]
        assert app.store.select_rejections(source="urn:nobody") == []


class TestTracking:
    def test_positions_commit_with_the_events(
        self, pipeline: Pipeline, app: PracticeEvents
    ) -> None:
        pipeline.process(
            [raw(site("WLY", "centre"))],
            trackings=[Tracking("kafka:t:0", 41), Tracking("kafka:t:1", 7)],
        )
        assert app.store.select_trackings("kafka:t:") == {"kafka:t:0": 41, "kafka:t:1": 7}

    def test_positions_commit_even_when_every_input_was_refused(
        self, pipeline: Pipeline, app: PracticeEvents
    ) -> None:
        pipeline.process([RawInput(payload=b"{")], trackings=[Tracking("kafka:t:0", 3)])
        assert app.store.select_trackings("kafka:") == {"kafka:t:0": 3}

    def test_a_position_is_never_written_twice(self, pipeline: Pipeline) -> None:
        from practice_events.errors import TransientError

        pipeline.process([raw(site("WLY", "centre"))], trackings=[Tracking("kafka:t:0", 5)])
        with pytest.raises(TransientError):
            pipeline.process(
                [raw(site("WLY-I1", "institute", "WLY"))], trackings=[Tracking("kafka:t:0", 5)]
            )


def test_concurrent_writers_store_each_event_once(store_url: str) -> None:
    """Two processes' worth of writers (separate stores) ingest the same events at once."""
    events = [site("WLY", "centre")] + [site(f"WLY-I{i}", "institute", "WLY") for i in range(1, 61)]
    errors: list[BaseException] = []

    def writer() -> None:
        application = None
        try:
            application = build_app(Settings(store=store_url))
            pipe = build_pipeline(Settings(store=store_url), application)
            for start in range(0, len(events), 7):
                pipe.process([raw(e) for e in events[start : start + 7]])
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)
        finally:
            if application is not None:
                application.close()

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    check = build_app(Settings(store=store_url))
    try:
        assert check.store.count_events_by_topic() == {"practice.site.registered.v1": len(events)}
        assert check.store.count_ingested_keys() == len(events)
    finally:
        check.close()
