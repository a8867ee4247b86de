"""The demo district through the real pipeline: no rejections, idempotent, exact dirty accounting.

Generated files are ingested with ``ingest_file`` into a real SQLite store
built by the composition root, exactly as ``practice-events ingest-file``
does. The full default year runs in the slow suite; the Kafka test publishes
in binary mode to the suite's Tansu broker and reads the records back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from practice_events.bootstrap import build_app, build_pipeline
from practice_events.cli import main
from practice_events.config import Settings
from practice_events.contracts import load_all as load_contracts
from practice_events.contracts.envelope import IncomingEvent, parse_binary
from practice_events.demo.generator import write_jsonl
from practice_events.ingest.files import IngestSummary, ingest_file
from practice_events.ingest.pipeline import Pipeline


@pytest.fixture
def pipeline(sqlite_url: str) -> Iterator[Pipeline]:
    """The real ingest pipeline over a fresh SQLite store."""
    settings = Settings(store=sqlite_url)
    app = build_app(settings)
    try:
        yield build_pipeline(settings, app)
    finally:
        app.close()


def ingest(pipeline: Pipeline, path: Path) -> IngestSummary:
    return ingest_file(pipeline, path, progress=False)


class TestCleanHistory:
    def test_ingests_without_a_single_rejection(self, pipeline: Pipeline, tmp_path: Path) -> None:
        path = tmp_path / "demo.jsonl"
        written = write_jsonl(path, seed=7, days=60, events=20_000)
        summary = ingest(pipeline, path)
        assert summary.rejected_by_code == Counter()
        assert summary.accepted == written.lines
        # hours credited, points awarded and other system events come on top
        assert summary.events_stored > written.lines

    def test_the_same_file_twice_adds_nothing(self, pipeline: Pipeline, tmp_path: Path) -> None:
        path = tmp_path / "demo.jsonl"
        written = write_jsonl(path, seed=8, days=30, events=8_000)
        first = ingest(pipeline, path)
        second = ingest(pipeline, path)
        assert first.accepted == written.lines
        assert (second.accepted, second.rejected) == (0, 0)
        assert second.duplicate == written.lines
        assert second.events_stored == 0
        assert second.last_position == first.last_position

    def test_ingest_file_command_reports_no_rejections(
        self, sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "demo.jsonl"
        assert (
            main(["demo", "generate", "--days", "20", "--events", "5000", "--out", str(path)]) == 0
        )
        capsys.readouterr()
        code = main(["ingest-file", str(path), "--json", "--strict", "--store", sqlite_url])
        summary = orjson.loads(capsys.readouterr().out)
        assert code == 0
        assert summary["rejected"] == 0
        assert summary["accepted"] == len(path.read_bytes().splitlines())


class TestDirtyHistory:
    def test_rejections_by_code_are_exactly_the_expected_ones(
        self, pipeline: Pipeline, tmp_path: Path
    ) -> None:
        path = tmp_path / "dirty.jsonl"
        written = write_jsonl(path, seed=7, days=45, events=12_000, dirty=0.08)
        expected = orjson.loads((tmp_path / "dirty.jsonl.expected.json").read_bytes())
        assert written.expected == expected
        summary = ingest(pipeline, path)
        assert (
            dict(sorted(summary.rejected_by_code.items()))
            == expected["expected_rejections_by_code"]
        )
        assert summary.rejected == expected["expected_rejected"]
        assert summary.duplicate == expected["expected_duplicates"]
        assert summary.accepted == expected["expected_accepted"] == expected["clean"]

    def test_each_rejected_line_carries_the_code_it_was_tagged_with(
        self, pipeline: Pipeline, tmp_path: Path
    ) -> None:
        path = tmp_path / "dirty.jsonl"
        write_jsonl(path, seed=3, days=20, events=5_000, dirty=0.1)
        summary = ingest(pipeline, path)
        assert summary.rejections_file is not None
        for line in Path(summary.rejections_file).read_bytes().splitlines():
            rejection = orjson.loads(line)
            try:
                original = orjson.loads(rejection["original"])
            except orjson.JSONDecodeError:
                assert rejection["code"] == "MALFORMED_JSON"
                continue
            if isinstance(original, dict):
                assert original["pedirty"] == rejection["code"], rejection["reason"]
            else:
                assert rejection["code"] == "MALFORMED_JSON"


@pytest.mark.slow
def test_a_default_year_ingests_without_rejections(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "demo-2025.jsonl"
    written = write_jsonl(path)
    assert written.plan.days == 365
    assert written.lines > 250_000
    summary = ingest(pipeline, path)
    assert summary.rejected == 0, summary.rejected_by_code
    assert summary.accepted == written.lines


@pytest.mark.kafka
def test_publishes_in_cloudevents_binary_mode(kafka_broker: object, tmp_path: Path) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from tests.kafka_fixtures import fresh_topics

    topics = fresh_topics(kafka_broker, partitions=3, prefix="demo")  # type: ignore[arg-type]
    argv = ["demo", "generate", "--days", "10", "--events", "2000", "--format", "kafka"]
    argv += ["--kafka", topics.bootstrap, "--topic", topics.topic, "--json", "--no-progress"]
    assert main(argv) == 0
    path = tmp_path / "same.jsonl"
    written = write_jsonl(path, days=10, events=2_000)

    consumer = Consumer(
        {
            "bootstrap.servers": topics.bootstrap,
            "group.id": topics.group,
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [TopicPartition(topics.topic, p, OFFSET_BEGINNING) for p in range(topics.partitions)]
    )
    load_contracts()
    received: list[IncomingEvent] = []
    deadline = time.monotonic() + 60
    try:
        while len(received) < written.lines and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            raw_headers = message.headers() or []
            pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
            headers = {
                name: value.decode() if isinstance(value, bytes) else str(value)
                for name, value in pairs
            }
            incoming = parse_binary(headers, message.value())
            assert message.key() == incoming.subject.encode()
            received.append(incoming)
    finally:
        consumer.close()
    assert len(received) == written.lines
    by_subject: dict[str, list[str]] = {}
    for incoming in received:
        by_subject.setdefault(incoming.subject, []).append(incoming.time.isoformat())
    for stamps in by_subject.values():
        assert stamps == sorted(stamps)  # one subject, one partition, in order
