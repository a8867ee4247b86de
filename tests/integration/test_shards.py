"""A province sharded by district on real PostgreSQL: two schemas of one database, one per shard.

The same two-district history (``practice_events.demo.districts``) goes once
through the shard router into the shards ``WLY`` and ``CLX`` and once
through the plain pipeline into a single store (a third schema). Then:

* every event is in its district's shard, reference data in both, nothing
  in the wrong one, and the shards together hold what the single store holds;
* a re-sent batch is stored once per shard;
* projections run per shard, and each district's scorecard, the province's
  league table and its volunteer figures merged from the shards equal those
  of the single store;
* an event naming another shard's district is refused with
  ``CROSS_SHARD_REFERENCE`` and kept in its shard's rejections; a volunteer
  who also serves in another district is registered there too;
* each shard's integrity chain verifies on its own, and a tampered shard is
  the only one reported broken;
* HTTP batches and the Kafka worker go through the router too.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from practice_events.application import PracticeEvents
from practice_events.bootstrap import build_app, build_ingest, build_pipeline
from practice_events.cli import main as cli_main
from practice_events.config import Settings
from practice_events.demo.cli import binary_message
from practice_events.demo.districts import province_history
from practice_events.ingest.pipeline import Outcome, RawInput
from practice_events.shards.cli import province_totals
from practice_events.shards.router import ShardRouter
from practice_events.store.stats import store_stats
from projections.province import province_rankings, province_volunteers
from projections.registry import all_projections
from projections.runner import BatchedRunner
from projections.scorecards import rankings, scorecard
from projections.viewstore import ViewStore, default_view_url
from tests.conftest import create_database, drop_database
from tests.harness import cloud_event

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DISTRICTS = ("WLY", "CLX")
PERIOD = "2025-01"
NOW = datetime(2025, 2, 10, tzinfo=UTC)
"""Evaluation time of closed-loop figures (fixed, so both sides agree)."""

CHECKED_IN = "practice.attendance.checked_in.v1"
VOLUNTEER_REGISTERED = "practice.volunteer.registered.v1"
SITE_UPDATED = "practice.site.updated.v1"
REFERENCE_TYPES = (
    "practice.site.checklist_published.v1",
    "practice.assessment.scoring_model_published.v1",
)


@dataclass
class Province:
    """The database, the stores, the input and what the router answered."""

    base_url: str
    urls: dict[str, str]
    lines: list[bytes]
    router: ShardRouter
    single: PracticeEvents
    outcomes: list[Outcome] = field(default_factory=list)
    single_outcomes: list[Outcome] = field(default_factory=list)
    views: dict[str, ViewStore] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        """The sharded deployment's settings (the WLY store is also the default)."""
        return Settings(
            store=self.urls["WLY"], shards={code: self.urls[code] for code in DISTRICTS}
        )

    def send(self, events: list[dict[str, Any]]) -> list[Outcome]:
        """Send CloudEvents through the router in one batch."""
        inputs = [RawInput(payload=orjson.dumps(e), channel="test") for e in events]
        return self.router.process(inputs).outcomes


