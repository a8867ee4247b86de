"""The worker's parts that need no broker: back-off, dead-letter headers, configuration, CLI."""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar

import pytest

from consumers.cli import install
from consumers.dlq import DeadLetter, dead_letter_headers, letters_by_position, read_dead_letter
from consumers.worker import Backoff, WorkerConfig, WorkerStats, decode_headers, tracking_name
from practice_events.config import Settings
from practice_events.errors import ConfigurationError


class TestBackoff:
    def test_grows_exponentially_with_jitter_up_to_the_cap(self) -> None:
        backoff = Backoff(0.2, 5.0, random.Random(1))
        delays = [backoff.next_delay() for _ in range(10)]
        for attempt, delay in enumerate(delays):
            step = min(5.0, 0.2 * 2**attempt)
            assert step / 2 <= delay <= step
        assert max(delays) <= 5.0
        assert delays[-1] >= 2.5

    def test_starts_again_after_a_success(self) -> None:
        backoff = Backoff(0.2, 5.0, random.Random(1))
        for _ in range(6):
            backoff.next_delay()
        backoff.reset()
        assert backoff.next_delay() <= 0.2

    def test_jitter_spreads_workers_that_failed_together(self) -> None:
        first = [Backoff(1.0, 60.0, random.Random(seed)).next_delay() for seed in range(20)]
        assert len({round(d, 6) for d in first}) == 20


class TestDeadLetterHeaders:
    def test_keeps_the_original_headers_and_adds_why_and_where(self) -> None:
        at = datetime(2024, 3, 4, 9, 30, tzinfo=timezone(timedelta(hours=8)))
        headers = dead_letter_headers(
            [("ce_id", b"1"), ("content-type", b"application/json")],
            code="SCHEMA_VIOLATION",
            reason="data.level: 不是有效的级别",
            topic="practice.events.v1",
            partition=2,
            offset=41,
            at=at,
        )
        assert headers[:2] == [("ce_id", b"1"), ("content-type", b"application/json")]
        assert read_dead_letter(headers) == {
            "code": "SCHEMA_VIOLATION",
            "reason": "data.level: 不是有效的级别",
            "source_topic": "practice.events.v1",
            "source_partition": 2,
            "source_offset": 41,
            "time": "2024-03-04T01:30:00.000Z",
        }

    def test_replaces_the_headers_of_an_earlier_refusal(self) -> None:
        earlier = [("ce_id", b"1"), ("dlq_code", b"UNKNOWN_TYPE"), ("dlq_source_offset", b"3")]
        headers = dead_letter_headers(
            earlier, code="ILLEGAL_TRANSITION", reason="r", topic="t", partition=0, offset=9,
            at=datetime.now(UTC),
        )  # fmt: skip
        names = [name for name, _ in headers]
        assert names.count("dlq_code") == 1
        assert read_dead_letter(headers)["source_offset"] == 9

    def test_cuts_an_overlong_reason(self) -> None:
        headers = dead_letter_headers(
            [], code="C", reason="x" * 10_000, topic="t", partition=0, offset=0,
            at=datetime.now(UTC),
        )  # fmt: skip
        assert len(dict(headers)["dlq_reason"]) == 2048

    def test_an_empty_header_value_survives_as_empty_bytes(self) -> None:
        headers = dead_letter_headers(
            [("trace", None)], code="C", reason="r", topic="t", partition=0, offset=0,
            at=datetime.now(UTC),
        )  # fmt: skip
        assert headers[0] == ("trace", b"")

    def test_readers_count_a_repeated_dead_letter_once(self) -> None:
        one = {"source_topic": "t", "source_partition": 0, "source_offset": 5}
        other = {"source_topic": "t", "source_partition": 1, "source_offset": 5}
        assert len(letters_by_position([one, dict(one), other])) == 2


class TestRecords:
    def test_binary_mode_headers_are_decoded_as_text(self) -> None:
        assert decode_headers([("ce_subject", "站".encode()), ("x", None)]) == [
            ("ce_subject", "站"),
            ("x", ""),
        ]
        assert decode_headers(None) == []

    def test_keeps_a_repeated_header_for_the_envelope_to_refuse(self) -> None:
        assert decode_headers([("ce_id", b"a"), ("ce_id", b"b")]) == [
            ("ce_id", "a"),
            ("ce_id", "b"),
        ]

    def test_bad_utf8_in_a_header_does_not_stop_decoding(self) -> None:
        # Kept as a lone surrogate, which the envelope refuses as "not valid UTF-8".
        assert decode_headers([("ce_id", b"\xff1")]) == [("ce_id", "\udcff1")]

    def test_tracking_names_a_topic_partition(self) -> None:
        assert tracking_name("practice.events.v1", 3) == "kafka:practice.events.v1:3"

    def test_a_dead_letter_of_a_record_keeps_key_and_value(self) -> None:
        class Record:
            topic, partition, offset = "t", 1, 7
            key, value = b"k", b"\x00not json"
            headers: ClassVar[list[tuple[str, bytes]]] = [("h", b"v")]

        letter = DeadLetter.of(Record(), code="MALFORMED_JSON", reason="r", at=datetime.now(UTC))
        assert (letter.key, letter.value) == (b"k", b"\x00not json")
        assert letter.headers[0] == ("h", b"v")
        assert (letter.source_partition, letter.source_offset) == (1, 7)


class TestConfiguration:
    def test_refuses_to_start_without_bootstrap_servers(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("PRACTICE_EVENTS_KAFKA_BOOTSTRAP", raising=False)
        with pytest.raises(ConfigurationError, match="bootstrap"):
            WorkerConfig.from_settings(Settings(store="sqlite:///x.db"))

    def test_takes_topic_group_and_dead_letter_topic_from_settings(self) -> None:
        settings = Settings(store="sqlite:///x.db", kafka_bootstrap="k:9092", kafka_topic="a.v1")
        config = WorkerConfig.from_settings(settings, batch_size=50, max_wait_ms=None)
        assert (config.topic, config.group, config.dlq_topic) == (
            "a.v1",
            "practice-events",
            "a.v1.dlq",
        )
        assert config.batch_size == 50
        assert config.max_wait_ms == 250

    def test_counters_read_as_json(self) -> None:
        stats = WorkerStats(accepted=3)
        stats.rejected["UNKNOWN_TYPE"] += 2
        stats.lag[1] = 7
        out = stats.as_dict()
        assert out["rejected"] == 2
        assert out["lag"] == 7
        assert out["lag_by_partition"] == {"1": 7}


class TestCommandLine:
    def test_adds_the_ingest_command_with_its_options(self) -> None:
        parser = argparse.ArgumentParser()
        install(parser.add_subparsers(dest="command"))
        args = parser.parse_args(
            ["ingest", "--kafka", "k:9092", "--topic", "practice.events.v1", "--group", "g",
             "--dlq-topic", "d", "--batch-size", "10", "--health-port", "0"]
        )  # fmt: skip
        assert args.command == "ingest"
        assert (args.kafka, args.topic, args.group, args.dlq_topic) == (
            "k:9092",
            "practice.events.v1",
            "g",
            "d",
        )
        assert (args.batch_size, args.health_port) == (10, 0)
        assert callable(args.func)