def create_schemas(base_url: str, names: list[str]) -> None:
    """Create one schema per store (``practice-events store init`` does this in production)."""
    with psycopg.connect(base_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')


def catch_up(app: PracticeEvents, url: str) -> ViewStore:
    """Run every projection of one store into its views, up to its log head."""
    settings = Settings(store=url)
    views = ViewStore(default_view_url(url))
    BatchedRunner(app, views, all_projections(settings), batch_size=1000).catch_up()
    return views


@pytest.fixture(scope="module")
def province() -> Iterator[Province]:
    """Ingest two districts through the router (2 shards) and into a single store."""
    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    base = create_database(name)
    create_schemas(base, ["wly", "clx", "single"])
    urls = {code: f"{base}?schema={code.lower()}" for code in DISTRICTS}
    urls["single"] = f"{base}?schema=single"
    lines = [
        orjson.dumps(event)
        for event in province_history(DISTRICTS, events_per_district=800, days=35)
    ]
    settings = Settings(store=urls["WLY"], shards={code: urls[code] for code in DISTRICTS})
    default_app = build_app(settings)
    router = build_ingest(settings, default_app)
    assert isinstance(router, ShardRouter)
    single = build_app(Settings(store=urls["single"]))
    found = Province(base, urls, lines, router, single)
    try:
        pipeline = build_pipeline(Settings(store=urls["single"]), single)
        for start in range(0, len(lines), 500):
            batch = [
                RawInput(payload=line, channel="file", position=f"two.jsonl:{start + i + 1}")
                for i, line in enumerate(lines[start : start + 500])
            ]
            found.outcomes.extend(router.process(batch).outcomes)
            found.single_outcomes.extend(pipeline.process(batch).outcomes)
        for code in DISTRICTS:
            found.views[code] = catch_up(router.apps[code], urls[code])
        found.views["single"] = catch_up(single, urls["single"])
        yield found
    finally:
        for views in found.views.values():
            views.close()
        router.close()
        default_app.close()
        single.close()
        drop_database(name)


class TestRouting:
    def test_puts_each_event_in_its_districts_shard_and_reference_data_in_every_shard(
        self, province: Province
    ) -> None:
        events = [orjson.loads(line) for line in province.lines]
        assert {o.status for o in province.outcomes} == {"accepted"}
        assert {o.status for o in province.single_outcomes} == {"accepted"}  # ids never collide
        for event, outcome in zip(events, province.outcomes, strict=True):
            expected = "*" if event["type"] in REFERENCE_TYPES else event["district"]
            assert outcome.shard == expected, (event["type"], event["subject"])
        wly, clx = province.router.apps["WLY"], province.router.apps["CLX"]
        assert wly.aggregate_exists("site", "WLY-ZHAN-01")
        assert not wly.aggregate_exists("site", "CLX-ZHAN-01")
        assert clx.aggregate_exists("site", "CLX-ZHAN-01")
        assert not clx.aggregate_exists("volunteer", "V4308110000001")
        assert clx.aggregate_exists("volunteer", "V4308120000001")
        for app in (wly, clx):
            assert app.aggregate_exists("checklist", "six-haves")

    def test_shards_together_hold_what_one_store_holds(self, province: Province) -> None:
        per_shard = [store_stats(app) for app in province.router.apps.values()]
        merged = province_totals(per_shard)
        single = store_stats(province.single)
        assert merged["events_by_type"] == single["events_by_type"]
        assert merged["aggregates_by_kind"] == single["aggregates_by_kind"]
        assert all(s["events"] < single["events"] for s in per_shard)

    def test_stores_a_resent_batch_once_in_each_shard(self, province: Province) -> None:
        heads = {name: app.last_position() for name, app in province.router.apps.items()}
        inputs = [RawInput(payload=line, channel="test") for line in province.lines[:400]]
        result = province.router.process(inputs)
        assert {o.status for o in result.outcomes} == {"duplicate"}
        assert result.events_stored == 0
        assert [o.shard for o in result.outcomes] == [o.shard for o in province.outcomes[:400]]
        for outcome in result.outcomes:
            if outcome.shard != "*":
                assert outcome.position == heads[outcome.shard]
        assert {n: a.last_position() for n, a in province.router.apps.items()} == heads


class TestProvinceViews:
    def test_each_districts_scorecard_in_its_shard_equals_the_single_stores(
        self, province: Province
    ) -> None:
        for code in DISTRICTS:
            sharded = scorecard(province.views[code], code, PERIOD, now=NOW)
            single = scorecard(province.views["single"], code, PERIOD, now=NOW)
            assert sharded["composite"]["status"] == "ok"
            for key in ("positions", "rank"):  # log positions and peers differ by design
                sharded.pop(key)
                single.pop(key)
            assert sharded == single

    def test_province_league_table_merged_from_shards_equals_the_single_stores(
        self, province: Province
    ) -> None:
        shard_views = {code: province.views[code] for code in DISTRICTS}
        merged = province_rankings(shard_views, PERIOD, now=NOW)
        single = rankings(province.views["single"], "centre", None, PERIOD, now=NOW)
        assert merged["ranked"] == single["ranked"] == 2
        assert [{k: v for k, v in row.items() if k != "shard"} for row in merged["units"]] == (
            single["units"]
        )
        assert {row["unit_id"]: row["shard"] for row in merged["units"]} == {
            "WLY": "WLY",
            "CLX": "CLX",
        }

    def test_province_volunteer_figures_are_the_shards_summed(self, province: Province) -> None:
        from projections.ledger import volunteers_summary

        merged = province_volunteers({c: province.views[c] for c in DISTRICTS}, PERIOD)
        single = volunteers_summary(province.views["single"], None, PERIOD)
        assert merged["registered"] == single["registered"] > 0
        assert merged["active"] == single["active"] > 0
        assert merged["approved_hours"] == pytest.approx(single["approved_hours"])
        assert merged["active_rate"] == single["active_rate"]
        assert merged["hours_per_active"]["value"] == single["hours_per_active"]["value"]
        assert all(v["registered"] > 0 for v in merged["by_shard"].values())


class TestCrossShard:
    """These scenarios add events; they run after the comparisons above."""

    def test_refuses_an_event_naming_another_shards_district(self, province: Province) -> None:
        session = {"session_id": "X-S1", "site_id": "CLX-ZHAN-01", "method": "qr"}
        into_clx = cloud_event(
            CHECKED_IN, "V4308110000001", session, source="urn:wly:checkin-app", district="WLY"
        )
        renamed = cloud_event(
            SITE_UPDATED, "CLX-ZHAN-01", {"name": "改名"}, source="urn:wly:admin", district="WLY"
        )
        outcomes = province.send([into_clx, renamed])
        assert [(o.status, o.code, o.shard) for o in outcomes] == [
            ("rejected", "CROSS_SHARD_REFERENCE", "WLY"),
            ("rejected", "CROSS_SHARD_REFERENCE", "WLY"),
        ]
        assert "CLX-ZHAN-01" in (outcomes[0].reason or "")
        assert "district='CLX'" in (outcomes[0].reason or "")
        kept = province.router.apps["WLY"].store.select_rejections(code="CROSS_SHARD_REFERENCE")
        assert {r["event_id"] for r in kept} == {into_clx["id"], renamed["id"]}
        assert not province.router.apps["CLX"].store.select_rejections(code="CROSS_SHARD_REFERENCE")

    def test_a_volunteer_serving_in_another_district_is_registered_there(
        self, province: Province
    ) -> None:
        volunteer = "V4308110000001"  # registered in WLY by the demo history
        guest = cloud_event(
            VOLUNTEER_REGISTERED,
            volunteer,
            {"home_site_id": "CLX-ZHAN-01", "skills": ["first_aid"], "registered_on": "2025-02-01"},
            source="urn:clx:admin",
            district="CLX",
        )
        session = {"session_id": "CLX-GUEST-1", "site_id": "CLX-ZHAN-01", "method": "qr"}
        serves = cloud_event(
            CHECKED_IN,
            volunteer,
            session,
            source="urn:clx:checkin-app",
            district="CLX",
            time="2025-02-02T09:00:00+08:00",
        )
        outcomes = province.send([guest, serves])
        assert [(o.status, o.shard) for o in outcomes] == [("accepted", "CLX"), ("accepted", "CLX")]
        assert province.router.apps["WLY"].aggregate_exists("volunteer", volunteer)
        assert province.router.apps["CLX"].aggregate_exists("volunteer", volunteer)


class TestIntegrity:
    def test_each_shard_verifies_on_its_own_and_only_a_tampered_one_breaks(
        self,
        province: Province,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_STORE", province.urls["WLY"])
        monkeypatch.setenv(
            "PRACTICE_EVENTS_SHARDS",
            orjson.dumps({c: province.urls[c] for c in DISTRICTS}).decode(),
        )
        assert cli_main(["shards", "verify", "--seal", "--json"]) == 0
        report = orjson.loads(capsys.readouterr().out)
        assert [(s["shard"], s["ok"]) for s in report["shards"]] == [("WLY", True), ("CLX", True)]
        assert all(s["log_head"] == s["sealed_head"] > 0 for s in report["shards"])

        table = 'clx."practiceevents_events"'
        with psycopg.connect(province.base_url, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT notification_id, state FROM {table} "
                "ORDER BY notification_id LIMIT 1 OFFSET 9"
            ).fetchone()
            assert row is not None
            conn.execute(
                f"UPDATE {table} SET state = %s WHERE notification_id = %s",
                (bytes(row[1]).replace(b'"', b"'", 1), row[0]),
            )
            try:
                assert cli_main(["shards", "verify", "--json"]) == 5
                broken = orjson.loads(capsys.readouterr().out)
            finally:
                conn.execute(
                    f"UPDATE {table} SET state = %s WHERE notification_id = %s", (row[1], row[0])
                )
        assert [(s["shard"], s["ok"]) for s in broken["shards"]] == [("WLY", True), ("CLX", False)]
        assert broken["shards"][1]["first_break"]["position"] == row[0]
        assert broken["shards"][1]["first_break"]["kind"] == "modified"


class TestChannels:
    def test_ingest_file_routes_through_the_shards_named_in_the_settings(
        self,
        province: Province,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        path = tmp_path / "again.jsonl"
        path.write_bytes(b"\n".join(province.lines[:300]) + b"\n")
        monkeypatch.setenv("PRACTICE_EVENTS_STORE", province.urls["WLY"])
        monkeypatch.setenv(
            "PRACTICE_EVENTS_SHARDS",
            orjson.dumps({c: province.urls[c] for c in DISTRICTS}).decode(),
        )
        assert cli_main(["ingest-file", str(path), "--json", "--no-progress"]) == 0
        summary = orjson.loads(capsys.readouterr().out)
        assert (summary["lines"], summary["duplicate"], summary["events_stored"]) == (300, 300, 0)
        heads = {code: province.router.apps[code].last_position() for code in DISTRICTS}
        assert summary["shard_positions"] == heads

    def test_http_batch_is_routed_to_each_districts_shard(self, province: Province) -> None:
        from tests.factories_api import CE_BATCH, live_server

        events = [
            cloud_event(
                SITE_UPDATED, f"{code}-ZHAN-02", {"name": f"{code} 新站名"}, source="urn:test:a"
            )
            for code in DISTRICTS
        ]
        with live_server(province.settings) as server:
            token = server.runtime_or_fail().tokens.issue("producer", sources=["urn:test:*"])
            answer = httpx.post(
                f"{server.url}/v1/events:batch",
                content=orjson.dumps(events),
                headers={"Authorization": f"Bearer {token.secret}", "content-type": CE_BATCH},
                timeout=60,
            )
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [(r["status"], r["shard"]) for r in results] == [
            ("accepted", "WLY"),
            ("accepted", "CLX"),
        ]
        for code, result in zip(DISTRICTS, results, strict=True):
            assert result["position"] == province.router.apps[code].last_position()

    @pytest.mark.kafka
    def test_kafka_worker_routes_records_and_tracks_offsets_in_every_shard(
        self, province: Province, kafka_broker: Any
    ) -> None:
        from consumers.worker import Worker, WorkerConfig
        from tests.kafka_fixtures import (
            Message,
            fresh_topics,
            produce_kafka_python,
            raw,
            wait_until,
        )

        create_schemas(province.base_url, ["kwly", "kclx"])
        urls = {code: f"{province.base_url}?schema=k{code.lower()}" for code in DISTRICTS}
        settings = Settings(store=urls["WLY"], shards=urls)
        topics = fresh_topics(kafka_broker, partitions=1, prefix="shards")
        messages = []
        for line in province.lines[:60]:
            event = orjson.loads(line)
            _, value, headers = binary_message(event)
            key = str(event["district"]).encode()  # keyed by district, as docs/sharding.md says
            messages.append(Message(key, value, headers, "accepted"))
        messages.append(raw(b"not a cloudevent", "MALFORMED_JSON"))
        produced = produce_kafka_python(topics.bootstrap, topics.topic, messages)
        last = max(offset for _, offset in produced.positions)
        router = build_ingest(settings)
        config = WorkerConfig(
            bootstrap=topics.bootstrap,
            topic=topics.topic,
            group=topics.group,
            dlq_topic=topics.dlq,
            batch_size=25,
            max_wait_ms=100,
        )
        worker = Worker(router, config)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            name = f"kafka:{topics.topic}:0"
            wait_until(
                lambda: router.select_trackings("kafka:").get(name, -1) >= last,
                timeout=60,
                what="every shard to track the last offset",
            )
        finally:
            worker.stop()
            thread.join(30)
        assert worker.stats.accepted == 60
        assert worker.stats.dead_lettered == 1
        assert isinstance(router, ShardRouter)
        for app in router.apps.values():
            assert app.store.select_trackings("kafka:") == {name: last}
            stats = store_stats(app)
            assert stats["aggregates_by_kind"]["site"] > 0
        assert router.apps["WLY"].store.count_rejections() == {"MALFORMED_JSON": 1}
        assert not router.apps["CLX"].aggregate_exists("site", "WLY")
        router.close()
